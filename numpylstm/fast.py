"""The fast LSTM layer: the same numbers as ``textbook.py``, computed faster. Read textbook.py first.

``numpylstm/textbook.py`` is the LSTM as the derivation writes it, one labelled equation per line, one
timestep per function call. This file is its optimised twin: the same public pair ``lstm_forward`` /
``lstm_backward`` (same arguments, shapes and results; tests hold the two equal to 1e-13 in float64), with
the arithmetic rearranged for speed: the input GEMM hoisted out of the time loop, one tanh for all four
gates over pre-scaled weights, the backward factors computed for all T before the loop, time-major
contiguous slices, weight gradients as one GEMM after the loop, reused buffers (``Workspace``), and one-hot
input as a row gather whose gradient is a GEMM. ``derivations/10_making_it_fast.md`` walks from textbook.py
to this file one transformation at a time, each stated as an equality. The parts of the pair that are not in
a time loop are functions of their own (``lstm_input_tm``, ``recurrent_blocks``, ``lstm_backward_factors_tm``,
``lstm_input_grad_tm``, ``lstm_weight_grads_tm``), each one of chapter 10's transformations under its own
name, so that the pair's two loops read short.

Derivation of the equations themselves: ``derivations/02_forward.md`` (labels F1-F5, E1) and
``derivations/03_backward.md`` (labels B1-B14, E2). The comment on each line that computes a number says
what that line computes and names the equation it is part of; where the fast form computes only a factor
of an equation (the rest comes on a later line), the comment says so.

Shapes: N batch, T timesteps, D input features, H hidden size (TF's ``lstm_size``). The four gates are fused
along one 4H axis in PyTorch's order **i, f, g, o**: columns ``[0:H]`` input gate, ``[H:2H]`` forget gate,
``[2H:3H]`` cell candidate, ``[3H:4H]`` output gate.

The public pair ``lstm_forward`` / ``lstm_backward`` is batch-first like ``nn.LSTM(batch_first=True)``.
Internally everything is time-major (T, N, ...), so that the slice for one timestep is a contiguous (N, ...)
block; ``LSTMModel`` (through ``engines.py``) calls the time-major pair ``lstm_forward_tm`` /
``lstm_backward_tm`` and never transposes between layers.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import _checks as chk


def sigmoid(z, out=None):
    """Logistic function, computed as ``0.5 * tanh(z / 2) + 0.5`` (same value as 1 / (1 + exp(-z))).

    tanh saturates instead of overflowing, so this is finite and warning-free for any finite z (try 1e4);
    like ``np.tanh`` it maps +-inf to 1 and 0 and lets NaN through. z: any real array-like (ints become
    float64, bools are refused: see ``_checks``); out: an optional float array of z's shape to write into.
    Returns an array of z's shape (a NumPy scalar for a scalar z).
    """
    z = chk.numeric("z", z)
    if out is not None and (not isinstance(out, np.ndarray) or out.dtype not in chk.FLOAT_DTYPES
                            or out.shape != z.shape):
        raise ValueError(f"out must be a float32 or float64 array of z's shape {z.shape}; got {chk.describe(out)}"
                         + (f" of shape {out.shape}" if isinstance(out, np.ndarray) else ""))
    scalar = z.ndim == 0 and out is None
    if out is None:
        out = np.empty(z.shape, z.dtype)
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    np.multiply(out, 0.5, out=out)
    np.add(out, 0.5, out=out)
    return out[()] if scalar else out


@lru_cache(maxsize=None)
def _gate_scale(H: int, dtype: np.dtype) -> np.ndarray:
    """The vector s = [1/2 (i), 1/2 (f), 1 (g), 1/2 (o)] along 4H, read-only.

    With it all four activations of (F2) and (F3) are *one* tanh over the fused (N, 4H) block:
    sigmoid(a) = s * tanh(s * a) + s for the i, f, o blocks, and tanh(a) = 1 * tanh(1 * a) + 0 for g.
    """
    s = np.full(4 * H, 0.5, dtype=dtype)
    s[2 * H : 3 * H] = 1.0
    s.flags.writeable = False
    return s


@lru_cache(maxsize=None)
def _gate_shift(H: int, dtype: np.dtype) -> np.ndarray:
    """The vector shift = [1/2 (i), 1/2 (f), 0 (g), 1/2 (o)] along 4H, read-only: sigmoid = s tanh(s a) + shift."""
    s = _gate_scale(H, dtype).copy()
    s[2 * H : 3 * H] = 0.0
    s.flags.writeable = False
    return s


@lru_cache(maxsize=16)
def _gate_rows(H: int, N: int, dtype: np.dtype):
    """s, shift and s^2 as (N, 4H) arrays, read-only.

    Elementwise operations between two contiguous (N, 4H) arrays run several times faster than broadcasting
    a (4H,) row against one when H is small (NumPy then loops over N short rows), so small blocks get real
    copies on N rows; large blocks (where the per-row cost no longer matters) get zero-copy broadcast views,
    so the cache never holds more than a few MB.
    """
    s, shift = _gate_scale(H, dtype), _gate_shift(H, dtype)
    if N * 4 * H <= 1 << 16:
        rows = [np.tile(v, (N, 1)) for v in (s, shift, s * s)]
    else:
        rows = [np.broadcast_to(v, (N, 4 * H)) for v in (s, shift, s * s)]
    for r in rows:
        r.flags.writeable = False
    return tuple(rows)


GEMM_COLUMNS = 64


def _column_blocks(n):
    """Slices cutting n = 4H output columns into blocks of GEMM_COLUMNS (one slice when n < 4 GEMM_COLUMNS).

    The recurrent product h_{t-1} Wh has few rows (N, the batch) and many columns (4H). OpenBLAS (0.3.31,
    SkylakeX kernel, on an AMD EPYC) runs such a wide, flat product below its peak: measured on one thread,
    float32, on an idle machine, (32 x 256) @ (256 x 1024) takes 211 us as one GEMM and 171 us as sixteen
    (32 x 256) @ (256 x 64) products on contiguous column blocks of the weights (N 32, H 192: 109 -> 98 us;
    N 64, H 128: 90 -> 83); for the sine model's 4H = 80 one GEMM is faster (derivations/10_making_it_fast.md,
    section 10.11). ``benchmarks/gemm_shapes.py`` re-measures this.
    """
    if n < 4 * GEMM_COLUMNS:
        return [slice(0, n)]
    return [slice(k, min(k + GEMM_COLUMNS, n)) for k in range(0, n, GEMM_COLUMNS)]


# The time loops' products are small (N rows): a BLAS thread pool gains little on them and, on a busy machine,
# loses badly (a thread that waits for a descheduled partner: 1.6 ms instead of 0.28 for N 32, H 256 on two
# shared cores). So the loops run them on LOOP_BLAS_THREADS threads (None: whatever NumPy's BLAS is set to),
# while the big products before and after the loops (input projection, dx, dWx, dWh) keep all of BLAS's
# threads. Switching goes through threadpoolctl (installed with numpylstm; where it cannot drive the BLAS, nothing
# is switched); about 16 us per loop.
LOOP_BLAS_THREADS = 1
_blas = None  # threadpoolctl's controller of NumPy's BLAS, made on first use; False when unavailable


def _loop_blas_threads(macs, pin=True):
    """A context manager holding NumPy's BLAS to LOOP_BLAS_THREADS threads (a no-op when it already uses no more).

    macs: multiply-adds of the loop's largest product. Below 2^18 = 65536 x 4 (OpenBLAS's own threshold,
    SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD) OpenBLAS uses one thread anyway: nothing to switch.
    pin=False: a no-op.
    """
    if LOOP_BLAS_THREADS is None or not pin or macs < 1 << 18:
        return nullcontext()
    blas = blas_controller()
    if not blas or all(lib.num_threads <= LOOP_BLAS_THREADS for lib in blas.lib_controllers):
        return nullcontext()
    return blas.limit(limits=LOOP_BLAS_THREADS)


def blas_controller():
    """threadpoolctl's controller of NumPy's BLAS (made on first use), or False when it is unavailable."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - imported on first use

            _blas = ThreadpoolController().select(user_api="blas")
        except Exception:  # noqa: BLE001 - not installed, or a BLAS it cannot drive: leave the threads alone
            _blas = False
    return _blas


