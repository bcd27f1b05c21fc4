"""textbook.py, the LSTM as the derivation writes it: its own gradient checks, its shape (no buffers, no
``out=``), its sigmoid, and fast.py proven equal to it.

"Equal" means: for every result array, max |fast - textbook| <= 1e-13 * max |textbook| in float64 (the error
relative to the array's largest entry). The two implementations add the same terms in different orders (one
GEMM over all T against T per-step products, a tanh-based sigmoid against an exp-based one), so they differ by
roundoff, ~1e-16 of the array's scale; an entry-by-entry relative error is not used because a sum that cancels
to ~0 has no meaningful relative error (entrywise, it reaches 1e-11 at N=8, T=20, H=16 without any bug).
"""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest

import numpylstm
from numpylstm import LSTMModel, fast, textbook
from numpylstm.gradcheck import LAYER_TOL, check_arrays, check_layer, check_model

RTOL = 1e-13
RESULTS = ("hs", "hT", "cT", "dx", "dh0", "dc0", "dWx", "dWh", "db")


def max_rel(a, b) -> float:
    """max |a - b| / max |b|: the difference relative to the reference array's scale (0 for two zero arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max(initial=0.0)
    diff = np.abs(a - b).max(initial=0.0)
    return 0.0 if diff == 0.0 else diff / scale if scale > 0 else np.inf


def assert_same(got: dict, want: dict, rtol=RTOL):
    """Every entry of got equals want's to rtol (None only where want has None), same dtype."""
    assert got.keys() == want.keys()
    for k in want:
        if want[k] is None:
            assert got[k] is None, k
            continue
        g, w = np.asarray(got[k]), np.asarray(want[k])
        assert g.dtype == w.dtype, (k, g.dtype, w.dtype)
        err = max_rel(g, w)
        assert err <= rtol, f"{k}: relative difference {err:.2e} > {rtol:g}"


# ------------------------------------------------------------------------------------------ one layer

# (N, T, D, H, tokens): the gradient-check grid of test_layer.py, plus T = 1 alone and token ids on both
# sides of fast.py's V = 512 switch (one-hot GEMM below, scatter-add above).
GRID = {
    "N1T1D1H1": (1, 1, 1, 1, False),
    "small": (2, 3, 4, 3, False),
    "D>H": (3, 5, 10, 2, False),
    "N1": (1, 7, 3, 5, False),
    "H8": (4, 6, 5, 8, False),
    "D1": (5, 2, 1, 4, False),
    "T1": (3, 1, 4, 5, False),
    "tokens-V7": (3, 5, 7, 4, True),
    "tokens-V512": (2, 4, 512, 3, True),
    "tokens-V600": (3, 5, 600, 4, True),
    "tokens-T1-N1": (1, 1, 9, 2, True),
}


def layer_args(rng, N, T, D, H, tokens, zero_state=False):
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    h0 = None if zero_state else rng.standard_normal((N, H))
    c0 = None if zero_state else rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, 4 * H)) / np.sqrt(min(D, 16))
    Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
    b = rng.standard_normal(4 * H) * 0.5
    return x, h0, c0, Wx, Wh, b


def run_layer(module, args, dhs, dhT, dcT):
    hs, (hT, cT), cache = module.lstm_forward(*args)
    grads = module.lstm_backward(dhs, cache, dhT, dcT)
    return dict(zip(RESULTS, (hs, hT, cT, *grads)))


@pytest.mark.parametrize("final_grads", [True, False], ids=["dhT-dcT", "no-dhT-dcT"])
@pytest.mark.parametrize("zero_state", [False, True], ids=["h0c0", "zero-state"])
@pytest.mark.parametrize("case", GRID, ids=list(GRID))
def test_fast_equals_textbook_layer(case, zero_state, final_grads):
    N, T, D, H, tokens = GRID[case]
    rng = np.random.default_rng(sum(GRID[case][:4]))
    args = layer_args(rng, N, T, D, H, tokens, zero_state)
    dhs = rng.standard_normal((N, T, H))
    dhT, dcT = (rng.standard_normal((N, H)), rng.standard_normal((N, H))) if final_grads else (None, None)
    want = run_layer(textbook, args, dhs, dhT, dcT)
    got = run_layer(fast, args, dhs, dhT, dcT)
    assert (want["dx"] is None) == tokens
    assert_same(got, want)


