"""All layers of a small LSTM stack in one time loop: a wavefront through the (layer x time) grid.

Read ``textbook.py``, then ``fast.py``, first: this file computes the same numbers as a stack of
``fast.lstm_forward_tm`` / ``lstm_backward_tm`` calls (tests hold them equal to 1e-13 in float64), for the
case where that stack is slow for a reason other than arithmetic. At the sine model's size (N 64, H 20,
2 layers) every NumPy call in a time loop works on a few thousand numbers and costs about as much as its
call overhead: the step is ~700 calls, not flops. This file makes the calls fewer, not faster.

The idea. Layer l at timestep t needs h^{l-1}_t (the layer below, same step) and h^l_{t-1} (itself, one step
earlier). Both are ready one "diagonal" earlier if layer l runs one step *behind* layer l-1: at loop
iteration r ("row r") layer l computes its step t = r - l - 1. Then every input of row r is an output of
row r - 1, so all L layers of a row are independent of each other and are computed together:

- (F1) for all layers in ONE product: the block matrix W (L H, L 4H), with Wh_l s on its diagonal blocks,
  Wx_l s just above them and zeros elsewhere, (transposed) times the stacked h of row r - 1 (L H, N)
  (layer 0's x_t Wx is computed before the loop, as in fast.py);
- (F2)-(F5) as in ``fast.lstm_forward_tm``, but on (L, 4H, N) and (L, H, N) blocks: one call for all layers.

So a row costs what one layer's step costs, and there are T + L - 1 rows instead of L T steps: for the sine
model 21 rows of 10 calls instead of 40 steps of 11. The zero blocks of W are wasted multiply-adds (L^2 blocks
instead of 2L - 1), which is why this is only for small layers (``worth_it``).

Backward runs the same diagonals in reverse: dh for row r - 1, all layers, is ONE product W dA_r (dA_r
(L 4H, N)), which gives each layer both its (B10) term from itself one step later, Wh_l da^l_{t+1}, and its
(S2)/(B11) term from the layer above, Wx_{l+1} da^{l+1}_t. The weight gradients (B12)-(B13) are the blocks of
the gradient of W, a sum over rows of h_{row r-1} dA_r^T: one GEMM per layer after the loop.

Layout: examples are columns. Row r (0..T+L-1) of the arrays (R, L, ., N) holds, in its slot l, layer l at step
t = r - l - 1 as (H, N) = h^T (or (4H, N) for the gates): then a slot's gate blocks are contiguous (H, N) pieces,
and an elementwise call runs over long contiguous runs, not N short rows of H (for H = 20 that is several times
faster). Row l, slot l holds layer l's initial state (t = -1). A slot outside 0 <= t < T ("inactive": the ramp
at the start and at the end) holds zeros or finite leftovers that nothing reads: the forward loop skips it, and
its backward factors are set to zero, so it adds nothing to any gradient. derivations/10_making_it_fast.md,
section 10.14, draws the grid.

Limits: float input (not token ids), no dropout between the layers (a mask on h^{l-1} would have to apply to
the Wx block but not the Wh block of the same product). ``LSTMModel(wavefront="auto")`` uses it for a fast
LSTM stack of two or more small layers when these hold.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import fast

MAX_WIDTH = 64  # L H, the width of a row's product: above it the wasted blocks of W cost more than the calls saved
MAX_ROW_MACS = 1 << 21  # multiply-adds of one row's product, N x L H x 4 L H (the sine model: 409,600); see worth_it


def worth_it(num_layers, N, H):
    """True when the wavefront stack should beat layer-by-layer fast.py: 2+ layers, L H <= MAX_WIDTH and a row's
    product N L H 4 L H <= MAX_ROW_MACS multiply-adds. ``benchmarks/wavefront_sizes.py`` measured the rule
    (section 10.14): every size it picks took 0.51 to 0.95 of the layer-by-layer step; every size it leaves out
    with L H > 64 took 1.04 to 1.39; a few it leaves out with a big N still gain (N 1000, H 20: 0.71), so it is
    on the safe side. The input width D does not matter: layer 0's input product stays outside the loop."""
    L = num_layers
    return L >= 2 and L * H <= MAX_WIDTH and N * (L * H) * (4 * L * H) <= MAX_ROW_MACS


@lru_cache(maxsize=16)
def _gate_columns(L, H, N, dtype):
    """s, shift and s^2 (see ``fast._gate_scale``) as read-only (L, 4H, N) arrays: a column of gates per example."""
    s, shift = fast._gate_scale(H, dtype), fast._gate_shift(H, dtype)
    cols = [np.ascontiguousarray(np.broadcast_to(v[:, None], (L, 4 * H, N))) for v in (s, shift, s * s)]
    for c in cols:
        c.flags.writeable = False
    return tuple(cols)


