"""The LSTM exactly as the derivation writes it. Read this file first.

One labelled equation per line, with the names of derivations/02_forward.md (F1)-(F5), (E1) and
derivations/03_backward.md (B1)-(B14), (E2). No buffers, no ``out=``, no pre-scaled weights: every line is a
fresh array computed from named ones. ``numpylstm/fast.py`` computes the same numbers faster (tests hold the
two equal to 1e-13); derivations/10_making_it_fast.md walks from this file to that one.

Shapes: N batch, T timesteps, D input features, H hidden size (TF's ``lstm_size``). The four gates share
one fused 4H axis in PyTorch's order i, f, g, o: columns [0:H] input gate, [H:2H] forget gate,
[2H:3H] cell candidate, [3H:4H] output gate. ``do`` is a Python keyword, so the output gate's gradient
is ``do_``.
"""

from __future__ import annotations

import numpy as np

from . import _checks as chk


def sigmoid(z):
    """The logistic function 1 / (1 + e^(-z)), elementwise, for any real array z (same shape back).

    Written so that exp never overflows: for z >= 0 it is 1 / (1 + e^(-z)); for z < 0 the same value as
    e^z / (1 + e^z). Either way the exponent is -|z| <= 0.
    """
    z = chk.numeric("z", z)
    e = np.exp(-np.abs(z))  # e^(-|z|), in (0, 1]
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def lstm_step_forward(x_t, h_prev, c_prev, Wx, Wh, b):
    """One timestep: (F1)-(F5).

    x_t (N, D) floats, or (N,) integer token ids (a one-hot input, (E1)); h_prev, c_prev (N, H) are
    h_{t-1}, c_{t-1}; Wx (D, 4H); Wh (H, 4H); b (4H,).
    Returns h_t (N, H), c_t (N, H) and step_cache, what ``lstm_step_backward`` needs.
    """
    H = Wh.shape[0]
    if x_t.ndim == 1:
        xWx = Wx[x_t]  # (E1) one-hot x_t times Wx = the rows of Wx named by the tokens, (N, 4H)
    else:
        xWx = x_t @ Wx  # (F1) input part, (N, D) @ (D, 4H)
    a = xWx + h_prev @ Wh + b  # (F1) a_t = x_t Wx + h_{t-1} Wh + b, (N, 4H)
    i = sigmoid(a[:, 0 * H:1 * H])  # (F2) input gate
    f = sigmoid(a[:, 1 * H:2 * H])  # (F2) forget gate
    g = np.tanh(a[:, 2 * H:3 * H])  # (F3) cell candidate
    o = sigmoid(a[:, 3 * H:4 * H])  # (F2) output gate
    c_t = f * c_prev + i * g  # (F4) c_t = f_t c_{t-1} + i_t g_t
    tanh_c = np.tanh(c_t)  # (F5)
    h_t = o * tanh_c  # (F5) h_t = o_t tanh(c_t)
    step_cache = (x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c)
    return h_t, c_t, step_cache


