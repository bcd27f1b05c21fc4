#!/usr/bin/env python
"""numpylstm demos from the command line.

    python demo.py [sine] [flags]   train the sine predictor of the TF-1 tutorial (the default command)
    python demo.py sine --help      every flag, explained
    python demo.py sine --stateful  the same curve in Anna's format: (n_seqs, n_steps) batches, state carried
    python demo.py chars --text anna.txt --minutes 10    a character-level LSTM (Udacity's Anna KaRNNa)
    python demo.py sample --checkpoint runs/chars/chars.npz --prime "Far"    text from a trained char model
    python demo.py inside | gradients | adding | cells    see inside: gates, gradient flow, long memory, cells
    python demo.py tasks; python demo.py task copying --cell lstm    the long-memory tasks of the LSTM papers
    python demo.py variants         the variant lab: Greff's LSTM variants, GRU and RNN ranked on memory tasks

Each command is one entry of COMMANDS: a function adding its flags to an argparse sub-parser and a function
running it. To add a command, write those two functions and register them there.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # Ctrl-C while NumPy and the demos are still being imported: one line, exit 130
    import _signal  # the C module: ``signal`` itself imports enum, which takes a while (importing numpylstm
    # imports NumPy, which takes longer)

    def _interrupted_while_importing(signum, frame):
        os.write(2, b"demo.py: interrupted\n")
        os._exit(130)

    if _signal.getsignal(_signal.SIGINT) is not _signal.SIG_IGN:
        _signal.signal(_signal.SIGINT, _interrupted_while_importing)  # run_cli puts Python's own handler back

# The sine demos' matrices are tiny ((64, 20) @ (20, 80)): a BLAS thread pool costs more than it saves, and on
# a shared machine its spinning threads slow everything down, so every command runs BLAS on one thread except
# `chars`, whose hoisted products are big enough to gain from all cores (45-second runs on an idle 2-core
# machine: 26,600 against 21,100 chars/s; its time loops' small products still run on one thread,
# fast.LOOP_BLAS_THREADS). Must be set before NumPy is imported; an explicit setting in the environment wins.
if sys.argv[1:2] != ["chars"]:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from numpylstm.checkpoint import check_replaceable  # noqa: E402
from numpylstm.demos.chars import ANNA_HELP, CharSettings, run_chars, run_sample  # noqa: E402
from numpylstm.demos.chars import settings_from_checkpoint as chars_settings_from_checkpoint  # noqa: E402
from numpylstm.demos.sine import SineSettings, run_sine, settings_from_checkpoint  # noqa: E402
from numpylstm.demos.sine_stateful import run_sine_stateful  # noqa: E402
from numpylstm._cli import Parser, run_cli  # noqa: E402
from numpylstm._cli import int_at_least as _int  # noqa: E402
from numpylstm.demos import tasks as tasks_demo  # noqa: E402
from numpylstm.model import CELLS  # noqa: E402


# --------------------------------------------------------------------------- flag types


def _float_in(low, high, low_open=True, what=""):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


def _below_one(text):
    """A number in [0, 1): Adam's beta2."""
    value = _float_in(0.0, 1.0, low_open=False, what="in [0, 1)")(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _check_writable(parser, flag, path, folder=False):
    """Refuse before training, not after it: a --checkpoint or --out that can never be written."""
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        parser.error(f"{flag} {path} is {'a file' if folder else 'a folder'}; "
                     f"expected {'a folder' if folder else 'a file name'}")
    ancestor = p if folder and p.exists() else p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        parser.error(f"{flag} {path}: {ancestor} is a file, so the folder cannot be created")
    try:  # os.access says yes to root everywhere, even in /proc: really create (and remove) a file there
        fd, probe = tempfile.mkstemp(prefix=".numpylstm-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        parser.error(f"{flag} {path}: cannot write in {ancestor} ({exc.strerror or exc})")


def check_checkpoint_target(parser, path, args, flag="--checkpoint", also=""):
    """Every command that writes a checkpoint calls this before training: an existing file at ``path`` is
    replaced only when it is the run being continued (``args.resume``) or with ``--overwrite``, and a file
    that is not a numpylstm checkpoint never. Usage error (exit 2) otherwise, naming the ways out."""
    try:
        check_replaceable(path, overwrite=getattr(args, "overwrite", False), own=getattr(args, "resume", None),
                          flag=flag, also=also)
    except ValueError as exc:
        parser.error(str(exc))


def add_overwrite_flag(g, what):
    g.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when it already holds another run's checkpoint (a file that is not a "
                        "numpylstm checkpoint is never replaced)")


def _existing_file(text):
    """A file to read: a missing one and a folder are told apart (``/dev/null``, a pipe ... are read and then
    judged by their content)."""
    if text == "":
        raise argparse.ArgumentTypeError("expected a file name, got ''")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file")
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _path(text):
    """A file or folder to write: not empty (an empty --out would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file or folder name, got {text!r}")
    return text


def check_stop_at(parser, args, total):
    """--stop-at must lie ahead of the checkpoint being continued (else the run would silently do nothing)."""
    if args.stop_at is None or not args.resume:
        return
    from numpylstm.checkpoint import read_checkpoint

    try:
        at = read_checkpoint(args.resume).step
    except (OSError, ValueError):
        return  # reported by the settings check
    if args.stop_at <= at:
        parser.error(f"--stop-at {args.stop_at}: --resume {args.resume} is already at step {at}; give a later "
                     f"step (up to --steps {total}), or leave --stop-at out to finish the run")


# --------------------------------------------------------------------------- sine

_SINE_RUN_FLAGS = ("timesteps", "lstm_size", "lstm_layers", "batch_size", "keep_prob", "steps", "lr", "beta2",
                   "warmup", "clip", "seed", "dtype", "cell")


def add_cell_flag(group, default="lstm"):
    """--cell NAME: the layers' cell, one of numpylstm.cells.NAMES (no default value: a resumed run keeps its own)."""
    group.add_argument("--cell", choices=CELLS, metavar="NAME",
                       help=f"the layers' cell: {', '.join(CELLS)} (default {default}; gru: PyTorch's GRU, "
                            "peephole: Gers & Schmidhuber's LSTM, nig ... fgr: Greff et al.'s variants; "
                            "derivations/12_the_lstm_family.md). Part of the run: --resume keeps the checkpoint's")


def _add_impl_flag(group):
    group.add_argument("--impl", choices=("fast", "textbook"), default="fast",
                       help="which layer code runs: fast (numpylstm/fast.py, the default) or textbook "
                            "(numpylstm/textbook.py, the step-by-step code the derivations quote): the same "
                            "numbers, slower. A run setting, not part of the model: a checkpoint made with one "
                            "resumes with the other")


def _workers(text):
    """--workers: "auto" or an integer >= 1."""
    return "auto" if text == "auto" else _int(1)(text)


def _add_workers_flag(group):
    group.add_argument("--workers", type=_workers, default="auto", metavar="K",
                       help="train on K processes, each computing the gradient of a block of the batch's rows "
                            "(data parallel, numpylstm/parallel.py; docs/parallel.md): the same numbers up to "
                            "rounding. Default auto: every core when a training step is big enough to gain "
                            "(the char-RNN), one process otherwise (the sine model); 1: one process. A run "
                            "setting, not part of the model")


def add_sine_flags(p):
    d = SineSettings()
    g = p.add_argument_group("model and data (the TF-1 tutorial's names)")
    g.add_argument("--timesteps", type=_int(1), metavar="T",
                   help=f"length T of each input window; the target is the value after it (default {d.timesteps})")
    g.add_argument("--lstm-size", type=_int(1), metavar="H",
                   help=f"hidden units per LSTM layer, H (default {d.lstm_size})")
    g.add_argument("--lstm-layers", type=_int(1), metavar="L",
                   help=f"stacked LSTM layers (default {d.lstm_layers})")
    add_cell_flag(g, d.cell)
    g.add_argument("--keep-prob", type=_float_in(0.0, 1.0, what="in (0, 1]"), metavar="P",
                   help="probability of keeping each layer output during training; dropout = 1 - P "
                        f"(default {d.keep_prob:g}: no dropout)")
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=_int(1), metavar="N",
                   help=f"windows per training step (default {d.batch_size})")
    g.add_argument("--steps", type=_int(1), help=f"training steps (mini-batches) (default {d.steps})")
    g.add_argument("--lr", type=_float_in(0.0, math.inf, what="a number > 0"),
                   help=f"peak learning rate of Adam (default {d.lr:g})")
    g.add_argument("--beta2", type=_below_one, metavar="B2",
                   help="Adam's decay of its average of squared gradients: it remembers about 1 / (1 - B2) steps "
                        f"(default {d.beta2:g}; the usual 0.999 makes this run's late steps too small, see "
                        "derivations/07_optimizers.md)")
    g.add_argument("--warmup", type=_int(0), metavar="STEPS",
                   help="steps of linear learning-rate warm-up before the cosine decay to 0 "
                        f"(default {d.warmup})")
    g.add_argument("--clip", type=_float_in(0.0, math.inf, what="a number > 0"), metavar="NORM",
                   help=f"clip gradients to this global L2 norm (default {d.clip:g})")
    g.add_argument("--seed", type=_int(0), help=f"seeds the initial weights, batch order and dropout (default {d.seed})")
    g.add_argument("--dtype", choices=("float32", "float64"),
                   help=f"floating-point precision of the whole computation (default {d.dtype})")
    _add_impl_flag(g)
    _add_workers_flag(g)
    g = p.add_argument_group("output")
    g.add_argument("--out", type=_path, default="runs/sine", metavar="DIR",
                   help="folder for the PNG plots and, without --checkpoint, the trained model DIR/checkpoint.npz "
                        "(default runs/sine). Plots numpylstm drew there before are redrawn; any other file "
                        "is never replaced")
    g.add_argument("--no-plot", action="store_true", help="do not draw plots (no matplotlib needed)")
    g.add_argument("--explain", action="store_true",
                   help="before training, print the shape of every tensor for one batch (x, each layer's "
                        "outputs, outputs[:, -1, :], final_state, the head's output) and each parameter's size")
    g.add_argument("--explain-only", action="store_true",
                   help="print those shapes and stop: no training, nothing written")
    g.add_argument("--quiet", action="store_true", help="print only the final 'test RMSE: ...' line")
    g.add_argument("--rollout", type=_int(1), metavar="K",
                   help="after training, forecast K steps free-running from every test window (the model's own "
                        "predictions fed back); print the error 1, 10, 100 and K steps ahead; draw DIR/rollout.png")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpoint", type=_path, metavar="FILE",
                   help="save the training state to FILE (.npz) every --checkpoint-every steps and at the end; "
                        "Ctrl-C, SIGTERM, SIGHUP and --stop-at save it too (without this flag, the trained model "
                        "goes to DIR/checkpoint.npz, or checkpoint-2.npz ... if that exists). An existing FILE is "
                        "replaced only with --resume FILE or --overwrite. With --resume, FILE defaults to the "
                        "--resume file (a symbolic link stays a link: the file it points to is updated)")
    g.add_argument("--checkpoint-every", type=_int(1), default=500, metavar="STEPS",
                   help="steps between checkpoints (default 500)")
    g.add_argument("--resume", type=_existing_file, metavar="FILE",
                   help="continue the run saved in FILE with its settings; it ends with the same weights as "
                        "an uninterrupted run, and saves back into FILE unless --checkpoint names another file. "
                        "Run flags given with it must match the checkpoint's")
    g.add_argument("--stop-at", type=_int(1), metavar="STEP",
                   help="train only up to this step (then evaluate, plot, save to --checkpoint or to "
                        "DIR/checkpoint.npz, and say where); resume later with --resume")
    g.add_argument("--overwrite", action="store_true",
                   help="replace --checkpoint FILE when it already holds another run's checkpoint, and PNGs in "
                        "DIR at the plots' names that numpylstm did not draw (a file of another kind -- notes, "
                        "someone else's .npz -- is never replaced)")
    g = p.add_argument_group("Anna format")
    g.add_argument("--stateful", action="store_true",
                   help="train like the char-RNN instead: the training curve cut into (--batch-size, "
                        "--timesteps) batches walked in order, a prediction at every step, the state carried "
                        "between batches; test RMSE on the same test targets, the test curve run with carried "
                        "state (plots go to runs/sine-stateful unless --out is given)")


