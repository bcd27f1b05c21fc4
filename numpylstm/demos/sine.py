"""The sine demo behind ``python demo.py``: data, model, training, evaluation, plots, in one call.

``run_sine(settings, ...)`` is what the command line calls; everything it does is built from the package's
parts (``data.sine_data``, ``LSTMModel``, ``optim.Adam``, ``train.Trainer``, ``checkpoint``, ``plots``), so it
doubles as the worked example of how to use them.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .. import _checks as chk
from .._files import Outputs
from ..checkpoint import read_checkpoint, unused_path
from .data import BatchSampler, sine_data
from .explain import explain_shapes
from ..model import CELLS, LSTMModel
from ..optim import Adam
from ..parallel import resolve_workers, training_on
from ..train import (Progress, SaveOnStop, Trainer, format_seconds, hint_for, run_for_cli,
                    warmup_cosine)

__all__ = ["SineSettings", "build", "run_sine", "settings_from_checkpoint", "rmse"]


@dataclass(frozen=True)
class SineSettings:
    """Everything that determines a run (stored in its checkpoints). Defaults: the TF-1 tutorial's sizes,
    and a schedule tuned so the default run reaches test RMSE <= 2e-4 in a few seconds.

    beta2: Adam's decay of its average of squared gradients (derivations/07_optimizers.md, "Adam's memory").
    0.95 remembers about 20 steps. The common 0.999 remembers about 1000: while this loss falls from about 0.5 to
    about 1e-8 and its gradient's norm from about 0.7 to about 6e-5, that average stays dominated by the early,
    large gradients and the steps shrink far below lr (2000 steps: test RMSE 8e-4 with 0.999, 9e-5 with 0.95)."""

    timesteps: int = 20
    lstm_size: int = 20
    lstm_layers: int = 2
    batch_size: int = 64
    keep_prob: float = 1.0
    steps: int = 2000
    lr: float = 3e-2
    beta2: float = 0.95
    warmup: int = 100  # capped at steps - 1
    clip: float = 5.0
    seed: int = 0
    dtype: str = "float32"
    training_examples: int = 10000
    testing_examples: int = 1000
    sample_gap: float = 0.01
    cell: str = "lstm"  # the layers' cell, one of numpylstm.cells.NAMES (checkpoints made before hold none: lstm)

    def check(self) -> "SineSettings":
        chk.choice("cell", self.cell, CELLS)
        for name in ("timesteps", "lstm_size", "lstm_layers", "batch_size", "steps", "training_examples",
                     "testing_examples"):
            chk.positive_int(name, getattr(self, name))
        if not 0.0 < self.keep_prob <= 1.0 or 1.0 - self.keep_prob >= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1] (and not so small that 1 - keep_prob rounds to 1); "
                             f"got {self.keep_prob!r}")
        if isinstance(self.beta2, bool) or not isinstance(self.beta2, (int, float)) or not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"beta2 must be a number in [0, 1); got {self.beta2!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer; got {self.warmup!r}")
        chk.resolve_dtype(self.dtype)
        if self.memory_bytes() > self.MAX_MEMORY:
            raise ValueError(
                f"these sizes need about {self.memory_bytes() / 1e9:.0f} GB of memory (timesteps {self.timesteps}, "
                f"lstm_size {self.lstm_size}, lstm_layers {self.lstm_layers}, batch_size {self.batch_size}); "
                f"the limit is {self.MAX_MEMORY / 1e9:.0f} GB: make them smaller")
        return self

    @property
    def warmup_steps(self) -> int:
        """The warm-up actually used: ``warmup`` capped at steps - 1, so the schedule reaches its peak."""
        return min(self.warmup, self.steps - 1)

    MAX_MEMORY = 8e9  # bytes; beyond this a typo (--timesteps 200000) would swap the machine to a halt

    def memory_bytes(self) -> float:
        """A rough upper estimate of the run's peak memory: the data windows, the parameters with their
        gradients and Adam moments, and the forward caches of a training batch and of the test-set evaluation."""
        T, H, L = self.timesteps, self.lstm_size, self.lstm_layers
        params = L * 4 * H * (2 * H + 1) + H + 1
        cache_per_row = L * T * H * 8  # gates (4H), cell and hidden states, tanh(c), dropout mask
        rows = self.batch_size + self.testing_examples
        itemsize = 4 if self.dtype == "float32" else 8
        return float(itemsize) * ((self.training_examples + self.testing_examples) * (T + 1) + 6 * params
                                  + rows * cache_per_row)


def cell_title(cell) -> str:
    """How the demos name a cell in their first line: "LSTM", "GRU", "peephole LSTM", "NFG (peephole LSTM
    variant)"."""
    titles = {"lstm": "LSTM", "rnn": "tanh RNN", "gru": "GRU", "peephole": "peephole LSTM"}
    return titles.get(cell, f"{cell.upper()} (peephole LSTM variant)")


