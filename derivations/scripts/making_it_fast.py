"""derivations/10_making_it_fast.md: from numpylstm/textbook.py to numpylstm/fast.py, one change at a time.

Run from the repository root (about a minute; on a quiet machine, for figures worth quoting):

    PYTHONPATH=. python derivations/scripts/making_it_fast.py            # checks, then the timing table
    PYTHONPATH=. python derivations/scripts/making_it_fast.py --check    # only the equality checks
    PYTHONPATH=. python derivations/scripts/making_it_fast.py --into derivations/10_making_it_fast.md
        # ... and also replace the marked block of the chapter with what it printed

Each variant below is the previous one with ONE transformation applied; ``VARIANTS`` lists them in order,
from the textbook pair to fast.py with reused buffers (the way ``LSTMModel`` calls it). Every variant has the
same interface, ``run(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT)`` with batch-first x (N, T, D) or token ids (N, T)
and dhs (N, T, H), and returns (hs, hT, cT, dx, dh0, dc0, dWx, dWh, db): one layer forward and backward.

1. ``check()``: every variant equals the textbook to 1e-13 relative (float64) on a grid of shapes (T = 1,
   N = 1, D = 1, D > H, token ids with V <= 512 and V > 512, nonzero h0 / c0, dhT / dcT). The tests run it.
2. ``main()``: times forward + backward of one layer per variant, float32, one BLAS thread (threadpoolctl),
   at the sine model's bottom layer (N 64, T 20, D 1, H 20) and the char-RNN's (N 32, T 50, 77 token ids,
   H 192). Each variant is timed in bursts of consecutive calls (~40 ms each), all variants interleaved
   within a round so that machine drift hits them alike; the median burst over the rounds is reported. It
   prints the Markdown table the chapter shows, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

from numpylstm import _checks as chk
from numpylstm import fast, textbook
from numpylstm.textbook import sigmoid

SINE = dict(N=64, T=20, D=1, H=20, tokens=False)
CHARS = dict(N=32, T=50, D=77, H=192, tokens=True)


def _validated(core):
    """The same input checks for every variant (the textbook and fast public pairs make them too)."""
    def run(x, h0, c0, Wx, Wh, b, dhs, dhT=None, dcT=None):
        x, h0, c0, Wx, Wh, b = chk.layer_inputs(x, h0, c0, Wx, Wh, b)
        N, T = x.shape[:2]
        H = Wh.shape[0]
        dhs, dhT, dcT = chk.layer_grads_in(dhs, T, N, H, Wh.dtype, dhT, dcT)
        zeros = np.zeros((N, H), Wh.dtype)
        return core(x, zeros if h0 is None else h0, zeros if c0 is None else c0, Wx, Wh, b, dhs,
                    zeros if dhT is None else dhT, zeros if dcT is None else dcT)
    run.__name__ = core.__name__
    run.__doc__ = core.__doc__
    return run


# ------------------------------------------------------------------------------------------ 0. textbook
def textbook_pair(x, h0, c0, Wx, Wh, b, dhs, dhT=None, dcT=None):
    """0. numpylstm/textbook.py as it is: a loop over lstm_step_forward, a loop over lstm_step_backward."""
    hs, (hT, cT), cache = textbook.lstm_forward(x, h0, c0, Wx, Wh, b)
    return (hs, hT, cT) + textbook.lstm_backward(dhs, cache, dhT, dcT)


def _textbook_backward(dhs, cache, dhT, dcT):
    """textbook.lstm_backward's loop without its input checks (the variants check their inputs once)."""
    x_0, _, _, Wx, Wh = cache[0][:5]
    dh_next, dc_next = dhT, dcT
    dx = None if x_0.ndim == 1 else np.zeros(dhs.shape[:2] + (Wx.shape[0],), Wh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], Wh.dtype)
    for t in reversed(range(len(cache))):
        dx_t, dh_next, dc_next, dWx_t, dWh_t, db_t = textbook.lstm_step_backward(dhs[:, t] + dh_next, dc_next,
                                                                                  cache[t])
        if dx is not None:
            dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dh_next, dc_next, dWx, dWh, db