def run_sine_command(args, parser):
    given = {name: getattr(args, name) for name in _SINE_RUN_FLAGS if getattr(args, name) is not None}
    if args.stateful and args.rollout:
        parser.error("--rollout forecasts with the windowed model; it does not combine with --stateful")
    if args.stateful and (args.explain or args.explain_only):
        parser.error("--explain shows the windowed model's shapes; it does not combine with --stateful")
    if args.resume:
        try:
            settings = settings_from_checkpoint(args.resume, "sine-stateful" if args.stateful else "sine")
        except (ValueError, OSError) as exc:
            parser.error(f"--resume: {exc}")
        clashes = [f"--{k.replace('_', '-')} {v} (checkpoint has {getattr(settings, k)})"
                   for k, v in given.items() if v != getattr(settings, k)]
        if clashes:
            parser.error("--resume continues a run with its own settings; these flags differ: " + ", ".join(clashes))
    else:
        settings = replace(SineSettings(), **given)
    try:
        settings.check()
    except ValueError as exc:
        parser.error(str(exc))
    if args.stop_at is not None and args.stop_at > settings.steps:
        parser.error(f"--stop-at {args.stop_at} is beyond --steps {settings.steps}")
    check_stop_at(parser, args, settings.steps)
    if args.resume and not args.checkpoint:
        args.checkpoint = args.resume  # otherwise the continued run would save nothing
    if args.checkpoint and not args.explain_only:
        _check_writable(parser, "--checkpoint", args.checkpoint)
        check_checkpoint_target(parser, args.checkpoint, args)
    if args.stateful:
        out = "runs/sine-stateful" if args.out == "runs/sine" else args.out
        _check_writable(parser, "--out", out, folder=True)
        try:
            return run_sine_stateful(settings, out=out, plot=not args.no_plot, checkpoint=args.checkpoint,
                                     checkpoint_every=args.checkpoint_every, resume=args.resume,
                                     stop_at=args.stop_at, quiet=args.quiet, impl=args.impl,
                                     overwrite=args.overwrite, workers=args.workers)
        except ValueError as exc:
            parser.error(str(exc))
    if not args.explain_only:
        _check_writable(parser, "--out", args.out, folder=True)
    try:
        return run_sine(settings, out=args.out, plot=not args.no_plot, explain=args.explain,
                        checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
                        stop_at=args.stop_at, quiet=args.quiet, impl=args.impl,
                        explain_only=args.explain_only, overwrite=args.overwrite, workers=args.workers,
                        rollout=args.rollout)
    except ValueError as exc:  # a checkpoint that does not fit ...
        parser.error(str(exc))


