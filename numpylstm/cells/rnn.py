"""The cell "rnn": rnn.py's step functions (the plain tanh RNN, (R1)-(R9)) on the generic loop.

The result equals ``rnn.rnn_forward`` / ``rnn_backward`` bit for bit (tests/test_cells.py).
"""

from __future__ import annotations

from .. import rnn  # called as rnn.rnn_step_forward: a patched step function shows in the cell
from .loop import Cell


def shapes(D, H):
    return {"Wx": (D, H), "Wh": (H, H), "b": (H,)}


def step(x_t, state, params):
    h_t, step_cache = rnn.rnn_step_forward(x_t, state[0], params["Wx"], params["Wh"], params["b"])
    return (h_t,), step_cache


def step_back(dstate, step_cache):
    dx_t, dh_prev, dWx, dWh, db = rnn.rnn_step_backward(dstate[0], step_cache)
    return dx_t, (dh_prev,), {"Wx": dWx, "Wh": dWh, "b": db}


CELL = Cell("rnn", False, shapes, step, step_back)
