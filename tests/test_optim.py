"""Tests for numpylstm.optim: hand-computed steps, convergence on a quadratic, clipping, state round-trip."""

import math

import numpy as np
import pytest

from numpylstm.optim import SGD, Adagrad, Adam, Optimizer, clip_grad_norm

# f(theta) = 1/2 theta^T A theta - b^T theta, A symmetric positive definite; minimum at A^-1 b.
A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
B = np.array([1.0, -2.0, 0.5])
THETA_STAR = np.linalg.solve(A, B)


def quad_grad(theta):
    return A @ theta - B


# ----------------------------------------------------------------------------- hand-computed steps


def test_adam_first_two_steps_match_hand_computation():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta, g1, g2 = 0.5, 0.2, -0.7
    # expected, with plain Python floats straight from Kingma & Ba
    m = (1 - b1) * g1
    v = (1 - b2) * g1 * g1
    t1 = theta - lr * (m / (1 - b1)) / (math.sqrt(v / (1 - b2)) + eps)
    m = b1 * m + (1 - b1) * g2
    v = b2 * v + (1 - b2) * g2 * g2
    t2 = t1 - lr * (m / (1 - b1**2)) / (math.sqrt(v / (1 - b2**2)) + eps)

    p = {"w": np.array([theta])}
    opt = Adam(p, lr=lr, betas=(b1, b2), eps=eps)
    opt.step({"w": np.array([g1])})
    assert p["w"][0] == pytest.approx(t1, rel=1e-12, abs=0)
    opt.step({"w": np.array([g2])})
    assert p["w"][0] == pytest.approx(t2, rel=1e-12, abs=0)
    assert opt.t == 2


def test_adam_first_step_is_lr_times_sign_of_gradient():
    g = np.array([3.0, -1e-3, 50.0, -0.2, 1e-2])
    theta0 = np.array([0.1, -0.2, 0.3, 0.4, -0.5])
    p = {"w": theta0.copy()}
    Adam(p, lr=0.05).step({"w": g})
    np.testing.assert_allclose(theta0 - p["w"], 0.05 * np.sign(g), rtol=1e-4)


def test_sgd_plain_step_and_momentum_two_steps_hand_unrolled():
    lr, mu = 0.1, 0.9
    theta0 = np.array([1.0, -2.0, 0.5])
    g1 = np.array([0.3, -0.4, 2.0])
    g2 = np.array([-1.0, 0.25, 0.5])

    p = {"w": theta0.copy()}
    SGD(p, lr=lr).step({"w": g1})
    np.testing.assert_allclose(p["w"], theta0 - lr * g1, rtol=1e-15)

    # PyTorch convention, no dampening: v1 = g1, v2 = mu g1 + g2
    v1 = g1
    theta1 = theta0 - lr * v1
    v2 = mu * v1 + g2
    theta2 = theta1 - lr * v2
    p = {"w": theta0.copy()}
    opt = SGD(p, lr=lr, momentum=mu)
    opt.step({"w": g1})
    np.testing.assert_allclose(p["w"], theta1, rtol=1e-14)
    opt.step({"w": g2})
    np.testing.assert_allclose(p["w"], theta2, rtol=1e-14)
    np.testing.assert_allclose(opt.state_dict()["v/w"], v2, rtol=1e-14)


def test_adagrad_two_steps_hand_computed():
    lr, eps = 0.5, 1e-10
    theta, g1, g2 = 1.0, 2.0, -0.5
    G = g1 * g1
    t1 = theta - lr * g1 / (math.sqrt(G) + eps)
    G += g2 * g2
    t2 = t1 - lr * g2 / (math.sqrt(G) + eps)
    p = {"w": np.array([theta])}
    opt = Adagrad(p, lr=lr, eps=eps)
    opt.step({"w": np.array([g1])})
    assert p["w"][0] == pytest.approx(t1, rel=1e-14)
    opt.step({"w": np.array([g2])})
    assert p["w"][0] == pytest.approx(t2, rel=1e-14)


def test_changing_lr_takes_effect_on_next_step():
    p = {"w": np.array([1.0])}
    opt = SGD(p, lr=0.1)
    opt.lr = 0.5
    opt.step({"w": np.array([1.0])})
    assert p["w"][0] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- convergence


