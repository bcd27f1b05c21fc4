"""The variant lab behind ``python demo.py variants``: every LSTM variant, the GRU and the tanh RNN trained with
the same budget on tasks that tell them apart, a ranking table, a figure, and saved runs.

The cells are those of ``numpylstm.cells`` (Greff et al. 2017, "LSTM: A Search Space Odyssey"): ``lstm`` is
Greff's NP (no peepholes), ``peephole`` his vanilla LSTM, and ``nig nfg nog niaf noaf cifg fgr`` the vanilla
LSTM with one change each; ``gru`` and ``rnn`` are the baselines. Every cell gets the same hidden size, the
same optimizer (Adam), learning rate, clipping, data and number of training steps: the budget is counted in
steps, not seconds, so runs are comparable on a busy machine.

The tasks (each a class below, registered in ``TASKS``):

- ``adding``: the adding problem at T = 100 (Le, Jaitly & Hinton 2015 variant, ``demos/adding.py``):
  fresh batches, score = test MSE on 1,000 held-out sequences (baseline: always predicting 1 scores 1/6).
- ``reber``: the continual embedded Reber stream of Gers, Schmidhuber & Cummins 2000: embedded Reber
  strings concatenated without resets, next-symbol prediction trained stateful (truncated BPTT, the state
  carried from batch to batch, never reset); score = accuracy on the symbol that needs the long memory (the
  second-to-last of each string, which repeats the string's second symbol; guessing scores 0.5), and the
  mean |c| over the test stream (sampled at every chunk end), which stays bounded only with a forget gate.

A run is one (task, cell, seed). Each finished run is saved as a small JSON file
``DIR/runs/<task>.<cell>.seed<S>.json`` (settings, scores, the score curve, seconds), so the lab resumes by
skipping finished runs and ``--redraw`` rebuilds the table and ``DIR/variants.png`` without training.
Runs are a pure function of (task settings, cell, seed, steps): the order and the number of parallel
workers do not change the numbers.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .. import model as _model
from ..model import LSTMModel
from ..optim import Adam, clip_grad_norm
from ..train import format_seconds
from .adding import adding_batch

__all__ = ["LAB_CELLS", "GREFF", "TASKS", "AddingTask", "ReberTask", "LabSettings", "available_cells",
           "reber_stream", "embedded_reber", "run_one", "run_lab", "load_runs", "summarise", "format_table",
           "plot_variants", "redraw"]

# Every cell of the lab, in the order of Greff et al.'s paper (their names in GREFF), then the baselines.
LAB_CELLS = ("lstm", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr", "gru", "rnn")
GREFF = {"lstm": "NP", "peephole": "V", "nig": "NIG", "nfg": "NFG", "nog": "NOG", "niaf": "NIAF",
         "noaf": "NOAF", "cifg": "CIFG", "fgr": "FGR", "gru": "GRU", "rnn": "RNN"}
RUN_FORMAT = 1  # version of the run files; a file with another version is not reused
HEARTBEAT_SECONDS = 60.0  # a "still running" line this often while no run finishes


def available_cells() -> tuple[str, ...]:
    """The lab's cells that ``LSTMModel(cell=...)`` accepts in this checkout, in ``LAB_CELLS`` order."""
    try:
        from .. import cells as _cells  # the plug-in cells (numpylstm/cells/), once they exist

        names = set(_cells.NAMES)
    except ImportError:
        names = set(_model.CELLS)
    names &= set(getattr(_model, "CELLS", ())) | ({"lstm", "rnn"} if not hasattr(_model, "CELLS") else set())
    return tuple(c for c in LAB_CELLS if c in names)


# --------------------------------------------------------------------------- the embedded Reber grammar

REBER_SYMBOLS = "BTPSXVE"
# Reber's grammar: node -> ((symbol, next node), (symbol, next node)), each edge taken with probability 1/2;
# node 5 emits E and ends the string.
REBER_GRAPH = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)), 2: (("T", 2), ("V", 4)),
               3: (("X", 2), ("S", 5)), 4: (("P", 3), ("V", 5))}