SMALL_LAYER_MACS = 1 << 22


def _layer_blas_threads(x, Wx, Wh):
    """One BLAS thread (LOOP_BLAS_THREADS) for a whole layer call when even its biggest products are small.

    A layer whose hoisted products (T N x max(D, H) x 4H) have fewer than SMALL_LAYER_MACS = 2^22 multiply-adds,
    like the sine model's (T 20, N 64, H 20: 2^21), gains nothing from a second thread on them and loses
    much on a busy machine (two shared cores, 2 threads: 110 ms per sine-model step instead of 2.3).
    """
    T, N = x.shape[:2]
    H = Wh.shape[0]
    hoisted = T * N * 4 * H * max(Wx.shape[0], H)
    return _loop_blas_threads(hoisted, hoisted < SMALL_LAYER_MACS)


class Workspace:
    """Buffers kept from one call to the next, so that a training loop does not allocate its big arrays anew.

    Each fresh multi-megabyte ``np.empty`` is memory the operating system must map and zero page by page on
    first touch; at the sine model's sizes that cost about a third of a training step. ``LSTMModel`` gives
    every layer a Workspace, a set for each thread that calls it (``engines.Scratch``); ``buffer(name, shape,
    dtype)`` returns the array kept under ``name`` (allocating only when the shape or dtype changed), so an
    array handed out is overwritten by the next call: a Workspace is never shared by two threads. Without a
    Workspace (``work=None``, the public functions) every call allocates fresh arrays.
    """

    def __init__(self):
        self._buffers = {}
        self._views = {}

    def buffer(self, name, shape, dtype):
        a = self._buffers.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._buffers[name] = np.empty(shape, dtype)
        return a

    def __getstate__(self):
        """A copy (``copy.deepcopy``, pickle) starts empty: its buffers are scratch space, and cached views of
        copied buffers would point into the original's memory, not the copy's."""
        return {"_buffers": {}, "_views": {}}

    def views(self, name, arrays, build):
        """``build()``'s result (views of the buffers ``arrays``), made once and kept while those buffers stay
        the same arrays (rebuilt when one was reallocated for another shape). Slicing costs a few tenths of a
        microsecond a view; a time loop over views made in advance, one set per step, saves that on every step
        of every call (``wavefront.py``)."""
        kept = self._views.get(name)
        if kept is None or len(kept[0]) != len(arrays) or any(a is not b for a, b in zip(kept[0], arrays)):
            kept = self._views[name] = (tuple(arrays), build())
        return kept[1]


