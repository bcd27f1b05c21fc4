"""The continual embedded Reber stream (derivations/13_memory_tasks.md, 13.8): trained models on long streams.

For each checkpoint of ``python demo.py task reber-continual``:

- ``fresh``: a new test stream of each length (its own seed), never reset, from a zero state: the accuracy on
  the long-memory symbols over the whole stream, over its first and its last tenth, and the mean |c| over the
  units in its first and last tenth;
- ``continued``: the next symbols of training stream 0, from the state the trainer carried into them (the
  checkpoint's state): the stream the model was trained on, as old as training made it.

    PYTHONPATH=. python derivations/scripts/continual_reber.py runs/tasks/reber-continual/*.npz \
        --symbols 20000 200000
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as demo.py

import numpy as np  # noqa: E402

from numpylstm.checkpoint import model_from_checkpoint  # noqa: E402
from numpylstm.demos import tasks as tk  # noqa: E402
from numpylstm.train import pipe_safe_stdout  # noqa: E402


def score(model, x, y, long, state=None, trace=False):
    """Run x (n,) through the model from ``state`` (None: zeros), state carried chunk to chunk.
    Returns (accuracy, accuracy first tenth, accuracy last tenth, mean |c| first tenth, last tenth), and with
    ``trace`` also the mean |c| at every chunk boundary."""
    n = len(x)
    hits, cs = np.zeros(n, bool), []
    for a in range(0, n, tk.CHUNK):
        out, state = model.forward(x[None, a : a + tk.CHUNK], state)
        hits[a : a + tk.CHUNK] = out[0].argmax(axis=1) == y[a : a + tk.CHUNK]
        cs.append(float(np.mean(np.abs(state[:, 0].astype(np.float64)))))
    tenth, ct = n // 10, max(1, len(cs) // 10)
    acc = lambda sl: float(np.mean(hits[sl][long[sl]]))  # noqa: E731
    res = (acc(slice(0, n)), acc(slice(0, tenth)), acc(slice(n - tenth, n)), float(np.mean(cs[:ct])),
           float(np.mean(cs[-ct:])))
    return (res, np.asarray(cs)) if trace else res


def stream_of_row(s, row, start, n):
    """Symbols start .. start + n (+1 target) of training stream ``row`` with the long-memory marks."""
    rng = np.random.default_rng([s.seed, 0, row])
    ids, long, have = [], [], 0
    while have < start + n + 1:  # as ReberStream: whole strings, CHUNK symbols at a time
        i, m = tk._whole_strings(tk.ReberStream.CHUNK, rng)
        ids.append(i)
        long.append(m)
        have += len(i)
    ids, long = np.concatenate(ids), np.concatenate(long)
    return ids[start : start + n], ids[start + 1 : start + n + 1], long[start + 1 : start + n + 1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--symbols", type=int, nargs="+", default=[20000, 200000], help="fresh stream lengths")
    p.add_argument("--continued", type=int, default=20000, help="symbols of the continued training stream")
    p.add_argument("--seed", type=int, default=12345, help="seed of the fresh test streams (default 12345)")
    p.add_argument("--labels", nargs="+", help="a legend label for each checkpoint (default: its path)")
    p.add_argument("--plot", metavar="PNG", help="draw mean |c| along the longest fresh stream for each checkpoint")
    args = p.parse_args(argv)
    labels = args.labels or args.checkpoints
    if len(labels) != len(args.checkpoints):
        p.error("--labels: give one label per checkpoint")
    curves = []
    print(f"{'checkpoint':<44} {'stream':<10} {'symbols':>8} {'accuracy':>9} {'first10%':>9} {'last10%':>9} "
          f"{'|c| first':>10} {'|c| last':>10}")
    for path in args.checkpoints:
        model, ck = model_from_checkpoint(path)
        s = tk.settings_from_checkpoint(path)
        rows = []
        for n in args.symbols:
            ids, long = tk.reber_stream(n + 1, np.random.default_rng(args.seed))
            res, cs = score(model, ids[:-1], ids[1:], long[1:], trace=True)
            rows.append(("fresh", n, res))
        curves.append((labels[len(curves)], cs, res[0]))
        state = ck.extra.get("state")
        if state is not None and args.continued:
            x, y, m = stream_of_row(s, 0, ck.step * s.timesteps, args.continued)
            rows.append(("continued", args.continued, score(model, x, y, m, state[:, :, :1].copy())))
        for kind, n, (acc, a0, a1, c0, c1) in rows:
            print(f"{path:<44} {kind:<10} {n:>8,} {acc:>9.4f} {a0:>9.4f} {a1:>9.4f} {c0:>10.4g} {c1:>10.4g}",
                  flush=True)
    if args.plot:
        print(f"plot: {plot(args.plot, curves)}")


def plot(path, curves):
    """mean |c| along the fresh stream, one curve per checkpoint, its accuracy in the legend (log y)."""
    from numpylstm.demos.plots import _figure, _save

    fig, ax = _figure(8.0, 4.0)
    for label, cs, acc in curves:
        ax.plot(np.arange(1, len(cs) + 1) * tk.CHUNK, cs, label=f"{label}: long-memory accuracy {acc:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("position in a fresh test stream (symbols), never reset")
    ax.set_ylabel("mean |c| over the units")
    ax.set_title("continual embedded Reber stream: the cell state with and without a forget gate")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


if __name__ == "__main__":
    with pipe_safe_stdout():
        main()