def test_layer_equality_check_can_fail(monkeypatch):
    """A change of 1e-12 relative in any one result, in one entry, is caught; and so is a wrong gradient."""
    rng = np.random.default_rng(0)
    args = layer_args(rng, 2, 3, 4, 3, False)
    dhs = rng.standard_normal((2, 3, 3))
    want = run_layer(textbook, args, dhs, None, None)
    got = run_layer(fast, args, dhs, None, None)
    assert_same(got, want)
    for k in RESULTS:
        bad = {**got, k: np.array(got[k], copy=True)}
        bad[k].flat[-1] += 1e-12 * np.abs(want[k]).max()
        with pytest.raises(AssertionError, match=k):
            assert_same(bad, want)
    # a wrong textbook: (B7) dropped, dc_{t-1} = 0 instead of dc_t f_t
    step_backward = textbook.lstm_step_backward

    def no_b7(dh_t, dc_t, step_cache):
        dx_t, dh_prev, dc_prev, dWx, dWh, db = step_backward(dh_t, dc_t, step_cache)
        return dx_t, dh_prev, 0 * dc_prev, dWx, dWh, db

    monkeypatch.setattr(textbook, "lstm_step_backward", no_b7)
    with pytest.raises(AssertionError, match="dx"):
        assert_same(got, run_layer(textbook, args, dhs, None, None))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_textbook_computes_in_the_weights_dtype(dtype):
    rng = np.random.default_rng(1)
    x, h0, c0, Wx, Wh, b = (None if a is None else np.asarray(a, dtype) for a in layer_args(rng, 2, 3, 4, 3, False))
    hs, (hT, cT), cache = textbook.lstm_forward(x, h0, c0, Wx, Wh, b)
    grads = textbook.lstm_backward(np.ones_like(hs), cache)
    assert all(a.dtype == dtype for a in (hs, hT, cT, *grads))
    assert hs.shape == (2, 3, 3) and grads[0].shape == x.shape


def test_textbook_refuses_a_cache_it_did_not_make():
    rng = np.random.default_rng(2)
    args = layer_args(rng, 2, 3, 4, 3, False)
    _, _, fast_cache = fast.lstm_forward(*args)
    with pytest.raises(ValueError, match="cache"):
        textbook.lstm_backward(np.ones((2, 3, 3)), fast_cache)


# ------------------------------------------------------------------------------------------ whole model

# name: (D, H, O, L, dropout, head, loss, N, T, tokens)
MODELS = {
    "last-mse": (1, 6, 1, 2, 0.0, "last", "mse", 4, 8, False),
    "last-mse-dropout-3layers": (3, 5, 2, 3, 0.3, "last", "mse", 3, 6, False),
    "all-softmax-dropout": (4, 5, 6, 2, 0.5, "all", "softmax_ce", 3, 5, False),
    "all-mse": (2, 4, 3, 1, 0.0, "all", "mse", 2, 3, False),
    "last-softmax": (3, 4, 5, 2, 0.2, "last", "softmax_ce", 4, 3, False),
    "tokens-all-softmax-dropout": (7, 5, 7, 2, 0.25, "all", "softmax_ce", 3, 6, True),
    "tokens-V600-last-softmax": (600, 4, 9, 2, 0.0, "last", "softmax_ce", 3, 4, True),
    "N1-T1-H1": (1, 1, 1, 1, 0.0, "last", "mse", 1, 1, False),
}


def model_data(rng, D, H, O, L, head, loss, N, T, tokens):
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    if loss == "softmax_ce":
        y = rng.integers(0, O, (N, T) if head == "all" else (N,))
    else:
        y = rng.standard_normal((N, T, O) if head == "all" else (N, O))
    state = rng.standard_normal((L, 2, N, H)) * 0.5
    return x, y, state


def run_model(model, x, y, state, masks):
    loss, grads, final, ig = model.loss_and_grads(x, y, state, masks=masks, input_grads=True)
    out = {"loss": np.float64(loss), "final_state": final, "dx": ig["x"], "dstate": ig["state"]}
    out.update({f"d{k}": v for k, v in grads.items()})
    y_pred, final_pred = model.forward(x, state)
    out.update({"y": y_pred, "final_state (forward)": final_pred})
    return out


