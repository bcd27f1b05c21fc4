"""A zoo of the LSTM backward-pass bugs people publish, and what the gradient check says about each.

``python -m numpylstm.gradcheck --bugs`` (or ``python -m numpylstm.bugzoo``) runs, for the correct code and for
each bug: the gradient check of one layer (the problem of ``gradcheck.check_layer``: N=2, T=3, D=4, H=3,
nonzero h0 and c0, a random-weighted loss) and a short training run (a delayed-recall task, Adam), and prints
one row: the worst relative error (G2) in each gate block (i, f, g, o) of dWx, dWh and db, and the training loss
after ``STEPS`` steps next to the correct code's. The last line is ``caught: K of K bugs``: a bug is caught when
some gate block's error exceeds ``CAUGHT = 1e-3`` while the correct code stays below ``gradcheck.LAYER_TOL``.
Derivation and the table: derivations/08_gradient_checking.md, section "A zoo of published bugs".

Each bug is a copy of one function of ``numpylstm/textbook.py`` (``lstm_step_backward``, or for the one bug that
lives outside a step, ``lstm_backward``) with the lines marked ``# BUG`` changed; everything else is textbook's
own code (tests hold each copy to textbook's source but for the marked lines). textbook.py itself never changes.
"""

from __future__ import annotations

import sys
import textwrap
import types
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _checks as chk
from . import textbook
from .gradcheck import LAYER_TOL, check_layer_pair
from .optim import Adam
from .textbook import lstm_step_backward, sigmoid

def logit(y):
    """The pre-activation a of a gate value y = sigmoid(a): ln(y / (1 - y)) (textbook's step cache holds y only)."""
    return np.log(y / (1 - y))


CAUGHT = 1e-3  # a gate block's error above this is a bug, not rounding
STEPS = 300  # training steps of the short run
GRAD_ARRAYS = ("Wx", "Wh", "b")  # the arrays with a fused 4H gate axis


# ---------------------------------------------------------------------------------------------------- the bugs
# Each function below is textbook.lstm_step_backward (or lstm_backward) with the lines marked "# BUG" changed.


def backward_no_tanh_derivative(dh_t, dc_next, step_cache):
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o  # BUG: (B2) without tanh'(c_t) = 1 - tanh^2 c_t
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


def backward_cell_gradient_dropped(dh_t, dc_next, step_cache):
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2)  # (B2) dc_t = dc_{t+1} f_{t+1} (= dc_next) + dh_t o_t (1 - tanh^2 c_t)
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    di = dc_t * g  # (B4) di_t = dc_t g_t
    df = dc_t * c_prev  # (B5) df_t = dc_t c_{t-1}
    dg = dc_t * i  # (B6) dg_t = dc_t i_t
    dc_prev = np.zeros_like(c_prev)  # BUG: (B7) dc_{t-1} = dc_t f_t not carried to step t-1
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


def backward_sigmoid_twice(dh_t, dc_next, step_cache):
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2)  # (B2) dc_t = dc_{t+1} f_{t+1} (= dc_next) + dh_t o_t (1 - tanh^2 c_t)
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    di = dc_t * g  # (B4) di_t = dc_t g_t
    df = dc_t * c_prev  # (B5) df_t = dc_t c_{t-1}
    dg = dc_t * i  # (B6) dg_t = dc_t i_t
    dc_prev = dc_t * f  # (B7) dc_{t-1} (via step t) = dc_t f_t
    # sigmoid' for the gates i, f, o first, then tanh' for g: da below puts the blocks back in the forward's order
    dai = di * sigmoid(i) * (1 - sigmoid(i))  # BUG: (B8) sigma'(z) = sigma(z)(1 - sigma(z)) at z = i = sigma(a)
    daf = df * sigmoid(f) * (1 - sigmoid(f))  # BUG: ... and at z = f: sigmoid applied twice
    dao = do_ * sigmoid(o) * (1 - sigmoid(o))  # BUG: ... and at z = o
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


