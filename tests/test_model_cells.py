"""LSTMModel(cell=name) for every cell of numpylstm.cells: gradients, state layout, init, checkpoints, PyTorch
interop, the engines that run the stack, and the demos' --cell flag."""

from __future__ import annotations


import numpy as np
import pytest

from demo_cli import run_demo
from numpylstm import LSTMModel, cells, engines, params_from_torch, params_to_torch
from numpylstm.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from numpylstm.gradcheck import MODEL_TOL, check_model
from numpylstm.optim import Adam

NAMES = cells.NAMES
NO_C = [name for name in NAMES if not cells.get(name).has_cell_state]


def tiny(cell, head="last", loss="mse", tokens=False, dropout=0.25, L=2, T=3, **kw):
    """A float64 model and a batch: x (2, T, 3) floats or ids < 3, targets for the head and loss, a state."""
    O = 4 if loss == "softmax_ce" else 2
    model = LSTMModel(3, 3, O, num_layers=L, dropout=dropout, head=head, loss=loss, seed=1, cell=cell, **kw)
    rng = np.random.default_rng(5)
    N = 2
    x = rng.integers(0, 3, (N, T)) if tokens else rng.standard_normal((N, T, 3))
    if loss == "softmax_ce":
        y = rng.integers(0, O, (N,) if head == "last" else (N, T))
    else:
        y = rng.standard_normal((N, O) if head == "last" else (N, T, O))
    state = rng.standard_normal((L, 2, N, 3)) * 0.5
    return model, x, y, state


# ------------------------------------------------------------------------------------------ gradients
BOTH = [("last", "mse", False), ("all", "softmax_ce", True)]  # both heads, both losses, token ids once
CROSSED = [("all", "mse", False), ("last", "softmax_ce", False)]  # the other pairings, for a few cells


@pytest.mark.parametrize("cell, head, loss, tokens",
                         [(c, *case) for c in NAMES for case in BOTH]
                         + [(c, *case) for c in ("lstm", "gru", "peephole") if c in NAMES for case in CROSSED])
def test_model_gradients_of_every_cell_match_central_differences(cell, head, loss, tokens):
    """float64, 2 layers, dropout 0.25 with fixed masks, a nonzero initial state: every parameter, x and the
    state within MODEL_TOL; rows of fused gate axes report the worst error per gate block."""
    model, x, y, state = tiny(cell, head, loss, tokens, T=2)  # T = 2: step 2 reads step 1 (fgr: its gates too)
    masks = model.make_masks(2, 2)
    assert any((m == 0).any() for m in masks)  # dropout really drops something
    rows = check_model(model, x, y, state, masks=masks, max_entries=30)  # arrays above 30 entries: 30 of them
    names = [r.name for r in rows]
    assert names[: len(model.params)] == list(model.params) and "initial state" in names
    assert ("input x" in names) == (not tokens)
    bad = [(r.name, r.max_rel) for r in rows if not r.max_rel < MODEL_TOL]
    assert not bad, bad
    fused = [r for r in rows if r.name.startswith(f"{cell}.0.W")]
    assert all((r.gates is not None) == (cell != "rnn") for r in fused)


def test_the_model_check_fails_on_a_wrong_gradient(monkeypatch):
    """A checker that cannot fail proves nothing: a GRU model whose Wh gradient is off by 1% is caught."""
    model, x, y, state = tiny("gru")
    real = model.loss_and_grads

    def broken(*args, **kw):
        out = real(*args, **kw)
        out[1]["gru.1.Wh"] = out[1]["gru.1.Wh"] * 1.01
        return out
    monkeypatch.setattr(model, "loss_and_grads", broken)
    rows = {r.name: r.max_rel for r in check_model(model, x, y, state, masks=model.make_masks(2, 3))}
    assert rows["gru.1.Wh"] > MODEL_TOL and rows["gru.0.Wh"] < MODEL_TOL


