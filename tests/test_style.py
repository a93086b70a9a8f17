"""House rules that a reviewer would otherwise check by hand.

The check that the book's prose is its own (no long word runs shared with the texts it was
planned from) reads files outside this repository, so it belongs to the authors' workflow,
not to this suite.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK_PAGES = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))


def test_ruff_clean():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([exe, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


def book_text(path: Path) -> str:
    """The prose and code a reader sees on a page (a notebook's cell sources, not outputs)."""
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


# The reader never sees the texts the book was planned from, nor a run that no cell made.
FORBIDDEN = {
    "source texts": re.compile(r"seed[- ]?(texts?|revisions?)|the seeds\b", re.IGNORECASE),
    "unexecuted results": re.compile(
        r"not (run|executed|computed|measured) here|measured elsewhere|run elsewhere",
        re.IGNORECASE,
    ),
}


@pytest.mark.parametrize("path", BOOK_PAGES, ids=lambda p: p.name)
@pytest.mark.parametrize("what", FORBIDDEN)
def test_book_speaks_to_its_reader(path, what):
    """No page refers to its source texts or quotes a result that no cell computes."""
    text = book_text(path)
    hits = [text[max(0, m.start() - 40) : m.end() + 40] for m in FORBIDDEN[what].finditer(text)]
    assert not hits, f"{path.name} mentions {what}: {hits}"


def test_import_bpkit_needs_numpy_alone():
    code = (
        "import sys, bpkit; heavy = {'sympy', 'matplotlib', 'scipy', 'torch', 'sklearn'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_page_lists_every_primitive():
    """The reference shows the whole table of primitives, so a new one cannot be left off."""
    from bpkit import ops

    page = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    public = [n for n, v in vars(ops).items() if isinstance(v, ops.Primitive) and n[0] != "_"]
    missing = [n for n in public if f".. autofunction:: bpkit.ops.{n}\n" not in page]
    assert not missing, f"book/api.md does not list these primitives: {missing}"
