"""Move weights between numpylstm and PyTorch's ``nn.LSTM`` / ``nn.Linear`` without importing torch.

State dicts here map names to NumPy arrays: convert with ``{k: v.detach().numpy() for k, v in
lstm.state_dict().items()}`` and back with ``torch.from_numpy``. PyTorch stores weight_ih_l{k} (4H, D),
weight_hh_l{k} (4H, H) and two biases; numpylstm stores their transposes and one bias b = bias_ih + bias_hh.
Both use the gate order i, f, g, o, so no reordering is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from . import _checks as chk


def _mapping(name: str, d) -> Mapping:
    if not isinstance(d, Mapping):
        raise ValueError(f"{name} must be a dict of name -> array; got {chk.describe(d)}")
    return d


def params_from_torch(lstm_state_dict, linear_state_dict=None) -> dict:
    """PyTorch state dicts (values NumPy arrays) -> numpylstm params dict.

    ``lstm_state_dict`` from ``nn.LSTM(..., batch_first=True)`` (unidirectional, no projections);
    ``linear_state_dict`` from the ``nn.Linear(H, O)`` head, or None to leave the head out. Every array is
    checked (shape, real and finite) and the result has the dtype of ``weight_hh_l0`` (float64 for ints).
    """
    sd = _mapping("lstm_state_dict", lstm_state_dict)
    layers = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"weight_ih_l(\d+)", str(k)))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError("lstm_state_dict must hold weight_ih_l0, weight_ih_l1, ... of a unidirectional nn.LSTM; "
                         f"got keys {sorted(map(str, sd))}")
    known = {f"{w}_l{l}" for l in layers for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for k in sd:
        if k not in known:
            raise ValueError(f"lstm_state_dict has key {k!r} that a unidirectional nn.LSTM without projections "
                             "does not have (bidirectional and proj_size are not supported)")

    def get(key, letters, expected, dtype=None):
        if key not in sd:
            raise ValueError(f"lstm_state_dict is missing {key!r}")
        return chk.array(f"lstm_state_dict[{key!r}]", sd[key], letters, expected, dtype)

    Whh = chk.numeric("lstm_state_dict['weight_hh_l0']", sd.get("weight_hh_l0", np.zeros((0, 0))))
    if Whh.ndim != 2 or Whh.shape[1] < 1 or Whh.shape[0] != 4 * Whh.shape[1]:
        raise ValueError(f"lstm_state_dict['weight_hh_l0'] must have shape (4H, H) with H >= 1; "
                         f"got shape {Whh.shape}")
    H, dt = Whh.shape[1], Whh.dtype
    params = {}
    for l in layers:
        Wih = get(f"weight_ih_l{l}", ("4H", "D"), (4 * H, None if l == 0 else H), dt)
        Whh = get(f"weight_hh_l{l}", ("4H", "H"), (4 * H, H), dt)
        b = np.zeros(4 * H, dtype=dt)
        for name in (f"bias_ih_l{l}", f"bias_hh_l{l}"):
            if name in sd:
                b = b + get(name, ("4H",), (4 * H,), dt)
        params[f"lstm.{l}.Wx"] = np.ascontiguousarray(Wih.T)
        params[f"lstm.{l}.Wh"] = np.ascontiguousarray(Whh.T)
        params[f"lstm.{l}.b"] = b
    if linear_state_dict is not None:
        lin = _mapping("linear_state_dict", linear_state_dict)
        for k in lin:
            if k not in ("weight", "bias"):
                raise ValueError(f"linear_state_dict has key {k!r}; an nn.Linear has only 'weight' and 'bias'")
        if "weight" not in lin:
            raise ValueError("linear_state_dict is missing 'weight' (O, H)")
        W = chk.array("linear_state_dict['weight']", lin["weight"], "OH", (None, H), dt)
        params["head.W"] = np.ascontiguousarray(W.T)
        bias = lin.get("bias")
        params["head.b"] = (np.zeros(W.shape[0], dt) if bias is None else
                            chk.array("linear_state_dict['bias']", bias, "O", (W.shape[0],), dt).copy())
    return params


def params_to_torch(params) -> tuple[dict, dict | None]:
    """numpylstm params -> (lstm_state_dict, linear_state_dict or None), values NumPy arrays.

    The whole bias goes to bias_ih; bias_hh is zeros (their sum is what matters).
    """
    params = _mapping("params", params)
    if "lstm.0.Wh" not in params or "lstm.0.Wx" not in params:
        raise ValueError("params holds no lstm.0.Wx / lstm.0.Wh: not a numpylstm params dict; "
                         f"got keys {sorted(map(str, params))}")
    Wh0 = chk.numeric("params['lstm.0.Wh']", params["lstm.0.Wh"])
    if Wh0.ndim != 2 or Wh0.shape[0] < 1 or Wh0.shape[1] != 4 * Wh0.shape[0]:
        raise ValueError(f"params['lstm.0.Wh'] must have shape (H, 4H) with H >= 1; got shape {Wh0.shape}")
    H, dt = Wh0.shape[0], Wh0.dtype

    def get(key, letters, expected):
        if key not in params:
            raise ValueError(f"params is missing {key!r}")
        return chk.array(f"params[{key!r}]", params[key], letters, expected, dt)

    lstm, l = {}, 0
    while f"lstm.{l}.Wx" in params:
        Wx = get(f"lstm.{l}.Wx", ("D", "4H"), (None if l == 0 else H, 4 * H))
        Wh = get(f"lstm.{l}.Wh", ("H", "4H"), (H, 4 * H))
        b = get(f"lstm.{l}.b", ("4H",), (4 * H,))
        lstm[f"weight_ih_l{l}"] = np.ascontiguousarray(Wx.T)
        lstm[f"weight_hh_l{l}"] = np.ascontiguousarray(Wh.T)
        lstm[f"bias_ih_l{l}"] = b.copy()
        lstm[f"bias_hh_l{l}"] = np.zeros_like(b)
        l += 1
    linear = None
    if "head.W" in params or "head.b" in params:
        W = get("head.W", "HO", (H, None))
        linear = {"weight": np.ascontiguousarray(W.T), "bias": get("head.b", "O", (W.shape[1],)).copy()}
    return lstm, linear
