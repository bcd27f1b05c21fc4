"""The programs behind ``demo.py``: the sine predictor (plain and stateful), the char-RNN, their data, plots
and the ``--explain`` shape walk-through. Not needed to read or use the LSTM itself (start at
``numpylstm/textbook.py``)."""
