"""Issue 23: nothing is lost, part two. One test (or a table of them) per numbered item of the issue, plus the
rules behind them (``numpylstm/_files.py``: the file rule; ``numpylstm/_cli.py``: the command-line rules).

Item 2 (one model from several threads) is the model helper's and is tested with the model.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import demo as cli
from numpylstm import Adam, LSTMModel
from numpylstm._cli import SafeStream, run_cli
from numpylstm._files import MARK, OutputBusy, OutputRefused, Outputs, atomic_write, kind_of
from numpylstm.checkpoint import read_checkpoint, save_checkpoint
from numpylstm.train import Progress, Trainer

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
TINY = ["--lstm-size", "4", "--timesteps", "5", "--batch-size", "4", "--warmup", "2"]
TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
        "Everything was in confusion in the Oblonskys' house. ") * 12
SMALL = ["--lstm-size", "8", "--n-seqs", "4", "--n-steps", "10", "--eval-every", "20", "--sample-length", "0"]
ADD = ["--timesteps", "4", "--lstm-size", "3", "--batch-size", "8"]


def popen(*args, cwd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, str(ROOT / "demo.py"), *args], cwd=cwd, env=ENV, text=True, **kw)


def one_line(err):
    return "Traceback" not in err and err.count("\n") == 1


def wait_for(cond, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not cond():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run(argv, capsys):
    """``demo.py argv`` in this process: (exit status, stdout, stderr); a usage error is status 2."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _usable(path):
    """A checkpoint that can be read and loaded into the model it describes."""
    from numpylstm.checkpoint import model_from_checkpoint

    model, ck = model_from_checkpoint(path)
    assert all(np.isfinite(p).all() for p in model.params.values())
    return ck


# ============================================================================ item 1: a closed terminal


def _pty_run(tmp_path, args, ignore_hup=False, wait_for_output=True):
    """Run demo.py with stdin/stdout on a pseudo-terminal it owns (its controlling terminal), stderr to a file;
    close the terminal (the master side) once training is under way. Returns (exit status, stderr)."""
    import fcntl
    import termios

    master, slave = os.openpty()
    err_path = tmp_path / "err.txt"

    def child_setup():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        if ignore_hup:  # like nohup: the hang-up signal is ignored, only the write errors (EIO) remain
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "demo.py"), *args], cwd=tmp_path, env=ENV,
                                stdin=slave, stdout=slave, stderr=err, preexec_fn=child_setup, close_fds=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while wait_for_output and b"elapsed" not in seen:  # a progress line: the training loop is running
        assert time.monotonic() < deadline and proc.poll() is None, (seen, err_path.read_text())
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
    os.close(master)  # the terminal goes away
    code = proc.wait(timeout=180)
    return code, err_path.read_text()


def test_item1_a_closed_terminal_saves_the_run_and_the_hint_works(tmp_path):
    code, err = _pty_run(tmp_path, ["--steps", "100000", *TINY, "--no-plot", "--out", "h"])
    assert code == 129, err
    m = re.fullmatch(r"stopped by SIGHUP at step (\d+); checkpoint saved to (\S+); continue with --resume (\S+)\n",
                     err)
    assert m and m.group(2) == m.group(3) == "h/checkpoint.npz", err
    assert _usable(tmp_path / "h" / "checkpoint.npz").step == int(m.group(1)) > 0
    k = int(m.group(1))
    again = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--resume", "h/checkpoint.npz", "--stop-at",
                            str(k + 2), "--no-plot", "--quiet"], cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert read_checkpoint(tmp_path / "h" / "checkpoint.npz").step == k + 2


def test_item1_a_closed_terminal_with_the_hang_up_ignored_stops_the_printing_not_the_work(tmp_path):
    """nohup: no SIGHUP, so every later progress line meets EIO: the run goes on quietly to its end and saves."""
    code, err = _pty_run(tmp_path, ["--steps", "400", *TINY, "--no-plot", "--checkpoint", "ck.npz"],
                         ignore_hup=True)
    assert code == 0 and err == "", err
    assert _usable(tmp_path / "ck.npz").step == 400


def test_item1_eio_and_epipe_are_quiet_other_write_errors_are_kept():
    class Dead:
        def __init__(self, no):
            self.no = no

        def write(self, text):
            raise OSError(self.no, os.strerror(self.no))

        flush = lambda self: None  # noqa: E731

        def fileno(self):
            raise ValueError("no descriptor")

    for no, kept in ((errno.EIO, False), (errno.EPIPE, False), (errno.ENOSPC, True)):
        s = SafeStream(Dead(no))
        assert s.write("x") == 1 and s.broken and (s.error is not None) == kept
        s.write("more")  # a no-op now


