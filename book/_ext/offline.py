"""A Sphinx extension that keeps the book's pages free of anything fetched from elsewhere.

Jupyter Book always loads sphinx-thebe (live code cells run on a remote Binder). The book
does not use it, and its inline configuration names a CDN and is injected twice per page,
which the browser reports as a console error. This drops those scripts from every page.
"""

from __future__ import annotations


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "") or ""
    name = getattr(script, "filename", None) or str(script)
    return "THEBE_JS_URL" in body or "thebe" in str(name)


def drop_thebe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [s for s in scripts if not _is_thebe(s)]


def setup(app):
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