# --------------------------------------------------------------------------- chars and sample (Anna KaRNNa)

_CHARS_RUN_FLAGS = ("lstm_size", "lstm_layers", "n_seqs", "n_steps", "keep_prob", "lr", "final_lr", "clip",
                    "minutes", "epochs", "seed", "dtype", "cell")


def add_chars_flags(p):
    d = CharSettings()
    p.epilog = (f"Without --text it trains on this project's README.md, docs/*.md and derivations/*.md. "
                f"The real thing: {ANNA_HELP}, then 'python demo.py chars --text anna.txt --minutes 10'. Nothing is downloaded.")
    g = p.add_argument_group("data")
    g.add_argument("--text", type=_existing_file, metavar="FILE",
                   help="UTF-8 text to learn; its last 10%% is the validation set (default: the project's own "
                        "Markdown files)")
    g = p.add_argument_group("model (Udacity's names)")
    g.add_argument("--lstm-size", type=_int(1), metavar="H", help=f"hidden units per layer (default {d.lstm_size})")
    g.add_argument("--lstm-layers", type=_int(1), metavar="L", help=f"stacked LSTM layers (default {d.lstm_layers})")
    add_cell_flag(g, d.cell)
    g.add_argument("--keep-prob", type=_float_in(0.0, 1.0, what="in (0, 1]"), metavar="P",
                   help=f"keep probability of each layer's output in training (default {d.keep_prob:g})")
    g = p.add_argument_group("training")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_float_in(0.0, math.inf, what="a number > 0"), metavar="M",
                        help="train for M minutes of wall time (default 10 when --epochs is not given)")
    budget.add_argument("--epochs", type=_int(1), metavar="E", help="train for E passes over the training text")
    g.add_argument("--n-seqs", type=_int(1), metavar="N",
                   help=f"sequences per batch: rows of the reshaped text (default {d.n_seqs})")
    g.add_argument("--n-steps", type=_int(1), metavar="T",
                   help=f"characters per sequence in a batch: the BPTT window (default {d.n_steps})")
    g.add_argument("--lr", type=_float_in(0.0, math.inf, what="a number > 0"),
                   help=f"initial learning rate of Adam (default {d.lr:g})")
    g.add_argument("--final-lr", type=_float_in(0.0, 1.0, low_open=False, what="in [0, 1]"), metavar="FRACTION",
                   help=f"the cosine decay ends at this fraction of --lr (default {d.final_lr:g})")
    g.add_argument("--clip", type=_float_in(0.0, math.inf, what="a number > 0"), metavar="NORM",
                   help=f"clip gradients to this global L2 norm (default {d.clip:g})")
    g.add_argument("--seed", type=_int(0), help=f"seeds the initial weights, dropout and the sample (default {d.seed})")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"precision (default {d.dtype})")
    _add_impl_flag(g)
    _add_workers_flag(g)
    g.add_argument("--eval-every", type=_int(1), default=500, metavar="STEPS",
                   help="steps between validation losses (default 500)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=_path, metavar="DIR",
                   help="folder for the checkpoint DIR/chars.npz and the plot DIR/loss.png (default runs/chars; "
                        "with --resume, the folder of the --resume file)")
    g.add_argument("--checkpoint-every", type=_int(1), default=1000, metavar="STEPS",
                   help="steps between checkpoints, besides the one at the end and on Ctrl-C (default 1000)")
    g.add_argument("--resume", type=_existing_file, metavar="FILE",
                   help="continue the run saved in FILE (its settings and its text, read again from where it was; "
                        "--minutes/--epochs may set a new total budget; --text only if the text moved). Without "
                        "--out it saves into FILE's folder")
    g.add_argument("--overwrite", action="store_true",
                   help="replace DIR/chars.npz when it already holds another run's checkpoint, and a DIR/loss.png "
                        "numpylstm did not draw (a file of another kind is never replaced)")
    g.add_argument("--no-plot", action="store_true", help="do not draw the loss plot (no matplotlib needed)")
    g.add_argument("--sample-length", type=_int(0), default=500, metavar="CHARS",
                   help="length of the sample printed at the end (default 500; 0: none)")
    g.add_argument("--quiet", action="store_true", help="print only the final 'val loss: ...' line")