def block_weights(layers, scaled=True):
    """The block matrix W (L H, L 4H) of one row's product; scaled: pre-scaled by s like fast.py's weights.

    layers: [(Wx, Wh, b), ...] for l = 0..L-1. Block (l, l) is Wh_l (layer l's own h_{t-1}); block (l-1, l) is
    Wx_l (layer l's input, the layer below's h_t), for l >= 1; every other block is zero. Layer 0's Wx is not
    in W: its input part is computed for all T before the loop. The forward pass uses W s (the one-tanh form of
    fast.py), the backward pass W itself (da is the gradient of the unscaled pre-activation a).
    """
    L = len(layers)
    H = layers[0][1].shape[0]
    dt = layers[0][1].dtype
    s = fast._gate_scale(H, dt) if scaled else np.ones(4 * H, dt)
    W = np.zeros((L * H, L * 4 * H), dt)
    for l, (Wx, Wh, _) in enumerate(layers):
        cols = slice(l * 4 * H, (l + 1) * 4 * H)
        W[l * H : (l + 1) * H, cols] = Wh * s  # (F1) h^l_{t-1} Wh_l (s)
        if l > 0:
            W[(l - 1) * H : l * H, cols] = Wx * s  # (F1) h^{l-1}_t Wx_l (s): layer l's input is the layer below's h
    return W


def active(r, T, L):
    """The slots (layers) that compute a real step in row r: slice(lo, hi), layer l at step r - l - 1 in [0, T)."""
    return slice(max(0, r - T), min(L, r))


class WavefrontCache(NamedTuple):
    """What the forward pass hands to the backward pass. R = T + L rows; see the module docstring's layout.

    x (T, N, D) input of layer 0; layers [(Wx, Wh, b)]; gates (R, L, 4H, N) activations i, f, g, o;
    cs, hs (R, L, H, N) cell and hidden states; tcs (R, L, H, N) tanh(c). Columns are examples: (H, N) is h^T.
    """

    x: np.ndarray
    layers: list
    gates: np.ndarray
    cs: np.ndarray
    tcs: np.ndarray
    hs: np.ndarray


def stack_forward(layers, xt, state, work):
    """Forward pass of an L-layer LSTM stack, time-major, by wavefront. Float input only, no dropout.

    layers: [(Wx, Wh, b), ...]; xt (T, N, D); state (L, 2, N, H) (c, h) per layer, or None for zeros;
    work: a ``fast.Workspace`` (its buffers hold the results and are reused by the next call).
    Returns top (T, N, H) the top layer's h_t, finals [(hT, cT)] per layer, each (N, H) (views), cache.
    """
    T, N, D = xt.shape
    L = len(layers)
    Wx0, Wh0, b0 = layers[0]
    H, dt = Wh0.shape[0], Wh0.dtype
    R = T + L
    with fast._loop_blas_threads(T * N * 4 * H * max(D, H), pin=True):  # small products: one BLAS thread
        WsT = np.ascontiguousarray(block_weights(layers).T)  # (L 4H, L H): rec = (W s)^T h, all layers' (F1) products
        gates = work.buffer("gates", (R, L, 4 * H, N), dt)
        hs = work.buffer("hs", (R, L, H, N), dt)
        cs = work.buffer("cs", (R, L, H, N), dt)
        tcs = work.buffer("tcs", (R, L, H, N), dt)
        for a in (hs, cs, tcs):  # inactive slots: zeros, so the zero blocks of W multiply finite numbers
            a.fill(0.0)
        s = fast._gate_scale(H, dt)
        # Pre-activations before the loop: layer 0's input part (x_t Wx + b) s for its T steps (rows 1..T of
        # slot 0), as columns; every other layer's b s (their input part comes from the loop's product).
        x0 = gates[1 : T + 1, 0]  # (T, 4H, N)
        if D == 1:
            np.multiply((Wx0 * s).T, xt.transpose(0, 2, 1), out=x0)  # (F1) (x_t Wx s)^T: an outer product for D = 1
        else:
            np.matmul((Wx0 * s).T, xt.transpose(0, 2, 1), out=x0)  # (F1) (x_t Wx s)^T, all t
        np.add(x0, (b0 * s)[:, None], out=x0)  # (F1) + b s
        gates[0, 0] = 0.0
        gates[T + 1 :, 0] = 0.0
        for l in range(1, L):
            gates[:, l] = (layers[l][2] * s)[:, None]  # (F1) b s, layers above the first
        if state is not None:
            for l in range(L):  # row l, slot l: layer l's initial state (its step -1)
                cs[l, l], hs[l, l] = state[l, 0].T, state[l, 1].T
        s_cols, shift_cols, _ = _gate_columns(L, H, N, dt)
        rec = work.buffer("rec", (L, 4 * H, N), dt)
        ig = work.buffer("ig", (L, H, N), dt)

        def build():  # each row's views, made once per set of buffers (``Workspace.views``)
            rows = []
            for r in range(1, R):
                k = active(r, T, L)
                a = gates[r, k]
                rows.append((hs[r - 1].reshape(L * H, N), rec[k], a, s_cols[k], shift_cols[k],
                             a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :],
                             cs[r - 1, k], cs[r, k], ig[k], tcs[r, k], hs[r, k]))
            return rows

        rec2 = rec.reshape(L * 4 * H, N)
        mm, add, mul, tanh = np.matmul, np.add, np.multiply, np.tanh
        for hprev, rec_k, a, s_k, shift_k, i, f, g, o, cprev, c, ig_k, tc, h in work.views(
                "rows", (gates, hs, cs, tcs, rec, ig), build):
            # row r: every active layer l computes its step t = r - l - 1, in the same calls
            mm(WsT, hprev, out=rec2)  # (F1) all layers: (h^l_{t-1} Wh_l s + h^{l-1}_t Wx_l s)^T, one product
            add(a, rec_k, out=a)  # (F1) s a_t = (input part + recurrent part) s, every active layer
            tanh(a, out=a)  # tanh(s a_t): (F3) g_t on the g blocks
            mul(a, s_k, out=a)  # (F2) s tanh(s a_t)
            add(a, shift_k, out=a)  # (F2) + shift: i, f, o = sigmoid(a_t); g unchanged
            mul(f, cprev, out=c)  # (F4) f_t c_{t-1}
            mul(i, g, out=ig_k)  # (F4) i_t g_t
            add(c, ig_k, out=c)  # (F4) c_t = f_t c_{t-1} + i_t g_t
            tanh(c, out=tc)  # (F5) tanh(c_t)
            mul(o, tc, out=h)  # (F5) h_t = o_t tanh(c_t)
        top = hs[L:, L - 1].transpose(0, 2, 1)  # layer L-1 at steps 0..T-1 (rows L..T+L-1), as (T, N, H)
        finals = [(hs[T + l, l].T, cs[T + l, l].T) for l in range(L)]  # each layer's step T-1
        return top, finals, WavefrontCache(xt, layers, gates, cs, tcs, hs)


