"""Speed of one MLP training step: bpkit against hand-written NumPy, PyTorch, JAX, micrograd.

Run by hand (not a test), with the machine's OpenBLAS overrides removed for this command:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_mlp.py

One step = forward, backward, SGD update W <- W - eta dC/dW. Network: 784-256-256-10 with
ReLU hidden layers and softmax cross-entropy, batch 128, float32; then a sweep over widths
and depths. Implementations are measured interleaved (round-robin, one step each per
round) and the medians are compared as ratios. Peers that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Thread count must be fixed before NumPy (and its BLAS) is imported.
_parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_parser.add_argument("--threads", type=int, default=1, help="BLAS/torch/XLA threads (1)")
_parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds, main net")
_parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sweep")
ARGS = _parser.parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
if ARGS.threads == 1:
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
# jax 0.10's CPU runtime ignores the XLA flags above and runs its matrix products on every
# core (measured: CPU time / wall time 1.94 on 2 cores), so the thread count is also enforced
# by pinning the whole process to that many cores, for every implementation alike.
if hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, _cores[: ARGS.threads])

import gc  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bpkit  # noqa: E402
from bpkit import F, Tensor, Value  # noqa: E402

try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(ARGS.threads)
except ImportError:  # the environment variables above already did it
    pass

ETA = 0.01


def init_params(sizes: list[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """W^l of shape (n_out, n_in) and b^l, float32, He-style scale."""
    rng = np.random.default_rng(seed)
    return [
        (
            (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(np.float32),
            np.zeros(n_out, np.float32),
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def make_data(n_in: int, n_out: int, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((batch, n_in)).astype(np.float32), rng.integers(0, n_out, batch)


# -- the implementations: each maker returns (step, forward_only) -------------------------


def make_numpy(params, x, y):
    """Hand-written backpropagation (the delta recursion, no autodiff)."""
    Ws = [W.copy() for W, _ in params]
    bs = [b.copy() for _, b in params]
    L = len(Ws)
    n = x.shape[0]
    rows = np.arange(n)

    def forward():
        a, zs, activations = x, [], [x]
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            z = a @ W.T + b  # z^l = W^l a^{l-1} + b^l, batched as rows
            a = np.maximum(z, 0)  # a^l = relu(z^l)
            zs.append(z)
            activations.append(a)
        z = a @ Ws[-1].T + bs[-1]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        return p, zs, activations

    def step(update=True):
        p, zs, activations = forward()
        delta = p  # delta^L = (softmax(z^L) - onehot(y)) / n
        delta[rows, y] -= 1
        delta /= n
        for l in range(L - 1, -1, -1):  # noqa: E741 (the book's layer index)
            nabla_W = delta.T @ activations[l]  # dC/dW^l = delta^l (a^{l-1})^T
            nabla_b = delta.sum(axis=0)  # dC/db^l = delta^l
            if l > 0:
                delta = (delta @ Ws[l]) * (zs[l - 1] > 0)  # delta^{l-1}
            if update:
                Ws[l] -= ETA * nabla_W
                bs[l] -= ETA * nabla_b

    return {"step": step, "fwd": forward, "fwd+bwd": lambda: step(update=False)}


def make_bpkit(params, x, y):
    """bpkit with plain Tensor operations: z = a W^T + b, relu, cross_entropy."""
    layers = [
        (Tensor(W.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True))
        for W, b in params
    ]
    ps = [p for layer in layers for p in layer]
    xt = Tensor(x)

    def forward():
        a = xt
        for W, b in layers[:-1]:
            a = (a @ W.T + b).relu()
        W, b = layers[-1]
        return F.cross_entropy(a @ W.T + b, y)

    def step(update=True):
        loss = forward()
        for p in ps:
            p.grad = None
        loss.backward()
        if update:
            for p in ps:
                p.data -= ETA * p.grad

    return {"step": step, "fwd": forward, "fwd+bwd": lambda: step(update=False)}


def make_bpkit_nn(params, x, y):
    """bpkit.nn.MLP (F.linear layers, W column-major) with the same weights copied in."""
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    model = bpkit.nn.MLP(sizes, activation="relu", dtype=params[0][0].dtype)
    ps = model.parameters()
    flat = [a for W, b in params for a in (W, b)]
    for p, a in zip(ps, flat, strict=True):
        p.data[...] = a  # in place, as Module.load does: keeps the layer's memory layout
    xt = Tensor(x)

    def forward():
        return F.cross_entropy(model(xt), y)

    def step():
        loss = forward()
        for p in ps:
            p.grad = None
        loss.backward()
        for p in ps:
            p.data -= ETA * p.grad

    return {"step": step}


def make_torch(params, x, y):
    import torch

    torch.set_num_threads(ARGS.threads)
    ps = []
    for W, b in params:
        ps += [torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def forward():
        a = xt
        for i in range(0, len(ps) - 2, 2):
            a = torch.relu(a @ ps[i].T + ps[i + 1])
        return torch.nn.functional.cross_entropy(a @ ps[-2].T + ps[-1], yt)

    def step():
        loss = forward()
        for p in ps:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p -= ETA * p.grad

    return {"step": step, "fwd": forward}


def make_jax(params, x, y):
    import jax
    import jax.numpy as jnp

    ps = [jnp.asarray(a) for W, b in params for a in (W, b)]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(ps):
        a = xj
        for i in range(0, len(ps) - 2, 2):
            a = jax.nn.relu(a @ ps[i].T + ps[i + 1])
        z = a @ ps[-2].T + ps[-1]
        logp = jax.nn.log_softmax(z, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, yj[:, None], axis=1))

    @jax.jit
    def update(ps):
        g = jax.grad(loss_fn)(ps)
        return [p - ETA * gp for p, gp in zip(ps, g, strict=True)]

    fwd = jax.jit(loss_fn)
    state = {"ps": ps}

    def step():
        state["ps"] = update(state["ps"])
        jax.block_until_ready(state["ps"])

    def forward():
        fwd(state["ps"]).block_until_ready()

    return {"step": step, "fwd": forward}


# -- timing -------------------------------------------------------------------------------


def interleaved(
    fns: dict[str, object], rounds: int, warmup: int = 3, collect: bool = False, inner: int = 3
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured round-robin: in every round each
    function runs ``inner`` times back to back and the fastest of those counts (a call that
    the OS pre-empted is not kept), in an order rotated from round to round. ``collect``
    runs the cyclic garbage collector, untimed, before each call (it stays on during the
    call, so an engine whose graphs are reference cycles pays to collect its garbage)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    items = list(fns.items())
    clock = time.perf_counter
    for r in range(rounds):
        order = items[r % len(items) :] + items[: r % len(items)]
        for k, f in order:
            best = float("inf")
            for _ in range(inner):
                if collect:
                    gc.collect()
                t0 = clock()
                f()
                best = min(best, clock() - t0)
            times[k].append(best)
    return times


def in_blocks(fns: dict[str, object], rounds: int, calls: int = 3) -> dict[str, list[float]]:
    """Seconds per call with the garbage collector left alone: in every round each function
    runs ``calls`` times in a row and the mean counts, so it pays for collecting its own
    garbage; what the previous function left is collected, untimed, before its block."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    items = list(fns.items())
    for r in range(rounds):
        for k, f in items[r % len(items) :] + items[: r % len(items)]:
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            times[k].append((time.perf_counter() - t0) / calls)
    return times


