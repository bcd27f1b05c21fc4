"""The plain (Elman) tanh RNN, written like ``textbook.py``: the cell the LSTM was invented to fix.

    h_t = tanh(x_t Wx + h_{t-1} Wh + b)

One labelled equation per line, with the names of derivations/11_why_lstm.md: forward (R1), (R2); backward
(R3)-(R9). The chapter derives them, shows why the gradient (R3) -> (R4) -> (R9) carried back through time
shrinks or grows geometrically, and how the LSTM's cell path (B7) escapes that.

Shapes: N batch, T timesteps, D input features, H hidden size. Batch-first like ``textbook.lstm_forward``;
(N, T) integer token ids are accepted as a one-hot input, a row gather of Wx as in (E1) / (E2).
"""

from __future__ import annotations

import numpy as np

from . import _checks as chk

__all__ = ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward"]


def rnn_step_forward(x_t, h_prev, Wx, Wh, b):
    """One timestep: (R1), (R2).

    x_t (N, D) floats, or (N,) integer token ids; h_prev (N, H) is h_{t-1}; Wx (D, H); Wh (H, H); b (H,).
    Returns h_t (N, H) and step_cache, what ``rnn_step_backward`` needs.
    """
    if x_t.ndim == 1:
        xWx = Wx[x_t]  # (E1) one-hot x_t times Wx = the rows of Wx named by the tokens, (N, H)
    else:
        xWx = x_t @ Wx  # (R1) input part, (N, D) @ (D, H)
    a = xWx + h_prev @ Wh + b  # (R1) a_t = x_t Wx + h_{t-1} Wh + b, (N, H)
    h_t = np.tanh(a)  # (R2) h_t = tanh(a_t)
    step_cache = (x_t, h_prev, Wx, Wh, h_t)
    return h_t, step_cache


def rnn_step_backward(dh_t, step_cache):
    """One timestep back: (R4)-(R9) for step t.

    dh_t (N, H): the whole gradient reaching h_t, (R3) already summed (from outside plus from step t+1).
    Returns dx_t (N, D) (None for token ids), dh_prev (N, H) (what step t sends to step t-1), and this
    step's terms of dWx (D, H), dWh (H, H), db (H,).
    """
    x_t, h_prev, Wx, Wh, h_t = step_cache
    da = dh_t * (1 - h_t**2)  # (R4) da_t = dh_t (1 - h_t^2), tanh'(a) = 1 - tanh^2(a)
    dh_prev = da @ Wh.T  # (R9) dh_{t-1} (via step t) = da_t Wh^T
    dWh = h_prev.T @ da  # (R7) this step's term h_{t-1}^T da_t
    db = da.sum(axis=0)  # (R8) this step's term
    if x_t.ndim == 1:
        dx_t = None  # token ids have no gradient
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x_t, da)  # (E2) row token_n of dWx gets da_t[n] (scatter-add)
    else:
        dx_t = da @ Wx.T  # (R5) dx_t = da_t Wx^T
        dWx = x_t.T @ da  # (R6) this step's term x_t^T da_t
    return dx_t, dh_prev, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """Forward pass over a whole sequence, batch-first: ``rnn_step_forward`` for t = 1..T.

    Derivation: derivations/11_why_lstm.md. x (N, T, D) floats, or (N, T) integer token ids in [0, D);
    h0 (N, H) or None for zeros; Wx (D, H); Wh (H, H); b (H,). Computes in Wh's dtype.
    Returns hs (N, T, H), hT (N, H) and cache: the list of T step caches.
    """
    x, h0, _, Wx, Wh, b = chk.layer_inputs(x, h0, None, Wx, Wh, b, gates=1)
    N, T = x.shape[:2]
    H = Wh.shape[0]
    h = np.zeros((N, H), Wh.dtype) if h0 is None else h0
    hs = np.zeros((N, T, H), Wh.dtype)
    cache = []
    for t in range(T):
        h, step_cache = rnn_step_forward(x[:, t], h, Wx, Wh, b)
        hs[:, t] = h
        cache.append(step_cache)
    return hs, h, cache


def rnn_backward(dhs, cache, dhT=None):
    """Backpropagation through time, batch-first: ``rnn_step_backward`` for t = T..1.

    Derivation: derivations/11_why_lstm.md. dhs (N, T, H): dL/dh_t from outside the recurrence at every
    step; cache: from ``rnn_forward``; dhT (N, H): gradient into the final state from beyond step T, or None.
    Returns dx (N, T, D) (None for token ids), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    if not isinstance(cache, list) or not cache or len(cache[0]) != 5:
        raise ValueError("cache must be the list of step caches returned by rnn.rnn_forward")
    x_0, h_prev, Wx, Wh = cache[0][:4]
    T, (N, H) = len(cache), h_prev.shape
    dhs, dhT, _ = chk.layer_grads_in(dhs, T, N, H, Wh.dtype, dhT)
    dh_next = np.zeros((N, H), Wh.dtype) if dhT is None else dhT  # what step t+1 sends back to h_t
    dx = None if x_0.ndim == 1 else np.zeros((N, T, Wx.shape[0]), Wh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, Wh.dtype)
    for t in reversed(range(T)):
        dh_t = dhs[:, t] + dh_next  # (R3) dh_t = dhs_t + dh_t (via step t+1)
        dx_t, dh_next, dWx_t, dWh_t, db_t = rnn_step_backward(dh_t, cache[t])
        if dx is not None:
            dx[:, t] = dx_t
        dWx += dWx_t  # (R6) dWx = sum over t of x_t^T da_t
        dWh += dWh_t  # (R7) dWh = sum over t of h_{t-1}^T da_t
        db += db_t  # (R8) db = sum over t and n of da_t
    return dx, dh_next, dWx, dWh, db
