"""wavefront.py, all layers of a small stack in one time loop: it must change no number beyond roundoff.

"Equal" is test_textbook.py's: max |wavefront - plain| <= 1e-13 * max |plain| for every result, float64. The
wavefront adds the same terms in another order ((F1)'s input and recurrent parts in one product, the weight
gradients over T + L - 1 rows), so the two differ by roundoff (~1e-16).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from numpylstm import LSTMModel, fast, wavefront
from numpylstm.gradcheck import MODEL_TOL, check_model

from test_textbook import assert_same, model_data

# (D, H, O, L, head, loss, N, T): both heads and losses, 2 to 4 layers, T from 1 (the ramps overlap) to 20,
# N = 1, and the sine model itself
CASES = {
    "sine": (1, 20, 1, 2, "last", "mse", 64, 20),
    "all-ce-3layers": (3, 5, 4, 3, "all", "softmax_ce", 4, 7),
    "all-mse-4layers-T1": (2, 4, 2, 4, "all", "mse", 3, 1),
    "last-ce-T2": (2, 6, 3, 2, "last", "softmax_ce", 5, 2),
    "last-mse-4layers-N1": (5, 3, 2, 4, "last", "mse", 1, 9),
}


def run(model, x, y, state, train=True):
    """Everything a pass returns, as test_textbook.run_model, but with no dropout masks (the wavefront's case)."""
    loss, grads, final, ig = model.loss_and_grads(x, y, state, train=train, input_grads=True)
    out = {"loss": np.float64(loss), "final_state": final, "dx": ig["x"], "dstate": ig["state"]}
    out.update({f"d{k}": v for k, v in grads.items()})
    y_pred, final_pred = model.forward(x, state)
    out.update({"y": y_pred, "final_state (forward)": final_pred, "evaluate": np.float64(model.evaluate(x, y, state)[0])})
    return out


def pair(case, dtype="float64"):
    D, H, O, L, head, loss, N, T = CASES[case]
    kw = dict(num_layers=L, head=head, loss=loss, seed=3, dtype=dtype)
    x, y, state = model_data(np.random.default_rng(len(case)), D, H, O, L, head, loss, N, T, False)
    if loss == "mse":
        y = y.astype(dtype)
    return (LSTMModel(D, H, O, wavefront=False, **kw), LSTMModel(D, H, O, wavefront=True, **kw),
            x.astype(dtype), y, state.astype(dtype))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_wavefront_equals_layer_by_layer(case, monkeypatch):
    plain, wave, x, y, state = pair(case)
    want = run(plain, x, y, state)
    calls = {"forward": 0, "backward": 0}
    real_f, real_b = wavefront.stack_forward, wavefront.stack_backward

    def forward(*a, **k):
        calls["forward"] += 1
        return real_f(*a, **k)

    def backward(*a, **k):
        calls["backward"] += 1
        return real_b(*a, **k)
    monkeypatch.setattr(wavefront, "stack_forward", forward)
    monkeypatch.setattr(wavefront, "stack_backward", backward)
    got = run(wave, x, y, state)
    # every pass of run() was a wavefront pass: loss_and_grads (forward and backward), forward, evaluate
    assert calls == {"forward": 3, "backward": 1}
    assert_same(got, want)
    assert_same(run(wave, x, y, None), run(plain, x, y, None))  # from the zero state too
    # and the comparison fails on a wrong model: one weight changed by 1e-9 relative
    wave.params["lstm.1.Wh"].flat[0] *= 1 + 1e-9
    with pytest.raises(AssertionError):
        assert_same(run(wave, x, y, state), want)


def test_an_inactive_slot_left_unzeroed_is_caught(monkeypatch):
    """The backward pass sets the factors of the ramp's inactive slots to zero; without it gradients go wrong."""
    plain, wave, x, y, state = pair("all-ce-3layers")
    want = run(plain, x, y, state)
    real_buffer = fast.Workspace.buffer

    class Unzeroed(np.ndarray):
        pass

    def buffer(self, name, shape, dtype):
        a = real_buffer(self, name, shape, dtype)
        if name == "dA" and self is wave._wave_work:
            a = a.view(Unzeroed)
        return a

    def setitem(self, key, value):  # dA[rows, slot] = 0.0 of an inactive slot: skipped
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], int):
            return None
        return np.ndarray.__setitem__(self, key, value)

    Unzeroed.__setitem__ = setitem
    monkeypatch.setattr(fast.Workspace, "buffer", buffer)
    wave._wave_work = fast.Workspace()
    with pytest.raises(AssertionError):
        assert_same(run(wave, x, y, state), want)