def run_chars_command(args, parser):
    given = {name: getattr(args, name) for name in _CHARS_RUN_FLAGS if getattr(args, name) is not None}
    if args.resume:
        try:
            settings, _ = chars_settings_from_checkpoint(args.resume)
        except (ValueError, OSError) as exc:
            parser.error(f"--resume: {exc}")
        budget = {k: given.pop(k) for k in ("minutes", "epochs") if k in given}
        clashes = [f"--{k.replace('_', '-')} {v} (checkpoint has {getattr(settings, k)})"
                   for k, v in given.items() if v != getattr(settings, k)]
        if clashes:
            parser.error("--resume continues a run with its own settings; these flags differ: " + ", ".join(clashes))
        if budget:
            settings = replace(settings, minutes=budget.get("minutes"), epochs=budget.get("epochs"))
    else:
        if "minutes" not in given and "epochs" not in given:
            given["minutes"] = 10.0
        settings = replace(CharSettings(), **given)
    out = args.out or (Path(args.resume).parent if args.resume else "runs/chars")
    _check_writable(parser, "--out", out, folder=True)
    _check_writable(parser, f"--out {out}: the checkpoint", Path(out) / "chars.npz")
    check_checkpoint_target(parser, Path(out) / "chars.npz", args, flag="the checkpoint",
                            also=" (or choose another --out)")
    try:
        settings.check()
        return run_chars(settings, text_path=args.text, out=out, resume=args.resume,
                         eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, plot=not args.no_plot,
                         sample_length=args.sample_length, quiet=args.quiet, impl=args.impl,
                         overwrite=args.overwrite, workers=args.workers)
    except ValueError as exc:  # a text too short for one batch, a checkpoint that does not fit ...
        parser.error(str(exc))


