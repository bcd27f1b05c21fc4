import numpy as np
import pytest

from numpylstm.demos.data import BatchSampler, batch_indices, make_windows, sine_curves, sine_data


def test_curves_follow_the_tutorial_spec_exactly():
    (train_t, train_seq), (test_t, test_seq) = sine_curves()
    test_start = (10000 + 20) * 0.01
    test_end = test_start + (1000 + 20) * 0.01
    assert train_t.shape == (10020,) and test_t.shape == (1020,)
    assert train_t[0] == 0.0 and train_t[-1] == test_start
    assert test_t[0] == test_start and test_t[-1] == test_end
    np.testing.assert_array_equal(train_t, np.linspace(0.0, test_start, 10020))
    np.testing.assert_array_equal(test_t, np.linspace(test_start, test_end, 1020))
    np.testing.assert_array_equal(train_seq, np.sin(train_t))
    np.testing.assert_array_equal(test_seq, np.sin(test_t))


def test_windows_are_T_values_and_the_next_one_is_the_target():
    seq = np.arange(10.0)
    x, y = make_windows(seq, 3)
    assert x.shape == (7, 3, 1) and y.shape == (7, 1)  # (N, T, 1): T timesteps of one feature
    for i in range(7):
        np.testing.assert_array_equal(x[i, :, 0], seq[i : i + 3])
        assert y[i, 0] == seq[i + 3]


def test_sine_data_shapes_dtype_and_alignment():
    d = sine_data(dtype=np.float32)
    assert d.train_x.shape == (10000, 20, 1) and d.train_y.shape == (10000, 1)
    assert d.test_x.shape == (1000, 20, 1) and d.test_y.shape == (1000, 1)
    assert all(a.dtype == np.float32 for a in d[:4])
    (train_t, train_seq), (test_t, test_seq) = sine_curves()
    np.testing.assert_array_equal(d.train_x[:, :, 0], train_seq[np.arange(10000)[:, None] + np.arange(20)]
                                  .astype(np.float32))
    np.testing.assert_array_equal(d.test_y[:, 0], test_seq[20:].astype(np.float32))
    np.testing.assert_array_equal(d.test_t, test_t[20:])
    assert d.train_t[0] == train_t[20]


@pytest.mark.parametrize("kwargs", [dict(timesteps=0), dict(training_examples=-1), dict(sample_gap=0.0),
                                    dict(sample_gap=float("nan")), dict(testing_examples=2.5)])
def test_bad_arguments_raise_value_error_naming_them(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        sine_data(**kwargs)


def test_make_windows_refuses_short_or_2d_sequences():
    with pytest.raises(ValueError, match="longer than timesteps"):
        make_windows(np.arange(3.0), 3)
    with pytest.raises(ValueError, match="1-D"):
        make_windows(np.zeros((5, 2)), 2)


def test_batches_cover_each_epoch_once_and_depend_only_on_step_and_seed():
    n, B = 10, 4
    idx = np.concatenate([batch_indices(s, n, B, seed=3) for s in range(5)])  # 20 = two epochs
    assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:]) == list(range(10))
    assert not np.array_equal(idx[:10], idx[10:])  # reshuffled each epoch
    np.testing.assert_array_equal(batch_indices(2, n, B, seed=3), idx[8:12])  # straddles the epoch boundary
    assert not np.array_equal(batch_indices(0, n, B, seed=4), idx[:4])


def test_batch_sampler_returns_matching_rows():
    x = np.arange(30.0).reshape(10, 3, 1)
    y = x[:, -1] + 1
    xb, yb = BatchSampler(x, y, 4, seed=0)(7)
    assert xb.shape == (4, 3, 1) and yb.shape == (4, 1)
    np.testing.assert_array_equal(xb[:, -1] + 1, yb)
    with pytest.raises(ValueError, match="first axis"):
        BatchSampler(x, y[:5], 4)