def _fresh(name, shape, dtype):
    return np.empty(shape, dtype)


class LSTMCache(NamedTuple):
    """What the forward pass hands to the backward pass (nothing is recomputed there).

    x      (T, N, D) the input, time-major (or (T, N) integer token ids)
    Wx     (D, 4H), Wh (H, 4H): the weights
    gates  (T, N, 4H) gate activations i, f, g, o after their nonlinearities
    cs     (T+1, N, H) cell states, cs[0] = c0
    tcs    (T, N, H)   tanh(c_t)
    hs     (T+1, N, H) hidden states, hs[0] = h0
    """

    x: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    gates: np.ndarray
    cs: np.ndarray
    tcs: np.ndarray
    hs: np.ndarray


def lstm_input_tm(x, Wx, b, work=None):
    """The input part of (F1) for all T steps at once, pre-scaled for the one tanh: (x_t Wx + b) s, (T, N, 4H).

    x (T, N, D) floats or (T, N) token ids; Wx (D, 4H); b (4H,). It does not depend on the recurrence, so
    ``lstm_forward_tm`` computes it before its loop. The result is
    the ``gates`` buffer of ``work`` when one is given: the loop turns it into the gate activations in place.
    """
    T, N = x.shape[:2]
    H = Wx.shape[1] // 4
    hoisted = T * N * 4 * H * max(Wx.shape[0], H)
    with _loop_blas_threads(hoisted, hoisted < SMALL_LAYER_MACS):  # as _layer_blas_threads: small, one thread
        new = _fresh if work is None else work.buffer
        dt = Wx.dtype
        s = _gate_scale(H, dt)
        # Wx s, b s: the weights pre-scaled by s (column block by column block), so that the loop's pre-activation
        # is already s a_t, the argument of the one tanh of (F2)-(F3). s is 1/2 or 1, so this is exact.
        Wxs, bs = Wx * s, b * s
        gates = new("gates", (T, N, 4 * H), dt)
        flat = gates.reshape(T * N, 4 * H)
        # (F1), input part for all T at once: gates[t] = (x_t Wx + b) s, written straight into the gates buffer
        if x.ndim == 2:
            np.take(Wxs + bs, x.reshape(-1), axis=0, out=flat)  # (E1) onehot(x_t) Wx s + b s: rows of (Wx + b) s
        else:
            x2 = x.reshape(T * N, -1)
            if x2.shape[1] == 1:
                np.multiply(x2, Wxs, out=flat)  # (F1) x_t Wx s, all t; D = 1: an outer product (BLAS ~4x slower)
            else:
                np.matmul(x2, Wxs, out=flat)  # (F1) x_t Wx s for all t: one GEMM (T*N, D) @ (D, 4H)
            np.add(flat, bs, out=flat)  # (F1) ... + b s
        return gates


