"""Same seed -> bit-identical float64 results (on the same machine): initialisation, dropout, training steps.

Each test also checks that a *different* seed gives a different result, so that it can fail.
"""

import numpy as np
import pytest

from numpylstm import Adam, LSTMModel, clip_grad_norm


def _model(seed, dropout=0.3):
    return LSTMModel(3, 5, 2, num_layers=2, dropout=dropout, head="all", seed=seed)


def _train(seed, steps=4):
    """A few Adam steps with dropout and clipping, state carried between batches."""
    model = _model(seed)
    opt = Adam(model.params, lr=1e-2)
    data = np.random.default_rng(100)  # the data is the same for every seed
    state, losses = None, []
    for _ in range(steps):
        x, y = data.standard_normal((4, 6, 3)), data.standard_normal((4, 6, 2))
        loss, grads, state = model.loss_and_grads(x, y, state, train=True)
        clip_grad_norm(grads, 1.0)
        opt.step(grads)
        losses.append(loss)
    return model, opt, losses


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_initialisation_is_bit_identical_for_a_seed():
    assert _same(_model(7).params, _model(7).params)
    assert not _same(_model(7).params, _model(8).params)


def test_dropout_masks_are_bit_identical_for_a_seed():
    a, b, c = _model(3), _model(3), _model(4)
    ma, mb, mc = a.make_masks(4, 6), b.make_masks(4, 6), c.make_masks(4, 6)
    assert all(np.array_equal(p, q) for p, q in zip(ma, mb))
    assert not all(np.array_equal(p, q) for p, q in zip(ma, mc))
    # the stream continues identically: the second draw is identical too, and differs from the first
    ma2, mb2 = a.make_masks(4, 6), b.make_masks(4, 6)
    assert all(np.array_equal(p, q) for p, q in zip(ma2, mb2))
    assert not all(np.array_equal(p, q) for p, q in zip(ma, ma2))


def test_forward_with_dropout_is_bit_identical_for_a_seed():
    x = np.random.default_rng(0).standard_normal((4, 6, 3))
    ya, _ = _model(5).forward(x, train=True)
    yb, _ = _model(5).forward(x, train=True)
    assert np.array_equal(ya, yb)
    assert not np.array_equal(ya, _model(5).forward(x, train=False)[0])


def test_training_steps_are_bit_identical_for_a_seed():
    m1, o1, l1 = _train(11)
    m2, o2, l2 = _train(11)
    assert l1 == l2
    assert _same(m1.params, m2.params)
    assert _same(o1.state_dict(), o2.state_dict())
    m3, _, l3 = _train(12)
    assert l3 != l1 and not _same(m1.params, m3.params)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_evaluation_does_not_touch_the_random_stream(dropout):
    """forward(train=False) and evaluate draw nothing, so interleaving them does not change training."""
    x, y = np.ones((2, 3, 3)), np.ones((2, 3, 2))
    a, b = _model(1, dropout), _model(1, dropout)
    a.forward(x)
    a.evaluate(x, y)
    assert np.array_equal(a.loss_and_grads(x, y)[0], b.loss_and_grads(x, y)[0])
