"""Issue 13: each case that once gave a wrong answer with no error (or left state broken,
or failed with an unclear message) now gives the right answer or a clear error."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from bpkit import F, Tensor, Value, jvp, nn, no_grad, optim
from bpkit.forward import Dual
from bpkit.tensor import debug, is_grad_enabled

# -- 1. a tensor changed in place between forward and backward ----------------------------


def test_in_place_change_before_backward_raises_naming_tensor_and_op():
    x = Tensor([1.0, 2.0], requires_grad=True, label="x")
    out = (x * x).sum()
    x.data += 3
    msg = r"input 0 of mul \(shape/dtype \(2,\) float64, label 'x'\) was modified in place"
    with pytest.raises(RuntimeError, match=msg):
        out.backward()
    assert x.grad is None  # checked before any rule ran: nothing accumulated


def test_readme_loop_backward_step_backward_raises():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    model = nn.MLP([3, 4, 2], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(Tensor(X)), y)
    loss.backward()
    opt.step()
    with pytest.raises(RuntimeError, match="input 1 of linear .*modified in place"):
        loss.backward()
    loss = F.cross_entropy(model(Tensor(X)), y)  # a fresh forward pass is fine
    opt.zero_grad()
    loss.backward()


def test_only_changes_after_recording_and_to_data_a_rule_reads_are_refused():
    """The engine compares each node's recorded_at with the tensors' changed_at (the edit
    clock): a change before the node was recorded, or to a tensor its rules do not read, or
    to an unrelated tensor, leaves the backward pass valid."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    w = Tensor([3.0, 4.0], requires_grad=True)
    other = Tensor([0.0], requires_grad=True)
    x.data += 1  # before recording: fine
    out = (x * w).sum() + (x + w).sum()
    other.data += 1  # unrelated
    out.backward()
    assert np.array_equal(x.grad, [4.0, 5.0]) and np.array_equal(w.grad, [3.0, 4.0])
    s = (x + w).sum()  # add reads no data: changing an input keeps its rule right
    x.data += 1
    s.backward()
    assert np.array_equal(w.grad, [4.0, 5.0])
    out = (x * w).sum()
    w.data += 1  # mul's rule for x reads w
    with pytest.raises(RuntimeError, match="input 1 of mul .* version 1 now"):
        out.backward()


def test_versions_count_setter_assign_set_flat_and_load():
    p = Tensor(np.zeros((2, 2)), requires_grad=True)
    assert p.version == 0
    p.data += 1
    p.data = p.data * 2
    p.assign(np.ones((2, 2)))
    optim.set_flat([p], np.arange(4.0))
    assert p.version == 4
    lin = nn.Linear(2, 1, seed=0)
    v = lin.W.version
    lin.load_state_dict(lin.state_dict())
    assert lin.W.version == v + 1


def test_views_share_the_version_count():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for view in (x.T, x.transpose(1, 0), x.reshape(3, 2), x[0]):
        out = (view * view).sum()
        x.data += 1
        with pytest.raises(RuntimeError, match="modified in place"):
            out.backward()
    out = (x * x).sum()
    x.detach().data += 1
    with pytest.raises(RuntimeError, match="modified in place"):
        out.backward()
    y = x.T
    out = (x * x).sum()
    y.data *= 2  # through the view: the base changed too
    with pytest.raises(RuntimeError, match="modified in place"):
        out.backward()


def test_change_to_an_output_that_the_rule_reads_raises():
    x = Tensor([0.5, 1.0], requires_grad=True)
    e = x.exp()
    e.data *= 2
    with pytest.raises(RuntimeError, match="the output of exp"):
        e.sum().backward()


def test_change_to_an_input_that_the_rule_does_not_read_is_allowed():
    x = Tensor([1.0, 2.0], requires_grad=True)
    out = (x + 1.0).sum()  # d(x+1)/dx = 1 reads no data
    x.data += 3
    out.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


# -- 2. ** with a Tensor or NumPy-scalar exponent at base 0 or exponent 0 -----------------


def test_pow_tensor_exponent_at_zero_base():
    w = Tensor(2.0, requires_grad=True)
    (Tensor([0.0, 1.0, 2.0]) ** w).sum().backward()
    assert w.grad == pytest.approx(4 * math.log(2))


def test_pow_numpy_integer_zero_exponent():
    y = Tensor([0.0, 3.0], requires_grad=True)
    (y ** np.int64(0)).sum().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 0.0])


def test_rpow_zero_base():
    z = Tensor(1.5, requires_grad=True)
    (0.0**z).backward()
    assert z.grad == 0.0


