"""Fault injection: damaged checkpoints, interrupted saves, divergence and Ctrl-C. Nothing saved may be lost.

Every damaged file must be refused with a ``ValueError`` that names the file (never a zipfile/struct/pickle
error from inside NumPy), and refusing must leave the model and the optimizer untouched.
"""

import os
import pickle
import signal
import zipfile

import numpy as np
import pytest

from numpylstm import Adam, LSTMModel
from numpylstm import checkpoint as ckpt
from numpylstm.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from numpylstm.train import Trainer, TrainingDiverged, Progress


def _model(**kw):
    args = dict(input_size=2, hidden_size=3, output_size=1, num_layers=2, dropout=0.2, seed=0)
    args.update(kw)
    return LSTMModel(**args)


def _trained(steps=2):
    """A model and an Adam optimizer after a few steps, so every array holds something non-trivial."""
    model = _model()
    opt = Adam(model.params, lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        _, grads, _ = model.loss_and_grads(rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 1)))
        opt.step(grads)
    return model, opt


def _snapshot(model, opt):
    return ({k: p.copy() for k, p in model.params.items()}, opt.state_dict(), model.rng.bit_generator.state)


def _unchanged(model, opt, snap):
    params, state, rng = snap
    return (all(np.array_equal(model.params[k], params[k]) for k in params)
            and all(np.array_equal(opt.state_dict()[k], state[k]) for k in state)
            and model.rng.bit_generator.state == rng)


@pytest.fixture
def saved(tmp_path):
    model, opt = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, opt, step=2, user={"note": "x"},
                           extra={"losses": np.array([1.0, 0.5])})
    return path, model, opt


def _expect_refused(path, model=None, opt=None):
    """Loading ``path`` into fresh objects must raise ValueError naming the file and change nothing."""
    model = model or _model(seed=5)
    opt = opt or Adam(model.params, lr=1e-2)
    snap = _snapshot(model, opt)
    with pytest.raises(ValueError, match=str(path.name)) as info:
        load_checkpoint(path, model, opt)
    assert _unchanged(model, opt, snap)
    return str(info.value)


