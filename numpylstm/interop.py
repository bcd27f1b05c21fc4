"""Move weights between numpylstm and PyTorch's ``nn.LSTM`` / ``nn.Linear`` without importing torch.

State dicts here map names to NumPy arrays: convert with ``{k: v.detach().numpy() for k, v in
lstm.state_dict().items()}`` and back with ``torch.from_numpy``. PyTorch stores weight_ih_l{k} (4H, D),
weight_hh_l{k} (4H, H) and two biases; numpylstm stores their transposes and one bias b = bias_ih + bias_hh.
Both use the gate order i, f, g, o, so no reordering is needed.
"""

from __future__ import annotations

import re

import numpy as np


def params_from_torch(lstm_state_dict, linear_state_dict=None) -> dict:
    """PyTorch state dicts (values NumPy arrays) -> numpylstm params dict.

    ``lstm_state_dict`` from ``nn.LSTM(..., batch_first=True)`` (unidirectional, no projections);
    ``linear_state_dict`` from the ``nn.Linear(H, O)`` head, or None to leave the head out.
    """
    sd = {k: np.asarray(v) for k, v in lstm_state_dict.items()}
    layers = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"weight_ih_l(\d+)", k))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError("lstm_state_dict must hold weight_ih_l0, weight_ih_l1, ... of a unidirectional nn.LSTM; "
                         f"got keys {sorted(sd)}")
    params = {}
    for l in layers:
        need = [f"weight_ih_l{l}", f"weight_hh_l{l}"]
        missing = [k for k in need if k not in sd]
        if missing:
            raise ValueError(f"lstm_state_dict is missing {missing}")
        Wih, Whh = sd[f"weight_ih_l{l}"], sd[f"weight_hh_l{l}"]
        H = Whh.shape[1]
        if Whh.shape != (4 * H, H) or Wih.ndim != 2 or Wih.shape[0] != 4 * H:
            raise ValueError(f"layer {l}: expected weight_ih (4H, D) and weight_hh (4H, H); "
                             f"got {Wih.shape} and {Whh.shape}")
        b = np.zeros(4 * H, dtype=Whh.dtype)
        for name in (f"bias_ih_l{l}", f"bias_hh_l{l}"):
            if name in sd:
                b = b + sd[name]
        params[f"lstm.{l}.Wx"] = np.ascontiguousarray(Wih.T)
        params[f"lstm.{l}.Wh"] = np.ascontiguousarray(Whh.T)
        params[f"lstm.{l}.b"] = b
    if linear_state_dict is not None:
        W = np.asarray(linear_state_dict["weight"])
        params["head.W"] = np.ascontiguousarray(W.T)
        bias = linear_state_dict.get("bias")
        params["head.b"] = np.zeros(W.shape[0], W.dtype) if bias is None else np.asarray(bias).copy()
    return params


def params_to_torch(params) -> tuple[dict, dict | None]:
    """numpylstm params -> (lstm_state_dict, linear_state_dict or None), values NumPy arrays.

    The whole bias goes to bias_ih; bias_hh is zeros (their sum is what matters).
    """
    lstm, l = {}, 0
    while f"lstm.{l}.Wx" in params:
        b = np.asarray(params[f"lstm.{l}.b"])
        lstm[f"weight_ih_l{l}"] = np.ascontiguousarray(np.asarray(params[f"lstm.{l}.Wx"]).T)
        lstm[f"weight_hh_l{l}"] = np.ascontiguousarray(np.asarray(params[f"lstm.{l}.Wh"]).T)
        lstm[f"bias_ih_l{l}"] = b.copy()
        lstm[f"bias_hh_l{l}"] = np.zeros_like(b)
        l += 1
    if l == 0:
        raise ValueError("params holds no lstm.0.Wx: not a numpylstm params dict")
    linear = None
    if "head.W" in params:
        linear = {"weight": np.ascontiguousarray(np.asarray(params["head.W"]).T),
                  "bias": np.asarray(params["head.b"]).copy()}
    return lstm, linear
