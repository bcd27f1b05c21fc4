"""The GRU, written like ``textbook.py``: PyTorch's ``nn.GRU``, one labelled equation per line.

    r_t = sigmoid(x_t Wx_r + bx_r + h_{t-1} Wh_r + bh_r)              reset gate
    z_t = sigmoid(x_t Wx_z + bx_z + h_{t-1} Wh_z + bh_z)              update gate
    n_t = tanh(x_t Wx_n + bx_n + r_t * (h_{t-1} Wh_n + bh_n))         candidate: reset AFTER the product
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Labels (U1)-(U17) of derivations/12_the_lstm_family.md, which also derives Cho et al. 2014's placement of
the reset (before the product, as d2l writes it) and says why parity with PyTorch needs this one.

Parameters, gate order r, z, n along the fused 3H axis (columns [0:H] r, [H:2H] z, [2H:3H] n):
Wx (D, 3H) = ``weight_ih_l0.T``, Wh (H, 3H) = ``weight_hh_l0.T``, bx (3H,) = ``bias_ih_l0``,
bh (3H,) = ``bias_hh_l0``. The two biases cannot be merged: bh_n sits inside r_t * (...).

Shapes: N batch, T timesteps, D input features, H hidden size. Batch-first; (N, T) integer token ids are
accepted as a one-hot input, a row gather of Wx as in (E1) / (E2).
"""

from __future__ import annotations

import numpy as np

from .cells.loop import Cell
from .textbook import sigmoid

__all__ = ["gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward", "CELL"]


def gru_step_forward(x_t, h_prev, Wx, Wh, bx, bh):
    """One timestep: (U1)-(U6).

    x_t (N, D) floats, or (N,) integer token ids; h_prev (N, H) is h_{t-1}; Wx (D, 3H); Wh (H, 3H);
    bx, bh (3H,). Returns h_t (N, H) and step_cache, what ``gru_step_backward`` needs.
    """
    H = Wh.shape[0]
    if x_t.ndim == 1:
        xWx = Wx[x_t]  # (E1) one-hot x_t times Wx = the rows of Wx named by the tokens, (N, 3H)
    else:
        xWx = x_t @ Wx  # (U1) input part, (N, D) @ (D, 3H)
    ax = xWx + bx  # (U1) ax_t = x_t Wx + bx, (N, 3H)
    ah = h_prev @ Wh + bh  # (U2) ah_t = h_{t-1} Wh + bh, (N, 3H)
    r = sigmoid(ax[:, 0 * H:1 * H] + ah[:, 0 * H:1 * H])  # (U3) reset gate
    z = sigmoid(ax[:, 1 * H:2 * H] + ah[:, 1 * H:2 * H])  # (U4) update gate
    ah_n = ah[:, 2 * H:3 * H].copy()  # (U2) the candidate's recurrent part h_{t-1} Wh_n + bh_n
    n = np.tanh(ax[:, 2 * H:3 * H] + r * ah_n)  # (U5) candidate, the reset applied after the product
    h_t = (1 - z) * n + z * h_prev  # (U6) h_t = (1 - z_t) n_t + z_t h_{t-1}
    step_cache = (x_t, h_prev, Wx, Wh, r, z, n, ah_n)
    return h_t, step_cache


def gru_step_backward(dh_t, step_cache):
    """One timestep back: (U7)-(U17) for step t.

    dh_t (N, H): the whole gradient reaching h_t (from outside plus from step t+1, (B1)).
    Returns dx_t (N, D) (None for token ids), dh_prev (N, H) (what step t sends to step t-1), and this
    step's terms of dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    """
    x_t, h_prev, Wx, Wh, r, z, n, ah_n = step_cache
    dn = dh_t * (1 - z)  # (U7) dn_t = dh_t (1 - z_t)
    dz = dh_t * (h_prev - n)  # (U8) dz_t = dh_t (h_{t-1} - n_t)
    dan = dn * (1 - n**2)  # (U9) da_n = dn_t (1 - n_t^2), the tanh's input
    dr = dan * ah_n  # (U10) dr_t = da_n (h_{t-1} Wh_n + bh_n)
    dar = dr * r * (1 - r)  # (U11) sigmoid'(a) = r (1 - r)
    daz = dz * z * (1 - z)  # (U11)
    dax = np.concatenate([dar, daz, dan], axis=1)  # (U12) d ax_t, (N, 3H) in the order r, z, n
    dah = np.concatenate([dar, daz, dan * r], axis=1)  # (U13) d ah_t: the n block passes through r_t
    dh_prev = dh_t * z + dah @ Wh.T  # (U14) dh_{t-1} (via step t) = dh_t z_t + d ah_t Wh^T
    dWh = h_prev.T @ dah  # (U15) this step's term h_{t-1}^T d ah_t
    dbh = dah.sum(axis=0)  # (U16) this step's term of dbh
    dbx = dax.sum(axis=0)  # (U16) this step's term of dbx
    if x_t.ndim == 1:
        dx_t = None  # token ids have no gradient
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x_t, dax)  # (E2) row token_n of dWx gets d ax_t[n] (scatter-add)
    else:
        dx_t = dax @ Wx.T  # (U17) dx_t = d ax_t Wx^T
        dWx = x_t.T @ dax  # (U17) this step's term x_t^T d ax_t
    return dx_t, dh_prev, dWx, dWh, dbx, dbh


def shapes(D, H):
    return {"Wx": (D, 3 * H), "Wh": (H, 3 * H), "bx": (3 * H,), "bh": (3 * H,)}


def step(x_t, state, params):
    h_t, step_cache = gru_step_forward(x_t, state[0], params["Wx"], params["Wh"], params["bx"], params["bh"])
    return (h_t,), step_cache


def step_back(dstate, step_cache):
    dx_t, dh_prev, dWx, dWh, dbx, dbh = gru_step_backward(dstate[0], step_cache)
    return dx_t, (dh_prev,), {"Wx": dWx, "Wh": dWh, "bx": dbx, "bh": dbh}


CELL = Cell("gru", False, shapes, step, step_back, gate_names="rzn")


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """Forward pass over a whole sequence, batch-first: ``gru_step_forward`` for t = 1..T on the generic
    loop (``numpylstm/cells/loop.py``). Derivation: derivations/12_the_lstm_family.md.

    x (N, T, D) floats, or (N, T) integer token ids in [0, D); h0 (N, H) or None for zeros; Wx (D, 3H);
    Wh (H, 3H); bx, bh (3H,). Computes in Wh's dtype. Returns hs (N, T, H), hT (N, H) and the cache.
    """
    hs, (hT, _), cache = CELL.forward(x, h0, None, {"Wx": Wx, "Wh": Wh, "bx": bx, "bh": bh})
    return hs, hT, cache


def gru_backward(dhs, cache, dhT=None):
    """Backpropagation through time, batch-first: ``gru_step_backward`` for t = T..1.

    dhs (N, T, H): dL/dh_t from outside the recurrence at every step; cache: from ``gru_forward``; dhT
    (N, H): gradient into the final state from beyond step T, or None.
    Returns dx (N, T, D) (None for token ids), dh0 (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    """
    dx, dh0, _, dp = CELL.backward(dhs, cache, dhT)
    return dx, dh0, dp["Wx"], dp["Wh"], dp["bx"], dp["bh"]