def median(times: dict[str, list[float]], k: str) -> float:
    return statistics.median(times[k])


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of time(a) / time(b): the calls of one round ran close together, under
    the same machine load, so this is steadier than a ratio of medians."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def available_makers() -> dict[str, object]:
    """bpkit, the NumPy reference, and the peers that are installed."""
    makers = {"bpkit": make_bpkit, "numpy (delta rule)": make_numpy}
    for name, mod, make in (("torch eager", "torch", make_torch), ("jax.jit", "jax", make_jax)):
        try:
            __import__(mod)
        except ImportError:
            print(f"  ({name}: {mod} not installed, skipped)")
            continue
        makers[name] = make
    return makers


def measure_net(sizes: list[int], rounds: int, makers: dict) -> dict[str, list[float]]:
    """Median seconds of '<impl> step' for every implementation, and of '<impl> fwd' and
    '<impl> fwd+bwd' for bpkit and the NumPy reference."""
    params = init_params(sizes)
    x, y = make_data(sizes[0], sizes[-1])
    fns = {}
    for name, make in makers.items():
        for part, f in make(params, x, y).items():
            if part == "step" or name in ("bpkit", "numpy (delta rule)"):
                fns[f"{name} {part}"] = f
    return interleaved(fns, rounds)


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:9.3f}"