def recurrent_blocks(Wh):
    """Wh s, the recurrent weights pre-scaled for the one tanh, as contiguous column blocks: [(cols, Wh s[:, cols])].

    h_{t-1} (Wh s) is, block of columns by block of columns, h_{t-1} (Wh s)[:, cols]: the same numbers; see
    ``_column_blocks`` for why it pays (one block, all of Wh s, when 4H is small). ``lstm_forward_tm`` makes
    them once per call.
    """
    H = Wh.shape[0]
    Whs = Wh * _gate_scale(H, Wh.dtype)  # Wh s: scaled like Wx and b (in lstm_input_tm)
    return [(c, np.ascontiguousarray(Whs[:, c])) for c in _column_blocks(4 * H)]


def lstm_forward_tm(x, h0, c0, Wx, Wh, b, work=None):
    """Time-major forward pass of one LSTM layer (no validation; see ``lstm_forward``).

    x (T, N, D) floats, or (T, N) integer token ids (one-hot input done as a row gather of Wx, (E1));
    h0, c0 (N, H) or None for zeros; Wx (D, 4H); Wh (H, 4H); b (4H,).
    work: an optional ``Workspace`` whose buffers hold the results (and are reused by its next call).
    Returns hs (T, N, H), (hT, cT) each (N, H), cache. Derivation: derivations/02_forward.md.
    """
    with _layer_blas_threads(x, Wx, Wh):  # a small layer: all its products on one BLAS thread
        new = _fresh if work is None else work.buffer
        T, N = x.shape[:2]
        H = Wh.shape[0]
        dt = Wh.dtype
        s_rows, shift_rows, _ = _gate_rows(H, N, dt)
        gates = lstm_input_tm(x, Wx, b, work)  # (F1) input part, all T: (x_t Wx + b) s
        blocks = recurrent_blocks(Wh)  # Wh s by column blocks, for (F1)'s h_{t-1} Wh s
        hs = new("hs", (T + 1, N, H), dt)
        cs = new("cs", (T + 1, N, H), dt)
        # hs[k] holds h_k and cs[k] holds c_k, k = 0..T. The loop index t (0-based) is the derivation's step t+1,
        # so in the comments below hs[t], cs[t] are that step's h_{t-1}, c_{t-1} and hs[t+1], cs[t+1] its h_t, c_t.
        hs[0] = 0.0 if h0 is None else h0  # h_0
        cs[0] = 0.0 if c0 is None else c0  # c_0
        tcs = new("tcs", (T, N, H), dt)
        rec = np.empty((N, 4 * H), dt)
        ig = np.empty((N, H), dt)
        with _loop_blas_threads(N * H * 4 * H):  # the loop's small products on LOOP_BLAS_THREADS threads
            for t in range(T):
                a = gates[t]  # a view: the lines below turn this step's pre-activation into its activations in place
                for c, Whs_c in blocks:
                    np.matmul(hs[t], Whs_c, out=rec[:, c])  # (F1) recurrent part h_{t-1} Wh s, all four gates, by columns
                np.add(a, rec, out=a)  # (F1) s a_t = (x_t Wx + h_{t-1} Wh + b) s
                np.tanh(a, out=a)  # tanh(s a_t): on the g block this is already (F3) g_t = tanh(a_t)
                np.multiply(a, s_rows, out=a)  # (F2) s tanh(s a_t): i, f, o blocks 1/2 tanh(a_t / 2); g block unchanged
                np.add(a, shift_rows, out=a)  # (F2) + shift: i, f, o = 1/2 tanh(a_t / 2) + 1/2 = sigmoid(a_t); g + 0
                i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
                np.multiply(f, cs[t], out=cs[t + 1])  # (F4) first term f_t c_{t-1}, written into c_t's slot
                np.multiply(i, g, out=ig)  # (F4) second term i_t g_t
                np.add(cs[t + 1], ig, out=cs[t + 1])  # (F4) c_t = f_t c_{t-1} + i_t g_t
                np.tanh(cs[t + 1], out=tcs[t])  # (F5) tanh(c_t), kept for (B2) and (B3)
                np.multiply(o, tcs[t], out=hs[t + 1])  # (F5) h_t = o_t tanh(c_t)
        cache = LSTMCache(x, Wx, Wh, gates, cs, tcs, hs)
        return hs[1:], (hs[T], cs[T]), cache