class _Coin:
    """Fair coin flips drawn from ``rng`` in blocks of 4,096 (one NumPy call per block, not per flip)."""

    def __init__(self, rng):
        self.rng, self.bits, self.i = rng, np.empty(0, np.int8), 0

    def __call__(self) -> int:
        if self.i == self.bits.size:
            self.bits, self.i = self.rng.integers(0, 2, 4096, dtype=np.int8), 0
        self.i += 1
        return int(self.bits[self.i - 1])


def _reber(coin) -> str:
    s, node = ["B"], 0
    while node != 5:
        symbol, node = REBER_GRAPH[node][coin()]
        s.append(symbol)
    s.append("E")
    return "".join(s)


def _embedded_reber(coin) -> str:
    side = "TP"[coin()]
    return "B" + side + _reber(coin) + side + "E"


def embedded_reber(rng) -> str:
    """One embedded Reber string: B, T or P, a Reber string, the same T or P, E (Gers et al. 2000)."""
    if hasattr(rng, "integers"):
        rng = _Coin(rng)
    return _embedded_reber(rng)


class reber_stream:
    """An endless continual embedded Reber stream: strings concatenated without resets.

    ``take(n)`` returns the next n symbols as (ids (n,) int64 in [0, 7), long (n,) bool), where ``long``
    marks the symbols that need the long memory: the second-to-last of each embedded string, the repeat of
    its second symbol. Deterministic for a given ``rng``.
    """

    def __init__(self, rng):
        self.coin = _Coin(rng)
        self.ids: list[int] = []
        self.long: list[bool] = []

    def take(self, n):
        while len(self.ids) < n:
            s = _embedded_reber(self.coin)
            self.ids.extend(REBER_SYMBOLS.index(ch) for ch in s)
            self.long.extend(j == len(s) - 2 for j in range(len(s)))
        ids, long = self.ids[:n], self.long[:n]
        del self.ids[:n], self.long[:n]
        return np.array(ids, np.int64), np.array(long, bool)


def reber_batches(n_streams, rng_seeds):
    """n_streams independent streams, seeded by ``rng_seeds + [r]``; yields (x, y, long) of chunk length T:
    call ``next_chunk(T)`` on the returned object."""
    return _StreamBatch([reber_stream(np.random.default_rng([*rng_seeds, r])) for r in range(n_streams)])


class _StreamBatch:
    """N streams read in step: ``next_chunk(T)`` -> x (N, T) ids, y (N, T) next ids, long (N, T) bool (y's
    long-memory flags). Consecutive chunks continue each other (the last target is the next chunk's first
    input), as stateful training needs."""

    def __init__(self, streams):
        self.streams = streams
        first = [s.take(1) for s in streams]
        self.last = np.array([f[0][0] for f in first], np.int64)

    def next_chunk(self, T):
        parts = [s.take(T) for s in self.streams]
        y = np.stack([p[0] for p in parts])
        long = np.stack([p[1] for p in parts])
        x = np.concatenate([self.last[:, None], y[:, :-1]], axis=1)
        self.last = y[:, -1].copy()
        return x, y, long


# --------------------------------------------------------------------------- the tasks