def test_item1_a_progress_line_that_cannot_be_written_does_not_end_the_run(tmp_path):
    class Dying:
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            pass

    model = LSTMModel(2, 3, 1, seed=0)
    rng = np.random.default_rng(0)
    trainer = Trainer(model, Adam(model.params), lambda s: (rng.standard_normal((2, 3, 2)),
                                                             rng.standard_normal((2, 1))), 6,
                      checkpoint_path=tmp_path / "ck.npz", progress=Progress(6, stream=Dying(), every=1))
    result = trainer.run()
    assert result.step == 6 and read_checkpoint(tmp_path / "ck.npz").step == 6


# ============================================================================ item 3: two runs, one place


def test_item3_two_sine_runs_into_one_folder_the_second_fails_clearly(tmp_path):
    a = popen("--steps", "100000", *TINY, "--out", "o", cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "o" / ".loss.png.lock").exists(), a)
        b = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--steps", "5", *TINY, "--out", "o"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        assert b.returncode == 2 and one_line(b.stderr), b.stderr
        assert re.search(rf"o/\w+\.png is being written by another run \(pid {a.pid}, demo\.py sine\)", b.stderr)
        assert "test RMSE" not in b.stdout
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=60)
    finally:
        a.kill()
    assert a.returncode == 143 and "checkpoint saved to o/checkpoint.npz" in err, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["checkpoint.npz"]  # locks gone, B wrote nothing
    assert _usable(tmp_path / "o" / "checkpoint.npz").step > 0


@pytest.mark.parametrize("second", [["chars", "--text", "small.txt", "--epochs", "1", *SMALL, "--out", "o"],
                                    ["--steps", "5", *TINY, "--no-plot", "--checkpoint", "o/chars.npz",
                                     "--overwrite"]],
                         ids=["chars into the same DIR", "sine onto its checkpoint"])
def test_item3_a_run_writing_a_checkpoint_another_run_writes_fails_clearly(tmp_path, text, second):
    a = popen("chars", "--text", "small.txt", "--minutes", "2", *SMALL, "--out", "o", cwd=tmp_path)
    try:
        wait_for(lambda: a.stdout.readline().startswith("step"), a)
        b = subprocess.run([sys.executable, str(ROOT / "demo.py"), *second], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=120)
        assert b.returncode == 2 and one_line(b.stderr), b.stderr
        assert f"being written by another run (pid {a.pid}, demo.py chars)" in b.stderr
        a.send_signal(signal.SIGINT)
        out, err = a.communicate(timeout=60)
    finally:
        a.kill()
    assert a.returncode == 130, err
    assert read_checkpoint(tmp_path / "o" / "chars.npz").user["demo"] == "chars"  # A's, not replaced by B


def test_item3_the_lock_of_a_killed_run_is_not_in_the_way(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from numpylstm._files import Outputs\n"
        "o = Outputs('killed run'); o.claim(sys.argv[1], 'png'); print('locked', flush=True); time.sleep(60)"),
        str(tmp_path / "p.png")], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    with pytest.raises(OutputBusy, match=rf"p\.png is being written by another run \(pid {proc.pid}, killed run\)"):
        Outputs().claim(tmp_path / "p.png", "png")
    proc.kill()
    proc.wait()
    assert (tmp_path / ".p.png.lock").exists()  # left behind by the SIGKILL ...
    with Outputs() as outs:  # ... and not in the way: the kernel dropped the lock with the process
        outs.claim(tmp_path / "p.png", "png")
    assert not (tmp_path / ".p.png.lock").exists()


def test_item3_a_default_checkpoint_name_taken_by_a_live_run_moves_on(tmp_path):
    with Outputs() as a, Outputs() as b:
        first = a.claim_new(tmp_path / "checkpoint.npz")
        second = b.claim_new(tmp_path / "checkpoint.npz")
    assert (first.name, second.name) == ("checkpoint.npz", "checkpoint-2.npz")


# ============================================================================ item 4: signals after training