def lstm_backward_factors_tm(cache: LSTMCache, work=None):
    """The factors of BPTT that depend only on the forward pass, for all T steps at once: (dA, dtanhc).

    dA (T, N, 4H): each block of da_t without its dc_t or dh_t factor (the loop multiplies that in, in place);
    dtanhc (T, N, H): o_t (1 - tanh^2 c_t), the factor of (B2)'s second term. ``lstm_backward_tm`` computes
    them before its loop. Both live in ``work``.
    """
    with _layer_blas_threads(cache.x, cache.Wx, cache.Wh):
        new = _fresh if work is None else work.buffer
        gates, cs, tcs = cache.gates, cache.cs, cache.tcs
        T, N, H4 = gates.shape
        H = H4 // 4
        dt = gates.dtype
        i, f, g, o = (gates[:, :, k * H : (k + 1) * H] for k in range(4))  # (T, N, H) views of the activations
        _, shift_rows, s2_rows = _gate_rows(H, N, dt)
        # dA will hold da_t = dL/da_t for every t: the one array all weight gradients come from. Each block of
        # da_t is a product of three factors, e.g. da^f_t = dc_t * c_{t-1} * f_t (1 - f_t) ((B5) then (B8)). Before
        # the loop dA gets, for all T at once, the two factors that do not depend on dc_t or dh_t; step t then
        # multiplies dA[t] in place by dc_t (i, f, g blocks) or dh_t (o block), the factor only the loop knows.
        # First the derivative of each activation y with respect to its pre-activation, all four blocks in three
        # whole-array operations: with y = s tanh(s a) + shift (the one-tanh form of (F2)-(F3)),
        # dy/da = s^2 - (y - shift)^2, which is y (1 - y) on the i, f, o blocks and 1 - y^2 on the g block.
        dA = np.subtract(gates, shift_rows, out=new("dA", gates.shape, dt))  # (B8), (B9) y - shift = s tanh(s a)
        np.multiply(dA, dA, out=dA)  # (B8), (B9) (y - shift)^2
        np.subtract(s2_rows, dA, out=dA)  # (B8) i, f, o blocks: sigmoid' = y (1 - y); (B9) g block: tanh' = 1 - g^2
        # The factor of (B3)-(B6) that is known before the loop, times the activation's derivative just computed:
        np.multiply(dA[:, :, :H], g, out=dA[:, :, :H])  # (B4), (B8) i block: g_t i_t (1 - i_t); times dc_t below
        np.multiply(dA[:, :, H : 2 * H], cs[:-1], out=dA[:, :, H : 2 * H])  # (B5), (B8) f block: c_{t-1} f_t (1 - f_t); times dc_t below
        np.multiply(dA[:, :, 2 * H : 3 * H], i, out=dA[:, :, 2 * H : 3 * H])  # (B6), (B9) g block: i_t (1 - g_t^2); times dc_t below
        np.multiply(dA[:, :, 3 * H :], tcs, out=dA[:, :, 3 * H :])  # (B3), (B8) o block: tanh(c_t) o_t (1 - o_t); times dh_t below
        # The factor o_t (1 - tanh^2 c_t) of (B2)'s second term, for all t, built in place in one array:
        dtanhc = np.multiply(tcs, tcs, out=new("dtanhc", tcs.shape, dt))  # (B2) tanh^2 c_t
        np.subtract(1.0, dtanhc, out=dtanhc)  # (B2) 1 - tanh^2 c_t
        np.multiply(dtanhc, o, out=dtanhc)  # (B2) o_t (1 - tanh^2 c_t)
        return dA, dtanhc


