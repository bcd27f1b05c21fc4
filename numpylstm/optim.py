"""Optimizers that update a dict of parameter arrays in place, and global-norm gradient clipping.

Derivation: derivations/07_optimizers.md (labels O1-O6). Every line below that implements an equation names it.

``params`` and ``grads`` are dicts ``str -> np.ndarray`` with the same keys and, key by key, the same shape
(any shape, e.g. Wx (D, 4H), Wh (H, 4H), b (4H,)). Parameters must be float32 or float64; an optimizer's state
arrays have the dtype of their parameter, so float32 training stays float32. ``step`` writes into the caller's
arrays (``params[k]`` is never rebound, since the model holds references to the same arrays) and allocates
nothing per element: all work buffers are created once in ``__init__``.

The optimizer keeps the dict it was given: if the caller later puts a new array into it
(``model.params["head.b"] = np.zeros(1, np.float32)``), the next ``step`` updates that new array -- same
shape and dtype required, else a ``ValueError`` names the key -- instead of silently training an array
nobody uses any more. (Assigning a whole new dict, ``model.params = {...}``, copies the values into the
model's arrays: see ``LSTMModel.params``.)

``state_dict()`` returns a flat ``dict[str, np.ndarray]`` of copies -- buffers under ``"<buffer>/<param key>"``
and the step counter under ``"t"`` (0-d int64) -- so ``np.savez(path, **opt.state_dict())`` works without
pickle. Hyperparameters (lr, momentum, betas, eps) are not part of the state: they are constructor
arguments, and ``lr`` belongs to whatever schedule the training loop runs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["Optimizer", "SGD", "Adagrad", "Adam", "clip_grad_norm"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- argument checks


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def _positive_finite(name: str, value) -> float:
    v = _real(name, value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _unit_interval(name: str, value) -> float:
    """A number in [0, 1)."""
    v = _real(name, value)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return v


def _check_params(params) -> dict[str, np.ndarray]:
    if not isinstance(params, Mapping) or len(params) == 0:
        raise ValueError(f"params must be a non-empty dict of str -> np.ndarray; got {type(params).__name__}")
    for k, p in params.items():
        if not isinstance(k, str):
            raise ValueError(f"params keys must be str; got key {k!r}")
        if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS:
            what = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
            raise ValueError(f"params[{k!r}] must be a float32 or float64 np.ndarray; got {what}")
        if not p.flags.writeable:
            raise ValueError(f"params[{k!r}] is read-only; the optimizer updates it in place")
    return dict(params)  # our own key -> array map; the arrays themselves are the caller's


def _check_grad_keys(grads, expected: Mapping[str, np.ndarray]) -> None:
    """Same keys as ``expected`` and, key by key, the same shape (messages name the key and both shapes)."""
    if not isinstance(grads, Mapping):
        raise ValueError(f"grads must be a dict of str -> np.ndarray; got {type(grads).__name__}")
    for k in expected:
        if k not in grads:
            raise ValueError(f"grads is missing key {k!r} (params has it)")
    for k in grads:
        if k not in expected:
            raise ValueError(f"grads has extra key {k!r} that is not in params")
    for k, p in expected.items():
        g = grads[k]
        if not isinstance(g, np.ndarray) or g.dtype.kind not in "iuf":
            what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise ValueError(f"grads[{k!r}] must be a real numeric np.ndarray; got {what}")
        if g.shape != p.shape:
            raise ValueError(
                f"grads[{k!r}] has shape {g.shape} but params[{k!r}] has shape {p.shape}"
            )


# --------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: holds ``params``, the step count ``t``, a validated mutable ``lr`` and named state buffers.

    Subclasses register their per-parameter buffers in ``_buffers`` (name -> {key -> array}, each array
    shaped and typed like its parameter) and implement ``_update(k, p, g)`` for one parameter.
    """

    def __init__(self, params, lr: float):
        self._source = params  # the caller's dict: step() follows arrays put into it later
        self.params = _check_params(params)
        self.lr = lr  # validated by the property setter
        self.t = 0  # number of steps taken
        self._buffers: dict[str, dict[str, np.ndarray]] = {}
        # scratch space, one per parameter: an array like the parameter and a bool mask for the finite check
        self._tmp = {k: np.zeros_like(p) for k, p in self.params.items()}
        self._ok = {k: np.zeros(p.shape, dtype=bool) for k, p in self.params.items()}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = _positive_finite("lr", value)

    def _add_buffer(self, name: str) -> dict[str, np.ndarray]:
        buf = {k: np.zeros_like(p) for k, p in self.params.items()}
        self._buffers[name] = buf
        return buf

    def step(self, grads) -> None:
        """Update every ``params[k]`` in place from ``grads[k]`` (same keys, same shapes, all finite).

        All gradients are checked before any parameter changes, so a rejected step leaves no trace.
        """
        self._follow_source()
        _check_grad_keys(grads, self.params)
        for k, g in grads.items():
            ok = np.isfinite(g, out=self._ok[k])
            if not ok.all():
                bad = ok.size - int(np.count_nonzero(ok))
                raise ValueError(
                    f"grads[{k!r}] contains {bad} NaN or infinite value(s); refusing to step "
                    "(check clip_grad_norm's return value to catch divergence earlier)"
                )
        self.t += 1
        for k, p in self.params.items():
            self._update(k, p, grads[k])

    def _follow_source(self) -> None:
        """Adopt arrays the caller put into the params dict after ``__init__`` (the model reads those)."""
        src = self._source
        for k, p in self.params.items():
            q = src.get(k) if isinstance(src, Mapping) else p
            if q is p:
                continue
            if q is None:
                raise ValueError(f"params[{k!r}] was removed from the dict this optimizer updates; create the "
                                 f"optimizer again for the new parameters")
            if not isinstance(q, np.ndarray) or q.shape != p.shape or q.dtype != p.dtype or not q.flags.writeable:
                what = f"{q.dtype} {q.shape}" if isinstance(q, np.ndarray) else type(q).__name__
                raise ValueError(f"params[{k!r}] was replaced by {what} after the optimizer was created; it needs "
                                 f"a writable {p.dtype} array of shape {p.shape} (assign in place: "
                                 f"params[{k!r}][...] = value), or create the optimizer again")
            self.params[k] = q

    def _update(self, k: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat copies: ``"<buffer>/<key>"`` -> array shaped like ``params[key]``, and ``"t"`` -> 0-d int64."""
        state = {f"{name}/{k}": a.copy() for name, buf in self._buffers.items() for k, a in buf.items()}
        state["t"] = np.array(self.t, dtype=np.int64)
        return state

    def load_state_dict(self, d) -> None:
        """Copy a ``state_dict()`` (e.g. from ``np.load``) into this optimizer's buffers.

        Keys must match exactly and shapes must agree; everything is checked before anything is copied.
        """
        if not isinstance(d, Mapping) and not hasattr(d, "keys"):
            raise ValueError(f"state dict must be a mapping of str -> np.ndarray; got {type(d).__name__}")
        want = {f"{name}/{k}": a for name, buf in self._buffers.items() for k, a in buf.items()}
        keys = set(d.keys())
        for key in [*want, "t"]:
            if key not in keys:
                raise ValueError(f"state dict is missing key {key!r}")
        for key in keys:
            if key not in want and key != "t":
                raise ValueError(f"state dict has unexpected key {key!r}")
        t = np.asarray(d["t"])
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            raise ValueError(f"state dict key 't' must be a 0-d non-negative integer array; got {t!r}")
        arrays = {}
        for key, dst in want.items():
            src = np.asarray(d[key])
            if src.shape != dst.shape:
                raise ValueError(
                    f"state dict key {key!r} has shape {src.shape} but the optimizer expects {dst.shape}"
                )
            if src.dtype.kind not in "iuf" or not np.isfinite(src).all():
                raise ValueError(f"state dict key {key!r} must hold finite real numbers")
            if key.split("/", 1)[0] in self._nonnegative and (src < 0).any():
                raise ValueError(f"state dict key {key!r} holds a sum of squares and cannot be negative")
            arrays[key] = src
        for key, src in arrays.items():
            np.copyto(want[key], src, casting="same_kind")
        self.t = int(t)

    _nonnegative: tuple[str, ...] = ()  # buffer names that accumulate squares


class SGD(Optimizer):
    """Stochastic gradient descent with optional heavy-ball momentum, PyTorch convention (no dampening).

    State: ``"v/<key>"`` velocity (only when momentum > 0) and ``"t"``.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = _unit_interval("momentum", momentum)
        self._v = self._add_buffer("v") if self.momentum > 0.0 else None

    def _update(self, k, p, g):
        tmp = self._tmp[k]
        if self._v is None:
            np.multiply(g, self.lr, out=tmp)  # (O1) with mu = 0: step is lr g
        else:
            v = self._v[k]
            np.multiply(v, self.momentum, out=v)  # (O1) v <- mu v ...
            np.add(v, g, out=v, casting="same_kind")  # (O1)          ... + g
            np.multiply(v, self.lr, out=tmp)  # (O1) lr v
        np.subtract(p, tmp, out=p)  # (O1) theta <- theta - lr v


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011): per-coordinate step lr / sqrt(sum of squared past gradients).

    State: ``"G/<key>"`` running sum of g**2 and ``"t"``.
    """

    _nonnegative = ("G",)

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10):
        super().__init__(params, lr)
        self.eps = _positive_finite("eps", eps)
        self._G = self._add_buffer("G")

    def _update(self, k, p, g):
        G, tmp = self._G[k], self._tmp[k]
        np.multiply(g, g, out=tmp, casting="same_kind")  # (O2) g^2
        np.add(G, tmp, out=G)  # (O2) G <- G + g^2
        np.sqrt(G, out=tmp)  # (O2) sqrt(G)
        np.add(tmp, self.eps, out=tmp)  # (O2) sqrt(G) + eps
        np.divide(g, tmp, out=tmp, casting="same_kind")  # (O2) g / (sqrt(G) + eps)
        np.multiply(tmp, self.lr, out=tmp)  # (O2) lr g / (sqrt(G) + eps)
        np.subtract(p, tmp, out=p)  # (O2) theta <- theta - ...


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``t`` counts steps from 1.

    State: ``"m/<key>"`` first moment, ``"v/<key>"`` second moment and ``"t"``.
    """

    _nonnegative = ("v",)

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        self.betas = (_unit_interval("betas[0]", betas[0]), _unit_interval("betas[1]", betas[1]))
        self.eps = _positive_finite("eps", eps)
        self._m = self._add_buffer("m")
        self._v = self._add_buffer("v")

    def _update(self, k, p, g):
        b1, b2 = self.betas
        m, v, tmp = self._m[k], self._v[k], self._tmp[k]
        bc1 = 1.0 - b1**self.t  # (O4) 1 - beta1^t
        bc2 = 1.0 - b2**self.t  # (O4) 1 - beta2^t
        np.multiply(m, b1, out=m)  # (O3) m <- beta1 m ...
        np.multiply(g, 1.0 - b1, out=tmp, casting="same_kind")  # (O3)        ... + (1 - beta1) g
        np.add(m, tmp, out=m)  # (O3)
        np.multiply(v, b2, out=v)  # (O3) v <- beta2 v ...
        np.multiply(g, g, out=tmp, casting="same_kind")  # (O3)        ... + (1 - beta2) g^2
        np.multiply(tmp, 1.0 - b2, out=tmp)  # (O3)
        np.add(v, tmp, out=v)  # (O3)
        np.divide(v, bc2, out=tmp)  # (O4) v_hat = v / (1 - beta2^t)
        np.sqrt(tmp, out=tmp)  # (O5) sqrt(v_hat)
        np.add(tmp, self.eps, out=tmp)  # (O5) sqrt(v_hat) + eps
        np.divide(m, tmp, out=tmp)  # (O5) m / (sqrt(v_hat) + eps)
        np.multiply(tmp, self.lr / bc1, out=tmp)  # (O4) m_hat = m / (1 - beta1^t), times lr for (O5)
        np.subtract(p, tmp, out=p)  # (O5) theta <- theta - lr m_hat / (sqrt(v_hat) + eps)


