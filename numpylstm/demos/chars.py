"""The char-RNN demo behind ``python demo.py chars`` and ``python demo.py sample`` ("Anna KaRNNa").

``run_chars(settings, ...)`` trains a character-level LSTM on a text file with stateful truncated BPTT
(``text.Windows`` batches, ``train.Trainer(stateful=True)`` resetting the state at each epoch), evaluates the
validation loss (last 10% of the text, nats per character) periodically, saves checkpoints holding the
vocabulary, draws both loss curves and prints a sample. ``run_sample`` loads a checkpoint and samples.

Budget: ``epochs`` (the learning rate follows a cosine over the steps: resumable bit for bit), or ``minutes``
of wall time (the cosine follows the elapsed training time instead, so it ends at the budget however busy
the machine is; the training seconds used so far are stored in each checkpoint).
"""

from __future__ import annotations

import math
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path


from .. import _checks as chk
from .._files import Outputs
from ..checkpoint import model_from_checkpoint, read_checkpoint
from ..model import CELLS, LSTMModel
from ..optim import Adam
from .baselines import baselines, format_baselines
from .sine import cell_title
from .text import Vocab, Windows, evaluate, num_batches, sample, sample_stream, split
from ..parallel import resolve_workers, training_on
from ..train import (Progress, SaveOnStop, Trainer, check_memory, format_seconds, run_for_cli,
                    warmup_cosine)
from .sine import plot_failed

__all__ = ["CharSettings", "default_text", "run_chars", "run_sample", "settings_from_checkpoint"]

ANNA_HELP = ("Anna Karenina, Constance Garnett's translation: Project Gutenberg eBook #1399, "
             "https://www.gutenberg.org/ebooks/1399 (Plain Text UTF-8); save it as anna.txt")
STEPS_CAP_EPOCHS = 100_000  # a --minutes run is stopped by the clock; its step count only needs a bound


@dataclass(frozen=True)
class CharSettings:
    """Everything that determines a char-RNN run (stored in its checkpoints).

    Defaults: Udacity's 2 layers, Adam and global-norm clip 5, sized by measurement for 10 minutes on two
    CPU cores (docs/chars.md gives the figures of 10-minute runs: on a 2-core Intel Xeon 27,257 chars/s and
    1.2496 nats/char), float32 (2.2x the chars/s of float64); ``demo.py chars`` trains on every core by default (``--workers auto``: one process per core,
    each on a block of the batch, ``numpylstm/parallel.py``):
    - lstm_size 192: throughput is BLAS-bound, so chars/s ~ 1/H^2 (H=128: 59k, 192: 29k, 256: 18k chars/s);
      run side by side for the same minutes, 2 x 192 beat 2 x 256 (1.45 vs 1.51 nats/char after 6 minutes).
    - n_seqs 32 x n_steps 50: the same chars/s as 32 x 100 but twice the updates per character read.
    - lr 4e-3 with a cosine down to 5% of it by the end of the budget: after 10 minutes 1.25 nats/char,
      against 1.31 for a cosine from 3e-3 (run back to back) and 1.38 for a constant 3e-3 (another time).
    - keep_prob 1: ten minutes are about nine epochs, too few to overfit 1.8 M characters.
    """

    lstm_size: int = 192
    lstm_layers: int = 2
    n_seqs: int = 32
    n_steps: int = 50
    keep_prob: float = 1.0
    lr: float = 4e-3
    final_lr: float = 0.05  # fraction of lr reached at the end of the budget
    clip: float = 5.0
    minutes: float | None = None
    epochs: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    dtype: str = "float32"
    cell: str = "lstm"  # the layers' cell, one of numpylstm.cells.NAMES (checkpoints made before hold none: lstm)

    def check(self) -> "CharSettings":
        chk.choice("cell", self.cell, CELLS)
        for name in ("lstm_size", "lstm_layers", "n_seqs", "n_steps"):
            chk.positive_int(name, getattr(self, name))
        if not 0.0 < self.keep_prob <= 1.0 or 1.0 - self.keep_prob >= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1] (and not so small that 1 - keep_prob rounds to 1); "
                             f"got {self.keep_prob!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0; got {self.lr!r}")
        if not 0.0 <= self.final_lr <= 1.0:
            raise ValueError(f"final_lr must be a fraction of lr in [0, 1]; got {self.final_lr!r}")
        if (self.minutes is None) == (self.epochs is None):
            raise ValueError("give exactly one budget: minutes or epochs")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"minutes must be a finite number > 0; got {self.minutes!r}")
        if self.epochs is not None:
            chk.positive_int("epochs", self.epochs)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1); got {self.val_fraction!r}")
        chk.resolve_dtype(self.dtype)
        return self

    def memory_bytes(self, vocab_size) -> float:
        """A rough upper estimate of the run's peak memory for a vocabulary of ``vocab_size`` characters: the
        parameters with their gradients, Adam moments and scratch buffers, and the forward/backward buffers of
        a training batch (gates, states, the logits and their softmax) -- the validation pass is smaller."""
        V, H, L = vocab_size, self.lstm_size, self.lstm_layers
        params = 4 * H * (V + H + 1) + (L - 1) * 4 * H * (2 * H + 1) + H * V + V
        rows = self.n_seqs * self.n_steps
        itemsize = 4 if self.dtype == "float32" else 8
        return float(itemsize) * (6 * params + rows * (L * H * 12 + 3 * V))

    def check_memory(self, vocab_size) -> None:
        check_memory(self.memory_bytes(vocab_size),
                     f"lstm_size {self.lstm_size}, lstm_layers {self.lstm_layers}, n_seqs {self.n_seqs}, "
                     f"n_steps {self.n_steps}, {vocab_size} distinct characters")


