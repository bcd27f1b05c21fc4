"""numpylstm: an educational LSTM in pure NumPy, with hand-written BPTT checked by finite differences.

Shapes: N batch, T timesteps, D input features, H hidden size (TF's ``lstm_size``), L layers.
Gate order along every fused 4H axis: i, f, g, o (PyTorch's).
"""

from . import fast, textbook  # textbook: the LSTM as the derivation writes it (read it first); fast: its twin
from . import cells  # the LSTM family on one interface: cells.get("gru"), ... (derivations/12_the_lstm_family.md)
from .interop import params_from_torch, params_to_torch
from .fast import LSTMCache, lstm_backward, lstm_forward, sigmoid
from .model import LSTMModel
from .optim import SGD, Adagrad, Adam, clip_grad_norm

__all__ = ["Adagrad", "Adam", "LSTMCache", "LSTMModel", "SGD", "clip_grad_norm", "fast", "lstm_backward", "lstm_forward",
           "params_from_torch", "params_to_torch", "sigmoid", "textbook", "cells", "check_arrays", "check_cell",
           "check_layer", "check_model", "LAYER_TOL", "MODEL_TOL"]
__version__ = "0.1.0"

_GRADCHECK = ("LAYER_TOL", "MODEL_TOL", "check_arrays", "check_cell", "check_layer", "check_model")


def __getattr__(name):
    """The gradient checker's API, imported on first use: importing numpylstm.gradcheck here would make
    ``python -m numpylstm.gradcheck`` warn that the module was already imported before it ran."""
    if name in _GRADCHECK:
        from . import gradcheck

        return getattr(gradcheck, name)
    raise AttributeError(f"module 'numpylstm' has no attribute {name!r}")
