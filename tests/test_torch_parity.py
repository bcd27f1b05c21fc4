"""numpylstm against PyTorch's nn.LSTM + nn.Linear in float64 (skipped where torch is not installed).

The model and layer tests run on both layer implementations, ``numpylstm/fast.py`` and ``numpylstm/textbook.py``.
"""

import numpy as np
import pytest

from numpylstm import LSTMModel, fast, params_from_torch, params_to_torch, textbook

torch = pytest.importorskip("torch")

TOL = 1e-10
IMPLS = {"fast": fast, "textbook": textbook}


def _numpy_sd(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _torch_pair(D, H, O, L, seed):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(D, H, num_layers=L, batch_first=True).double()
    head = torch.nn.Linear(H, O).double()
    return lstm, head


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("head_kind,loss_kind", [("last", "mse"), ("all", "softmax_ce"), ("all", "mse")])
def test_three_layer_model_matches_pytorch(head_kind, loss_kind, impl):
    N, T, D, H, O, L = 4, 7, 3, 5, 6, 3
    lstm, head = _torch_pair(D, H, O, L, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D))
    h0, c0 = rng.standard_normal((L, N, H)), rng.standard_normal((L, N, H))
    if loss_kind == "softmax_ce":
        y = rng.integers(0, O, (N, T))
    else:
        y = rng.standard_normal((N, O) if head_kind == "last" else (N, T, O))

    model = LSTMModel(D, H, O, num_layers=L, head=head_kind, loss=loss_kind, impl=impl)
    model.params = params_from_torch(_numpy_sd(lstm), _numpy_sd(head))
    state = np.stack([np.stack([c0[l], h0[l]]) for l in range(L)])  # (L, 2, N, H): (c, h)
    loss, grads, new_state, ig = model.loss_and_grads(x, y, state, input_grads=True)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    out, (hn, cn) = lstm(xt, (h0t, c0t))
    yt = head(out[:, -1] if head_kind == "last" else out)
    if loss_kind == "softmax_ce":
        lt = torch.nn.functional.cross_entropy(yt.reshape(-1, O), torch.tensor(y).reshape(-1))
    else:
        lt = torch.nn.functional.mse_loss(yt, torch.tensor(y))
    lt.backward()

    assert abs(loss - lt.item()) < TOL
    np.testing.assert_allclose(new_state[:, 0], cn.detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(new_state[:, 1], hn.detach().numpy(), rtol=0, atol=TOL)
    y_np, _ = model.forward(x, state)
    np.testing.assert_allclose(y_np, yt.detach().numpy(), rtol=0, atol=TOL)

    torch_grads = params_from_torch({k: p.grad.numpy() for k, p in lstm.named_parameters()},
                                    {k: p.grad.numpy() for k, p in head.named_parameters()})
    # b = bias_ih + bias_hh, so dL/db = dL/dbias_ih = dL/dbias_hh; params_from_torch summed the two grads.
    for l in range(L):
        torch_grads[f"lstm.{l}.b"] = lstm.get_parameter(f"bias_ih_l{l}").grad.numpy()
    assert set(torch_grads) == set(grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], torch_grads[k], rtol=0, atol=TOL, err_msg=k)
    np.testing.assert_allclose(ig["x"], xt.grad.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(ig["state"][:, 0], c0t.grad.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(ig["state"][:, 1], h0t.grad.numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("impl", IMPLS)
def test_functional_layer_matches_pytorch_with_final_state_gradients(impl):
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    N, T, D, H = 3, 9, 4, 6
    lstm, _ = _torch_pair(D, H, 1, 1, seed=1)
    p = params_from_torch(_numpy_sd(lstm))
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    R, RT, RC = rng.standard_normal((N, T, H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))

    hs, (hT, cT), cache = lstm_forward(x, h0, c0, p["lstm.0.Wx"], p["lstm.0.Wh"], p["lstm.0.b"])
    dx, dh0, dc0, dWx, dWh, db = lstm_backward(R, cache, RT, RC)

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    out, (hn, cn) = lstm(xt, (h0t[None], c0t[None]))
    ((out * torch.tensor(R)).sum() + (hn[0] * torch.tensor(RT)).sum() + (cn[0] * torch.tensor(RC)).sum()).backward()

    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(cT, cn[0].detach().numpy(), rtol=0, atol=TOL)
    for name, ours, theirs in [("dx", dx, xt.grad), ("dh0", dh0, h0t.grad), ("dc0", dc0, c0t.grad),
                               ("dWx", dWx, lstm.weight_ih_l0.grad.T), ("dWh", dWh, lstm.weight_hh_l0.grad.T),
                               ("db", db, lstm.bias_ih_l0.grad)]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=TOL, err_msg=name)


def test_params_round_trip_through_torch_state_dicts():
    lstm, head = _torch_pair(2, 3, 4, 2, seed=2)
    params = params_from_torch(_numpy_sd(lstm), _numpy_sd(head))
    lstm_sd, lin_sd = params_to_torch(params)
    lstm2, head2 = _torch_pair(2, 3, 4, 2, seed=99)
    lstm2.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_sd.items()})
    head2.load_state_dict({k: torch.from_numpy(v) for k, v in lin_sd.items()})
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    np.testing.assert_allclose(head(lstm(x)[0]).detach().numpy(), head2(lstm2(x)[0]).detach().numpy(),
                               rtol=0, atol=1e-14)
    again = params_from_torch(lstm_sd, lin_sd)
    for k in params:
        np.testing.assert_allclose(again[k], params[k], rtol=0, atol=1e-15)
