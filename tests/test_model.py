"""LSTMModel: gradient checks of the whole model, shapes, carried state, dropout, dtypes, bad input."""

import numpy as np
import pytest

from numpylstm import LSTMModel
from numpylstm.gradcheck import MODEL_TOL, check_model

CASES = {
    # name: (D, H, O, L, dropout, head, loss, N, T)
    "sine-like": (1, 6, 1, 2, 0.0, "last", "mse", 4, 8),
    "3-layers-dropout": (3, 5, 2, 3, 0.3, "last", "mse", 3, 6),
    "N1-T1-H1": (1, 1, 1, 1, 0.0, "last", "mse", 1, 1),
    "D>H": (9, 3, 2, 2, 0.0, "last", "mse", 2, 4),
    "all-softmax-dropout": (4, 5, 6, 2, 0.5, "all", "softmax_ce", 3, 5),
    "all-mse": (2, 4, 3, 1, 0.0, "all", "mse", 2, 3),
    "last-softmax": (3, 4, 5, 2, 0.2, "last", "softmax_ce", 4, 3),
}


def _data(rng, D, O, loss, head, N, T):
    x = rng.standard_normal((N, T, D))
    if loss == "softmax_ce":
        y = rng.integers(0, O, (N, T) if head == "all" else (N,))
    else:
        y = rng.standard_normal((N, T, O) if head == "all" else (N, O))
    return x, y


@pytest.mark.parametrize("impl", ["fast", "textbook"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_model_gradients_match_central_differences(rng, case, impl):
    D, H, O, L, dropout, head, loss, N, T = CASES[case]
    model = LSTMModel(D, H, O, L, dropout=dropout, head=head, loss=loss, seed=7, impl=impl)
    x, y = _data(rng, D, O, loss, head, N, T)
    state = rng.standard_normal((L, 2, N, H)) * 0.5
    rows = check_model(model, x, y, state, max_entries=60)
    names = {r.name for r in rows}
    assert set(model.params) <= names and {"input x", "initial state"} <= names
    for r in rows:
        assert r.max_rel < MODEL_TOL, (r.name, r.max_rel, r.max_abs)


@pytest.mark.parametrize("impl", ["fast", "textbook"])
def test_token_input_gradients_match_central_differences(rng, impl):
    V = 7
    model = LSTMModel(V, 5, V, 2, dropout=0.25, head="all", loss="softmax_ce", seed=2, impl=impl)
    x = rng.integers(0, V, (3, 6))
    y = rng.integers(0, V, (3, 6))
    rows = check_model(model, x, y, rng.standard_normal((2, 2, 3, 5)) * 0.5)
    assert "input x" not in {r.name for r in rows}
    for r in rows:
        assert r.max_rel < MODEL_TOL, (r.name, r.max_rel)


def test_token_input_equals_one_hot_input(rng):
    V, N, T = 6, 3, 4
    model = LSTMModel(V, 4, V, 2, head="all", loss="softmax_ce", seed=3)
    ids = rng.integers(0, V, (N, T))
    y = rng.integers(0, V, (N, T))
    one_hot = np.eye(V)[ids]
    l1, g1, s1 = model.loss_and_grads(ids, y)
    l2, g2, s2 = model.loss_and_grads(one_hot, y)
    assert l1 == pytest.approx(l2, rel=1e-13)
    np.testing.assert_allclose(s1, s2, atol=1e-14)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], atol=1e-14, err_msg=k)


def test_sine_model_shapes_match_the_tf_notes():
    """x (64, 20, 1) -> y (64, 1); final_state (2, 2, 64, 20) like the TF-1 user printed."""
    model = LSTMModel(1, 20, 1, num_layers=2)
    y, state = model.forward(np.zeros((64, 20, 1)))
    assert y.shape == (64, 1)
    assert state.shape == (2, 2, 64, 20)
    assert model.params["lstm.0.Wx"].shape == (1, 80)
    assert model.params["lstm.1.Wx"].shape == (20, 80)
    assert model.params["head.W"].shape == (20, 1)


def test_state_holds_c_then_h_of_each_layer(rng):
    from numpylstm import lstm_forward

    model = LSTMModel(2, 3, 1, num_layers=2, seed=1)
    x = rng.standard_normal((4, 5, 2))
    _, state = model.forward(x)
    P = model.params
    hs0, (h0T, c0T), _ = lstm_forward(x, None, None, P["lstm.0.Wx"], P["lstm.0.Wh"], P["lstm.0.b"])
    hs1, (h1T, c1T), _ = lstm_forward(hs0, None, None, P["lstm.1.Wx"], P["lstm.1.Wh"], P["lstm.1.b"])
    np.testing.assert_allclose(state[0, 0], c0T, atol=1e-15)
    np.testing.assert_allclose(state[0, 1], h0T, atol=1e-15)
    np.testing.assert_allclose(state[1, 0], c1T, atol=1e-15)
    np.testing.assert_allclose(state[1, 1], h1T, atol=1e-15)


