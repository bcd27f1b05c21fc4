"""The adding problem behind ``python demo.py adding``: long memory, LSTM against a plain tanh RNN.

Variant of Le, Jaitly & Hinton 2015 (the 1997 LSTM paper's original draws values from [-1, 1] and targets
0.5 + (X1 + X2) / 4; see derivations/11_why_lstm.md, 11.5). Each sequence has T steps of two features: a
value uniform in [0, 1] and a marker that is 1 at exactly two steps, one in each half, 0 elsewhere. The target
is the sum of the two marked values. Predicting the mean sum 1 scores MSE 1/6 ~ 0.167, the baseline.

Training batches are fresh sequences, a pure function of (seed, step), so a resumed run sees the same data;
the test set is 1,000 other fresh sequences. ``run_adding`` trains one cell for a wall-time budget with
``train.Trainer`` (Ctrl-C saves a checkpoint you can ``--resume``), saves ``DIR/<cell>.npz`` holding the
test-MSE history, and draws ``DIR/adding.png`` from every ``<cell>.npz`` in DIR (both cells' curves against the
baseline, over training time).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .. import _checks as chk
from ..checkpoint import check_replaceable, read_checkpoint
from ..model import CELLS, LSTMModel
from .sine import cell_title
from ..optim import Adam
from .._files import Outputs
from ..train import Progress, SaveOnStop, Trainer, check_memory, constant_lr, format_seconds, run_for_cli

__all__ = ["AddingSettings", "adding_batch", "run_adding", "BASELINE", "plot_adding"]

BASELINE = 1.0 / 6.0  # MSE of always predicting 1: the variance of the sum of two uniforms on [0, 1]
STEPS_CAP = 1_000_000  # a --minutes run is stopped by the clock; its step count only needs a bound
TEST_SIZE = 1000


def adding_batch(n, T, rng, dtype=np.float64):
    """n sequences of the adding problem: x (n, T, 2) (value, marker), y (n, 1) the sum of the marked values.

    One marker in [0, T // 2), the other in [T // 2, T) (T >= 2).
    """
    n, T = chk.positive_int("n", n), chk.positive_int("timesteps", T)
    if T < 2:
        raise ValueError(f"timesteps must be >= 2 (one marker in each half); got {T}")
    x = np.zeros((n, T, 2), dtype)
    x[:, :, 0] = rng.random((n, T))
    rows = np.arange(n)
    first = rng.integers(0, T // 2, n)
    second = rng.integers(T // 2, T, n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0]).reshape(n, 1)
    return x, y.astype(dtype)


@dataclass(frozen=True)
class AddingSettings:
    """Everything that determines a run (stored in its checkpoint).

    Defaults chosen by steps to the target, which a busy machine does not change (timings it does): with
    H = 32, Adam 1e-2, clip 1, batch 64, float32, the LSTM sits at the baseline for ~700 steps and then
    drops below 0.01 within 100 steps (T = 100: step ~725 for seed 0, ~800 for seed 1; T = 200: ~1,100;
    T = 400: ~2,000; T = 800: 4,550). An LSTM step costs about 2.5x a tanh-RNN step at H = 32, so in the same minutes the
    RNN takes more steps, and still stays at the baseline. Evaluating the 1,000 test sequences costs about
    five training steps (T = 100: 45 ms against 10 ms, on a quiet moment of a shared machine), hence
    ``eval_every`` 50.
    """

    timesteps: int = 100
    cell: str = "lstm"
    lstm_size: int = 32
    batch_size: int = 64
    lr: float = 1e-2
    clip: float = 1.0
    minutes: float = 2.0
    eval_every: int = 50
    seed: int = 0
    dtype: str = "float32"

    def check(self) -> "AddingSettings":
        for name in ("lstm_size", "batch_size", "eval_every"):
            chk.positive_int(name, getattr(self, name))
        if chk.positive_int("timesteps", self.timesteps) < 2:
            raise ValueError(f"timesteps must be >= 2 (one marker in each half); got {self.timesteps}")
        chk.choice("cell", self.cell, CELLS)
        for name in ("lr", "clip", "minutes"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
        chk.resolve_dtype(self.dtype)
        check_memory(self.memory_bytes(), f"timesteps {self.timesteps}, lstm_size {self.lstm_size}, batch_size "
                                          f"{self.batch_size}")
        return self

    def memory_bytes(self, batch=None) -> float:
        """A rough upper estimate of a run's peak memory: the test set and a batch (x (N, T, 2)), the forward
        caches of the test evaluation and of a training batch (about 12 (N, T, H) arrays), the parameters with
        their gradients and Adam's moments. ``batch``: also a gradient measurement of that many sequences in
        float64 (``demo.py gradients``)."""
        T, H, N = self.timesteps, self.lstm_size, self.batch_size
        itemsize = 4 if self.dtype == "float32" else 8
        params = 4 * H * (2 + H + 1) + H + 1
        total = itemsize * ((TEST_SIZE + N) * T * (2 + 12 * H) + 6 * params)
        if batch is not None:
            total += 8.0 * batch * T * (2 + 16 * H) + 8.0 * 6 * params
        return float(total)


class AddingProgress(Progress):
    """The trainer's progress line with the test MSE and the training seconds."""

    def line(self, step, losses, metrics=None) -> str:
        recent = losses[-self.window:]
        loss = sum(recent) / len(recent) if recent else float("nan")
        text = (f"step {step}  train MSE {loss:.4f}  {self.rate(step):5.1f} steps/s  "
                f"elapsed {format_seconds(self.elapsed())}")
        if metrics:
            text += f"  test MSE {metrics['test MSE']:.4f}"
        return text


def settings_from_checkpoint(path) -> AddingSettings:
    ck = read_checkpoint(path)
    stored = ck.user.get("settings")
    if ck.user.get("demo") != "adding" or not isinstance(stored, dict):
        raise ValueError(f"{ck.path} is a numpylstm checkpoint but not one of the adding demo")
    unknown = sorted(set(stored) - {f.name for f in fields(AddingSettings)})
    if unknown:
        raise ValueError(f"{ck.path}: stored adding settings have unknown keys {unknown}")
    return AddingSettings(**stored).check()


def _history(path):
    """(settings, [(step, seconds, test MSE), ...]) from an adding checkpoint."""
    ck = read_checkpoint(path)
    s = settings_from_checkpoint(path)
    evals = ck.user.get("trainer", {}).get("evals", [])
    return s, [(int(st), float(m["seconds"]), float(m["test MSE"])) for st, m in evals]


def plot_adding(out, outputs=None) -> Path | None:
    """DIR/adding.png: test MSE against training time for every DIR/<cell>.npz, with the baseline."""
    from .plots import _figure, _save

    out = Path(out)
    runs = [(c, out / f"{c}.npz") for c in CELLS if (out / f"{c}.npz").is_file()]
    if not runs:
        return None
    fig, ax = _figure(8.0, 5.0)
    others = iter(["#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000",
                   "#c49c94"])  # one for each of the other cells, none the target line's green
    colours = {"lstm": "#1f77b4", "rnn": "#d62728"}
    for cell, path in runs:
        colours.setdefault(cell, next(others))
        s, hist = _history(path)
        if not hist:
            continue
        secs = [h[1] for h in hist]
        ax.plot(secs, [h[2] for h in hist], "-", color=colours[cell],
                label=f"{cell_title(cell)}, H = {s.lstm_size}, T = {s.timesteps}: {hist[-1][2]:.2g} after "
                      f"{hist[-1][0]} steps")
    ax.axhline(BASELINE, color="#555555", linestyle="--", linewidth=1, label="baseline: always predict 1 (1/6)")
    ax.axhline(0.01, color="#2ca02c", linestyle=":", linewidth=1, label="target 0.01")
    ax.set_yscale("log")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test MSE (1,000 fresh sequences)")
    ax.set_title("the adding problem (Le, Jaitly & Hinton 2015 variant)")
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)  # below the axes: never over a curve
    return _save(fig, out / "adding.png", outputs=outputs)