# --------------------------------------------------------------------------- clipping


def clip_grad_norm(grads, max_norm: float) -> float:
    """Rescale all gradients together so their global L2 norm is at most ``max_norm``; in place.

    ``grads``: dict str -> float ndarray (any shapes). The norm n = sqrt(sum_k ||grads[k]||^2) is accumulated
    in float64 (no float32 overflow). If n > max_norm every array is multiplied by max_norm / n, which keeps
    the direction (like ``tf.clip_by_global_norm``); otherwise nothing is touched. Returns n before clipping,
    as a Python float.

    Non-finite gradients do not raise here: n comes back as inf or nan and the gradients are left unchanged,
    so the training loop can test ``math.isfinite(n)`` to detect divergence and skip the step or stop
    (``Optimizer.step`` itself refuses non-finite gradients).
    """
    max_norm = _positive_finite("max_norm", max_norm)
    n = global_norm(grads)
    if math.isfinite(n) and n > max_norm:
        scale = max_norm / n  # (O6)
        for g in grads.values():
            np.multiply(g, scale, out=g)  # (O6) g <- g * max_norm / n
    return n


def global_norm(grads) -> float:
    """The global L2 norm sqrt(sum_k ||grads[k]||^2) of a dict of float arrays, accumulated in float64.

    inf or nan when a gradient is not finite (no error: that is how a training loop detects divergence).
    """
    if not isinstance(grads, Mapping):
        raise ValueError(f"grads must be a dict of str -> np.ndarray; got {type(grads).__name__}")
    sq = 0.0
    for k, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype not in _FLOATS:
            what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise ValueError(f"grads[{k!r}] must be a float32 or float64 np.ndarray; got {what}")
        flat = g.reshape(-1)
        sq += float(np.einsum("i,i->", flat, flat, dtype=np.float64))  # (O6) ||g||^2, summed over arrays
    return math.sqrt(sq)  # (O6) n = sqrt(sum ||g||^2)