def test_passing_state_back_continues_the_sequence(rng):
    model = LSTMModel(2, 4, 3, num_layers=2, head="all", seed=1)
    x = rng.standard_normal((3, 8, 2))
    y_full, s_full = model.forward(x)
    y1, s1 = model.forward(x[:, :5])
    y2, s2 = model.forward(x[:, 5:], state=s1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_full, atol=1e-14)
    np.testing.assert_allclose(s2, s_full, atol=1e-14)


def test_init_is_pytorch_uniform_plus_forget_bias():
    H = 16
    model = LSTMModel(3, H, 2, num_layers=2, forget_bias=1.0, seed=0)
    k = 1 / np.sqrt(H)
    for name, p in model.params.items():
        if name.endswith(".b") and name.startswith("lstm"):
            f = p[H:2 * H] - 1.0
            rest = np.concatenate([p[:H], p[2 * H:]])
            assert np.all(np.abs(f) <= k) and np.all(np.abs(rest) <= k)
            assert f.mean() == pytest.approx(0, abs=0.2)
        else:
            assert np.all(np.abs(p) <= k), name
    assert model.num_params() == sum(int(np.prod(s)) for s in model.param_shapes().values())
    m0 = LSTMModel(3, H, 2, forget_bias=0.0, seed=0)
    assert np.all(np.abs(m0.params["lstm.0.b"]) <= k)


def test_same_seed_same_model_and_different_seed_differs():
    a, b, c = (LSTMModel(2, 5, 1, 2, seed=s) for s in (4, 4, 5))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["lstm.0.Wx"], c.params["lstm.0.Wx"])


def test_dropout_only_in_training_and_inverted(rng):
    model = LSTMModel(2, 50, 1, num_layers=1, dropout=0.4, seed=0)
    x = rng.standard_normal((8, 5, 2))
    y_eval1, _ = model.forward(x)
    y_eval2, _ = model.forward(x)
    np.testing.assert_array_equal(y_eval1, y_eval2)
    y_train, _ = model.forward(x, train=True)
    assert not np.allclose(y_train, y_eval1)
    masks = model.make_masks(200, 30)
    m = masks[0]
    assert m.shape == (200, 30, 50)
    assert set(np.unique(m)) == {0.0, 1 / 0.6}
    assert m.mean() == pytest.approx(1.0, abs=0.02)  # inverted: expectation preserved
    assert (m == 0).mean() == pytest.approx(0.4, abs=0.01)


def test_fixed_masks_make_training_loss_deterministic(rng):
    model = LSTMModel(2, 4, 1, num_layers=2, dropout=0.5, seed=0)
    x, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 1))
    masks = model.make_masks(3, 4)
    l1 = model.loss_and_grads(x, y, masks=masks)[0]
    l2 = model.loss_and_grads(x, y, masks=masks)[0]
    l3 = model.loss_and_grads(x, y)[0]  # fresh masks
    assert l1 == l2 and l1 != l3
    ones = [np.ones_like(m) for m in masks]
    assert model.loss_and_grads(x, y, masks=ones)[0] == pytest.approx(model.evaluate(x, y)[0], rel=1e-14)


def test_float32_model_trains_in_float32(rng):
    model = LSTMModel(1, 8, 1, num_layers=2, dtype=np.float32, seed=0)
    x = rng.standard_normal((4, 6, 1))
    y = rng.standard_normal((4, 1))
    loss, grads, state = model.loss_and_grads(x, y)
    assert isinstance(loss, float)
    assert state.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(p.dtype == np.float32 for p in model.params.values())
    m64 = LSTMModel(1, 8, 1, num_layers=2, seed=0)
    assert loss == pytest.approx(m64.loss_and_grads(x, y)[0], rel=1e-5)


def test_gradient_descent_lowers_the_loss(rng):
    model = LSTMModel(1, 8, 1, num_layers=1, seed=0)
    t = np.linspace(0, 6, 40)
    x = np.sin(t[:32] + np.arange(8)[:, None] * 0.1)[..., None][:8, :20]
    y = np.sin(t[20:28])[:, None]
    first = model.evaluate(x, y)[0]
    for _ in range(200):
        _, grads, _ = model.loss_and_grads(x, y)
        for k in model.params:
            model.params[k] -= 0.1 * grads[k]
    assert model.evaluate(x, y)[0] < 0.2 * first


BAD_CONSTRUCTOR = [
    (dict(input_size=0), "input_size"),
    (dict(hidden_size=-3), "hidden_size"),
    (dict(output_size=2.5), "output_size"),
    (dict(num_layers=0), "num_layers"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(head="first"), "head"),
    (dict(loss="mae"), "loss"),
    (dict(forget_bias=float("nan")), "forget_bias"),
    (dict(dtype=np.int32), "dtype"),
    (dict(seed=-1), "seed"),
    (dict(impl="Textbook"), "impl must be one of 'fast', 'textbook'; got 'Textbook'"),
    (dict(impl=None), "impl"),
]