@pytest.mark.parametrize(
    "make, steps",
    [
        (lambda p: SGD(p, lr=0.1), 500),
        (lambda p: SGD(p, lr=0.05, momentum=0.9), 500),
        (lambda p: Adagrad(p, lr=0.5), 2000),
        (lambda p: Adam(p, lr=0.01), 3000),
    ],
    ids=["sgd", "sgd-momentum", "adagrad", "adam"],
)
def test_optimizers_minimise_spd_quadratic(make, steps):
    theta = np.zeros(3)
    p = {"theta": theta}
    opt = make(p)
    for _ in range(steps):
        opt.step({"theta": quad_grad(theta)})
    assert p["theta"] is theta  # updated in place, never rebound
    np.testing.assert_allclose(theta, THETA_STAR, atol=1e-4)


# ----------------------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_to_max_norm_and_keeps_direction():
    a = np.array([3.0, 4.0])
    b = np.array([[12.0]])
    grads = {"a": a, "b": b}
    n = clip_grad_norm(grads, 6.5)
    assert type(n) is float and n == pytest.approx(13.0, rel=1e-15)
    assert grads["a"] is a and grads["b"] is b  # in place
    after = math.sqrt(float(np.sum(a**2) + np.sum(b**2)))
    assert after == pytest.approx(6.5, rel=1e-12)
    np.testing.assert_allclose(a, [1.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(b, [[6.0]], rtol=1e-15)


def test_clip_grad_norm_random_direction_unchanged():
    rng = np.random.default_rng(0)
    grads = {"x": rng.normal(size=(4, 8)), "y": rng.normal(size=(8,)).astype(np.float32)}
    before = {k: g.astype(np.float64) for k, g in grads.items()}
    n = clip_grad_norm(grads, 0.3)
    n_ref = math.sqrt(sum(float(np.sum(g * g)) for g in before.values()))
    assert n == pytest.approx(n_ref, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], before[k] * (0.3 / n_ref), rtol=1e-6)
    assert grads["y"].dtype == np.float32


@pytest.mark.parametrize("max_norm", [20.0, 13.0])
def test_clip_grad_norm_leaves_small_gradients_exactly_untouched(max_norm):
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    copies = {k: g.copy() for k, g in grads.items()}
    n = clip_grad_norm(grads, max_norm)
    assert n == 13.0
    for k in grads:
        np.testing.assert_array_equal(grads[k], copies[k])


def test_clip_grad_norm_float32_large_values_do_not_overflow():
    grads = {"a": np.full(100, 1e20, dtype=np.float32)}
    n = clip_grad_norm(grads, 1.0)
    assert n == pytest.approx(1e21, rel=1e-6)
    assert np.linalg.norm(grads["a"].astype(np.float64)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("bad, expect", [(np.inf, math.isinf), (np.nan, math.isnan)])
def test_clip_grad_norm_reports_nonfinite_norm_without_raising(bad, expect):
    grads = {"a": np.array([1.0, bad]), "b": np.array([5.0])}
    n = clip_grad_norm(grads, 1.0)
    assert expect(n)
    np.testing.assert_array_equal(grads["b"], [5.0])  # left untouched so the caller can inspect/skip


# ----------------------------------------------------------------------------- state dict


def _make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "lstm.0.Wx": rng.normal(size=(3, 8)).astype(dtype),
        "lstm.0.b": rng.normal(size=(8,)).astype(dtype),
    }


def _grads(params, i):
    # deterministic, state-dependent and step-dependent gradients
    return {k: (np.tanh(p) + 0.1 * (i % 3)).astype(p.dtype) for k, p in params.items()}


OPTIMIZERS = {
    "sgd": lambda p: SGD(p, lr=0.05),
    "sgd-momentum": lambda p: SGD(p, lr=0.05, momentum=0.8),
    "adagrad": lambda p: Adagrad(p, lr=0.1),
    "adam": lambda p: Adam(p, lr=0.01),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_roundtrip_resumes_bit_identically(name, dtype, tmp_path):
    make = OPTIMIZERS[name]
    params = _make_params(dtype)
    opt = make(params)
    for i in range(5):
        opt.step(_grads(params, i))
    state = opt.state_dict()
    saved_params = {k: p.copy() for k, p in params.items()}
    for i in range(5, 10):
        opt.step(_grads(params, i))

    # flat, plain arrays that survive .npz without pickle
    assert state["t"].shape == () and state["t"].dtype == np.int64 and int(state["t"]) == 5
    assert all(isinstance(a, np.ndarray) for a in state.values())
    np.savez(tmp_path / "opt.npz", **state)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as z:
        loaded = {k: z[k] for k in z.files}

    fresh_params = {k: p.copy() for k, p in saved_params.items()}
    fresh = make(fresh_params)
    fresh.load_state_dict(loaded)
    for i in range(5, 10):
        fresh.step(_grads(fresh_params, i))

    for k in params:
        np.testing.assert_array_equal(fresh_params[k], params[k])
        assert fresh_params[k].dtype == dtype
    s1, s2 = opt.state_dict(), fresh.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])


