"""Input validation shared by every public function.

Every user mistake should surface here as a ``ValueError`` that names the argument, the shape expected in
N/T/D/H terms and what was received -- never as a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def resolve_dtype(dtype) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise ValueError."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def positive_int(name: str, value) -> int:
    """An integer >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def fmt_shape(letters: str, sizes) -> str:
    """``fmt_shape("NTD", (None, 20, 1))`` -> ``'(N, T, D) = (?, 20, 1)'``."""
    names = ", ".join(letters)
    vals = ", ".join("?" if s is None else str(s) for s in sizes)
    return f"({names}) = ({vals})"


def numeric(name: str, value, dtype=None) -> np.ndarray:
    """Convert to a floating ndarray; ints and bools become floats, anything else non-numeric is refused.

    ``dtype`` None keeps float32/float64 input as it is and turns ints/bools into float64.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a numeric array; could not convert it ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype.kind != "f" or arr.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        arr = arr.astype(np.float64)
    return arr


def finite(name: str, arr: np.ndarray) -> np.ndarray:
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); all entries must be finite")
    return arr


def shaped(name: str, arr: np.ndarray, letters: str, expected) -> np.ndarray:
    """Check rank and sizes; ``expected`` holds a size per letter, or None where any size >= 1 is fine."""
    if arr.ndim != len(letters) or any(
        (e is not None and s != e) or s < 1 for s, e in zip(arr.shape, expected)
    ):
        raise ValueError(
            f"{name} must have shape {fmt_shape(letters, expected)}; got shape {tuple(arr.shape)}"
        )
    return arr


def array(name: str, value, letters: str, expected, dtype=None) -> np.ndarray:
    """numeric + shaped + finite, in that order."""
    return finite(name, shaped(name, numeric(name, value, dtype), letters, expected))


def token_ids(name: str, value, letters: str, expected, vocab: int) -> np.ndarray:
    """Integer token ids of the given shape, each in [0, vocab)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    shaped(name, arr, letters, expected)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(
            f"{name} holds ids outside [0, {vocab}): min {arr.min()}, max {arr.max()}"
        )
    return arr.astype(np.intp, copy=False)
