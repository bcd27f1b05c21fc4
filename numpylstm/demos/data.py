"""The sine-prediction data set of the TF-1 tutorial, and a reproducible mini-batch sampler.

The tutorial's numbers are the defaults: ``training_examples=10000``, ``testing_examples=1000``,
``sample_gap=0.01``, ``timesteps=20``. Two curves are sampled from sin:

* training: ``linspace(0, test_start, training_examples + timesteps)`` with
  ``test_start = (training_examples + timesteps) * sample_gap``;
* testing: ``linspace(test_start, test_end, testing_examples + timesteps)`` with
  ``test_end = test_start + (testing_examples + timesteps) * sample_gap``.

Each example is a window of T = ``timesteps`` consecutive values and its target is the value right after it,
so a curve of length S gives S - T examples: exactly ``training_examples`` and ``testing_examples``.
Inputs have shape (N, T, 1) -- T timesteps of one feature, not one timestep of T features -- and targets
(N, 1), like the tutorial's placeholders ``[None, timesteps, 1]`` and ``[None, 1]``.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .. import _checks as chk

__all__ = ["SineData", "sine_curves", "make_windows", "sine_data", "batch_indices", "BatchSampler"]


class SineData(NamedTuple):
    """Windows and targets of both curves, plus where each target sits on the time axis.

    train_x (N, T, 1), train_y (N, 1), test_x (M, T, 1), test_y (M, 1); train_t (N,), test_t (M,) are the
    abscissae of the targets (for plotting predictions against time).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_t: np.ndarray
    test_t: np.ndarray


def _positive_real(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def sine_curves(training_examples=10000, testing_examples=1000, sample_gap=0.01, timesteps=20):
    """The tutorial's two sampled curves: ((train_t, train_seq), (test_t, test_seq)), 1-D float64 arrays.

    train_t has training_examples + timesteps points from 0 to test_start (both included); test_t has
    testing_examples + timesteps points from test_start to test_end (both included).
    """
    n_train = chk.positive_int("training_examples", training_examples)
    n_test = chk.positive_int("testing_examples", testing_examples)
    T = chk.positive_int("timesteps", timesteps)
    gap = _positive_real("sample_gap", sample_gap)
    test_start = (n_train + T) * gap
    test_end = test_start + (n_test + T) * gap
    train_t = np.linspace(0.0, test_start, n_train + T)
    test_t = np.linspace(test_start, test_end, n_test + T)
    return (train_t, np.sin(train_t)), (test_t, np.sin(test_t))


def make_windows(seq, timesteps, dtype=np.float64):
    """Cut a 1-D sequence of length S into S - T windows: x (S-T, T, 1) and next values y (S-T, 1).

    x[i, :, 0] = seq[i : i + T] and y[i, 0] = seq[i + T].
    """
    T = chk.positive_int("timesteps", timesteps)
    dt = chk.resolve_dtype(dtype)
    seq = chk.numeric("seq", seq)
    if seq.ndim != 1 or seq.shape[0] <= T:
        raise ValueError(f"seq must be a 1-D array longer than timesteps = {T}; got shape {tuple(seq.shape)}")
    chk.finite("seq", seq)
    N = seq.shape[0] - T
    # row i of the (N, T) window matrix is seq[i : i + T]: a strided view, copied once into the result
    windows = np.lib.stride_tricks.sliding_window_view(seq[:-1], T)
    x = np.ascontiguousarray(windows, dtype=dt).reshape(N, T, 1)
    y = np.ascontiguousarray(seq[T:], dtype=dt).reshape(N, 1)
    return x, y


def sine_data(training_examples=10000, testing_examples=1000, sample_gap=0.01, timesteps=20, dtype=np.float64):
    """The full data set as a ``SineData``: (training_examples, T, 1) windows etc., in ``dtype``."""
    (train_t, train_seq), (test_t, test_seq) = sine_curves(training_examples, testing_examples, sample_gap,
                                                           timesteps)
    train_x, train_y = make_windows(train_seq, timesteps, dtype)
    test_x, test_y = make_windows(test_seq, timesteps, dtype)
    return SineData(train_x, train_y, test_x, test_y, train_t[timesteps:], test_t[timesteps:])


def batch_indices(step, n_examples, batch_size, seed):
    """Indices of the examples in mini-batch number ``step`` (0-based): shuffled epochs, no replacement.

    Epoch e is the permutation drawn by ``np.random.default_rng([seed, e])``; batches are consecutive
    slices of the concatenated epochs (a batch may straddle two epochs). Being a pure function of
    (step, seed), the batch order needs no saved state: a resumed run sees the same batches.
    """
    n = chk.positive_int("n_examples", n_examples)
    B = chk.positive_int("batch_size", batch_size)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be a non-negative integer; got {step!r}")
    start = int(step) * B
    out = np.empty(B, dtype=np.intp)
    filled = 0
    while filled < B:
        epoch, offset = divmod(start + filled, n)
        perm = _permutation(seed, epoch, n)
        take = min(B - filled, n - offset)
        out[filled : filled + take] = perm[offset : offset + take]
        filled += take
    return out


_PERM_CACHE: dict = {}


def _permutation(seed, epoch, n):
    key = (seed, epoch, n)
    perm = _PERM_CACHE.get(key)
    if perm is None:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
        _PERM_CACHE[key] = perm
    return perm


class BatchSampler:
    """``sampler(step) -> (x[idx], y[idx])``: the mini-batch for a training step, see ``batch_indices``.

    x (N, ...) and y (N, ...) share their first axis; every batch has exactly ``batch_size`` rows.
    """

    def __init__(self, x, y, batch_size, seed=0):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
            raise ValueError(f"x and y must share their first axis N >= 1; got shapes {x.shape} and {y.shape}")
        self.x, self.y = x, y
        self.batch_size = chk.positive_int("batch_size", batch_size)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        self.seed = int(seed)

    def __call__(self, step):
        idx = batch_indices(step, self.x.shape[0], self.batch_size, self.seed)
        return self.x[idx], self.y[idx]
