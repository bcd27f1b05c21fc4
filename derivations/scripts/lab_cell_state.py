"""Where the variant lab's large mean |c| on the continual Reber stream comes from (docs/variants.md).

Trains a cell exactly as ``python demo.py variants`` does on the ``reber`` task (same settings, same seed:
the same weights as the lab's run), then walks one test stream of 10,000 symbols with the cell's own step
function and prints, for the unit whose |c| is largest at the end: |c| after 2,500, 5,000 and 10,000 symbols,
its forget and input gates over the last 1,000 symbols, and its peephole weights.

    python derivations/scripts/lab_cell_state.py                 # peephole and lstm, seed 0
    python derivations/scripts/lab_cell_state.py nig niaf --seed 1

Each cell costs one lab run (~10 CPU-seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from numpylstm.cells import peephole as peephole_cell  # noqa: E402
from numpylstm.demos import variants  # noqa: E402
from numpylstm.textbook import lstm_step_forward, sigmoid  # noqa: E402


def walk(cell, params, ids, H):
    """c_t (T, H), f_t (T, H), i_t (T, H) of one stream run from zero state, float64."""
    P = {k.split(".")[-1]: v.astype(np.float64) for k, v in params.items() if k.startswith(f"{cell}.0.")}
    p = P.get("p", np.zeros((3, H)))
    h, c = np.zeros((1, H)), np.zeros((1, H))
    cs, fs, is_ = [], [], []
    for t in ids:
        x_t = np.array([t])
        a = P["Wx"][x_t] + h @ P["Wh"] + P["b"]  # the gates' pre-activations before the peepholes
        is_.append(sigmoid(a[:, :H] + c * p[0])[0])
        fs.append(sigmoid(a[:, H:2 * H] + c * p[1])[0])
        if cell == "lstm":
            h, c, _ = lstm_step_forward(x_t, h, c, P["Wx"], P["Wh"], P["b"])
        else:
            h, c, _ = peephole_cell.peephole_step_forward(x_t, h, c, P["Wx"], P["Wh"], P["b"], p)
        cs.append(c[0])
    return np.array(cs), np.array(fs), np.array(is_), p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", nargs="*", metavar="CELL", help="peephole or lstm (default: both)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.cells = args.cells or ["peephole", "lstm"]
    for cell in args.cells:
        if cell not in ("peephole", "lstm"):
            ap.error(f"cells: expected peephole or lstm, got {cell!r}")
    task = variants.ReberTask()
    ids, _ = variants.reber_stream(np.random.default_rng([args.seed, 1, 0])).take(10_000)  # test stream 0
    for cell in args.cells:
        keep = {}
        result = task.run(cell, args.seed, "float32", keep=keep)
        cs, fs, is_, p = walk(cell, keep["model"].params, ids, task.hidden)
        u = int(np.argmax(np.abs(cs[-1])))
        print(f"{cell}, seed {args.seed}: accuracy {result['accuracy']:.4f}, lab's mean |c| {result['mean |c|']:.3g}")
        print(f"  unit {u} (largest |c|): |c| after 2,500 / 5,000 / 10,000 symbols: "
              + " / ".join(f"{abs(cs[k, u]):.4g}" for k in (2499, 4999, 9999)))
        print(f"  over the last 1,000 symbols: forget gate mean {fs[-1000:, u].mean():.6f}, min "
              f"{fs[-1000:, u].min():.6f}; input gate mean {is_[-1000:, u].mean():.4f}")
        if cell != "lstm":
            print(f"  peephole weights of unit {u}: p_i {p[0, u]:.3f}, p_f {p[1, u]:.3f}, p_o {p[2, u]:.3f}")
        print(f"  units with |c| > 10 after 10,000 symbols: {int(np.sum(np.abs(cs[-1]) > 10))} of {task.hidden}")


if __name__ == "__main__":
    main()
