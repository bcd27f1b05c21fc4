"""A reusable training loop: learning-rate schedules, clipping, progress/ETA, checkpoints, divergence stop.

``Trainer`` drives any model with ``loss_and_grads(x, y, state=None, train=True) -> (loss, grads, state)``
(``LSTMModel``) and any optimizer of ``numpylstm.optim``. Each step:

    lr = schedule(step)                        # step counts from 0
    x, y = batches(step)                       # or next(batches) for an iterator
    loss, grads, state = model.loss_and_grads(x, y, state=carried or None, train=True)
    norm = clip_grad_norm(grads, clip_norm)    # global norm, before clipping
    optimizer.step(grads)

A non-finite loss or gradient norm stops training with ``TrainingDiverged`` before the optimizer touches the
weights, so the model still holds the last good weights and the last checkpoint on disk is kept. So does a
loss that is finite but has exploded: more than ``divergence_factor`` (100) times the starting loss -- the
loss of the initial weights, the first entry of the loss history -- for ``divergence_steps`` (20) steps in a
row. (A healthy run's loss falls below its start; a spike passes in fewer steps.) While the loss is above
that bound no periodic checkpoint is written, so the last one on disk predates the explosion.

Ctrl-C (SIGINT), SIGTERM and SIGHUP do not tear a step in half: the signal is noted, the current step
finishes, a checkpoint is written and ``run`` returns with ``interrupted=True`` and ``signal`` set. A second
signal -- even one arriving a few milliseconds after the first, or during that final save -- aborts at once
with ``RunAborted`` (a ``KeyboardInterrupt``); an aborted save leaves the previous checkpoint intact.

Stateful training (truncated BPTT over a long stream, as in the char-RNN): with ``stateful=True`` each batch's
final state (L, 2, N, H) is the next batch's initial state; ``reset_state(step) -> bool`` says when to start
again from zeros (e.g. at the start of every pass over the stream).

Resuming is exact: batches are a function of the step number (or the caller fast-forwards the iterator),
and a checkpoint holds the weights, the optimizer's moments, the model's RNG (dropout masks), the step, the
loss history and the carried state, so a resumed run ends with the same weights, bit for bit, as an
uninterrupted one.
"""

from __future__ import annotations

import math
import numbers
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks as chk
from ._cli import SafeStream, safe_streams
from .checkpoint import load_checkpoint, save_checkpoint
from .optim import clip_grad_norm, global_norm

__all__ = ["constant_lr", "warmup_cosine", "Progress", "Trainer", "TrainResult", "TrainingDiverged", "RunAborted",
           "format_seconds", "run_for_cli", "pipe_safe_stdout", "check_memory", "MAX_MEMORY", "SaveOnStop"]

MAX_MEMORY = 8e9  # bytes; beyond this a typo (--lstm-size 50000) would swap the machine to a halt


def check_memory(nbytes, sizes: str) -> None:
    """One-line ValueError, before anything is allocated, when a run would need more than ``MAX_MEMORY``."""
    if nbytes > MAX_MEMORY:
        raise ValueError(f"these sizes need about {nbytes / 1e9:.0f} GB of memory ({sizes}); the limit is "
                         f"{MAX_MEMORY / 1e9:.0f} GB: make them smaller")


# --------------------------------------------------------------------------- schedules


