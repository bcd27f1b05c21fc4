"""Textbook versions of three library functions, as exercise reference solutions.

``losses.softmax_ce`` and ``optim.Adam`` / ``optim.clip_grad_norm`` are written for speed and safety (checked
inputs, in-place buffers); the exercises need them the way ``textbook.py`` writes the LSTM: one labelled
equation per line, fresh arrays, shapes in the docstring. tests/test_exercises.py holds each equal to the
library's own function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["softmax_ce_backward", "adam_step", "clip_grad_norm"]


def softmax_ce_backward(logits, target):
    """Mean softmax cross-entropy and its gradient: (L3), (L4) of derivations/05_head_losses.md.

    logits (P, O) floats z; target (P,) integer classes in [0, O).
    Returns loss (a Python float) and dlogits (P, O), dL/dz.
    """
    P = logits.shape[0]
    rows = np.arange(P)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (L3) z - z_max: exp never overflows
    e = np.exp(shifted)
    log_sum = np.log(e.sum(axis=1))  # (L3) log sum_k e^(z_k - z_max)
    loss = float((log_sum - shifted[rows, target]).mean())  # (L3) mean of logsumexp - z_target
    softmax = e / e.sum(axis=1, keepdims=True)  # (L4) softmax(z)
    onehot = np.eye(logits.shape[1])[target]  # (L4) onehot(t), (P, O)
    dlogits = (softmax - onehot) / P  # (L4) dz = (softmax(z) - onehot(t)) / P
    return loss, dlogits


def adam_step(theta, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step for one parameter array: (O3)-(O5) of derivations/07_optimizers.md.

    theta, grad, m, v: arrays of one shape (the parameter, its gradient, the first and second moments);
    t: this step's number, counting from 1. Returns the new (theta, m, v), fresh arrays (nothing in place).
    """
    m = beta1 * m + (1 - beta1) * grad  # (O3) m <- beta1 m + (1 - beta1) g
    v = beta2 * v + (1 - beta2) * grad**2  # (O3) v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1**t)  # (O4) m_hat = m / (1 - beta1^t)
    v_hat = v / (1 - beta2**t)  # (O4) v_hat = v / (1 - beta2^t)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)  # (O5) theta <- theta - lr m_hat / (sqrt(v_hat) + eps)
    return theta, m, v


def clip_grad_norm(grads, max_norm):
    """Global-norm clipping, in place: (O6) of derivations/07_optimizers.md.

    grads: dict name -> float array (any shapes); max_norm > 0. If the global L2 norm n of all arrays
    together exceeds max_norm, every array is multiplied by max_norm / n (in place: ``g *= ...``).
    Returns n, the norm before clipping, as a Python float.
    """
    n = float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))  # (O6) n = sqrt(sum of all g^2)
    if n > max_norm:
        for g in grads.values():
            g *= max_norm / n  # (O6) g <- g max_norm / n, in place
    return n
