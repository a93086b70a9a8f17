"""The command-line tools the build tests run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def jupyter_book() -> str:
    """The jupyter-book beside this Python (the project's venv), else the one on PATH."""
    exe = Path(sys.executable).with_name("jupyter-book")
    found = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[test]'")
    return found