@pytest.mark.parametrize("case", MODELS, ids=list(MODELS))
def test_fast_equals_textbook_model(case):
    D, H, O, L, dropout, head, loss, N, T, tokens = MODELS[case]
    rng = np.random.default_rng(len(case))
    fast_model = LSTMModel(D, H, O, L, dropout=dropout, head=head, loss=loss, seed=3)
    text_model = LSTMModel(D, H, O, L, dropout=dropout, head=head, loss=loss, seed=3, impl="textbook")
    x, y, state = model_data(rng, D, H, O, L, head, loss, N, T, tokens)
    masks = fast_model.make_masks(N, T)  # fixed dropout masks, the same for both (all ones without dropout)
    want = run_model(text_model, x, y, state, masks)
    got = run_model(fast_model, x, y, state, masks)
    assert (want["dx"] is None) == tokens
    assert_same(got, want)
    # and the equality check fails on a wrong model: one weight changed by 1e-9 relative
    fast_model.params["lstm.0.Wh"].flat[0] *= 1 + 1e-9
    with pytest.raises(AssertionError):
        assert_same(run_model(fast_model, x, y, state, masks), want)


# ------------------------------------------------------------------------------------------ the step pair

def step_arrays(rng, N, D, H, tokens):
    arrays = {
        "x_t": rng.integers(0, D, N) if tokens else rng.standard_normal((N, D)),
        "h_prev": rng.standard_normal((N, H)),
        "c_prev": rng.standard_normal((N, H)),
        "Wx": rng.standard_normal((D, 4 * H)) / np.sqrt(D),
        "Wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H),
        "b": rng.standard_normal(4 * H) * 0.5,
    }
    return arrays


@pytest.mark.parametrize("N,D,H,tokens", [(1, 1, 1, False), (3, 4, 2, False), (2, 5, 3, False),
                                          (4, 2, 6, False), (3, 6, 4, True), (1, 3, 2, True)],
                         ids=["N1D1H1", "D>H", "small", "H>D", "tokens", "tokens-N1"])
def test_step_gradients_match_central_differences(N, D, H, tokens):
    """lstm_step_backward against (G3) on L = sum(h_t R) + sum(c_t RC): all six outputs, nonzero dh_t, dc_t."""
    rng = np.random.default_rng(N * 100 + D * 10 + H)
    arrays = step_arrays(rng, N, D, H, tokens)
    R, RC = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    names = ("x_t", "h_prev", "c_prev", "Wx", "Wh", "b")
    args = [arrays[k] for k in names]

    def f():
        h_t, c_t, _ = textbook.lstm_step_forward(*args)
        return float(np.vdot(h_t, R) + np.vdot(c_t, RC))

    _, _, step_cache = textbook.lstm_step_forward(*args)
    grads = dict(zip(names, textbook.lstm_step_backward(R, RC, step_cache)))
    if tokens:
        assert grads.pop("x_t") is None
        del arrays["x_t"]
    rows = check_arrays(f, arrays, grads)
    assert {r.name for r in rows} == set(names) - ({"x_t"} if tokens else set())
    for r in rows:
        assert r.max_rel < LAYER_TOL, (r.name, r.max_rel, r.max_abs)


def test_step_gradient_check_can_fail():
    """Drop the (B2) term through h_t from the step's backward: the check must see it."""
    rng = np.random.default_rng(5)
    arrays = step_arrays(rng, 2, 3, 2, False)
    R, RC = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    args = list(arrays.values())

    def f():
        h_t, c_t, _ = textbook.lstm_step_forward(*args)
        return float(np.vdot(h_t, R) + np.vdot(c_t, RC))

    _, _, step_cache = textbook.lstm_step_forward(*args)
    x_t, h_prev, c_prev, Wx, Wh, i, f_, g, o, tanh_c = step_cache
    wrong = textbook.lstm_step_backward(R, RC, (x_t, h_prev, c_prev, Wx, Wh, i, f_, g, np.zeros_like(o), tanh_c))
    rows = {r.name: r for r in check_arrays(f, arrays, dict(zip(arrays, wrong)))}
    assert rows["c_prev"].max_rel > 1e-3 and rows["Wh"].max_rel > 1e-3


def test_sequence_is_the_step_loop():
    """lstm_forward's hs and final state are lstm_step_forward applied T times (exactly, same code)."""
    rng = np.random.default_rng(6)
    x, h0, c0, Wx, Wh, b = layer_args(rng, 2, 4, 3, 5, False)
    hs, (hT, cT), _ = textbook.lstm_forward(x, h0, c0, Wx, Wh, b)
    h, c = h0, c0
    for t in range(4):
        h, c, _ = textbook.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        np.testing.assert_array_equal(hs[:, t], h)
    np.testing.assert_array_equal(hT, h)
    np.testing.assert_array_equal(cT, c)