def test_pow_forward_mode_agrees():
    x = np.array([0.0, 1.0, 2.0])
    _, t = jvp(lambda w: (Tensor(x) ** w).sum(), 2.0, 1.0)
    assert t == pytest.approx(4 * math.log(2))
    _, t = jvp(lambda y: (y ** np.int64(0)).sum(), np.array([0.0, 3.0]), np.ones(2))
    assert t == 0.0


# -- 3. grad mode and debug mode per thread ------------------------------------------------


def test_no_grad_and_debug_are_per_thread():
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def other() -> None:
        with no_grad(), debug():
            inside.set()
            leave.wait(10)
        seen["after"] = is_grad_enabled()

    t = threading.Thread(target=other)
    t.start()
    try:
        assert inside.wait(10)
        assert is_grad_enabled()
        p = Tensor([1.0], requires_grad=True)
        (p * p).sum().backward()  # builds a graph here
        np.testing.assert_array_equal(p.grad, [2.0])
        opt = optim.SGD([p], lr=1.0)
        opt.step()
        np.testing.assert_array_equal(p.data, [-1.0])
        Tensor([np.inf]) + 1.0  # debug() of the other thread does not raise here
    finally:
        leave.set()
        t.join()
    assert seen["after"] is True


# -- 4, 5. Value: division by a subnormal, relu of NaN -------------------------------------


def test_value_division_by_subnormal():
    assert (Value(1e-310) / Value(1e-310)).data == 1.0
    assert (Value(0.0) / Value(5e-324)).data == 0.0
    a, b = Value(3e-310), Value(1e-310)
    q = a / b
    q.backward()
    assert q.data == pytest.approx(3.0)
    assert b.grad == -math.inf  # -a/b^2 = -3e310 overflows: the sign is right


def test_value_relu_keeps_nan_like_tensor():
    r = Value(math.nan).relu()
    assert math.isnan(r.data)
    assert np.isnan(Tensor([math.nan]).relu().data[0])


# -- 6. an optimiser given the same parameter twice ----------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.LevenbergMarquardt(ps),
])
def test_optimiser_refuses_a_repeated_parameter(make):
    p, q = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    with pytest.raises(ValueError, match="parameter 2 is the same Tensor as parameter 0"):
        make([p, q, p])


# -- 7. mean of an empty input -------------------------------------------------------------


def test_mean_of_empty_is_nan_in_both_modes():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    m = x.mean(axis=0)
    assert m.shape == (3,) and np.isnan(m.data).all()
    m.sum().backward()
    assert x.grad.shape == (0, 3)
    assert np.isnan(x.mean().data)
    _, t = jvp(lambda z: z.mean(axis=0), np.zeros((0, 3)), np.zeros((0, 3)))
    assert np.isnan(t).all()
    assert np.isnan(Dual(np.zeros((0, 3))).mean().primal)


def test_losses_of_an_empty_batch_are_nan_in_both_modes():
    z = Tensor(np.zeros((0, 4)), requires_grad=True)
    loss = F.cross_entropy(z, [])
    assert np.isnan(loss.item())
    loss.backward()
    assert z.grad.shape == (0, 4)
    assert np.isnan(F.cross_entropy(Dual(np.zeros((0, 4))), np.zeros(0, int)).primal)
    pred = Tensor(np.zeros((0, 2)), requires_grad=True)
    assert np.isnan(F.mse_loss(pred, np.zeros((0, 2))).item())
    assert np.isnan(F.mse_loss(Dual(np.zeros((0, 2))), np.zeros((0, 2))).primal)


# -- 8. F.linear with a (n_out, 1) bias ------------------------------------------------------


@pytest.mark.parametrize("a", [np.ones(3), np.ones((2, 3)), np.ones((4, 2, 3))])
def test_linear_rejects_a_column_bias_on_every_path(a):
    W, b = Tensor(np.ones((2, 3))), Tensor(np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"linear: bias of shape \(2, 1\), expected \(2,\)"):
        F.linear(Tensor(a), W, b)
    with pytest.raises(ValueError, match=r"linear: bias of shape \(2, 1\)"):
        F.linear(Dual(a), W, b)


# -- state a failure leaves broken ---------------------------------------------------------


def _tampered(tmp_path, model, change):
    state = model.state_dict()
    change(state)
    path = tmp_path / "m.npz"
    np.savez(path, **state)
    return path


