"""The plain tanh RNN (numpylstm/rnn.py): central differences, PyTorch parity, token ids, the model's cell="rnn"."""

import numpy as np
import pytest

from numpylstm.gradcheck import LAYER_TOL, MODEL_TOL, check_arrays, check_model
from numpylstm.model import LSTMModel
from numpylstm.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward


def _layer(rng, N, T, D, H):
    return {
        "x": rng.standard_normal((N, T, D)),
        "h0": rng.standard_normal((N, H)),
        "Wx": rng.standard_normal((D, H)) / np.sqrt(D),
        "Wh": rng.standard_normal((H, H)) / np.sqrt(H),
        "b": rng.standard_normal(H) * 0.5,
    }


def check_rnn_layer(N, T, D, H, seed, final_state_grad=True, backward=rnn_backward):
    """Every output of rnn_backward against (G3) central differences, for L = <hs, R> + <hT, RT>."""
    rng = np.random.default_rng(seed)
    arrays = _layer(rng, N, T, D, H)
    R = rng.standard_normal((N, T, H))
    RT = rng.standard_normal((N, H)) if final_state_grad else np.zeros((N, H))
    args = [arrays[k] for k in ("x", "h0", "Wx", "Wh", "b")]

    def f():
        hs, hT, _ = rnn_forward(*args)
        return float(np.vdot(hs, R) + np.vdot(hT, RT))

    _, _, cache = rnn_forward(*args)
    grads = backward(R, cache, RT if final_state_grad else None)
    return {r.name: r for r in check_arrays(f, arrays, dict(zip(arrays, grads)), seed=seed)}


@pytest.mark.parametrize("N,T,D,H", [(1, 1, 1, 1), (2, 3, 4, 3), (3, 6, 2, 5), (1, 8, 3, 4)])
def test_rnn_gradients_match_central_differences(N, T, D, H):
    for final_state_grad in (True, False):
        rows = check_rnn_layer(N, T, D, H, seed=N + T + D + H, final_state_grad=final_state_grad)
        assert set(rows) == {"x", "h0", "Wx", "Wh", "b"}
        for r in rows.values():
            assert r.max_rel < LAYER_TOL, (r.name, r.max_rel, r.max_abs)


def test_the_check_fails_when_the_recurrent_gradient_is_dropped():
    """A test that cannot fail is a defect: drop (R9)'s dh_{t-1} (the classic "dh_next not carried") and the
    check must flag every gradient."""

    def broken(dhs, cache, dhT=None):
        dx, dh0, dWx, dWh, db = rnn_backward(dhs, cache, dhT)
        T = len(cache)
        for t in range(T):  # recompute the parameter gradients with every step on its own
            g = rnn_step_backward(dhs[:, t] + (dhT if dhT is not None and t == T - 1 else 0.0), cache[t])
            dx[:, t] = g[0]
            dWx, dWh, db = (dWx, dWh, db) if t else (g[2] * 0, g[3] * 0, g[4] * 0)
            dWx, dWh, db = dWx + g[2], dWh + g[3], db + g[4]
        return dx, dh0 * 0.0, dWx, dWh, db

    rows = check_rnn_layer(2, 4, 3, 3, seed=5, backward=broken)
    for name in ("x", "h0", "Wx", "Wh", "b"):
        assert rows[name].max_rel > 1e-2, name


def test_step_is_the_formula(rng):
    d = _layer(rng, 3, 1, 4, 5)
    h, _ = rnn_step_forward(d["x"][:, 0], d["h0"], d["Wx"], d["Wh"], d["b"])
    want = np.tanh(d["x"][:, 0] @ d["Wx"] + d["h0"] @ d["Wh"] + d["b"])
    np.testing.assert_allclose(h, want, rtol=0, atol=1e-15)