def add_sample_flags(p):
    p.add_argument("--checkpoint", type=_existing_file, required=True, metavar="FILE",
                   help="a checkpoint written by 'demo.py chars' (e.g. runs/chars/chars.npz)")
    p.add_argument("--prime", default="Far", help="text that warms up the state; the sample continues it "
                                                  "(default 'Far'); every character must be in the vocabulary")
    p.add_argument("--length", type=_int(0), default=500, help="characters to draw (default 500)")
    p.add_argument("--top-k", type=_int(1), default=5, metavar="K",
                   help="draw only among the K most likely characters (default 5)")
    p.add_argument("--temperature", type=_float_in(0.0, math.inf, what="a number > 0"), default=1.0,
                   help="divide the logits by this: < 1 is more conservative, > 1 wilder (default 1)")
    p.add_argument("--seed", type=_int(0), help="seed of the draws (default: different every time)")


def run_sample_command(args, parser):
    try:
        run_sample(args.checkpoint, prime=args.prime, length=args.length, top_k=args.top_k,
                   temperature=args.temperature, seed=args.seed)
    except ValueError as exc:  # a character of --prime not in the vocabulary, not a chars checkpoint ...
        parser.error(str(exc))
    return 0  # a closed pipe (| head -c 50) ends the sample early: that is what the reader wanted


# --------------------------------------------------------------------------- see inside: inside gradients adding cells


def add_inside_flags(p):
    p.epilog = ("What to look for: docs/inside.md, 'Inside the LSTM'. Without --checkpoint it trains the default sine "
                "model first (as 'python demo.py sine') and keeps it in DIR/inside.npz.")
    p.add_argument("--checkpoint", type=_existing_file, metavar="FILE",
                   help="draw this sine-demo checkpoint (python demo.py sine --checkpoint FILE) instead of "
                        "training the default model")
    p.add_argument("--window", type=_int(0), default=500, metavar="K",
                   help="which test window to show, 0..999 (default 500: near a trough of the curve)")
    p.add_argument("--out", type=_path, default="runs/sine", metavar="DIR", help="folder for inside.png (default runs/sine)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR/inside.png (and DIR/inside.npz)")
    p.add_argument("--rollout", type=_int(1), metavar="K",
                   help="also forecast K steps free-running (the model's own predictions fed back) from every test "
                        "window; print the error 1, 10, 100 and K steps ahead; draw DIR/rollout.png")
    p.add_argument("--quiet", action="store_true", help="print only the final line")


def run_inside_command(args, parser):
    from numpylstm.demos.inside import run_inside

    _check_writable(parser, "--out", args.out, folder=True)
    try:
        return run_inside(checkpoint=args.checkpoint, out=args.out, window=args.window, overwrite=args.overwrite,
                          quiet=args.quiet, rollout=args.rollout)
    except ValueError as exc:
        parser.error(str(exc))


def _add_adding_model_flags(p, d):
    g = p.add_argument_group("the adding problem and the model")
    g.add_argument("--timesteps", type=_int(2), metavar="T", help=f"sequence length T (default {d.timesteps})")
    g.add_argument("--lstm-size", type=_int(1), metavar="H", help=f"hidden units, H (default {d.lstm_size})")
    g.add_argument("--batch-size", type=_int(1), metavar="N",
                   help=f"fresh sequences per training step (default {d.batch_size})")
    g.add_argument("--lr", type=_float_in(0.0, math.inf, what="a number > 0"),
                   help=f"learning rate of Adam, constant (default {d.lr:g})")
    g.add_argument("--clip", type=_float_in(0.0, math.inf, what="a number > 0"), metavar="NORM",
                   help=f"clip gradients to this global L2 norm (default {d.clip:g})")
    g.add_argument("--seed", type=_int(0), help=f"seeds the weights and the data (default {d.seed})")
    return g