def lstm_backward_tm(dhs, cache: LSTMCache, dhT=None, dcT=None, need_dx=True, work=None):
    """Time-major BPTT through one layer (no validation; see ``lstm_backward``).

    dhs (T, N, H) upstream gradient into every h_t, or None when nothing flows in from above (a head that
    reads only h_T passes its gradient as dhT instead); dhT, dcT (N, H) into the final state, or None.
    Returns dx (T, N, D) (None for token-id input or need_dx=False), dh0, dc0 (N, H), dWx (D, 4H),
    dWh (H, 4H), db (4H,); dx lives in ``work`` when one is given. Derivation: derivations/03_backward.md.
    """
    with _layer_blas_threads(cache.x, cache.Wx, cache.Wh):  # a small layer: all its products on one BLAS thread
        new = _fresh if work is None else work.buffer
        x, Wx, Wh, gates, cs, tcs, hs = cache
        T, N, H4 = gates.shape
        H = H4 // 4
        dt = gates.dtype
        f = gates[:, :, H : 2 * H]  # (T, N, H) view of the forget gate, for (B7)
        dA, dtanhc = lstm_backward_factors_tm(cache, work)  # the factors known before the loop, all T
        WhT = np.ascontiguousarray(Wh.T)  # Wh^T, contiguous, for the GEMM of (B10) in the loop
        dA_ifg = dA[:, :, : 3 * H].reshape(T, N, 3, H)  # a view with the i, f, g blocks on their own axis
        # dh, dc: the gradients carried from one iteration to the next (into h_t, c_t through step t+1);
        # at t = T they start as dhT, dcT (copied: the loop writes into them).
        dh = np.zeros((N, H), dt) if dhT is None else np.array(dhT, dtype=dt)
        dc = np.zeros((N, H), dt) if dcT is None else np.array(dcT, dtype=dt)
        # dc_b is a VIEW of dc, shape (N, 1, H), that broadcasts dc_t over the three blocks i, f, g in one multiply.
        # It shares dc's memory, so it shows the current dc_t only as long as dc is updated IN PLACE (out=dc).
        # The trap: writing (B7) the textbook way, ``dc = dc * f[t]``, binds the name dc to a NEW array; dc_b still
        # points at the old one, so from the second iteration on the i, f, g blocks are multiplied by a stale dc
        # and every gradient is silently wrong (relative errors 1-2). Any change to dc in this loop must write into
        # it (np.multiply(..., out=dc), dc *= ..., dc[...] = ...), or dc_b must be rebuilt after it.
        dc_b = dc.reshape(N, 1, H)
        tmp = np.empty((N, H), dt)
        with _loop_blas_threads(N * H4 * H):  # the loop's small products on LOOP_BLAS_THREADS threads
            for t in range(T - 1, -1, -1):
                if dhs is not None:
                    np.add(dh, dhs[t], out=dh)  # (B1) dh_t = dhs_t (from above) + dh (from step t+1, (B10) there)
                np.multiply(dh, dtanhc[t], out=tmp)  # (B2) second term: dh_t o_t (1 - tanh^2 c_t)
                np.add(dc, tmp, out=dc)  # (B2) dc_t = dc (from step t+1, (B7) there) + that term; in place (see dc_b)
                np.multiply(dh, dA[t, :, 3 * H :], out=dA[t, :, 3 * H :])  # (B3), (B8) da^o_t = dh_t tanh(c_t) o_t (1 - o_t)
                np.multiply(dc_b, dA_ifg[t], out=dA_ifg[t])  # (B4)-(B6), (B8), (B9) da^i_t, da^f_t, da^g_t: times dc_t
                np.multiply(dc, f[t], out=dc)  # (B7) dc_{t-1} (via step t) = dc_t f_t; in place, so dc_b follows (see above)
                np.matmul(dA[t], WhT, out=dh)  # (B10) dh_{t-1} (via step t) = da_t Wh^T
        dx = lstm_input_grad_tm(cache, dA, work) if x.ndim == 3 and need_dx else None  # (B11), all t
        return (dx, dh, dc, *lstm_weight_grads_tm(cache, dA, work))


