"""Where the time of one training step goes: numpylstm/fast.py's parts, timed function by function.

One ``LSTMModel.loss_and_grads`` of a benchmark configuration (benchmarks/bench_lstm.py's A, B, C, char) on
one BLAS thread, float32, with every part of fast.py wrapped in a timer. ``--rows N`` changes the batch: a
data-parallel worker with two workers computes half of it (``--rows 16`` for the char size). The time loops
are what is left of ``lstm_forward_tm`` and ``lstm_backward_tm`` once the parts they call are taken out.

    python benchmarks/step_profile.py --config char --rows 16     # one of two workers at the char size
    python benchmarks/step_profile.py --config C

ms per step, the mean over ``--steps`` steps after a few untimed ones, both layers added up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from bench_lstm import CONFIGS, config_info, make_problem  # noqa: E402
from numpylstm import fast  # noqa: E402

PARTS = ("lstm_input_tm", "lstm_forward_tm", "lstm_backward_factors_tm", "lstm_input_grad_tm",
         "lstm_weight_grads_tm", "lstm_backward_tm")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="char", choices=tuple(CONFIGS))
    ap.add_argument("--rows", type=int, default=None, help="batch rows N (default: the configuration's)")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    info = config_info(args.config)
    if args.rows is not None:
        if args.rows < 1:
            ap.error("--rows must be >= 1")
        info["N"] = args.rows
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    model, x, y = make_problem(info, np.float32)
    model.wavefront = False  # layer by layer, so that fast.py's parts run (config A would run wavefront.py)
    spent = dict.fromkeys(PARTS, 0.0)
    for name in PARTS:  # fast.py calls its parts through the module, so wrapping the names times every call
        def timed(*a, _f=getattr(fast, name), _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                spent[_name] += time.perf_counter() - t0
        setattr(fast, name, timed)
    for _ in range(5):
        model.loss_and_grads(x, y)
    spent.update(dict.fromkeys(PARTS, 0.0))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        model.loss_and_grads(x, y)
    total = (time.perf_counter() - t0) / args.steps * 1e3
    ms = {k: v / args.steps * 1e3 for k, v in spent.items()}
    rows = [
        ("forward time loops (F1)-(F5), recurrent products included", ms["lstm_forward_tm"] - ms["lstm_input_tm"]),
        ("backward time loops (B1)-(B10)", ms["lstm_backward_tm"] - ms["lstm_backward_factors_tm"]
         - ms["lstm_input_grad_tm"] - ms["lstm_weight_grads_tm"]),
        ("weight gradients (B12)-(B14)", ms["lstm_weight_grads_tm"]),
        ("input parts (F1), all T at once", ms["lstm_input_tm"]),
        ("backward factors, all T at once", ms["lstm_backward_factors_tm"]),
        ("input gradients (B11)", ms["lstm_input_grad_tm"]),
        ("head, loss and the rest", total - ms["lstm_forward_tm"] - ms["lstm_backward_tm"]),
    ]
    print(f"config {args.config}: N {info['N']}, T {info['T']}, H {info['H']}, {info['L']} layers; float32, one "
          f"BLAS thread; ms per training step, mean of {args.steps}")
    for label, v in rows:
        print(f"  {label:<58} {v:7.2f}")
    print(f"  {'the whole step':<58} {total:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