def default_text() -> tuple[str, str]:
    """(text, description): the project's README.md, docs/*.md and derivations/*.md, present in every checkout."""
    root = Path(__file__).resolve().parents[2]
    files = [root / "README.md"] + sorted((root / "docs").glob("*.md")) + sorted((root / "derivations").glob("*.md"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise ValueError(f"no --text given and no README.md or derivations/*.md found under {root} (an installed "
                         f"package has none): pass --text FILE, e.g. {ANNA_HELP}")
    return ("\n\n".join(f.read_text(encoding="utf-8") for f in files),
            f"the project's README.md, docs/*.md and derivations/*.md ({len(files)} Markdown files)")


def read_text(path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--text {path} is not UTF-8 text ({exc})") from exc
    except OSError as exc:  # permissions, a vanished file, an I/O error
        raise ValueError(f"--text {path} cannot be read ({exc.strerror or exc})") from exc
    if not text:
        raise ValueError(f"--text {path} is empty")
    return text


def text_fingerprint(text: str) -> dict:
    return {"chars": len(text), "crc32": zlib.crc32(text.encode("utf-8"))}


def _describe_fingerprint(fp) -> str:
    if isinstance(fp, dict) and isinstance(fp.get("chars"), int) and isinstance(fp.get("crc32"), int):
        return f"{fp['chars']:,} characters, CRC-32 {fp['crc32']:08x}"
    return "an unrecorded text"


def text_of_checkpoint(path, user) -> str | None:
    """The --text a chars checkpoint was trained on, so ``--resume`` works without it: the file's path (as an
    absolute path, stored since this version; older checkpoints: their ``text_source`` when it names a file),
    or None for the project's own Markdown files. ValueError, naming the file, if it is gone."""
    stored = user.get("text_path", user.get("text_source"))
    if stored is None or (isinstance(stored, str) and stored.startswith("the project's ")):
        return None
    if not isinstance(stored, str) or not Path(stored).is_file():
        raise ValueError(f"--resume {path} was trained on {stored}, which is not there any more: pass that text "
                         f"with --text FILE")
    return stored


class CosineByTime:
    """lr(t) = final + (lr - final) (1 + cos(pi t / budget)) / 2 over the training seconds t spent so far.

    ``spent`` carries the seconds of earlier runs (a resumed checkpoint); ``seconds()`` is the running total.
    Called once per step by the trainer, just before the step.
    """

    def __init__(self, lr, final_fraction, budget_seconds, spent=0.0):
        self.lr, self.final = lr, lr * final_fraction
        self.budget, self.spent, self._t0 = budget_seconds, float(spent), None
        self.record = {}  # gets "train_seconds" at every step: point it at the trainer's user dict

    def start(self):
        """Start counting (just before ``Trainer.run``, so the clock never lags the run's time limit)."""
        self._t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.spent + (0.0 if self._t0 is None else time.perf_counter() - self._t0)

    def remaining(self) -> float:
        return max(0.0, self.budget - self.seconds())

    def __call__(self, step):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self.record["train_seconds"] = self.seconds()
        frac = min(self.seconds() / self.budget, 1.0)
        return self.final + (self.lr - self.final) * 0.5 * (1.0 + math.cos(math.pi * frac))


class CharProgress(Progress):
    """The trainer's progress line in a char-RNN's units: step, train loss, chars/s, ETA, val loss."""

    def __init__(self, total_steps, chars_per_step, clock=None, **kwargs):
        super().__init__(total_steps, **kwargs)
        self.chars_per_step, self.clock = chars_per_step, clock

    def line(self, step, losses, metrics=None) -> str:
        recent = losses[-self.window :]
        loss = sum(recent) / len(recent) if recent else float("nan")
        rate = self.rate(step)
        if self.clock is not None:  # a --minutes run ends when its time is up
            eta, where = self.clock.remaining(), f"step {step}"
        else:
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            where = f"step {step}/{self.total}"
        text = (f"{where}  train loss {loss:.3f}  {rate * self.chars_per_step:,.0f} chars/s  "
                f"elapsed {format_seconds(self.elapsed())}  ETA {format_seconds(eta)}")
        return text + self.metrics_text(step, metrics, "{:.4f}")


def settings_from_checkpoint(path) -> tuple[CharSettings, dict]:
    """(settings, user data) of a chars-demo checkpoint (ValueError if it is not one)."""
    ck = read_checkpoint(path)
    stored = ck.user.get("settings")
    if ck.user.get("demo") != "chars" or not isinstance(stored, dict) or "vocab" not in ck.extra:
        raise ValueError(f"{ck.path} is a numpylstm checkpoint but not one of the chars demo")
    unknown = sorted(set(stored) - {f.name for f in fields(CharSettings)})
    if unknown:
        raise ValueError(f"{ck.path}: stored chars settings have unknown keys {unknown} (a newer numpylstm?)")
    try:
        return CharSettings(**stored).check(), ck.user
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{ck.path}: stored chars settings are unusable ({exc})") from exc


def run_chars(s: CharSettings, *, text_path=None, out="runs/chars", resume=None, eval_every=500,
              checkpoint_every=1000, plot=True, prime="Far", sample_length=500, quiet=False, stream=None,
              impl="fast", overwrite=False, workers=None) -> int:
    """Train the char-RNN; print progress, a sample and finally ``val loss: <value> nats/char``.

    impl: the layer code, "fast" or "textbook" (same numbers, slower; a run setting, not stored as one).
    workers: train on that many processes (``numpylstm/parallel.py``; same numbers up to rounding; a run
    setting); "auto" (``demo.py chars``' default): ``parallel.auto_workers`` decides (every core at the
    default size); None or 1: in this process.
    Exit status 0 on success, 1 if training diverged or the plot could not be written, 128 + N after signal N
    (Ctrl-C: 130), after saving -- also while plotting or sampling. Raises ValueError for unusable input (text
    too short for one batch, a checkpoint that does not fit, DIR/chars.npz or DIR/loss.png taken: the rule of
    ``numpylstm._files``). ``text_path`` None with ``resume``: the checkpoint's own text.
    """
    with Outputs("demo.py chars") as outputs:
        return _run_chars(s, outputs, text_path=text_path, out=out, resume=resume, eval_every=eval_every,
                          checkpoint_every=checkpoint_every, plot=plot, prime=prime, sample_length=sample_length,
                          quiet=quiet, stream=stream, impl=impl, overwrite=overwrite, workers=workers)


def _run_chars(s, outputs, *, text_path, out, resume, eval_every, checkpoint_every, plot, prime, sample_length,
               quiet, stream, impl, overwrite, workers):
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    s.check()
    out = Path(out)
    ckpt_path = out / "chars.npz"
    outputs.claim(ckpt_path, "checkpoint", overwrite=overwrite, own=resume, flag=f"--out {out}: {ckpt_path}")
    if plot:
        outputs.claim(out / "loss.png", "png", regenerated=True, overwrite=overwrite)
    if text_path is None and resume is not None:
        text_path = text_of_checkpoint(resume, settings_from_checkpoint(resume)[1])
    if text_path is not None:
        text, where = read_text(text_path), str(text_path)
    else:
        text, where = default_text()
    vocab = Vocab.from_text(text)
    s.check_memory(len(vocab))  # before anything big is allocated
    ids = vocab.encode(text)
    train_ids, val_ids = split(ids, s.val_fraction)
    train = Windows(train_ids, s.n_seqs, s.n_steps, name="the training text (first 90%)")
    Windows(val_ids, s.n_seqs, s.n_steps, name="the validation text (last 10%)")  # long enough?
    scored = num_batches(len(val_ids), s.n_seqs, s.n_steps) * s.n_seqs * s.n_steps  # what evaluate averages
    base = baselines(train_ids, val_ids[: scored + 1], len(vocab))  # n-gram models on the same characters
    K = len(train)
    spent = 0.0
    if resume is not None:
        _, user = settings_from_checkpoint(resume)
        resumed = read_checkpoint(resume)
        ck_vocab = Vocab.from_array(resumed.extra["vocab"])
        if (user.get("text") != text_fingerprint(text) or ck_vocab != vocab) and text_path is None:
            raise ValueError(f"--resume {resume} was trained on the project's Markdown files as they were then "
                             f"({_describe_fingerprint(user.get('text'))}); they have changed since "
                             f"({_describe_fingerprint(text_fingerprint(text))}), so that run cannot go on: start "
                             f"a new one")
        if user.get("text") != text_fingerprint(text) or ck_vocab != vocab:
            raise ValueError(f"--resume {resume} was trained on another text ({user.get('text_source', '?')}: "
                             f"{_describe_fingerprint(user.get('text'))}), not on {where} "
                             f"({_describe_fingerprint(text_fingerprint(text))}): pass that text with --text")
        spent = user.get("train_seconds", 0.0)
        if isinstance(spent, bool) or not isinstance(spent, (int, float)) or not 0 <= spent < math.inf:
            raise ValueError(f"--resume {resume}: its training time (meta['user']['train_seconds']) is not a "
                             f"number of seconds: {str(spent)[:40]!r}")
        spent = float(spent)
        if s.epochs is not None and resumed.step > s.epochs * K:
            raise ValueError(f"--resume {resume} has already trained {resumed.step / K:.2f} epochs, more than "
                             f"--epochs {s.epochs}: give a larger budget (--epochs or --minutes)")

    model = LSTMModel(len(vocab), s.lstm_size, len(vocab), num_layers=s.lstm_layers, dropout=1.0 - s.keep_prob,
                      head="all", loss="softmax_ce", seed=s.seed, dtype=s.dtype, impl=impl, cell=s.cell)
    opt = Adam(model.params, lr=s.lr)
    if s.epochs is not None:
        total, clock = s.epochs * K, None
        schedule = warmup_cosine(s.lr, total, 0, s.lr * s.final_lr)
    else:
        total = STEPS_CAP_EPOCHS * K
        clock = CosineByTime(s.lr, s.final_lr, s.minutes * 60.0, spent)
        schedule = clock
    user = {"demo": "chars", "settings": asdict(s), "text": text_fingerprint(text), "text_source": where,
            "text_path": None if text_path is None else os.path.abspath(text_path), "train_seconds": spent}

    def val_loss(m):
        if clock is not None:
            trainer.user["train_seconds"] = clock.seconds()  # exact at the final evaluation and save
        return {"val loss": evaluate(m, val_ids, s.n_seqs, s.n_steps, engine=trainer.engine)}  # on the workers too

    progress = CharProgress(total, s.n_seqs * s.n_steps, clock, stream=stream, enabled=not quiet,
                            every=max(1, min(eval_every, total) // 5))
    trainer = Trainer(model, opt, lambda step: train[step % K], total, schedule=schedule, clip_norm=s.clip,
                      stateful=True, reset_state=lambda step: step % K == 0, eval_fn=val_loss,
                      eval_every=eval_every, checkpoint_path=ckpt_path, checkpoint_every=checkpoint_every,
                      user=user, extra={"vocab": vocab.to_array()}, progress=progress, outputs=outputs)
    if clock is not None:
        clock.record = trainer.user  # checkpoints store the training seconds spent, for --resume
    asked = workers not in (None, "auto")  # an explicit --workers K must start, "auto" may fall back
    workers = resolve_workers(workers, model, s.n_seqs, s.n_steps)  # "auto": all cores if it pays
    say(f"chars demo: {where}: {len(text):,} characters, {len(vocab)} distinct; train {len(train_ids):,}, "
        f"validation {len(val_ids):,} (last {s.val_fraction:.0%})")
    say(f"  {s.lstm_layers} x {s.lstm_size} {cell_title(s.cell)}, {model.num_params():,} parameters, {s.dtype}; batches "
        f"{s.n_seqs} sequences x {s.n_steps} steps ({K} per epoch), state carried between batches"
        + (f"; layer code numpylstm/{impl}.py" if impl != "fast" else "")
        + (f"; training on {workers} processes (numpylstm/parallel.py; --workers 1 for one)" if workers else ""))
    budget = f"{s.epochs} epochs ({total} steps)" if s.epochs else f"{s.minutes:g} minutes"
    say(f"  Adam lr {s.lr:g} -> {s.lr * s.final_lr:g} (cosine over {budget}), clip {s.clip:g}, "
        f"keep_prob {s.keep_prob:g}, seed {s.seed}")
    say(format_baselines(base))
    if resume is None:  # the untrained model's loss on batch 0 (= step 1's loss without dropout) should be ~ln V
        first = float(model.evaluate(*train[0])[0])
        if abs(first - base["uniform"]) > 0.1 * base["uniform"]:
            say(f"warning: the untrained model's loss on the first batch is {first:.4f} nats/char, far from "
                f"ln V = {base['uniform']:.4f} (uniform guessing): check the output layer's initialisation")
        else:
            say(f"  untrained loss on the first batch {first:.4f} nats/char (ln V = {base['uniform']:.4f}: "
                f"uniform guessing, as expected)")
    if resume is not None:
        ck = trainer.resume(resume, new_total=True)  # --epochs/--minutes may set a new budget
        say(f"resumed from {resume} at step {ck.step} ({format_seconds(spent)} of training so far)")

    if clock is not None:
        clock.start()
    with training_on(trainer, workers, s.n_seqs, fallback=None if asked else say):
        result, code = run_for_cli(trainer, resume, time_limit=None if clock is None else clock.remaining())
    if code is not None:
        return code
    with SaveOnStop(trainer, ckpt_path, doing="drawing the plot") as stop:
        status = _after_training(s, trainer, result, outputs, out, plot, base, vocab, text, prime, sample_length,
                                 say, stream, K, stop)
    return status if stop.code is None else stop.code


def _after_training(s, trainer, result, outputs, out, plot, base, vocab, text, prime, sample_length, say, stream,
                    K, stop):
    status = 0
    model = trainer.model
    val = trainer.evals[-1][1]["val loss"]
    chars = result.steps_run * s.n_seqs * s.n_steps
    say(f"trained {result.steps_run} steps ({chars:,} characters, {chars / K / s.n_seqs / s.n_steps:.2f} "
        f"epochs) in {format_seconds(result.seconds)}: {chars / result.seconds:,.0f} chars/s")
    if result.checkpoint:
        say(f"checkpoint: {result.checkpoint}  (sample: python demo.py sample --checkpoint {result.checkpoint})")
    if plot:
        from .plots import PlotsUnavailable, plot_loss

        try:
            path = plot_loss(out / "loss.png", result.losses, 100, evals=trainer.evals, log=False,
                             ylabel="loss (nats per character)", eval_label="validation (last 10% of the text)",
                             title="char-RNN: softmax cross-entropy of the next character",
                             hlines=base, outputs=outputs)
            say(f"plot: {path}")
        except PlotsUnavailable as exc:
            say(f"plot skipped: {exc}")
        except (OSError, ValueError) as exc:
            status = plot_failed(exc, result.checkpoint)
    stop.doing = "drawing the sample"
    if sample_length:
        if any(c not in vocab.chars for c in prime):
            prime = text[:3]
        say(f"sample (prime {prime!r}, top-5, temperature 1):")
        say(sample(model, vocab, prime=prime, length=sample_length, top_k=5, seed=s.seed))
    print(f"val loss: {val:.4f} nats/char", file=stream, flush=True)
    return status


def run_sample(checkpoint, *, prime="Far", length=500, top_k=5, temperature=1.0, seed=None, stream=None) -> str:
    """Load a chars checkpoint and print a sample character by character, as it is drawn; return it.

    Stops early, quietly, when the reader of ``stream`` goes away (``| head -c 50``: a ``pipe_safe_stdout``
    stream sets ``broken``). ValueError for an unusable checkpoint/prime.
    """
    stream = sys.stdout if stream is None else stream
    settings_from_checkpoint(checkpoint)
    model, ck = model_from_checkpoint(checkpoint)
    vocab = Vocab.from_array(ck.extra["vocab"])
    drawn = []
    for piece in sample_stream(model, vocab, prime=prime, length=length, top_k=top_k, temperature=temperature,
                               seed=seed):
        drawn.append(piece)
        stream.write(piece)
        stream.flush()
        if getattr(stream, "broken", False):
            break
    stream.write("\n")
    stream.flush()
    return "".join(drawn)