@pytest.mark.parametrize("kwargs,culprit", BAD_CONSTRUCTOR, ids=[c.split()[0] for _, c in BAD_CONSTRUCTOR])
def test_bad_constructor_arguments(kwargs, culprit):
    args = dict(input_size=2, hidden_size=3, output_size=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=culprit):
        LSTMModel(**args)


def test_bad_call_arguments(rng):
    model = LSTMModel(2, 3, 1, num_layers=2)
    x, y = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 1))
    cases = [
        (lambda: model.forward(x[0]), r"x must have shape \(N, T, D\)"),
        (lambda: model.forward(rng.standard_normal((4, 5, 3))), r"x must have shape \(N, T, D\) = \(\?, \?, 2\)"),
        (lambda: model.forward(np.where(x > 1, np.nan, x)), "x contains"),
        (lambda: model.forward(x.astype(str)), "x must be a real numeric array"),
        (lambda: model.forward(x, state=np.zeros((2, 2, 4, 4))), r"state must have shape \(L, 2, N, H\) = \(2, 2, 4, 3\)"),
        (lambda: model.forward(x, state=np.zeros((2, 4, 3))), "state"),
        (lambda: model.loss_and_grads(x, y[:3]), r"y must have shape \(N, O\) = \(4, 1\)"),
        (lambda: model.loss_and_grads(x, y, masks=[np.ones((4, 5, 3))]), "masks"),
        (lambda: model.loss_and_grads(x, y, masks=[np.ones((4, 5, 3)), np.ones((4, 5, 2))]), r"masks\[1\]"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()


def test_bad_token_inputs(rng):
    model = LSTMModel(5, 3, 5, head="all", loss="softmax_ce")
    with pytest.raises(ValueError, match=r"x holds ids outside \[0, 5\)"):
        model.forward(np.array([[0, 5]]))
    with pytest.raises(ValueError, match="y holds ids outside"):
        model.loss_and_grads(np.array([[0, 1]]), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="y must hold integer"):
        model.loss_and_grads(np.array([[0, 1]]), np.array([[0.0, 1.0]]))


def test_reused_workspaces_never_change_returned_arrays(rng):
    """The model reuses its big buffers between calls; nothing it returned may change afterwards."""
    model = LSTMModel(3, 4, 2, num_layers=2, dropout=0.2, head="all", seed=0)
    x1, y1 = rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 5, 2))
    masks = model.make_masks(3, 5)
    out1 = model.loss_and_grads(x1, y1, masks=masks, input_grads=True)
    keep = (out1[0], {k: v.copy() for k, v in out1[1].items()}, out1[2].copy(), out1[3]["x"].copy())
    yhat, st = model.forward(x1)
    yhat_copy, st_copy = yhat.copy(), st.copy()
    model.loss_and_grads(rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 5, 2)), input_grads=True)
    model.forward(rng.standard_normal((2, 7, 3)))  # other shapes: buffers re-made
    for k in keep[1]:
        np.testing.assert_array_equal(out1[1][k], keep[1][k])
    np.testing.assert_array_equal(out1[2], keep[2])
    np.testing.assert_array_equal(out1[3]["x"], keep[3])
    np.testing.assert_array_equal(yhat, yhat_copy)
    np.testing.assert_array_equal(st, st_copy)
    again = model.loss_and_grads(x1, y1, masks=masks, input_grads=True)
    assert again[0] == keep[0]
    for k in keep[1]:
        np.testing.assert_array_equal(again[1][k], keep[1][k])


def test_large_vocabulary_scatter_path_equals_one_hot_input(rng):
    """V > 512 takes the np.add.at branch of (E2); repeated ids must accumulate, not overwrite."""
    V, N, T = 600, 4, 6
    model = LSTMModel(V, 3, 5, head="all", loss="softmax_ce", seed=4)
    ids = rng.integers(0, 8, (N, T))  # few distinct ids: many repeats
    y = rng.integers(0, 5, (N, T))
    l1, g1, _ = model.loss_and_grads(ids, y)
    l2, g2, _ = model.loss_and_grads(np.eye(V)[ids], y)
    assert l1 == pytest.approx(l2, rel=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=0, atol=1e-13, err_msg=k)
    assert np.count_nonzero(np.abs(g1["lstm.0.Wx"]).sum(axis=1)) == len(np.unique(ids))


def test_public_forward_outputs_are_read_only_views_of_the_cache(rng):
    from numpylstm import lstm_forward

    x = rng.standard_normal((2, 3, 4))
    Wx, Wh, b = rng.standard_normal((4, 8)), rng.standard_normal((2, 8)), np.zeros(8)
    hs, (hT, cT), cache = lstm_forward(x, None, None, Wx, Wh, b)
    for a in (hs, hT, cT):
        with pytest.raises(ValueError, match="read-only"):
            a *= 2.0
    masked = hs * 0.5  # a copy is fine
    assert masked.flags.writeable
