import math
import os
import signal

import numpy as np
import pytest

from numpylstm import LSTMModel
from numpylstm.demos.data import BatchSampler, sine_data
from numpylstm.optim import Adam
from numpylstm.train import Progress, Trainer, TrainingDiverged, constant_lr, format_seconds, warmup_cosine


def _setup(steps=40, dropout=0.0, dtype=np.float64, seed=0, **kw):
    d = sine_data(training_examples=200, testing_examples=20, timesteps=5, dtype=dtype)
    model = LSTMModel(1, 6, 1, num_layers=2, dropout=dropout, seed=seed, dtype=dtype)
    opt = Adam(model.params, lr=1e-2)
    kw.setdefault("progress", Progress(steps, enabled=False))
    tr = Trainer(model, opt, BatchSampler(d.train_x, d.train_y, 16, seed), steps,
                 schedule=warmup_cosine(1e-2, steps, 5), **kw)
    return d, model, tr


def test_short_training_lowers_the_loss_clearly():
    d, model, tr = _setup(steps=300)
    before = model.evaluate(d.test_x, d.test_y)[0]
    res = tr.run()
    after = model.evaluate(d.test_x, d.test_y)[0]
    assert res.step == 300 and len(res.losses) == 300 and not res.interrupted
    assert after < 0.05 * before
    assert np.mean(res.losses[-20:]) < 0.05 * np.mean(res.losses[:20])


def test_warmup_cosine_values():
    s = warmup_cosine(1.0, 110, 10, final_lr=0.1)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # half way down the cosine
    assert s(109) == pytest.approx(0.1, abs=1e-3)
    assert constant_lr(0.3)(1000) == 0.3
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(1.0, 10, 10)
    with pytest.raises(ValueError, match="lr"):
        warmup_cosine(0.0, 10)


def test_resume_gives_bit_identical_weights_with_dropout(tmp_path):
    _, full_model, full = _setup(dropout=0.2)
    full.run()
    _, _, first = _setup(dropout=0.2, checkpoint_path=tmp_path / "a.npz")
    r = first.run(stop_at=17)
    assert r.step == 17 and r.checkpoint == tmp_path / "a.npz"
    _, model, second = _setup(dropout=0.2, seed=0)
    second.resume(tmp_path / "a.npz")
    assert second.step == 17
    second.run()
    for k in full_model.params:
        np.testing.assert_array_equal(model.params[k], full_model.params[k])
    assert second.losses == full.losses
    assert [s for s, _ in second.evals] == [s for s, _ in full.evals]


def test_resume_refuses_a_run_of_another_length(tmp_path):
    _, _, tr = _setup(checkpoint_path=tmp_path / "a.npz")
    tr.run(stop_at=3)
    _, _, other = _setup(steps=50)
    with pytest.raises(ValueError, match="40 steps"):
        other.resume(tmp_path / "a.npz")


class _NaNAt(LSTMModel):
    """A model whose loss turns NaN at a chosen step (counted in calls)."""

    bad_call = 6

    def loss_and_grads(self, x, y, state=None, train=True):
        self.calls = getattr(self, "calls", 0) + 1
        loss, grads, new_state = super().loss_and_grads(x, y, state=state, train=train)
        return (math.nan if self.calls == self.bad_call else loss), grads, new_state


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    d = sine_data(training_examples=100, testing_examples=10, timesteps=4)
    model = _NaNAt(1, 4, 1, seed=0)
    opt = Adam(model.params, lr=1e-2)
    path = tmp_path / "c.npz"
    tr = Trainer(model, opt, BatchSampler(d.train_x, d.train_y, 8), 20, checkpoint_path=path, checkpoint_every=2,
                 progress=Progress(20, enabled=False))
    with pytest.raises(TrainingDiverged) as info:
        tr.run()
    msg = str(info.value)
    assert "step 6" in msg and "last finite loss" in msg and "--lr" in msg and str(path) in msg
    assert info.value.step == 6 and math.isfinite(info.value.last_loss)
    assert tr.step == 5
    from numpylstm.checkpoint import read_checkpoint
    assert read_checkpoint(path).step == 4


