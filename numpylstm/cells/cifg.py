"""Greff et al. 2017's CIFG, coupled input and forget gate: the peephole LSTM (peephole.py) with one change:
f_t = 1 - i_t (Y8).

Derivation: derivations/12_the_lstm_family.md. Every line but the (Y) ones is peephole.py's:
``diff numpylstm/cells/peephole.py numpylstm/cells/cifg.py`` shows the change.
"""

from __future__ import annotations

import numpy as np

from ..textbook import sigmoid
from ._family import peephole_cell


def cifg_step_forward(x_t, h_prev, c_prev, Wx, Wh, b, p):
    """One timestep of CIFG: ``peephole_step_forward`` with (Y8).

    x_t (N, D) floats, or (N,) integer token ids; h_prev, c_prev (N, H); Wx (D, 4H); Wh (H, 4H); b (4H,);
    p (3, H) the peephole weights, rows i, f, o. Returns h_t (N, H), c_t (N, H) and step_cache.
    """
    H = Wh.shape[0]
    if x_t.ndim == 1:
        xWx = Wx[x_t]  # (E1) one-hot x_t times Wx = the rows of Wx named by the tokens, (N, 4H)
    else:
        xWx = x_t @ Wx  # (F1) input part, (N, D) @ (D, 4H)
    a = xWx + h_prev @ Wh + b  # (F1) a_t = x_t Wx + h_{t-1} Wh + b, (N, 4H), before the peepholes
    a_i = a[:, 0 * H:1 * H] + c_prev * p[0]  # (P1) a_i = a_t[i] + c_{t-1} p_i
    a_f = a[:, 1 * H:2 * H] + c_prev * p[1]  # (P2) a_f = a_t[f] + c_{t-1} p_f
    i = sigmoid(a_i)  # (F2) input gate
    f = 1 - i  # (Y8) CIFG: the forget gate coupled to the input gate (a_f and p_f unused)
    g = np.tanh(a[:, 2 * H:3 * H])  # (F3) cell candidate
    c_t = f * c_prev + i * g  # (F4) c_t = f_t c_{t-1} + i_t g_t
    a_o = a[:, 3 * H:4 * H] + c_t * p[2]  # (P3) a_o = a_t[o] + c_t p_o: the output gate sees the new c_t
    o = sigmoid(a_o)  # (F2) output gate
    tanh_c = np.tanh(c_t)  # (F5)
    h_t = o * tanh_c  # (F5) h_t = o_t tanh(c_t)
    step_cache = (x_t, h_prev, c_prev, Wx, Wh, p, i, f, g, o, c_t, tanh_c)
    return h_t, c_t, step_cache


def cifg_step_backward(dh_t, dc_next, step_cache):
    """One timestep back of CIFG: ``peephole_step_backward`` with (Y9), (Y10).

    dh_t (N, H): the whole gradient reaching h_t ((B1) already summed); dc_next (N, H): the gradient
    reaching c_t from step t+1. The output gate comes first: a_o depends on c_t (P3), so dc_t needs da_o.
    Returns dx_t (N, D) (None for token ids), dh_prev, dc_prev (N, H), and this step's terms of
    dWx (D, 4H), dWh (H, 4H), db (4H,), dp (3, H).
    """
    x_t, h_prev, c_prev, Wx, Wh, p, i, f, g, o, c_t, tanh_c = step_cache
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    dao = do_ * o * (1 - o)  # (B8) sigmoid'(a) = o (1 - o)
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2) + dao * p[2]  # (P4) (B2) plus the path c_t -> a_o
    di = dc_t * g - dc_t * c_prev  # (Y9) di_t = dc_t g_t - df_t, since f_t = 1 - i_t
    df = dc_t * c_prev  # (B5) df_t = dc_t c_{t-1}
    dg = dc_t * i  # (B6) dg_t = dc_t i_t
    dai = di * i * (1 - i)  # (B8)
    daf = np.zeros_like(df)  # (Y10) a_f feeds nothing: zero gradient
    dag = dg * (1 - g**2)  # (B9) tanh'(a) = 1 - g^2
    dc_prev = dc_t * f + dai * p[0] + daf * p[1]  # (P5) (B7) plus the paths c_{t-1} -> a_i, a_f
    dp_i = (dai * c_prev).sum(axis=0)  # (P6) this step's term of dp_i = sum over n of da_i c_{t-1}
    dp_f = (daf * c_prev).sum(axis=0)  # (P6) this step's term of dp_f = sum over n of da_f c_{t-1}
    dp_o = (dao * c_t).sum(axis=0)  # (P7) this step's term of dp_o = sum over n of da_o c_t
    dp = np.stack([dp_i, dp_f, dp_o])  # (3, H), rows i, f, o
    da = np.concatenate([dai, daf, dag, dao], axis=1)  # da_t, (N, 4H) in the order i, f, g, o
    dh_prev = da @ Wh.T  # (B10) dh_{t-1} (via step t) = da_t Wh^T
    dWh = h_prev.T @ da  # (B13) this step's term h_{t-1}^T da_t
    db = da.sum(axis=0)  # (B14) this step's term
    if x_t.ndim == 1:
        dx_t = None  # token ids have no gradient
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x_t, da)  # (E2) row token_n of dWx gets da_t[n] (scatter-add)
    else:
        dx_t = da @ Wx.T  # (B11) dx_t = da_t Wx^T
        dWx = x_t.T @ da  # (B12) this step's term x_t^T da_t
    return dx_t, dh_prev, dc_prev, dWx, dWh, db, dp


CELL = peephole_cell("cifg", cifg_step_forward, cifg_step_backward)
