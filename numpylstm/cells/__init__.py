"""Recurrent cells on one plug-in interface: the LSTM, the plain RNN, the GRU, the peephole LSTM and the
variants of Greff et al. 2017 ("LSTM: A Search Space Odyssey"). Derivation: derivations/12_the_lstm_family.md.

    cell = numpylstm.cells.get("gru")
    shapes = cell.param_shapes(D, H)                      # {"Wx": (D, 3H), "Wh": (H, 3H), "bx": ..., "bh": ...}
    hs, (hT, cT), cache = cell.forward(x, h0, c0, params)  # cT None for cells without a cell state
    dx, dh0, dc0, dparams = cell.backward(dhs, cache, dhT, dcT)
    numpylstm.check_cell("gru")                           # every gradient against central differences

Where each cell's equations are, one labelled line each:

    "lstm"      numpylstm/textbook.py          (F1)-(F5), (B1)-(B14)        Greff's "NP" (no peepholes)
    "rnn"       numpylstm/rnn.py               (R1)-(R9)
    "gru"       numpylstm/gru.py               (U1)-...                     PyTorch's nn.GRU
    "peephole"  numpylstm/cells/peephole.py    (P1)-...                     Greff's vanilla LSTM
    "nig" "nfg" "nog" "niaf" "noaf" "cifg" "fgr"
                numpylstm/cells/<name>.py      (Y1)-...                     peephole.py with one change each:
                                               ``diff numpylstm/cells/peephole.py numpylstm/cells/nig.py``

Every cell runs on the one sequence loop of ``numpylstm/cells/loop.py``. To write a cell of your own, give
an object the ``Cell`` interface (``param_shapes``, ``forward``, ``backward``, ``has_cell_state``) -- or build
a ``Cell`` from two step functions as the modules above do -- and check it with ``numpylstm.check_cell``.
"""

from __future__ import annotations

import importlib

from .. import _checks as chk
from .loop import Cell, SequenceCache, sequence_backward, sequence_forward

NAMES = ("lstm", "rnn", "gru", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")

# name -> the module holding its CELL (imported on first use: numpylstm.gru imports this package's loop)
_MODULES = {"lstm": "numpylstm.cells.lstm", "rnn": "numpylstm.cells.rnn", "gru": "numpylstm.gru",
            **{name: f"numpylstm.cells.{name}" for name in NAMES[3:]}}

__all__ = ["NAMES", "Cell", "SequenceCache", "get", "sequence_backward", "sequence_forward"]


def get(name) -> Cell:
    """The cell called ``name``, one of ``NAMES``; anything else is a ValueError naming the choices."""
    name = chk.choice("name", name, NAMES)
    return importlib.import_module(_MODULES[name]).CELL