@pytest.fixture
def sine_signal(here):
    """Run ``demo.py sine`` in this process with a signal sent to itself at a chosen moment after training."""
    from numpylstm.demos import plots, sine

    def go(sig, when, extra=()):
        with pytest.MonkeyPatch.context() as mp:
            if when == "evaluating, before the save":
                original = sine.keep_trained
                mp.setattr(sine, "keep_trained", lambda *a: (os.kill(os.getpid(), sig), original(*a)))
            elif when == "evaluating":  # format_seconds: the summary line after training
                original_fs = sine.format_seconds
                mp.setattr(sine, "format_seconds", lambda *a: (os.kill(os.getpid(), sig), original_fs(*a))[1])
            else:  # the plots
                original_loss = plots.plot_loss
                mp.setattr(plots, "plot_loss", lambda *a, **k: (os.kill(os.getpid(), sig), original_loss(*a, **k))[1])
            try:
                return cli.main(["--steps", "20", *TINY, "--out", "o", "--quiet", *extra])
            except SystemExit as exc:
                return exc.code
    return go


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize("when", ["evaluating, before the save", "drawing the plots"])
def test_item4_a_signal_after_training_saves_the_model_and_says_how_to_continue(sine_signal, here, capsys, sig,
                                                                                  when):
    code = sine_signal(sig, when)
    err = capsys.readouterr().err
    assert code == 128 + sig and one_line(err), err
    what = "interrupted" if sig == signal.SIGINT else f"stopped by {signal.Signals(sig).name}"
    assert re.fullmatch(rf"{what} after training \(step 20\), while (evaluating on the test set|drawing the "
                        r"plots); checkpoint saved to o/checkpoint\.npz; continue with --resume o/checkpoint\.npz\n",
                        err), err
    assert _usable(here / "o" / "checkpoint.npz").step == 20
    if sig == signal.SIGTERM:  # the hint, pasted: the run is at its end, so it evaluates and draws again
        assert cli.main(["--resume", "o/checkpoint.npz", "--out", "o", "--quiet"]) == 0
        assert "test RMSE" in capsys.readouterr().out


def test_item4_a_signal_during_the_final_evaluation_of_a_no_plot_run_saves_too(sine_signal, here, capsys):
    code = sine_signal(signal.SIGTERM, "evaluating", ["--no-plot"])
    err = capsys.readouterr().err
    assert code == 143 and "checkpoint saved to o/checkpoint.npz" in err, err
    assert _usable(here / "o" / "checkpoint.npz").step == 20


def test_item4_chars_and_adding_save_on_a_signal_while_plotting(here, text, monkeypatch, capsys):
    from numpylstm.demos import adding, plots

    original = plots.plot_loss
    monkeypatch.setattr(plots, "plot_loss", lambda *a, **k: (os.kill(os.getpid(), signal.SIGTERM),
                                                               original(*a, **k))[1])
    code, out, err = run(["chars", "--text", str(text), "--epochs", "1", *SMALL, "--out", "c"], capsys)
    assert code == 143 and re.search(r"stopped by SIGTERM after training \(step \d+\), while drawing the plot; "
                                     r"checkpoint saved to c/chars\.npz; continue with --resume c/chars\.npz", err)
    assert code, run(["chars", "--resume", "c/chars.npz", "--no-plot", "--quiet"], capsys)[0] == 0  # no --text

    monkeypatch.setattr(adding, "plot_adding", lambda *a, **k: os.kill(os.getpid(), signal.SIGINT))
    code, out, err = run(["adding", *ADD, "--minutes", "0.005", "--out", "a"], capsys)
    assert code == 130 and "checkpoint saved to a/lstm.npz; continue with --resume a/lstm.npz" in err, err


# ============================================================================ item 5: files replaced or emptied

PNG_OF_MINE = b"\x89PNG\r\n\x1a\n my own picture"

