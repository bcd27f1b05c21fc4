"""demo.py end to end, in subprocesses, with tiny runs (the full default run is a benchmark, not a test)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "30", "--lstm-size", "6", "--timesteps", "8", "--batch-size", "16", "--warmup", "5"]


def demo(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "demo.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})


def rmse_line(proc):
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("test RMSE: "), proc.stdout
    return float(last.split(": ")[1])


def test_explain_prints_the_tutorial_shapes(tmp_path):
    p = demo("--explain", "--steps", "2", "--no-plot", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for name, shape in [("x", "(64, 20, 1)"), ("layer 0 outputs", "(64, 20, 20)"),
                        ("layer 1 outputs", "(64, 20, 20)"), ("outputs[:, -1, :]", "(64, 20)"),
                        ("final_state", "(2, 2, 64, 20)"), ("head output", "(64, 1)"),
                        ("lstm.0.Wx", "(1, 80)"), ("lstm.1.Wh", "(20, 80)"), ("head.b", "(1,)")]:
        assert any(line.split(name, 1)[-1].split()[:len(shape.split())] == shape.split()
                   for line in out.splitlines() if name in line), (name, out)
    assert "5061" in out  # total parameter count: 80+1600+80 + 1600+1600+80 + 20+1
    assert np.isfinite(rmse_line(p))


def test_tiny_run_prints_progress_summary_and_plots_and_the_sine_word_works(tmp_path):
    pytest.importorskip("matplotlib")
    p = demo("sine", *TINY, "--out", "plots", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "steps/s" in p.stdout and "ETA" in p.stdout and "trained 30 steps" in p.stdout
    for name in ("predictions.png", "loss.png", "error.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rmse_line(p) > 0


def test_quiet_prints_only_the_rmse_and_same_seed_same_result(tmp_path):
    a = demo(*TINY, "--quiet", "--no-plot", cwd=tmp_path)
    b = demo(*TINY, "--quiet", "--no-plot", cwd=tmp_path)
    assert a.returncode == 0 and a.stdout.count("\n") == 1
    assert a.stdout == b.stdout
    assert not (tmp_path / "runs").exists()  # --no-plot writes nothing


@pytest.mark.parametrize("keep_prob", ["0.8", "1"], ids=["dropout", "wavefront"])
def test_resume_ends_with_the_same_weights_bit_for_bit(tmp_path, keep_prob):
    """With dropout the layers run one by one; without it (the default) all in one loop (wavefront.py)."""
    args = [*TINY, "--dtype", "float64", "--keep-prob", keep_prob, "--no-plot", "--quiet"]
    full = demo(*args, "--checkpoint", "full.npz", cwd=tmp_path)
    part = demo(*args, "--stop-at", "13", "--checkpoint", "part.npz", cwd=tmp_path)
    rest = demo("--resume", "part.npz", "--checkpoint", "rest.npz", "--quiet", "--no-plot", cwd=tmp_path)
    assert full.returncode == part.returncode == rest.returncode == 0, (part.stderr, rest.stderr)
    with np.load(tmp_path / "full.npz") as f, np.load(tmp_path / "rest.npz") as r:
        assert sorted(f.files) == sorted(r.files)
        for k in f.files:
            if k.startswith(("param/", "optim/", "extra/")):
                np.testing.assert_array_equal(f[k], r[k], err_msg=k)
    assert full.stdout == rest.stdout


@pytest.mark.parametrize("args, words", [
    (["--timesteps", "0"], "--timesteps"),
    (["--keep-prob", "1.5"], "--keep-prob"),
    (["--lr", "nan"], "--lr"),
    (["--beta2", "1"], "--beta2"),
    (["--beta2", "-0.1"], "--beta2"),
    (["--steps", "ten"], "--steps"),
    (["--dtype", "float16"], "--dtype"),
    (["--resume", "missing.npz"], "missing.npz"),
    (["--stop-at", "50", "--steps", "10"], "--stop-at"),
    (["--frobnicate"], "--frobnicate"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, words):
    p = demo(*args, cwd=tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert "error:" in p.stderr and words in p.stderr


def test_resume_with_another_architecture_or_a_bad_file_is_a_one_line_error(tmp_path):
    assert demo(*TINY, "--no-plot", "--quiet", "--checkpoint", "ck.npz", cwd=tmp_path).returncode == 0
    p = demo("--resume", "ck.npz", "--lstm-size", "7", cwd=tmp_path)
    assert p.returncode == 2 and "--lstm-size 7 (checkpoint has 6)" in p.stderr and p.stderr.count("\n") == 1
    (tmp_path / "bad.npz").write_bytes(b"junk")
    p = demo("--resume", "bad.npz", cwd=tmp_path)
    assert p.returncode == 2 and "bad.npz" in p.stderr and "Traceback" not in p.stderr


def test_help_explains_every_flag(tmp_path):
    p = demo("--help", cwd=tmp_path)
    assert p.returncode == 0
    for flag in ("--timesteps", "--lstm-size", "--lstm-layers", "--batch-size", "--keep-prob", "--steps", "--lr",
                 "--beta2", "--seed", "--dtype", "--out", "--no-plot", "--explain", "--checkpoint", "--resume", "--quiet"):
        assert flag in p.stdout


def test_resume_without_checkpoint_saves_back_into_the_resumed_file(tmp_path):
    args = [*TINY, "--no-plot", "--quiet"]
    assert demo(*args, "--stop-at", "10", "--checkpoint", "ck.npz", cwd=tmp_path).returncode == 0
    p = demo("--resume", "ck.npz", "--no-plot", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as f:
        assert '"step": 30' in str(f["meta"])  # the run's end, not the step it was resumed from


def test_banner_prints_the_warmup_actually_used(tmp_path):
    p = demo("--steps", "4", "--lstm-size", "4", "--timesteps", "4", "--no-plot", cwd=tmp_path)  # warmup 100 > steps
    assert p.returncode == 0, p.stderr
    assert "linear warm-up over 3 steps" in p.stdout


def test_an_unwritable_checkpoint_folder_is_refused_before_training(tmp_path, monkeypatch):
    import demo as cli

    def refuse(*a, **k):  # what /proc answers even to root, where os.access says yes
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(cli, "run_sine", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as info:
        cli.main(["--checkpoint", str(tmp_path / "ck.npz"), "--no-plot"])
    assert info.value.code == 2


@pytest.mark.parametrize("stateful", [False, True], ids=["sine", "sine-stateful"])
def test_a_checkpoint_from_before_beta2_resumes_with_the_beta2_it_was_trained_with(tmp_path, stateful):
    """beta2 became a setting (default 0.95) after checkpoints without it were made with Adam's 0.999: resuming
    one of those must go on with 0.999, and a new run's checkpoint records its beta2."""
    import json

    from numpylstm.demos.sine import settings_from_checkpoint

    kind = ["--stateful"] if stateful else []
    demo_name = "sine-stateful" if stateful else "sine"
    p = demo("sine", *kind, *TINY, "--no-plot", "--quiet", "--stop-at", "10", "--checkpoint", "ck.npz", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert settings_from_checkpoint(tmp_path / "ck.npz", demo_name).beta2 == 0.95
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["user"]["settings"]["beta2"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    assert settings_from_checkpoint(tmp_path / "old.npz", demo_name).beta2 == 0.999
    p = demo("sine", *kind, "--resume", "old.npz", "--no-plot", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "beta2 0.999" in p.stdout
