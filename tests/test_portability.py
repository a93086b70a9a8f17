"""The notebooks' stored outputs are what the computation determines, on any CPU.

OpenBLAS chooses its kernel by CPU, and the kernel decides the order in which a matrix
product sums its terms, so a digit that depends on summation order differs between a
reader's machine and the one that wrote the outputs. Every x86-64 CPU can run OpenBLAS's
Nehalem and SandyBridge kernels (``OPENBLAS_CORETYPE``, set here in the child processes
only), so re-running every notebook under them, and with one and two BLAS threads, shows
this machine's notebooks as another machine would run them. nbval compares strictly.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# OPENBLAS_CORETYPE value -> the architecture name threadpoolctl reports for it
X86_KERNELS = [("Nehalem", "Nehalem"), ("SandyBridge", "Sandybridge"), ("Prescott", "Katmai")]
ARM_KERNELS = [("ARMV8", "armv8"), ("CORTEXA57", "cortexa57"), ("CORTEXA53", "cortexa53")]


def blas_info(env: dict[str, str]) -> dict:
    """The BLAS that NumPy loads in a child process with this environment."""
    code = (
        "import json, numpy, threadpoolctl\n"
        "blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
        "print(json.dumps(blas[0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def child_env(coretype: str | None, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    env.pop("PYTEST_XDIST_WORKER", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def configurations() -> list[tuple[str | None, str | None, int]]:
    """(OPENBLAS_CORETYPE, expected architecture, threads): two kernels other than this
    machine's own, then this machine's own kernel with one and with two threads."""
    native = blas_info(child_env(None, 1)).get("architecture")
    arm = platform.machine().lower() in ("arm64", "aarch64")
    others = [(k, a) for k, a in (ARM_KERNELS if arm else X86_KERNELS) if a != native][:2]
    return [
        (others[0][0], others[0][1], 1),
        (others[1][0], others[1][1], 2),
        (None, native, 1),
        (None, native, 2),
    ]


CONFIGS = configurations()


@pytest.mark.parametrize(
    "coretype, arch, threads", CONFIGS, ids=[f"{a}-{t}thread" for _, a, t in CONFIGS]
)
def test_notebooks_reproduce_under_another_blas(coretype, arch, threads):
    env = child_env(coretype, threads)
    info = blas_info(env)
    assert info.get("internal_api") == "openblas", f"NumPy's BLAS is not OpenBLAS: {info}"
    assert info.get("architecture") == arch, (
        f"OPENBLAS_CORETYPE={coretype} gave kernel {info.get('architecture')}, not {arch}"
    )
    assert info.get("num_threads") == threads
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-o",
        "addopts=",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        "tests/nbval_sanitize.cfg",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "book",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert proc.returncode == 0, (
        f"kernel {arch}, {threads} thread(s): stored outputs differ\n"
        + "\n".join(summary)
        + "\n"
        + proc.stdout[-6000:]
    )
