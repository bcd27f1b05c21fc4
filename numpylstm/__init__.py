"""numpylstm: an educational LSTM in pure NumPy, with hand-written BPTT checked by finite differences."""

from .layers import LSTMCache, lstm_backward, lstm_forward, sigmoid

__all__ = ["LSTMCache", "lstm_backward", "lstm_forward", "sigmoid"]
__version__ = "0.1.0"
