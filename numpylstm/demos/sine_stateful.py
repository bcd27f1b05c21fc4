"""The sine demo "in Anna's format" (``python demo.py sine --stateful``).

The default sine demo (``sine.py``) cuts the training curve into overlapping windows of T values, shuffles
them, and predicts one value per window from h_T (head "last"), starting every window from a zero state.
This variant treats the curve the way the char-RNN treats a text (``text.Windows``): the training curve is
cut into ``(n_seqs, n_steps)`` batches -- n_seqs = ``batch_size`` rows, each a contiguous stretch of the curve,
walked left to right n_steps = ``timesteps`` values at a time -- the model predicts the next value at *every*
step (head "all"), and the final state of each batch is the initial state of the next (reset at each pass
over the curve). Each value is seen once per epoch instead of T times, and nothing is shuffled.

The test RMSE is measured on the same 1000 targets as the default demo (the test curve after its first T
values): the whole test curve is run through the model as one sequence from a zero state, the state
carried step to step, and the predictions of those 1000 values are compared with the truth.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .data import sine_curves
from ..model import LSTMModel
from ..optim import Adam
from ..parallel import resolve_workers, training_on
from .sine import SineSettings, cell_title, claim_outputs, finish_run, keep_trained, report_stop, rmse
from .text import Windows
from .._files import Outputs
from ..train import (Progress, SaveOnStop, Trainer, format_seconds, run_for_cli,
                    warmup_cosine)

__all__ = ["build_stateful", "predict_test", "run_sine_stateful"]


def predict_test(model, test_seq, timesteps):
    """Predictions of test_seq[T:] by one stateful pass over test_seq[:-1] (N = 1, state carried)."""
    x = np.asarray(test_seq[:-1], dtype=model.dtype).reshape(1, -1, 1)
    y, _ = model.forward(x)  # y[0, t] predicts test_seq[t + 1]
    return y[0, timesteps - 1 :, 0]


def build_stateful(s: SineSettings, progress=None, checkpoint_path=None, checkpoint_every=0, interrupt_path=None,
                   impl="fast", outputs=None):
    """Curves, model and stateful trainer for settings ``s``; impl the layer code ("fast" or "textbook").

    Returns (test_t, test_seq, model, trainer, K) with K the number of batches per epoch.
    """
    s.check()
    (_, train_seq), (test_t, test_seq) = sine_curves(s.training_examples, s.testing_examples, s.sample_gap,
                                                     s.timesteps)
    windows = Windows(train_seq.astype(s.dtype), s.batch_size, s.timesteps, name="the training curve")
    K = len(windows)
    model = LSTMModel(1, s.lstm_size, 1, num_layers=s.lstm_layers, dropout=1.0 - s.keep_prob, head="all",
                      loss="mse", seed=s.seed, dtype=s.dtype, impl=impl, cell=s.cell)
    opt = Adam(model.params, lr=s.lr, betas=(0.9, s.beta2))

    def batch(step):
        x, y = windows[step % K]
        return x[..., None], y[..., None]  # (N, T, 1) inputs and next values

    def test_rmse(m):
        return {"test RMSE": rmse(predict_test(m, test_seq, s.timesteps), test_seq[s.timesteps :])}

    trainer = Trainer(model, opt, batch, s.steps, schedule=warmup_cosine(s.lr, s.steps, s.warmup_steps),
                      clip_norm=s.clip, stateful=True, reset_state=lambda step: step % K == 0, eval_fn=test_rmse,
                      eval_every=max(1, s.steps // 10), checkpoint_path=checkpoint_path,
                      checkpoint_every=checkpoint_every, interrupt_path=interrupt_path,
                      user={"demo": "sine-stateful", "settings": asdict(s)}, progress=progress, outputs=outputs)
    return test_t, test_seq, model, trainer, K


def run_sine_stateful(s: SineSettings, *, out="runs/sine-stateful", plot=True, checkpoint=None,
                      checkpoint_every=500, resume=None, stop_at=None, quiet=False, stream=None,
                      impl="fast", overwrite=False, workers=None) -> int:
    """Train and evaluate the stateful sine predictor; the last line printed is ``test RMSE: <value>``.

    impl: the layer code, "fast" or "textbook" (same numbers, slower). Files as ``sine.run_sine``.
    workers: train on that many processes (``numpylstm/parallel.py``); "auto": ``parallel.auto_workers``
    decides; None or 1: in this process.
    """
    with Outputs("demo.py sine --stateful") as outputs:
        return _run(s, outputs, out=out, plot=plot, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                    resume=resume, stop_at=stop_at, quiet=quiet, stream=stream, impl=impl, overwrite=overwrite,
                    workers=workers)


def _run(s, outputs, *, out, plot, checkpoint, checkpoint_every, resume, stop_at, quiet, stream, impl, overwrite,
         workers):
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: False) if quiet else (lambda text="": print(text, file=stream, flush=True))
    out = Path(out)
    interrupt_path = claim_outputs(outputs, out, plot, checkpoint, resume, overwrite)
    progress = Progress(s.steps, stream=stream, enabled=not quiet)
    test_t, test_seq, model, trainer, K = build_stateful(s, progress, checkpoint, checkpoint_every, interrupt_path,
                                                         impl=impl, outputs=outputs)
    asked = workers not in (None, "auto")  # an explicit --workers K must start, "auto" may fall back
    workers = resolve_workers(workers, model, s.batch_size, s.timesteps)  # "auto": all cores if it pays
    say(f"sine demo, stateful (Anna format): {s.lstm_layers}-layer {cell_title(s.cell)}, lstm_size {s.lstm_size}, "
        f"{s.dtype}, seed {s.seed}" + (f"; layer code numpylstm/{impl}.py" if impl != "fast" else "")
        + (f"; training on {workers} processes (numpylstm/parallel.py; --workers 1 for one)" if workers else ""))
    say(f"  training curve cut into {K} batches of n_seqs {s.batch_size} x n_steps {s.timesteps} (--batch-size x "
        f"--timesteps), head 'all', state carried between batches and reset every {K} steps")
    say(f"  {s.steps} steps of Adam, lr {s.lr:g} (linear warm-up over {s.warmup_steps} steps, then cosine "
        f"decay), beta2 {s.beta2:g}, "
        f"gradient clipping at global norm {s.clip:g}; {model.num_params()} parameters")
    if resume is not None:
        ck = trainer.resume(resume)
        say(f"resumed from {resume} at step {ck.step}")
    with training_on(trainer, workers, s.batch_size, fallback=None if asked else say):
        result, code = run_for_cli(trainer, resume, resume_hint="--stateful --resume", stop_at=stop_at)
    if code is not None:
        return code
    report_stop(result, s.steps, checkpoint is not None, say, resume_hint="--stateful --resume")
    with SaveOnStop(trainer, interrupt_path, "--stateful --resume", doing="evaluating on the test curve") as stop:
        if plot:
            keep_trained(trainer, result, interrupt_path)
        pred = predict_test(model, test_seq, s.timesteps)
        truth = test_seq[s.timesteps :]
        say(f"trained {result.steps_run} steps in {format_seconds(result.seconds)} ({result.seconds:.1f} s, "
            f"{result.steps_per_second:.0f} steps/s); training loss (mean of last 100) "
            f"{np.mean(result.losses[-100:]):.3e}")
        status = finish_run(result, say, stream, out if plot else None, test_t[s.timesteps :], truth, pred,
                            baseline=test_seq[s.timesteps - 1 : -1],
                            title="test range: next value predicted with the state carried", outputs=outputs,
                            stop=stop)
    return status if stop.code is None else stop.code