def rmse(pred, target) -> float:
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def build(s: SineSettings, progress=None, checkpoint_path=None, checkpoint_every=0, interrupt_path=None,
          impl="fast", outputs=None):
    """Data, model, optimizer and trainer for settings ``s``. Returns (data, model, trainer).

    impl: the model's layer code, "fast" or "textbook" (same numbers). A run setting, not one of the
    settings ``s``: a checkpoint made with one may be resumed with the other.
    """
    s.check()
    data = sine_data(s.training_examples, s.testing_examples, s.sample_gap, s.timesteps, dtype=s.dtype)
    model = LSTMModel(1, s.lstm_size, 1, num_layers=s.lstm_layers, dropout=1.0 - s.keep_prob, head="last",
                      loss="mse", seed=s.seed, dtype=s.dtype, impl=impl, cell=s.cell)
    opt = Adam(model.params, lr=s.lr, betas=(0.9, s.beta2))

    def test_rmse(m):
        return {"test RMSE": rmse(m.forward(data.test_x)[0], data.test_y)}

    trainer = Trainer(model, opt, BatchSampler(data.train_x, data.train_y, s.batch_size, s.seed), s.steps,
                      schedule=warmup_cosine(s.lr, s.steps, s.warmup_steps), clip_norm=s.clip,
                      eval_fn=test_rmse,
                      eval_every=max(1, s.steps // 10), checkpoint_path=checkpoint_path,
                      checkpoint_every=checkpoint_every, interrupt_path=interrupt_path,
                      user={"demo": "sine", "settings": asdict(s)}, progress=progress, outputs=outputs)
    return data, model, trainer


def settings_from_checkpoint(path, demo="sine") -> SineSettings:
    """The settings a sine-demo checkpoint was trained with (ValueError if it is not one).

    ``demo``: "sine", or "sine-stateful" for ``sine --stateful`` (same settings, other training).
    """
    ck = read_checkpoint(path)
    stored = ck.user.get("settings")
    if ck.user.get("demo") != demo or not isinstance(stored, dict):
        kind = "sine --stateful" if demo == "sine-stateful" else "sine"
        raise ValueError(f"{ck.path} is a numpylstm checkpoint but not one of the {kind} demo")
    if "beta2" not in stored:  # made before beta2 was a setting: those runs used Adam's usual 0.999
        stored = {**stored, "beta2": 0.999}
    names = {f.name for f in fields(SineSettings)}
    unknown = sorted(set(stored) - names)  # settings missing from an older checkpoint take their defaults
    if unknown:
        raise ValueError(f"{ck.path}: stored sine settings have unknown keys {unknown} (a newer numpylstm?)")
    try:
        return SineSettings(**stored).check()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{ck.path}: stored sine settings are unusable ({exc})") from exc


def default_checkpoint(out, outputs=None) -> Path:
    """Where a sine run without --checkpoint saves its trained model (at the end, and on Ctrl-C, SIGTERM, SIGHUP
    or --stop-at): DIR/checkpoint.npz, or checkpoint-2.npz ... when that exists or another run is about to
    write it (an earlier run's file is never replaced). With ``outputs`` the name is claimed (locked) for this
    run."""
    if outputs is not None:
        return outputs.claim_new(Path(out) / "checkpoint.npz")
    return unused_path(Path(out) / "checkpoint.npz")


PLOTS = ("predictions.png", "loss.png", "error.png")


def claim_outputs(outputs, out, plot, checkpoint, resume=None, overwrite=False):
    """Claim (check and lock) every file a sine run writes, before training: the plots in ``out`` (redrawn by
    every run: replaced when numpylstm drew them, a user's own file never) and the checkpoint (``checkpoint``,
    else a free DIR/checkpoint[-K].npz). Returns the checkpoint path. ValueError (one line) if one is taken."""
    if plot:
        for name in PLOTS:
            if checkpoint is not None and Path(checkpoint).resolve() == (Path(out) / name).resolve():
                raise ValueError(f"--checkpoint {checkpoint} is where the plot {name} goes: choose another file "
                                 f"name, another --out, or --no-plot")
            outputs.claim(Path(out) / name, "png", regenerated=True, overwrite=overwrite)
    if checkpoint is not None:
        outputs.claim(checkpoint, "checkpoint", overwrite=overwrite, own=resume, flag=f"--checkpoint {checkpoint}")
        return Path(checkpoint)
    # with plots the trained model is saved beside them: claim its name now; without, it is saved only if the
    # run is stopped early, and its free name is then taken at write time (nothing written otherwise)
    return default_checkpoint(out, outputs if plot else None)


def report_stop(result, total, named, say, resume_hint="--resume"):
    """After ``--stop-at``: say where the work is and how to continue (on stderr too when the path was chosen
    by the demo and --quiet hides stdout)."""
    if result.step >= total or result.checkpoint is None:
        return
    text = (f"stopped at step {result.step} of {total}; checkpoint saved to {result.checkpoint}; continue with "
            f"{hint_for(resume_hint, result.checkpoint)}")
    if say(text) is False and not named:
        print(text, file=sys.stderr, flush=True)


def run_sine(s: SineSettings, *, out="runs/sine", plot=True, explain=False, checkpoint=None,
             checkpoint_every=500, resume=None, stop_at=None, quiet=False, stream=None, impl="fast",
             explain_only=False, overwrite=False, workers=None, rollout=None) -> int:
    """Train and evaluate the sine predictor; print progress and a summary; return an exit status.

    The last line printed is ``test RMSE: <value>`` (whole test set, no dropout). Exit status 0 on success,
    1 if training diverged, 128 + the signal number if stopped by Ctrl-C (130), SIGTERM or SIGHUP (after
    saving a checkpoint: to ``checkpoint``, else to ``default_checkpoint(out)``). impl: the layer code,
    "fast" (``numpylstm/fast.py``) or "textbook" (``numpylstm/textbook.py``, same numbers, slower).
    ``explain_only``: print the settings and every tensor's shape for one batch, then stop (no training,
    nothing written). ``rollout``: K, to also run the free-running forecast of K steps from every test window
    (``rollout.report_rollout``: the errors printed, ``out``/rollout.png drawn).

    Files (``numpylstm._files``): the plots and the checkpoint are claimed before training (ValueError if one
    is taken: a user's own file, another run's checkpoint without ``overwrite``, another run writing there);
    the trained model is saved before the plots are drawn, so a failed plot costs only that plot; a signal
    while evaluating or plotting saves it too (``SaveOnStop``). ``workers``: train on that many processes
    (``numpylstm/parallel.py``; same numbers up to rounding); "auto": ``parallel.auto_workers`` decides; None
    or 1: in this process.
    """
    with Outputs("demo.py sine") as outputs:
        return _run_sine(s, outputs, out=out, plot=plot, explain=explain, checkpoint=checkpoint,
                         checkpoint_every=checkpoint_every, resume=resume, stop_at=stop_at, quiet=quiet,
                         stream=stream, impl=impl, explain_only=explain_only, overwrite=overwrite, workers=workers,
                         rollout=rollout)


def _run_sine(s, outputs, *, out, plot, explain, checkpoint, checkpoint_every, resume, stop_at, quiet, stream,
              impl, explain_only, overwrite, workers, rollout=None):
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: False) if quiet else (lambda text="": print(text, file=stream, flush=True))
    out = Path(out)
    if not explain_only:
        interrupt_path = claim_outputs(outputs, out, plot, checkpoint, resume, overwrite)
        if rollout and plot:
            outputs.claim(out / "rollout.png", "png", regenerated=True, overwrite=overwrite)
    else:
        interrupt_path = None
    progress = Progress(s.steps, stream=stream, enabled=not quiet)
    data, model, trainer = build(s, progress, checkpoint, checkpoint_every, interrupt_path, impl=impl,
                                 outputs=outputs)

    asked = workers not in (None, "auto")  # an explicit --workers K must start, "auto" may fall back
    workers = resolve_workers(workers, model, s.batch_size, s.timesteps)  # "auto": all cores if it pays
    say(f"sine demo: {s.lstm_layers}-layer {cell_title(s.cell)}, lstm_size {s.lstm_size}, timesteps {s.timesteps}, "
        f"batch_size {s.batch_size}, keep_prob {s.keep_prob:g}, {s.dtype}, seed {s.seed}"
        + (f"; layer code numpylstm/{impl}.py" if impl != "fast" else "")
        + (f"; training on {workers} processes (numpylstm/parallel.py; --workers 1 for one)" if workers else ""))
    say(f"  {s.steps} steps of Adam, lr {s.lr:g} (linear warm-up over {s.warmup_steps} steps, then cosine "
        f"decay), beta2 {s.beta2:g}, "
        f"gradient clipping at global norm {s.clip:g}")
    say(f"  data: train x {data.train_x.shape} y {data.train_y.shape}, test x {data.test_x.shape} "
        f"y {data.test_y.shape}; {model.num_params()} parameters")
    if explain or explain_only:
        say("shapes for one batch (--explain):")
        for line in explain_shapes(model, data.train_x[: s.batch_size]):
            say("  " + line)
    if explain_only:
        return 0
    if resume is not None:
        ck = trainer.resume(resume)
        say(f"resumed from {resume} at step {ck.step}")

    with training_on(trainer, workers, s.batch_size, fallback=None if asked else say):
        result, code = run_for_cli(trainer, resume, stop_at=stop_at)
    if code is not None:
        return code
    report_stop(result, s.steps, checkpoint is not None, say)
    with SaveOnStop(trainer, interrupt_path, doing="evaluating on the test set") as stop:
        if plot:
            keep_trained(trainer, result, interrupt_path)
        pred, _ = model.forward(data.test_x)
        tail = result.losses[-100:]
        say(f"trained {result.steps_run} steps in {format_seconds(result.seconds)} ({result.seconds:.1f} s, "
            f"{result.steps_per_second:.0f} steps/s); step {result.step} of {s.steps}; "
            f"training loss (mean of last {len(tail)}) {np.mean(tail) if tail else float('nan'):.3e}")
        if rollout:
            from .rollout import report_rollout

            stop.doing = "forecasting free-running"
            report_rollout(model, data, rollout, png=out / "rollout.png" if plot else None, say=say, outputs=outputs)
        status = finish_run(result, say, stream, out if plot else None, data.test_t, data.test_y, pred,
                            baseline=data.test_x[:, -1], outputs=outputs, stop=stop)
    return status if stop.code is None else stop.code


