"""The cell "lstm": textbook.py's step functions on the generic loop (Greff's "NP", no peepholes).

The equations are in ``numpylstm/textbook.py`` ((F1)-(F5), (B1)-(B14)); this file only plugs
``lstm_step_forward`` / ``lstm_step_backward`` into ``numpylstm/cells/loop.py``. The result equals
``textbook.lstm_forward`` / ``lstm_backward`` bit for bit (tests/test_cells.py).
"""

from __future__ import annotations

from .. import textbook  # called as textbook.lstm_step_forward: a patched step function shows in the cell
from .loop import Cell


def shapes(D, H):
    return {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,)}


def step(x_t, state, params):
    h_prev, c_prev = state
    h_t, c_t, step_cache = textbook.lstm_step_forward(x_t, h_prev, c_prev, params["Wx"], params["Wh"], params["b"])
    return (h_t, c_t), step_cache


def step_back(dstate, step_cache):
    dh_t, dc_next = dstate
    dx_t, dh_prev, dc_prev, dWx, dWh, db = textbook.lstm_step_backward(dh_t, dc_next, step_cache)
    return dx_t, (dh_prev, dc_prev), {"Wx": dWx, "Wh": dWh, "b": db}


CELL = Cell("lstm", True, shapes, step, step_back, forget_block=("b", 1), gate_names="ifgo")