# (id, files made first {name: bytes}, argv, exit status, regex of the one stderr line, files that must be kept)
FILE_CASES = [
    ("sine: a user's loss.png", {"o/loss.png": PNG_OF_MINE}, ["--steps", "5", *TINY, "--out", "o"], 2,
     r"o/loss\.png exists and was not drawn by numpylstm.*move it away, or pass --overwrite", ["o/loss.png"]),
    ("sine: a user's notes where a plot goes", {"o/error.png": b"notes\n"}, ["--steps", "5", *TINY, "--out", "o",
                                                                              "--overwrite"], 2,
     r"o/error\.png exists and is a file of another kind, not a PNG image; it is never replaced", ["o/error.png"]),
    ("sine: --checkpoint where a plot goes", {}, ["--steps", "5", *TINY, "--out", "o", "--checkpoint",
                                                  "o/loss.png"], 2,
     r"--checkpoint o/loss\.png is where the plot loss\.png goes", []),
    ("sine: a plot where the checkpoint goes", {"ck.npz": PNG_OF_MINE}, ["--steps", "5", *TINY, "--no-plot",
                                                                          "--checkpoint", "ck.npz", "--overwrite"], 2,
     r"ck\.npz exists and is not a numpylstm checkpoint; it is never replaced", ["ck.npz"]),
    ("chars: a user's loss.png", {"c/loss.png": PNG_OF_MINE},
     ["chars", "--text", "small.txt", "--epochs", "1", *SMALL, "--out", "c"], 2,
     r"c/loss\.png exists and was not drawn by numpylstm", ["c/loss.png"]),
    ("adding: a user's adding.png", {"a/adding.png": PNG_OF_MINE}, ["adding", *ADD, "--minutes", "0.01",
                                                                     "--out", "a"], 2,
     r"a/adding\.png exists and was not drawn by numpylstm", ["a/adding.png"]),
    ("gradients: flow.png without --overwrite", {"g/flow.png": PNG_OF_MINE},
     ["gradients", *ADD, "--train-steps", "2", "--from", "none", "--out", "g"], 2,
     r"g/flow\.png exists; pass --overwrite to replace it", ["g/flow.png"]),
    ("cells: --out a checkpoint, even with --overwrite", {"C.npz": "checkpoint"},
     ["cells", "--checkpoint", "C.npz", "--text", "small.txt", "--out", "C.npz", "--overwrite"], 2,
     r"C\.npz exists and is a numpylstm checkpoint, not an HTML page; it is never replaced by one", ["C.npz"]),
    ("cells: --out a picture", {"p.png": PNG_OF_MINE},
     ["cells", "--checkpoint", "C.npz", "--text", "small.txt", "--out", "p.png", "--overwrite"], 2,
     r"p\.png exists and is a PNG image, not an HTML page", ["p.png"]),
    ("inside: --out with a user's inside.png", {"i/inside.png": PNG_OF_MINE},
     ["inside", "--checkpoint", "C.npz", "--out", "i"], 2, r"i/inside\.png exists; pass --overwrite", ["i/inside.png"]),
]


def _make(folder, files, text_path=None):
    for name, content in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if content == "checkpoint":
            continue
        p.write_bytes(content)


@pytest.fixture(scope="module")
def chars_ck(tmp_path_factory):
    d = tmp_path_factory.mktemp("chars_ck")
    (d / "small.txt").write_text(TEXT, encoding="utf-8")
    p = subprocess.run([sys.executable, str(ROOT / "demo.py"), "chars", "--text", "small.txt", "--epochs", "1",
                        *SMALL, "--no-plot", "--quiet", "--out", "c"], cwd=d, env=ENV, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return d / "c" / "chars.npz"


@pytest.mark.parametrize("files, argv, status, culprit, kept", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_item5_a_file_the_user_did_not_ask_to_replace_is_kept(here, text, chars_ck, capsys, files, argv, status,
                                                              culprit, kept):
    import shutil

    _make(here, files)
    if "C.npz" in argv:
        shutil.copy(chars_ck if argv[0] == "cells" else chars_ck, here / "C.npz")
        if argv[0] == "inside":
            assert cli.main(["--steps", "3", *TINY, "--no-plot", "--checkpoint", "C.npz", "--overwrite",
                             "--quiet"]) == 0
            capsys.readouterr()
    before = {name: (here / name).read_bytes() for name in kept + (["C.npz"] if "C.npz" in argv else [])}
    code, out, err = run(argv, capsys)
    assert code == status and one_line(err), err
    assert re.search(culprit, err), err
    for name, content in before.items():
        assert (here / name).read_bytes() == content, name
    assert not list(here.rglob(".*.lock")) and not list(here.rglob(".*.tmp"))


def test_the_file_table_is_big_enough():
    assert len(FILE_CASES) >= 8 and len({c[0] for c in FILE_CASES}) == len(FILE_CASES)


def test_item5_plots_numpylstm_drew_are_redrawn_and_marked(here, capsys):
    assert cli.main(["--steps", "3", *TINY, "--out", "o", "--quiet"]) == 0
    first = (here / "o" / "loss.png").stat().st_mtime_ns
    assert kind_of(here / "o" / "loss.png") == "png:numpylstm"
    assert cli.main(["--steps", "3", *TINY, "--out", "o", "--quiet"]) == 0  # the second run redraws them
    assert (here / "o" / "loss.png").stat().st_mtime_ns >= first
    assert sorted(p.name for p in (here / "o").iterdir()) == ["checkpoint-2.npz", "checkpoint.npz", "error.png",
                                                              "loss.png", "predictions.png"]


def test_item5_a_full_disk_while_plotting_keeps_the_run_and_prints_the_result(here, capsys, monkeypatch):
    import matplotlib.figure

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    code, out, err = run(["--steps", "20", *TINY, "--out", "o"], capsys)
    assert code == 1 and one_line(err), err
    assert re.fullmatch(r"error: could not write the plot \(No space left on device\); the trained model is safe "
                        r"in o/checkpoint\.npz\n", err), err
    assert "test RMSE" in out.splitlines()[-1]
    assert _usable(here / "o" / "checkpoint.npz").step == 20
    assert sorted(p.name for p in (here / "o").iterdir()) == ["checkpoint.npz"]  # no empty PNG, no temp file


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError], ids=["signal", "disk full"])
def test_item5_an_interrupted_write_leaves_the_previous_file_as_it_was(tmp_path, stop):
    target = tmp_path / "inside.png"
    target.write_bytes(b"\x89PNG\r\n\x1a\n the previous picture")
    before = target.read_bytes()

    def write(f):
        f.write(b"\x89PNG half a pic")
        raise stop()

    with pytest.raises(stop):
        atomic_write(target, write)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["inside.png"]


