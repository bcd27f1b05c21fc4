"""The one sequence loop every cell runs on, and the ``Cell`` object that plugs a step into it.

A cell is two textbook-style step functions (one labelled equation per line, in the cell's own module) plus
two small adapters that let the loop call them without knowing the cell:

    step(x_t, state, params) -> (state_t, step_cache)
    step_back(dstate_t, step_cache) -> (dx_t, dstate_prev, dparams_t)

``state`` is a tuple whose first entry is always h_t (N, H); what follows is the cell's business:

    "rnn", "gru":            (h,)
    "lstm", "peephole", ...: (h, c)
    "fgr":                   (h, c, gates)   gates = [i, f, o]_{t-1} (N, 3H), the full gate recurrence's
                                             extra state: zeros before the first step of EVERY call (it is not
                                             part of the state a caller hands in or gets back; only h and c are)

``dstate`` is the tuple of gradients of the same entries. ``step_cache`` is whatever the cell's step wants
to keep (a tuple of any length): the loop only stores it. ``dparams_t`` is a dict with the keys of params,
this step's terms of the parameter gradients, which the loop sums over t ((B12)-(B14) for the LSTM).

The loop (``sequence_forward`` / ``sequence_backward``) is ``textbook.lstm_forward`` / ``lstm_backward`` with
the state tuple in place of (h, c): the cells "lstm" and "rnn" run textbook.py's and rnn.py's own step
functions on it and give bit-for-bit the same numbers as ``textbook.lstm_forward`` and ``rnn.rnn_forward``
(tests/test_cells.py).

Shapes: N batch, T timesteps, D input features (or vocabulary size for (N, T) token ids), H hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import _checks as chk


@dataclass
class SequenceCache:
    """What ``Cell.forward`` hands to ``Cell.backward``: the T step caches (in time order) and the sizes.

    cell: the name of the cell that made it; steps: list of T step caches (each whatever the cell's step
    returned); tokens: True if x was (N, T) token ids (then there is no dx); D: input size (or vocabulary);
    params: the parameter arrays the forward pass used (the backward pass sums their gradients).
    """

    cell: str
    steps: list
    tokens: bool
    N: int
    T: int
    D: int
    H: int
    dtype: np.dtype
    params: dict = field(repr=False)


def sequence_forward(step, x, state0, params):
    """Run ``step`` for t = 1..T. x (N, T, D) floats or (N, T) token ids, already checked; state0: the
    initial state tuple (h0 first); params: dict of arrays. Returns hs (N, T, H), the final state tuple and
    the list of T step caches."""
    N, T = x.shape[:2]
    h0 = state0[0]
    hs = np.zeros((N, T, h0.shape[1]), h0.dtype)
    state, steps = state0, []
    for t in range(T):
        state, step_cache = step(x[:, t], state, params)
        hs[:, t] = state[0]
        steps.append(step_cache)
    return hs, state, steps


def sequence_backward(step_back, dhs, steps, dstate, params, dx_shape=None):
    """Backpropagation through time over the step caches ``steps``, t = T..1.

    dhs (N, T, H): gradient of the loss with respect to each h_t from outside the recurrence; dstate: the
    gradient tuple reaching the final state (dhT, dcT, ...) as zeros where nothing comes in; params: the
    forward pass's parameters (for the zero sums); dx_shape: (N, T, D), or None for token ids (no dx).
    Returns dx (or None), the gradient tuple of the initial state, and dparams (dict, keys of params).
    """
    dx = None if dx_shape is None else np.zeros(dx_shape, dhs.dtype)
    dparams = {k: np.zeros_like(v) for k, v in params.items()}
    for t in reversed(range(len(steps))):
        dstate = (dhs[:, t] + dstate[0],) + tuple(dstate[1:])  # (B1) dh_t = dhs_t + dh_t (via step t+1)
        dx_t, dstate, dparams_t = step_back(dstate, steps[t])
        if dx is not None:
            dx[:, t] = dx_t
        for k in dparams:
            dparams[k] += dparams_t[k]  # (B12)-(B14): each parameter's gradient is the sum of its step terms
    return dx, dstate, dparams


@dataclass(frozen=True)
class Cell:
    """A recurrent cell on the generic loop (see the module docstring).

    name; has_cell_state (False: c0 must be None, cT and dc0 are None); shapes(D, H) -> {key: shape} in a
    fixed order; forget_block: (param key, H-block) that gets ``forget_bias`` at init, or None; step /
    step_back: the adapters of the cell's step functions; extra_state: names of state entries after h (and
    c) that start at zero every call (fgr's previous gates), with their width in units of H; gate_names: the
    blocks of the fused gate axis of Wx, Wh and the biases ("ifgo", "rzn"), used by gradient-check reports.
    """

    name: str
    has_cell_state: bool
    shapes: Callable = field(repr=False)
    step: Callable = field(repr=False)
    step_back: Callable = field(repr=False)
    forget_block: tuple | None = None
    extra_state: tuple = ()  # ((name, width in units of H), ...)
    gate_names: str = ""

    def __reduce__(self):
        """A cell of ``numpylstm.cells`` pickles (and deep-copies) as its name, so a model holding one can be
        pickled although its adapters are closures; ``cells.get`` gives the same object back."""
        from . import NAMES, get

        if self.name in NAMES and get(self.name) is self:
            return get, (self.name,)
        return super().__reduce__()

    def param_shapes(self, D, H) -> dict:
        """{key: shape} for input size D (or vocabulary size) and hidden size H, in the cell's fixed order."""
        D, H = chk.positive_int("D", D), chk.positive_int("H", H)
        return dict(self.shapes(D, H))

    def check_params(self, params):
        """The params dict, checked against ``param_shapes``: H from Wh, D from Wx, dtype from Wh (float32
        or float64; the others are converted to it). Returns (params, D, H, dtype)."""
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict of arrays with keys Wx, Wh, ...; got {chk.describe(params)}")
        for key in ("Wx", "Wh"):
            if key not in params:
                raise ValueError(f"params must have a key {key!r} (cell {self.name!r}); got keys {sorted(params)}")
        Wh = chk.numeric("Wh", params["Wh"])
        Wx = chk.as_array("Wx", params["Wx"])
        if Wh.ndim != 2 or Wx.ndim != 2:
            raise ValueError(f"Wx and Wh must be 2-D; got shapes {Wx.shape}, {Wh.shape}")
        D, H = Wx.shape[0], Wh.shape[0]
        if D < 1 or H < 1:
            raise ValueError(f"Wx and Wh must not be empty; got shapes {Wx.shape}, {Wh.shape}")
        shapes = self.param_shapes(D, H)
        if set(params) != set(shapes):
            raise ValueError(f"params of cell {self.name!r} must have the keys {', '.join(shapes)}; "
                             f"got {', '.join(params)}")
        out = {}
        for key, shape in shapes.items():
            arr = chk.numeric(key, params[key], Wh.dtype)
            if arr.shape != shape:
                raise ValueError(f"{key} of cell {self.name!r} must have shape {shape} (D = {D}, H = {H}); "
                                 f"got {arr.shape}")
            out[key] = chk.finite(key, arr)
        return out, D, H, Wh.dtype

    def forward(self, x, h0, c0, params):
        """Run the cell over a sequence.

        x (N, T, D) floats or (N, T) integer token ids in [0, D); h0, c0 (N, H) or None for zeros (c0 must be
        None for a cell without a cell state); params {key: array} with the shapes of ``param_shapes``.
        Computes in the params' dtype. Returns hs (N, T, H), (hT, cT) each (N, H) (cT None without a cell
        state), and the cache for ``backward``.
        """
        params, D, H, dt = self.check_params(params)
        xa = chk.as_array("x", x)
        if xa.ndim == 2 and xa.dtype.kind in "iu":
            x = chk.token_ids("x", xa, "NT", (None, None), D)
        else:
            x = chk.array("x", xa, "NTD", (None, None, D), dt)
        N, T = x.shape[:2]
        h0 = np.zeros((N, H), dt) if h0 is None else chk.array("h0", h0, "NH", (N, H), dt)
        state0 = (h0,)
        if self.has_cell_state:
            state0 += (np.zeros((N, H), dt) if c0 is None else chk.array("c0", c0, "NH", (N, H), dt),)
        elif c0 is not None:
            raise ValueError(f"c0 must be None: cell {self.name!r} has no cell state; got {chk.describe(c0)}")
        state0 += tuple(np.zeros((N, width * H), dt) for _, width in self.extra_state)  # zeros every call
        hs, state, steps = sequence_forward(self.step, x, state0, params)
        cT = state[1] if self.has_cell_state else None
        cache = SequenceCache(self.name, steps, x.ndim == 2, N, T, D, H, dt, params)
        return hs, (state[0], cT), cache

    def backward(self, dhs, cache, dhT=None, dcT=None):
        """Backpropagation through time.

        dhs (N, T, H): dL/dh_t from outside the recurrence; cache: from this cell's ``forward``; dhT, dcT
        (N, H): gradient reaching the final state from beyond step T, or None (dcT must be None without a
        cell state). Returns dx (N, T, D) (None for token ids), dh0 (N, H), dc0 (N, H) (None without a cell
        state) and dparams {key: array} with the keys of params.
        """
        if not isinstance(cache, SequenceCache) or cache.cell != self.name:
            raise ValueError(f"cache must be the cache returned by the forward pass of cell {self.name!r}; "
                             f"got {chk.describe(cache)}")
        N, T, H, dt = cache.N, cache.T, cache.H, cache.dtype
        if not self.has_cell_state and dcT is not None:
            raise ValueError(f"dcT must be None: cell {self.name!r} has no cell state; got {chk.describe(dcT)}")
        dhs, dhT, dcT = chk.layer_grads_in(dhs, T, N, H, dt, dhT, dcT)
        dstate = (np.zeros((N, H), dt) if dhT is None else dhT,)
        if self.has_cell_state:
            dstate += (np.zeros((N, H), dt) if dcT is None else dcT,)
        dstate += tuple(np.zeros((N, width * H), dt) for _, width in self.extra_state)
        dx_shape = None if cache.tokens else (N, T, cache.D)
        dx, dstate0, dparams = sequence_backward(self.step_back, dhs, cache.steps, dstate, cache.params, dx_shape)
        return dx, dstate0[0], (dstate0[1] if self.has_cell_state else None), dparams