def main_table(makers: dict) -> None:
    sizes = [784, 256, 256, 10]
    print(
        f"\n== MLP {'-'.join(map(str, sizes))}, ReLU, softmax cross-entropy, batch 128, "
        f"float32, one SGD step; {ARGS.threads} thread(s); {ARGS.rounds} rounds: medians of "
        f"times and of per-round ratios =="
    )
    t = measure_net(sizes, ARGS.rounds, dict(makers, **{"bpkit.nn.MLP": make_bpkit_nn}))
    goals = {
        "numpy (delta rule)": ("bpkit <= 1.10x numpy", 1.10),
        "torch eager": ("bpkit <= 1.00x torch", 1.00),
        "jax.jit": ("bpkit <= 1.10x jax", 1.10),
    }
    print(f"{'implementation':22s} {'ms/step':>9s} {'bpkit / it':>11s} {'nn.MLP / it':>12s}"
          "  goal (bpkit; nn.MLP)")
    for k in t:
        if not k.endswith(" step"):
            continue
        name = k[: -len(" step")]
        r = ratio(t, "bpkit step", k)
        r_nn = ratio(t, "bpkit.nn.MLP step", k)
        goal, limit = goals.get(name, ("", None))
        verdict = ""
        if limit is not None:
            verdict = "; ".join("met" if x <= limit else "NOT met" for x in (r, r_nn))
        print(f"{name:22s} {fmt_ms(median(t, k))} {r:10.2f}x {r_nn:11.2f}x  {goal} {verdict}")
    fb = ratio(t, "bpkit fwd+bwd", "bpkit fwd")
    fn = ratio(t, "numpy (delta rule) fwd+bwd", "numpy (delta rule) fwd")
    print(
        f"bpkit forward {fmt_ms(median(t, 'bpkit fwd'))} ms, forward+backward "
        f"{fmt_ms(median(t, 'bpkit fwd+bwd'))} ms: (forward+backward)/forward = {fb:.2f} "
        f"(goal <= 3.0: {'met' if fb <= 3.0 else 'NOT met'}); the NumPy reference's: {fn:.2f}"
    )


