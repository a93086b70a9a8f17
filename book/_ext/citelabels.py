"""A Sphinx extension that tells apart works whose author-year citations would look the same.

With sphinxcontrib-bibtex's ``author_year`` style, two works by the same authors from the
same year get the same in-text label ("Rumelhart et al., 1986" for both the Nature letter
and the PDP chapter). This extension adds the usual letter to the year of such works,
"1986a", "1986b", in the citations and in the bibliography alike, by registering

* the referencing style ``author_year_disambiguated`` (sphinxcontrib-bibtex plugin), and
* the formatting style ``plain_disambiguated`` (pybtex plugin),

which are ``author_year`` and ``plain`` with the year of each entry replaced by its lettered
year, and the label style ``author_year_disambiguated`` (pybtex plugin), which labels each
bibliography entry with its in-text label ("Rumelhart et al., 1986b") instead of a number,
so a reader finds a citation in the list by the words it was cited with.

Works clash when the author part of their in-text label (rendered by the referencing
style itself, so "A", "A and B" or "A et al.") and their year are equal; within a clash the
letters follow the bibliography's own order (``plain`` sorts by authors, year, then title),
so "a" is the one listed first. The letters are worked out once per build, from every entry
of the bib files, so they agree between citations and any bibliography of the book.
"""

from __future__ import annotations

import copy
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import pybtex.plugin
from pybtex.database import Entry
from pybtex.richtext import BaseText
from pybtex.style import FormattedEntry
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import Node, join, node
from pybtex.utils import OrderedCaseInsensitiveDict
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.domain import BibtexDomain
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

#: Entry key -> letter for the year ("a", "b", ...); only keys that need one.
YEAR_SUFFIXES: dict[str, str] = {}
#: Entry key -> its in-text label with the lettered year ("Rumelhart et al., 1986b").
LABELS: dict[str, str] = {}


def with_suffixed_year(entry: Entry) -> Entry:
    """Return ``entry``, or a shallow copy of it whose year carries its letter."""
    suffix = YEAR_SUFFIXES.get(entry.key, "")
    if not suffix:
        return entry
    entry = copy.copy(entry)
    entry.fields = OrderedCaseInsensitiveDict(entry.fields)
    entry.fields["year"] = entry.fields["year"] + suffix
    return entry


def author_part(entry: Entry, style: AuthorYearReferenceStyle) -> str:
    """The author part of an entry's in-text label: "A", "A and B" or "A et al."."""
    authors = style.person.author_or_editor_or_title(full=False)
    return authors.format_data({"entry": entry, "style": style}).render_as("text")


def year_suffixes(entries: list[Entry], authors: dict[str, str]) -> dict[str, str]:
    """Letters for the entries whose in-text author part (``authors[key]``) and year coincide."""
    groups: defaultdict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        if "year" in entry.fields:
            groups[(authors[entry.key], entry.fields["year"])].append(entry)
    order = PlainStyle().sort
    suffixes: dict[str, str] = {}
    for group in groups.values():
        if len(group) > 1:
            for i, entry in enumerate(order(group)):  # more than 26 would be an IndexError
                suffixes[entry.key] = string.ascii_lowercase[i]
    return suffixes


@node
def _suffixed_year(children: list[Node], data: dict[str, Any]) -> BaseText:
    return join[children].format_data({**data, "entry": with_suffixed_year(data["entry"])})


@dataclass
class DisambiguatedAuthorYearStyle(AuthorYearReferenceStyle):
    """``author_year`` citations with lettered years for works that would look the same."""

    def inner(self, role_name: str) -> Node:
        return _suffixed_year[super().inner(role_name)]


class AuthorYearLabelStyle(BaseLabelStyle):
    """Bibliography labels that repeat the in-text labels, lettered years included."""

    def format_labels(self, sorted_entries: Any) -> Any:
        for number, entry in enumerate(sorted_entries, start=1):
            yield LABELS.get(entry.key, str(number))


class DisambiguatedPlainStyle(PlainStyle):
    """pybtex's ``plain`` bibliography with the same lettered years as the citations, and
    the citations' author-year labels in place of numbers."""

    default_label_style = "author_year_disambiguated"

    def format_entry(self, label: str, entry: Entry, bib_data: Any = None) -> FormattedEntry:
        return super().format_entry(label, with_suffixed_year(entry), bib_data=bib_data)


def compute_suffixes(app: Sphinx) -> None:
    """Fill :data:`YEAR_SUFFIXES` and :data:`LABELS` from every entry of the bib files (none
    unless author-year)."""
    domain = cast(BibtexDomain, app.env.get_domain("cite"))
    YEAR_SUFFIXES.clear()
    LABELS.clear()
    style = domain.reference_style
    if isinstance(style, AuthorYearReferenceStyle):
        entries = list(domain.bibdata.data.entries.values())
        authors = {entry.key: author_part(entry, style) for entry in entries}
        YEAR_SUFFIXES.update(year_suffixes(entries, authors))
        for entry in entries:
            year = entry.fields.get("year", "n.d.") + YEAR_SUFFIXES.get(entry.key, "")
            LABELS[entry.key] = f"{authors[entry.key]}, {year}"


def setup(app: Sphinx) -> dict[str, Any]:
    register_plugin(
        "sphinxcontrib.bibtex.style.referencing",
        "author_year_disambiguated",
        DisambiguatedAuthorYearStyle,
    )
    pybtex.plugin.register_plugin(
        "pybtex.style.formatting", "plain_disambiguated", DisambiguatedPlainStyle
    )
    pybtex.plugin.register_plugin(
        "pybtex.style.labels", "author_year_disambiguated", AuthorYearLabelStyle
    )
    # after sphinxcontrib-bibtex's own builder-inited handler has read the bib files
    app.connect("builder-inited", compute_suffixes, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
