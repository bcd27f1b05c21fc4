"""``explain_shapes``: walk one batch through an ``LSTMModel`` layer by layer and report every shape.

It runs the model's cell (``model.cell_type.forward``, for the LSTM textbook.py's ``lstm_forward``) layer by
layer with the model's own weights, so what it prints is what ``LSTMModel.forward`` computes (the function checks that the two agree), in the TF-1 tutorial's words:
``outputs``, ``outputs[:, -1, :]``, ``final_state``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["explain_shapes"]


def explain_shapes(model, x) -> list[str]:
    """Lines describing the shape of each tensor for input x (N, T, D) (float input, head "last" or "all")."""
    x = np.asarray(x, dtype=model.dtype)
    N, T, D = x.shape
    L, H, P = model.num_layers, model.hidden_size, model.params
    rows = [("x", x.shape, "(batch_size N, timesteps T, features D)")]
    cell = model.cell_type
    keys = list(cell.param_shapes(D, H))
    inp, states = x, []
    for l in range(L):
        hs, (hT, cT), _ = cell.forward(inp, None, None, {k: P[f"{model.cell}.{l}.{k}"] for k in keys})
        rows.append((f"layer {l} outputs", hs.shape, "(N, T, lstm_size H): h at every timestep"))
        states.append((np.zeros_like(hT) if cT is None else cT, hT))  # no cell state (rnn, gru): c slot 0
        inp = hs
    final_state = np.array([[c, h] for c, h in states])
    if model.head == "last":
        last = inp[:, -1, :]
        rows.append(("outputs[:, -1, :]", last.shape, "(N, H): the top layer's h at the last step"))
    else:
        last = inp.reshape(N * T, H)
        rows.append(("outputs (flattened)", last.shape, "(N*T, H): the top layer's h at every step"))
    rows.append(("final_state", final_state.shape,
                 "(lstm_layers, 2, N, H): final_state[l, 0] = c, final_state[l, 1] = h of layer l"
                 + ("" if cell.has_cell_state else f" (a {model.cell} has no c: 0)")))
    y = last @ P["head.W"] + P["head.b"]
    rows.append(("head output", y.shape, "(N, output_size): y = h W + b"))
    y_ref, state_ref = model.forward(x)
    if not (np.allclose(y.reshape(y_ref.shape), y_ref) and np.allclose(final_state, state_ref)):
        raise AssertionError("explain_shapes disagrees with model.forward")  # pragma: no cover
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(str(r[1])) for r in rows)
    lines = [f"{n:<{w1}}  {str(sh):<{w2}}  {d}" for n, sh, d in rows]
    lines.append("parameters (array, shape, count):")
    width = max(len(k) for k in P)
    for k, p in P.items():
        lines.append(f"  {k:<{width}}  {str(p.shape):<9} {p.size:>6}")
    lines.append(f"  {'total':<{width}}  {'':<9} {model.num_params():>6}")
    return lines
