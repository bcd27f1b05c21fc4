"""How a model's stack of layers runs: the one place where the code that runs it is chosen.

``LSTMModel`` (``numpylstm/model.py``) is the model of derivations/04_stacking_dropout.md and
05_head_losses.md: a stack of cells (S1, S2), dropout on each layer's output (D1, D2), a dense head (H1-H4),
a loss. Read it first. It asks ``choose`` once per pass how its stack runs, and gets one of three engines:

- ``CellLayers``: layer after layer, each layer the cell's step-by-step code (``numpylstm/cells/``: for the
  LSTM ``textbook.py``, for the RNN ``rnn.py``, the GRU ``gru.py``, the peephole LSTM and its variants). Every
  cell runs this way; the standard LSTM does when ``impl="textbook"``.
- ``FastLayers``: layer after layer, each layer ``fast.lstm_forward_tm`` / ``lstm_backward_tm``, the faster
  twin of textbook.py (chapter 10). The standard LSTM with ``impl="fast"`` (the default).
- ``Wavefront``: ``wavefront.py``, all layers in one time loop (section 10.14), when ``wavefront.worth_it``
  (or ``wavefront=True``), for float input without dropout masks in the pass.

The last two apply only to the standard LSTM ("lstm") with ``impl="fast"``; every other cell ignores
``impl`` and runs ``CellLayers``. All three give the same numbers up to rounding (tests/test_wavefront.py,
test_model.py and test_model_cells.py hold them equal). Two or more cores are used by running the whole model
in several processes, each on a block of the batch (``numpylstm/parallel.py``, section 10.15), not by an
engine here.

A layer engine (``whole_stack = False``) has ``layer_forward(l, inp, h0, c0) -> (hs, (hT, cT), cache)`` and
``layer_backward(l, dhs, cache, dhT, need_dx) -> (dx, dh0, dc0, dparams)``, time-major (inp (T, N, D) or
(T, N) ids, hs (T, N, H)); cT, dc0 None for a cell without a cell state; dparams a dict keyed like the cell's
``param_shapes``. The model runs its own loop over the layers with them. A whole-stack engine
(``whole_stack = True``) runs that loop itself: ``stack_forward`` and ``stack_backward`` below.

Buffers: the fast engines keep their big arrays in ``fast.Workspace`` objects from call to call. They come
from ``scratch``, the calling thread's own set (``LSTMModel`` keeps one set per thread), so that two threads
calling one model never write into each other's buffers.
"""

from __future__ import annotations

import numpy as np

from . import fast, wavefront
from .fast import Workspace

LSTM_KEYS = ("Wx", "Wh", "b")  # the standard LSTM's parameters in each layer, the order the fast engines take them


class Scratch:
    """One thread's buffers for the fast engines: a Workspace per layer, and one for the wavefront."""

    def __init__(self, num_layers):
        self.layers = [Workspace() for _ in range(num_layers)]
        self.wave = Workspace()


def fast_applies(model) -> bool:
    """The fast engines run only the standard LSTM, and only with impl="fast"."""
    return model.cell == "lstm" and model.impl == "fast"


def wave(model, xt, masks) -> bool:
    """Whether a pass runs as a wavefront (see LSTMModel's ``wavefront`` argument); xt time-major."""
    if (model.wavefront is False or masks is not None or xt.ndim != 3 or not fast_applies(model)
            or model.num_layers < 2):
        return False
    return model.wavefront is True or wavefront.worth_it(model.num_layers, xt.shape[1], model.hidden_size)


def choose(model, xt, masks, scratch):
    """The engine for one pass of ``model`` over xt (T, N, D) floats or (T, N) ids, time-major, with dropout
    masks (a list of L (T, N, H) arrays) or None; scratch: the calling thread's ``Scratch``."""
    if not fast_applies(model):
        return CellLayers(model)
    if wave(model, xt, masks):
        return Wavefront(model, scratch)
    return FastLayers(model, scratch)


def _layer_params(model, l, keys):
    return {k: model.params[f"{model.cell}.{l}.{k}"] for k in keys}


class CellLayers:
    """Every cell, layer after layer: the cell's own forward/backward (batch-first), called time-major."""

    whole_stack = False

    def __init__(self, model):
        self.model, self.cell = model, model.cell_type
        self.keys = tuple(self.cell.param_shapes(1, 1))

    def layer_forward(self, l, inp, h0, c0):
        self.steps = inp.shape[:2]  # (T, N), for a backward pass that gets no dhs
        xb = np.swapaxes(inp, 0, 1)  # the step-by-step cells are batch-first
        hs, (hT, cT), cache = self.cell.forward(xb, h0, c0 if self.cell.has_cell_state else None,
                                                _layer_params(self.model, l, self.keys))
        return np.ascontiguousarray(hs.swapaxes(0, 1)), (hT, cT), cache

    def layer_backward(self, l, dhs, cache, dhT, need_dx):
        T, N = self.steps
        dhs = np.zeros((N, T, self.model.hidden_size), self.model.dtype) if dhs is None else dhs.swapaxes(0, 1)
        dx, dh0, dc0, dparams = self.cell.backward(dhs, cache, dhT, None)
        dx = None if dx is None or not need_dx else np.ascontiguousarray(dx.swapaxes(0, 1))
        return dx, dh0, dc0, dparams


class FastLayers:
    """The standard LSTM, layer after layer, by fast.py's time-major pair with this thread's buffers."""

    whole_stack = False

    def __init__(self, model, scratch):
        self.model, self.works = model, scratch.layers

    def layer_forward(self, l, inp, h0, c0):
        Wx, Wh, b = _layer_params(self.model, l, LSTM_KEYS).values()
        return fast.lstm_forward_tm(inp, h0, c0, Wx, Wh, b, work=self.works[l])

    def layer_backward(self, l, dhs, cache, dhT, need_dx):
        dx, dh0, dc0, *grads = fast.lstm_backward_tm(dhs, cache, dhT=dhT, need_dx=need_dx, work=self.works[l])
        return dx, dh0, dc0, dict(zip(LSTM_KEYS, grads))


def _stack(model):
    """[(Wx, Wh, b)] per layer: how wavefront.py takes the LSTM stack's weights."""
    return [tuple(_layer_params(model, l, LSTM_KEYS).values()) for l in range(model.num_layers)]


class Wavefront:
    """The standard LSTM stack by wavefront.py: all layers in one time loop (float input, no dropout masks)."""

    whole_stack = True

    def __init__(self, model, scratch):
        self.model, self.work = model, scratch.wave

    def stack_forward(self, xt, state, masks):
        """-> (top: the top layer's output (T, N, H), finals [(hT, cT)] per layer, cache); masks is None."""
        top, finals, cache = wavefront.stack_forward(_stack(self.model), xt, state, self.work)
        return top, finals, cache

    def stack_backward(self, cache, dtop, dlast, masks, input_grads):
        """-> (dx or None, [(dh0, dc0)] per layer, [dparams] per layer)."""
        dx, states, grads = wavefront.stack_backward(cache, dtop, dlast, self.work, input_grads)
        return dx, [(dh, dc) for dc, dh in states], [dict(zip(LSTM_KEYS, g)) for g in grads]