def test_resume_without_state_differs():
    # guards the round-trip test: a fresh Adam (t = 0, zero moments) does NOT reproduce the trajectory
    params = _make_params(np.float64)
    opt = Adam(params, lr=0.01)
    for i in range(5):
        opt.step(_grads(params, i))
    fresh_params = {k: p.copy() for k, p in params.items()}
    fresh = Adam(fresh_params, lr=0.01)
    for i in range(5, 10):
        opt.step(_grads(params, i))
        fresh.step(_grads(fresh_params, i))
    assert not np.array_equal(fresh_params["lstm.0.Wx"], params["lstm.0.Wx"])


def test_state_dict_keys():
    p = _make_params(np.float64)
    assert set(Adam(p).state_dict()) == {"m/lstm.0.Wx", "m/lstm.0.b", "v/lstm.0.Wx", "v/lstm.0.b", "t"}
    assert set(Adagrad(p).state_dict()) == {"G/lstm.0.Wx", "G/lstm.0.b", "t"}
    assert set(SGD(p, momentum=0.5).state_dict()) == {"v/lstm.0.Wx", "v/lstm.0.b", "t"}
    assert set(SGD(p).state_dict()) == {"t"}


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda d: d.pop("m/lstm.0.b"), "m/lstm.0.b"),
        (lambda d: d.pop("t"), "'t'"),
        (lambda d: d.__setitem__("m/extra", np.zeros(2)), "m/extra"),
        (lambda d: d.__setitem__("v/lstm.0.Wx", np.zeros((8, 3))), "v/lstm.0.Wx"),
        (lambda d: d.__setitem__("t", np.array(1.5)), "'t'"),
        (lambda d: d.__setitem__("t", np.array([3])), "'t'"),
        (lambda d: d.__setitem__("v/lstm.0.b", -np.ones(8)), "v/lstm.0.b"),
        (lambda d: d.__setitem__("m/lstm.0.b", np.full(8, np.nan)), "m/lstm.0.b"),
    ],
    ids=["missing", "missing-t", "extra", "shape", "t-float", "t-shape", "negative-v", "nan"],
)
def test_load_state_dict_rejects_bad_state_naming_the_key(mutate, key):
    params = _make_params(np.float64)
    opt = Adam(params)
    opt.step(_grads(params, 0))
    d = opt.state_dict()
    before = opt.state_dict()
    mutate(d)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Adam(_make_params(np.float64)).load_state_dict(d)
    # and a failed load into an existing optimizer changes nothing
    with pytest.raises(ValueError):
        opt.load_state_dict(d)
    after = opt.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_load_state_dict_shape_message_has_both_shapes():
    opt = Adagrad(_make_params(np.float64))
    d = opt.state_dict()
    d["G/lstm.0.Wx"] = np.zeros((8, 3))
    with pytest.raises(ValueError, match=r"G/lstm\.0\.Wx.*\(8, 3\).*\(3, 8\)"):
        opt.load_state_dict(d)