def backward_sigmoid_at_preactivation(dh_t, dc_next, step_cache):
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2)  # (B2) dc_t = dc_{t+1} f_{t+1} (= dc_next) + dh_t o_t (1 - tanh^2 c_t)
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    di = dc_t * g  # (B4) di_t = dc_t g_t
    df = dc_t * c_prev  # (B5) df_t = dc_t c_{t-1}
    dg = dc_t * i  # (B6) dg_t = dc_t i_t
    dc_prev = dc_t * f  # (B7) dc_{t-1} (via step t) = dc_t f_t
    # sigmoid' for the gates i, f, o first, then tanh' for g: da below puts the blocks back in the forward's order
    dai = di * logit(i) * (1 - logit(i))  # BUG: (B8) i (1 - i) evaluated at the pre-activation a = logit(i)
    daf = df * logit(f) * (1 - logit(f))  # BUG: ... and at a^f (the cache holds f = sigma(a^f), not a^f)
    dao = do_ * logit(o) * (1 - logit(o))  # BUG: ... and at a^o
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


def backward_forget_uses_c_t(dh_t, dc_next, step_cache):
    x_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = step_cache
    dc_t = dc_next + dh_t * o * (1 - tanh_c**2)  # (B2) dc_t = dc_{t+1} f_{t+1} (= dc_next) + dh_t o_t (1 - tanh^2 c_t)
    do_ = dh_t * tanh_c  # (B3) do_t = dh_t tanh(c_t)
    di = dc_t * g  # (B4) di_t = dc_t g_t
    df = dc_t * (f * c_prev + i * g)  # BUG: (B5) with c_t = f_t c_{t-1} + i_t g_t instead of c_{t-1}
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


def backward_gates_swapped(dh_t, dc_next, step_cache):
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
    da = np.concatenate([dai, daf, dao, dag], axis=1)  # BUG: i, f, o, g (Keras' i, f, c, o misread) not i, f, g, o
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


def backward_wrong_bias_block(dh_t, dc_next, step_cache):
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
    db = np.concatenate([dai, dai, dag, dao], axis=1).sum(axis=0)  # BUG: (B14) the forget bias gets da^i
    if x_t.ndim == 1:
        dx_t = None  # token ids have no gradient
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x_t, da)  # (E2) row token_n of dWx gets da_t[n] (scatter-add)
    else:
        dx_t = da @ Wx.T  # (B11) dx_t = da_t Wx^T
        dWx = x_t.T @ da  # (B12) this step's term x_t^T da_t
    return dx_t, dh_prev, dc_prev, dWx, dWh, db


def backward_dh_not_carried(dh_t, dc_next, step_cache):
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
    dh_prev = np.zeros_like(h_prev)  # BUG: (B10) dh_{t-1} = da_t Wh^T not sent back: dh_next stays 0
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


def lstm_backward_averaged_over_time(dhs, cache, dhT=None, dcT=None):
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
        dWx += dWx_t / T  # BUG: (B12) the mean over t, but the loss is a sum over t
        dWh += dWh_t / T  # BUG: (B13) likewise
        db += db_t / T  # BUG: (B14) likewise
    return dx, dh_next, dc_next, dWx, dWh, db


@dataclass(frozen=True)
class Bug:
    """One exhibit: a short name, where it is known from (in words), and the replaced textbook function."""

    name: str
    known_from: str
    backward_step: Callable | None = None  # replaces textbook.lstm_step_backward
    backward: Callable | None = None  # replaces textbook.lstm_backward (the sequence loop)