def add_adding_flags(p):
    from numpylstm.demos.adding import AddingSettings

    d = AddingSettings()
    p.epilog = ("Le, Jaitly & Hinton 2015's variant: values uniform in [0, 1], target the sum of the two marked "
                "values; always predicting 1 scores 1/6 ~ 0.167. Run it once per cell: DIR/adding.png draws every "
                "DIR/<cell>.npz. See docs/inside.md, 'The adding problem'.")
    g = _add_adding_model_flags(p, d)
    add_cell_flag(g, d.cell)
    g.add_argument("--minutes", type=_float_in(0.0, math.inf, what="a number > 0"), metavar="M",
                   help=f"training budget in minutes of wall time (default {d.minutes:g})")
    g.add_argument("--eval-every", type=_int(1), metavar="STEPS",
                   help=f"steps between test-set evaluations (default {d.eval_every})")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"precision (default {d.dtype})")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=_path, default="runs/adding", metavar="DIR",
                   help="folder for the checkpoint DIR/<cell>.npz and the plot DIR/adding.png (default runs/adding)")
    g.add_argument("--resume", type=_existing_file, metavar="FILE",
                   help="continue the run saved in FILE (e.g. after Ctrl-C) with its settings, up to --minutes "
                        "of training in total")
    g.add_argument("--overwrite", action="store_true", help="replace an existing DIR/<cell>.npz")
    g.add_argument("--no-plot", action="store_true", help="do not draw DIR/adding.png")
    g.add_argument("--quiet", action="store_true", help="print only the final 'test MSE: ...' line")


_ADDING_FLAGS = ("timesteps", "cell", "lstm_size", "batch_size", "lr", "clip", "minutes", "eval_every", "seed",
                 "dtype")


def run_adding_command(args, parser):
    from numpylstm.demos.adding import AddingSettings, run_adding, settings_from_checkpoint

    given = {k: getattr(args, k) for k in _ADDING_FLAGS if getattr(args, k) is not None}
    if args.resume:
        try:
            settings = settings_from_checkpoint(args.resume)
        except (ValueError, OSError) as exc:
            parser.error(f"--resume: {exc}")
        minutes = given.pop("minutes", settings.minutes)
        clashes = [f"--{k.replace('_', '-')} {v} (checkpoint has {getattr(settings, k)})"
                   for k, v in given.items() if v != getattr(settings, k)]
        if clashes:
            parser.error("--resume continues a run with its own settings; these flags differ: " + ", ".join(clashes))
        settings = replace(settings, minutes=minutes)
        out = Path(args.resume).parent if args.out == "runs/adding" else Path(args.out)
        if Path(args.resume).resolve() != (out / f"{settings.cell}.npz").resolve():
            parser.error(f"--resume {args.resume}: an adding run saves to DIR/{settings.cell}.npz; give "
                         f"--out DIR of that file")
    else:
        settings, out = replace(AddingSettings(), **given), Path(args.out)
    _check_writable(parser, "--out", out, folder=True)
    try:
        settings.check()
        return run_adding(settings, out=out, resume=args.resume, overwrite=args.overwrite, plot=not args.no_plot,
                          quiet=args.quiet)
    except ValueError as exc:
        parser.error(str(exc))


def add_gradients_flags(p):
    from numpylstm.demos.adding import AddingSettings

    d = AddingSettings()
    p.epilog = ("The trained weights are those of 'python demo.py adding' (DIR/lstm.npz, DIR/rnn.npz under "
                "--from) when present; otherwise each cell is trained here for --train-steps steps on the adding "
                "problem. Derivation: derivations/11_why_lstm.md. See docs/inside.md, 'Gradient flow'.")
    _add_adding_model_flags(p, d)
    g = p.add_argument_group("measurement and output")
    g.add_argument("--batch", type=_int(1), default=256, metavar="N",
                   help="sequences the gradient norms are averaged over (default 256)")
    g.add_argument("--from", dest="source", type=_path, default="runs/adding", metavar="DIR",
                   help="take trained weights from DIR/<cell>.npz of 'demo.py adding' (default runs/adding)")
    g.add_argument("--train-steps", type=_int(1), default=1000, metavar="STEPS",
                   help="training steps for a cell without a checkpoint in --from (default 1000)")
    g.add_argument("--out", type=_path, default="runs/gradients", metavar="DIR",
                   help="folder for flow.png (default runs/gradients)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing DIR/flow.png")
    g.add_argument("--no-plot", action="store_true", help="print the ratios only")
    g.add_argument("--quiet", action="store_true", help="print only the ratios")


