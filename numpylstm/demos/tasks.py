"""The long-memory tasks behind ``python demo.py task NAME`` and ``python demo.py tasks``.

Each task is the benchmark of the paper that made the case for the LSTM, generated exactly as the paper
defines it (derivations/13_memory_tasks.md, (M1)-(M9)), with

- a generator: a pure function of a NumPy ``Generator``, so a run is a function of its seed;
- its memoryless baseline: the best score of a model that remembers nothing (a constant prediction, or one
  that knows every position but no past symbol), computed from the definition, not measured;
- the paper's success criterion and the paper's published numbers, as data (``TASKS``).

The tasks:

    adding            Le, Jaitly & Hinton 2015: values U[0, 1], one mark in each half, target the sum
    adding-1997       Hochreiter & Schmidhuber 1997, 5.4: values U[-1, 1], markers {1, 0, -1}, 0.5 + (X1 + X2)/4
    multiplication    Hochreiter & Schmidhuber 1997, 5.5: values U[0, 1], target X1 * X2
    temporal-order    Hochreiter & Schmidhuber 1997, 5.6 task 6a: the order of X and Y, 4 classes
    temporal-order-3  Hochreiter & Schmidhuber 1997, 5.6 task 6b: three of X / Y, 8 classes
    copying           Arjovsky, Shah & Bengio 2016: recall 10 symbols after T blanks
    reber             embedded Reber strings (1997, 5.1), one string per sequence, next-symbol prediction
    reber-continual   Gers, Schmidhuber & Cummins 2000: the strings concatenated into one endless stream,
                      trained stateful (state carried from batch to batch, truncated BPTT), never reset

``run_task`` trains one cell on one task for a wall-time budget (or a number of steps), evaluates a fixed test
set as it goes, saves ``DIR/<cell>.npz`` (with the history of the metric) and redraws ``DIR/<task>.png`` from
every run saved in DIR.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from .. import _checks as chk
from ..checkpoint import check_replaceable, read_checkpoint
from ..model import LSTMModel
from ..optim import Adam
from .._cli import int_at_least
from ..train import Progress, Trainer, check_memory, constant_lr, format_seconds, run_for_cli
from .adding import adding_batch

__all__ = ["TASKS", "Task", "TaskSettings", "cell_names", "adding_1997_batch", "multiplication_batch",
           "temporal_order_batch", "copying_batch", "reber_string", "embedded_reber", "is_reber",
           "is_embedded_reber", "embedded_reber_of_length", "reber_batch", "ReberStream", "reber_stream",
           "run_task", "plot_task", "list_tasks", "settings_from_checkpoint"]

STEPS_CAP = 10_000_000  # a --minutes run is stopped by the clock; its step count only needs a bound
# The 1997 tasks start with the forget gates nearly shut, f = sigma(5) = 0.993, close to the 1997 LSTM's f = 1:
# a stored value then fades over ~150 steps instead of ~4 (sigma(1) = 0.73), and the gradient (B7) reaches the
# marked steps 50-100 back. Measured (chapter 13.10): temporal order at T = 100 was solved after 121,600
# sequences with forget bias 5 and stayed at the baseline for 106,240 with forget bias 1. Gers, Schmidhuber &
# Cummins 2000 (section 4.5.1) report the same on their noisy temporal order task: forget-gate bias 5.0 learned
# as fast as the LSTM without forget gates, bias 1.0 took about three times longer.
F1997 = 5.0


def cell_names() -> tuple:
    """The cells ``LSTMModel(cell=...)`` accepts in this checkout (``model.CELLS``)."""
    from .. import model

    return tuple(model.CELLS)


# =========================================================================== the generators
# Regression tasks return x (n, L, 2) floats (value, marker) and y (n, 1); every sequence of one batch has the
# same length L (a model step works on a rectangle), drawn once per batch where the paper draws lengths: over
# many batches the lengths have the paper's distribution.


def _length_1997(T, rng):
    """A sequence length drawn uniformly from T .. T + T/10 (1997, 5.4: "between T and T + T/10")."""
    return int(rng.integers(T, T + T // 10 + 1))


def _marks_1997(n, L, T, rng):
    """Positions (first, second) of the two marked pairs of 1997 5.4 / 5.5, 0-based, each (n,).

    X1: one of the first ten pairs. X2: one of the first T/2 - 1 still unmarked pairs, i.e. uniform over
    positions 0 .. T/2 - 1 without X1's (T >= 22, so X1's position is always among them).
    """
    first = rng.integers(0, 10, n)
    second = rng.integers(0, T // 2 - 1, n)  # index among the T/2 - 1 unmarked candidates
    second = second + (second >= first)  # skip X1's position
    return first, second


def _pairs_1997(n, T, rng, low, dtype):
    L = _length_1997(T, rng)
    x = np.zeros((n, L, 2), dtype)
    x[:, :, 0] = rng.uniform(low, 1.0, (n, L))
    x[:, 0, 1] = -1.0  # the first and the last pair are marked -1 ...
    x[:, L - 1, 1] = -1.0
    first, second = _marks_1997(n, L, T, rng)
    rows = np.arange(n)
    x[rows, first, 1] = 1.0  # ... unless marked 1 (only the first pair can be: L - 1 >= T > T/2)
    x[rows, second, 1] = 1.0
    return x, rows, first, second


def _check_T_1997(T):
    T = chk.positive_int("timesteps", T)
    if T < 22:
        raise ValueError(f"timesteps must be >= 22 (X2 among the first T/2 - 1 pairs, after the first ten); got {T}")
    return T


def adding_1997_batch(n, T, rng, dtype=np.float64):
    """Hochreiter & Schmidhuber 1997, 5.4: x (n, L, 2) with L in [T, T + T/10], y (n, 1) = 0.5 + (X1 + X2)/4.

    Values U[-1, 1]; markers 1 at X1 (one of the first ten pairs) and X2 (one of the first T/2 - 1 still
    unmarked pairs), -1 at the first and last pair (unless marked), 0 elsewhere. In the rare case where the
    first pair gets marked the paper sets X1 to zero; we set the value of a marked first pair to 0 whichever
    mark it got (X2 can land there too).
    """
    n, T = chk.positive_int("n", n), _check_T_1997(T)
    x, rows, first, second = _pairs_1997(n, T, rng, -1.0, dtype)
    x[:, 0, 0] = np.where(x[:, 0, 1] == 1.0, 0.0, x[:, 0, 0])  # a marked first pair carries 0
    y = 0.5 + (x[rows, first, 0].astype(np.float64) + x[rows, second, 0]) / 4.0
    return x, y.reshape(n, 1).astype(dtype)


def multiplication_batch(n, T, rng, dtype=np.float64):
    """Hochreiter & Schmidhuber 1997, 5.5: as ``adding_1997_batch`` with values U[0, 1], y = X1 * X2.

    In the rare case where the first pair gets marked the paper sets X1 to 1.0 (5.5; the identity of the
    product, as 0 is that of the sum in 5.4); as in ``adding_1997_batch`` we apply it whichever mark it got.
    """
    n, T = chk.positive_int("n", n), _check_T_1997(T)
    x, rows, first, second = _pairs_1997(n, T, rng, 0.0, dtype)
    x[:, 0, 0] = np.where(x[:, 0, 1] == 1.0, 1.0, x[:, 0, 0])
    y = x[rows, first, 0].astype(np.float64) * x[rows, second, 0]
    return x, y.reshape(n, 1).astype(dtype)


# temporal order: symbols as token ids
TO_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")


def _to_windows(T, k):
    """The windows (first, last), 1-based time steps, of the k relevant symbols at minimal length T.

    The paper's, at T = 100: k = 2 (6a): t1 in [10, 20], t2 in [50, 60]; k = 3 (6b): t1 in [10, 20],
    t2 in [33, 43], t3 in [66, 76]. Other T scale them: round(T * first / 100) .. + round(T / 10).
    """
    starts = (10, 50) if k == 2 else (10, 33, 66)
    return [(round(T * s / 100), round(T * s / 100) + round(T / 10)) for s in starts]


def temporal_order_batch(n, T, rng, k=2):
    """Hochreiter & Schmidhuber 1997, 5.6: x (n, L) token ids (``TO_SYMBOLS``), L in [T, T + T/10];
    y (n, 2**k) one-hot classes.

    The sequence starts with E, ends with B (the trigger), and is otherwise a, b, c, d at random except at k
    time steps t_j (windows ``_to_windows``), which hold X or Y. The class is the X/Y word read as binary
    digits, X = 0, Y = 1, first symbol first: 6a (k = 2) XX -> Q, XY -> R, YX -> S, YY -> U; 6b (k = 3) 8
    classes.
    """
    n, T = chk.positive_int("n", n), chk.positive_int("timesteps", T)
    if T < 20:
        raise ValueError(f"timesteps must be >= 20 for the temporal order task; got {T}")
    L = _length_1997(T, rng)
    x = rng.integers(0, 4, (n, L))  # a, b, c, d
    x[:, 0] = TO_SYMBOLS.index("E")
    x[:, L - 1] = TO_SYMBOLS.index("B")
    cls = np.zeros(n, np.int64)
    rows = np.arange(n)
    for lo, hi in _to_windows(T, k):
        t = rng.integers(lo, hi + 1, n)  # 1-based time step
        bit = rng.integers(0, 2, n)  # 0: X, 1: Y
        x[rows, t - 1] = TO_SYMBOLS.index("X") + bit
        cls = 2 * cls + bit
    y = np.zeros((n, 2**k))
    y[rows, cls] = 1.0
    return x, y


def copying_batch(n, T, rng):
    """Arjovsky, Shah & Bengio 2016: x, y (n, T + 20) token ids over 10 symbols a0 .. a9.

    Input: 10 symbols drawn uniformly from a0 .. a7, T - 1 blanks a8, the delimiter a9, 10 blanks a8.
    Target: T + 10 blanks a8, then the 10 symbols in the same order.
    """
    n, T = chk.positive_int("n", n), chk.positive_int("timesteps", T)
    data = rng.integers(0, 8, (n, 10))
    x = np.full((n, T + 20), 8, np.int64)
    x[:, :10] = data
    x[:, T + 9] = 9
    y = np.full((n, T + 20), 8, np.int64)
    y[:, T + 10 :] = data
    return x, y


# --------------------------------------------------------------------------- Reber grammar
REBER = "BTPSXVE"  # the 7 symbols; a symbol's token id is its index here
# The Reber grammar as a graph: node -> ((symbol, next node), ...); each of the two branches has probability
# 1/2. A Reber string is B, then a walk from node 1 to the end (E).
GRAPH = {
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", None),),
}


def reber_string(rng) -> str:
    """A Reber string: B, then a random walk through ``GRAPH`` from node 1, each branch with probability 1/2."""
    out, node = ["B"], 1
    while node is not None:
        edges = GRAPH[node]
        sym, node = edges[int(rng.integers(len(edges)))] if len(edges) > 1 else edges[0]
        out.append(sym)
    return "".join(out)


def embedded_reber(rng) -> str:
    """An embedded Reber string: B, T or P, a Reber string, the same T or P, E."""
    c = "TP"[int(rng.integers(2))]
    return "B" + c + reber_string(rng) + c + "E"


def is_reber(s: str) -> bool:
    """Is ``s`` a Reber string (B, a path through ``GRAPH`` from node 1, ending with E)?"""
    if len(s) < 2 or s[0] != "B":
        return False
    node = 1
    for sym in s[1:]:
        if node is None:
            return False  # symbols after the final E
        nxt = dict(GRAPH[node])
        if sym not in nxt:
            return False
        node = nxt[sym]
    return node is None


def is_embedded_reber(s: str) -> bool:
    """Is ``s`` an embedded Reber string (B, c, a Reber string, c, E with c = T or P)?"""
    return (len(s) >= 5 and s[0] == "B" and s[-1] == "E" and s[1] in "TP" and s[-2] == s[1]
            and is_reber(s[2:-2]))


def _paths(node, k, memo={}):  # noqa: B006 (a cache of a pure function of the fixed GRAPH)
    """How many walks from ``node`` emit exactly k more symbols (the final E included)."""
    if node is None:
        return 1 if k == 0 else 0
    if k <= 0:
        return 0
    key = (node, k)
    if key not in memo:
        memo[key] = sum(_paths(nxt, k - 1) for _, nxt in GRAPH[node])
    return memo[key]


def embedded_reber_of_length(n_symbols, rng) -> str:
    """An embedded Reber string of exactly ``n_symbols`` symbols, drawn from ``embedded_reber``'s
    distribution conditioned on that length.

    Every embedded string of length n has probability 2^-(n - 3) (one fair choice per symbol except B, E and
    the repeated T/P), so conditioned on n all such strings are equally likely: walk the graph choosing each
    branch in proportion to the number of walks (``_paths``) that still finish at the right length.
    """
    k = n_symbols - 5  # symbols after the inner B, the inner E included
    if _paths(1, k) == 0:
        raise ValueError(f"no embedded Reber string has {n_symbols} symbols")
    out, node = ["B"], 1
    while node is not None:
        weights = [_paths(nxt, k - 1) for _, nxt in GRAPH[node]]
        choice = 0 if len(weights) == 1 else int(rng.random() * sum(weights) >= weights[0])
        sym, node = GRAPH[node][choice]
        out.append(sym)
        k -= 1
    c = "TP"[int(rng.integers(2))]
    return "B" + c + "".join(out) + c + "E"


def _ids(s) -> np.ndarray:
    return np.frombuffer(s.encode("ascii"), np.uint8).copy()


_LOOKUP = np.zeros(128, np.int64)
_LOOKUP[list(REBER.encode("ascii"))] = np.arange(len(REBER))


def reber_ids(s) -> np.ndarray:
    """Token ids (index in ``REBER``) of a string over BTPSXVE."""
    return _LOOKUP[_ids(s)]


def reber_batch(n, rng):
    """n embedded Reber strings of one length L (drawn as the length of one fresh string, then n strings of
    that length: ``embedded_reber_of_length``): x (n, L - 1) ids of the symbols, y (n, L - 1) ids of the next
    symbols. The long-memory target, the second-to-last symbol, is y[:, L - 3]."""
    n = chk.positive_int("n", n)
    L = len(embedded_reber(rng))
    ids = np.stack([reber_ids(embedded_reber_of_length(L, rng)) for _ in range(n)])
    return ids[:, :-1], ids[:, 1:]


def _whole_strings(n_symbols, rng):
    """Embedded Reber strings from ``rng``, whole, concatenated until at least ``n_symbols`` symbols.

    Returns (ids, long): long[t] marks the second-to-last symbol of a string, the one only a memory of that
    string's second symbol predicts.
    """
    ids, long, have = [], [], 0
    while have < n_symbols:
        s = reber_ids(embedded_reber(rng))
        mark = np.zeros(len(s), bool)
        mark[-2] = True
        ids.append(s)
        long.append(mark)
        have += len(s)
    return np.concatenate(ids), np.concatenate(long)


def reber_stream(n_symbols, rng):
    """The continual stream (Gers et al. 2000): embedded Reber strings concatenated without any reset, its
    first ``n_symbols`` symbols. Returns (ids (n_symbols,), long (n_symbols,) bool), as ``_whole_strings``."""
    ids, long = _whole_strings(n_symbols, rng)
    return ids[:n_symbols], long[:n_symbols]


class ReberStream:
    """One row of the training streams: the endless ``reber_stream`` of ``np.random.default_rng(seed)``.

    ``take(start, stop)`` returns ids[start:stop] of the stream; reads must move forward (a resumed run that
    reads an earlier place starts the stream again from its seed), and only the part not yet read is kept.
    The stream is a function of the seed alone, however it is read.
    """

    CHUNK = 4096

    def __init__(self, seed):
        self.seed = seed
        self._restart()

    def _restart(self):
        self.rng = np.random.default_rng(self.seed)
        self.buffer = np.zeros(0, np.int64)
        self.offset = 0  # stream position of buffer[0]

    def take(self, start, stop):
        if start < self.offset:
            self._restart()
        while self.offset + len(self.buffer) < stop:
            more, _ = _whole_strings(self.CHUNK, self.rng)  # whole strings only: the stream never breaks one
            self.buffer = np.concatenate([self.buffer, more])
        out = self.buffer[start - self.offset : stop - self.offset].copy()
        self.buffer, self.offset = self.buffer[start - self.offset :], start
        return out


def next_symbols(s: str) -> list[str]:
    """For each position t of the embedded Reber string s but the last: the symbols the grammar allows after
    s[:t + 1] (the deterministic ones have one: the second-to-last symbol is always s[1])."""
    out = ["TP", "B"]  # after the outer B: T or P; after it: the inner B
    node = 1  # after the inner B (s[2])
    out.append("".join(sym for sym, _ in GRAPH[node]))
    for sym in s[3:-2]:  # the inner string after its B, up to and including its E
        node = dict(GRAPH[node])[sym]
        out.append(s[1] if node is None else "".join(sym2 for sym2, _ in GRAPH[node]))
    out.append("E")  # after the repeated T / P
    return out


# =========================================================================== baselines (memoryless)


def adding_baseline(T=None):
    """(M1) MSE of predicting 1, the mean of X1 + X2 with X1, X2 ~ U[0, 1]: Var = 2 * 1/12 = 1/6."""
    return 1.0 / 6.0


def _first_pair_marked(T):
    """(M2) P(the first pair is marked): X1 there (1/10) or X2 there ((9/10) / (T/2 - 1))."""
    return 0.1 + 0.9 / (T // 2 - 1)


def adding_1997_baseline(T):
    """(M3) MSE of predicting 0.5: Var((X1 + X2)/4) = (1/16)(1/3)(2 - q), q = P(first pair marked), whose
    value is 0."""
    q = _first_pair_marked(T)
    return (2.0 - q) / 48.0


def multiplication_baseline(T):
    """(M4) MSE of predicting the mean E[X1 X2]: with q = P(first pair marked, value 1),
    E[P] = 1/4 + q/4, E[P^2] = 1/9 + 2q/9, baseline = E[P^2] - E[P]^2 (7/144 at q = 0)."""
    q = _first_pair_marked(T)
    mean = 0.25 + q / 4.0
    return 1.0 / 9.0 + 2.0 * q / 9.0 - mean**2


def temporal_order_baseline(k):
    """(M5) MSE of predicting 1/K for each of the K = 2^k one-hot outputs: (K - 1) / K^2."""
    K = 2**k
    return (K - 1) / K**2


def copying_baseline(T):
    """(M6) nats per step of predicting blanks where they are certain and 1/8 each of a0 .. a7 at the 10
    recall steps: 10 ln 8 / (T + 20)."""
    return 10.0 * math.log(8.0) / (T + 20)


def reber_baseline(T=None):
    """(M7) accuracy on the second-to-last symbol without a memory of the second: T and P equally likely,
    1/2."""
    return 0.5


# =========================================================================== the task table


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # one line for 'demo.py tasks'
    paper: str
    metric: str  # what the last line prints: "MSE", "nats/step", "accuracy"
    higher_better: bool
    kind: str  # "regression" (head last, mse), "classes" (head last, mse on one-hot), "tokens" (head all, CE)
    input_size: int
    output_size: int
    criterion: str  # the paper's success criterion, as this program applies it
    paper_numbers: tuple  # ((condition, what the paper reports), ...)
    defaults: dict  # TaskSettings fields that differ from its defaults

    def baseline(self, T) -> float:
        return {"adding": adding_baseline, "adding-1997": adding_1997_baseline,
                "multiplication": multiplication_baseline,
                "temporal-order": lambda T: temporal_order_baseline(2),
                "temporal-order-3": lambda T: temporal_order_baseline(3),
                "copying": copying_baseline, "reber": reber_baseline,
                "reber-continual": reber_baseline}[self.name](T)


TASKS = {
    "adding": Task(
        "adding", "sum of two marked values in [0, 1], one mark per half", "Le, Jaitly & Hinton 2015",
        "MSE", False, "regression", 2, 1,
        "test MSE < 0.01 (ours: the paper gives no threshold; Arjovsky et al. 2016 quote the baseline 0.167 = 1/6)",
        (("baseline (predict 1)", "reported as about 0.1767 (not confirmed here; the exact value is 1/6)"),
         ("T = 150 / 200 / 300 / 400", "LSTM and IRNN compared with the baseline (results not confirmed here)")),
        dict(timesteps=100, minutes=2.0, eval_every=50)),
    "adding-1997": Task(
        "adding-1997", "0.5 + (X1 + X2)/4, values in [-1, 1], markers 1/0/-1, length T..1.1T",
        "Hochreiter & Schmidhuber 1997, 5.4", "MSE", False, "regression", 2, 1,
        "test MSE < 0.01 and every one of 2,000 test sequences with |error| < 0.04 (the paper: average training "
        "error < 0.01 and the 2,000 most recent training sequences correct)",
        (("T = 100", "74,000 training sequences (mean of 10 trials)"), ("T = 500", "209,000"),
         ("T = 1000", "853,000")),
        dict(timesteps=100, minutes=3.0, eval_every=100, test_size=2000, forget_bias=F1997)),
    "multiplication": Task(
        "multiplication", "X1 * X2, values in [0, 1], markers as adding-1997",
        "Hochreiter & Schmidhuber 1997, 5.5", "MSE", False, "regression", 2, 1,
        "fewer than 140 of 2,000 test sequences with |error| >= 0.04 (the paper: fewer than n_seq = 140 of the "
        "2,000 most recent training sequences with error > 0.04)",
        (("T = 100, n_seq = 140", "482,000 training sequences; test MSE 0.0223, 139 of 2,560 wrong (means of 10)"),
         ("T = 100, n_seq = 13", "1,273,000 training sequences; test MSE 0.0139, 14 of 2,560 wrong")),
        dict(timesteps=100, minutes=3.0, eval_every=100, test_size=2000, forget_bias=F1997)),
    "temporal-order": Task(
        "temporal-order", "class of the order of X/Y at t1 in [10, 20], t2 in [50, 60] (4 classes)",
        "Hochreiter & Schmidhuber 1997, 5.6 task 6a", "MSE", False, "classes", 8, 4,
        "every one of 2,000 test sequences classified with all output errors < 0.3 (the paper: average training "
        "error < 0.1 and the 2,000 most recent training sequences right)",
        (("T = 100", "31,390 training sequences (mean of 20 trials)"),),
        dict(timesteps=100, minutes=4.0, eval_every=100, test_size=2000, forget_bias=F1997)),
    "temporal-order-3": Task(
        "temporal-order-3", "class of three X/Y at t in [10, 20], [33, 43], [66, 76] (8 classes)",
        "Hochreiter & Schmidhuber 1997, 5.6 task 6b", "MSE", False, "classes", 8, 8,
        "every one of 2,000 test sequences classified with all output errors < 0.3 (the paper: average training "
        "error < 0.1 and the 2,000 most recent training sequences right)",
        (("T = 100", "571,100 training sequences (mean of 10 trials)"),),
        dict(timesteps=100, minutes=3.0, eval_every=100, test_size=2000, forget_bias=F1997)),
    "copying": Task(
        "copying", "recall 10 symbols of a0..a7 after T blanks and a delimiter", "Arjovsky, Shah & Bengio 2016",
        "nats/step", False, "tokens", 10, 10,
        "test cross-entropy at least 10 % below the memoryless baseline 10 ln 8 / (T + 20)",
        (("T = 100 / 200 / 300 / 500", "LSTM below the baseline only at T = 100 (as we recall it; not confirmed "
                                        "here)"),),
        dict(timesteps=100, minutes=3.0, eval_every=100, lstm_size=64, lr=1e-2, test_size=500)),
    "reber": Task(
        "reber", "embedded Reber strings, next symbol; score: the second-to-last symbol",
        "Hochreiter & Schmidhuber 1997, 5.1", "accuracy", True, "tokens", 7, 7,
        "every long-memory symbol of 1,000 test strings predicted (argmax) correctly (the paper: every symbol of "
        "every training and test string)",
        (("LSTM, 5 settings x 30 trials", "97-100 % of trials solved, after 8,440 to 39,740 training strings on "
                                          "average (Table 1)"),),
        dict(timesteps=0, minutes=1.0, eval_every=100, lstm_size=12, batch_size=32, test_size=1000)),
    "reber-continual": Task(
        "reber-continual", "the strings as one endless stream, trained stateful; score as reber",
        "Gers, Schmidhuber & Cummins 2000", "accuracy", True, "tokens", 7, 7,
        "every long-memory symbol of the test stream predicted (argmax) correctly (the paper: 10 test streams "
        "of 100,000 symbols predicted correctly)",
        (("LSTM without forget gate, 100 networks", "0 % solved"),
         ("LSTM with forget gates", "18 % solved (after 18,889 training streams on average)"),
         ("forget gates and learning-rate decay", "62 % solved (14,087 streams)"),
         ("without forget gate, reset at each string's end", "74 % solved")),
        dict(timesteps=50, minutes=1.0, eval_every=200, lstm_size=12, batch_size=32, test_size=20000)),
}


def list_tasks() -> list[str]:
    """One line per task for ``demo.py tasks``: name, what it asks, metric and baseline at the default T."""
    lines = []
    for t in TASKS.values():
        T = t.defaults.get("timesteps")
        at = f" at T = {T}" if T else ""
        lines.append(f"{t.name:<17} {t.title} ({t.paper}); {t.metric}, baseline {t.baseline(T or 100):.4g}{at}")
    return lines


# =========================================================================== settings


@dataclass(frozen=True)
class TaskSettings:
    """Everything that determines a run (stored in its checkpoint). ``TaskSettings.for_task(name)`` holds
    the task's defaults (``Task.defaults``). timesteps: the minimal length T for the 1997 tasks, the blank
    stretch T for copying, the truncated-BPTT window for reber-continual; 0 for reber (strings set their own
    length). steps: 0 = no limit (the --minutes budget ends the run)."""

    task: str = "adding"
    timesteps: int = 100
    cell: str = "lstm"
    lstm_size: int = 32
    batch_size: int = 64
    lr: float = 1e-2
    clip: float = 1.0
    forget_bias: float = 1.0
    minutes: float = 2.0
    steps: int = 0
    eval_every: int = 50
    test_size: int = 1000
    seed: int = 0
    dtype: str = "float32"

    @classmethod
    def for_task(cls, name, **given) -> "TaskSettings":
        chk.choice("task", name, tuple(TASKS))
        return replace(cls(task=name, **TASKS[name].defaults), **given)

    def check(self) -> "TaskSettings":
        chk.choice("task", self.task, tuple(TASKS))
        for name in ("lstm_size", "batch_size", "eval_every", "test_size"):
            chk.positive_int(name, getattr(self, name))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0 (0: no limit); got {self.steps!r}")
        T = self.timesteps
        if self.task == "reber":
            if T != 0:
                raise ValueError(f"timesteps: reber strings set their own length; leave it out (got {T})")
        else:
            low = {"adding": 2, "adding-1997": 22, "multiplication": 22, "temporal-order": 20,
                   "temporal-order-3": 20, "copying": 1, "reber-continual": 1}[self.task]
            if isinstance(T, bool) or not isinstance(T, int) or T < low:
                raise ValueError(f"timesteps must be an integer >= {low} for {self.task}; got {T!r}")
        chk.choice("cell", self.cell, cell_names())
        for name in ("lr", "clip", "minutes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
        if isinstance(self.forget_bias, bool) or not (isinstance(self.forget_bias, (int, float))
                                                      and math.isfinite(self.forget_bias)):
            raise ValueError(f"forget_bias must be a finite number; got {self.forget_bias!r}")
        chk.resolve_dtype(self.dtype)
        check_memory(self.memory_bytes(), f"task {self.task}, timesteps {T}, lstm_size {self.lstm_size}, "
                                          f"batch_size {self.batch_size}, test_size {self.test_size}")
        return self

    def longest(self) -> int:
        """The longest sequence a training batch can have."""
        T = self.timesteps
        return {"adding": T, "copying": T + 20, "reber": 60, "reber-continual": T}.get(self.task, T + T // 10)

    def memory_bytes(self) -> float:
        """A generous bound on what a run holds: the caches of a training step and of a test evaluation."""
        H, item = self.lstm_size, chk.resolve_dtype(self.dtype).itemsize
        per_step = (16 * H + 16) * item  # gates, states, their gradients and the input, per sequence and step
        train = self.batch_size * self.longest() * per_step
        test = (self.test_size if self.task == "reber-continual" else self.test_size * self.longest()) * per_step
        weights = 4 * (H + TASKS[self.task].input_size + 1) * 4 * H * item  # the (D + H + 1, 4H) weights: value,
        return float(train + test + weights)  # gradient and Adam's two moments


def settings_from_checkpoint(path) -> TaskSettings:
    ck = read_checkpoint(path)
    stored = ck.user.get("settings")
    if ck.user.get("demo") != "task" or not isinstance(stored, dict):
        raise ValueError(f"{ck.path} is a numpylstm checkpoint but not one of 'demo.py task'")
    unknown = sorted(set(stored) - {f.name for f in fields(TaskSettings)})
    if unknown:
        raise ValueError(f"{ck.path}: stored task settings have unknown keys {unknown}")
    return TaskSettings(**stored).check()


# =========================================================================== data and scoring per task


def _batch(s: TaskSettings, rng, dt):
    """One training batch (x, y) of task s.task; rng draws it."""
    T, n = s.timesteps, s.batch_size
    if s.task == "adding":
        return adding_batch(n, T, rng, dt)
    if s.task == "adding-1997":
        return adding_1997_batch(n, T, rng, dt)
    if s.task == "multiplication":
        return multiplication_batch(n, T, rng, dt)
    if s.task in ("temporal-order", "temporal-order-3"):
        x, y = temporal_order_batch(n, T, rng, k=2 if s.task == "temporal-order" else 3)
        return x, y.astype(dt)
    if s.task == "copying":
        return copying_batch(n, T, rng)
    if s.task == "reber":
        return reber_batch(n, rng)
    raise ValueError(f"{s.task} has no independent batches")


def _test_set(s: TaskSettings, dt):
    """The fixed test set: a list of (x, y) groups (one length per group) from rng [seed, 1]."""
    rng = np.random.default_rng([s.seed, 1])
    if s.task == "reber":  # independent strings, grouped by length
        strings = [reber_ids(embedded_reber(rng)) for _ in range(s.test_size)]
        groups = []
        for L in sorted({len(v) for v in strings}):
            ids = np.stack([v for v in strings if len(v) == L])
            groups.append((ids[:, :-1], ids[:, 1:]))
        return groups
    if s.task == "reber-continual":
        ids, long = reber_stream(s.test_size + 1, rng)
        return [(ids[:-1], ids[1:], long[1:])]
    groups, left, size = [], s.test_size, 100
    while left > 0:
        groups.append(_batch(replace(s, batch_size=min(size, left)), rng, dt))
        left -= min(size, left)
    return groups


def _score_regression(s, model, groups):
    err = np.concatenate([model.forward(x)[0].astype(np.float64).ravel() - y.ravel() for x, y in groups])
    out = {"MSE": float(np.mean(err**2)), "wrong": float(np.sum(np.abs(err) >= 0.04))}
    if s.task == "adding":
        out["solved"] = float(out["MSE"] < 0.01)
    elif s.task == "adding-1997":
        out["solved"] = float(out["MSE"] < 0.01 and out["wrong"] == 0)
    else:  # multiplication: fewer than n_seq = 140 wrong of 2,000 (1997, 5.5; scaled to the test size)
        out["solved"] = float(out["wrong"] < 140 * s.test_size / 2000)
    return out


def _score_classes(s, model, groups):
    sq, correct, n = 0.0, 0, 0
    for x, y in groups:
        pred = model.forward(x)[0].astype(np.float64)
        sq += float(np.sum((pred - y) ** 2))
        correct += int(np.sum(np.all(np.abs(pred - y) < 0.3, axis=1)))
        n += y.size
    return {"MSE": sq / n, "correct": correct / s.test_size, "solved": float(correct == s.test_size)}


def _score_copying(s, model, groups, T):
    ce, right, n = 0.0, 0, 0
    for x, y in groups:
        logits = model.forward(x)[0].astype(np.float64)  # (n, T + 20, 10)
        z = logits - logits.max(axis=2, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
        ce -= float(np.take_along_axis(logp, y[..., None], axis=2).sum())
        right += int(np.sum(logits[:, T + 10 :].argmax(axis=2) == y[:, T + 10 :]))
        n += y.size
    value = ce / n
    return {"nats/step": value, "recall": right / (10 * s.test_size),
            "solved": float(value < 0.9 * copying_baseline(T))}  # clearly below (M6), not a fluctuation


def _score_reber(s, model, groups):
    right, n, legal, total = 0, 0, 0, 0
    for x, y in groups:
        guess = model.forward(x)[0].argmax(axis=2)  # (n, L - 1)
        right += int(np.sum(guess[:, -2] == y[:, -2]))  # y[:, L - 3]: the second-to-last symbol
        n += len(y)
        legal += _legal_count(x, guess)
        total += guess.size
    return {"accuracy": right / n, "legal": legal / total, "solved": float(right == n)}


def _legal_count(x, guess):
    """How many argmax guesses are a symbol the grammar allows next (``next_symbols``)."""
    ok = 0
    for row_x, row_g in zip(x, guess):
        s = "".join(REBER[i] for i in row_x) + "E"  # the input lacks only the final E
        allowed = next_symbols(s)
        ok += sum(REBER[g] in a for g, a in zip(row_g, allowed))
    return ok


CHUNK = 500  # symbols per forward call over the test stream: |c| is sampled at every chunk boundary


def _score_stream(s, model, ids, targets, long):
    """Run the test stream through the model as one sequence (N = 1, state carried chunk to chunk from
    zeros); accuracy on the long-memory symbols and mean |c| at each chunk boundary.

    The mean |c| is what (M8) and (M9) are about: with f = 1 nothing but the input gate's own choices keeps
    c_t from a running sum over the whole stream; a forget gate bounds it."""
    state, right, n, trace = None, 0, 0, []
    for a in range(0, len(ids), CHUNK):
        y, state = model.forward(ids[None, a : a + CHUNK], state)
        guess = y[0].argmax(axis=1)
        mask = long[a : a + CHUNK]
        right += int(np.sum(guess[mask] == targets[a : a + CHUNK][mask]))
        n += int(mask.sum())
        trace.append(float(np.mean(np.abs(state[:, 0].astype(np.float64)))))
    trace = np.asarray(trace)
    tenth = max(1, len(trace) // 10)
    return ({"accuracy": right / max(n, 1), "solved": float(n > 0 and right == n), "|c| start": float(trace[:tenth].mean()),
             "|c| end": float(trace[-tenth:].mean())}, trace)


def _has_cell_state(cell) -> bool:
    try:
        from .. import cells

        return bool(cells.get(cell).has_cell_state)
    except ImportError:  # before the cells package: "lstm" and "rnn"
        return cell != "rnn"
    except Exception:
        return cell not in ("rnn", "gru")


# =========================================================================== plot


def _history(path):
    """(settings, [(step, seconds, metrics)], c trace or None) of a task checkpoint."""
    ck = read_checkpoint(path)
    s = settings_from_checkpoint(path)
    evals = ck.user.get("trainer", {}).get("evals", [])
    trace = ck.extra.get("c_trace")
    return s, [(int(st), float(m["seconds"]), m) for st, m in evals], trace


def plot_task(out, task) -> Path | None:
    """DIR/<task>.png: the metric against training time for every DIR/<cell>.npz of this task, with the
    baseline; for reber-continual also the mean |c| along the test stream."""
    from .plots import _figure, _save

    out, t = Path(out), TASKS[task]
    runs = []
    for path in sorted(out.glob("*.npz")):
        try:
            s, hist, trace = _history(path)
        except (ValueError, OSError, KeyError):
            continue  # not a run of 'demo.py task'
        if s.task == task and hist:
            runs.append((path.stem, s, hist, trace))
    if not runs:
        return None
    fig, ax = _figure(8.0, 4.5 if task != "reber-continual" else 7.5)
    ax2 = None
    if task == "reber-continual":  # two panels: the accuracy, and |c| along the test stream
        ax.remove()
        ax, ax2 = fig.subplots(2, 1)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#000000"]
    for k, (name, s, hist, trace) in enumerate(runs):
        v = hist[-1][2][t.metric]
        seqs = hist[-1][0] * s.batch_size
        unit = "symbols" if task == "reber-continual" else "sequences"
        seqs = seqs * s.timesteps if task == "reber-continual" else seqs
        who = s.cell + (f" ({name}.npz)" if name != s.cell else "") + (
            f", forget bias {s.forget_bias:g}" if s.forget_bias != 1.0 else "")
        ax.plot([h[1] for h in hist], [h[2][t.metric] for h in hist], "-", color=colours[k % len(colours)],
                label=f"{who}, H = {s.lstm_size}: {v:.3g} after {seqs:,} {unit}")
        if ax2 is not None and trace is not None and len(trace):
            ax2.plot(np.arange(1, len(trace) + 1) * CHUNK, trace, color=colours[k % len(colours)], label=who)
    T = runs[-1][1].timesteps
    ax.axhline(t.baseline(T), color="#555555", linestyle="--", linewidth=1,
               label=f"memoryless baseline {t.baseline(T):.4g}")
    if t.metric != "accuracy":
        ax.set_yscale("log")
    ax.set_xlabel("training time (s), evaluations excluded")
    ax.set_ylabel(f"test {t.metric}")
    ax.set_title(f"{task} ({t.paper})" + (f", T = {T}" if T else ""))
    ax.legend(loc="best", fontsize=7)
    if ax2 is not None:
        if ax2.lines:
            ax2.set_yscale("log")
        ax2.set_xlabel("position in the test stream (symbols)")
        ax2.set_ylabel("mean |c| over units")
        ax2.set_title("the cell state along the test stream (never reset)")
        if ax2.lines:
            ax2.legend(loc="best", fontsize=7)
        else:
            ax2.text(0.5, 0.5, "no run of a cell with a cell state in this folder", ha="center",
                     transform=ax2.transAxes)
    return _save(fig, out / f"{task}.png")


# =========================================================================== run


class TaskProgress(Progress):
    """The trainer's progress line: step, sequences seen, training loss, rate, time, the test metric."""

    def __init__(self, *a, metric, per_step, unit, **k):
        super().__init__(*a, **k)
        self.metric, self.per_step, self.unit = metric, per_step, unit

    def line(self, step, losses, metrics=None) -> str:
        recent = losses[-self.window :]
        loss = sum(recent) / len(recent) if recent else float("nan")
        text = (f"step {step}  {step * self.per_step:,} {self.unit}  train loss {loss:.4f}  "
                f"{self.rate(step):5.1f} steps/s  elapsed {format_seconds(self.elapsed())}")
        if metrics and self.metric in metrics:
            text += f"  test {self.metric} {metrics[self.metric]:.4f}"
        return text


