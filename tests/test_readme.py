"""The code a newcomer copies first must run: the Python examples of README.md and the
book's landing page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "book" / "intro.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_examples_run_and_train(path):
    blocks = python_blocks(path)
    assert blocks, f"{path.name} has no Python example"
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, str(path), "exec"), namespace)
        # Every example trains a model: the loss it ends with must be small and finite.
        loss = namespace["loss"].item()
        assert 0 <= loss < 0.1, f"{path.name}: example ends with loss {loss}"


def test_landing_page_shows_the_readme_example():
    """One example, not two that drift: the book's landing page repeats the README's."""
    readme, landing = (python_blocks(path) for path in PAGES)
    assert landing == readme