def run_gradients_command(args, parser):
    from numpylstm.demos.adding import AddingSettings
    from numpylstm.demos.gradients import run_gradients

    given = {k: getattr(args, k) for k in ("timesteps", "lstm_size", "batch_size", "lr", "clip", "seed")
             if getattr(args, k) is not None}
    _check_writable(parser, "--out", args.out, folder=True)
    try:
        settings = replace(AddingSettings(), **given).check()
        return run_gradients(settings, out=args.out, source=args.source, train_steps=args.train_steps,
                             batch=args.batch, overwrite=args.overwrite, plot=not args.no_plot, quiet=args.quiet)
    except ValueError as exc:
        parser.error(str(exc))


def add_cells_flags(p):
    p.epilog = ("Train a model first, e.g. 'python demo.py chars --text anna.txt --minutes 10'. The page needs no "
                "network. See docs/inside.md, 'What the char-RNN's cells learned'.")
    p.add_argument("--checkpoint", type=_existing_file, required=True, metavar="FILE",
                   help="a checkpoint of 'demo.py chars' (e.g. runs/chars/chars.npz)")
    p.add_argument("--text", type=_existing_file, required=True, metavar="FILE",
                   help="the text it was trained on; the passage comes from its validation part (last 10%%)")
    p.add_argument("--length", type=_int(2), default=2000, metavar="CHARS",
                   help="characters in the passage (default 2000)")
    p.add_argument("--offset", type=_int(0), default=0, metavar="CHARS",
                   help="start at the first paragraph after this many characters into the validation text "
                        "(default 0)")
    p.add_argument("--top", type=_int(1), default=3, metavar="K",
                   help="list the K most correlated cells for each property (default 3)")
    p.add_argument("--out", type=_path, metavar="FILE",
                   help="where to write the page (default cells.html next to the checkpoint)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing page")


def run_cells_command(args, parser):
    from numpylstm.demos.cells import run_cells

    if args.out:
        _check_writable(parser, "--out", args.out)
    else:
        _check_writable(parser, "the page (cells.html next to --checkpoint; choose another place with --out)",
                        Path(args.checkpoint).parent / "cells.html")
    try:
        return run_cells(args.checkpoint, args.text, out=args.out, length=args.length, offset=args.offset,
                         per_property=args.top, overwrite=args.overwrite)
    except ValueError as exc:
        parser.error(str(exc))


# --------------------------------------------------------------------------- the variant lab


def add_variants_flags(p):
    from numpylstm.demos.variants import DEFAULT_SEEDS, DEFAULT_TASKS, LAB_CELLS, TASKS

    steps = ", ".join(f"{t} {cls().steps}" for t, cls in TASKS.items())
    p.epilog = ("Every cell gets the same hidden size, optimizer, data and number of steps (a budget in steps, "
                "not seconds, so runs compare on a busy machine). Finished runs are saved as "
                "DIR/runs/<task>.<cell>.seed<S>.json: the same command again resumes, skipping them; --redraw "
                "rebuilds the table and DIR/variants.png from them without training. What the table means, "
                "next to Greff et al. 2017: docs/variants.md.")
    g = p.add_argument_group("what to run")
    g.add_argument("--cells", nargs="+", metavar="CELL",
                   help=f"cells to train, from {' '.join(LAB_CELLS)} (default: every one this checkout's "
                        "LSTMModel accepts)")
    g.add_argument("--tasks", nargs="+", metavar="TASK", choices=tuple(TASKS),
                   help=f"tasks, from {' '.join(TASKS)} (default {' '.join(DEFAULT_TASKS)})")
    g.add_argument("--seeds", type=_int(1), metavar="S",
                   help=f"seeds 0 .. S-1 per (task, cell) (default {DEFAULT_SEEDS})")
    g.add_argument("--steps", nargs="+", metavar="N|TASK=N",
                   help=f"training steps per run: one number for every task, or TASK=N items (default {steps})")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision (default float32)")
    g.add_argument("--jobs", type=_int(1), default=None, metavar="J",
                   help="runs trained side by side, one process each (default: the number of cores, at most "
                        "2); the numbers do not depend on it")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="runs/variants", metavar="DIR",
                   help="folder for DIR/runs/*.json and DIR/variants.png (default runs/variants)")
    g.add_argument("--redraw", action="store_true",
                   help="train nothing: print the table and redraw DIR/variants.png from the runs saved in DIR "
                        "(--tasks, --cells and --seeds S, seeds 0 .. S-1, select among them)")
    g.add_argument("--overwrite", action="store_true",
                   help="retrain runs saved in DIR with other settings (replacing their files), and replace a "
                        "DIR/variants.png that holds no lab runs")
    g.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    g.add_argument("--no-plot", action="store_true", help="do not draw DIR/variants.png")
    g.add_argument("--quiet", action="store_true", help="print only the table")


def _parse_lab_steps(parser, items, tasks):
    if not items:
        return {}
    if len(items) == 1 and "=" not in items[0]:
        n = _lab_int(parser, "--steps", items[0])
        return {t: n for t in tasks}
    steps = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--steps: expected one number or TASK=N items; got {' '.join(items)}")
        if name not in tasks:
            parser.error(f"--steps {item}: {name!r} is not one of the tasks run ({', '.join(tasks)})")
        steps[name] = _lab_int(parser, f"--steps {name}=", value)
    return steps