def test_item5_the_decision_is_taken_again_at_write_time(tmp_path):
    png, ck = tmp_path / "p.png", tmp_path / "ck.npz"
    notes = []
    with Outputs(warn=type("W", (), {"write": lambda s, t: notes.append(t), "flush": lambda s: None})()) as outs:
        outs.claim(png, "png", regenerated=True)
        outs.claim(ck, "checkpoint")
        png.write_bytes(PNG_OF_MINE)  # someone else's files appear while the run goes on
        model = LSTMModel(1, 2, 1)
        save_checkpoint(ck, model, step=7)
        with pytest.raises(OutputRefused, match="not drawn by numpylstm.*appeared or changed while this run"):
            outs.write(png, lambda f: f.write(b"mine"), "png", regenerated=True)
        written = outs.save_checkpoint(ck, lambda p: save_checkpoint(p, model, step=8))
    assert png.read_bytes() == PNG_OF_MINE and read_checkpoint(ck).step == 7
    assert written.name == "ck-2.npz" and read_checkpoint(written).step == 8
    assert "ck-2.npz" in "".join(notes)


def test_item5_figures_are_marked_and_recognised(tmp_path):
    from numpylstm.demos.plots import _figure, _save

    fig, ax = _figure()
    ax.plot([0, 1], [1, 0])
    path = _save(fig, tmp_path / "f.png")
    assert kind_of(path) == "png:numpylstm" and MARK.encode() in path.read_bytes()[:400]
    (tmp_path / "other.png").write_bytes(PNG_OF_MINE)
    assert kind_of(tmp_path / "other.png") == "png"  # a checker that can fail


# ============================================================================ item 6: the wrong label


def test_item6_gradients_refuses_a_checkpoint_of_another_cell_under_a_cells_name(here, capsys):
    assert cli.main(["adding", "--cell", "rnn", *ADD, "--minutes", "0.003", "--out", "a", "--no-plot",
                     "--quiet"]) == 0
    os.rename(here / "a" / "rnn.npz", here / "a" / "lstm.npz")
    capsys.readouterr()
    code, out, err = run(["gradients", *ADD, "--train-steps", "2", "--from", "a", "--no-plot"], capsys)
    assert code == 2 and one_line(err), err
    assert "a/lstm.npz holds a tanh RNN (cell 'rnn'), not the LSTM its name says" in err
    assert "LSTM after training" not in out.replace("LSTM after training: ...", "")


# ============================================================================ item 7: one line, never a traceback

# (id, argv, regex of the one stderr line); every row exits 2 before allocating anything
MEMORY_CASES = [
    ("adding timesteps", ["adding", "--timesteps", "10000000"], r"GB of memory \(timesteps 10000000"),
    ("adding lstm-size", ["adding", "--lstm-size", "100000"], r"GB of memory \(timesteps 100, lstm_size 100000"),
    ("adding batch-size", ["adding", "--batch-size", "100000000"], r"batch_size 100000000\); the limit is 8 GB"),
    ("gradients timesteps", ["gradients", "--timesteps", "10000000"], r"GB of memory"),
    ("gradients lstm-size", ["gradients", "--lstm-size", "100000"], r"GB of memory"),
    ("gradients batch", ["gradients", "--timesteps", "1000", "--batch", "10000000"], r"batch 10000000"),
]


@pytest.mark.parametrize("argv, culprit", [c[1:] for c in MEMORY_CASES], ids=[c[0] for c in MEMORY_CASES])
def test_item7_the_memory_guard_of_every_command(here, capsys, argv, culprit):
    code, out, err = run([*argv, "--no-plot"], capsys)
    assert code == 2 and one_line(err) and re.search(culprit, err), err
    assert not any(here.iterdir())