def test_ctrl_c_finishes_the_step_saves_and_returns(tmp_path):
    d = sine_data(training_examples=100, testing_examples=10, timesteps=4)
    model = LSTMModel(1, 4, 1, seed=0)
    sampler = BatchSampler(d.train_x, d.train_y, 8)

    def batches(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return sampler(step)

    tr = Trainer(model, Adam(model.params), batches, 50, interrupt_path=tmp_path / "int.npz",
                 progress=Progress(50, enabled=False))
    before = signal.getsignal(signal.SIGINT)  # not always default_int_handler: nohup/background runs ignore it
    res = tr.run()
    assert res.interrupted and res.step == 4 and res.checkpoint == tmp_path / "int.npz"
    from numpylstm.checkpoint import read_checkpoint
    assert read_checkpoint(tmp_path / "int.npz").step == 4
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored


def test_stateful_training_carries_and_resets_the_state():
    model = LSTMModel(1, 3, 1, head="all", seed=0)
    seen = []
    orig = model.loss_and_grads

    def spy(x, y, state=None, train=True):
        seen.append(None if state is None else state.copy())
        loss, grads, new_state = orig(x, y, state=state, train=train)
        seen_out.append(new_state.copy())
        return loss, grads, new_state

    seen_out = []
    model.loss_and_grads = spy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 1))
    tr = Trainer(model, Adam(model.params), lambda step: (x, x), 6, stateful=True,
                 reset_state=lambda step: step % 3 == 0, progress=Progress(6, enabled=False))
    tr.run()
    assert seen[0] is None and seen[3] is None
    np.testing.assert_array_equal(seen[1], seen_out[0])
    np.testing.assert_array_equal(seen[5], seen_out[4])
    assert tr.state.shape == (1, 2, 2, 3)


def test_progress_prints_lines_without_a_tty_and_rewrites_on_a_tty():
    import io

    buf = io.StringIO()
    p = Progress(100, stream=buf, tty=False, every=50)
    p.start(0)
    for s in range(1, 101):
        p.update(s, [0.5] * s, {"test RMSE": 0.1})
    p.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("step 100/100  loss 5.000e-01")
    assert "steps/s" in lines[0] and "ETA" in lines[0] and "elapsed" in lines[0] and "test RMSE" in lines[0]
    buf = io.StringIO()
    p = Progress(10, stream=buf, tty=True, refresh=1e9)
    p.start(0)
    for s in range(1, 11):
        p.update(s, [1.0])
    p.close()
    out = buf.getvalue()
    assert out.count("\r") == 10 and out.endswith("\n") and out.count("\n") == 1
    assert format_seconds(75.3) == "1:15" and format_seconds(3725) == "1:02:05"


def test_bad_arguments():
    model = LSTMModel(1, 3, 1)
    with pytest.raises(ValueError, match="batches"):
        Trainer(model, Adam(model.params), [1, 2], 5)
    with pytest.raises(ValueError, match="total_steps"):
        Trainer(model, Adam(model.params), lambda s: None, 0)
    with pytest.raises(ValueError, match="clip_norm"):
        Trainer(model, Adam(model.params), lambda s: None, 5, clip_norm=-1.0)
    with pytest.raises(ValueError, match="save needs a path"):
        Trainer(model, Adam(model.params), lambda s: None, 5).save()


def test_eval_runs_every_eval_every_steps_and_after_the_last_one():
    d, model, tr = _setup(steps=25, eval_fn=lambda m: {"n": 1.0}, eval_every=10)
    tr.run()
    assert [s for s, _ in tr.evals] == [10, 20, 25]


class _InfGradAt(LSTMModel):
    """A model whose gradients (not its loss) become infinite at step 3."""

    calls = 0

    def loss_and_grads(self, *a, **k):
        loss, grads, state = super().loss_and_grads(*a, **k)
        type(self).calls += 1
        if type(self).calls == 4:
            grads["head.b"][...] = np.inf
        return loss, grads, state


def test_infinite_gradient_stops_training_even_without_clipping():
    d = sine_data(training_examples=100, testing_examples=10, timesteps=4)
    model = _InfGradAt(1, 4, 1, seed=0)
    tr = Trainer(model, Adam(model.params, lr=1e-2), BatchSampler(d.train_x, d.train_y, 8), 20, clip_norm=None,
                 progress=Progress(20, enabled=False))
    with pytest.raises(TrainingDiverged, match="step 4: the gradient norm is inf"):
        tr.run()
    assert tr.step == 3 and all(np.isfinite(p).all() for p in model.params.values())
