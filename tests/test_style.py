"""House rules that a reviewer would otherwise check by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED_CHECK = ROOT.parent / "shared" / "tools" / "seed_overlap.py"


def test_ruff_clean():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([exe, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


@pytest.mark.skipif(not SEED_CHECK.exists(), reason="../shared/tools/seed_overlap.py not present")
def test_book_prose_is_our_own():
    """No run of 12 or more words is shared with the seed texts."""
    proc = subprocess.run([sys.executable, str(SEED_CHECK), "book"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_import_bpkit_needs_numpy_alone():
    code = ("import sys, bpkit; heavy = {'sympy', 'matplotlib', 'scipy', 'torch', 'sklearn'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
