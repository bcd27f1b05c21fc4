"""numpylstm/gru.py: PyTorch's GRU. Equal to torch.nn.GRU in float64 to 1e-10 (outputs, final state and every
gradient, input and h0 included), the step functions against the formulas, central differences, token ids."""

from __future__ import annotations

import numpy as np
import pytest

from numpylstm import cells
from numpylstm.gradcheck import LAYER_TOL, check_arrays
from numpylstm.gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward


def gru_params(rng, D, H, dtype=np.float64):
    return {"Wx": rng.standard_normal((D, 3 * H)) / np.sqrt(D), "Wh": rng.standard_normal((H, 3 * H)) / np.sqrt(H),
            "bx": rng.standard_normal(3 * H) * 0.5, "bh": rng.standard_normal(3 * H) * 0.5}


def sig(z):
    return 1 / (1 + np.exp(-z))


def test_step_is_pytorchs_formula(rng):
    """r, z, n, h' exactly as torch.nn.GRU's documentation writes them (the reset after the product)."""
    N, D, H = 3, 4, 2
    P = gru_params(rng, D, H)
    x, h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    W_i, W_h, b_i, b_h = P["Wx"].T, P["Wh"].T, P["bx"], P["bh"]  # PyTorch's weight_ih, weight_hh, biases
    blk = lambda a, k: a[k * H:(k + 1) * H]  # noqa: E731
    r = sig(x @ blk(W_i, 0).T + blk(b_i, 0) + h @ blk(W_h, 0).T + blk(b_h, 0))
    z = sig(x @ blk(W_i, 1).T + blk(b_i, 1) + h @ blk(W_h, 1).T + blk(b_h, 1))
    n = np.tanh(x @ blk(W_i, 2).T + blk(b_i, 2) + r * (h @ blk(W_h, 2).T + blk(b_h, 2)))
    want = (1 - z) * n + z * h
    got, _ = gru_step_forward(x, h, P["Wx"], P["Wh"], P["bx"], P["bh"])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    # Cho et al. 2014's placement (reset before the product) is a different function
    n_cho = np.tanh(x @ blk(W_i, 2).T + blk(b_i, 2) + (r * h) @ blk(W_h, 2).T + blk(b_h, 2))
    assert np.abs((1 - z) * n_cho + z * h - got).max() > 1e-3


@pytest.mark.parametrize("tokens", [False, True])
def test_step_gradients_match_central_differences(tokens, rng):
    N, D, H = 3, 4, 2
    arrays = {"x_t": rng.standard_normal((N, D)), "h_prev": rng.standard_normal((N, H)), **gru_params(rng, D, H)}
    ids = rng.integers(0, D, N)
    R = rng.standard_normal((N, H))
    names = ("x_t", "h_prev", "Wx", "Wh", "bx", "bh")

    def args():
        return [ids if tokens and k == "x_t" else arrays[k] for k in names]

    def f():
        return float(np.vdot(gru_step_forward(*args())[0], R))

    grads = dict(zip(names, gru_step_backward(R, gru_step_forward(*args())[1])))
    if tokens:
        assert grads.pop("x_t") is None
        del arrays["x_t"]
    for r in check_arrays(f, arrays, grads, gates=dict.fromkeys(("Wx", "Wh", "bx", "bh"), H), gate_names="rzn"):
        assert r.max_rel < LAYER_TOL, (r.name, r.max_rel)


def test_sequence_functions_match_central_differences(rng):
    N, T, D, H = 2, 5, 3, 4
    arrays = {"x": rng.standard_normal((N, T, D)), "h0": rng.standard_normal((N, H)), **gru_params(rng, D, H)}
    R, RT = rng.standard_normal((N, T, H)), rng.standard_normal((N, H))
    names = ("x", "h0", "Wx", "Wh", "bx", "bh")

    def f():
        hs, hT, _ = gru_forward(*(arrays[k] for k in names))
        return float(np.vdot(hs, R) + np.vdot(hT, RT))

    grads = gru_backward(R, gru_forward(*(arrays[k] for k in names))[2], RT)
    assert len(grads) == 6
    for r in check_arrays(f, arrays, dict(zip(names, grads))):
        assert r.max_rel < LAYER_TOL, (r.name, r.max_rel)


def test_sequence_functions_are_the_cell(rng):
    N, T, D, H = 2, 4, 3, 2
    P = gru_params(rng, D, H)
    x, h0, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, T, H))
    hs, hT, cache = gru_forward(x, h0, P["Wx"], P["Wh"], P["bx"], P["bh"])
    dx, dh0, dWx, dWh, dbx, dbh = gru_backward(dhs, cache)
    hs2, (hT2, cT2), cache2 = cells.get("gru").forward(x, h0, None, P)
    dx2, dh02, dc02, dp = cells.get("gru").backward(dhs, cache2)
    assert cT2 is None and dc02 is None
    for u, v in ((hs, hs2), (hT, hT2), (dx, dx2), (dh0, dh02), (dWx, dp["Wx"]), (dWh, dp["Wh"]), (dbx, dp["bx"]),
                 (dbh, dp["bh"])):
        assert np.array_equal(u, v)