# ----------------------------------------------------------------------------- dtype and in-place


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float32_params_stay_float32_and_are_updated_in_place(name):
    params = _make_params(np.float32)
    originals = dict(params)
    view = params["lstm.0.Wx"][0]  # someone else holding a view into the parameter
    before = view.copy()
    opt = OPTIMIZERS[name](params)
    grads64 = {k: np.ones(p.shape, dtype=np.float64) for k, p in params.items()}
    opt.step(grads64)
    opt.step(_grads(params, 1))
    for k, p in params.items():
        assert p is originals[k]
        assert p.dtype == np.float32
    assert not np.array_equal(view, before)  # the held view saw the update
    for k, a in opt.state_dict().items():
        if k != "t":
            assert a.dtype == np.float32, k


def test_base_class_is_shared():
    p = _make_params(np.float64)
    assert all(isinstance(o(p), Optimizer) for o in OPTIMIZERS.values())


# ----------------------------------------------------------------------------- validation


def _p():
    return {"w": np.zeros(3)}


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: SGD(_p(), lr=0.0), "lr"),
        (lambda: SGD(_p(), lr=-0.1), "lr"),
        (lambda: SGD(_p(), lr=float("nan")), "lr"),
        (lambda: SGD(_p(), lr=float("inf")), "lr"),
        (lambda: SGD(_p(), lr="0.1"), "lr"),
        (lambda: SGD(_p(), lr=True), "lr"),
        (lambda: SGD(_p(), momentum=1.0), "momentum"),
        (lambda: SGD(_p(), momentum=-0.1), "momentum"),
        (lambda: SGD(_p(), momentum=float("nan")), "momentum"),
        (lambda: Adagrad(_p(), lr=0.0), "lr"),
        (lambda: Adagrad(_p(), eps=0.0), "eps"),
        (lambda: Adagrad(_p(), eps=-1e-8), "eps"),
        (lambda: Adam(_p(), lr=-1.0), "lr"),
        (lambda: Adam(_p(), betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda: Adam(_p(), betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda: Adam(_p(), betas=(0.9,)), "betas"),
        (lambda: Adam(_p(), betas=0.9), "betas"),
        (lambda: Adam(_p(), eps=float("nan")), "eps"),
        (lambda: Adam(_p(), eps=0), "eps"),
        (lambda: clip_grad_norm({"w": np.ones(2)}, 0.0), "max_norm"),
        (lambda: clip_grad_norm({"w": np.ones(2)}, -1.0), "max_norm"),
        (lambda: clip_grad_norm({"w": np.ones(2)}, float("inf")), "max_norm"),
        (lambda: clip_grad_norm({"w": np.ones(2)}, float("nan")), "max_norm"),
        (lambda: SGD({}), "params"),
        (lambda: SGD({"w": np.zeros(3, dtype=np.int64)}), "params"),
        (lambda: SGD({"w": [0.0, 1.0]}), "params"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_setting_bad_lr_later_raises():
    opt = Adam(_p())
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0.0
    assert opt.lr == 1e-3


def test_read_only_params_refused():
    w = np.zeros(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="'w'"):
        SGD({"w": w})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize(
    "grads, pattern",
    [
        ({"a": np.ones(3)}, r"missing key 'b'"),
        ({"a": np.ones(3), "b": np.ones((2, 2)), "c": np.ones(1)}, r"extra key 'c'"),
        ({"a": np.ones(3), "b": np.ones((2, 3))}, r"'b'.*\(2, 3\).*\(2, 2\)"),
        ({"a": np.ones(3), "b": np.ones(4)}, r"'b'.*\(4,\).*\(2, 2\)"),
        ({"a": np.array([1.0, np.nan, 1.0]), "b": np.ones((2, 2))}, r"'a'.*NaN or infinite"),
        ({"a": np.ones(3), "b": np.array([[1.0, np.inf], [0.0, 0.0]])}, r"'b'.*NaN or infinite"),
    ],
    ids=["missing", "extra", "shape", "rank", "nan", "inf"],
)
def test_bad_grads_raise_and_leave_params_untouched(name, grads, pattern):
    params = {"a": np.arange(3.0), "b": np.ones((2, 2))}
    copies = {k: p.copy() for k, p in params.items()}
    opt = OPTIMIZERS[name](params)
    with pytest.raises(ValueError, match=pattern):
        opt.step(grads)
    assert opt.t == 0
    for k in params:
        np.testing.assert_array_equal(params[k], copies[k])