def lstm_input_grad_tm(cache: LSTMCache, dA, work=None):
    """(B11) dx_t = da_t Wx^T for all T steps at once, (T, N, D), from dA (T, N, 4H) (float input only).

    Like the weight gradients it needs da_t of every step but is not part of the loop, so it is one GEMM
    after it; dx lives in ``work`` when one is given.
    """
    with _layer_blas_threads(cache.x, cache.Wx, cache.Wh):
        new = _fresh if work is None else work.buffer
        T, N, H4 = dA.shape
        Wx = cache.Wx
        dx = new("dx", (T * N, Wx.shape[0]), dA.dtype)
        return np.matmul(dA.reshape(T * N, H4), Wx.T, out=dx).reshape(T, N, -1)  # (B11) dx_t = da_t Wx^T, all t in one GEMM


def lstm_weight_grads_tm(cache: LSTMCache, dA, work=None):
    """The weight gradients (B12)-(B14) of one layer from da_t of every step: dWx (D, 4H), dWh (H, 4H), db (4H,).

    cache from ``lstm_forward_tm``; dA (T, N, 4H), da_t of every step, from ``lstm_backward_tm``'s loop. Each is
    a sum over all T steps, so it is computed after the loop as one GEMM over T*N rows.
    """
    with _layer_blas_threads(cache.x, cache.Wx, cache.Wh):
        new = _fresh if work is None else work.buffer
        x, Wx, hs = cache.x, cache.Wx, cache.hs
        T, N, H4 = dA.shape
        H = H4 // 4
        dt = dA.dtype
        dA2 = dA.reshape(T * N, H4)
        if x.ndim == 2:
            V = Wx.shape[0]
            if V <= 512:
                # (E2) dWx[v] = sum of the rows of dA whose token is v, as the GEMM onehot(x)^T dA: for small
                # vocabularies BLAS does this several times faster than np.add.at's scatter.
                onehot = new("onehot", (T * N, V), dt)
                onehot.fill(0.0)
                onehot[np.arange(T * N), x.reshape(-1)] = 1.0
                dWx = onehot.T @ dA2  # (E2)
            else:
                dWx = np.zeros_like(Wx)
                np.add.at(dWx, x.reshape(-1), dA2)  # (E2) scatter-add: row v of dWx += every row of dA whose token is v
        else:
            dWx = x.reshape(T * N, -1).T @ dA2  # (B12) dWx = sum_t x_t^T da_t, one GEMM
        dWh = hs[:-1].reshape(T * N, H).T @ dA2  # (B13) dWh = sum_t h_{t-1}^T da_t, one GEMM
        db = np.ones(T * N, dt) @ dA2  # (B14) db = sum_t sum_n da_t  (as a GEMV with a ones vector: 4x faster than .sum(axis=0))
        return dWx, dWh, db


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """Forward pass of one LSTM layer over a whole sequence, batch-first.

    Args:
        x:  (N, T, D) input sequence, or (N, T) integer token ids in [0, D) (one-hot input, (E1)).
        h0: (N, H) initial hidden state, or None for zeros.
        c0: (N, H) initial cell state, or None for zeros.
        Wx: (D, 4H) input weights, gate blocks i, f, g, o.
        Wh: (H, 4H) recurrent weights, same blocks.
        b:  (4H,) bias (PyTorch's bias_ih + bias_hh).

    Returns:
        hs: (N, T, H) the hidden state at every timestep (TF's ``outputs``; ``hs[:, -1]`` is hT),
        (hT, cT): the final state, each (N, H),
            all three read-only views of the cache (copy them to modify: ``hs * mask`` is fine, ``hs *= mask``
            is refused, since it would change what ``lstm_backward`` computes),
        cache: everything ``lstm_backward`` needs.

    Computation in the dtype of Wh (float32 or float64). Equations (F1)-(F5), derived in
    derivations/02_forward.md.
    """
    x, h0, c0, Wx, Wh, b = chk.layer_inputs(x, h0, c0, Wx, Wh, b)
    if x.ndim == 2:  # (N, T) token ids
        xt = np.ascontiguousarray(x.T)
    else:
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    hs, (hT, cT), cache = lstm_forward_tm(xt, h0, c0, Wx, Wh, b)
    out = hs.transpose(1, 0, 2), hT, cT
    for a in out:  # views of the cache: writing into them would silently change lstm_backward's result
        a.flags.writeable = False
    return out[0], (hT, cT), cache