BUGS = (
    Bug("no tanh'", "the missing tanh derivative in the h_t = o_t tanh(c_t) backward: "
        "dc_t += dh_t o_t instead of dh_t o_t (1 - tanh^2 c_t)", backward_step=backward_no_tanh_derivative),
    Bug("dc not carried", "the carried cell gradient dc_{t+1} * f_{t+1} dropped (a published repository "
        "merged a pull request deleting it because the loss still fell)", backward_step=backward_cell_gradient_dropped),
    Bug("sigmoid twice", "sigma'(z) = sigma(z)(1 - sigma(z)) evaluated at the gate's output sigma(a) instead of "
        "at its pre-activation a (the derivative is i (1 - i), not sigma(i)(1 - sigma(i)))",
        backward_step=backward_sigmoid_twice),
    Bug("sigma' at a", "sigma' applied to the pre-activation: the formula in terms of the output, i (1 - i) "
        "for i = sigma(a), evaluated at a: a (1 - a) instead of i (1 - i)",
        backward_step=backward_sigmoid_at_preactivation),
    Bug("averaged over T", "gradients averaged over time steps while the loss sums them: dW = (1/T) sum_t "
        "instead of sum_t", backward=lstm_backward_averaged_over_time),
    Bug("wrong bias block", "the wrong bias block for a gate: the forget gate's bias gradient taken from the "
        "input gate's block", backward_step=backward_wrong_bias_block),
    Bug("gates swapped", "gate blocks swapped between forward and backward: the forward slices i, f, g, o, the "
        "backward assembles da as i, f, o, g", backward_step=backward_gates_swapped),
    Bug("dh not carried", "dh_next not carried: each step's backward starts from the loss gradient at that step "
        "only (dh_{t-1} via step t is dropped)", backward_step=backward_dh_not_carried),
    Bug("df uses c_t", "an index slip in the forget gate's gradient: df_t = dc_t c_t instead of dc_t c_{t-1}",
        backward_step=backward_forget_uses_c_t),
)

CORRECT = Bug("correct", "numpylstm/textbook.py as it is")


# ---------------------------------------------------------------------------------------------------- running them


def layer_pair(bug: Bug):
    """(lstm_forward, lstm_backward): textbook.py's sequence functions with the bug's function in place.

    A replaced step runs inside textbook's own ``lstm_backward`` loop: the same code object, given a namespace
    in which the name ``lstm_step_backward`` means the bug's copy (textbook.py itself is not touched).
    """
    if bug.backward is not None:
        return textbook.lstm_forward, bug.backward
    if bug.backward_step is None:
        return textbook.lstm_forward, textbook.lstm_backward
    namespace = dict(vars(textbook), lstm_step_backward=bug.backward_step)
    loop = textbook.lstm_backward
    return textbook.lstm_forward, types.FunctionType(loop.__code__, namespace, loop.__name__, loop.__defaults__)


def gate_errors(bug: Bug, N=2, T=3, D=4, H=3, seed=0):
    """Worst relative error (G2) per gate block (i, f, g, o) over dWx, dWh and db, and over every array.

    The problem of ``gradcheck.check_layer`` (``check_layer_pair``: nonzero h0, c0, a loss
    sum(hs * R) + sum(hT * RT) + sum(cT * RC) with random R, RT, RC), run through ``layer_pair(bug)``.
    Returns (gates: array (4,), worst: float, rows).
    """
    rows = check_layer_pair(*layer_pair(bug), N, T, D, H, seed)
    gates = np.max([r.gates for r in rows if r.name in GRAD_ARRAYS], axis=0)
    return gates, max(r.max_rel for r in rows), rows


