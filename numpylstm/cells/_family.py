"""The adapter shared by the peephole LSTM and Greff's variants (all but fgr): state (h, c), params Wx (D, 4H),
Wh (H, 4H), b (4H,), p (3, H), step functions with the signatures of ``peephole.peephole_step_forward`` /
``peephole_step_backward``. Kept out of the step modules so that ``diff peephole.py nig.py`` shows only the
variant's change."""

from __future__ import annotations

from .loop import Cell


def shapes(D, H):
    return {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,), "p": (3, H)}


def peephole_cell(name, step_forward, step_backward) -> Cell:
    """A ``Cell`` called ``name`` running ``step_forward`` / ``step_backward`` on the generic loop."""

    def step(x_t, state, params):
        h_t, c_t, step_cache = step_forward(x_t, *state, params["Wx"], params["Wh"], params["b"], params["p"])
        return (h_t, c_t), step_cache

    def step_back(dstate, step_cache):
        dx_t, dh_prev, dc_prev, dWx, dWh, db, dp = step_backward(*dstate, step_cache)
        return dx_t, (dh_prev, dc_prev), {"Wx": dWx, "Wh": dWh, "b": db, "p": dp}

    return Cell(name, True, shapes, step, step_back, forget_block=("b", 1), gate_names="ifgo")


def fgr_shapes(D, H):
    return {**shapes(D, H), "R": (3 * H, 3 * H)}


def fgr_cell(step_forward, step_backward) -> Cell:
    """The cell "fgr": state (h, c, gates) with gates = [i, f, o]_{t-1} (N, 3H), zeros at the start of every
    call (the loop's ``extra_state``); params as the peephole cell's plus R (3H, 3H)."""

    def step(x_t, state, params):
        h_t, c_t, gates_t, step_cache = step_forward(x_t, *state, params["Wx"], params["Wh"], params["b"],
                                                     params["p"], params["R"])
        return (h_t, c_t, gates_t), step_cache

    def step_back(dstate, step_cache):
        dx_t, dh_prev, dc_prev, dgates_prev, dWx, dWh, db, dp, dR = step_backward(*dstate, step_cache)
        return dx_t, (dh_prev, dc_prev, dgates_prev), {"Wx": dWx, "Wh": dWh, "b": db, "p": dp, "R": dR}

    return Cell("fgr", True, fgr_shapes, step, step_back, forget_block=("b", 1), extra_state=(("gates", 3),),
                gate_names="ifgo")