def _positive(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def _non_negative_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def constant_lr(lr):
    """Schedule: the same learning rate at every step."""
    lr = _positive("lr", lr)
    return lambda step: lr


def warmup_cosine(lr, total_steps, warmup_steps=0, final_lr=0.0):
    """Schedule: linear warm-up to ``lr`` over ``warmup_steps``, then half a cosine down to ``final_lr``.

    Step s (0-based) of ``total_steps`` gets lr * (s + 1) / warmup_steps while s < warmup_steps, then
    final_lr + (lr - final_lr) * (1 + cos(pi * p)) / 2 with p = (s - warmup_steps) / (total_steps - warmup_steps)
    going from 0 towards 1. Warm-up lets Adam's second-moment estimate settle before full-size steps;
    the cosine tail shrinks the steps so the weights settle into a minimum instead of rattling around it.
    """
    lr = _positive("lr", lr)
    total = chk.positive_int("total_steps", total_steps)
    warm = _non_negative_int("warmup_steps", warmup_steps)
    if warm >= total:
        raise ValueError(f"warmup_steps must be smaller than total_steps = {total}; got {warm}")
    if isinstance(final_lr, bool) or not isinstance(final_lr, numbers.Real) or not 0 <= final_lr <= lr:
        raise ValueError(f"final_lr must be a number in [0, lr = {lr}]; got {final_lr!r}")
    final = float(final_lr)

    def schedule(step):
        if step < warm:
            return lr * (step + 1) / warm
        p = min(1.0, (step - warm) / (total - warm))
        return max(final + (lr - final) * 0.5 * (1.0 + math.cos(math.pi * p)), 1e-12)

    return schedule


# --------------------------------------------------------------------------- progress


def format_seconds(s: float) -> str:
    """``75.3`` -> ``'1:15'``; ``3725`` -> ``'1:02:05'``."""
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """One progress line: step, smoothed loss, steps/s, elapsed, ETA (and the latest eval metrics).

    On a terminal the line is rewritten in place (at most ``refresh`` times a second); otherwise -- a log file,
    a pipe, a test -- a full line is printed every ``every`` steps (default: a tenth of the run).
    ``enabled=False`` prints nothing.
    """

    def __init__(self, total_steps, *, stream=None, enabled=True, every=None, tty=None, refresh=10.0, window=100):
        self.total = chk.positive_int("total_steps", total_steps)
        self.stream = sys.stdout if stream is None else stream
        self.enabled = enabled
        self.every = max(1, self.total // 10) if every is None else chk.positive_int("every", every)
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.refresh = refresh
        self.window = window
        self._t0 = self._first = None
        self._last_draw = 0.0
        self._width = 0
        self.metrics_step = None  # the step the metrics passed to update() were measured at

    def start(self, step):
        self._t0, self._first = time.perf_counter(), step

    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def rate(self, step) -> float:
        el = self.elapsed()
        return (step - self._first) / el if el > 0 and step > self._first else float("nan")

    def line(self, step, losses, metrics=None) -> str:
        recent = losses[-self.window :]
        loss = sum(recent) / len(recent) if recent else float("nan")
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        width = len(str(self.total))
        text = (f"step {step:>{width}}/{self.total}  loss {loss:.3e}  {rate:6.1f} steps/s  "
                f"elapsed {format_seconds(self.elapsed())}  ETA {format_seconds(eta)}")
        return text + self.metrics_text(step, metrics, "{:.3e}")

    def metrics_text(self, step, metrics, fmt) -> str:
        """``  name value`` for each eval metric, then ``(N steps ago)`` when they are older than ``step``
        (``metrics_step``, set by the trainer, is the step they were measured at)."""
        text = "".join(f"  {k} {fmt.format(v)}" for k, v in (metrics or {}).items())
        at = self.metrics_step
        if text and at is not None and at < step:
            text += f" ({step - at} steps ago)"
        return text

    def update(self, step, losses, metrics=None):
        if not self.enabled:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 1.0 / self.refresh and step < self.total:
                return
            self._last_draw = now
            text = self.line(step, losses, metrics)
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + pad)
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            self.stream.write(self.line(step, losses, metrics) + "\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


# --------------------------------------------------------------------------- the loop


class TrainingDiverged(RuntimeError):
    """Raised when the loss or the gradient norm stops being finite. The weights are the last good ones."""

    def __init__(self, message, step, last_loss, checkpoint=None):
        super().__init__(message)
        self.step, self.last_loss, self.checkpoint = step, last_loss, checkpoint


class RunAborted(KeyboardInterrupt):
    """A second stop signal (Ctrl-C, SIGTERM, SIGHUP) during a run: it ends at once, without a final save."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def signal_name(signum) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def hint_for(resume_hint, checkpoint) -> str:
    """How to continue from ``checkpoint``: ``resume_hint`` + the file, or ``resume_hint`` with ``{checkpoint}``
    filled in when it has that placeholder (a whole command line)."""
    return (resume_hint.format(checkpoint=checkpoint) if "{checkpoint}" in resume_hint
            else f"{resume_hint} {checkpoint}")


def run_for_cli(trainer, resumed=None, resume_hint="--resume", **run_kwargs):
    """``trainer.run(**run_kwargs)`` for a command line: returns (result, None) when training finished, or
    (None, exit code) after printing one line to stderr -- 1 when training diverged or a checkpoint could not
    be written (disk full, permissions; saves are atomic, so the previous file is intact: say which),
    128 + the signal number after Ctrl-C (130), SIGTERM (143) or SIGHUP (129), with the flag to continue
    (``resume_hint`` + the checkpoint), and the same after a second signal aborted the run at once.
    """
    def fail(message, code):
        try:
            print(message, file=sys.stderr, flush=True)
        except OSError:  # stderr gone too: the exit status still tells
            pass
        return None, code

    try:
        result = trainer.run(**run_kwargs)
    except TrainingDiverged as exc:
        return fail(f"error: {exc}", 1)
    except KeyboardInterrupt as exc:  # RunAborted: a second signal; or a KeyboardInterrupt outside run()'s guard
        signum = getattr(exc, "signum", signal.SIGINT)
        kept = trainer.last_checkpoint or resumed
        where = (f"the last checkpoint {kept} is intact; continue with {hint_for(resume_hint, kept)}" if kept
                 else "no checkpoint was written")
        return fail(f"aborted at once by a second {signal_name(signum)} near step {trainer.step}; {where}",
                    128 + int(signum))
    except BrokenPipeError:
        raise  # stdout went away (`| head`) outside pipe_safe_stdout: not a checkpoint problem
    except OSError as exc:
        kept = trainer.last_checkpoint or resumed
        where = f"the previous checkpoint {kept} is intact" if kept else "no checkpoint was written"
        return fail(f"error: could not write a checkpoint ({exc}); {where}", 1)
    if result.interrupted:
        what = "interrupted" if result.signal in (None, signal.SIGINT) else f"stopped by {signal_name(result.signal)}"
        where = (f"checkpoint saved to {result.checkpoint}; continue with {hint_for(resume_hint, result.checkpoint)}"
                 if result.checkpoint else "nothing saved (the trainer has no checkpoint path)")
        return fail(f"{what} at step {result.step}; {where}", 128 + int(result.signal or signal.SIGINT))
    return result, None


@dataclass
class TrainResult:
    step: int  # completed steps in total (including those before a resume)
    steps_run: int  # steps taken by this call
    seconds: float  # wall time of this call
    interrupted: bool  # stopped by Ctrl-C, SIGTERM or SIGHUP (a checkpoint was written if a path was known)
    losses: list = field(default_factory=list)  # the whole loss history, one float per step
    checkpoint: Path | None = None  # last checkpoint written by this call
    signal: int | None = None  # the signal that interrupted the run

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / self.seconds if self.seconds > 0 else float("nan")


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _install_stop_handler(handler) -> dict:
    """``handler`` for every stop signal the process does not ignore (``nohup``, a background job's SIGINT stay
    ignored); returns {signal: the handler it replaced}, for putting them back. Main thread only."""
    old = {}
    for sig in _STOP_SIGNALS:
        try:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                old[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):
            pass
    return old


class _StopSignals:
    """While active, the first SIGINT/SIGTERM/SIGHUP only sets ``signum``; a second one raises ``RunAborted``.

    Python runs a signal handler only between bytecodes, so two signals arriving during one long C call (a
    big matrix product) would reach it as one. The C-level handler also writes one byte per signal to the
    "wakeup fd"; counting those bytes tells two signals from one. Signals the process ignores (``nohup``,
    a background job's SIGINT) stay ignored. Only in the main thread (elsewhere signals cannot be handled).
    """

    def __init__(self):
        self.signum = None
        self._order = []  # stop signals so far, in the order they came
        self._aborted = False
        self._old = {}
        self._pipe = None
        self._old_wakeup = -1

    def _arrived(self) -> list:
        """The stop signals the C handler saw since the last call, in the order they came ([] if unknown)."""
        seen = []
        if self._pipe is not None:
            try:
                while True:
                    data = os.read(self._pipe[0], 512)
                    if not data:
                        break
                    seen += [b for b in data if b in _STOP_SIGNALS]
            except OSError:  # BlockingIOError: drained
                pass
        return seen

    def _handler(self, signum, frame):
        # Python runs the handlers of signals that came during one C call in signal-number order, not in the
        # order they came: the wakeup bytes keep that order, so the second one is named right
        self._order += self._arrived() or [signum]
        if len(self._order) >= 2:
            self.signum = self.signum or self._order[0]
            if not self._aborted:
                self._aborted = True
                raise RunAborted(self._order[1])
            return
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        self._old = _install_stop_handler(self._handler)
        try:
            r, w = os.pipe()
        except OSError:
            return self
        try:
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            self._pipe = (r, w)
        except (OSError, ValueError, AttributeError):
            os.close(r)
            os.close(w)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        return False


_PipeSafeStream = SafeStream  # the name earlier code imports


class pipe_safe_stdout:
    """``with pipe_safe_stdout() as out:`` -- ``sys.stdout`` survives a closed pipe or a closed terminal (EPIPE,
    EIO) for the block's duration: printing stops, the program goes on (and ``out.broken`` says whether the
    reader left). See ``numpylstm._cli`` for the whole set of rules a command follows."""

    def __enter__(self):
        self._inner = safe_streams(stderr=False)
        (self.stream,) = self._inner.__enter__()
        return self.stream

    def __exit__(self, *exc):
        return self._inner.__exit__(*exc)


class SaveOnStop:
    """``with SaveOnStop(trainer, path) as stop: ...`` around what a command does *after* training (the final
    evaluation, the plots, a sample): Ctrl-C, SIGTERM or SIGHUP there stops it at once, but the trained state is
    saved first (unless the last checkpoint already holds it) and one line says where and how to continue
    (``resume_hint`` + the file). Afterwards ``stop.code`` is 128 + the signal number, or None if nothing
    happened. Set ``stop.doing`` (e.g. "drawing the plots") to say what was interrupted.

        with SaveOnStop(trainer, default_path, "--resume") as stop:
            ... evaluate, plot ...
        if stop.code is not None:
            return stop.code
    """

    def __init__(self, trainer, path=None, resume_hint="--resume", doing="evaluating"):
        self.trainer, self.path, self.resume_hint, self.doing = trainer, path, resume_hint, doing
        self.code = None
        self._old = {}

    def _handler(self, signum, frame):
        raise RunAborted(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = _install_stop_handler(self._handler)
        return self

    def _restore(self):
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError):
                pass
        self._old = {}

    def __exit__(self, typ, exc, tb):
        if typ is None or not issubclass(typ, KeyboardInterrupt):
            self._restore()
            return False
        signum = getattr(exc, "signum", signal.SIGINT)
        for sig in self._old:  # a second signal now only waits for the save (a few milliseconds) to finish
            try:
                signal.signal(sig, lambda *a: None)
            except (OSError, ValueError):
                pass
        try:
            tr = self.trainer
            what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"
            where = f"after training (step {tr.step}), while {self.doing}"
            try:
                if tr.last_checkpoint is not None and tr.saved_step == tr.step:
                    path = tr.last_checkpoint
                elif self.path is not None or tr.checkpoint_path is not None:
                    path = tr.save(self.path)
                else:
                    path = None
            except (OSError, ValueError) as err:
                _say(f"{what} {where}; the trained model could not be saved ({err})")
                self.code = 128 + int(signum)
                return True
            if path is None:
                _say(f"{what} {where}; nothing saved (no checkpoint path)")
            else:
                _say(f"{what} {where}; checkpoint saved to {path}; continue with {hint_for(self.resume_hint, path)}")
            self.code = 128 + int(signum)
            return True
        finally:
            self._restore()


def _say(text):
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class Trainer:
    """Train ``model`` with ``optimizer`` on ``batches`` for ``total_steps`` steps (see the module docstring).

    Args:
        model: an ``LSTMModel`` (or anything with ``params``, ``config``, ``rng``, ``loss_and_grads``).
        optimizer: an optimizer over ``model.params`` (``numpylstm.optim.Adam`` ...); its ``lr`` is set from
            ``schedule`` before every step.
        batches: ``batches(step) -> (x, y)`` (preferred: resumable as is), or an iterator of (x, y) pairs.
        total_steps: length of the run; also what the schedule and the ETA are measured against.
        schedule: ``schedule(step) -> lr``; default: the optimizer's current lr throughout.
        clip_norm: rescale gradients to this global L2 norm when larger (None: no clipping).
        stateful: carry each batch's final state into the next batch; ``reset_state(step) -> bool`` restarts
            from zeros (None: never, except at step 0 of a fresh run).
        eval_fn: ``eval_fn(model) -> dict[str, float]``, run every ``eval_every`` steps and after the last step
            (of ``total_steps`` or ``stop_at``); results
            go to ``evals`` (list of (step, dict)) and onto the progress line.
        checkpoint_path: where ``save`` writes, every ``checkpoint_every`` steps (0: only at the end) and on
            Ctrl-C. None: no checkpoints unless ``interrupt_path`` is given.
        interrupt_path: where Ctrl-C, SIGTERM, SIGHUP and a run stopped early (``stop_at``) save when
            ``checkpoint_path`` is None (default ``checkpoint_path``).
        divergence_factor, divergence_steps: stop with ``TrainingDiverged`` when the loss stays above
            ``divergence_factor`` times the starting loss (the first step's) for ``divergence_steps``
            steps in a row (None: only NaN/inf count as divergence).
        user: JSON-able dict stored in every checkpoint (run settings); extra: dict name -> array stored too
            (a vocabulary, ...).
        progress: a ``Progress`` (default: one printing to stdout). A progress line that cannot be printed
            (the terminal was closed, the disk is full) turns the progress off; the training goes on.
        outputs: a ``numpylstm._files.Outputs``: every checkpoint is written by its rule (a file that changed
            hands during the run is not replaced; the checkpoint goes beside it). None: ``save_checkpoint``'s.
        engine: computes the training steps' ``loss_and_grads`` in place of the model (same arguments and
            results), e.g. ``numpylstm.parallel.DataParallel(model)``: data parallel over processes. None: the
            model itself. Evaluation and checkpoints always use the model.
    """

    def __init__(self, model, optimizer, batches, total_steps, *, schedule=None, clip_norm=5.0, stateful=False,
                 reset_state=None, eval_fn=None, eval_every=0, checkpoint_path=None, checkpoint_every=0,
                 interrupt_path=None, user=None, extra=None, progress=None, divergence_factor=100.0,
                 divergence_steps=20, outputs=None, engine=None):
        self.model, self.optimizer, self.engine = model, optimizer, engine
        if not callable(batches) and not hasattr(batches, "__next__"):
            raise ValueError("batches must be a callable batches(step) -> (x, y) or an iterator of (x, y)")
        self.batches = batches
        self.total_steps = chk.positive_int("total_steps", total_steps)
        base_lr = optimizer.lr
        self.schedule = schedule if schedule is not None else (lambda step: base_lr)
        self.clip_norm = None if clip_norm is None else _positive("clip_norm", clip_norm)
        self.stateful = bool(stateful)
        self.reset_state = reset_state
        self.eval_fn = eval_fn
        self.eval_every = _non_negative_int("eval_every", eval_every)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = _non_negative_int("checkpoint_every", checkpoint_every)
        self.interrupt_path = Path(interrupt_path) if interrupt_path is not None else self.checkpoint_path
        self.user = dict(user or {})
        self.extra = dict(extra or {})
        self.progress = progress if progress is not None else Progress(self.total_steps)
        self.step = 0  # completed steps
        self.losses: list[float] = []
        self.evals: list = []
        self.state = None  # carried (L, 2, N, H) state when stateful
        self.last_checkpoint: Path | None = None
        self.saved_step = None  # the step of last_checkpoint
        self.outputs = outputs
        self.divergence_factor = None if divergence_factor is None else _positive("divergence_factor",
                                                                                  divergence_factor)
        self.divergence_steps = chk.positive_int("divergence_steps", divergence_steps)
        self._above = 0  # consecutive steps with the loss above the divergence bound

    # ---------------------------------------------------------------- checkpoints
    def save(self, path=None) -> Path:
        """Write a checkpoint of the whole training state to ``path`` (default ``checkpoint_path``)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("save needs a path: none given and the trainer has no checkpoint_path")
        extra = dict(self.extra)
        extra["losses"] = np.asarray(self.losses, dtype=np.float64)
        if self.stateful and self.state is not None:
            extra["state"] = self.state
        user = dict(self.user)
        user["trainer"] = {"total_steps": self.total_steps, "evals": [[s, m] for s, m in self.evals]}

        def write(p):
            return save_checkpoint(p, self.model, self.optimizer, step=self.step, user=user, extra=extra)

        written = Path(write(path) if self.outputs is None else self.outputs.save_checkpoint(path, write))
        if written.resolve() != path.resolve():  # the file changed hands during the run: it went beside it
            if path == self.checkpoint_path:
                self.checkpoint_path = written  # and so do the later saves
            path = written
        self.last_checkpoint, self.saved_step = path, self.step  # the name as given (a link stays the link)
        return path

    def resume(self, path, new_total=False):
        """Restore weights, optimizer, RNG, step, loss history and carried state from ``path``.

        Raises ValueError if the checkpoint does not fit (architecture, optimizer, total_steps unless
        ``new_total``: a run whose budget the caller changed on purpose) -- before anything is changed.
        Returns the ``Checkpoint``.
        """
        from .checkpoint import read_checkpoint

        ck = read_checkpoint(path)
        info = ck.user.get("trainer")
        if not isinstance(info, dict) or "total_steps" not in info:
            raise ValueError(f"checkpoint {ck.path} has no training state (meta['user']['trainer'])")
        total = info["total_steps"]
        if isinstance(total, bool) or not isinstance(total, int) or total < ck.step:
            raise ValueError(f"checkpoint {ck.path}: meta['user']['trainer']['total_steps'] must be an integer "
                             f">= its step; got {total!r}")
        if total != self.total_steps and not new_total:
            raise ValueError(f"checkpoint {ck.path} belongs to a run of {total} steps, "
                             f"not {self.total_steps}")
        if ck.step > self.total_steps:
            raise ValueError(f"checkpoint {ck.path} is at step {ck.step}, past total_steps {self.total_steps}")
        losses = ck.extra.get("losses")
        if losses is None or losses.shape != (ck.step,) or losses.dtype.kind != "f":
            raise ValueError(f"checkpoint {ck.path}: loss history must have one entry per step ({ck.step})")
        evals = _parse_evals(info.get("evals", []), ck.step)
        if evals is None:
            raise ValueError(f"checkpoint {ck.path}: meta['user']['trainer']['evals'] must be a list of "
                             f"[step, {{name: number}}] pairs; got {str(info.get('evals'))[:60]!r}")
        ck = load_checkpoint(path, self.model, self.optimizer)
        self.step = ck.step
        self.losses = [float(v) for v in losses]
        self.evals = evals
        self.state = ck.extra.get("state") if self.stateful else None
        if self.state is not None:
            self.state = np.array(self.state, dtype=self.model.dtype)
        return ck

    # ---------------------------------------------------------------- the loop
    def _over_bound(self, loss) -> bool:
        """Is ``loss`` above ``divergence_factor`` x the starting loss (the loss of the initial weights)?"""
        if self.divergence_factor is None or not self.losses:
            return False
        start = self.losses[0]
        return start > 0 and loss > self.divergence_factor * start

    def _next_batch(self, step):
        return self.batches(step) if callable(self.batches) else next(self.batches)

    def _diverged(self, step, what, value, lr):
        kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                else "no checkpoint was written")
        if what == "exploded":  # finite, but above the bound for divergence_steps steps
            start = self.losses[0]
            bound = self.divergence_factor * start
            at = next((i for i in range(len(self.losses) - 1, -1, -1) if self.losses[i] <= bound), None)
            last = self.losses[at] if at is not None else float("nan")
            msg = (f"training diverged at step {step + 1}: the loss is {value:.4g}, more than "
                   f"{self.divergence_factor:g} times the starting loss {start:.4g} for {self.divergence_steps} "
                   f"steps in a row (last loss below that {last:.4g} at step {(at or 0) + 1})")
        else:
            last = next((v for v in reversed(self.losses) if math.isfinite(v)), float("nan"))
            msg = f"training diverged at step {step + 1}: the {what} is {value} (last finite loss {last:.4g} at step {step})"
        msg += (f". Try a lower learning rate (--lr, now {lr:.3g}) or a smaller gradient clipping norm; {kept}.")
        return TrainingDiverged(msg, step + 1, last, self.last_checkpoint)

    def _progress(self, fn, *args):
        """A progress line that cannot be written (EIO: the terminal was closed; ENOSPC ...) must not end the
        run before its save: the progress goes quiet, the training goes on."""
        try:
            fn(*args)
        except OSError:
            self.progress.enabled = False

    def _evaluate(self):
        if self.eval_fn is None:
            return None
        metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
        self.evals.append((self.step, metrics))
        return metrics

    def run(self, stop_at=None, time_limit=None) -> TrainResult:
        """Train from ``self.step`` up to ``total_steps`` (or ``stop_at``), then return a ``TrainResult``.

        ``time_limit`` (seconds, optional): a wall-clock budget; the run ends, as if it had reached
        ``stop_at``, after the first step that finishes past it (0 or less: no steps).

        Writes a checkpoint every ``checkpoint_every`` steps and at the end when ``checkpoint_path`` is set.
        Raises ``TrainingDiverged`` on a NaN/inf loss or gradient.
        """
        end = self.total_steps if stop_at is None else min(self.total_steps, _non_negative_int("stop_at", stop_at))
        first = self.step
        if time_limit is not None and not time_limit > 0:
            end = min(end, first)
        model, opt, prog = self.model, self.optimizer, self.progress
        metrics = self.evals[-1][1] if self.evals else None
        prog.metrics_step = self.evals[-1][0] if self.evals else None
        interrupted = False
        self._above = 0
        prog.start(first)
        t0 = time.perf_counter()
        # the signal guard covers the final save too: a second signal during it aborts the save at once
        with _StopSignals() as stop:
            try:
                # overflow/invalid warnings would only precede the divergence message, which says it better
                with np.errstate(over="ignore", invalid="ignore"):
                    while self.step < end:
                        step = self.step
                        lr = self.schedule(step)
                        opt.lr = lr
                        x, y = self._next_batch(step)
                        if self.stateful and self.reset_state is not None and self.reset_state(step):
                            self.state = None
                        state = self.state if self.stateful else None
                        step_fn = model.loss_and_grads if self.engine is None else self.engine.loss_and_grads
                        loss, grads, new_state = step_fn(x, y, state=state, train=True)
                        if not math.isfinite(loss):
                            raise self._diverged(step, "loss", loss, lr)
                        self._above = self._above + 1 if self._over_bound(loss) else 0
                        if self._above >= self.divergence_steps:
                            raise self._diverged(step, "exploded", loss, lr)
                        if self.clip_norm is not None:
                            norm = clip_grad_norm(grads, self.clip_norm)
                        else:
                            norm = global_norm(grads)
                        if not math.isfinite(norm):
                            raise self._diverged(step, "gradient norm", norm, lr)
                        opt.step(grads)
                        if self.stateful:
                            self.state = new_state
                        self.losses.append(loss)
                        self.step = step + 1
                        if time_limit is not None and time.perf_counter() - t0 >= time_limit:
                            end = self.step  # out of time: finish like a run that reached its last step
                        if self.step == end or (self.eval_every and self.step % self.eval_every == 0):
                            metrics = self._evaluate()  # at the end too, so the last progress line shows it
                            prog.metrics_step = self.step
                        if (self.checkpoint_path is not None and self.checkpoint_every and not self._above
                                and self.step % self.checkpoint_every == 0 and self.step < end):
                            self.save()  # (not while the loss is exploding: keep the last good one)
                        self._progress(prog.update, self.step, self.losses, metrics)
                        if stop.signum is not None:
                            interrupted = True
                            break
                    if not interrupted and self.step == first and not self.evals:
                        metrics = self._evaluate()  # nothing to train (resumed at the end): evaluate anyway
            finally:
                self._progress(prog.close)
            seconds = time.perf_counter() - t0
            if self.checkpoint_path is not None and not interrupted:
                self.save()
            elif self.interrupt_path is not None and (interrupted or self.step < self.total_steps):
                self.save(self.interrupt_path)  # Ctrl-C, SIGTERM, SIGHUP or stop_at: keep the work
            if stop.signum is not None:  # also a first signal that came during the final save
                interrupted = True
        return TrainResult(step=self.step, steps_run=self.step - first, seconds=seconds, interrupted=interrupted,
                           losses=self.losses, checkpoint=self.last_checkpoint,
                           signal=stop.signum if interrupted else None)


def _parse_evals(evals, last_step):
    """A checkpoint's [[step, {name: value}], ...] as [(int, dict)], or None if it is malformed."""
    if not isinstance(evals, list):
        return None
    out = []
    for item in evals:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        step, metrics = item
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= last_step:
            return None
        if not isinstance(metrics, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in metrics.items()):
            return None
        out.append((step, dict(metrics)))
    return out
