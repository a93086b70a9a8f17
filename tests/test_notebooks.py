"""What every chapter notebook must be, besides running (nbval re-runs each one).

These checks read the committed files: each notebook in the table of contents exists, was
executed top to bottom with its outputs stored, reports the bpkit version it ran with, and
stores no error output.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

import bpkit

ROOT = Path(__file__).resolve().parent.parent


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


NOTEBOOKS = sorted(ROOT.glob("book/*.ipynb"))


def code_cells(path: Path) -> list:
    """The notebook's non-empty code cells; skips the test if there are none."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if not cells:
        pytest.skip("no code cells")
    return cells


def test_every_toc_entry_exists():
    missing = [f for f in toc_files() if not any((ROOT / f).with_suffix(s).exists()
                                                 for s in (".ipynb", ".md"))]
    assert not missing


def test_every_notebook_is_in_the_toc():
    listed = {str(Path(f).with_suffix("")) for f in toc_files()}
    assert {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS} <= listed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executed_in_order_with_outputs(path):
    code = code_cells(path)
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: some cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: stored error output {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reports_bpkit_version(path):
    first = code_cells(path)[0]
    assert "bpkit.__version__" in first.source, "the first code cell prints bpkit.__version__"
    text = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert re.search(rf"\b{re.escape(bpkit.__version__)}\b", text), (
        f"{path.name} ran with another bpkit than {bpkit.__version__}: re-execute it "
        "(python scripts/execute_notebooks.py)"
    )
