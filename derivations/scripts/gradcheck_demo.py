"""Numbers quoted in derivations/08_gradient_checking.md: central differences on one LSTM layer.

Run from the repository root:  PYTHONPATH=. python derivations/scripts/gradcheck_demo.py

1. Correct BPTT against central differences (G1) for several step sizes eps: the truncation / roundoff
   trade-off.
2. What a failing check looks like, with (G1) at eps = 1e-5 on three random problems: the correct code, then
   a copy of a backward function with one line changed (numpylstm itself is not modified):
   - "missing (B7)": in textbook.py's ``lstm_step_backward``, dc_prev = 0 instead of dc_t * f, i.e. the
     c_{t+1} -> c_t path is cut;
   - "(B10) with scaled Wh": in fast.py's ``lstm_backward_tm``, dh_{t-1} = da_t (Wh * s)^T, reusing the
     forward pass's pre-scaled weights (a bug only the optimised kernel can have: textbook.py scales nothing).
Relative error (G2) with floor 1e-3. Everything in float64.
"""

import inspect
import sys
import textwrap

import numpy as np

import numpylstm.fast as layers
from numpylstm import fast, textbook

FLOOR = 1e-3


def patched(func, old, new, *callers):
    """The namespace of func's module with a copy of func in which the line ``old`` reads ``new``; the
    ``callers`` (functions of the same module) are recompiled there so that they call the broken copy."""
    ns = dict(vars(sys.modules[func.__module__]))
    src = textwrap.dedent(inspect.getsource(func))
    assert src.count(old) == 1, f"line not found in {func.__name__}, update this script: {old}"
    exec(compile(src.replace(old, new), f"<patched {func.__name__}>", "exec"), ns)
    for caller in callers:
        exec(compile(textwrap.dedent(inspect.getsource(caller)), f"<{caller.__name__}>", "exec"), ns)
    return ns


def textbook_backward(backward):
    """textbook.py's batch-first pair behind the time-major interface of ``analytic`` below."""
    def run(R, cache):
        return backward(R.transpose(1, 0, 2), cache)
    run.forward = lambda x, h0, c0, *params: textbook.lstm_forward(x.transpose(1, 0, 2), h0, c0, *params)
    return run


def problem(seed, N=3, T=6, D=4, H=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, D))
    h0 = rng.standard_normal((N, H)) * 0.5
    c0 = rng.standard_normal((N, H)) * 0.5
    params = [rng.standard_normal((D, 4 * H)) * 0.5, rng.standard_normal((H, 4 * H)) * 0.5,
              rng.standard_normal(4 * H) * 0.5]
    R = rng.standard_normal((T, N, H))  # L = sum R * h: dL/dh_t = R_t, a "random direction" loss
    return x, h0, c0, params, R


def loss(x, h0, c0, params, R):
    hs, _, _ = layers.lstm_forward_tm(x, h0, c0, *params)
    return float(np.sum(R * hs))


def analytic(backward, x, h0, c0, params, R):
    forward = getattr(backward, "forward", layers.lstm_forward_tm)
    _, _, cache = forward(x, h0, c0, *params)
    return backward(R, cache)[3:]  # dWx, dWh, db


def numeric(x, h0, c0, params, R, eps):
    grads = []
    for p in params:
        num = np.zeros_like(p)
        for k in np.ndindex(p.shape):
            old = p[k]
            p[k] = old + eps
            fp = loss(x, h0, c0, params, R)
            p[k] = old - eps
            fm = loss(x, h0, c0, params, R)
            p[k] = old
            num[k] = (fp - fm) / (2 * eps)  # (G1)
        grads.append(num)
    return grads


def rel_error(a, n):
    return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), FLOOR)  # (G2)


def summary(an, nu):
    rel = np.concatenate([rel_error(a, n).ravel() for a, n in zip(an, nu)])
    diff = np.sqrt(sum(np.sum((a - n) ** 2) for a, n in zip(an, nu)))
    norm = np.sqrt(sum(np.sum(n ** 2) for n in nu))
    return rel.max(), np.median(rel), diff / norm


if __name__ == "__main__":
    prob = problem(0)
    good = analytic(layers.lstm_backward_tm, *prob)
    print("correct BPTT, seed 0: error vs step size eps (max rel, median rel over all of dWx, dWh, db)")
    for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        mx, med, _ = summary(good, numeric(*prob, eps))
        print(f"  eps {eps:.0e}: max rel {mx:.1e}  median rel {med:.1e}")

    # Part 2 uses plain (G1), the formula a learner writes first, at the best step of part 1 (eps 1e-5), and
    # the same three problems for the correct code and for each broken copy (gradcheck.py itself uses (G3)).
    broken = {
        "none (correct)": fast.lstm_backward_tm,
        "missing (B7)": textbook_backward(patched(
            textbook.lstm_step_backward, "dc_prev = dc_t * f", "dc_prev = np.zeros_like(dc_t)",
            textbook.lstm_backward)["lstm_backward"]),
        "(B10) with scaled Wh": patched(
            fast.lstm_backward_tm, "WhT = np.ascontiguousarray(Wh.T)",
            "WhT = np.ascontiguousarray((Wh * _gate_scale(H, dt)).T)")["lstm_backward_tm"],
    }
    for name, bwd in broken.items():
        print(f"{name}: (G1) eps 1e-5 (max rel, median rel, ||a - n|| / ||n||)")
        for seed in range(3):
            prob = problem(seed)
            mx, med, nr = summary(analytic(bwd, *prob), numeric(*prob, 1e-5))
            print(f"  seed {seed}: max rel {mx:.1e}  median rel {med:.1e}  norm rel {nr:.1e}")