def sweep(makers: dict) -> None:
    rounds = max(10, ARGS.rounds // 3)
    widths = [64, 256, 1024] if ARGS.quick else [64, 256, 1024, 2048]
    depths = [2, 4, 8] if ARGS.quick else [2, 4, 8, 16]
    configs = [(f"784-{w}-{w}-10", [784, w, w, 10]) for w in widths]
    configs += [(f"784-256x{d}-10", [784] + [256] * d + [10]) for d in depths]
    names = [k for k in makers if k != "bpkit"]
    nn_peers = [n for n in ("numpy (delta rule)", "jax.jit") if n in names]
    makers = dict(makers, **{"bpkit.nn.MLP": make_bpkit_nn})
    print(
        f"\n== sweep: bpkit step time / peer step time (lower is better), batch 128, float32, "
        f"median of {rounds} (fewer for width 2048); nn/...: the same for bpkit.nn.MLP =="
    )
    short = {"numpy (delta rule)": "numpy", "torch eager": "torch", "jax.jit": "jax"}
    head = f"{'net':18s} {'bpkit ms':>9s} " + " ".join(f"{'/' + short[n]:>8s}" for n in names)
    head += "".join(f" {'nn/' + short[n]:>9s}" for n in nn_peers)
    print(head + f" {'(f+b)/f':>8s} {'numpy (f+b)/f':>14s}")
    for label, sizes in configs:
        r = rounds if sizes[1] < 2048 else max(5, rounds // 4)
        t = measure_net(sizes, r, makers)
        cells = " ".join(f"{ratio(t, 'bpkit step', n + ' step'):7.2f}x" for n in names)
        cells += "".join(f" {ratio(t, 'bpkit.nn.MLP step', n + ' step'):8.2f}x"
                         for n in nn_peers)
        fb = ratio(t, "bpkit fwd+bwd", "bpkit fwd")
        fn = ratio(t, "numpy (delta rule) fwd+bwd", "numpy (delta rule) fwd")
        print(f"{label:18s} {fmt_ms(median(t, 'bpkit step'))} {cells} {fb:8.2f} {fn:14.2f}")


# -- Hessian-vector products ----------------------------------------------------------------


def hvp_row(sizes: list[int]) -> None:
    """hvp / gradient of the MLP loss, for the parameters as a list of arrays and as one
    flat vector (each W and b a slice of it, as for a Newton or Krylov method)."""
    params = init_params(sizes)
    x, y = make_data(sizes[0], sizes[-1])
    arrays = [a for W, b in params for a in (W, b)]
    rng = np.random.default_rng(2)
    v = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]
    cuts = np.cumsum([a.size for a in arrays])[:-1]
    flat = np.concatenate([a.ravel() for a in arrays])
    vflat = np.concatenate([d.ravel() for d in v])

    def loss(ps):
        a = Tensor(x)
        for i in range(0, len(ps), 2):
            z = a @ ps[i].T + ps[i + 1]
            a = z.relu() if i + 2 < len(ps) else z
        return F.cross_entropy(a, y)

    def flat_loss(theta):
        parts = [theta[i:j] for i, j in zip([0, *cuts], [*cuts, None], strict=True)]
        return loss([p.reshape(a.shape) for p, a in zip(parts, arrays, strict=True)])

    def gradient():
        ps = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        loss(ps).backward()

    fns = {
        "grad": gradient,
        "hvp (list)": lambda: bpkit.hvp(loss, arrays, v),
        "grad (flat)": lambda: bpkit.grad(flat_loss)(flat),
        "hvp (flat)": lambda: bpkit.hvp(flat_loss, flat, vflat),
    }
    t = interleaved(fns, 5 if ARGS.quick else 15, warmup=1)
    print(
        f"{'-'.join(map(str, sizes)):16s} list of arrays: {ratio(t, 'hvp (list)', 'grad'):5.2f}x"
        f" ({fmt_ms(median(t, 'hvp (list)'))} ms); flat vector: "
        f"{ratio(t, 'hvp (flat)', 'grad (flat)'):5.2f}x ({fmt_ms(median(t, 'hvp (flat)'))} ms)"
    )


def hvp_table() -> None:
    print(
        "\n== Hessian-vector product of the MLP loss (batch 128, float32): time of bpkit.hvp / "
        "time of one gradient (goal <= 5) =="
    )
    for sizes in ([784, 256, 256, 10], [784, 64, 64, 10]):
        hvp_row(sizes)


# -- scalar engines: bpkit.Value vs micrograd 0.1.0 --------------------------------------


def value_mlp(sizes, seed, use_dot):
    rng = random.Random(seed)
    layers = [
        [([Value(rng.uniform(-1, 1)) for _ in range(n_in)], Value(0.0)) for _ in range(n_out)]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    params = [p for layer in layers for w, b in layer for p in (*w, b)]

    def model(x):
        a = x
        for li, layer in enumerate(layers):
            if use_dot:  # one n-ary node per neuron: z = sum_k w_k a_k + b
                zs = [Value.dot(w, a, b) for w, b in layer]
            else:  # binary nodes, as in micrograd
                zs = [sum((wk * ak for wk, ak in zip(w, a, strict=True)), b) for w, b in layer]
            a = zs if li == len(layers) - 1 else [z.relu() for z in zs]
        return a[0]

    return model, params


def scalar_table() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2)).tolist()
    Y = rng.standard_normal(100).tolist()
    sizes = [2, 16, 16, 1]

    def make_step(model, params):
        def step():
            total = None
            for x, y in zip(X, Y, strict=True):
                d = model(x) - y
                total = d * d if total is None else total + d * d
            loss = total * (1.0 / len(X))
            for p in params:
                p.grad = 0.0
            loss.backward()
            for p in params:
                p.data -= 0.01 * p.grad

        return step

    fns = {}
    model, params = value_mlp(sizes, 0, use_dot=True)
    fns["bpkit.Value (dot nodes)"] = make_step(model, params)
    model, params = value_mlp(sizes, 0, use_dot=False)
    fns["bpkit.Value (binary)"] = make_step(model, params)
    try:
        from micrograd.nn import MLP as MicroMLP

        random.seed(0)
        mm = MicroMLP(2, [16, 16, 1])
        fns["micrograd 0.1.0"] = make_step(mm, mm.parameters())
    except ImportError:
        print("  (micrograd not installed, skipped: pip install micrograd==0.1.0)")
    rounds = 5 if ARGS.quick else 15
    # The objects this script imported (NumPy, PyTorch, JAX: millions) are moved out of the
    # collector's reach, so that a full collection triggered by a step scans what the step
    # made, as in a program that imports bpkit or micrograd alone.
    gc.collect()
    gc.freeze()
    for collect, how in ((True, "gc.collect() before each call"),
                         (False, "gc left alone, 3 calls in a row, mean")):
        if collect:
            t = interleaved(fns, rounds, warmup=1, collect=True, inner=1)
        else:
            t = in_blocks(fns, rounds)
        print(
            f"\n== scalar engines: 2-16-16-1 ReLU MLP, MSE over 100 points, one SGD step, "
            f"median of {rounds}; {how} =="
        )
        for k in t:
            extra = ""
            if "micrograd 0.1.0" in t and k != "micrograd 0.1.0":
                speed = ratio(t, "micrograd 0.1.0", k)
                extra = f"  {speed:5.2f}x faster than micrograd (goal >= 3x: " + (
                    "met)" if speed >= 3 else "NOT met)"
                )
            print(f"{k:26s} {fmt_ms(median(t, k))} ms{extra}")


def main() -> None:
    import platform

    print(
        f"bpkit {bpkit.__version__}, NumPy {np.__version__}, Python {platform.python_version()}"
        f", threads={ARGS.threads}, OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    makers = available_makers()
    for name, mod in (("torch eager", "torch"), ("jax.jit", "jax")):
        if name in makers:
            m = __import__(mod)
            print(f"  {name}: {mod} {m.__version__}")
    main_table(makers)
    sweep(makers)
    hvp_table()
    scalar_table()


if __name__ == "__main__":
    main()