def stack_backward(cache: WavefrontCache, dtop, dlast, work, need_dx=False):
    """BPTT through the stack of ``stack_forward``, by the same diagonals in reverse.

    dtop (T, N, H) dL/dh_t of the top layer from the head (None when nothing flows in at every step);
    dlast (N, H) dL/dh_{T-1} of the top layer (head "last"), or None.
    Returns dx (T, N, D) of layer 0 (None unless need_dx), dstate [(dc0, dh0)] per layer, each (N, H), and
    [(dWx, dWh, db)] per layer.
    """
    x, layers, gates, cs, tcs, hs = cache
    R, L, H4, N = gates.shape
    H, T, dt = H4 // 4, R - L, gates.dtype
    with fast._loop_blas_threads(T * N * H4 * max(x.shape[2], H), pin=True):
        # The factors of da_t known from the forward pass, every row and layer at once (fast.py, same lines):
        _, shift_cols, s2_cols = _gate_columns(L, H, N, dt)
        i, f, g, o = (gates[1:, :, k * H : (k + 1) * H] for k in range(4))
        dA = work.buffer("dA", gates.shape, dt)
        dA[0] = 0.0
        d = dA[1:]
        np.subtract(gates[1:], shift_cols, out=d)  # (B8), (B9) y - shift = s tanh(s a)
        np.multiply(d, d, out=d)  # (y - shift)^2
        np.subtract(s2_cols, d, out=d)  # (B8) sigmoid' = y (1 - y) on i, f, o; (B9) tanh' = 1 - g^2 on g
        np.multiply(d[:, :, :H], g, out=d[:, :, :H])  # (B4), (B8) i block: g_t i_t (1 - i_t); times dc_t below
        np.multiply(d[:, :, H : 2 * H], cs[:-1], out=d[:, :, H : 2 * H])  # (B5), (B8) f block: c_{t-1} f_t (1 - f_t)
        np.multiply(d[:, :, 2 * H : 3 * H], i, out=d[:, :, 2 * H : 3 * H])  # (B6), (B9) g block: i_t (1 - g_t^2)
        np.multiply(d[:, :, 3 * H :], tcs[1:], out=d[:, :, 3 * H :])  # (B3), (B8) o block: tanh(c_t) o_t (1 - o_t)
        for l in range(L):  # inactive slots (steps before 0 and after T-1): no da, so no gradient from them
            dA[: l + 1, l] = 0.0
            dA[T + l + 1 :, l] = 0.0
        dtanhc = work.buffer("dtanhc", tcs.shape, dt)
        np.multiply(tcs, tcs, out=dtanhc)  # (B2) tanh^2 c_t
        np.subtract(1.0, dtanhc, out=dtanhc)  # (B2) 1 - tanh^2 c_t
        np.multiply(dtanhc[1:], o, out=dtanhc[1:])  # (B2) o_t (1 - tanh^2 c_t)
        W = block_weights(layers, scaled=False)  # (L H, L 4H): dh of all layers = W dA_r, (B10) and (S2)/(B11) at once
        dh = np.zeros((L, H, N), dt)  # dL/dh of every layer at the row being processed, as columns
        dc = np.zeros((L, H, N), dt)
        if dlast is not None:
            dh[L - 1] = dlast.T  # the top layer's last step, row R-1
        dtopT = None if dtop is None else np.ascontiguousarray(dtop.transpose(0, 2, 1))  # (T, H, N)
        dc_b = dc.reshape(L, 1, H, N)  # a view of dc (see fast.lstm_backward_tm: dc must change in place only)
        dh2 = dh.reshape(L * H, N)
        tmp = np.empty((L, H, N), dt)
        dstate = [None] * L

        def build():
            return [(dA[r].reshape(L * H4, N), dA[r, :, 3 * H :], dA[r, :, : 3 * H].reshape(L, 3, H, N),
                     dtanhc[r], gates[r, :, H : 2 * H]) for r in range(R)]

        views = work.views("back_rows", (dA, dtanhc, gates), build)
        mm, add, mul = np.matmul, np.add, np.multiply
        for r in range(R - 1, 0, -1):
            dA2, dAo, dAifg, dtc, f_r = views[r]
            if dtopT is not None and r >= L:
                add(dh[L - 1], dtopT[r - L], out=dh[L - 1])  # (B1) + the head's dL/dh_t, top layer's step r - L
            mul(dh, dtc, out=tmp)  # (B2) dh_t o_t (1 - tanh^2 c_t)
            add(dc, tmp, out=dc)  # (B2) dc_t, every layer
            mul(dh, dAo, out=dAo)  # (B3), (B8) da^o_t
            mul(dc_b, dAifg, out=dAifg)  # (B4)-(B6), (B8), (B9) da^i_t, da^f_t, da^g_t
            mul(dc, f_r, out=dc)  # (B7) dc_{t-1} = dc_t f_t
            mm(W, dA2, out=dh2)  # (B10) + (S2): dh for row r-1, every layer: Wh_l da^l_{t+1} + Wx_{l+1} da^{l+1}_t
            if r - 1 < L:  # layer r-1 has just reached its step -1: dh, dc are its initial state's gradients
                dstate[r - 1] = (dc[r - 1].T.copy(), dh[r - 1].T.copy())
        # (B12)-(B14): the gradient of the block matrix W is the sum over rows of h_{row r-1} dA_r^T; its
        # diagonal blocks are dWh_l and those above them dWx_l (no s: dA is the gradient of the unscaled
        # pre-activation a); its zero blocks are not computed. Inactive slots have dA = 0 and add nothing. To sum
        # over rows and examples in one GEMM per layer, rows and examples become one axis: copies (L H, rows N)
        # and (L 4H, rows N) of the two arrays, columns (r, n).
        hcols = hs[: R - 1].reshape(R - 1, L * H, N).transpose(1, 0, 2).reshape(L * H, (R - 1) * N)
        dAcols = dA[1:].reshape(R - 1, L * H4, N).transpose(1, 0, 2).reshape(L * H4, (R - 1) * N)
        db = (dAcols @ np.ones((R - 1) * N, dt)).reshape(L, H4)  # (B14) every layer: sum over rows and examples
        dA0 = dAcols[:H4, : T * N]  # layer 0's da_t for t = 0..T-1 (its rows 1..T), columns (t, n)
        grads = []
        for l in range(L):
            dAl = dAcols[l * H4 : (l + 1) * H4]
            if l == 0:
                dWx = (dA0 @ x.reshape(T * N, -1)).T  # (B12) layer 0: sum_t x_t^T da_t
                dWh = hcols[:H] @ dAl.T  # (B13) block (0, 0): sum_t h_{t-1}^T da_t
            else:
                dWxh = hcols[(l - 1) * H : (l + 1) * H] @ dAl.T  # blocks (l-1, l) and (l, l) in one GEMM
                dWx, dWh = dWxh[:H].copy(), dWxh[H:].copy()  # (B12) the layer below's h is layer l's x; (B13)
            grads.append((dWx, dWh, db[l].copy()))
        dx = (dA0.T @ layers[0][0].T).reshape(T, N, -1) if need_dx else None  # (B11) layer 0, all t
        return dx, dstate, grads
