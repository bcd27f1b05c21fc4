"""Issue 13: no run and no file is ever lost. One test (or more) per row of the issue's table, numbered as there;
signals are sent to real processes, as the Ctrl-C test in test_faults.py does."""

import json
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
from numpylstm.checkpoint import check_replaceable, read_checkpoint, save_checkpoint
from numpylstm.demos.plots import centred_mean
from numpylstm.train import Progress, RunAborted, Trainer, TrainingDiverged

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "30", "--lstm-size", "6", "--timesteps", "8", "--batch-size", "16", "--warmup", "5", "--no-plot"]
TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
        "Everything was in confusion in the Oblonskys' house. ") * 12
SMALL = ["--lstm-size", "16", "--n-seqs", "4", "--n-steps", "10", "--eval-every", "20", "--no-plot",
         "--sample-length", "0"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")


def demo(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "demo.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def popen(*args, cwd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, str(ROOT / "demo.py"), *args], cwd=cwd, env=ENV, **kw)


def one_line(err):
    return "Traceback" not in err and err.count("\n") == 1


def wait_for(cond, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not cond():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def chars(*args):
    return cli.main(["chars", *args])


# ----------------------------------------------------------------------------- rows 1-3: nothing overwritten


@pytest.mark.parametrize("name, content", [("notes.txt", b"my notes\n"), ("script.py", b"print('hi')\n"),
                                           ("foreign.npz", None)])
def test_row1_a_file_that_is_not_a_checkpoint_is_never_replaced(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        np.savez(path, a=np.arange(3))
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for extra in ([], ["--overwrite"]):
        p = demo("--checkpoint", name, *TINY, *extra, cwd=tmp_path)
        assert p.returncode == 2 and one_line(p.stderr), p.stderr
        assert name in p.stderr and "not a numpylstm checkpoint" in p.stderr and "never replaced" in p.stderr
        assert path.read_bytes() == before
    model = LSTMModel(1, 2, 1)
    with pytest.raises(ValueError, match="never replaced"):  # the library refuses too
        save_checkpoint(path, model)
    assert path.read_bytes() == before


def test_row2_another_runs_checkpoint_is_replaced_only_with_overwrite_or_by_its_own_resume(tmp_path):
    assert demo(*TINY, "--quiet", "--checkpoint", "a.npz", cwd=tmp_path).returncode == 0
    before = (tmp_path / "a.npz").read_bytes()
    p = demo(*TINY, "--lstm-size", "8", "--checkpoint", "a.npz", cwd=tmp_path)
    assert p.returncode == 2 and one_line(p.stderr), p.stderr
    assert "a.npz" in p.stderr and "--resume a.npz" in p.stderr and "--overwrite" in p.stderr
    assert (tmp_path / "a.npz").read_bytes() == before
    # its own run may write it: --resume a.npz (saves back into it)
    p = demo("--resume", "a.npz", "--quiet", "--no-plot", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = demo(*TINY, "--lstm-size", "8", "--checkpoint", "a.npz", "--overwrite", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert read_checkpoint(tmp_path / "a.npz").model_config["hidden_size"] == 8


def test_row3_the_chars_default_checkpoint_of_another_run_is_kept(tmp_path, text, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert chars("--text", str(text), "--epochs", "1", "--quiet", *SMALL) == 0
    ck = tmp_path / "runs" / "chars" / "chars.npz"
    before = ck.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chars("--text", str(text), "--epochs", "1", "--quiet", *SMALL)
    err = capsys.readouterr().err
    assert info.value.code == 2 and one_line(err), err
    assert str(Path("runs/chars/chars.npz")) in err and "--resume" in err and "--overwrite" in err
    assert ck.read_bytes() == before
    assert chars("--resume", str(ck), "--text", str(text), "--epochs", "2", "--quiet", "--no-plot",
                 "--sample-length", "0") == 0  # its own run: allowed
    assert chars("--text", str(text), "--epochs", "1", "--quiet", "--overwrite", *SMALL) == 0
    assert read_checkpoint(ck).step < read_checkpoint(ck).user["trainer"]["total_steps"] + 1


def test_check_replaceable_rules(tmp_path):
    check_replaceable(tmp_path / "nothing.npz")
    model = LSTMModel(1, 2, 1)
    ck = save_checkpoint(tmp_path / "ck.npz", model)
    check_replaceable(ck, own=ck)
    check_replaceable(ck, overwrite=True)
    with pytest.raises(ValueError, match="--overwrite"):
        check_replaceable(ck)
    with pytest.raises(ValueError, match="folder"):
        check_replaceable(tmp_path)


# ----------------------------------------------------------------------------- row 4: --stop-at saves


def test_row4_stop_at_saves_to_a_default_path_it_prints_and_resumes(tmp_path):
    p = demo("--stop-at", "5", *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    path = Path("runs/sine/checkpoint.npz")
    assert f"stopped at step 5 of 30; checkpoint saved to {path}; continue with --resume {path}" in p.stdout
    assert read_checkpoint(tmp_path / path).step == 5
    q = demo("--stop-at", "7", *TINY, "--quiet", cwd=tmp_path)  # --quiet: said on stderr; never over the first
    other = Path("runs/sine/checkpoint-2.npz")
    assert q.returncode == 0 and str(other) in q.stderr, q.stderr
    assert read_checkpoint(tmp_path / path).step == 5 and read_checkpoint(tmp_path / other).step == 7
    r = demo("--resume", str(path), "--no-plot", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(tmp_path / path).step == 30


# ----------------------------------------------------------------------------- row 5: SIGTERM, SIGHUP


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_row5_sigterm_and_sighup_finish_the_step_save_and_exit_128_plus_signal(tmp_path, sig):
    flags = ["--steps", "100000", "--lstm-size", "4", "--timesteps", "5", "--batch-size", "4", "--no-plot"]
    proc = popen(*flags, "--checkpoint", "ck.npz", "--checkpoint-every", "50", cwd=tmp_path, text=True)
    try:
        wait_for(lambda: (tmp_path / "ck.npz").exists(), proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    name = signal.Signals(sig).name
    m = re.fullmatch(rf"stopped by {name} at step (\d+); checkpoint saved to ck\.npz; continue with --resume ck\.npz\n",
                     err)
    assert m, err
    assert read_checkpoint(tmp_path / "ck.npz").step == int(m.group(1))


def test_row5_sigterm_without_checkpoint_saves_to_the_default_path(tmp_path):
    proc = popen("--steps", "3000", "--lstm-size", "4", "--timesteps", "5", "--batch-size", "4", "--no-plot",
                 cwd=tmp_path, text=True)
    try:
        for line in proc.stdout:  # the first progress line (every 300 steps): the training loop is running
            if line.startswith("step"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    path = Path("runs/sine/checkpoint.npz")
    assert one_line(err) and f"checkpoint saved to {path}; continue with --resume {path}" in err, err
    assert read_checkpoint(tmp_path / path).step >= 300


# ----------------------------------------------------------------------------- row 6: a closed stdout


def test_row6_a_closed_stdout_stops_the_printing_not_the_training(tmp_path):
    proc = popen("--steps", "300", "--lstm-size", "4", "--timesteps", "5", "--no-plot", "--checkpoint", "ck.npz",
                 cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()  # | head -2
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err
    assert read_checkpoint(tmp_path / "ck.npz").step == 300


def test_row6_chars_with_a_closed_stdout_keeps_its_checkpoint(tmp_path, text):
    proc = popen("chars", "--text", str(text), "--epochs", "2", *SMALL, cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # | head -1
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err
    ck = read_checkpoint(tmp_path / "runs" / "chars" / "chars.npz")
    assert ck.step == ck.user["trainer"]["total_steps"]


# ----------------------------------------------------------------------------- row 7: sample streams


@pytest.fixture
def chars_checkpoint(tmp_path, text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert chars("--text", str(text), "--epochs", "1", "--quiet", *SMALL) == 0
    return tmp_path / "runs" / "chars" / "chars.npz"


def test_row7_sample_streams_and_stops_quietly_on_a_closed_pipe(chars_checkpoint, tmp_path):
    proc = popen("sample", "--checkpoint", str(chars_checkpoint), "--prime", "Hap", "--length", "1000000",
                 cwd=tmp_path)
    first = proc.stdout.read(50)  # | head -c 50
    assert len(first) == 50 and first.startswith(b"Hap")
    assert proc.poll() is None  # streamed: the characters came while it was still drawing
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == "", err


def test_row7_ctrl_c_during_a_sample_is_one_line(chars_checkpoint, tmp_path):
    proc = popen("sample", "--checkpoint", str(chars_checkpoint), "--prime", "Hap", "--length", "1000000",
                 cwd=tmp_path)
    try:
        proc.stdout.read(20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 130 and one_line(err) and "interrupted" in err, err


def test_sample_output_is_unchanged_by_streaming(chars_checkpoint, capsys):
    from numpylstm.checkpoint import model_from_checkpoint
    from numpylstm.demos.text import Vocab, sample

    assert cli.main(["sample", "--checkpoint", str(chars_checkpoint), "--prime", "Hap", "--length", "60",
                     "--seed", "3"]) == 0
    model, ck = model_from_checkpoint(chars_checkpoint)
    expected = sample(model, Vocab.from_array(ck.extra["vocab"]), prime="Hap", length=60, seed=3)
    assert capsys.readouterr().out == expected + "\n"


# ----------------------------------------------------------------------------- rows 8, 9, 11: one-line errors


def test_row8_an_unreadable_text_is_a_one_line_error(tmp_path, text, capsys, monkeypatch):
    os.chmod(text, 0)
    if os.geteuid() == 0:  # root reads anything: make the read fail as it does for everyone else
        real = Path.read_text

        def denied(self, *a, **k):
            if self == text:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(SystemExit) as info:
        chars("--text", str(text), "--epochs", "1", "--out", str(tmp_path / "o"), *SMALL)
    err = capsys.readouterr().err
    assert info.value.code == 2 and one_line(err), err
    assert f"--text {text} cannot be read (Permission denied)" in err


def test_row9_chars_checks_memory_before_allocating(tmp_path, text, capsys):
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as info:
        chars("--text", str(text), "--lstm-size", "50000", "--epochs", "1", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert info.value.code == 2 and one_line(err), err
    assert "GB of memory" in err and "lstm_size 50000" in err and "make them smaller" in err
    assert time.monotonic() - t0 < 10


def _edit_meta(path, change):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("garbage", ["garbage", [[1]], [["x", {}]], [[1, {"test RMSE": "high"}]]])
def test_row11_a_corrupt_evals_entry_in_meta_is_a_one_line_error(tmp_path, garbage):
    assert demo(*TINY, "--quiet", "--stop-at", "10", "--checkpoint", "ck.npz", cwd=tmp_path).returncode == 0
    _edit_meta(tmp_path / "ck.npz", lambda m: m["user"]["trainer"].__setitem__("evals", garbage))
    p = demo("--resume", "ck.npz", "--no-plot", cwd=tmp_path)
    assert p.returncode == 2 and one_line(p.stderr), p.stderr
    assert "ck.npz" in p.stderr and "evals" in p.stderr


def test_row11_a_corrupt_training_time_is_a_one_line_error(chars_checkpoint, text, capsys):
    _edit_meta(chars_checkpoint, lambda m: m["user"].__setitem__("train_seconds", "garbage"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chars("--resume", str(chars_checkpoint), "--text", str(text), "--epochs", "2")
    err = capsys.readouterr().err
    assert info.value.code == 2 and one_line(err) and "train_seconds" in err, err


# ----------------------------------------------------------------------------- row 10: resume with a new budget


def test_row10_the_budget_may_change_on_resume(chars_checkpoint, text, capsys):
    ck = str(chars_checkpoint)
    one = read_checkpoint(ck).step
    common = ["--resume", ck, "--text", str(text), "--quiet", "--no-plot", "--sample-length", "0"]
    assert chars(*common, "--epochs", "3") == 0
    assert read_checkpoint(ck).step == 3 * one
    assert chars(*common, "--minutes", "0.02") == 0  # an epochs run continued for some minutes
    assert read_checkpoint(ck).step > 3 * one
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chars(*common, "--epochs", "1")
    err = capsys.readouterr().err
    assert info.value.code == 2 and one_line(err), err
    assert "already trained" in err and "epochs" in err and "--epochs 1" in err
    assert not re.search(r"\d{4,}", err.replace(ck, "")), err  # no internal step counts


# ----------------------------------------------------------------------------- row 12: divergence


@pytest.mark.parametrize("flags", [["--lr", "1e6"], ["--lr", "1e30", "--dtype", "float64"]])
def test_row12_an_exploded_loss_stops_like_a_nan(tmp_path, flags):
    p = demo("--steps", "300", "--no-plot", "--lstm-size", "8", "--timesteps", "10", *flags, cwd=tmp_path)
    assert p.returncode == 1 and one_line(p.stderr), p.stderr
    assert p.stderr.startswith("error: training diverged at step")
    assert "starting loss" in p.stderr and "lower learning rate" in p.stderr
    assert "test RMSE" not in p.stdout


def _batches(step):
    rng = np.random.default_rng(step)
    x = rng.standard_normal((4, 5, 2))
    return x, np.sin(x.sum(axis=(1, 2)))[:, None]


def test_exploded_loss_writes_no_checkpoint_while_above_the_bound(tmp_path):
    model = LSTMModel(2, 3, 1, seed=0)
    opt = Adam(model.params, lr=1e-2)

    def schedule(step):
        return 1e-2 if step < 10 else 1e4  # fine for 10 steps, then it explodes

    tr = Trainer(model, opt, _batches, 200, schedule=schedule, checkpoint_path=tmp_path / "ck.npz",
                 checkpoint_every=10, progress=Progress(200, enabled=False))
    with pytest.raises(TrainingDiverged, match="100 times the starting loss") as info:
        tr.run()
    saved = read_checkpoint(tmp_path / "ck.npz")
    assert all(loss <= 100 * tr.losses[0] for loss in saved.extra["losses"])  # written before the explosion
    assert info.value.step < 60


def test_a_healthy_run_is_not_stopped_and_the_rule_can_be_switched_off():
    model = LSTMModel(2, 3, 1, seed=0)
    tr = Trainer(model, Adam(model.params, lr=1e-2), _batches, 50, progress=Progress(50, enabled=False))
    assert tr.run().step == 50
    model = LSTMModel(2, 3, 1, seed=0)
    tr = Trainer(model, Adam(model.params, lr=1e4), _batches, 50, progress=Progress(50, enabled=False),
                 divergence_factor=None, clip_norm=None)
    with np.errstate(all="ignore"):
        try:
            tr.run()
        except TrainingDiverged as exc:  # only a NaN/inf can stop it now
            assert "starting loss" not in str(exc)


# ----------------------------------------------------------------------------- row 13: the optimizer follows


def _train(model, opt, steps=20):
    losses = []
    for step in range(steps):
        loss, grads, _ = model.loss_and_grads(*_batches(step % 3))
        opt.step(grads)
        losses.append(loss)
    return losses


def test_row13_replacing_model_params_after_the_optimizer_keeps_training():
    model = LSTMModel(2, 3, 1, seed=0, dtype=np.float64)
    opt = Adam(model.params, lr=1e-2)
    model.params = {k: v.copy() for k, v in model.params.items()}  # copies the values into the same arrays
    losses = _train(model, opt)
    assert len(set(losses[::3])) > 1 and losses[-3] < losses[0]
    model.params["head.b"] = np.zeros(1)  # a new array in the dict: the optimizer follows it
    before = model.params["head.b"].copy()
    _train(model, opt, 3)
    assert not np.array_equal(model.params["head.b"], before)
    assert opt.params["head.b"] is model.params["head.b"]


def test_row13_a_replacement_of_another_shape_or_dtype_is_a_clear_error():
    model = LSTMModel(2, 3, 1, seed=0, dtype=np.float64)
    opt = Adam(model.params, lr=1e-2)
    with pytest.raises(ValueError, match=r"model.params\['head.W'\] must be a float64 array of shape \(3, 1\)"):
        model.params = {k: (v.astype(np.float32) if k == "head.W" else v) for k, v in model.params.items()}
    model.params["head.b"] = np.zeros(1, np.float32)
    _, grads, _ = LSTMModel(2, 3, 1, seed=0, dtype=np.float64).loss_and_grads(*_batches(0))
    with pytest.raises(ValueError, match=r"params\['head.b'\] was replaced by float32 \(1,\)"):
        opt.step(grads)


# ----------------------------------------------------------------------------- row 14: a second signal


def test_row14_a_second_ctrl_c_5_ms_after_the_first_aborts_at_once(tmp_path):
    flags = ["--steps", "100000", "--lstm-size", "200", "--batch-size", "256", "--no-plot"]
    proc = popen(*flags, "--checkpoint", "ck.npz", "--checkpoint-every", "2", cwd=tmp_path, text=True)
    try:
        wait_for(lambda: (tmp_path / "ck.npz").exists(), proc)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and one_line(err), err
    assert err.startswith("aborted at once by a second SIGINT") and "ck.npz is intact" in err, err
    assert read_checkpoint(tmp_path / "ck.npz").step > 0  # the last periodic checkpoint, readable
    assert not list(tmp_path.glob(".ck.npz.*.tmp"))


def test_row14_a_second_signal_during_the_final_save_aborts_it_and_keeps_the_previous_file(tmp_path, monkeypatch):
    model = LSTMModel(2, 3, 1, seed=0)
    tr = Trainer(model, Adam(model.params, lr=1e-2), lambda s: (os.kill(os.getpid(), signal.SIGINT) if s == 5
                                                                else None) or _batches(s), 50,
                 checkpoint_path=tmp_path / "ck.npz", checkpoint_every=4, progress=Progress(50, enabled=False))
    real = np.savez
    calls = []

    def slow_savez(f, **arrays):
        calls.append(1)
        if len(calls) == 2:  # the save after the first Ctrl-C at step 6 (the periodic one at step 4 came first)...
            os.kill(os.getpid(), signal.SIGINT)  # ... gets a second one
            time.sleep(30)
        return real(f, **arrays)

    monkeypatch.setattr(np, "savez", slow_savez)
    t0 = time.monotonic()
    with pytest.raises(RunAborted):
        tr.run()
    assert time.monotonic() - t0 < 15  # at once: the 30 s sleep was cut short (wide margin for a slow machine)
    assert read_checkpoint(tmp_path / "ck.npz").step == 4  # the previous checkpoint, intact
    assert not list(tmp_path.glob(".ck.npz.*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


# ----------------------------------------------------------------------------- README items


def test_checkpoints_get_the_umask_mode_and_a_replaced_file_keeps_its_mode(tmp_path):
    model = LSTMModel(1, 2, 1)
    old = os.umask(0o027)
    try:
        new = save_checkpoint(tmp_path / "new.npz", model)
    finally:
        os.umask(old)
    assert new.stat().st_mode & 0o777 == 0o640
    os.chmod(new, 0o604)
    save_checkpoint(new, model, step=1)
    assert new.stat().st_mode & 0o777 == 0o604


def test_explain_only_prints_the_shapes_and_trains_nothing(tmp_path):
    p = demo("--explain-only", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "final_state" in p.stdout and "(2, 2, 64, 20)" in p.stdout
    assert "test RMSE" not in p.stdout and "trained" not in p.stdout
    assert not any(line.startswith("step ") for line in p.stdout.splitlines())
    assert not (tmp_path / "runs").exists()


def test_the_smoothed_loss_is_centred_and_does_not_lag():
    steps = np.arange(1, 1001)
    falling = 10.0 - 0.01 * steps  # a straight falling line: a centred mean lies on it, a trailing one above
    x, mean = centred_mean(falling, 100)
    assert np.allclose(mean, 10.0 - 0.01 * x)
    assert x[0] == 50.5 and x[-1] == 950.5


def test_the_progress_line_says_how_old_the_validation_figure_is():
    prog = Progress(100, enabled=False)
    prog.metrics_step = 40
    assert prog.line(60, [1.0], {"val loss": 1.5}).endswith("val loss 1.500e+00 (20 steps ago)")
    prog.metrics_step = 60
    assert prog.line(60, [1.0], {"val loss": 1.5}).endswith("val loss 1.500e+00")
