"""The environment the suite runs in is the pinned one, so a clone installed a year from now
gets the versions that the notebooks' stored outputs were made with."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNPINNED = {"bpkit", "pip", "setuptools", "wheel"}  # the project itself and the installer


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not pinned with =="
            found[canonical(name)] = version
    return found


def test_every_installed_package_is_pinned_at_its_pinned_version():
    pinned = pins()
    installed = {
        canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    unpinned = sorted(set(installed) - set(pinned) - UNPINNED)
    assert not unpinned, f"installed but not in constraints.txt: {unpinned}"
    moved = {n: (v, pinned[n]) for n, v in installed.items() if n in pinned and v != pinned[n]}
    assert not moved, f"installed version differs from constraints.txt (got, pinned): {moved}"


def test_readme_commands_and_ci_use_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = (
        "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]' "
        "&& .venv/bin/pytest"
    )
    assert test_command in readme and test_command in ci
    assert "pip install -c constraints.txt -e '.[book]'" in readme
