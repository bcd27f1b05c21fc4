"""Smoke test: the benchmark script runs end to end (``--quick``, one tight configuration) and prints its table.

Timings are printed by the script, never asserted here.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_runs():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_lstm.py"), "--quick", "--configs", "A,C-onehot",
           "--dtypes", "float32", "--reps", "1", "--warmup", "0", "--gemm-n", "64", "--seq-len", "5"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "numpylstm ms" in out.stdout
    lines = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert {"A", "C-onehot"} <= lines
    assert "cache memory" in out.stdout


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
