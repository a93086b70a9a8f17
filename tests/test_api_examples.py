"""The examples of the API page (book/api.md) run and print what the page shows."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "book" / "api.md"
BLOCKS = re.findall(r"```pycon\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def test_page_has_examples():
    assert len(BLOCKS) >= 6, "book/api.md lost its examples"


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_example(i):
    test = doctest.DocTestParser().get_doctest(BLOCKS[i], {}, f"api.md[{i}]", str(PAGE), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"example {i} of book/api.md does not print what it shows"
