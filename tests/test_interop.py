"""params_from_torch / params_to_torch on plain NumPy state dicts (no torch needed)."""

import numpy as np
import pytest

from numpylstm import LSTMModel, params_from_torch, params_to_torch


def test_round_trip_and_layout():
    model = LSTMModel(3, 4, 2, num_layers=2, seed=0)
    lstm_sd, lin_sd = params_to_torch(model.params)
    assert lstm_sd["weight_ih_l0"].shape == (16, 3)
    assert lstm_sd["weight_hh_l1"].shape == (16, 4)
    assert lin_sd["weight"].shape == (2, 4)
    np.testing.assert_array_equal(lstm_sd["bias_ih_l0"] + lstm_sd["bias_hh_l0"], model.params["lstm.0.b"])
    back = params_from_torch(lstm_sd, lin_sd)
    assert list(back) == list(model.params)
    for k in back:
        np.testing.assert_array_equal(back[k], model.params[k])


def test_biases_are_summed():
    H = 2
    sd = {"weight_ih_l0": np.ones((8, 1)), "weight_hh_l0": np.ones((8, 2)),
          "bias_ih_l0": np.arange(8.0), "bias_hh_l0": np.full(8, 10.0)}
    p = params_from_torch(sd)
    np.testing.assert_array_equal(p["lstm.0.b"], np.arange(8.0) + 10)
    assert p["lstm.0.Wh"].shape == (H, 4 * H) and "head.W" not in p


def test_bad_state_dicts():
    with pytest.raises(ValueError, match="weight_ih_l0"):
        params_from_torch({"foo": np.zeros(3)})
    with pytest.raises(ValueError, match="weight_hh"):
        params_from_torch({"weight_ih_l0": np.zeros((8, 1)), "weight_hh_l0": np.zeros((8, 3))})
    with pytest.raises(ValueError, match="lstm.0.Wx"):
        params_to_torch({"head.W": np.zeros((2, 2))})