def lstm_backward(dhs, cache: LSTMCache, dhT=None, dcT=None):
    """Backpropagation through time for one layer, batch-first; the partner of ``lstm_forward``.

    Args:
        dhs: (N, T, H) dL/dh_t for every timestep from the layer above (zeros where nothing flows in).
        cache: from ``lstm_forward``.
        dhT, dcT: (N, H) dL/dh_T and dL/dc_T from beyond the last step (the next chunk, or a loss on the
            final state), or None for zeros. Chaining these across chunks equals one full-length call.

    Returns:
        dx (N, T, D) (None for token ids), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).

    Equations (B1)-(B14), derived in derivations/03_backward.md.
    """
    if not isinstance(cache, LSTMCache):
        raise ValueError("cache must be the LSTMCache returned by lstm_forward")
    T, N, H4 = cache.gates.shape
    dhs, dhT, dcT = chk.layer_grads_in(dhs, T, N, H4 // 4, cache.gates.dtype, dhT, dcT)
    dht = np.ascontiguousarray(dhs.transpose(1, 0, 2))
    dx, dh0, dc0, dWx, dWh, db = lstm_backward_tm(dht, cache, dhT, dcT)
    if dx is not None:
        dx = dx.transpose(1, 0, 2)
    return dx, dh0, dc0, dWx, dWh, db
