"""Input validation shared by every public function.

Every user mistake should surface here as a ``ValueError`` that names the argument, the shape expected in
N/T/D/H terms and what was received -- never as a broadcasting error from deep inside NumPy.

The rule for numbers, applied everywhere (this is the one place it is written down):

1. **Float data** -- x, targets y for ``mse``, state, h0/c0, the weights handed to ``lstm_forward``,
   dhs/dhT/dcT, dropout masks, the state dicts of ``interop``: any real array-like is accepted -- nested
   lists, NumPy arrays of any integer or float width (float16 too), non-contiguous views -- and converted
   to the dtype of the computation (the model's dtype; for one layer the dtype of Wh; float64 where nothing
   fixes it). **Bools are refused** (``True`` is a truth value, not a measurement: a bool array where data
   belongs is a mix-up, e.g. a comparison passed instead of the values). Complex, strings, objects and
   ``None`` are refused.
2. **Integer data** -- token ids x and class targets y for ``softmax_ce``: any signed or unsigned integer
   dtype, each value in range. Floats are refused even when they hold whole numbers (3.0 where an id
   belongs means data and labels were swapped), and so are bools.
3. **Scalars** -- sizes (N, T, D, H, L, O, layer counts) are Python or NumPy integers >= 1; real-valued
   hyper-parameters are Python or NumPy real numbers, finite and in range. Bools are refused as both.
   Flags (``train``, ``input_grads``) must be ``True`` or ``False``.
4. **Arrays updated in place** -- ``LSTMModel.params`` and an optimizer's params -- are never converted,
   since the caller and the optimizer hold references to them: they must already be float32/float64 (for a
   model: exactly the model's dtype) and have the right shape.
5. **Sizes** -- every N, T, D, H, ... must be >= 1: empty arrays (N = 0 or T = 0) are refused.
6. **Finiteness** -- every input array must be finite, checked *after* the conversion of rule 1, so a
   float64 1e300 handed to a float32 model is reported. Deliberate exceptions, where a non-finite value is
   an answer rather than a mistake: ``sigmoid`` (elementwise, like ``np.tanh``: +-inf are fine, NaN
   propagates); predictions handed to the losses and ``LSTMModel.params`` (a diverged run shows up as a
   NaN/inf loss, which the training loop reports); ``clip_grad_norm`` (returns inf/nan as its signal).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_dtype(dtype) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy deprecation warnings for odd aliases such as "a"
            dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def positive_int(name: str, value) -> int:
    """An integer >= 1 (rule 3: Python or NumPy integers; bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def flag(name: str, value) -> bool:
    """True or False (rule 3); a truthy string such as "no" would otherwise silently mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def choice(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def fmt_shape(letters, sizes) -> str:
    """``fmt_shape("NTD", (None, 20, 1))`` -> ``'(N, T, D) = (?, 20, 1)'``.

    ``letters``: one axis name per character, or a tuple of names such as ``("D", "4H")``.
    """
    comma = "," if len(sizes) == 1 else ""
    names = ", ".join(letters)
    vals = ", ".join("?" if s is None else str(s) for s in sizes)
    return f"({names}{comma}) = ({vals}{comma})"


def describe(value) -> str:
    """A short description of something that is not an array, for messages."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}" if np.isscalar(value) or value is None else type(value).__name__


def as_array(name: str, value) -> np.ndarray:
    """``np.asarray`` with a message naming the argument when the value cannot become an array (ragged)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a numeric array; could not convert it ({exc})") from exc


def numeric(name: str, value, dtype=None) -> np.ndarray:
    """Rule 1: a real floating ndarray; ints (and float16) are converted, bools and non-numbers refused.

    ``dtype`` None keeps float32/float64 input as it is and turns other ints/floats into float64.
    """
    arr = as_array(name, value)
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind == "O" and arr.ndim == 0:  # None, a dict, any other object
            got = describe(arr.item())
        elif isinstance(value, str) or arr.dtype.kind == "O":
            got = describe(value)
        else:
            got = f"dtype {arr.dtype}"
        hint = " (bools are not accepted as numbers: convert with .astype(float) if you mean 0/1)" \
            if arr.dtype.kind == "b" else ""
        raise ValueError(f"{name} must be a real numeric array; got {got}{hint}")
    with np.errstate(over="ignore"):  # 1e300 -> float32 becomes inf, which ``finite`` then reports
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        elif arr.dtype not in FLOAT_DTYPES:
            arr = arr.astype(np.float64)
    return arr


def all_finite(arr: np.ndarray) -> bool:
    """True if every entry is finite. Fast path: the sum of finite numbers is finite unless it overflows,
    so only a non-finite sum needs the exact (allocating) elementwise test."""
    if arr.dtype.kind in "iub":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(arr.sum()):
            return True
    return bool(np.isfinite(arr).all())


def finite(name: str, arr: np.ndarray) -> np.ndarray:
    if not all_finite(arr):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s) (as {arr.dtype}); "
                         "all entries must be finite")
    return arr


def _shape_problem(shape, letters: str, expected) -> str | None:
    """Why ``shape`` does not fit ``letters``/``expected``, in words, or None if it fits."""
    if len(shape) != len(letters):
        return f"a {len(shape)}-D array of shape {tuple(shape)}, expected {len(letters)}-D"
    for ax, (letter, s, e) in enumerate(zip(letters, shape, expected)):
        label = f"axis {ax}" if letter.isdigit() else letter
        if e is not None and s != e:
            return f"shape {tuple(shape)}: {label} is {s}, expected {e}"
        if s < 1:
            return f"shape {tuple(shape)}: {label} is {s}, and every size must be >= 1 (empty arrays are refused)"
    return None


def shaped(name: str, arr: np.ndarray, letters: str, expected) -> np.ndarray:
    """Check rank and sizes; ``expected`` holds a size per letter, or None where any size >= 1 is fine."""
    problem = _shape_problem(arr.shape, letters, expected)
    if problem is not None:
        hint = ""
        if (len(expected) >= 2 and expected[-1] == 1 and arr.ndim == len(letters) - 1
                and _shape_problem(arr.shape, letters[:-1], expected[:-1]) is None):
            hint = f" (add the trailing axis of size {letters[-1]} = 1: {name}[..., None])"
        raise ValueError(f"{name} must have shape {fmt_shape(letters, expected)}; got {problem}{hint}")
    return arr


def array(name: str, value, letters: str, expected, dtype=None) -> np.ndarray:
    """numeric + shaped + finite, in that order."""
    return finite(name, shaped(name, numeric(name, value, dtype), letters, expected))


def token_ids(name: str, value, letters: str, expected, vocab: int) -> np.ndarray:
    """Rule 2: integer ids of the given shape, each in [0, vocab)."""
    arr = as_array(name, value)
    if arr.dtype.kind not in "iu":
        got = describe(arr.item()) if arr.dtype.kind == "O" and arr.ndim == 0 else f"dtype {arr.dtype}"
        raise ValueError(f"{name} must hold integer ids (token or class ids, any int dtype); got {got}")
    shaped(name, arr, letters, expected)
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{name} holds ids outside [0, {vocab}): min {lo}, max {hi}")
    return arr.astype(np.intp, copy=False)


def layer_inputs(x, h0, c0, Wx, Wh, b, gates=4):
    """The arguments of one layer's ``lstm_forward`` (textbook or fast), checked and converted.

    Wh (H, 4H) fixes H and the dtype; Wx (D, 4H); b (4H,); x (N, T, D) floats, or (N, T) integer token ids
    in [0, D) (a one-hot input, (E1)); h0, c0 (N, H) or None. Returns them in that order. ``gates=1``
    checks a plain RNN's (H, H), (D, H), (H,) weights instead (pass c0=None).
    """
    G = "4H" if gates == 4 else "H"
    Wh = numeric("Wh", Wh)
    dt = Wh.dtype
    if Wh.ndim != 2 or Wh.shape[0] < 1 or Wh.shape[1] != gates * Wh.shape[0]:
        raise ValueError(f"Wh must have shape (H, {G}) with H >= 1; got shape {tuple(Wh.shape)}")
    H = Wh.shape[0]
    finite("Wh", Wh)
    Wx = array("Wx", Wx, ("D", G), (None, gates * H), dt)
    b = array("b", b, (G,), (gates * H,), dt)
    xa = as_array("x", x)
    if xa.ndim == 2 and xa.dtype.kind in "iu":
        x = token_ids("x", xa, "NT", (None, None), Wx.shape[0])
    else:
        x = array("x", xa, "NTD", (None, None, Wx.shape[0]), dt)
    N = x.shape[0]
    if h0 is not None:
        h0 = array("h0", h0, "NH", (N, H), dt)
    if c0 is not None:
        c0 = array("c0", c0, "NH", (N, H), dt)
    return x, h0, c0, Wx, Wh, b


def layer_grads_in(dhs, T, N, H, dt, dhT=None, dcT=None):
    """The upstream gradients of one layer's ``lstm_backward``: dhs (N, T, H), dhT and dcT (N, H) or None."""
    dhs = array("dhs", dhs, "NTH", (N, T, H), dt)
    if dhT is not None:
        dhT = array("dhT", dhT, "NH", (N, H), dt)
    if dcT is not None:
        dcT = array("dcT", dcT, "NH", (N, H), dt)
    return dhs, dhT, dcT