def test_the_sequence_is_the_step_loop(rng):
    N, T, D, H = 2, 4, 3, 2
    P = gru_params(rng, D, H)
    x = rng.standard_normal((N, T, D))
    hs, hT, _ = gru_forward(x, None, P["Wx"], P["Wh"], P["bx"], P["bh"])
    h = np.zeros((N, H))
    for t in range(T):
        h, _ = gru_step_forward(x[:, t], h, P["Wx"], P["Wh"], P["bx"], P["bh"])
        assert np.array_equal(hs[:, t], h)
    assert np.array_equal(hT, h)


def _torch_gru(torch, P, D, H):
    gru = torch.nn.GRU(D, H, batch_first=True).double()
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(P["Wx"].T.copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(P["Wh"].T.copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(P["bx"]))
        gru.bias_hh_l0.copy_(torch.from_numpy(P["bh"]))
    return gru


@pytest.mark.parametrize("N,T,D,H", [(1, 1, 1, 1), (3, 7, 4, 5), (2, 12, 3, 8)])
def test_equals_torch_nn_gru(N, T, D, H):
    """Outputs, final state and every gradient (weights, biases, input, h0) to 1e-10 in float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(N * 100 + T)
    P = gru_params(rng, D, H)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    R, RT = rng.standard_normal((N, T, H)), rng.standard_normal((N, H))

    gru = _torch_gru(torch, P, D, H)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    out, hn = gru(xt, h0t)
    (out * torch.from_numpy(R)).sum().add((hn[0] * torch.from_numpy(RT)).sum()).backward()

    hs, hT, cache = gru_forward(x, h0, P["Wx"], P["Wh"], P["bx"], P["bh"])
    dx, dh0, dWx, dWh, dbx, dbh = gru_backward(R, cache, RT)
    pairs = {"hs": (hs, out.detach().numpy()), "hT": (hT, hn[0].detach().numpy()),
             "dx": (dx, xt.grad.numpy()), "dh0": (dh0, h0t.grad[0].numpy()),
             "dWx": (dWx, gru.weight_ih_l0.grad.numpy().T), "dWh": (dWh, gru.weight_hh_l0.grad.numpy().T),
             "dbx": (dbx, gru.bias_ih_l0.grad.numpy()), "dbh": (dbh, gru.bias_hh_l0.grad.numpy())}
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert np.abs(ours - theirs).max() <= 1e-10 * max(1.0, np.abs(theirs).max()), name


def test_torch_comparison_can_fail():
    """The comparison sees a GRU that applies the reset before the product (Cho et al. 2014)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    D, H, N, T = 2, 3, 2, 4
    P = gru_params(rng, D, H)
    x = rng.standard_normal((N, T, D))
    out, _ = _torch_gru(torch, P, D, H)(torch.from_numpy(x))
    h, hs = np.zeros((N, H)), []
    for t in range(T):
        ax, Wh = x[:, t] @ P["Wx"] + P["bx"], P["Wh"]
        r = sig(ax[:, :H] + h @ Wh[:, :H] + P["bh"][:H])
        z = sig(ax[:, H:2 * H] + h @ Wh[:, H:2 * H] + P["bh"][H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + (r * h) @ Wh[:, 2 * H:] + P["bh"][2 * H:])
        h = (1 - z) * n + z * h
        hs.append(h)
    assert np.abs(np.stack(hs, 1) - out.detach().numpy()).max() > 1e-3


def test_token_ids_and_float32(rng):
    V, N, T, H = 6, 3, 4, 2
    P = gru_params(rng, V, H)
    ids = rng.integers(0, V, (N, T))
    dhs = rng.standard_normal((N, T, H))
    hs, _, cache = gru_forward(ids, None, P["Wx"], P["Wh"], P["bx"], P["bh"])
    grads = gru_backward(dhs, cache)
    hs1, _, cache1 = gru_forward(np.eye(V)[ids], None, P["Wx"], P["Wh"], P["bx"], P["bh"])
    grads1 = gru_backward(dhs, cache1)
    assert grads[0] is None
    np.testing.assert_allclose(hs, hs1, rtol=0, atol=1e-15)
    for u, v in zip(grads[1:], grads1[1:]):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-14)
    P32 = {k: v.astype(np.float32) for k, v in P.items()}
    hs32, hT32, cache32 = gru_forward(ids, None, P32["Wx"], P32["Wh"], P32["bx"], P32["bh"])
    g32 = gru_backward(dhs, cache32)
    assert hs32.dtype == hT32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32[1:])
    np.testing.assert_allclose(hs32, hs, rtol=1e-5, atol=1e-6)