def keep_trained(trainer, result, path):
    """Checkpoint first, then plots: a finished run that writes files (plots) but whose state is not on disk
    yet (no --checkpoint) saves it to ``path`` now, so nothing that happens while drawing can lose it."""
    if trainer.saved_step != trainer.step:
        try:
            result.checkpoint = trainer.save(path)
        except OSError as exc:  # a full disk: say so, and still print the results
            print(f"warning: could not save the trained model to {path} ({exc.strerror or exc})", file=sys.stderr,
                  flush=True)


def finish_run(result, say, stream, out, t, truth, pred, baseline, title=None, outputs=None, stop=None):
    """The sine demos' last lines: the checkpoint, the three plots (into folder ``out``; None: no plots),
    the RMSE of repeating the last input value (``baseline``, aligned with ``truth``), and ``test RMSE``.
    A plot that cannot be written (a full disk, a file that changed hands) is one line on stderr and exit
    status 1 at the end; the other lines are still printed. Returns the exit status."""
    status = 0
    if result.checkpoint:
        say(f"checkpoint: {result.checkpoint}")
    if out is not None:
        from .plots import PlotsUnavailable, plot_sine_run

        if stop is not None:
            stop.doing = "drawing the plots"
        try:
            paths = plot_sine_run(out, t, truth, pred, result.losses, title=title, outputs=outputs)
            say("plots: " + ", ".join(str(p) for p in paths))
        except PlotsUnavailable as exc:
            say(f"plots skipped: {exc}")
        except (OSError, ValueError) as exc:
            status = plot_failed(exc, result.checkpoint)
    say(f"baseline (predict the last input value again) RMSE: {rmse(baseline, truth):.6g}")
    print(f"test RMSE: {rmse(pred, truth):.6g}", file=stream, flush=True)
    return status


def plot_failed(exc, checkpoint) -> int:
    """One line on stderr for a plot that could not be written; returns the exit status 1."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    kept = f"; the trained model is safe in {checkpoint}" if checkpoint else ""
    name = f" {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
    print(f"error: could not write the plot{name} ({why}){kept}", file=sys.stderr, flush=True)
    return 1
