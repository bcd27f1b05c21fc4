"""Losses: each returns (loss, dL/dy). Derivation: derivations/05_head_losses.md.

Inputs are checked (shapes, dtypes, targets finite and in range); the predictions ``y`` / ``logits`` may be
non-finite -- a diverged model's NaN or inf then comes back as a NaN or inf loss, silently, for the training
loop to report (see the rule in ``_checks``).
"""

from __future__ import annotations

import numpy as np

from . import _checks as chk


def mse(y, target):
    """Mean squared error over all M elements of y (any shape; target the same shape)."""
    y = chk.numeric("y", y)
    target = chk.finite("target", chk.numeric("target", target, y.dtype))
    if y.shape != target.shape or y.size == 0:
        raise ValueError(f"target must have the shape of y, {y.shape} (non-empty); got shape {target.shape}")
    diff = y - target
    M = diff.size
    loss = float(np.vdot(diff, diff)) / M  # (L1) (1/M) sum (y - t)^2
    return loss, diff * (2.0 / M)  # (L2) dy = 2 (y - t) / M


def softmax_ce(logits, target):
    """Mean softmax cross-entropy. logits (P, O), target (P,) integer classes in [0, O)."""
    logits = chk.shaped("logits", chk.numeric("logits", logits), "PO", (None, None))
    P = logits.shape[0]
    target = chk.token_ids("target", target, "P", (P,), logits.shape[1])
    rows = np.arange(P)
    with np.errstate(invalid="ignore"):  # inf - inf for non-finite logits: NaN loss, no warning
        shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1)
    loss = float(np.log(s).sum() - shifted[rows, target].sum()) / P  # (L3) mean of logsumexp - z_target
    e /= s[:, None]  # softmax
    e[rows, target] -= 1.0
    e /= P  # (L4) dz = (softmax(z) - onehot(t)) / P
    return loss, e