@pytest.mark.parametrize("case", ["sine", "all-ce-3layers"])
def test_wavefront_equals_layer_by_layer_in_float32(case):
    plain, wave, x, y, state = pair(case, "float32")
    assert_same(run(wave, x, y, state), run(plain, x, y, state), rtol=1e-5)


def test_buffers_and_views_follow_a_change_of_shape():
    """The loop's views are made once per set of buffers (Workspace.views): a pass at another T or N must not
    reuse views of the old buffers."""
    plain, wave, _, _, _ = pair("all-ce-3layers")
    rng = np.random.default_rng(5)
    for N, T in [(4, 7), (4, 9), (2, 7), (4, 7)]:
        x, y, state = model_data(rng, 3, 5, 4, 3, "all", "softmax_ce", N, T, False)
        assert_same(run(wave, x, y, state), run(plain, x, y, state))


@pytest.mark.parametrize("head, loss", [("last", "mse"), ("all", "softmax_ce")])
def test_wavefront_model_passes_central_differences(head, loss):
    model = LSTMModel(3, 4, 5 if loss == "softmax_ce" else 2, num_layers=3, head=head, loss=loss, seed=1,
                      wavefront=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3))
    y = rng.integers(0, 5, (2, 5)) if loss == "softmax_ce" else rng.standard_normal((2, 2))
    rows = check_model(model, x, y, rng.standard_normal((3, 2, 2, 4)) * 0.5)
    assert rows and all(r.max_rel < MODEL_TOL for r in rows), [(r.name, r.max_rel) for r in rows]


def test_auto_uses_the_wavefront_only_for_small_float_stacks_without_dropout():
    x_sine = np.zeros((20, 64, 1))
    sine = LSTMModel(1, 20, 1, num_layers=2)
    assert sine._wave(x_sine, None)
    assert not sine._wave(x_sine, [np.ones((20, 64, 20))] * 2)  # dropout masks in the pass
    assert not sine._wave(np.zeros((20, 64), int), None)  # token ids
    assert not sine._wave(np.zeros((20, 1000, 1)), None)  # N 1000: beyond MAX_ROW_MACS (a safe-side rule)
    assert not LSTMModel(1, 48, 1, num_layers=2)._wave(x_sine, None)  # L H = 96 > MAX_WIDTH
    assert LSTMModel(1, 16, 1, num_layers=4)._wave(x_sine, None)  # L H = 64
    assert not LSTMModel(77, 192, 77, num_layers=2)._wave(np.zeros((50, 32, 77)), None)  # the char-RNN's size
    assert not LSTMModel(1, 20, 1, num_layers=1)._wave(x_sine, None)
    assert not LSTMModel(1, 20, 1, num_layers=2, impl="textbook")._wave(x_sine, None)
    assert not LSTMModel(1, 20, 1, num_layers=2, cell="rnn")._wave(x_sine, None)
    assert not LSTMModel(1, 20, 1, num_layers=2, wavefront=False)._wave(x_sine, None)
    assert LSTMModel(77, 192, 77, num_layers=2, wavefront=True)._wave(np.zeros((50, 32, 77)), None)
    assert wavefront.worth_it(2, 64, 20) and not wavefront.worth_it(1, 64, 20)


def test_wavefront_argument_is_checked():
    for bad in ("yes", 0, 1, None, np.False_):
        with pytest.raises(ValueError, match="wavefront must be 'auto', True or False; got "):
            LSTMModel(1, 2, 1, wavefront=bad)


def test_the_sine_demo_trains_the_same_with_and_without_the_wavefront():
    """100 steps of the sine demo's own trainer, float64: the same loss at every step to 1e-12."""
    from numpylstm.demos.sine import SineSettings, build

    s = SineSettings(steps=100, warmup=10, dtype="float64", training_examples=300, testing_examples=50)
    losses = {}
    for w in (True, False):
        _, model, trainer = build(s)
        model.wavefront = w
        assert model._wave(np.zeros((s.timesteps, s.batch_size, 1)), None) == w
        losses[w] = np.array(trainer.run().losses)
    assert np.max(np.abs(losses[True] - losses[False]) / losses[False]) <= 1e-12
    assert losses[True][-1] < 0.5 * losses[True][0]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_computes_the_same(how):
    """A copy of a model that has run a pass must not keep views of the original's buffers (Workspace copies
    start empty): "keep the best model so far" with copy.deepcopy is a natural thing to write."""
    plain, wave, x, y, state = pair("sine")
    run(wave, x, y, state)  # buffers allocated and views cached
    twin = copy.deepcopy(wave) if how == "deepcopy" else pickle.loads(pickle.dumps(wave))
    assert_same(run(twin, x, y, state), run(plain, x, y, state))
    assert_same(run(wave, x, y, state), run(plain, x, y, state))  # and the original is unharmed
