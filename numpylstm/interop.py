"""Move weights between numpylstm and PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` and ``nn.Linear`` without
importing torch.

State dicts here map names to NumPy arrays: convert with ``{k: v.detach().numpy() for k, v in
lstm.state_dict().items()}`` and back with ``torch.from_numpy``. PyTorch stores weight_ih_l{k} (G H, D),
weight_hh_l{k} (G H, H) and two biases (G = 4 for the LSTM, 3 for the GRU, 1 for the tanh RNN); numpylstm
stores their transposes and, for the LSTM and the RNN, one bias b = bias_ih + bias_hh. The GRU keeps both
biases (``bx`` = bias_ih, ``bh`` = bias_hh): its n gate multiplies h W_hn + b_hn by the reset gate, so the two
are not interchangeable. Gate orders are PyTorch's (LSTM i, f, g, o; GRU r, z, n), so nothing is reordered.
The peephole LSTM and Greff's variants have no PyTorch module: converting them is refused with a ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from . import _checks as chk

TORCH_CELLS = {"lstm": ("nn.LSTM", 4), "gru": ("nn.GRU", 3), "rnn": ("nn.RNN", 1)}  # cell -> (module, G)
NO_TORCH = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")  # cells PyTorch has no module for


def _mapping(name: str, d) -> Mapping:
    if not isinstance(d, Mapping):
        raise ValueError(f"{name} must be a dict of name -> array; got {chk.describe(d)}")
    return d


def _no_module(cell):
    return ValueError(f"cell {cell!r} has no PyTorch module (PyTorch has nn.LSTM, nn.GRU and nn.RNN: the cells "
                      "'lstm', 'gru' and 'rnn'); its weights cannot be converted")


def params_from_torch(lstm_state_dict, linear_state_dict=None, cell="lstm") -> dict:
    """PyTorch state dicts (values NumPy arrays) -> numpylstm params dict.

    ``lstm_state_dict``: the state dict of ``nn.LSTM(..., batch_first=True)`` (unidirectional, no
    projections), or with ``cell="gru"`` of ``nn.GRU``, with ``cell="rnn"`` of ``nn.RNN`` (tanh);
    ``linear_state_dict`` from the ``nn.Linear(H, O)`` head, or None to leave the head out. Every array is
    checked (shape, real and finite) and the result has the dtype of ``weight_hh_l0`` (float64 for ints).
    Keys: ``f"{cell}.{l}.Wx"`` (D, G H), ``.Wh`` (H, G H), then ``.b`` (G H,) (lstm, rnn) or ``.bx``, ``.bh``
    (gru), as ``LSTMModel(cell=cell).params``.
    """
    if cell in NO_TORCH:
        raise _no_module(cell)
    module, G = TORCH_CELLS[chk.choice("cell", cell, tuple(TORCH_CELLS))]
    gh = f"{G}H" if G > 1 else "H"
    sd = _mapping("lstm_state_dict", lstm_state_dict)
    layers = sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"weight_ih_l(\d+)", str(k)))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"lstm_state_dict must hold weight_ih_l0, weight_ih_l1, ... of a unidirectional {module}; "
                         f"got keys {sorted(map(str, sd))}")
    known = {f"{w}_l{l}" for l in layers for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for k in sd:
        if k not in known:
            raise ValueError(f"lstm_state_dict has key {k!r} that a unidirectional {module} without projections "
                             "does not have (bidirectional and proj_size are not supported)")

    def get(key, letters, expected, dtype=None):
        if key not in sd:
            raise ValueError(f"lstm_state_dict is missing {key!r}")
        return chk.array(f"lstm_state_dict[{key!r}]", sd[key], letters, expected, dtype)

    Whh = chk.numeric("lstm_state_dict['weight_hh_l0']", sd.get("weight_hh_l0", np.zeros((0, 0))))
    if Whh.ndim != 2 or Whh.shape[1] < 1 or Whh.shape[0] != G * Whh.shape[1]:
        other = [f"{m}'s is ({g}H, H): pass cell={c!r}" for c, (m, g) in TORCH_CELLS.items()
                 if c != cell and Whh.ndim == 2 and Whh.shape[1] >= 1 and Whh.shape[0] == g * Whh.shape[1]]
        raise ValueError(f"lstm_state_dict['weight_hh_l0'] must have shape ({gh}, H) with H >= 1 for {module}; "
                         f"got shape {Whh.shape}" + (f" ({other[0]})" if other else ""))
    H, dt = Whh.shape[1], Whh.dtype
    params = {}
    for l in layers:
        Wih = get(f"weight_ih_l{l}", (gh, "D"), (G * H, None if l == 0 else H), dt)
        Whh = get(f"weight_hh_l{l}", (gh, "H"), (G * H, H), dt)
        biases = [np.zeros(G * H, dtype=dt) if name not in sd else get(name, (gh,), (G * H,), dt)
                  for name in (f"bias_ih_l{l}", f"bias_hh_l{l}")]
        params[f"{cell}.{l}.Wx"] = np.ascontiguousarray(Wih.T)
        params[f"{cell}.{l}.Wh"] = np.ascontiguousarray(Whh.T)
        if cell == "gru":  # r, z, n: the n block of bias_hh sits inside the reset gate's product, kept apart
            params[f"{cell}.{l}.bx"], params[f"{cell}.{l}.bh"] = (np.array(b, dtype=dt) for b in biases)
        else:
            params[f"{cell}.{l}.b"] = biases[0] + biases[1]
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
    """numpylstm params -> (state dict of nn.LSTM / nn.GRU / nn.RNN, linear_state_dict or None), values NumPy
    arrays.

    The cell is read from the keys (``lstm.0.Wx``, ``gru.0.Wx``, ``rnn.0.Wx``); the peephole LSTM and its
    variants are refused (PyTorch has no such module). LSTM and RNN: the whole bias goes to bias_ih and
    bias_hh is zeros (their sum is what matters); GRU: bias_ih = bx, bias_hh = bh.
    """
    params = _mapping("params", params)
    found = [m.group(1) for k in params if (m := re.fullmatch(r"([a-z]+)\.0\.Wx", str(k)))]
    cell = found[0] if len(found) == 1 else "lstm"
    if cell in NO_TORCH:
        raise _no_module(cell)
    if cell not in TORCH_CELLS or f"{cell}.0.Wh" not in params:
        raise ValueError("params holds no lstm.0.Wx / lstm.0.Wh (nor gru.0 / rnn.0): not a numpylstm params dict; "
                         f"got keys {sorted(map(str, params))}")
    _, G = TORCH_CELLS[cell]
    gh = f"{G}H" if G > 1 else "H"
    Wh0 = chk.numeric(f"params['{cell}.0.Wh']", params[f"{cell}.0.Wh"])
    if Wh0.ndim != 2 or Wh0.shape[0] < 1 or Wh0.shape[1] != G * Wh0.shape[0]:
        raise ValueError(f"params['{cell}.0.Wh'] must have shape (H, {gh}) with H >= 1; got shape {Wh0.shape}")
    H, dt = Wh0.shape[0], Wh0.dtype

    def get(key, letters, expected):
        if key not in params:
            raise ValueError(f"params is missing {key!r}")
        return chk.array(f"params[{key!r}]", params[key], letters, expected, dt)

    sd, l = {}, 0
    while f"{cell}.{l}.Wx" in params:
        Wx = get(f"{cell}.{l}.Wx", ("D", gh), (None if l == 0 else H, G * H))
        Wh = get(f"{cell}.{l}.Wh", ("H", gh), (H, G * H))
        sd[f"weight_ih_l{l}"] = np.ascontiguousarray(Wx.T)
        sd[f"weight_hh_l{l}"] = np.ascontiguousarray(Wh.T)
        if cell == "gru":
            sd[f"bias_ih_l{l}"] = get(f"{cell}.{l}.bx", (gh,), (G * H,)).copy()
            sd[f"bias_hh_l{l}"] = get(f"{cell}.{l}.bh", (gh,), (G * H,)).copy()
        else:
            b = get(f"{cell}.{l}.b", (gh,), (G * H,))
            sd[f"bias_ih_l{l}"] = b.copy()
            sd[f"bias_hh_l{l}"] = np.zeros_like(b)
        l += 1
    linear = None
    if "head.W" in params or "head.b" in params:
        W = get("head.W", "HO", (H, None))
        linear = {"weight": np.ascontiguousarray(W.T), "bias": get("head.b", "O", (W.shape[1],)).copy()}
    return sd, linear
