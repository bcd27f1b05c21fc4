"""The sine model's free-running forecast: ``demo.py --rollout K`` and ``demo.py inside --rollout K``."""


import numpy as np
import pytest

from demo_cli import run_demo
from numpylstm.demos.data import sine_data
from numpylstm.demos.rollout import horizon_rmse, rollout, sine_truth
from numpylstm.model import LSTMModel

TINY = ["--steps", "20", "--lstm-size", "4", "--timesteps", "6", "--batch-size", "16", "--warmup", "2"]


run = run_demo  # tests/demo_cli.py


def test_rollout_feeds_back_its_own_predictions_and_nothing_else():
    model = LSTMModel(1, 3, 1, num_layers=2, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 5, 1))
    got = rollout(model, x, 3)
    w = x.copy()
    for k in range(3):  # the definition, by hand: predict, shift the prediction in
        y = model.forward(w)[0]
        np.testing.assert_allclose(got[:, k], y[:, 0], rtol=0, atol=1e-14)
        w = np.concatenate([w[:, 1:], y[:, None, :]], axis=1)
    assert np.array_equal(x, np.random.default_rng(0).normal(size=(4, 5, 1)))  # the input is not modified
    with pytest.raises(ValueError, match="K"):
        rollout(model, x, 0)


def test_sine_truth_continues_the_test_curve():
    d = sine_data(50, 30, 0.01, 6)
    dt = d.test_t[1] - d.test_t[0]
    truth = sine_truth(d.test_t, dt, 4)
    # k steps ahead of window n is the target of window n + k, as long as that window exists
    np.testing.assert_allclose(truth[:-4, 2], d.test_y[2:-2, 0], atol=1e-12)
    assert horizon_rmse(truth, truth).tolist() == [0.0] * 4


def test_demo_rollout_prints_the_horizon_errors_and_draws_them(tmp_path):
    pytest.importorskip("matplotlib")
    status, lines, err = run([*TINY, "--rollout", "12", "--out", str(tmp_path / "o")])
    assert status == 0, err
    row = next(line for line in lines if "RMSE k steps ahead:" in line)
    errs = dict(part.split(": ") for part in row.split("ahead:")[1].strip().split(", "))
    assert list(errs) == ["k=1", "k=10", "k=12"]
    assert lines[-1].startswith("test RMSE: ")
    # one step ahead, the rollout is the ordinary prediction: its RMSE is the test RMSE
    assert float(errs["k=1"]) == pytest.approx(float(lines[-1].split(": ")[1]), rel=2e-3)
    assert (tmp_path / "o" / "rollout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rollout_flag_errors_and_inside(tmp_path):
    status, _, err = run([*TINY, "--rollout", "0"])
    assert status == 2 and "--rollout" in err
    status, _, err = run([*TINY, "--rollout", "5", "--stateful"])
    assert status == 2 and "--rollout" in err and "--stateful" in err
    pytest.importorskip("matplotlib")
    ck = str(tmp_path / "s.npz")
    assert run([*TINY, "--checkpoint", ck, "--no-plot", "--quiet"])[0] == 0
    status, lines, err = run(["inside", "--checkpoint", ck, "--out", str(tmp_path / "i"), "--window", "3",
                              "--rollout", "4"])
    assert status == 0, err
    assert any("k=4:" in line for line in lines) and lines[-1].startswith("prediction ")
    assert (tmp_path / "i" / "rollout.png").is_file()
    status, _, err = run(["inside", "--checkpoint", ck, "--out", str(tmp_path / "i"), "--rollout", "4"])
    assert status == 2 and "--overwrite" in err