def _huge_checkpoint(path):
    import json

    from numpylstm.demos.text import Vocab

    m = LSTMModel(4, 3, 4, head="all", loss="softmax_ce")
    save_checkpoint(path, m, user={"demo": "chars", "settings": {"epochs": 1}, "text": {}},
                    extra={"vocab": Vocab("abc ").to_array()})
    z = dict(np.load(path))
    meta = json.loads(str(z["meta"]))
    meta["model_config"]["hidden_size"] = 10**6
    z["meta"] = np.array(json.dumps(meta))
    np.savez(path, **z)


@pytest.mark.parametrize("argv", [["sample", "--checkpoint", "big.npz"],
                                  ["cells", "--checkpoint", "big.npz", "--text", "t.txt", "--out", "p.html"]])
def test_item7_a_checkpoint_describing_a_huge_model_is_one_line(here, capsys, argv):
    _huge_checkpoint(here / "big.npz")
    (here / "t.txt").write_text("abc " * 500)
    code, out, err = run(argv, capsys)
    assert code == 2 and one_line(err) and "describes a model too big for this machine" in err, err


@pytest.mark.parametrize("argv", [["-m", "numpylstm.gradcheck"], ["-m", "numpylstm.demos.baselines"],
                                  [str(ROOT / "demo.py"), "--steps", "300", *TINY, "--no-plot"]],
                         ids=["gradcheck", "baselines", "demo.py"])
def test_item7_head_1_is_exit_status_0_and_no_traceback(tmp_path, argv):
    proc = subprocess.Popen([sys.executable, *argv], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()  # | head -1
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0 and err == "", err


@pytest.mark.parametrize("argv", [[str(ROOT / "demo.py"), "--help"], ["-m", "numpylstm.gradcheck", "-h"],
                                  [str(ROOT / "demo.py"), "--steps", "3", *TINY, "--no-plot"]],
                         ids=["demo.py --help", "gradcheck -h", "a tiny run"])
def test_item7_stdout_on_a_full_disk_is_one_line_and_exit_1(tmp_path, argv):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=ENV, stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert p.returncode == 1 and one_line(p.stderr), p.stderr
    assert re.search(r"error: could not write the output \(No space left on device\)", p.stderr)


def test_item7_run_cli_turns_a_memory_error_and_ctrl_c_into_one_line(capsys):
    def boom():
        raise MemoryError()

    def ctrl_c():
        raise KeyboardInterrupt

    assert run_cli(boom, "prog") == 1 and "prog: error: out of memory" in capsys.readouterr().err
    assert run_cli(ctrl_c, "prog") == 130 and capsys.readouterr().err == "prog: interrupted\n"


def test_item7_ctrl_c_while_demo_py_imports_is_one_line(tmp_path):
    """SIGINT while NumPy is being imported (``-X importtime`` says when): one line, exit status 130. (Only the
    interpreter's own start, before demo.py's first line runs, is out of demo.py's reach.)"""
    p = subprocess.Popen([sys.executable, "-X", "importtime", str(ROOT / "demo.py"), "--steps", "5", *TINY,
                          "--no-plot"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    for line in p.stderr:
        # The module column, matched exactly: an editable install's site hook "__editable___numpylstm_..._finder"
        # also contains "numpy", and a signal then would hit the interpreter's own start-up.
        module = line.rsplit("|", 1)[-1].strip()
        if line.startswith("import time:") and (module == "numpy" or module.startswith("numpy.")):
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=60)
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("import time:"))
    assert p.returncode == 130 and err == "demo.py: interrupted\n", err


def test_item7_ctrl_c_during_gradcheck_bugs_is_one_line(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "numpylstm.gradcheck", "--bugs"], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # past the imports, inside the zoo's training runs
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "python -m numpylstm.gradcheck: interrupted\n", err


def test_item7_cells_into_a_folder_it_cannot_write(here, chars_ck, capsys, monkeypatch):
    import shutil

    (here / "ro").mkdir()
    shutil.copy(chars_ck, here / "ro" / "chars.npz")
    (here / "small.txt").write_text(TEXT)
    real_mkstemp = __import__("tempfile").mkstemp

    def refuse(*a, dir=None, **k):  # what a read-only folder does (root would ignore chmod)
        if dir is not None and Path(dir).resolve() == (here / "ro").resolve():
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*a, dir=dir, **k)

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    code, out, err = run(["cells", "--checkpoint", "ro/chars.npz", "--text", "small.txt"], capsys)
    assert code == 2 and one_line(err) and "cannot write in ro (Permission denied)" in err, err


# ============================================================================ item 8: messages that mislead