def _lab_int(parser, flag, text):
    try:
        return _int(1)(text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"{flag}: {exc}")


def run_variants_command(args, parser):
    from numpylstm.demos.variants import (DEFAULT_SEEDS, DEFAULT_TASKS, LAB_CELLS, LabError, LabSettings,
                                          available_cells, redraw, run_lab)

    tasks = tuple(dict.fromkeys(args.tasks or DEFAULT_TASKS))
    cells = available_cells()
    if args.cells:
        for c in args.cells:
            if c not in LAB_CELLS:
                parser.error(f"--cells: unknown cell {c!r}; expected names from {', '.join(LAB_CELLS)}")
            if c not in cells and not args.redraw:
                parser.error(f"--cells: {c!r} is not available in this checkout (LSTMModel accepts "
                             f"{', '.join(cells)})")
        cells = tuple(dict.fromkeys(args.cells))
    _check_writable(parser, "--out", args.out, folder=True)
    try:
        if args.redraw:
            if args.steps or args.jobs:
                parser.error("--redraw trains nothing: --steps and --jobs do not apply")
            return redraw(args.out, tasks=tasks if args.tasks else None, cells=cells if args.cells else None,
                          seeds=args.seeds, markdown=args.markdown, plot=not args.no_plot,
                          overwrite=args.overwrite)
        jobs = args.jobs or max(1, min(2, os.cpu_count() or 1))
        settings = LabSettings(cells=cells, tasks=tasks, seeds=args.seeds or DEFAULT_SEEDS,
                               steps=_parse_lab_steps(parser, args.steps, tasks), dtype=args.dtype, jobs=jobs)
        return run_lab(settings, out=args.out, overwrite=args.overwrite, markdown=args.markdown,
                       plot=not args.no_plot, quiet=args.quiet)
    except LabError as exc:
        parser.error(str(exc))


# --------------------------------------------------------------------------- dispatch

# name -> (help, add_flags(parser), run(args, parser) -> exit status)
COMMANDS = {
    "sine": ("train an LSTM to predict the next value of a sine curve (default)", add_sine_flags, run_sine_command),
    "chars": ("train a character-level LSTM on a text (Udacity's Anna KaRNNa)", add_chars_flags, run_chars_command),
    "sample": ("generate text from a 'chars' checkpoint", add_sample_flags, run_sample_command),
    "inside": ("draw the sine model's gates, cell and hidden states for one test window", add_inside_flags,
               run_inside_command),
    "gradients": ("measure how far back the gradient reaches: LSTM against a plain tanh RNN",
                  add_gradients_flags, run_gradients_command),
    "adding": ("the adding problem: long memory, LSTM against a plain tanh RNN", add_adding_flags,
               run_adding_command),
    "cells": ("an HTML page of what a 'chars' model's cells track in its text", add_cells_flags, run_cells_command),
    "task": ("train one cell on a long-memory task of the LSTM papers (adding, copying, Reber, ...)",
             tasks_demo.add_task_flags, lambda args, parser: tasks_demo.run_task_command(args, parser, _check_writable)),
    "tasks": ("list the long-memory tasks of 'demo.py task', one line each", tasks_demo.add_tasks_flags,
              tasks_demo.run_tasks_command),
    "variants": ("the variant lab: every LSTM variant, GRU and RNN, same budget, ranked on memory tasks",
                 add_variants_flags, run_variants_command),
}
DEFAULT_COMMAND = "sine"


def build_parser():
    parser = Parser(prog="demo.py", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Without a command, 'sine' runs: 'python demo.py --steps 500' = "
                           "'python demo.py sine --steps 500'. 'python demo.py COMMAND --help' lists its flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers = {}
    for name, (text, add_flags, run) in COMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text, prog=f"demo.py {name}")
        add_flags(sp)
        sp.set_defaults(run=run)
        subparsers[name] = sp
    return parser, subparsers


def main(argv=None) -> int:
    """Every command runs by the rules of ``numpylstm._cli.run_cli``: a reader that goes away (``| head``, a
    closed terminal) stops the printing, not the work; output that cannot be written (``> /dev/full``) is one
    line and exit status 1; Ctrl-C outside a training loop (which handles it itself: finish the step, save) is
    one line, not a traceback; and every file follows ``numpylstm._files``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv[:1] and argv[0] in COMMANDS else DEFAULT_COMMAND
    return run_cli(lambda: _main(argv), f"demo.py {command}")


def _main(argv) -> int:
    parser, subparsers = build_parser()
    if argv[:1] in (["-h"], ["--help"]):
        print(parser.format_help())
        print(subparsers[DEFAULT_COMMAND].format_help(), end="")
        return 0
    if not argv or argv[0] not in COMMANDS:
        argv.insert(0, DEFAULT_COMMAND)
    args = parser.parse_args(argv)
    return args.run(args, subparsers[args.command])


if __name__ == "__main__":
    sys.exit(main())