def _rewrite(src, dst, change):
    """Copy an .npz, letting ``change(dict)`` edit the arrays (loaded without pickle)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)


# ----------------------------------------------------------------------------- damaged files

TRUNCATIONS = 40


def test_truncated_at_random_offsets_is_refused(saved, tmp_path):
    path, _, _ = saved
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    offsets = sorted({0, 1, 30, len(data) - 1, len(data) - 22, *rng.integers(2, len(data) - 1, TRUNCATIONS - 5)})
    bad = tmp_path / "cut.npz"
    for off in offsets:
        bad.write_bytes(data[:off])
        msg = _expect_refused(bad)
        assert "not a usable numpylstm checkpoint" in msg, (off, msg)


FLIPS = 40


def test_corrupted_bytes_are_refused_or_harmless(saved, tmp_path):
    """A flipped byte inside a member is caught by the zip CRC; one in a header either breaks the file (refused)
    or lands in a field nobody reads -- then the loaded arrays must be exactly the saved ones."""
    path, model, opt = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path) as z:
        first = z.infolist()[0]
        start_dir = z.start_dir
    # every byte of the first member's local header and central-directory entry and of the end record
    # (the header fields are the same for every member: compression method, flags, sizes, CRC, name length
    # -- flipping them once gave NotImplementedError and RuntimeError before read_checkpoint caught them),
    # plus random bytes anywhere
    header = range(first.header_offset, first.header_offset + 30 + len(first.filename))
    central = range(start_dir, start_dir + 46 + len(first.filename))
    positions = [*header, *central, *range(len(data) - 22, len(data)), *rng.integers(0, len(data), FLIPS)]
    bad = tmp_path / "flip.npz"
    refused = 0
    for pos in positions:
        d = bytearray(data)
        d[pos] ^= 0xFF
        bad.write_bytes(bytes(d))
        fresh = _model(seed=5)
        fopt = Adam(fresh.params, lr=1e-2)
        snap = _snapshot(fresh, fopt)
        try:
            load_checkpoint(bad, fresh, fopt)
        except ValueError as exc:
            assert bad.name in str(exc)
            assert _unchanged(fresh, fopt, snap)
            refused += 1
            continue
        assert all(np.array_equal(fresh.params[k], model.params[k]) for k in model.params), pos
    assert refused > len(positions) // 2


@pytest.mark.parametrize("name, change, culprit", [
    ("shape", lambda a: a.__setitem__("param/lstm.0.Wx", np.zeros((3, 12))), r"'lstm\.0\.Wx'.*\(3, 12\)"),
    ("dtype", lambda a: a.__setitem__("param/head.W", a["param/head.W"].astype(np.float32)), r"'head\.W'.*float32"),
    ("missing param", lambda a: a.pop("param/lstm.1.Wh"), r"lstm\.1\.Wh"),
    ("extra param", lambda a: a.__setitem__("param/lstm.2.Wx", np.zeros((3, 12))), r"lstm\.2\.Wx"),
    ("NaN param", lambda a: a["param/lstm.0.b"].__setitem__(0, np.nan), r"lstm\.0\.b.*NaN"),
    ("optimizer shape", lambda a: a.__setitem__("optim/m/head.b", np.zeros(2)), r"m/head\.b"),
    ("optimizer missing t", lambda a: a.pop("optim/t"), r"'t'"),
    ("negative second moment", lambda a: a.__setitem__("optim/v/head.b", -np.ones(1)), r"v/head\.b"),
    ("format version", lambda a: a.__setitem__("format_version", np.array(99)), r"format version 99"),
    ("format version as float", lambda a: a.__setitem__("format_version", np.array(1.0)), r"format_version"),
    ("meta not JSON", lambda a: a.__setitem__("meta", np.array("{not json")), r"meta.*JSON"),
    ("meta not ours", lambda a: a.__setitem__("meta", np.array('{"kind": "other"}')), r"meta"),
    ("unknown entry", lambda a: a.__setitem__("weights", np.zeros(3)), r"'weights'"),
])
def test_edited_checkpoint_is_refused_naming_the_problem(saved, tmp_path, name, change, culprit):
    path, _, _ = saved
    bad = tmp_path / "edited.npz"
    _rewrite(path, bad, change)
    msg = _expect_refused(bad)
    import re
    assert re.search(culprit, msg), msg


def test_architecture_mismatch_is_refused(saved):
    path, _, _ = saved
    other = _model(hidden_size=4)
    msg = _expect_refused(path, other, Adam(other.params))
    assert "hidden_size" in msg


def test_foreign_npz_is_refused(tmp_path):
    bad = tmp_path / "foreign.npz"
    np.savez(bad, a=np.arange(3), b=np.ones((2, 2)))
    assert "foreign" in _expect_refused(bad)


def test_not_a_zip_at_all_is_refused(tmp_path):
    bad = tmp_path / "text.npz"
    bad.write_text("hello, I am not a checkpoint\n")
    _expect_refused(bad)
    npy = tmp_path / "plain.npz"
    np.save(npy.with_suffix(".npy"), np.zeros(3))
    os.replace(npy.with_suffix(".npy"), npy)  # an .npy under an .npz name
    _expect_refused(npy)


class _Boom:
    """Unpickling this would create a file: the loader must never unpickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_inside_npz_is_refused_without_unpickling(saved, tmp_path):
    path, _, _ = saved
    marker = tmp_path / "pwned"
    bad = tmp_path / "pickled.npz"
    _rewrite(path, bad, lambda a: a.__setitem__("extra/payload", np.array([_Boom(str(marker))], dtype=object)))
    msg = _expect_refused(bad)
    assert "pickle" in msg
    assert not marker.exists()
    # and a raw pickle renamed to .npz
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"param/head.W": _Boom(str(marker))}))
    _expect_refused(raw)
    assert not marker.exists()


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        read_checkpoint(tmp_path / "nothing.npz")