def train_loss(bug: Bug, steps=STEPS, N=16, T=10, H=8, delay=2, lr=1e-2, seed=0):
    """(first loss, mean loss of the last 20 steps) of a short run with ``layer_pair(bug)``.

    Task (delayed recall): x_t ~ N(0, 1) one number per step; the target at step t >= ``delay`` is
    x_{t - delay}, read out linearly from h_t; loss 0.5 * mean squared error (predicting 0 scores 0.5).
    Adam at ``lr``, fresh seeded batches: every bug sees the same data and the same initial weights.
    """
    forward, backward = layer_pair(bug)
    rng = np.random.default_rng(seed)
    p = {"Wx": rng.standard_normal((1, 4 * H)), "Wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H),
         "b": np.zeros(4 * H), "Wy": rng.standard_normal((H, 1)) / np.sqrt(H), "by": np.zeros(1)}
    p["b"][H:2 * H] = 1.0  # forget bias 1, as in LSTMModel
    opt = Adam(p, lr=lr)
    losses = []
    for _ in range(steps):
        x = rng.standard_normal((N, T, 1))
        hs, _, cache = forward(x, None, None, p["Wx"], p["Wh"], p["b"])
        err = (hs[:, delay:] @ p["Wy"] + p["by"]) - x[:, :-delay]  # (N, T - delay, 1)
        losses.append(0.5 * float(np.mean(err**2)))
        dy = err / err.size  # d loss / d prediction
        dhs = np.zeros_like(hs)
        dhs[:, delay:] = dy @ p["Wy"].T
        _, _, _, dWx, dWh, db = backward(dhs, cache)
        opt.step({"Wx": dWx, "Wh": dWh, "b": db, "Wy": np.einsum("nth,nto->ho", hs[:, delay:], dy),
                  "by": dy.sum(axis=(0, 1))})
    return losses[0], float(np.mean(losses[-20:]))


def run(bugs=BUGS, steps=STEPS):
    """[(bug, gates (4,), worst error, caught, final loss)] for ``CORRECT`` then each bug, and the start loss."""
    out = []
    start = None
    for bug in (CORRECT, *bugs):
        gates, worst, _ = gate_errors(bug)
        first, final = train_loss(bug, steps)
        start = first if start is None else start
        out.append((bug, gates, worst, bool(gates.max() > CAUGHT), final))
    return out, start


def main(argv=None, stream=None) -> int:
    """Print the zoo's table; the last line is ``caught: K of K bugs``. Exit status 0 if every bug is caught."""
    stream = sys.stdout if stream is None else stream
    say = lambda text="": print(text, file=stream, flush=True)  # noqa: E731
    results, start = run()
    (_, _, correct_worst, _, correct_loss), rows = results[0], results[1:]
    correct_ok = correct_worst < LAYER_TOL
    # Every line fits 100 characters, a Markdown page's code block at GitHub's column width (chapter 8 pastes it).
    say("bug zoo: each classic LSTM backward bug against the gradient check (one layer, N=2 T=3 D=4 H=3,")
    say(f"(G3) and (G2)) and a {STEPS}-step training run (delayed recall, H=8, Adam)")
    say(f"columns: worst relative error per gate block of dWx, dWh, db; caught if one exceeds {CAUGHT:g};")
    say(f"training loss (mean of the last 20 steps; {start:.4f} at step 1, ~0.5 for always predicting 0)")
    say()
    say(f"{'code':<18}{'i':>9}{'f':>9}{'g':>9}{'o':>9}  {'caught':<7}{'loss':>8}")
    for bug, gates, worst, caught, final in results:
        mark = "-" if bug is CORRECT else ("yes" if caught and correct_ok else "NO")
        errs = "".join(f"{e:>9.1e}" for e in gates)
        say(f"{bug.name:<18}{errs}  {mark:<7}{final:>8.4f}")
    say()
    say("where each is known from:")
    for bug, *_ in results:
        for k, line in enumerate(textwrap.wrap(bug.known_from, 100 - 20)):
            say(f"  {bug.name if k == 0 else '':<18}{line}")
    say()
    verdict = "below" if correct_ok else "NOT below"
    say(f"correct code: worst error over every array {correct_worst:.1e}, {verdict} the layer tolerance "
        f"{LAYER_TOL:g};")
    say(f"its training loss {correct_loss:.4f}")
    caught = sum(c for _, _, _, c, _ in rows) if correct_ok else 0
    say(f"caught: {caught} of {len(rows)} bugs")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    from ._cli import run_cli

    sys.exit(run_cli(main, "python -m numpylstm.bugzoo"))
