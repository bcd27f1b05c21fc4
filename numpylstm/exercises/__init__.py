"""Exercises: the learner writes the textbook's functions, the checker grades them and names the wrong line."""
from .diagnose import Diagnosis, diagnose_lstm_backward, diagnose_rnn_step, diagnose_step

__all__ = ["Diagnosis", "diagnose_step", "diagnose_rnn_step", "diagnose_lstm_backward"]