# ------------------------------------------------------------------------------------------ layout and init
@pytest.mark.parametrize("cell", NAMES)
def test_parameters_state_and_init_follow_the_cell(cell):
    c = cells.get(cell)
    model = LSTMModel(3, 4, 2, num_layers=2, cell=cell, forget_bias=1.0, seed=7)
    want = {}
    for l, D in enumerate((3, 4)):
        want.update({f"{cell}.{l}.{k}": tuple(s) for k, s in c.param_shapes(D, 4).items()})
    want.update({"head.W": (4, 2), "head.b": (2,)})
    assert model.param_shapes() == want and list(model.params) == list(want)
    # uniform(-1/sqrt(H), 1/sqrt(H)) in param_shapes order, forget_bias on the cell's forget block only
    rng = np.random.default_rng(7)
    for name, shape in want.items():
        p = rng.uniform(-0.5, 0.5, size=shape)
        if c.forget_block is not None and name.startswith(f"{cell}.") and name.endswith("." + c.forget_block[0]):
            j = c.forget_block[1]
            p[..., 4 * j : 4 * (j + 1)] += 1.0
        np.testing.assert_array_equal(model.params[name], p, err_msg=name)
    x = np.random.default_rng(0).standard_normal((5, 6, 3))
    y, state = model.forward(x)
    assert y.shape == (5, 2) and state.shape == (2, 2, 5, 4)
    assert (not state[:, 0].any()) == (cell in NO_C)  # the c slot is zero exactly for the cells without c
    y2, state2 = model.forward(x[:, 3:], model.forward(x[:, :3])[1])  # stateful: continue the sequence
    if cell == "fgr":  # its previous gates [i, f, o]_{t-1} are not part of the (c, h) state: they restart at 0
        assert not np.allclose(y2, y)
        return
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state2, state, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", [n for n in NAMES if n != "lstm"])
def test_other_cells_run_their_own_code_and_ignore_impl(cell):
    model, x, y, state = tiny(cell)
    assert isinstance(model._engine(model._time_major_input(x), None), engines.CellLayers)
    fast = model.loss_and_grads(x, y, state, train=False, input_grads=True)
    model.impl = "textbook"
    slow = model.loss_and_grads(x, y, state, train=False, input_grads=True)
    assert fast[0] == slow[0]
    for k in fast[1]:
        np.testing.assert_array_equal(fast[1][k], slow[1][k])


def test_the_standard_lstm_picks_its_engine_in_one_place():
    x = np.zeros((20, 64, 1))
    assert isinstance(engines.choose(LSTMModel(1, 20, 1, num_layers=2), x, None, engines.Scratch(2)),
                      engines.Wavefront)
    assert isinstance(engines.choose(LSTMModel(1, 20, 1, num_layers=1), x, None, engines.Scratch(1)),
                      engines.FastLayers)
    assert isinstance(engines.choose(LSTMModel(1, 20, 1, num_layers=2, impl="textbook"), x, None, engines.Scratch(2)),
                      engines.CellLayers)


def test_the_lstm_cell_equals_every_engine_of_the_standard_lstm():
    """The cells' "lstm" (textbook.py) and fast.py / wavefront.py: the same numbers."""
    model, x, y, state = tiny("lstm", "all", "mse", dropout=0.0)
    runs = []
    for kw in (dict(impl="textbook"), dict(wavefront=False), dict(wavefront=True)):
        for k, v in kw.items():
            setattr(model, k, v)
        runs.append(model.loss_and_grads(x, y, state, input_grads=True))
        model.impl, model.wavefront = "fast", "auto"
    for other in runs[1:]:
        np.testing.assert_allclose(other[0], runs[0][0], rtol=1e-13)
        for k in runs[0][1]:
            np.testing.assert_allclose(other[1][k], runs[0][1][k], rtol=1e-11, atol=1e-13, err_msg=k)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("cell", ["gru", "nfg"])
def test_checkpoints_store_the_cell_and_refuse_another(tmp_path, cell):
    model, x, y, state = tiny(cell)
    path = save_checkpoint(tmp_path / "m.npz", model, Adam(model.params), step=3)
    again, ck = model_from_checkpoint(path)
    assert again.cell == cell and ck.model_config["cell"] == cell
    np.testing.assert_array_equal(again.forward(x)[0], model.forward(x)[0])
    lstm = LSTMModel(3, 3, 2, num_layers=2, dropout=0.25, seed=1)
    with pytest.raises(ValueError, match=rf"another architecture: cell='{cell}' \(model has 'lstm'\)"):
        load_checkpoint(path, lstm)
    with pytest.raises(ValueError, match=rf"cell='lstm' \(model has '{cell}'\)"):
        load_checkpoint(save_checkpoint(tmp_path / "l.npz", lstm), model)