@pytest.mark.parametrize("impl", ["fast", "textbook"])
def test_check_layer_runs_either_implementation(impl):
    rows = check_layer(2, 3, 4, 3, seed=1, impl=impl)
    assert {r.name for r in rows} == {"x", "h0", "c0", "Wx", "Wh", "b"}
    assert all(r.max_rel < LAYER_TOL for r in rows)


# ------------------------------------------------------------------------------------------ the file itself

def test_textbook_has_no_out_arguments_and_no_buffer_class():
    tree = ast.parse(Path(inspect.getsourcefile(textbook)).read_text(encoding="utf-8"))
    outs = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "out"]
    classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert not outs, f"textbook.py passes out= on lines {outs}"
    assert not classes, f"textbook.py defines classes {classes}"
    assert "Workspace" not in ast.unparse(tree) and "work" not in inspect.signature(textbook.lstm_forward).parameters


def test_the_ast_check_would_see_out_and_a_class():
    """The test above must be able to fail: the same walk finds an out= and a class in a small source."""
    tree = ast.parse("class Buf:\n    pass\nnp.tanh(a, out=a)\n")
    assert [n.arg for n in ast.walk(tree) if isinstance(n, ast.keyword)] == ["out"]
    assert [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)] == ["Buf"]


def test_textbook_functions_are_reachable_after_import_numpylstm():
    """In a fresh interpreter (here, importing numpylstm.textbook by name would hide a missing export)."""
    import subprocess
    import sys

    names = ("sigmoid", "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward")
    code = f"import numpylstm; print(all(callable(getattr(numpylstm.textbook, n)) for n in {names!r}))"
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.stdout.strip() == "True", out.stderr
    assert numpylstm.textbook is textbook and "textbook" in numpylstm.__all__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_textbook_sigmoid_is_overflow_safe_and_keeps_the_dtype(dtype):
    z = np.array([-1e4, -1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0, 1e4], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = textbook.sigmoid(z)
    assert s.dtype == dtype and s.shape == z.shape
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    np.testing.assert_array_equal(s[[0, 4, 8]], np.array([0.0, 0.5, 1.0], dtype))
    mid = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(textbook.sigmoid(mid), 1 / (1 + np.exp(-mid)), rtol=1e-15, atol=0)
    np.testing.assert_allclose(textbook.sigmoid(mid), fast.sigmoid(mid), rtol=0, atol=5e-16)


def test_gradcheck_impl_is_checked_and_restored():
    with pytest.raises(ValueError, match="impl must be one of 'fast', 'textbook'; got 'slow'"):
        check_layer(impl="slow")
    model = LSTMModel(2, 3, 1, seed=0)
    x, y = np.ones((1, 2, 2)), np.ones((1, 1))
    with pytest.raises(ValueError, match="impl must be one of"):
        check_model(model, x, y, impl="slow")
    assert model.impl == "fast"
    calls = []
    real = textbook.lstm_step_forward  # impl="textbook" runs the cell "lstm": textbook.py's steps on the loop
    try:
        textbook.lstm_step_forward = lambda *a: calls.append(1) or real(*a)
        rows = check_model(model, x, y, impl="textbook")
    finally:
        textbook.lstm_step_forward = real
    assert calls and model.impl == "fast"
    assert all(r.max_rel < 1e-6 for r in rows)


# ------------------------------------------------------------------------------------------ training with either

def _tiny_sine(**kw):
    from numpylstm.demos.sine import SineSettings

    return SineSettings(timesteps=6, lstm_size=5, lstm_layers=2, batch_size=8, steps=100, warmup=10, seed=1,
                        dtype="float64", training_examples=300, testing_examples=40, **kw)


def assert_same_losses(got, want, rtol=1e-12):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape == (100,)
    err = np.abs(got - want) / np.abs(want)
    assert err.max() <= rtol, f"step {err.argmax()}: relative difference {err.max():.2e}"


@pytest.mark.parametrize("keep_prob", [1.0, 0.8], ids=["no-dropout", "dropout"])
def test_sine_training_has_the_same_losses_with_either_impl(keep_prob):
    """float64, 100 Adam steps of the sine demo's own trainer: the same loss at every step to 1e-12."""
    from numpylstm.demos.sine import build

    runs = {}
    for impl in ("fast", "textbook"):
        _, model, trainer = build(_tiny_sine(keep_prob=keep_prob), impl=impl)
        assert model.impl == impl
        runs[impl] = trainer.run()
    assert_same_losses(runs["fast"].losses, runs["textbook"].losses)
    assert runs["fast"].losses[-1] < 0.5 * runs["fast"].losses[0]  # it trained


def test_stateful_sine_training_has_the_same_losses_with_either_impl():
    from numpylstm.demos.sine_stateful import build_stateful

    losses = {impl: build_stateful(_tiny_sine(), impl=impl)[3].run().losses for impl in ("fast", "textbook")}
    assert_same_losses(losses["fast"], losses["textbook"])


def test_token_training_has_the_same_losses_with_either_impl():
    """The char-RNN's setting: token ids, head "all", softmax_ce, dropout, state carried between batches."""
    from numpylstm.optim import Adam
    from numpylstm.train import Trainer

    rng = np.random.default_rng(3)
    data = rng.integers(0, 11, (100, 4, 7))
    losses = {}
    for impl in ("fast", "textbook"):
        model = LSTMModel(11, 6, 11, num_layers=2, dropout=0.25, head="all", loss="softmax_ce", seed=2, impl=impl)
        trainer = Trainer(model, Adam(model.params, lr=1e-2), lambda step: (data[step], np.roll(data[step], -1, 1)),
                          100, stateful=True, reset_state=lambda step: step % 10 == 0)
        losses[impl] = trainer.run().losses
    assert_same_losses(losses["fast"], losses["textbook"])


def test_losses_check_can_fail():
    with pytest.raises(AssertionError, match="step 7"):
        want = np.linspace(1.0, 0.1, 100)
        got = want.copy()
        got[7] *= 1 + 1e-11
        assert_same_losses(got, want)


@pytest.mark.parametrize("first,then", [("fast", "textbook"), ("textbook", "fast")])
def test_a_checkpoint_resumes_with_the_other_impl(tmp_path, first, then):
    """impl is a run setting, not architecture: stop at step 40 with one, finish with the other; the losses
    and the final weights equal an uninterrupted run's to ~1e-12."""
    from numpylstm.demos.sine import build

    s = _tiny_sine(keep_prob=0.8)
    _, full_model, full = build(s, impl=first)
    full.run()
    _, _, part = build(s, checkpoint_path=tmp_path / "run.npz", impl=first)
    part.run(stop_at=40)
    _, model, rest = build(s, impl=then)
    rest.resume(tmp_path / "run.npz")
    rest.run()
    assert_same_losses(rest.losses, full.losses)
    for k, p in full_model.params.items():
        assert max_rel(model.params[k], p) < 1e-10, k


def test_demo_cli_takes_impl_and_resumes_across_impls(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    monkeypatch.chdir(tmp_path)
    import demo

    tiny = ["--steps", "12", "--lstm-size", "4", "--timesteps", "5", "--batch-size", "8", "--warmup", "2",
            "--dtype", "float64", "--no-plot", "--quiet"]
    assert demo.main(["sine", *tiny, "--impl", "textbook", "--stop-at", "6", "--checkpoint", "a.npz"]) == 0
    assert demo.main(["sine", *tiny, "--resume", "a.npz"]) == 0  # made with textbook, resumed with fast
    resumed = capsys.readouterr().out.splitlines()[-1]
    assert demo.main(["sine", *tiny, "--impl", "textbook"]) == 0
    whole = capsys.readouterr().out.splitlines()[-1]
    assert resumed.startswith("test RMSE: ") and resumed == whole
    assert demo.main(["sine", *tiny, "--stateful", "--impl", "textbook"]) == 0
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 20, encoding="utf-8")
    chars = ["chars", "--text", "t.txt", "--epochs", "1", "--n-seqs", "2", "--n-steps", "5", "--lstm-size", "4",
             "--dtype", "float64", "--no-plot", "--sample-length", "0", "--quiet"]
    capsys.readouterr()
    assert demo.main([*chars, "--out", "a", "--impl", "textbook"]) == 0
    assert demo.main([*chars, "--out", "b"]) == 0
    val = capsys.readouterr().out.splitlines()
    assert len(val) == 2 and val[0].startswith("val loss: ") and val[0] == val[1]
    with pytest.raises(SystemExit) as exc:
        demo.main(["sine", "--impl", "slow"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--impl: invalid choice: 'slow' (choose from 'fast', 'textbook')" in err
    sys.modules.pop("demo", None)