@dataclass(frozen=True)
class AddingTask:
    """The adding problem at T = 100: fresh batches of ``batch`` sequences per step, test MSE on 1,000
    held-out ones, evaluated every ``eval_every`` steps (the curve) and at the end (the score)."""

    timesteps: int = 100
    hidden: int = 32
    batch: int = 64
    lr: float = 1e-2
    clip: float = 1.0
    test_size: int = 1000
    eval_every: int = 100
    steps: int = 1000

    name = "adding"
    title = "adding problem, T = 100"
    score = "test MSE"  # the ranking score
    better = "lower"
    baseline = 1.0 / 6.0
    solved_below = 0.01  # the adding demo's target

    def run(self, cell, seed, dtype, heartbeat=None) -> dict:
        dt = np.dtype(dtype)
        test_x, test_y = adding_batch(self.test_size, self.timesteps, np.random.default_rng([seed, 1]), dt)
        model = LSTMModel(2, self.hidden, 1, head="last", loss="mse", seed=seed, dtype=dt, cell=cell)
        opt = Adam(model.params, lr=self.lr)
        curve, first_solved, diverged = [], None, None

        def test_mse():
            pred = model.forward(test_x)[0].astype(np.float64)
            return float(np.mean((pred - test_y) ** 2))

        curve.append((0, test_mse()))
        for step in range(1, self.steps + 1):
            x, y = adding_batch(self.batch, self.timesteps, np.random.default_rng([seed, 0, step]), dt)
            loss, grads, _ = model.loss_and_grads(x, y)
            norm = clip_grad_norm(grads, self.clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                diverged = step
                break
            opt.step(grads)
            if step % self.eval_every == 0 or step == self.steps:
                curve.append((step, test_mse()))
                if first_solved is None and curve[-1][1] < self.solved_below:
                    first_solved = step
            if heartbeat is not None:
                heartbeat(step)
        final = curve[-1][1] if diverged is None else test_mse()
        return {"test MSE": final, "steps to MSE < 0.01": first_solved, "diverged at step": diverged,
                "parameters": model.num_params(), "curve": curve}

    def columns(self):
        """(key, header, format) of the table's columns after the ranking score."""
        return [("steps to MSE < 0.01", "solved (< 0.01)", "solved")]


@dataclass(frozen=True)
class ReberTask:
    """The continual embedded Reber stream: ``streams`` streams of strings without resets, next-symbol
    prediction (softmax cross-entropy at every position), trained stateful with truncated BPTT over
    ``bptt`` symbols, the state carried from step to step and never reset. Tested on ``test_streams`` fresh
    streams of ``test_length`` symbols, run from a zero state in chunks of ``bptt`` with the state carried:
    accuracy on the long-memory symbols (the argmax prediction of each string's second-to-last symbol) and
    mean |c| (the first layer's cell state, sampled at every chunk end), over the whole test stream and over
    its first and last quarter."""

    hidden: int = 12
    streams: int = 32
    bptt: int = 50
    lr: float = 1e-2
    clip: float = 1.0
    test_streams: int = 16
    test_length: int = 10000
    eval_every: int = 250
    curve_length: int = 1000  # symbols per test stream for the curve's intermediate evaluations
    steps: int = 1000

    name = "reber"
    title = "continual embedded Reber stream"
    score = "accuracy"
    better = "higher"
    baseline = 0.5
    solved_below = None

    def _test(self, model, seed, length):
        data = reber_batches(self.test_streams, [seed, 1])
        state, hits, count, cabs = None, 0, 0, []
        for _ in range(length // self.bptt):
            x, y, long = data.next_chunk(self.bptt)
            logits, state = model.forward(x, state)
            hits += int(np.sum((np.argmax(logits, axis=-1) == y) & long))
            count += int(np.sum(long))
            cabs.append(float(np.mean(np.abs(state[0, 0].astype(np.float64)))))
        q = max(1, len(cabs) // 4)
        return hits / max(count, 1), float(np.mean(cabs)), float(np.mean(cabs[:q])), float(np.mean(cabs[-q:]))

    def run(self, cell, seed, dtype, heartbeat=None, keep=None) -> dict:
        """Train and test one cell; ``keep``, a dict, receives the trained model as keep["model"]
        (derivations/scripts/lab_cell_state.py looks inside it)."""
        dt = np.dtype(dtype)
        V = len(REBER_SYMBOLS)
        model = LSTMModel(V, self.hidden, V, head="all", loss="softmax_ce", seed=seed, dtype=dt, cell=cell)
        opt = Adam(model.params, lr=self.lr)
        data = reber_batches(self.streams, [seed, 0])
        state, curve, diverged, losses = None, [], None, []
        for step in range(1, self.steps + 1):
            x, y, _ = data.next_chunk(self.bptt)
            loss, grads, state = model.loss_and_grads(x, y, state)
            norm = clip_grad_norm(grads, self.clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                diverged = step
                break
            opt.step(grads)
            losses.append(loss)
            if step % self.eval_every == 0 and step < self.steps:
                curve.append((step, self._test(model, seed, self.curve_length)[0]))
            if heartbeat is not None:
                heartbeat(step)
        if keep is not None:
            keep["model"] = model
        acc, cabs, cstart, cend = self._test(model, seed, self.test_length)
        curve.append((step, acc))
        has_c = cabs > 0.0  # cells without a cell state keep the c slot of the state at exactly 0
        tail = losses[-100:]
        return {"accuracy": acc, "mean |c|": cabs if has_c else None,
                "mean |c| first quarter": cstart if has_c else None, "mean |c| last quarter": cend if has_c else None,
                "train loss (last 100 steps)": float(np.mean(tail)) if tail else None,
                "diverged at step": diverged, "parameters": model.num_params(), "curve": curve}

    def columns(self):
        return [("mean |c|", "mean |c|", "{:.3g}"), ("mean |c| first quarter", "|c| 1st 1/4", "{:.3g}"),
                ("mean |c| last quarter", "|c| last 1/4", "{:.3g}")]


TASKS = {"adding": AddingTask, "reber": ReberTask}
DEFAULT_TASKS = ("adding", "reber")
DEFAULT_SEEDS = 2


def task_of(name, steps=None):
    cls = TASKS[name]
    return cls() if steps is None else cls(steps=steps)


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class LabSettings:
    """What the lab runs: cells x tasks x seeds, with steps per task (None: the task's default)."""

    cells: tuple = ()
    tasks: tuple = DEFAULT_TASKS
    seeds: int = DEFAULT_SEEDS
    steps: dict = field(default_factory=dict)
    dtype: str = "float32"
    jobs: int = 2


def run_key(task, cell, seed) -> str:
    return f"{task}.{cell}.seed{seed}"


def run_one(task_name, task_settings, cell, seed, dtype, heartbeat=None) -> dict:
    """Train and score one (task, cell, seed); returns the record saved as its JSON file.
    ``heartbeat(step)``, if given, is called after every training step."""
    task = TASKS[task_name](**task_settings)
    wall, cpu = time.perf_counter(), time.process_time()
    result = task.run(cell, seed, dtype, heartbeat)
    return {"lab": "variants", "format": RUN_FORMAT, "task": task_name, "cell": cell, "seed": seed,
            "dtype": dtype, "settings": task_settings, "result": result,
            "seconds": time.perf_counter() - wall, "cpu seconds": time.process_time() - cpu}


def _worker_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool and says so


def _run_job(job):
    return run_one(*job)


# --------------------------------------------------------------------------- saving and loading runs


def _run_path(out, key) -> Path:
    return Path(out) / "runs" / f"{key}.json"


def read_run(path) -> dict | None:
    """The record in a run file, or None when the file is not one of the lab's run files."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("lab") != "variants" or record.get("format") != RUN_FORMAT:
        return None
    return record


def _write_json(path, record):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)  # a run file is either absent or complete


def load_runs(out, tasks=None, cells=None) -> list[dict]:
    """Every lab run saved in DIR/runs (optionally only these tasks and cells)."""
    folder = Path(out) / "runs"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = read_run(path)
        if r is None or r["task"] not in TASKS:
            continue
        if (tasks is None or r["task"] in tasks) and (cells is None or r["cell"] in cells):
            records.append(r)
    return records


# --------------------------------------------------------------------------- the table


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def summarise(records) -> dict:
    """{task: [row, ...]} with one row per cell, ranked best first by the task's score. A row:
    {"cell", "greff", "n", "scores" (per seed), "mean", "sd", "min", "max", "rank", extra columns' means,
    "solved" (adding: seeds below 0.01), "diverged", "steps", "seconds", "parameters"}."""
    table = {}
    for task_name in TASKS:
        rs = [r for r in records if r["task"] == task_name]
        if not rs:
            continue
        task = TASKS[task_name](**rs[0]["settings"])
        rows = []
        for cell in [c for c in LAB_CELLS if any(r["cell"] == c for r in rs)]:
            mine = sorted((r for r in rs if r["cell"] == cell), key=lambda r: r["seed"])
            scores = [r["result"][task.score] for r in mine]
            good = _finite(scores)
            row = {"cell": cell, "greff": GREFF[cell], "n": len(mine), "seeds": [r["seed"] for r in mine],
                   "scores": scores, "mean": float(np.mean(good)) if good else math.nan,
                   "sd": float(np.std(good, ddof=1)) if len(good) > 1 else math.nan,
                   "min": min(good) if good else math.nan, "max": max(good) if good else math.nan,
                   "diverged": sum(r["result"].get("diverged at step") is not None for r in mine),
                   "steps": sorted({r["settings"]["steps"] for r in mine}),
                   "seconds": float(np.mean([r["seconds"] for r in mine])),
                   "parameters": mine[0]["result"].get("parameters")}
            for key, _, _ in task.columns():
                vals = [r["result"].get(key) for r in mine]
                if key.startswith("steps to"):
                    row[key] = vals
                else:
                    v = _finite(vals)
                    row[key] = float(np.mean(v)) if v else None
            rows.append(row)
        sign = 1.0 if task.better == "lower" else -1.0
        rows.sort(key=lambda row: (math.isnan(row["mean"]), sign * row["mean"] if not math.isnan(row["mean"]) else 0))
        # ranks: means equal to the printed precision (3 significant digits) share their average rank
        means = [f"{row['mean']:.3g}" if not math.isnan(row["mean"]) else None for row in rows]
        for i, row in enumerate(rows):
            same = [j for j, m in enumerate(means) if m == means[i]]
            row["rank"] = (min(same) + max(same)) / 2.0 + 1.0
        table[task_name] = rows
    return table


def _fmt(v, spec="{:.4g}"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return spec.format(v)


def format_table(table, markdown=False) -> str:
    """The ranking table as text: one block per task (best first), then the mean rank over tasks."""
    lines = []
    for task_name, rows in table.items():
        task = TASKS[task_name]
        n_seeds = max(row["n"] for row in rows)
        steps = sorted({s for row in rows for s in row["steps"]})
        extra = TASKS[task_name]().columns()
        head = ["rank", "cell", "Greff", f"{task.score} mean", "sd", "min - max", "per seed"]
        head += [h for _, h, _ in extra] + ["params", "s/run"]
        body = []
        for row in rows:
            per_seed = " ".join(_fmt(v, "{:.3g}") for v in row["scores"])
            cells = [_fmt(row["rank"], "{:g}"), row["cell"], row["greff"], _fmt(row["mean"], "{:.3g}"),
                     _fmt(row["sd"], "{:.2g}"),
                     f"{_fmt(row['min'], '{:.3g}')} - {_fmt(row['max'], '{:.3g}')}", per_seed]
            for key, _, spec in extra:
                if spec == "solved":
                    got = [v for v in row[key] if v is not None]
                    cells.append(f"{len(got)}/{row['n']}" + (f" (step {int(np.median(got))})" if got else ""))
                else:
                    cells.append(_fmt(row[key], spec))
            cells += [_fmt(row["parameters"], "{:,}"), f"{row['seconds']:.0f}"]
            if row["diverged"]:
                cells[1] += f" ({row['diverged']} diverged)"
            body.append(cells)
        better = "lower is better" if task.better == "lower" else "higher is better"
        title = (f"{task.title}: {task.score} ({better}; baseline {task.baseline:.4g}), {n_seeds} seed(s), "
                 f"{'/'.join(str(s) for s in steps)} steps")
        lines += _render(title, head, body, markdown)
        lines.append("")
    if len(table) > 1:
        cells_all = [c for c in LAB_CELLS if all(any(r["cell"] == c for r in rows) for rows in table.values())]
        ranks = {c: [next(r["rank"] for r in rows if r["cell"] == c) for rows in table.values()] for c in cells_all}
        order = sorted(cells_all, key=lambda c: np.mean(ranks[c]))
        head = ["cell", "Greff", "mean rank"] + list(table)
        body = [[c, GREFF[c], f"{np.mean(ranks[c]):.1f}"] + [f"{r:g}" for r in ranks[c]] for c in order]
        lines += _render("overall: mean rank over the tasks (1 = best)", head, body, markdown)
    return "\n".join(lines).rstrip() + "\n"


def _render(title, head, body, markdown):
    if markdown:
        out = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in body]
        return out
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt_row = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()  # noqa: E731
    return [title, fmt_row(head)] + [fmt_row(row) for row in body]


# --------------------------------------------------------------------------- the figure

_COLOURS = {"lstm": "#1f77b4", "peephole": "#17becf", "nig": "#9467bd", "nfg": "#d62728", "nog": "#8c564b",
            "niaf": "#e377c2", "noaf": "#ff7f0e", "cifg": "#2ca02c", "fgr": "#bcbd22", "gru": "#7f7f7f",
            "rnn": "#000000"}


def plot_variants(table, records, path) -> Path:
    """DIR/variants.png: one panel per score (adding: test MSE; Reber: accuracy and mean |c|), the cells
    ranked best first, a dot per seed, a bar at the mean, the baseline dashed."""
    from .plots import _figure, _save

    panels = []
    for task_name, rows in table.items():
        task = TASKS[task_name]
        panels.append((task_name, task.score, rows, task.baseline, task.better == "lower"))
        if task_name == "reber":
            panels.append((task_name, "mean |c|", rows, None, True))
    n_rows = max(len(rows) for _, _, rows, _, _ in panels)
    fig, _ax = _figure(8.8, 1.4 + 0.3 * n_rows)  # raises PlotsUnavailable without matplotlib
    from matplotlib.ticker import NullFormatter
    fig.delaxes(_ax)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (task_name, key, rows, baseline, log) in zip(axes, panels):
        order = rows[::-1]  # best at the top
        for y, row in enumerate(order):
            vals = [r["result"].get(key) for r in records if r["task"] == task_name and r["cell"] == row["cell"]]
            vals = [v for v in vals if v is not None and math.isfinite(v) and (v > 0 or not log)]
            if not vals:
                continue
            colour = _COLOURS.get(row["cell"], "#333333")
            ax.scatter(vals, [y] * len(vals), s=16, color=colour, alpha=0.7, zorder=3)
            mean = float(np.exp(np.mean(np.log(vals)))) if log else float(np.mean(vals))
            ax.plot([mean, mean], [y - 0.3, y + 0.3], color=colour, linewidth=2.5, zorder=4)
        for y, row in enumerate(order):
            if key == "mean |c|" and row["mean |c|"] is None:
                ax.text(0.02, y, "no cell state", transform=ax.get_yaxis_transform(), fontsize=7, va="center",
                        color="#777777")
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([f"{r['cell']} ({r['greff']})" for r in order], fontsize=8)
        ax.set_ylim(-0.6, len(order) - 0.4)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            lo, hi = ax.get_xlim()
            if key == "test MSE":  # at least from 1e-4 to above the baseline: a failure shows as one
                ax.set_xlim(min(lo, 1e-4), max(hi, 0.3))
            elif hi / lo < 100:
                ax.set_xlim(lo / 3, hi * 3)
        else:
            ax.set_xlim(-0.02, 1.02)
        if baseline is not None:  # named in the axis label, not in a legend that could hide a cell's dots
            ax.axvline(baseline, color="#555555", linestyle="--", linewidth=1)
        task = TASKS[task_name]
        ax.set_title(f"{task.title}" if key == task.score else "Reber stream: cell state", fontsize=9)
        label = {"test MSE": "test MSE (log; bar: geometric mean)\ndashed: baseline 1/6 (always predict 1)",
                 "accuracy": "accuracy on the long-memory symbol\ndashed: baseline 0.5 (no memory)",
                 "mean |c|": "mean |c| over the test stream (log)\nbounded only if a forget gate is used"}[key]
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    seeds = max(row["n"] for rows in table.values() for row in rows)
    steps = ", ".join(f"{t}: {'/'.join(str(s) for s in sorted({s for r in rows for s in r['steps']}))} steps"
                      for t, rows in table.items())
    fig.suptitle(f"The variant lab: same budget for every cell ({seeds} seed(s); {steps}); best at the top",
                 fontsize=9)
    return _save(fig, path)


# --------------------------------------------------------------------------- the lab


class LabError(ValueError):
    """A usage problem found before training (demo.py turns it into a one-line error, exit status 2)."""


def _plan(settings: LabSettings, out):
    """[(key, job)] of the runs still to do, and the number already done; LabError if DIR holds a run file
    that these settings would have to replace."""
    todo, done, clashes = [], 0, []
    for seed in range(settings.seeds):
        for task_name in settings.tasks:
            task = task_of(task_name, settings.steps.get(task_name))
            for cell in settings.cells:
                key = run_key(task_name, cell, seed)
                path = _run_path(out, key)
                job = (task_name, asdict(task), cell, seed, settings.dtype)
                if path.exists():
                    r = read_run(path)
                    if r is None:
                        raise LabError(f"--out {out}: {path} is not a run file of the lab; it is never replaced "
                                       "(move it or choose another --out)")
                    if r["settings"] == asdict(task) and r["dtype"] == settings.dtype:
                        done += 1
                        continue
                    clashes.append((path, r))
                todo.append((key, job))
    return todo, done, clashes


def _clash_message(out, clashes):
    path, r = clashes[0]
    return (f"--out {out} holds {len(clashes)} finished run(s) with other settings (e.g. {path.name}: "
            f"{r['settings'].get('steps')} steps, {r['dtype']}); rerunning would replace them: add --overwrite, "
            "or choose another --out")


def _check_figure(out, overwrite):
    png = Path(out) / "variants.png"
    if png.exists() and not overwrite and not load_runs(out):
        raise LabError(f"--out {out}: {png} exists and is not the lab's figure of runs saved there; add "
                       "--overwrite to replace it, or choose another --out")


def redraw(out, *, tasks=None, cells=None, seeds=None, markdown=False, plot=True, overwrite=False,
           stream=None) -> int:
    """Print the table and draw DIR/variants.png from the saved runs (only seeds 0 .. seeds-1 if given); no
    training."""
    stream = sys.stdout if stream is None else stream
    records = [r for r in load_runs(out, tasks, cells) if seeds is None or r["seed"] < seeds]
    if not records:
        raise LabError(f"--out {out}: no saved lab runs in {Path(out) / 'runs'} (run 'python demo.py variants' "
                       "first)")
    _check_figure(out, overwrite)
    table = summarise(records)
    print(format_table(table, markdown), end="", file=stream, flush=True)
    if plot:
        _draw(table, records, out, stream)
    return 0


def _draw(table, records, out, stream):
    from .plots import PlotsUnavailable

    try:
        print(f"plot: {plot_variants(table, records, Path(out) / 'variants.png')}", file=stream, flush=True)
    except PlotsUnavailable as exc:
        print(f"plot skipped: {exc}", file=stream, flush=True)


def _short(record) -> str:
    r, task = record["result"], TASKS[record["task"]]
    text = f"{task.score} {_fmt(r[task.score])}"
    if r.get("mean |c|") is not None:
        text += f", mean |c| {r['mean |c|']:.3g}"
    if r.get("diverged at step") is not None:
        text += f", diverged at step {r['diverged at step']}"
    return text


def run_lab(settings: LabSettings, *, out="runs/variants", overwrite=False, markdown=False, plot=True,
            quiet=False, stream=None) -> int:
    """Run every (seed, task, cell) not yet saved in DIR/runs, printing a line per finished run, then the
    table and DIR/variants.png. Returns 0, or 130 after Ctrl-C (the finished runs are kept: rerun to resume)."""
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    out = Path(out)
    todo, done, clashes = _plan(settings, out)
    if clashes and not overwrite:
        raise LabError(_clash_message(out, clashes))
    _check_figure(out, overwrite)
    total = len(todo) + done
    steps = ", ".join(f"{t} {task_of(t, settings.steps.get(t)).steps}" for t in settings.tasks)
    say(f"variant lab: {len(settings.cells)} cells ({' '.join(settings.cells)}) x {len(settings.tasks)} tasks x "
        f"{settings.seeds} seeds = {total} runs; steps per run: {steps}; {settings.dtype}; {settings.jobs} "
        f"worker(s); saving to {out / 'runs'}")
    if done:
        say(f"  {done} run(s) already saved there: skipped (delete DIR/runs/<run>.json to redo one)")
    start = time.perf_counter()
    finished = [0]

    def report(key, record):
        _write_json(_run_path(out, key), record)
        finished[0] += 1
        elapsed = time.perf_counter() - start
        left = len(todo) - finished[0]
        eta = f", about {format_seconds(elapsed / finished[0] * left)} left" if left else ""
        say(f"[{done + finished[0]:>3}/{total}] {record['task']:<6} {record['cell']:<8} seed {record['seed']}: "
            f"{_short(record)}  ({record['seconds']:.1f} s; elapsed {format_seconds(elapsed)}{eta})")

    def still_running(what):
        say(f"      ... {what}; {done + finished[0]}/{total} runs done, elapsed "
            f"{format_seconds(time.perf_counter() - start)}")

    interrupted = False
    try:
        if settings.jobs <= 1 or len(todo) <= 1:
            for key, job in todo:
                last = [time.perf_counter()]

                def heartbeat(step, job=job, last=last):
                    if time.perf_counter() - last[0] >= HEARTBEAT_SECONDS:
                        last[0] = time.perf_counter()
                        still_running(f"{job[0]} {job[2]} seed {job[3]}: step {step}/{job[1]['steps']}")

                report(key, run_one(*job, heartbeat=heartbeat))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # fresh workers: no copied threads or locks; the BLAS settings inherited
            pool = ctx.Pool(min(settings.jobs, len(todo)), initializer=_worker_init)
            try:
                results = pool.imap_unordered(_run_job, [job for _, job in todo])
                while finished[0] < len(todo):
                    try:
                        record = results.next(timeout=HEARTBEAT_SECONDS)
                    except mp.TimeoutError:
                        still_running(f"{settings.jobs} runs training")
                        continue
                    report(run_key(record["task"], record["cell"], record["seed"]), record)
                pool.close()
            finally:
                pool.terminate()
                pool.join()
    except KeyboardInterrupt:
        interrupted = True
        say()
        say(f"interrupted: {done + finished[0]} of {total} runs saved in {out / 'runs'}; run the same command "
            "again to resume")
    records = load_runs(out, settings.tasks, settings.cells)
    records = [r for r in records if r["seed"] < settings.seeds]
    if records:
        say()
        table = summarise(records)
        print(format_table(table, markdown), end="", file=stream, flush=True)
        if plot:
            _draw(table, records, out, stream)
    if not interrupted:
        say(f"lab done in {format_seconds(time.perf_counter() - start)} ({len(todo)} run(s) trained, {done} reused)")
    return 130 if interrupted else 0