@pytest.mark.parametrize("bad, match", [
    (np.array(["1.5", "2"]), "<U"),
    (np.ones(2, complex), "complex128"),
    (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), "datetime64"),
    (np.array([True, False]), "bool"),
])
def test_load_refuses_non_real_dtypes_and_changes_nothing(tmp_path, bad, match):
    model = nn.MLP([2, 3, 2], seed=0)
    before = model.state_dict()
    path = _tampered(tmp_path, model, lambda s: s.update({"layers.1.b": bad}))
    with pytest.raises(TypeError, match=f"layers.1.b: {match}"):
        model.load(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_all_or_nothing_on_shape_and_names(tmp_path):
    model = nn.MLP([2, 3, 2], seed=0)
    before = model.state_dict()
    path = _tampered(tmp_path, model, lambda s: s.update({"layers.1.b": np.ones(5)}))
    with pytest.raises(ValueError, match=r"layers.1.b: expected \(2,\), got \(5,\)"):
        model.load(path)
    path = _tampered(tmp_path, model, lambda s: s.pop("layers.1.b"))
    with pytest.raises(ValueError, match="missing"):
        model.load(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_refuses_pickle_and_npy(tmp_path):
    model = nn.MLP([2, 3, 2], seed=0)
    path = tmp_path / "obj.npz"
    np.savez(path, **{**model.state_dict(), "layers.0.b": np.array([1, "a", None], object)})
    with pytest.raises(ValueError, match="pickle"):
        model.load(path)
    np.save(tmp_path / "w.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"single array \(.npy\)"):
        model.load(tmp_path / "w.npy")


def test_load_state_dict_accepts_tensors():
    a, b = nn.Linear(2, 3, seed=0), nn.Linear(2, 3, seed=1)
    b.load_state_dict({"W": a.W, "b": a.b})
    np.testing.assert_array_equal(b.W.data, a.W.data)
    assert b.W.data.flags.f_contiguous  # written in place: the layout is kept


def test_levenberg_marquardt_rank_deficient_over_many_steps():
    p = Tensor([1.0, 0.5], requires_grad=True)
    opt = optim.LevenbergMarquardt([p])
    residual = lambda: ((p[0] + p[1]) ** 2).reshape(1)  # noqa: E731  J = [2s, 2s]: rank 1
    losses = [opt.step(residual) for _ in range(400)]
    assert opt.mu >= opt.mu_min == 1e-12
    assert losses[-1] < 1e-20 and np.isfinite(p.data).all()


def test_levenberg_marquardt_singular_system_falls_back_to_lstsq(monkeypatch):
    def singular(*args):
        raise np.linalg.LinAlgError("Singular matrix")

    p = Tensor([1.0, 2.0], requires_grad=True)
    opt = optim.LevenbergMarquardt([p])
    monkeypatch.setattr(np.linalg, "solve", singular)
    loss = opt.step(lambda: p - Tensor([0.0, 0.0]))
    assert opt.accepted and loss < 2.5


# -- errors that should say what went wrong ------------------------------------------------


def test_pools_and_conv_at_batch_zero():
    x = Tensor(np.zeros((0, 2, 4, 4)))
    assert nn.MaxPool2d(2)(x).shape == (0, 2, 2, 2)
    assert nn.AvgPool2d(2)(x).shape == (0, 2, 2, 2)
    assert nn.Conv2d(2, 3, 3, seed=0)(x).shape == (0, 3, 2, 2)


@pytest.mark.parametrize("op", ["max", "softmax", "log_softmax"])
def test_reductions_over_an_empty_axis_say_so(op):
    x = Tensor(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=rf"{op}: axis 1 of a tensor of shape \(3, 0\) is empty"):
        getattr(x, op)(axis=1) if op == "max" else getattr(x, op)(1)
    assert getattr(Tensor(np.zeros((0, 3))), op)(axis=1).shape[0] == 0


def test_value_pow_overflow_and_zero_base():
    assert (Value(1e200) ** 2).data == math.inf == (Value(1e200) * Value(1e200)).data
    assert (Value(-1e200) ** 3).data == -math.inf
    with pytest.raises(ValueError, match="pow: Value base must be > 0"):
        Value(0.0) ** Value(-1.0)


def test_empty_index_lists():
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    y = x[[]]
    assert y.shape == (0, 2)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((3, 2)))


def test_conv_kernel_size_must_be_int():
    with pytest.raises(ValueError, match="Conv2d: kernel_size must be an int or a pair of ints"):
        nn.Conv2d(2, 3, 2.5)


def test_zero_d_tensor_len_iter_bool():
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        list(Tensor(5.0))
    with pytest.raises(TypeError, match="len"):
        len(Tensor(5.0))
    assert not bool(Tensor(0.0)) and bool(Tensor([2.0]))
    with pytest.raises(ValueError, match=r"truth value of a Tensor of shape \(2,\)"):
        bool(Tensor([1.0, 2.0]))
    assert [t.item() for t in Tensor([1.0, 2.0])] == [1.0, 2.0]