def build_model(s: TaskSettings):
    t = TASKS[s.task]
    head = "last" if t.kind in ("regression", "classes") else "all"
    loss = "mse" if t.kind in ("regression", "classes") else "softmax_ce"
    return LSTMModel(t.input_size, s.lstm_size, t.output_size, head=head, loss=loss, forget_bias=s.forget_bias,
                     seed=s.seed, dtype=chk.resolve_dtype(s.dtype), cell=s.cell)


def run_task(s: TaskSettings, *, out=None, resume=None, overwrite=False, plot=True, quiet=False,
             stream=None) -> int:
    """Train one cell on one task; the last line printed is
    ``test <metric>: <value> (baseline <value>; solved: yes|no by the paper's criterion)``.

    Saves DIR/<cell>.npz (an existing one only when it is the ``resume`` file or with ``overwrite``; a file
    that is not a numpylstm checkpoint never); exit status 0, 1 (diverged / checkpoint not written), or
    128 + signal (Ctrl-C: 130, after saving).
    """
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    s.check()
    t = TASKS[s.task]
    out = Path(out if out is not None else f"runs/tasks/{s.task}")
    ckpt = out / f"{s.cell}.npz"
    check_replaceable(ckpt, overwrite=overwrite, own=resume, flag=f"--out {out}: the {s.cell} checkpoint")
    dt = chk.resolve_dtype(s.dtype)
    model = build_model(s)
    opt = Adam(model.params, lr=s.lr)
    groups = _test_set(s, dt)
    T = s.timesteps
    baseline = t.baseline(T)
    continual = s.task == "reber-continual"
    streams = [ReberStream([s.seed, 0, r]) for r in range(s.batch_size)] if continual else None
    spent, clock, eval_time = [0.0], [None], [0.0]
    trainer = None

    def batches(step):
        if continual:  # each row continues its own endless stream: symbols step*T .. (step+1)*T (+1 target)
            ids = np.stack([st.take(step * T, (step + 1) * T + 1) for st in streams])
            return ids[:, :-1], ids[:, 1:]
        return _batch(s, np.random.default_rng([s.seed, 0, step]), dt)

    def evaluate(m):
        start = time.perf_counter()
        seconds = spent[0] + start - clock[0] - eval_time[0]  # training seconds, evaluations excluded
        if t.kind == "regression":
            res = _score_regression(s, m, groups)
        elif t.kind == "classes":
            res = _score_classes(s, m, groups)
        elif s.task == "copying":
            res = _score_copying(s, m, groups, T)
        elif s.task == "reber":
            res = _score_reber(s, m, groups)
        else:
            res, trace = _score_stream(s, m, *groups[0])
            if _has_cell_state(s.cell):
                trainer.extra["c_trace"] = trace
            else:
                res.pop("|c| start"), res.pop("|c| end")
        eval_time[0] += time.perf_counter() - start
        res["seconds"] = seconds
        return res

    per_step = s.batch_size * (T if continual else 1)
    unit = "symbols" if continual else "sequences"
    progress = TaskProgress(STEPS_CAP, stream=stream, enabled=not quiet, every=s.eval_every * 4, metric=t.metric,
                            per_step=per_step, unit=unit)
    trainer = Trainer(model, opt, batches, STEPS_CAP, schedule=constant_lr(s.lr), clip_norm=s.clip,
                      stateful=continual, eval_fn=evaluate, eval_every=s.eval_every, checkpoint_path=ckpt,
                      checkpoint_every=0, user={"demo": "task", "settings": asdict(s)}, progress=progress)
    say(f"task {s.task} ({t.paper}): " + (f"T = {T}, " if T else "") + f"{s.cell}, H = {s.lstm_size}, "
        f"{model.num_params():,} parameters, {s.dtype}, seed {s.seed}")
    budget = f"{s.minutes:g} minutes" + (f" or {s.steps} steps" if s.steps else "")
    what = (f"{s.batch_size} streams x {T} symbols per step, state carried (never reset), truncated BPTT"
            if continual else f"batch {s.batch_size} fresh sequences per step")
    say(f"  Adam lr {s.lr:g}, clip {s.clip:g}, forget bias {s.forget_bias:g}, {what}, {budget}")
    test_what = f"a test stream of {s.test_size:,} symbols" if continual else f"{s.test_size:,} test sequences"
    say(f"  memoryless baseline: {t.metric} {baseline:.4f}; the paper's criterion: {t.criterion}; {test_what}")
    if resume is not None:
        ck = trainer.resume(resume)
        spent[0] = trainer.evals[-1][1]["seconds"] if trainer.evals else 0.0
        say(f"resumed from {resume} at step {ck.step} ({format_seconds(spent[0])} of training so far)")
    clock[0] = time.perf_counter()
    if not trainer.evals:
        trainer._evaluate()  # the score before training, at 0 s
    stop_at = s.steps if s.steps else None
    if stop_at is not None and trainer.step >= stop_at:
        stop_at = trainer.step
    result, code = run_for_cli(trainer, resume, time_limit=max(0.0, s.minutes * 60.0 - spent[0]), stop_at=stop_at)
    if code is not None:
        return code
    final = trainer.evals[-1][1]
    say(f"trained {result.step} steps ({result.step * per_step:,} {unit}) in {final['seconds']:.1f} s "
        f"(evaluations excluded); checkpoint: {result.checkpoint}")
    first = next(((st, m) for st, m in trainer.evals if m.get("solved")), None)
    if first is not None:
        say(f"first solved at step {first[0]} ({first[0] * per_step:,} {unit}), after {first[1]['seconds']:.1f} s "
            f"of training")
    else:
        say("not solved by the paper's criterion at any evaluation")
    extras = {k: v for k, v in final.items() if k not in (t.metric, "seconds", "solved", "|c| start", "|c| end")}
    if extras:
        say("  " + ", ".join(f"{k} {_fmt(k, v)}" for k, v in extras.items()))
    if continual:
        if "|c| start" in final:
            say(f"mean |c| over the test stream: {final['|c| start']:.4g} (first tenth) -> {final['|c| end']:.4g} "
                f"(last tenth)")
        else:
            say(f"mean |c|: {s.cell} has no cell state")
    if plot:
        from .plots import PlotsUnavailable

        try:
            say(f"plot: {plot_task(out, s.task)}")
        except PlotsUnavailable as exc:
            say(f"plot skipped: {exc}")
    solved = "yes" if final["solved"] else "no"
    print(f"test {t.metric}: {final[t.metric]:.6g} (baseline {baseline:.6g}; solved: {solved} by the paper's "
          f"criterion)", file=stream, flush=True)
    return 0


