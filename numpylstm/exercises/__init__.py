"""Exercises: the learner writes the textbook's functions; the checker grades them and names the wrong equation.

``python -m numpylstm.exercises list | start NAME | check [NAME|FILE] | hint NAME | solution NAME``
(docs/exercises.md). The Python side:

- ``check_file(name, path)`` / ``check_function(name, func)`` -> ``Report`` (``.ok``, ``.text``, ``.suspects``);
- ``diagnose_step(step_forward, step_backward)`` -> the suspect labels of an LSTM step pair (chapter 8, section
  8.5), ``diagnose_rnn_step``, ``diagnose_lstm_backward``, ``diagnose_gru_step``, ``diagnose_peephole_step``
  for the tanh RNN's step, the BPTT loop, and chapter 12's GRU and peephole steps.

The learner's files live outside the package (default ``exercises/`` in the current directory), so the
project's label test (tests/test_derivations.py, which scans ``numpylstm/`` only) never reads them, and the
project's ``pytest`` (testpaths = tests) never collects them; ``python -m pytest exercises/`` does.
"""

from .catalog import BY_NAME, EXERCISES, Report, check_file, check_function
from .diagnose import Diagnosis, diagnose_lstm_backward, diagnose_rnn_step, diagnose_step
from .diagnose_cells import diagnose_gru_step, diagnose_peephole_step

__all__ = ["EXERCISES", "BY_NAME", "Report", "check_file", "check_function", "Diagnosis", "diagnose_step",
           "diagnose_rnn_step", "diagnose_lstm_backward", "diagnose_gru_step", "diagnose_peephole_step"]
