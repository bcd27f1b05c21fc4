"""The functional layer: gradient checks, chunked BPTT, numerics, dtypes.

The tests that take ``impl`` run on both layer implementations: ``numpylstm/fast.py`` (whose pair
``numpylstm.lstm_forward`` / ``lstm_backward`` is) and ``numpylstm/textbook.py``.
"""

import warnings

import numpy as np
import pytest

from numpylstm import fast, lstm_backward, lstm_forward, sigmoid, textbook
from numpylstm.gradcheck import LAYER_TOL, check_layer, relative_error

IMPLS = {"fast": fast, "textbook": textbook}


@pytest.mark.parametrize(
    "N,T,D,H",
    [(1, 1, 1, 1), (2, 3, 4, 3), (3, 5, 10, 2), (1, 7, 3, 5), (4, 6, 5, 8), (5, 2, 1, 4)],
    ids=["N1T1D1H1", "small", "D>H", "N1", "H8", "T2"],
)
@pytest.mark.parametrize("impl", IMPLS)
def test_layer_gradients_match_central_differences(N, T, D, H, impl):
    for final_state_grads in (True, False):
        rows = check_layer(N, T, D, H, seed=N + T + D + H, final_state_grads=final_state_grads, impl=impl)
        assert {r.name for r in rows} == {"x", "h0", "c0", "Wx", "Wh", "b"}
        for r in rows:
            assert r.max_rel < LAYER_TOL, (r.name, r.max_rel, r.max_abs)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_detects_a_wrong_gradient(monkeypatch, impl):
    """The checker must be able to fail: drop the c_{t+1} -> c_t path (B7) and it must complain."""
    import numpylstm.gradcheck as gc

    where = gc if impl == "fast" else textbook  # the name check_layer looks up when it runs
    real = where.lstm_backward

    def broken(dhs, cache, dhT=None, dcT=None):
        dx, dh0, dc0, dWx, dWh, db = real(dhs, cache, dhT, dcT)
        return dx, dh0, dc0 * 0.0, dWx, dWh, db * 1.0001

    monkeypatch.setattr(where, "lstm_backward", broken)
    rows = {r.name: r for r in check_layer(2, 3, 4, 3, impl=impl)}
    assert rows["c0"].max_rel > 0.5
    assert rows["b"].max_rel > 1e-5
    assert rows["Wx"].max_rel < LAYER_TOL


def test_relative_error_uses_floor_for_tiny_entries():
    assert relative_error(1e-12, 2e-12) == pytest.approx(1e-9)
    assert relative_error(1.0, 1.0 + 1e-9) == pytest.approx(1e-9, rel=1e-6)


def _random_layer(rng, N, T, D, H, dtype=np.float64):
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    c0 = rng.standard_normal((N, H)).astype(dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal(4 * H).astype(dtype)
    return x, h0, c0, Wx, Wh, b


def _reference_step(x_t, h, c, Wx, Wh, b):
    """Textbook single step, written independently of textbook.py and fast.py (plain exp-based sigmoid)."""
    H = h.shape[1]
    a = x_t @ Wx + h @ Wh + b
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def test_forward_matches_textbook_step(rng):
    x, h0, c0, Wx, Wh, b = _random_layer(rng, 3, 6, 4, 5)
    hs, (hT, cT), _ = lstm_forward(x, h0, c0, Wx, Wh, b)
    h, c = h0, c0
    for t in range(x.shape[1]):
        h, c = _reference_step(x[:, t], h, c, Wx, Wh, b)
        np.testing.assert_allclose(hs[:, t], h, rtol=0, atol=1e-14)
    np.testing.assert_allclose(hT, h, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cT, c, rtol=0, atol=1e-14)
    assert hs.shape == (3, 6, 5)


def test_none_initial_state_means_zeros(rng):
    x, h0, c0, Wx, Wh, b = _random_layer(rng, 2, 3, 2, 3)
    z = np.zeros_like(h0)
    a = lstm_forward(x, None, None, Wx, Wh, b)[0]
    b2 = lstm_forward(x, z, z, Wx, Wh, b)[0]
    np.testing.assert_array_equal(a, b2)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("impl", IMPLS)
def test_chunked_bptt_equals_one_call(rng, k, impl):
    """Chunks of k steps, chaining state forward and (dhT, dcT) backward == one full-length call."""
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    N, T, D, H = 3, 7, 4, 5
    x, h0, c0, Wx, Wh, b = _random_layer(rng, N, T, D, H)
    dhs = rng.standard_normal((N, T, H))
    dhT, dcT = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    hs, (hT, cT), cache = lstm_forward(x, h0, c0, Wx, Wh, b)
    full = lstm_backward(dhs, cache, dhT, dcT)

    bounds = list(range(0, T, k)) + [T]
    h, c, caches, outs = h0, c0, [], []
    for s, e in zip(bounds[:-1], bounds[1:]):
        out, (h, c), ch = lstm_forward(x[:, s:e], h, c, Wx, Wh, b)
        outs.append(out)
        caches.append(ch)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), hs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h, hT, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c, cT, rtol=0, atol=1e-12)

    dh, dc = dhT, dcT
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dxs = []
    for (s, e), ch in reversed(list(zip(zip(bounds[:-1], bounds[1:]), caches))):
        dx, dh, dc, gWx, gWh, gb = lstm_backward(dhs[:, s:e], ch, dh, dc)
        dxs.insert(0, dx)
        dWx += gWx
        dWh += gWh
        db += gb
    chained = (np.concatenate(dxs, axis=1), dh, dc, dWx, dWh, db)
    for name, a, f in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"], chained, full):
        np.testing.assert_allclose(a, f, rtol=0, atol=1e-12, err_msg=name)


def test_sigmoid_is_stable_and_warning_free():
    z = np.array([-1e4, -1000.0, -30.0, 0.0, 30.0, 1000.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[[0, 1, 3, 5, 6]], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-15)
    mid = np.linspace(-8, 8, 33)
    np.testing.assert_allclose(sigmoid(mid), 1 / (1 + np.exp(-mid)), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_is_finite_and_warning_free_for_huge_preactivations(rng, impl):
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    x, h0, c0, Wx, Wh, b = _random_layer(rng, 2, 4, 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hs, (hT, cT), cache = lstm_forward(x * 1e4, h0, c0, Wx * 1e4, Wh, b)
        grads = lstm_backward(np.ones_like(hs), cache)
    assert np.all(np.isfinite(hs)) and all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_runs_in_float32_and_agrees_with_float64(rng, impl):
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    args64 = _random_layer(rng, 3, 5, 4, 6)
    args32 = [a.astype(np.float32) for a in args64]
    hs64, _, c64 = lstm_forward(*args64)
    hs32, (hT, cT), c32 = lstm_forward(*args32)
    assert hs32.dtype == hT.dtype == cT.dtype == np.float32
    np.testing.assert_allclose(hs32, hs64, atol=1e-5)
    dhs = rng.standard_normal(hs64.shape)
    g64 = lstm_backward(dhs, c64)
    g32 = lstm_backward(dhs.astype(np.float32), c32)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_forward_does_not_modify_inputs(rng, impl):
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    args = _random_layer(rng, 2, 3, 4, 3)
    copies = [a.copy() for a in args]
    _, _, cache = lstm_forward(*args)
    lstm_backward(np.ones((2, 3, 3)), cache, np.ones((2, 3)), np.ones((2, 3)))
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