def test_item8_chars_resume_hint_works_without_text(here, text, capsys):
    from numpylstm.demos import chars as chars_mod

    calls = []
    original = chars_mod.Windows.__getitem__

    def batch(self, k):  # Ctrl-C during the 3rd training step
        calls.append(k)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, k)

    pytest.MonkeyPatch().setattr(chars_mod.Windows, "__getitem__", batch)
    try:
        code, out, err = run(["chars", "--text", str(text), "--epochs", "2", *SMALL, "--no-plot", "--out", "c"],
                             capsys)
    finally:
        chars_mod.Windows.__getitem__ = original
    assert code == 130, err
    hint = re.search(r"continue with (--resume \S+)$", err.strip()).group(1)
    code, out, err = run(["chars", *hint.split(), "--no-plot", "--quiet"], capsys)  # pasted as printed
    assert code == 0 and "val loss" in out, err
    # the text moved: the message names the file it needs, not a raw dict
    os.rename(text, here / "moved.txt")
    code, out, err = run(["chars", *hint.split(), "--epochs", "3", "--no-plot", "--quiet"], capsys)
    assert code == 2 and one_line(err) and f"was trained on {text}, which is not there any more" in err, err
    (here / "other.txt").write_text(TEXT.upper())
    code, out, err = run(["chars", *hint.split(), "--text", "other.txt", "--epochs", "3", "--no-plot"], capsys)
    assert code == 2 and "{" not in err and re.search(r"characters, CRC-32 [0-9a-f]{8}\), not on other\.txt", err)


def test_item8_inside_resume_hint_continues_the_model(here, capsys, monkeypatch):
    from numpylstm.demos import inside, sine

    small = sine.SineSettings(steps=30, lstm_size=4, timesteps=5, batch_size=4, warmup=2)
    monkeypatch.setattr(inside, "SineSettings", lambda: small)

    class Stopping(Progress):
        def update(self, step, *a):
            if step == 10:
                os.kill(os.getpid(), signal.SIGINT)
            super().update(step, *a)

    monkeypatch.setattr(inside, "Progress", Stopping)
    code, out, err = run(["inside", "--out", "o", "--window", "3"], capsys)
    assert code == 130 and one_line(err), err
    m = re.search(r"continue with (python demo\.py inside --out o) \(it continues o/inside\.npz, then draws\)", err)
    assert m, err
    monkeypatch.setattr(inside, "Progress", Progress)
    code, out, err = run(m.group(1).split()[2:] + ["--window", "3"], capsys)
    assert code == 0 and "continuing the unfinished model in o/inside.npz from step 10" in out, err
    assert read_checkpoint(here / "o" / "inside.npz").step == 30 and (here / "o" / "inside.png").exists()


def test_item8_a_second_signal_is_named_by_the_order_they_came():
    """SIGINT and then SIGTERM during one long C call: both C handlers have run (their bytes are in the wakeup
    pipe, in the order they came), and Python then runs the handlers in signal-number order, SIGINT's first.
    The second signal is SIGTERM, and that is what the abort must name (it said SIGINT before)."""
    from numpylstm.train import RunAborted, _StopSignals

    with _StopSignals() as stop:
        assert stop._pipe is not None
        os.write(stop._pipe[1], bytes([signal.SIGINT, signal.SIGTERM]))
        with pytest.raises(RunAborted) as info:
            stop._handler(signal.SIGINT, None)
        assert info.value.signum == signal.SIGTERM and stop.signum == signal.SIGINT
        stop._handler(signal.SIGTERM, None)  # Python's call for the SIGTERM that was already counted: no 2nd abort
    with _StopSignals() as stop:  # and the other order
        os.write(stop._pipe[1], bytes([signal.SIGTERM, signal.SIGINT]))
        with pytest.raises(RunAborted) as info:
            stop._handler(signal.SIGINT, None)
        assert info.value.signum == signal.SIGINT and stop.signum == signal.SIGTERM


# (id, argv, exit status, regex of the one stderr line); files made by _msg_files
MESSAGE_CASES = [
    ("--text /dev/null", ["chars", "--text", "/dev/null", "--epochs", "1"], 2, r"--text /dev/null is empty"),
    ("--text a folder", ["chars", "--text", ".", "--epochs", "1"], 2, r"argument --text: \. is a folder; expected a file"),
    ("chars --keep-prob 1e-300", ["chars", "--text", "small.txt", "--keep-prob", "1e-300", "--epochs", "1"], 2,
     r"keep_prob must be in \(0, 1\] \(and not so small that 1 - keep_prob rounds to 1\); got 1e-300"),
    ("chars --out ''", ["chars", "--text", "small.txt", "--out", "", "--epochs", "1"], 2,
     r"argument --out: expected a file or folder name, got ''"),
    ("cells --out ''", ["cells", "--checkpoint", "ck.npz", "--text", "small.txt", "--out", ""], 2,
     r"argument --out: expected a file or folder name"),
    ("--resume at 10 --stop-at 5", ["--resume", "ck10.npz", "--stop-at", "5", "--no-plot"], 2,
     r"--stop-at 5: --resume ck10\.npz is already at step 10; give a later step \(up to --steps 20\)"),
    ("--stateful --resume at 10 --stop-at 10", ["--stateful", "--resume", "st10.npz", "--stop-at", "10",
                                                 "--no-plot"], 2, r"already at step 10"),
]


