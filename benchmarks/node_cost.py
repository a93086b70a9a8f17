"""What a graph node costs in Python: the MLP step of bench_mlp.py on a 4-4-4-3 network
with batch 4, where NumPy's arithmetic is negligible and what remains is per-call overhead.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/node_cost.py

The plain-ops step records 12 nodes (per layer: W.T, @, +b, relu or cross-entropy);
bpkit.nn.MLP records 6 (F.linear, relu, cross-entropy). The difference to the NumPy delta
recursion, divided by the node count, is the engine's cost per node (forward, backward
and update together); at width 64 it is what keeps bpkit's step from NumPy's.
"""

from __future__ import annotations

import os
import sys
import timeit

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.argv = sys.argv[:1] + ["--threads", "1"]  # bench_mlp parses its own arguments
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_mlp as bench  # noqa: E402
import numpy as np  # noqa: E402

from bpkit.engine import topological_order  # noqa: E402


def best_us(f, number: int = 2000, repeat: int = 7) -> float:
    for _ in range(200):
        f()
    return min(timeit.repeat(f, number=number, repeat=repeat)) / number * 1e6


def stripped_backward(loss) -> None:
    """The sweep of bpkit.engine.backward without its checks and bookkeeping (no version
    check, no in-place accumulation, no fan-in, no debug mode): what the rules cost."""
    adjoint = {loss: np.ones((), loss.dtype)}
    order = topological_order(loss)
    for node in reversed(order):
        if node.inputs:
            g = node.grad = adjoint[node]
            args, params = [x.data for x in node.inputs], dict(node.params)
            if node.residual is not None:
                params["res"] = node.residual
            for x, vjp in zip(node.inputs, node.op.vjps, strict=False):
                if x.requires_grad:
                    gx = vjp(g, node.data, *args, **params)
                    adjoint[x] = gx if gx.shape == x.shape else gx.sum(axis=0)
    for node in order:
        if not node.inputs and node.requires_grad:
            node.grad = adjoint[node]


def main() -> None:
    params = bench.init_params([4, 4, 4, 3])
    x, y = bench.make_data(4, 3, batch=4)
    numpy_ = bench.make_numpy(params, x, y)
    plain = bench.make_bpkit(params, x, y)
    nn_mlp = bench.make_bpkit_nn(params, x, y)
    ref = best_us(numpy_["step"])
    ref_fwd = best_us(numpy_["fwd"])
    print(f"NumPy delta recursion      step {ref:6.1f} us, forward {ref_fwd:5.1f} us")
    for name, impl, nodes in (("bpkit plain ops", plain, 12), ("bpkit.nn.MLP", nn_mlp, 6)):
        t = best_us(impl["step"])
        fwd = f", forward {best_us(impl['fwd']):5.1f} us" if "fwd" in impl else ""
        print(f"{name:26s} step {t:6.1f} us{fwd}; {(t - ref) / nodes:4.2f} us more "
              f"per node ({nodes} nodes)")
    loss = plain["fwd"]()
    print(f"backward pass of the plain-ops graph: engine {best_us(loss.backward):5.1f} us, "
          f"stripped of checks {best_us(lambda: stripped_backward(loss)):5.1f} us; NumPy's "
          f"backward and update {ref - ref_fwd:5.1f} us")


if __name__ == "__main__":
    main()