# ------------------------------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_params_round_trip_through_torch_state_dicts(cell):
    model = LSTMModel(3, 4, 2, num_layers=2, cell=cell, seed=2)
    sd, lin = params_to_torch(model.params)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    assert sd["weight_ih_l0"].shape == (G * 4, 3) and sd["weight_hh_l1"].shape == (G * 4, 4)
    back = params_from_torch(sd, lin, cell=cell)
    assert list(back) == list(model.params)
    for k, p in model.params.items():
        np.testing.assert_array_equal(back[k], p)
    model.params = back  # the same names, shapes and dtype: accepted


@pytest.mark.parametrize("cell", [n for n in NAMES if n not in ("lstm", "gru", "rnn")])
def test_cells_without_a_torch_module_are_refused(cell):
    model = LSTMModel(3, 4, 2, cell=cell)
    with pytest.raises(ValueError, match=rf"^cell '{cell}' has no PyTorch module"):
        params_to_torch(model.params)
    with pytest.raises(ValueError, match=rf"^cell '{cell}' has no PyTorch module"):
        params_from_torch({}, cell=cell)


def test_a_gru_state_dict_read_as_an_lstm_says_which_cell_it_is():
    sd, _ = params_to_torch(LSTMModel(3, 4, 2, cell="gru").params)
    with pytest.raises(ValueError, match=r"nn.GRU's is \(3H, H\): pass cell='gru'"):
        params_from_torch(sd)


