"""One LSTM layer over a whole sequence: forward pass and backpropagation through time (BPTT).

Derivation: ``derivations/02_forward.md`` (labels F1-F5, E1) and ``derivations/03_backward.md`` (labels
B1-B14, E2). Every line below that computes a number names the equation it implements.

Shapes: N batch, T timesteps, D input features, H hidden size (TF's ``lstm_size``). The four gates are fused
along one 4H axis in PyTorch's order **i, f, g, o**: columns ``[0:H]`` input gate, ``[H:2H]`` forget gate,
``[2H:3H]`` cell candidate, ``[3H:4H]`` output gate.

The public pair ``lstm_forward`` / ``lstm_backward`` is batch-first like ``nn.LSTM(batch_first=True)``.
Internally everything is time-major (T, N, ...), so that the slice for one timestep is a contiguous (N, ...)
block; ``LSTMModel`` calls the time-major pair ``lstm_forward_tm`` / ``lstm_backward_tm`` directly and
never transposes between layers.
"""

from __future__ import annotations

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


class Workspace:
    """Buffers kept from one call to the next, so that a training loop does not allocate its big arrays anew.

    Each fresh multi-megabyte ``np.empty`` is memory the operating system must map and zero page by page on
    first touch; at the sine model's sizes that cost about a third of a training step. ``LSTMModel`` gives
    every layer a Workspace; ``buffer(name, shape, dtype)`` returns the array kept under ``name`` (allocating
    only when the shape or dtype changed), so an array handed out is overwritten by the next call. Without
    a Workspace (``work=None``, the public functions) every call allocates fresh arrays.
    """

    def __init__(self):
        self._buffers = {}

    def buffer(self, name, shape, dtype):
        a = self._buffers.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._buffers[name] = np.empty(shape, dtype)
        return a


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


def lstm_forward_tm(x, h0, c0, Wx, Wh, b, work=None):
    """Time-major forward pass of one LSTM layer (no validation; see ``lstm_forward``).

    x (T, N, D) floats, or (T, N) integer token ids (one-hot input done as a row gather of Wx, (E1));
    h0, c0 (N, H) or None for zeros; Wx (D, 4H); Wh (H, 4H); b (4H,).
    work: an optional ``Workspace`` whose buffers hold the results (and are reused by its next call).
    Returns hs (T, N, H), (hT, cT) each (N, H), cache. Derivation: derivations/02_forward.md.
    """
    new = _fresh if work is None else work.buffer
    T, N = x.shape[:2]
    H = Wh.shape[0]
    dt = Wh.dtype
    s = _gate_scale(H, dt)
    s_rows, shift_rows, _ = _gate_rows(H, N, dt)
    # Pre-scale the weights by s for the one-tanh trick of (F2)-(F3). s is 1/2 or 1, so this is exact.
    Wxs, bs, Whs = Wx * s, b * s, Wh * s
    gates = new("gates", (T, N, 4 * H), dt)
    flat = gates.reshape(T * N, 4 * H)
    # (F1), input part for all T at once: a_t = (x_t Wx + b) s, written straight into the gates buffer
    if x.ndim == 2:
        np.take(Wxs + bs, x.reshape(-1), axis=0, out=flat)  # (E1) one-hot input: gather rows of (Wx + b) s
    else:
        x2 = x.reshape(T * N, -1)
        if x2.shape[1] == 1:
            np.multiply(x2, Wxs, out=flat)  # (F1) D = 1: an outer product (BLAS is ~4x slower at K = 1)
        else:
            np.matmul(x2, Wxs, out=flat)  # (F1) one GEMM (T*N, D) @ (D, 4H)
        np.add(flat, bs, out=flat)  # (F1) + b
    hs = new("hs", (T + 1, N, H), dt)
    cs = new("cs", (T + 1, N, H), dt)
    hs[0] = 0.0 if h0 is None else h0
    cs[0] = 0.0 if c0 is None else c0
    tcs = new("tcs", (T, N, H), dt)
    rec = np.empty((N, 4 * H), dt)
    ig = np.empty((N, H), dt)
    for t in range(T):
        a = gates[t]
        np.matmul(hs[t], Whs, out=rec)  # (F1) recurrent part: all four gates in one GEMM
        np.add(a, rec, out=a)  # (F1) a_t = x_t Wx + h_{t-1} Wh + b   (times s)
        np.tanh(a, out=a)  # (F2) i, f, o = sigmoid(.); (F3) g = tanh(.)
        np.multiply(a, s_rows, out=a)  # (F2)
        np.add(a, shift_rows, out=a)  # (F2)
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        np.multiply(f, cs[t], out=cs[t + 1])  # (F4) c_t = f * c_{t-1} ...
        np.multiply(i, g, out=ig)  # (F4)           ... + i * g
        np.add(cs[t + 1], ig, out=cs[t + 1])  # (F4)
        np.tanh(cs[t + 1], out=tcs[t])  # (F5) h_t = o * tanh(c_t)
        np.multiply(o, tcs[t], out=hs[t + 1])  # (F5)
    cache = LSTMCache(x, Wx, Wh, gates, cs, tcs, hs)
    return hs[1:], (hs[T], cs[T]), cache