def run_adding(s: AddingSettings, *, out="runs/adding", resume=None, overwrite=False, plot=True, quiet=False,
               stream=None) -> int:
    """Train one cell on the adding problem for ``s.minutes``; the last line printed is ``test MSE: <value>``.

    Saves DIR/<cell>.npz (an existing one only when it is the ``resume`` file or with ``overwrite``, and a file
    that is not a numpylstm checkpoint never: ``checkpoint.check_replaceable``); exit status
    0, 1 (diverged / checkpoint or plot not written), or 128 + N after signal N (130: Ctrl-C), after saving --
    also while plotting. DIR/adding.png is shared by the runs of both cells: redrawn when numpylstm drew it
    (locked only while it is written), a user's own file never replaced.
    """
    with Outputs(f"demo.py adding --cell {s.cell}") as outputs:
        return _run_adding(s, outputs, out=out, resume=resume, overwrite=overwrite, plot=plot, quiet=quiet,
                           stream=stream)


def _run_adding(s, outputs, *, out, resume, overwrite, plot, quiet, stream):
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    s.check()
    out = Path(out)
    ckpt = out / f"{s.cell}.npz"
    check_replaceable(ckpt, overwrite=overwrite, own=resume, flag=f"--out {out}: the {s.cell} checkpoint")
    outputs.claim(ckpt, "checkpoint", overwrite=overwrite, own=resume, flag=f"--out {out}: the {s.cell} checkpoint")
    if plot:  # shared by both cells' runs: checked now, locked only while it is drawn
        outputs.claim(out / "adding.png", "png", regenerated=True, lock=False)
    dt = chk.resolve_dtype(s.dtype)
    test_x, test_y = adding_batch(TEST_SIZE, s.timesteps, np.random.default_rng([s.seed, 1]), dt)
    model = LSTMModel(2, s.lstm_size, 1, head="last", loss="mse", seed=s.seed, dtype=dt, cell=s.cell)
    opt = Adam(model.params, lr=s.lr)
    spent = [0.0]  # training seconds of earlier (resumed) runs
    clock = [None]  # perf_counter at the start of this run's training
    eval_time = [0.0]  # seconds this run spent evaluating: not training time

    def batches(step):
        return adding_batch(s.batch_size, s.timesteps, np.random.default_rng([s.seed, 0, step]), dt)

    def test_mse(m):
        start = time.perf_counter()
        seconds = spent[0] + start - clock[0] - eval_time[0]  # training seconds so far, evaluations excluded
        pred = m.forward(test_x)[0]
        eval_time[0] += time.perf_counter() - start
        return {"test MSE": float(np.mean((pred.astype(np.float64) - test_y) ** 2)), "seconds": seconds}

    progress = AddingProgress(STEPS_CAP, stream=stream, enabled=not quiet, every=s.eval_every * 4)
    trainer = Trainer(model, opt, batches, STEPS_CAP, schedule=constant_lr(s.lr), clip_norm=s.clip,
                      eval_fn=test_mse, eval_every=s.eval_every, checkpoint_path=ckpt, checkpoint_every=0,
                      user={"demo": "adding", "settings": asdict(s)}, progress=progress, outputs=outputs)
    say(f"adding problem (Le, Jaitly & Hinton 2015 variant): T = {s.timesteps}, {cell_title(s.cell)}, H = "
        f"{s.lstm_size}, {model.num_params():,} parameters, {s.dtype}")
    say(f"  Adam lr {s.lr:g}, clip {s.clip:g}, batch {s.batch_size} fresh sequences per step, {s.minutes:g} "
        f"minutes; test set {TEST_SIZE} fresh sequences; baseline (always predict 1) MSE "
        f"{float(np.mean((test_y - 1.0) ** 2)):.4f} (1/6 in expectation)")
    if resume is not None:
        ck = trainer.resume(resume)
        spent[0] = trainer.evals[-1][1]["seconds"] if trainer.evals else 0.0
        say(f"resumed from {resume} at step {ck.step} ({format_seconds(spent[0])} of training so far)")
    clock[0] = time.perf_counter()
    if not trainer.evals:
        trainer._evaluate()  # the score before training, at 0 s
    result, code = run_for_cli(trainer, resume, time_limit=max(0.0, s.minutes * 60.0 - spent[0]))
    if code is not None:
        return code
    with SaveOnStop(trainer, ckpt, doing="drawing the plot") as stop:
        status = _report(trainer, result, out, plot, say, stream, outputs)
    return status if stop.code is None else stop.code


def _report(trainer, result, out, plot, say, stream, outputs):
    status = 0
    final = trainer.evals[-1][1]
    first_below = next((m["seconds"] for st, m in trainer.evals if m["test MSE"] <= 0.01), None)
    step_below = next((st for st, m in trainer.evals if m["test MSE"] <= 0.01), None)
    say(f"trained {result.step} steps in {final['seconds']:.1f} s (evaluations excluded; "
        f"{result.steps_per_second:.1f} steps/s this run with them); checkpoint: {result.checkpoint}")
    if first_below is not None:
        say(f"test MSE first <= 0.01 at step {step_below}, after {first_below:.1f} s of training")
    else:
        say("test MSE never reached 0.01")
    if plot:
        from .plots import PlotsUnavailable

        from .sine import plot_failed

        try:
            say(f"plot: {plot_adding(out, outputs)}")
        except PlotsUnavailable as exc:
            say(f"plot skipped: {exc}")
        except (OSError, ValueError) as exc:
            status = plot_failed(exc, result.checkpoint)
    print(f"test MSE: {final['test MSE']:.6g}", file=stream, flush=True)
    return status
