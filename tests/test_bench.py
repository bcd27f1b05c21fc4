"""Smoke test: the benchmark script runs end to end (``--quick``, two tight configurations, every
implementation each in its own worker process) and prints its markdown table.

Timings are printed by the script, never asserted here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(*flags):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_lstm.py"), "--quick", *flags]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)


def test_bench_quick_runs():
    out = _bench("--configs", "A,char", "--seconds", "0.02", "--warmup-seconds", "0", "--seq-len", "5",
                 "--gemm-n", "64")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 1 |")]
    assert [r.split("|")[2].split()[0] for r in rows] == ["A", "char"]
    have_torch = "PyTorch not installed" not in out.stdout
    # threads, config, fast, textbook, (torch, ratio)
    assert all(len(r.strip("|").split("|")) == (6 if have_torch else 4) for r in rows)
    assert "reference GEMM" in out.stdout and "kernel" in out.stdout


def test_bench_refuses_unknown_config():
    out = _bench("--configs", "Z")
    assert out.returncode == 2 and "unknown config 'Z'" in out.stderr


def test_worker_honours_thread_limit():
    """A worker runs with the thread count it was given: the env variables and threadpoolctl agree."""
    pytest.importorskip("threadpoolctl")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_lstm import config_info, run_job
    finally:
        sys.path.pop(0)
    out = run_job(dict(impl="fast", info=config_info("A", 3), config="A", dtype="float32", threads=1,
                       seconds=0.0, warmup_seconds=0.0))
    assert len(out["times"]) >= 3
    assert out["blas"] and all(b["threads"] == 1 for b in out["blas"])


def test_each_numpy_row_says_how_it_ran_and_plain_is_layer_by_layer():
    """A runs as a wavefront (marked with a dagger in the table), and "plain" turns it off."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_lstm import MARKS, config_info, numpy_step
    finally:
        sys.path.pop(0)
    a = config_info("A", 3)
    assert numpy_step(a, "float32", "fast")[1] == "wavefront" and MARKS["wavefront"] == " \u2020"
    assert numpy_step(a, "float32", "fast", plain=True)[1] == ""
    assert numpy_step(a, "float32", "textbook")[1] == ""


def test_gemm_flop_count_matches_hand_count():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_lstm import gemm_flops
    finally:
        sys.path.pop(0)
    # one layer, T = N = 1, D = 1, H = 1, O = 1, head "last": forward x Wx (8) + h Wh (8), backward
    # da Wh^T (8), dWh (8), dWx (8), head forward/dW/dh (2 each) -> 46
    assert gemm_flops(1, 1, 1, 1, 1, 1, "last", False) == 46
    # one-hot input: the first layer's input projection and dWx are a gather and a scatter, counted 0
    assert gemm_flops(1, 1, 1, 1, 1, 1, "last", True) == 46 - 16


def test_torch_chars_reference_runs(tmp_path):
    """benchmarks/torch_chars.py (the char demo's recipe in PyTorch) trains and prints the demo's final lines."""
    pytest.importorskip("torch")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "torch_chars.py"), "--text", str(text), "--seconds", "3",
           "--threads", "1", "--n-seqs", "4", "--n-steps", "10", "--lstm-size", "8", "--eval-every", "5"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert " chars/s" in lines[-2] and lines[-1].startswith("val loss: ") and lines[-1].endswith(" nats/char")
    assert float(lines[-1].split()[2]) < 3.3  # below ln(27) = 3.30, uniform over the text's 27 symbols


def test_torch_chars_bad_text_is_one_line(tmp_path):
    pytest.importorskip("torch")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "torch_chars.py"), "--text", str(tmp_path / "missing.txt")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--text" in out.stderr


def test_bench_data_parallel_row_and_its_parts():
    """The dp implementation (numpylstm/parallel.py) runs in its own process too and prints what the parent
    spends on a step."""
    out = _bench("--configs", "A", "--impls", "dp,plain", "--threads", "2", "--seconds", "0.02",
                 "--warmup-seconds", "0", "--seq-len", "3", "--gemm-n", "0")
    assert out.returncode == 0, out.stderr
    assert "dp, per step (ms): weights" in out.stdout and "reduce" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1 and len(rows[0].strip("|").split("|")) == 4  # threads, config, dp, plain


def _script(name, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], capture_output=True,
                          text=True, timeout=180, env=env, cwd=ROOT)


def test_step_profile_parts_add_up_to_the_step():
    """benchmarks/step_profile.py: every part is timed (layer by layer, so none reads 0) and the parts add up
    to the whole step (the last part is the whole minus the others, so the sum is exact up to rounding)."""
    out = _script("step_profile.py", "--config", "A", "--rows", "4", "--steps", "3")
    assert out.returncode == 0, out.stderr
    values = [float(line.split()[-1]) for line in out.stdout.splitlines()[1:]]
    parts, whole = values[:-1], values[-1]
    assert len(parts) == 7 and all(v > 0 for v in parts[:6]) and abs(sum(parts) - whole) < 0.05


def test_dp_sizes_refuses_fewer_than_two_workers():
    out = _script("dp_sizes.py", "--workers", "1")
    assert out.returncode == 2 and "--workers must be >= 2" in out.stderr