def _msg_files(folder, capsys):
    (folder / "small.txt").write_text(TEXT)
    for name, extra in (("ck10.npz", []), ("st10.npz", ["--stateful"])):
        assert cli.main([*extra, "--steps", "20", *TINY, "--stop-at", "10", "--no-plot", "--quiet",
                         "--checkpoint", name]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("argv, status, culprit", [c[1:] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES])
def test_item8_messages_say_what_is_wrong(here, capsys, argv, status, culprit, chars_ck):
    import shutil

    _msg_files(here, capsys)
    shutil.copy(chars_ck, here / "ck.npz") if argv[0] == "cells" else None
    code, out, err = run(argv, capsys)
    assert code == status and one_line(err) and re.search(culprit, err), err


def test_the_message_table_is_big_enough():
    assert len(MESSAGE_CASES) >= 6 and len({c[0] for c in MESSAGE_CASES}) == len(MESSAGE_CASES)


def test_item8_sample_with_a_tiny_temperature_is_greedy(here, chars_ck, capsys):
    code, out, err = run(["sample", "--checkpoint", str(chars_ck), "--prime", "Hap", "--length", "30",
                          "--temperature", "1e-320", "--seed", "1"], capsys)
    assert code == 0 and err == "", err
    code2, out2, _ = run(["sample", "--checkpoint", str(chars_ck), "--prime", "Hap", "--length", "30",
                          "--temperature", "1e-320", "--seed", "2"], capsys)
    assert out == out2  # no randomness left: always the most likely character


def test_item8_resume_of_a_symlink_updates_the_target_and_keeps_the_link(here, capsys):
    assert cli.main(["--steps", "20", *TINY, "--stop-at", "10", "--no-plot", "--quiet", "--checkpoint",
                     "real.npz"]) == 0
    os.symlink("real.npz", here / "link.npz")
    assert cli.main(["--resume", "link.npz", "--no-plot", "--quiet"]) == 0
    assert (here / "link.npz").is_symlink() and read_checkpoint(here / "real.npz").step == 20


@pytest.mark.parametrize("argv, status, culprit", [
    (["--orders", "0"], 2, r"--orders: must be an integer >= 3"),
    (["--orders", "1000"], 2, r"--orders 1000: with \d+ distinct characters .* the largest order for this text is \d"),
    (["--text", "short.txt"], 2, r"the validation text \(last 10% of short\.txt\) has \d+ items; one batch"),
    (["--text", "missing.txt"], 2, r"--text missing\.txt cannot be read"),
], ids=["orders 0", "orders 1000", "a short text", "a missing text"])
def test_item8_baselines_refuses_before_printing(tmp_path, argv, status, culprit):
    (tmp_path / "short.txt").write_text(TEXT[:3000])
    p = subprocess.run([sys.executable, "-m", "numpylstm.demos.baselines", *argv], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == status and p.stdout == "" and one_line(p.stderr), p.stderr
    assert re.search(culprit, p.stderr), p.stderr


def test_item8_gradcheck_help_is_exit_0():
    p = subprocess.run([sys.executable, "-m", "numpylstm.gradcheck", "-h"], env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m numpylstm.gradcheck") and p.stderr == ""


def test_item8_chars_resume_of_a_run_on_the_default_text_that_changed_says_so(here, capsys, monkeypatch):
    from numpylstm.demos import chars as chars_mod

    monkeypatch.setattr(chars_mod, "default_text", lambda: (TEXT, "the project's Markdown files (test)"))
    assert cli.main(["chars", "--epochs", "1", *SMALL, "--no-plot", "--quiet", "--out", "c"]) == 0
    assert cli.main(["chars", "--resume", "c/chars.npz", "--epochs", "2", "--no-plot", "--quiet"]) == 0  # as is
    monkeypatch.setattr(chars_mod, "default_text", lambda: (TEXT + "More.", "the project's Markdown files (test)"))
    capsys.readouterr()
    code, out, err = run(["chars", "--resume", "c/chars.npz", "--epochs", "3", "--no-plot"], capsys)
    assert code == 2 and one_line(err) and "the project's Markdown files as they were then" in err, err