def test_a_directory_is_not_a_checkpoint(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises((ValueError, FileNotFoundError), match="dir.npz"):
        read_checkpoint(tmp_path / "dir.npz")


# ----------------------------------------------------------------------------- interrupted saves

@pytest.mark.parametrize("fail", ["replace", "fsync", "savez"])
def test_failed_save_leaves_previous_checkpoint_intact(saved, monkeypatch, fail):
    path, model, opt = saved
    before = path.read_bytes()
    for _ in range(3):  # change everything, so a torn write would be visible
        model.params["head.b"] += 1.0

    def boom(*a, **k):
        raise OSError(28, "No space left on device (injected)")

    target = {"replace": (ckpt.os, "replace"), "fsync": (ckpt.os, "fsync"), "savez": (ckpt.np, "savez")}[fail]
    monkeypatch.setattr(*target, boom)
    with pytest.raises(OSError, match="injected"):
        save_checkpoint(path, model, opt, step=3)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert read_checkpoint(path).step == 2


def test_process_killed_between_temp_write_and_rename(saved, tmp_path):
    """A real SIGKILL right before os.replace: the old checkpoint survives byte for byte."""
    import subprocess
    import sys
    import textwrap

    path, _, _ = saved
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from numpylstm import LSTMModel, Adam
        from numpylstm import checkpoint as ckpt
        model = LSTMModel(2, 3, 1, num_layers=2, dropout=0.2, seed=9)
        opt = Adam(model.params)
        ckpt.os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        ckpt.save_checkpoint({str(path)!r}, model, opt, step=7)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == before
    assert read_checkpoint(path).step == 2
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert all(p.name.startswith(".run.npz.") for p in leftovers)  # a hidden temp file, never the real name


# ----------------------------------------------------------------------------- divergence, Ctrl-C

def _sine_batches(blow_up_at=None):
    """Deterministic batches of a function of the step; at ``blow_up_at`` the target is 1e200 (finite),
    so the squared error overflows to inf -- a loss that stops being finite."""

    def batches(step):
        rng = np.random.default_rng(step)
        x = rng.standard_normal((4, 5, 2))
        y = np.sin(x.sum(axis=(1, 2)))[:, None]
        if step == blow_up_at:
            y = np.full_like(y, 1e200)
        return x, y

    return batches


def _trainer(tmp_path, batches, total=8, every=2, **kw):
    model = _model()
    opt = Adam(model.params, lr=1e-2)
    return Trainer(model, opt, batches, total, checkpoint_path=tmp_path / "ck.npz", checkpoint_every=every,
                   progress=Progress(total, enabled=False), **kw)


def test_divergence_stops_with_step_last_loss_and_hint_and_keeps_last_good_checkpoint(tmp_path):
    tr = _trainer(tmp_path, _sine_batches(blow_up_at=5))
    with np.errstate(over="ignore"), pytest.raises(TrainingDiverged) as info:
        tr.run()
    err = info.value
    msg = str(err)
    assert "step 6" in msg  # the 6th step (index 5) is the one that diverged
    assert f"{tr.losses[-1]:.4g}" in msg  # the last finite loss
    assert "--lr" in msg and "clip" in msg  # the hint
    assert err.step == 6 and err.last_loss == tr.losses[-1] and np.isfinite(err.last_loss)
    good = read_checkpoint(tmp_path / "ck.npz")
    assert good.step == 4 and str(tmp_path / "ck.npz") in msg
    assert all(np.isfinite(p).all() for p in tr.model.params.values())  # the bad step was never applied
    assert tr.step == 5


def test_interrupt_saves_and_resume_is_bit_identical(tmp_path):
    """SIGINT in the middle of a run: the step finishes, a checkpoint is written, run() returns; resuming
    from it ends with exactly the weights of an uninterrupted run."""
    ref = _trainer(tmp_path / "ref", _sine_batches(), every=0)
    ref.run()

    plain = _sine_batches()

    def batches(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return plain(step)

    tr = _trainer(tmp_path, batches, every=0)
    result = tr.run()
    assert result.interrupted and result.step == 4
    assert read_checkpoint(tmp_path / "ck.npz").step == 4

    again = _trainer(tmp_path, _sine_batches(), every=0)
    again.resume(tmp_path / "ck.npz")
    again.run()
    assert again.losses == ref.losses
    for k in ref.model.params:
        assert np.array_equal(again.model.params[k], ref.model.params[k]), k


def test_ctrl_c_on_the_command_line_saves_exits_cleanly_and_resumes_exactly(tmp_path):
    """SIGINT to a running ``demo.py --checkpoint``: exit status 130, one line naming the checkpoint, and
    ``--resume`` from it ends with the weights of an uninterrupted run, bit for bit."""
    import re
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    demo = [sys.executable, os.path.join(root, "demo.py")]
    flags = ["--steps", "100000", "--lstm-size", "4", "--timesteps", "5", "--batch-size", "4", "--warmup", "2",
             "--keep-prob", "0.8", "--no-plot"]
    proc = subprocess.Popen([*demo, *flags, "--checkpoint", "ck.npz", "--checkpoint-every", "50"], cwd=tmp_path,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ck.npz").exists():  # the first periodic save: the training loop is running
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    m = re.match(r"interrupted at step (\d+); checkpoint saved to ck\.npz; continue with --resume ck\.npz", err)
    assert m, err
    k = int(m.group(1))
    assert read_checkpoint(tmp_path / "ck.npz").step == k > 0

    stop = ["--stop-at", str(k + 3), "--quiet"]
    ref = subprocess.run([*demo, *flags, *stop, "--checkpoint", "ref.npz"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    res = subprocess.run([*demo, "--resume", "ck.npz", "--no-plot", *stop, "--checkpoint", "res.npz"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == res.returncode == 0, (ref.stderr, res.stderr)
    a, b = read_checkpoint(tmp_path / "ref.npz"), read_checkpoint(tmp_path / "res.npz")
    assert a.step == b.step == k + 3
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for key in a.optimizer_state:
        assert np.array_equal(a.optimizer_state[key], b.optimizer_state[key]), key
    assert np.array_equal(a.extra["losses"], b.extra["losses"])
    assert ref.stdout == res.stdout