def lstm_backward_tm(dhs, cache: LSTMCache, dhT=None, dcT=None, need_dx=True, work=None):
    """Time-major BPTT through one layer (no validation; see ``lstm_backward``).

    dhs (T, N, H) upstream gradient into every h_t, or None when nothing flows in from above (a head that
    reads only h_T passes its gradient as dhT instead); dhT, dcT (N, H) into the final state, or None.
    Returns dx (T, N, D) (None for token-id input or need_dx=False), dh0, dc0 (N, H), dWx (D, 4H),
    dWh (H, 4H), db (4H,); dx lives in ``work`` when one is given. Derivation: derivations/03_backward.md.
    """
    new = _fresh if work is None else work.buffer
    x, Wx, Wh, gates, cs, tcs, hs = cache
    T, N, H4 = gates.shape
    H = H4 // 4
    dt = gates.dtype
    i, f, g, o = (gates[:, :, k * H : (k + 1) * H] for k in range(4))  # (T, N, H) views of the activations
    _, shift_rows, s2_rows = _gate_rows(H, N, dt)
    # dA will hold dL/da_t for every t: the one array all weight gradients come from. Before the loop it
    # holds, for all T at once, everything in (B3)-(B9) that does not depend on dc_t or dh_t; step t then multiplies
    # dA[t] in place by dc_t (i, f, g blocks) or dh_t (o block).
    # First the derivative of each activation y with respect to its pre-activation, all four blocks in three
    # whole-array operations: with y = s tanh(s a) + shift (the one-tanh form of (F2)-(F3)),
    # dy/da = s^2 - (y - shift)^2, which is y (1 - y) on the i, f, o blocks and 1 - y^2 on the g block.
    dA = np.subtract(gates, shift_rows, out=new("dA", gates.shape, dt))  # (B8), (B9)
    np.multiply(dA, dA, out=dA)  # (B8), (B9)
    np.subtract(s2_rows, dA, out=dA)  # (B8) sigmoid' = y (1 - y); (B9) tanh' = 1 - y^2
    np.multiply(dA[:, :, :H], g, out=dA[:, :, :H])  # (B4) di_t = dc_t g_t        (times i' from (B8))
    np.multiply(dA[:, :, H : 2 * H], cs[:-1], out=dA[:, :, H : 2 * H])  # (B5) df_t = dc_t c_{t-1}
    np.multiply(dA[:, :, 2 * H : 3 * H], i, out=dA[:, :, 2 * H : 3 * H])  # (B6) dg_t = dc_t i_t   (times g')
    np.multiply(dA[:, :, 3 * H :], tcs, out=dA[:, :, 3 * H :])  # (B3) do_t = dh_t tanh(c_t)  (times o')
    dtanhc = np.multiply(tcs, tcs, out=new("dtanhc", tcs.shape, dt))  # (B2) factor o_t * (1 - tanh^2 c_t), in place:
    np.subtract(1.0, dtanhc, out=dtanhc)  # (B2)
    np.multiply(dtanhc, o, out=dtanhc)  # (B2)
    WhT = np.ascontiguousarray(Wh.T)
    dA_ifg = dA[:, :, : 3 * H].reshape(T, N, 3, H)  # a view with the i, f, g blocks on their own axis
    dh = np.zeros((N, H), dt) if dhT is None else np.array(dhT, dtype=dt)
    dc = np.zeros((N, H), dt) if dcT is None else np.array(dcT, dtype=dt)
    dc_b = dc.reshape(N, 1, H)  # a view of dc that broadcasts over the three blocks i, f, g
    tmp = np.empty((N, H), dt)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            np.add(dh, dhs[t], out=dh)  # (B1) dh_t = dhs_t (from above) + dh_t (from step t+1)
        np.multiply(dh, dtanhc[t], out=tmp)  # (B2) dc_t = dc_t (from t+1) + dh_t o_t (1 - tanh^2 c_t)
        np.add(dc, tmp, out=dc)  # (B2)
        np.multiply(dh, dA[t, :, 3 * H :], out=dA[t, :, 3 * H :])  # (B3), (B8) do_t, through o's sigmoid
        np.multiply(dc_b, dA_ifg[t], out=dA_ifg[t])  # (B4)-(B6), (B8), (B9) di_t, df_t, dg_t in one multiply
        np.multiply(dc, f[t], out=dc)  # (B7) dc_{t-1} = dc_t f_t
        np.matmul(dA[t], WhT, out=dh)  # (B10) dh_{t-1} = da_t Wh^T
    dA2 = dA.reshape(T * N, H4)
    dx = None
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
            np.add.at(dWx, x.reshape(-1), dA2)  # (E2) scatter-add: the gather's gradient
    else:
        x2 = x.reshape(T * N, -1)
        if need_dx:
            dx = np.matmul(dA2, Wx.T, out=new("dx", (T * N, Wx.shape[0]), dt)).reshape(T, N, -1)  # (B11) dx_t = da_t Wx^T, all t in one GEMM
        dWx = x2.T @ dA2  # (B12) dWx = sum_t x_t^T da_t, one GEMM
    dWh = hs[:-1].reshape(T * N, H).T @ dA2  # (B13) dWh = sum_t h_{t-1}^T da_t, one GEMM
    db = np.ones(T * N, dt) @ dA2  # (B14) db = sum_t sum_n da_t  (as a GEMV: 4x faster than .sum(axis=0))
    return dx, dh, dc, dWx, dWh, db


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