def lstm_step_backward(dh_t, dc_next, step_cache):
    """One timestep back: (B2)-(B14) for step t.

    dh_t (N, H): the whole gradient reaching h_t, (B1) already summed (from above plus from step t+1).
    dc_next (N, H): a gradient of c_t, not of c_{t+1}: the part that reaches c_t from the next step, t+1,
        which is dc_{t+1} f_{t+1} ((B7) of step t+1; dcT at t = T). The (B2) line adds the part that comes
        through h_t, giving dc_t, the whole gradient of c_t.
    Returns dx_t (N, D) (None for token ids), dh_prev (N, H) and dc_prev (N, H) (what step t sends to step
    t-1), and this step's terms of dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2)  # (B2) dc_t = dc_{t+1} f_{t+1} (= dc_next) + dh_t o_t (1 - tanh^2 c_t)
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    di = dc_t * g  # (B4) di_t = dc_t g_t
    df = dc_t * c_prev  # (B5) df_t = dc_t c_{t-1}
    dg = dc_t * i  # (B6) dg_t = dc_t i_t
    dc_prev = dc_t * f  # (B7) dc_{t-1} (via step t) = dc_t f_t
    # sigmoid' for the gates i, f, o first, then tanh' for g: da below puts the blocks back in the forward's order
    dai = di * i * (1 - i)  # (B8) sigmoid'(a) = i (1 - i)
    daf = df * f * (1 - f)  # (B8)
    dao = do_ * o * (1 - o)  # (B8)
    dag = dg * (1 - g**2)  # (B9) tanh'(a) = 1 - g^2
    da = np.concatenate([dai, daf, dag, dao], axis=1)  # da_t, (N, 4H): blocks i, f, g, o as (F1) sliced a_t
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
    return dx_t, dh_prev, dc_prev, dWx, dWh, db


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """Forward pass over a whole sequence, batch-first: ``lstm_step_forward`` for t = 1..T.

    x (N, T, D) floats, or (N, T) integer token ids in [0, D); h0, c0 (N, H) or None for zeros;
    Wx (D, 4H); Wh (H, 4H); b (4H,). Computes in Wh's dtype (float32 or float64).
    Returns hs (N, T, H) (TF's ``outputs``), (hT, cT) each (N, H), and cache: the list of T step caches.
    """
    x, h0, c0, Wx, Wh, b = chk.layer_inputs(x, h0, c0, Wx, Wh, b)
    N, T = x.shape[:2]
    H = Wh.shape[0]
    h = np.zeros((N, H), Wh.dtype) if h0 is None else h0
    c = np.zeros((N, H), Wh.dtype) if c0 is None else c0
    hs = np.zeros((N, T, H), Wh.dtype)
    cache = []
    for t in range(T):
        h, c, step_cache = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        hs[:, t] = h
        cache.append(step_cache)
    return hs, (h, c), cache


def lstm_backward(dhs, cache, dhT=None, dcT=None):
    """Backpropagation through time, batch-first: ``lstm_step_backward`` for t = T..1.

    dhs (N, T, H): dL/dh_t from outside the recurrence (the layer above or the head) at every step.
    cache: from ``lstm_forward``. dhT, dcT (N, H): gradient into the final state from beyond step T, or
    None for zeros.
    Returns dx (N, T, D) (None for token ids), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    if not isinstance(cache, list) or not cache or len(cache[0]) != 10:
        raise ValueError("cache must be the list of step caches returned by textbook.lstm_forward")
    x_0, h_prev, _, Wx, Wh = cache[0][:5]
    T, (N, H) = len(cache), h_prev.shape
    dhs, dhT, dcT = chk.layer_grads_in(dhs, T, N, H, Wh.dtype, dhT, dcT)
    dh_next = np.zeros((N, H), Wh.dtype) if dhT is None else dhT  # what step t+1 sends back to h_t
    dc_next = np.zeros((N, H), Wh.dtype) if dcT is None else dcT  # ... and to c_t
    dx = None if x_0.ndim == 1 else np.zeros((N, T, Wx.shape[0]), Wh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], Wh.dtype)
    for t in reversed(range(T)):
        dh_t = dhs[:, t] + dh_next  # (B1) dh_t = dhs_t + da_{t+1} Wh^T, the second term held in dh_next
        # the step returns dh_prev, dc_prev: what step t sends back to step t-1. In the next iteration, at step
        # t-1, that is what came from the next step, so the same arrays are called dh_next, dc_next here.
        dx_t, dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(dh_t, dc_next, cache[t])
        if dx is not None:
            dx[:, t] = dx_t
        dWx += dWx_t  # (B12) dWx = sum over t of x_t^T da_t
        dWh += dWh_t  # (B13) dWh = sum over t of h_{t-1}^T da_t
        db += db_t  # (B14) db = sum over t and n of da_t
    return dx, dh_next, dc_next, dWx, dWh, db