def test_gru_model_equals_torch_gru_and_linear():
    """A 2-layer GRU model with weights from torch.nn.GRU + nn.Linear: loss, outputs, final state and every
    gradient (weights, input, initial state) equal to ~1e-10 in float64."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    N, T, D, H, O, L = 3, 5, 4, 6, 2, 2
    gru = torch.nn.GRU(D, H, num_layers=L, batch_first=True).double()
    head = torch.nn.Linear(H, O).double()
    rng = np.random.default_rng(3)
    x, y, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, O)), rng.standard_normal((L, N, H))
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    out, hT = gru(xt, h0t)
    yt = head(out)
    loss = ((yt - torch.tensor(y)) ** 2).mean()
    loss.backward()

    model = LSTMModel(D, H, O, num_layers=L, head="all", loss="mse", cell="gru")
    numpy_sd = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    model.params = params_from_torch(numpy_sd, {k: v.detach().numpy() for k, v in head.state_dict().items()},
                                     cell="gru")
    state = np.zeros((L, 2, N, H))
    state[:, 1] = h0
    ours, grads, new_state, ig = model.loss_and_grads(x, y, state, input_grads=True)
    assert abs(ours - loss.item()) < 1e-12
    np.testing.assert_allclose(model.forward(x, state)[0], yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new_state[:, 1], hT.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert not new_state[:, 0].any()
    torch_grads = params_from_torch({k: p.grad.numpy() for k, p in gru.named_parameters()},
                                    {k: p.grad.numpy() for k, p in head.named_parameters()}, cell="gru")
    for k in grads:
        np.testing.assert_allclose(grads[k], torch_grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(ig["x"], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ig["state"][:, 1], h0t.grad.numpy(), rtol=1e-9, atol=1e-12)
    # and back: numpylstm's weights into a fresh nn.GRU give the same outputs
    sd, lin = params_to_torch(model.params)
    gru2 = torch.nn.GRU(D, H, num_layers=L, batch_first=True).double()
    gru2.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    np.testing.assert_array_equal(gru2(xt, h0t)[0].detach().numpy(), out.detach().numpy())


# ------------------------------------------------------------------------------------------ demos
run = run_demo  # tests/demo_cli.py


TINY_SINE = ["--steps", "6", "--lstm-size", "4", "--timesteps", "5", "--batch-size", "8", "--warmup", "2",
             "--no-plot"]


@pytest.mark.parametrize("cell", [n for n in ("gru", "nfg", "rnn") if n in NAMES])
def test_sine_demo_trains_a_cell_and_resume_refuses_another(tmp_path, cell):
    ck = tmp_path / "c.npz"
    status, lines, err = run([*TINY_SINE, "--cell", cell, "--checkpoint", str(ck), "--stop-at", "3",
                              "--out", str(tmp_path)])
    assert status == 0, err
    assert cell in lines[0].lower() and "stopped at step 3" in "\n".join(lines)
    status, lines, err = run([*TINY_SINE, "--resume", str(ck), "--out", str(tmp_path)])
    assert status == 0, err
    assert lines[-1].startswith("test RMSE: ") and np.isfinite(float(lines[-1].split(": ")[1]))
    other = "lstm" if cell != "lstm" else "gru"
    status, _, err = run(["--resume", str(ck), "--cell", other, "--no-plot", "--out", str(tmp_path)])
    assert status == 2 and err.count("\n") == 1
    assert f"--cell {other} (checkpoint has {cell})" in err


def test_cell_flag_rejects_unknown_names():
    status, _, err = run(["--cell", "lstmm", "--no-plot"])
    assert status == 2 and "--cell" in err and err.count("\n") == 1


def test_chars_trains_a_gru_samples_from_it_and_resume_keeps_its_cell(tmp_path):
    if "gru" not in NAMES:
        pytest.skip("no gru cell")
    path = tmp_path / "tiny.txt"
    path.write_text("Happy families are all alike; every unhappy family is unhappy in its own way.\n" * 6,
                    encoding="utf-8")
    out = tmp_path / "run"
    small = ["--text", str(path), "--lstm-size", "8", "--n-seqs", "2", "--n-steps", "8", "--eval-every", "10",
             "--no-plot", "--sample-length", "0", "--out", str(out)]
    status, lines, err = run(["chars", *small, "--epochs", "1", "--cell", "gru"])
    assert status == 0, err
    assert any("GRU" in line for line in lines[:3]) and lines[-1].startswith("val loss: ")
    assert model_from_checkpoint(out / "chars.npz")[0].cell == "gru"
    status, lines, err = run(["sample", "--checkpoint", str(out / "chars.npz"), "--prime", "Hap", "--length", "10"])
    assert status == 0 and lines[0].startswith("Hap"), err
    status, _, err = run(["chars", *small, "--epochs", "2", "--resume", str(out / "chars.npz"), "--cell", "lstm"])
    assert status == 2 and "--cell lstm (checkpoint has gru)" in err and err.count("\n") == 1
    status, _, err = run(["cells", "--checkpoint", str(out / "chars.npz"), "--text", str(path),
                          "--out", str(tmp_path / "c.html")])
    assert status == 2 and "cell 'gru'" in err and err.count("\n") == 1


def test_inside_refuses_a_sine_checkpoint_of_another_cell(tmp_path):
    ck = tmp_path / "r.npz"
    assert run([*TINY_SINE, "--cell", "rnn", "--checkpoint", str(ck), "--stop-at", "2", "--out", str(tmp_path),
                "--quiet"])[0] == 0
    status, _, err = run(["inside", "--checkpoint", str(ck), "--out", str(tmp_path)])
    assert status == 2 and "cell 'rnn'" in err and err.count("\n") == 1


def test_adding_trains_any_cell_and_draws_every_cell_it_finds(tmp_path):
    out = str(tmp_path)
    for cell in ("gru", "cifg"):
        status, lines, err = run(["adding", "--timesteps", "5", "--lstm-size", "3", "--minutes", "0.005",
                                  "--eval-every", "5", "--out", out, "--cell", cell, "--quiet"])
        assert status == 0 and lines[-1].startswith("test MSE: "), err
    assert (tmp_path / "gru.npz").is_file() and (tmp_path / "cifg.npz").is_file()
    if (tmp_path / "adding.png").exists():  # matplotlib installed: the plot holds both
        assert (tmp_path / "adding.png").read_bytes()[:4] == b"\x89PNG"
