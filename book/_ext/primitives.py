"""A Sphinx extension for the API page's table of primitives (``bpkit.ops``).

A primitive's docstring is its equation and its rules written in plain text
(``dC/da = g z (1 - z)``, ``e^{-|a|}``), which reStructuredText would read as markup
(``|a|`` is a substitution). Each one is shown as written, in a literal block.
"""

from __future__ import annotations


def as_written(app, what, name, obj, options, lines) -> None:
    from bpkit.ops import Primitive

    if isinstance(obj, Primitive) and lines:
        lines[:] = ["::", ""] + ["   " + line for line in lines] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", as_written, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