# ------------------------------------------------------------------------------- 1. input GEMM hoisted
def _input_part(x, Wx, b):
    """x_t Wx + b for every t at once: (E1) a gather of rows of (Wx + b) for token ids, an outer product
    (broadcasting) for D = 1, one GEMM over all N*T rows otherwise. Shape x.shape[:2] + (4H,)."""
    if x.ndim == 2:
        return (Wx + b)[x]
    if x.shape[2] == 1:
        return x * Wx[0] + b
    return (x.reshape(-1, x.shape[2]) @ Wx + b).reshape(x.shape[:2] + (Wx.shape[1],))


@_validated
def hoisted_input(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """1. The input part of (F1) for all T steps before the loop; the backward is still textbook's."""
    N, T = x.shape[:2]
    H = Wh.shape[0]
    xWb = _input_part(x, Wx, b)  # (N, T, 4H)
    h, c = h0, c0
    hs, cache = np.zeros((N, T, H), Wh.dtype), []
    for t in range(T):
        h_prev, c_prev = h, c
        a = xWb[:, t] + h_prev @ Wh  # (F1): only the recurrent part is left in the loop
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        hs[:, t] = h
        cache.append((x[:, t], h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c))
    return (hs, h, c) + _textbook_backward(dhs, cache, dhT, dcT)


# ----------------------------------------------------------------------------- 2. one tanh, four gates
def gate_constants(H, dt):
    """s = [1/2 | 1/2 | 1 | 1/2] and shift = [1/2 | 1/2 | 0 | 1/2] along 4H, blocks i, f, g, o."""
    s = np.full(4 * H, 0.5, dt)
    s[2 * H:3 * H] = 1.0
    shift = s.copy()
    shift[2 * H:3 * H] = 0.0
    return s, shift


@_validated
def one_tanh(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """2. sigma(a) = tanh(a/2)/2 + 1/2: one np.tanh over the (N, 4H) block, weights pre-scaled by s."""
    N, T = x.shape[:2]
    H = Wh.shape[0]
    s, shift = gate_constants(H, Wh.dtype)
    Wxs, bs, Whs = Wx * s, b * s, Wh * s  # exact: s is 1/2 or 1
    xWb = _input_part(x, Wxs, bs)  # s * (x_t Wx + b)
    h, c = h0, c0
    hs, cache = np.zeros((N, T, H), Wh.dtype), []
    for t in range(T):
        h_prev, c_prev = h, c
        y = s * np.tanh(xWb[:, t] + h_prev @ Whs) + shift  # [i | f | g | o], (F2) and (F3) at once
        i, f, g, o = y[:, :H], y[:, H:2 * H], y[:, 2 * H:3 * H], y[:, 3 * H:]
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        hs[:, t] = h
        cache.append((x[:, t], h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c))
    return (hs, h, c) + _textbook_backward(dhs, cache, dhT, dcT)


# --------------------------------------------------------------------------------------- 3. time-major
def _forward_tm(x, h0, c0, Wx, Wh, b):
    """Variant 2's forward pass on time-major x (T, N, ...): every per-step slice is a contiguous block.
    Returns gates (T, N, 4H) (the activations), cs, hs (T+1, N, H) with cs[0] = c0, hs[0] = h0, tcs."""
    T, N = x.shape[:2]
    H = Wh.shape[0]
    s, shift = gate_constants(H, Wh.dtype)
    Wxs, bs, Whs = Wx * s, b * s, Wh * s
    gates = _input_part(x, Wxs, bs)  # (T, N, 4H); gates[t] is contiguous
    hs, cs = np.zeros((T + 1, N, H), Wh.dtype), np.zeros((T + 1, N, H), Wh.dtype)
    tcs = np.zeros((T, N, H), Wh.dtype)
    hs[0], cs[0] = h0, c0
    for t in range(T):
        y = s * np.tanh(gates[t] + hs[t] @ Whs) + shift
        gates[t] = y
        i, f, g, o = y[:, :H], y[:, H:2 * H], y[:, 2 * H:3 * H], y[:, 3 * H:]
        cs[t + 1] = f * cs[t] + i * g
        tcs[t] = np.tanh(cs[t + 1])
        hs[t + 1] = o * tcs[t]
    return gates, cs, tcs, hs


def _to_tm(a):
    return np.ascontiguousarray(a.swapaxes(0, 1))


@_validated
def time_major(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """3. Time-major (T, N, ...) arrays inside: one transpose in, views out; the step backward unchanged."""
    xt, dht = _to_tm(x), _to_tm(dhs)
    T, N = xt.shape[:2]
    H = Wh.shape[0]
    gates, cs, tcs, hs = _forward_tm(xt, h0, c0, Wx, Wh, b)
    dx = None if x.ndim == 2 else np.zeros((T, N, Wx.shape[0]), Wh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next, dc_next = dhT, dcT
    for t in reversed(range(T)):
        y = gates[t]
        step_cache = (xt[t], hs[t], cs[t], Wx, Wh, y[:, :H], y[:, H:2 * H], y[:, 2 * H:3 * H], y[:, 3 * H:],
                      tcs[t])
        dx_t, dh_next, dc_next, dWx_t, dWh_t, db_t = textbook.lstm_step_backward(dht[t] + dh_next, dc_next,
                                                                                  step_cache)
        if dx is not None:
            dx[t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return (hs[1:].swapaxes(0, 1), hs[T], cs[T], None if dx is None else dx.swapaxes(0, 1),
            dh_next, dc_next, dWx, dWh, db)


# ------------------------------------------------------------------ 4. weight gradients after the loop
def _weight_grads(xt, Wx, hs, dA, onehot_gemm=False):
    """(B11)-(B14), (E2) for all T steps at once from dA (T, N, 4H) = the stacked da_t."""
    T, N, H4 = dA.shape
    H = H4 // 4
    dA2 = dA.reshape(T * N, H4)
    dx = None
    if xt.ndim == 2:
        V = Wx.shape[0]
        if onehot_gemm and V <= 512:
            onehot = np.zeros((T * N, V), Wx.dtype)
            onehot[np.arange(T * N), xt.reshape(-1)] = 1.0
            dWx = onehot.T @ dA2  # (E2) as the GEMM onehot(x)^T dA
        else:
            dWx = np.zeros_like(Wx)
            np.add.at(dWx, xt.reshape(-1), dA2)  # (E2) one scatter-add over all T*N rows
    else:
        x2 = xt.reshape(T * N, -1)
        dx = (dA2 @ Wx.T).reshape(T, N, -1).swapaxes(0, 1)  # (B11), one GEMM
        dWx = x2.T @ dA2  # (B12), one GEMM
    dWh = hs[:-1].reshape(T * N, H).T @ dA2  # (B13), one GEMM
    db = np.ones(T * N, dA.dtype) @ dA2  # (B14), one GEMV
    return dx, dWx, dWh, db


@_validated
def grads_after_loop(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """4. The loop stores da_t in dA[t]; dx, dWx, dWh, db are one GEMM each after it (db a GEMV)."""
    xt, dht = _to_tm(x), _to_tm(dhs)
    T, N = xt.shape[:2]
    H = Wh.shape[0]
    gates, cs, tcs, hs = _forward_tm(xt, h0, c0, Wx, Wh, b)
    dA = np.zeros_like(gates)
    dh, dc = dhT, dcT
    for t in reversed(range(T)):
        y = gates[t]
        i, f, g, o = y[:, :H], y[:, H:2 * H], y[:, 2 * H:3 * H], y[:, 3 * H:]
        dh = dht[t] + dh  # (B1)
        dc = dc + dh * o * (1 - tcs[t] ** 2)  # (B2)
        do_, di, df, dg = dh * tcs[t], dc * g, dc * cs[t], dc * i  # (B3)-(B6)
        dA[t] = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do_ * o * (1 - o)], axis=1)
        dc = dc * f  # (B7)
        dh = dA[t] @ Wh.T  # (B10)
    dx, dWx, dWh, db = _weight_grads(xt, Wx, hs, dA)
    return hs[1:].swapaxes(0, 1), hs[T], cs[T], dx, dh, dc, dWx, dWh, db


# --------------------------------------------------------------------- 5. backward factors hoisted
def _backward_hoisted(dht, dhT, dcT, gates, cs, tcs, Wh):
    """Everything of (B2)-(B9) that does not depend on dh_t or dc_t, for all T before the loop."""
    T, N, H4 = gates.shape
    H = H4 // 4
    s, shift = gate_constants(H, gates.dtype)
    i, g, o = gates[:, :, :H], gates[:, :, 2 * H:3 * H], gates[:, :, 3 * H:]
    f = gates[:, :, H:2 * H]
    dA = s * s - (gates - shift) ** 2  # dy/da of y = s tanh(s a) + shift: (B8), (B9) on all blocks
    dA *= np.concatenate([g, cs[:-1], i, tcs], axis=2)  # (B4), (B5), (B6), (B3): the forward factors
    dtanhc = o * (1 - tcs**2)  # (B2)'s forward factor
    dA_ifg = dA[:, :, :3 * H].reshape(T, N, 3, H)  # a view: the i, f, g blocks on their own axis
    assert np.shares_memory(dA_ifg, dA)
    dh, dc = dhT, dcT
    for t in reversed(range(T)):
        dh = dh + dht[t]  # (B1)
        dc = dc + dh * dtanhc[t]  # (B2)
        dA[t, :, 3 * H:] *= dh  # (B3), (B8): o block done
        dA_ifg[t] *= dc[:, None, :]  # (B4)-(B6), (B8), (B9): i, f, g blocks done, one broadcast multiply
        dc = dc * f[t]  # (B7); dc[:, None, :] is taken anew at each step, so no stale view
        dh = dA[t] @ Wh.T  # (B10)
    return dA, dh, dc


@_validated
def factors_hoisted(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """5. The forward-pass factors of (B2)-(B9) for all T at once; per step, two multiplies are left."""
    xt, dht = _to_tm(x), _to_tm(dhs)
    T = xt.shape[0]
    gates, cs, tcs, hs = _forward_tm(xt, h0, c0, Wx, Wh, b)
    dA, dh, dc = _backward_hoisted(dht, dhT, dcT, gates, cs, tcs, Wh)
    dx, dWx, dWh, db = _weight_grads(xt, Wx, hs, dA)
    return hs[1:].swapaxes(0, 1), hs[T], cs[T], dx, dh, dc, dWx, dWh, db


# --------------------------------------------------------------------------- 6. one-hot gradient GEMM
@_validated
def onehot_gemm(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """6. (E2) for V <= 512 as onehot(x)^T dA, one GEMM, instead of np.add.at (no change for floats)."""
    xt, dht = _to_tm(x), _to_tm(dhs)
    T = xt.shape[0]
    gates, cs, tcs, hs = _forward_tm(xt, h0, c0, Wx, Wh, b)
    dA, dh, dc = _backward_hoisted(dht, dhT, dcT, gates, cs, tcs, Wh)
    dx, dWx, dWh, db = _weight_grads(xt, Wx, hs, dA, onehot_gemm=True)
    return hs[1:].swapaxes(0, 1), hs[T], cs[T], dx, dh, dc, dWx, dWh, db


# ------------------------------------------------------------------------- 7, 8. fast.py itself
def _fast(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT, work):
    hs, (hT, cT), cache = fast.lstm_forward_tm(_to_tm(x), h0, c0, Wx, Wh, b, work=work)
    dx, dh0, dc0, dWx, dWh, db = fast.lstm_backward_tm(_to_tm(dhs), cache, dhT, dcT, work=work)
    return (hs.swapaxes(0, 1), hT, cT, None if dx is None else dx.swapaxes(0, 1), dh0, dc0, dWx, dWh, db)


@_validated
def in_place(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """7. fast.py without a Workspace: every operation writes into an existing array (out=)."""
    return _fast(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT, None)


_WORK = fast.Workspace()


@_validated
def reused_buffers(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT):
    """8. fast.py with a Workspace, as LSTMModel calls it: the big arrays are reused from call to call."""
    return _fast(x, h0, c0, Wx, Wh, b, dhs, dhT, dcT, _WORK)


VARIANTS = [
    ("textbook.py", textbook_pair),
    ("+ input GEMM hoisted out of the loop", hoisted_input),
    ("+ one tanh for the four gates", one_tanh),
    ("+ time-major contiguous slices", time_major),
    ("+ weight gradients as one GEMM after the loop", grads_after_loop),
    ("+ backward factors hoisted", factors_hoisted),
    ("+ one-hot gradient as a GEMM", onehot_gemm),
    ("+ in place (`out=`): fast.py", in_place),
    ("+ reused buffers (Workspace): fast.py as the model calls it", reused_buffers),
]
NAMES = ["hs", "hT", "cT", "dx", "dh0", "dc0", "dWx", "dWh", "db"]


# --------------------------------------------------------------------------------------------- checks
def problem(N, T, D, H, tokens, dtype=np.float64, seed=0, state=True, dtail=True):
    """Random inputs of one layer; D is the vocabulary V for token ids."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D)).astype(dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D + H)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(D + H)).astype(dtype)
    b = (0.1 * rng.standard_normal(4 * H)).astype(dtype)
    st = lambda: (0.5 * rng.standard_normal((N, H))).astype(dtype) if state else None  # noqa: E731
    h0, c0 = st(), st()
    dhs = rng.standard_normal((N, T, H)).astype(dtype)
    dhT, dcT = (st(), st()) if dtail else (None, None)
    return x, h0, c0, Wx, Wh, b, dhs, dhT, dcT


CHECK_SHAPES = [  # (N, T, D, H, tokens)
    (3, 5, 4, 6, False), (1, 1, 1, 1, False), (4, 1, 3, 2, False), (1, 6, 1, 5, False), (2, 4, 9, 3, False),
    (3, 5, 7, 4, True), (2, 4, 600, 3, True), (1, 1, 5, 2, True),
]


def check(tol=1e-13):
    """Every variant equals the textbook pair in float64 to ``tol`` relative (max |a - b| / max |b|).
    Returns the worst relative difference; raises AssertionError naming variant, shape and output."""
    worst = 0.0
    for shape in CHECK_SHAPES:
        for state, dtail in ((True, True), (False, False)):
            args = problem(*shape, state=state, dtail=dtail)
            ref = textbook_pair(*args)
            for name, run in VARIANTS[1:]:
                got = run(*args)
                for key, r, o in zip(NAMES, ref, got):
                    if r is None or o is None:
                        assert r is None and o is None, f"{name}, {shape}: {key} is None in one of the two"
                        continue
                    assert o.shape == r.shape, f"{name}, {shape}: {key} shape {o.shape} != {r.shape}"
                    err = float(np.max(np.abs(o - r)) / max(np.max(np.abs(r)), 1e-300))
                    assert err <= tol, f"{name}, (N, T, D, H, tokens) = {shape}: {key} differs by {err:.1e}"
                    worst = max(worst, err)
    return worst


# --------------------------------------------------------------------------------------------- timing
def machine():
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')})"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return (f"{cpu}; NumPy {np.__version__}, {', '.join(blas) or 'BLAS unknown'}, 1 thread; "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def time_variants(size, rounds, burst_s):
    """Median seconds per forward + backward call of each variant at ``size`` (float32); None for step 6
    (the one-hot gradient) on float input, where it is step 5's code."""
    args = problem(size["N"], size["T"], size["D"], size["H"], size["tokens"], dtype=np.float32,
                   state=False, dtail=False)
    timed = [k for k, (_, run) in enumerate(VARIANTS) if size["tokens"] or run is not onehot_gemm]
    counts = {}
    for k in timed:  # warm up, then size each burst to about burst_s
        run = VARIANTS[k][1]
        run(*args)
        t0 = time.perf_counter()
        run(*args)
        counts[k] = max(1, round(burst_s / max(time.perf_counter() - t0, 1e-6)))
    samples = {k: [] for k in timed}
    for _ in range(rounds):
        for k in timed:
            run = VARIANTS[k][1]
            t0 = time.perf_counter()
            for _ in range(counts[k]):
                run(*args)
            samples[k].append((time.perf_counter() - t0) / counts[k])
    # None: the variant runs the same code as the one before it at this size (step 6 for float input)
    return [statistics.median(samples[k]) if k in samples else None for k in range(len(VARIANTS))]


TABLE_HEAD = ("| step | sine layer: ms | vs previous | vs textbook | char-RNN layer: ms | vs previous | vs textbook |",
              "|---|---:|---:|---:|---:|---:|---:|")


def table(rounds=25, burst_s=0.04):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        sine = time_variants(SINE, rounds, burst_s)
        chars = time_variants(CHARS, rounds, burst_s)
    lines = list(TABLE_HEAD)
    for k, (name, _) in enumerate(VARIANTS):
        cells = [f"{k}. {name}"]
        for size, ts in ((SINE, sine), (CHARS, chars)):
            if ts[k] is None:
                cells += ["same code as step 5", "", ""]
                continue
            prev = next(t for t in reversed(ts[:k]) if t is not None) if k else None
            cells += [f"{ts[k] * 1e3:.2f}", "" if k == 0 else f"{prev / ts[k]:.2f}x",
                      "" if k == 0 else f"{ts[0] / ts[k]:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only the float64 equality checks, no timing")
    p.add_argument("--rounds", type=int, default=25, help="interleaved timing rounds per size (default 25)")
    p.add_argument("--into", metavar="FILE.md", help="also write the output into FILE.md, replacing the block "
                   "between its two <!-- making_it_fast.py output: begin/end --> markers")
    args = p.parse_args(argv)
    if args.into:  # fail before a minute of timing, not after
        _replace_marked_block(args.into, None)
    worst = check()
    print(f"all {len(VARIANTS) - 1} variants equal textbook.py (float64, {len(CHECK_SHAPES)} shapes, "
          f"worst relative difference {worst:.1e})", file=sys.stderr)
    if args.check:
        return
    out = (f"Forward + backward of one layer, float32, median of {args.rounds} interleaved bursts of ~40 ms.\n"
           f"Sine: N {SINE['N']}, T {SINE['T']}, D {SINE['D']}, H {SINE['H']} (the sine model's bottom layer); "
           f"char-RNN: N {CHARS['N']}, T {CHARS['T']}, {CHARS['D']} token ids, H {CHARS['H']}.\n"
           f"\nMachine: {machine()}.\n\n{table(args.rounds)}\n")
    print(out, end="")
    if args.into:
        _replace_marked_block(args.into, out)
        print(f"written into {args.into}", file=sys.stderr)


BEGIN, END = "<!-- making_it_fast.py output: begin -->\n", "<!-- making_it_fast.py output: end -->"


def _replace_marked_block(path, text):
    """Put text between the markers of the Markdown file at path (text None: only check the markers)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = fh.read()
    except OSError as e:
        sys.exit(f"--into: cannot read {path}: {e.strerror}")
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        sys.exit(f"--into: {path} must hold the two markers {BEGIN.strip()} and {END}, once each, in that order")
    if text is not None:
        head, rest = doc.split(BEGIN)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(head + BEGIN + text + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