def _fmt(key, value):
    if key == "wrong":
        return f"{int(value)}"
    return f"{value:.4g}"


# =========================================================================== command line (demo.py task / tasks)

_RUN_FLAGS = ("timesteps", "cell", "lstm_size", "batch_size", "lr", "clip", "forget_bias", "minutes", "steps",
              "eval_every", "test_size", "seed", "dtype")


def _arg_float(positive=True):
    import argparse

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or (positive and value <= 0):
            raise argparse.ArgumentTypeError(f"must be a finite number{' > 0' if positive else ''}, got {text}")
        return value

    return parse


def _existing(text):
    import argparse

    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def add_task_flags(p):
    """The flags of ``demo.py task NAME``."""
    p.epilog = ("Each task prints its memoryless baseline before training and ends with 'test <metric>: <value> "
                "(baseline <value>; solved: yes|no by the paper's criterion)'. Run it once per cell: DIR/<task>.png "
                "draws every DIR/<cell>.npz. 'python demo.py tasks' lists the tasks; docs/tasks.md and "
                "derivations/13_memory_tasks.md explain them. Defaults depend on the task (see docs/tasks.md).")
    p.add_argument("name", metavar="NAME", choices=tuple(TASKS), help="the task: " + ", ".join(TASKS))
    g = p.add_argument_group("the task and the model")
    g.add_argument("--cell", choices=cell_names(), help="the recurrent layer (default lstm)")
    g.add_argument("--timesteps", type=int_at_least(1), metavar="T",
                   help="the paper's T: minimal length (1997 tasks), blanks (copying), truncated-BPTT window "
                        "(reber-continual); not for reber")
    g.add_argument("--lstm-size", type=int_at_least(1), metavar="H", help="hidden units H")
    g.add_argument("--batch-size", type=int_at_least(1), metavar="N",
                   help="sequences per training step (streams for reber-continual)")
    g.add_argument("--lr", type=_arg_float(), help="learning rate of Adam, constant")
    g.add_argument("--clip", type=_arg_float(), metavar="NORM", help="clip gradients to this global L2 norm")
    g.add_argument("--forget-bias", type=_arg_float(positive=False), metavar="B",
                   help="added to the forget gates' bias at initialisation (default 5 for the 1997 tasks, "
                        "1 otherwise; cells without a forget gate ignore it)")
    g.add_argument("--seed", type=int_at_least(0), help="seeds the weights and the data (default 0)")
    g.add_argument("--dtype", choices=("float32", "float64"), help="precision (default float32)")
    g = p.add_argument_group("budget and evaluation")
    g.add_argument("--minutes", type=_arg_float(), metavar="M", help="training budget in minutes of wall time")
    g.add_argument("--steps", type=int_at_least(1), metavar="STEPS",
                   help="stop after this many training steps even if minutes remain (default: no limit)")
    g.add_argument("--eval-every", type=int_at_least(1), metavar="STEPS", help="steps between test evaluations")
    g.add_argument("--test-size", type=int_at_least(1), metavar="K",
                   help="test sequences (strings for reber; symbols of the test stream for reber-continual)")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR",
                   help="folder for DIR/<cell>.npz and DIR/<task>.png (default runs/tasks/NAME; with --resume, "
                        "the folder of the --resume file)")
    g.add_argument("--resume", type=_existing, metavar="FILE",
                   help="continue the run saved in FILE (e.g. after Ctrl-C) with its settings, up to --minutes "
                        "(and --steps) in total")
    g.add_argument("--overwrite", action="store_true", help="replace an existing DIR/<cell>.npz")
    g.add_argument("--no-plot", action="store_true", help="do not draw DIR/<task>.png")
    g.add_argument("--quiet", action="store_true", help="print only the final 'test ...' line")


