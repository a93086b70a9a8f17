"""A Sphinx extension for the PDF edition: exercises keep their HTML numbers.

For a book in parts, sphinx-jupyterbook-latex sets ``numfig_secnum_depth = 2`` so that
LaTeX, which counts the part as a sectioning level, numbers figures and equations by
chapter (Fig. 2.1). Sphinx itself, which numbers the exercises, does not count the part,
so the same setting made them "Exercise 2.7.4" in the PDF where the HTML and the prose say
"Exercise 2.4". Here Sphinx numbers with depth 1 (by chapter, as in the HTML), and the
LaTeX writer, which reads the setting only when it writes (after every reference is
resolved), gets depth 2 back.
"""

from __future__ import annotations

from sphinx.builders.latex import LaTeXBuilder


def _number_by_chapter(app) -> None:
    if isinstance(app.builder, LaTeXBuilder) and app.config.numfig_secnum_depth == 2:
        app.config.numfig_secnum_depth = 1
        app.env._bpkit_latex_secnum_depth = 2


def _restore_for_writer(app, doctree, docname) -> None:
    depth = getattr(app.env, "_bpkit_latex_secnum_depth", None)
    if depth is not None:
        app.config.numfig_secnum_depth = depth


def setup(app):
    # after sphinx-jupyterbook-latex's own builder-inited handler (priority 500)
    app.connect("builder-inited", _number_by_chapter, priority=900)
    # the LaTeX builder emits no write-started; it resolves the assembled book just
    # before it creates the LaTeX writer
    app.connect("doctree-resolved", _restore_for_writer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
