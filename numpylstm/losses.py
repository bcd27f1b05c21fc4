"""Losses: each returns (loss, dL/dy). Derivation: derivations/05_head_losses.md."""

from __future__ import annotations

import numpy as np


def mse(y, target):
    """Mean squared error over all M elements of y (any shape; target the same shape)."""
    diff = y - target
    M = diff.size
    loss = float(np.vdot(diff, diff)) / M  # (L1) (1/M) sum (y - t)^2
    return loss, diff * (2.0 / M)  # (L2) dy = 2 (y - t) / M


def softmax_ce(logits, target):
    """Mean softmax cross-entropy. logits (P, O), target (P,) integer classes in [0, O)."""
    P = logits.shape[0]
    rows = np.arange(P)
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1)
    loss = float(np.log(s).sum() - shifted[rows, target].sum()) / P  # (L3) mean of logsumexp - z_target
    e /= s[:, None]  # softmax
    e[rows, target] -= 1.0
    e /= P  # (L4) dz = (softmax(z) - onehot(t)) / P
    return loss, e