def run_task_command(args, parser, check_writable=None):
    """``demo.py task``: flags -> settings (or the --resume checkpoint's), checks, ``run_task``."""
    given = {k: getattr(args, k) for k in _RUN_FLAGS if getattr(args, k) is not None}
    if args.resume:
        try:
            settings = settings_from_checkpoint(args.resume)
        except (ValueError, OSError) as exc:
            parser.error(f"--resume: {exc}")
        if settings.task != args.name:
            parser.error(f"--resume {args.resume} is a run of task {settings.task}, not {args.name}")
        budget = {k: given.pop(k) for k in ("minutes", "steps") if k in given}
        clashes = [f"--{k.replace('_', '-')} {v} (checkpoint has {getattr(settings, k)})"
                   for k, v in given.items() if v != getattr(settings, k)]
        if clashes:
            parser.error("--resume continues a run with its own settings; these flags differ: " + ", ".join(clashes))
        settings = replace(settings, **budget)
        out = Path(args.out) if args.out else Path(args.resume).parent
        if Path(args.resume).resolve() != (out / f"{settings.cell}.npz").resolve():
            parser.error(f"--resume {args.resume}: a task run saves to DIR/{settings.cell}.npz; give --out DIR of "
                         f"that file")
    else:
        try:
            settings = TaskSettings.for_task(args.name, **given)
        except ValueError as exc:
            parser.error(str(exc))
        out = Path(args.out or f"runs/tasks/{args.name}")
    if check_writable is not None:
        check_writable(parser, "--out", out, folder=True)
    try:
        settings.check()
        check_replaceable(out / f"{settings.cell}.npz", overwrite=args.overwrite, own=args.resume,
                          flag=f"--out {out}: the {settings.cell} checkpoint", also=" (or choose another --out)")
        return run_task(settings, out=out, resume=args.resume, overwrite=args.overwrite, plot=not args.no_plot,
                        quiet=args.quiet)
    except ValueError as exc:
        parser.error(str(exc))


def add_tasks_flags(p):
    p.epilog = "Run one with 'python demo.py task NAME'; see docs/tasks.md."


def run_tasks_command(args, parser):
    for line in list_tasks():
        print(line)
    return 0
