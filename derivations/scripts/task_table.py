"""The results table of derivations/13_memory_tasks.md, 13.10, from the checkpoints of ``demo.py task`` runs.

For every ``<cell>.npz`` under the given folders: task, cell, T, H, training steps and sequences (symbols for
reber-continual), training seconds (evaluations excluded), the final and the best test metric, and when the
paper's criterion was first met (sequences, seconds), or "not solved".

    PYTHONPATH=. python derivations/scripts/task_table.py runs/tasks
"""

from __future__ import annotations

import argparse
from pathlib import Path

from numpylstm.demos import tasks as tk
from numpylstm.train import pipe_safe_stdout


def rows(folders):
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.npz")):
            try:
                s, hist, _ = tk._history(path)
            except (ValueError, OSError, KeyError):
                continue
            if not hist:
                continue
            t = tk.TASKS[s.task]
            per = s.batch_size * (s.timesteps if s.task == "reber-continual" else 1)
            values = [m[t.metric] for _, _, m in hist]
            best = max(values) if t.higher_better else min(values)
            met = ((lambda m: m[t.metric] < 0.9 * t.baseline(s.timesteps)) if s.task == "copying"  # runs saved
                   else (lambda m: m.get("solved")))  # before the copying criterion got its 10 % margin
            solved = next(((st, sec) for st, sec, m in hist if met(m)), None)
            yield (s.task, s.cell, s.timesteps, s.lstm_size, s.forget_bias, hist[-1][0], hist[-1][0] * per,
                   hist[-1][1], t.metric, values[-1], best, t.baseline(s.timesteps),
                   None if solved is None else (solved[0] * per, solved[1]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+")
    args = p.parse_args(argv)
    print("| task | cell | T | H | steps | sequences | seconds | metric: final (best) | baseline | criterion met |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (task, cell, T, H, fb, steps, seqs, secs, metric, final, best, base, solved) in rows(args.folders):
        cell = cell + (f", forget bias {fb:g}" if fb != 1.0 else "")
        met = "no" if solved is None else f"after {solved[0]:,} ({solved[1]:.0f} s)"
        print(f"| {task} | {cell} | {T or '-'} | {H} | {steps:,} | {seqs:,} | {secs:.0f} | {metric} {final:.4g} "
              f"({best:.4g}) | {base:.4g} | {met} |")


if __name__ == "__main__":
    with pipe_safe_stdout():
        main()