def test_token_ids_equal_one_hot_input(rng):
    V, N, T, H = 6, 3, 4, 5
    ids = rng.integers(0, V, (N, T))
    onehot = np.eye(V)[ids]
    d = _layer(rng, N, T, V, H)
    hs1, hT1, c1 = rnn_forward(ids, d["h0"], d["Wx"], d["Wh"], d["b"])
    hs2, hT2, c2 = rnn_forward(onehot, d["h0"], d["Wx"], d["Wh"], d["b"])
    np.testing.assert_allclose(hs1, hs2, rtol=0, atol=1e-15)
    R = rng.standard_normal((N, T, H))
    g1, g2 = rnn_backward(R, c1), rnn_backward(R, c2)
    assert g1[0] is None
    for a, b in zip(g1[1:], g2[1:]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("bad, match", [
    (dict(Wh=np.zeros((3, 4))), r"Wh must have shape \(H, H\)"),
    (dict(Wx=np.zeros((4, 4))), "Wx"),
    (dict(b=np.zeros(4)), "b"),
    (dict(h0=np.zeros((2, 4))), "h0"),
    (dict(x=np.zeros((2, 3))), "x"),
])
def test_bad_inputs_are_one_line_errors(rng, bad, match):
    args = dict(x=rng.standard_normal((2, 3, 4)), h0=None, Wx=np.zeros((4, 3)), Wh=np.zeros((3, 3)), b=np.zeros(3))
    args.update(bad)
    with pytest.raises(ValueError, match=match) as info:
        rnn_forward(**args)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="cache"):
        rnn_backward(np.zeros((1, 1, 1)), [])


@pytest.mark.parametrize("head, loss", [("last", "mse"), ("all", "softmax_ce")])
def test_rnn_model_gradients_match_central_differences(rng, head, loss):
    model = LSTMModel(3, 4, 5 if loss == "softmax_ce" else 2, num_layers=2, dropout=0.25, head=head, loss=loss,
                      seed=1, cell="rnn")
    assert set(model.params) == {"rnn.0.Wx", "rnn.0.Wh", "rnn.0.b", "rnn.1.Wx", "rnn.1.Wh", "rnn.1.b",
                                 "head.W", "head.b"}
    assert model.params["rnn.1.Wh"].shape == (4, 4)
    x = rng.standard_normal((2, 5, 3))
    y = rng.integers(0, 5, (2, 5)) if loss == "softmax_ce" else rng.standard_normal((2, 2))
    state = rng.standard_normal((2, 2, 2, 4)) * 0.5
    state[:, 0] = 0.0  # the c slot, unused by the RNN
    for r in check_model(model, x, y, state):
        assert r.max_rel < MODEL_TOL, (r.name, r.max_rel)


def test_rnn_model_state_and_checkpoint_config(tmp_path, rng):
    from numpylstm.checkpoint import model_from_checkpoint, save_checkpoint
    from numpylstm.optim import Adam

    model = LSTMModel(2, 3, 1, num_layers=2, cell="rnn", seed=3)
    x = rng.standard_normal((4, 6, 2))
    y, state = model.forward(x)
    assert np.all(state[:, 0] == 0.0)  # c stays zero
    assert model.config["cell"] == "rnn" and "cell" not in LSTMModel(2, 3, 1).config
    path = save_checkpoint(tmp_path / "r.npz", model, Adam(model.params), step=0)
    again, _ = model_from_checkpoint(path)
    assert again.cell == "rnn"
    np.testing.assert_array_equal(again.forward(x)[0], y)
    with pytest.raises(ValueError, match="cell"):
        LSTMModel(2, 3, 1, cell="gru2")


def test_rnn_matches_pytorch_to_1e10(rng):
    torch = pytest.importorskip("torch")
    N, T, D, H = 3, 7, 4, 5
    d = _layer(rng, N, T, D, H)
    net = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True, bias=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(d["Wx"].T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(d["Wh"].T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(d["b"]))
        net.bias_hh_l0.zero_()
    x = torch.from_numpy(d["x"]).requires_grad_(True)
    h0 = torch.from_numpy(d["h0"]).unsqueeze(0).requires_grad_(True)
    out, hT = net(x, h0)
    R, RT = rng.standard_normal((N, T, H)), rng.standard_normal((N, H))
    (out * torch.from_numpy(R)).sum().add((hT[0] * torch.from_numpy(RT)).sum()).backward()

    hs, hT_np, cache = rnn_forward(d["x"], d["h0"], d["Wx"], d["Wh"], d["b"])
    dx, dh0, dWx, dWh, db = rnn_backward(R, cache, RT)
    tol = dict(rtol=0, atol=1e-10)
    np.testing.assert_allclose(hs, out.detach().numpy(), **tol)
    np.testing.assert_allclose(hT_np, hT[0].detach().numpy(), **tol)
    np.testing.assert_allclose(dx, x.grad.numpy(), **tol)
    np.testing.assert_allclose(dh0, h0.grad[0].numpy(), **tol)
    np.testing.assert_allclose(dWx, net.weight_ih_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(dWh, net.weight_hh_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(db, net.bias_ih_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(db, net.bias_hh_l0.grad.numpy(), **tol)  # the same sum: one bias suffices
