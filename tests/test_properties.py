"""Property-based tests (hypothesis) over random small shapes, dtypes, layer counts, heads and losses.

Each property is one that must hold for *every* such configuration: output shapes, finite outputs, analytic
gradients equal to central differences (float64, a sampled subset of entries), running a sequence in chunks
with the state carried over equals running it whole, and a wrong input shape is always a ValueError that
names the argument. The gradient, chunking and extreme-value properties run on both layer implementations
(``impl`` "fast" and "textbook").
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpylstm import LSTMModel, fast, textbook
from numpylstm.gradcheck import LAYER_TOL, MODEL_TOL, check_arrays, check_model

IMPLS = {"fast": fast, "textbook": textbook}

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small = st.integers(1, 4)
dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def model_setup(draw, dtype=None):
    """A random model and a matching batch (x, y, state)."""
    N, T, D, H, O = draw(small), draw(st.integers(1, 6)), draw(small), draw(small), draw(small)
    L = draw(st.integers(1, 3))
    head = draw(st.sampled_from(["last", "all"]))
    loss = draw(st.sampled_from(["mse", "softmax_ce"]))
    tokens = draw(st.booleans())
    dt = draw(dtypes) if dtype is None else dtype
    dropout = draw(st.sampled_from([0.0, 0.3]))
    seed = draw(st.integers(0, 2**16))
    model = LSTMModel(D, H, O, num_layers=L, dropout=dropout, head=head, loss=loss, seed=seed, dtype=dt)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    yshape = (N,) if head == "last" else (N, T)
    y = rng.integers(0, O, yshape) if loss == "softmax_ce" else rng.standard_normal(yshape + (O,))
    state = rng.standard_normal((L, 2, N, H)) * 0.5
    return model, x, y, state


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@FAST
@given(model_setup(), st.booleans())
def test_model_shapes_dtypes_and_finite_outputs(setup, train):
    model, x, y, state = setup
    N, T = np.shape(x)[:2]
    L, H, O = model.num_layers, model.hidden_size, model.output_size
    out, new_state = model.forward(x, state, train=train)
    assert out.shape == ((N, O) if model.head == "last" else (N, T, O))
    assert new_state.shape == (L, 2, N, H)
    assert out.dtype == new_state.dtype == model.dtype
    assert np.isfinite(out).all() and np.isfinite(new_state).all()
    assert np.abs(new_state[:, 1]).max() <= 1.0  # h = o * tanh(c) lies in [-1, 1]
    loss, grads, s2 = model.loss_and_grads(x, y, state, train=train)
    assert np.isfinite(loss)
    assert list(grads) == list(model.params)
    for k, g in grads.items():
        assert g.shape == model.params[k].shape and g.dtype == model.dtype, k
        assert np.isfinite(g).all(), k


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_setup(dtype=np.float64))
def test_model_gradients_match_central_differences_on_a_sample(impl, setup):
    model, x, y, state = setup
    rows = check_model(model, x, y, state, train=True, max_entries=3, seed=1, impl=impl)
    for r in rows:
        assert r.max_rel < MODEL_TOL, (r.name, r.max_rel, r.max_abs)


@st.composite
def layer_setup(draw, dtype=None):
    N, T, D, H = draw(small), draw(st.integers(1, 7)), draw(small), draw(small)
    dt = draw(dtypes) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arrays = dict(x=rng.standard_normal((N, T, D)), h0=rng.standard_normal((N, H)),
                  c0=rng.standard_normal((N, H)), Wx=rng.standard_normal((D, 4 * H)) / np.sqrt(D),
                  Wh=rng.standard_normal((H, 4 * H)) / np.sqrt(H), b=rng.standard_normal(4 * H) * 0.5)
    arrays = {k: v.astype(dt) for k, v in arrays.items()}
    R = rng.standard_normal((N, T, H)).astype(dt)
    return arrays, R


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=12, deadline=None)
@given(layer_setup(dtype=np.float64))
def test_layer_gradients_match_central_differences_on_a_sample(impl, setup):
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    arrays, R = setup
    args = [arrays[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b")]

    def f():
        return float(np.vdot(lstm_forward(*args)[0], R))

    grads = lstm_backward(R, lstm_forward(*args)[2])
    rows = check_arrays(f, arrays, dict(zip(arrays, grads)), max_entries=4, seed=2)
    for r in rows:
        assert r.max_rel < LAYER_TOL, (r.name, r.max_rel, r.max_abs)


@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(layer_setup(), st.data())
def test_layer_chunked_equals_whole(impl, setup, data):
    """Forward in chunks carrying (h, c), backward in reverse carrying (dh, dc): same as one call."""
    lstm_forward, lstm_backward = IMPLS[impl].lstm_forward, IMPLS[impl].lstm_backward
    arrays, R = setup
    x, h0, c0, Wx, Wh, b = (arrays[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b"))
    T = x.shape[1]
    cut = data.draw(st.integers(1, T), label="cut")
    tol = _tol(x.dtype)
    hs, (hT, cT), cache = lstm_forward(x, h0, c0, Wx, Wh, b)
    full = lstm_backward(R, cache)
    hs1, (h1, c1), cache1 = lstm_forward(x[:, :cut], h0, c0, Wx, Wh, b)
    if cut == T:
        np.testing.assert_allclose(hs1, hs, **tol)
        return
    hs2, (h2, c2), cache2 = lstm_forward(x[:, cut:], h1, c1, Wx, Wh, b)
    np.testing.assert_allclose(np.concatenate([hs1, hs2], axis=1), hs, **tol)
    np.testing.assert_allclose(h2, hT, **tol)
    np.testing.assert_allclose(c2, cT, **tol)
    dx2, dh, dc, dWx2, dWh2, db2 = lstm_backward(R[:, cut:], cache2)
    dx1, dh0, dc0, dWx1, dWh1, db1 = lstm_backward(R[:, :cut], cache1, dh, dc)
    chained = (np.concatenate([dx1, dx2], axis=1), dh0, dc0, dWx1 + dWx2, dWh1 + dWh2, db1 + db2)
    gtol = dict(rtol=1e-4, atol=1e-4) if x.dtype == np.float32 else tol
    for name, a, f in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"], chained, full):
        np.testing.assert_allclose(a, f, err_msg=name, **gtol)


@FAST
@given(model_setup(), st.data())
def test_model_chunked_with_carried_state_equals_whole(setup, data):
    """forward(x) == forward(x[:, :k]) then forward(x[:, k:], state) -- the TF-1 final_state pattern."""
    model, x, _, state = setup
    T = np.shape(x)[1]
    cut = data.draw(st.integers(1, T), label="cut")
    tol = _tol(model.dtype)
    y, s = model.forward(x, state)
    y1, s1 = model.forward(x[:, :cut], state)
    if cut < T:
        y2, s1 = model.forward(x[:, cut:], s1)
        if model.head == "all":
            y2 = np.concatenate([y1, y2], axis=1)
        y1 = y2
    np.testing.assert_allclose(y1, y, **tol)
    np.testing.assert_allclose(s1, s, **tol)


# ---------------------------------------------------------------------------- random wrong inputs

array_shapes = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)
bad_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
                              np.complex128, np.str_, object])


def _make(shape, dtype):
    a = np.ones(shape, dtype=np.float64)
    if dtype is object:
        return a.astype(object)
    return a.astype(dtype)


@settings(max_examples=60, deadline=None)
@given(array_shapes, bad_dtypes, st.sampled_from(["x", "y", "state"]), st.booleans())
def test_any_input_is_accepted_or_refused_with_a_named_value_error(shape, dtype, which, as_list):
    """Random shapes (empty ones too) and dtypes for x, y or state: either the call works (only when the
    value is a valid one under the rule in _checks) or it raises ValueError naming the argument."""
    model = LSTMModel(2, 3, 1, num_layers=2)
    args = dict(x=np.zeros((2, 3, 2)), y=np.zeros((2, 1)), state=np.zeros((2, 2, 2, 3)))
    value = _make(shape, dtype)
    args[which] = value.tolist() if as_list else value
    try:
        if which == "x":  # alone, so that a valid x with another N is not reported as a bad state or y
            model.forward(args["x"])
        else:
            model.loss_and_grads(args["x"], args["y"], args["state"])
    except ValueError as exc:
        assert str(exc).startswith(which), str(exc)
        return
    kind = np.asarray(args[which]).dtype.kind
    assert kind in "iuf", (shape, dtype)
    if which == "x":  # any N, T >= 1: (N, T, D=2) numbers or (N, T) integer ids (all 1 here, < D)
        assert min(shape) >= 1 and (len(shape) == 3 and shape[2] == 2 or len(shape) == 2 and kind in "iu"), shape
    else:
        assert shape == {"y": (2, 1), "state": (2, 2, 2, 3)}[which], shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_and_converted_inputs_give_the_same_answer(dtype):
    model = LSTMModel(3, 4, 2, num_layers=2, head="all", dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    y = rng.standard_normal((2, 5, 2))
    ref = model.loss_and_grads(x, y, train=False)[0]
    wide = np.zeros((2, 10, 6))
    wide[:, ::2, ::2] = x  # a strided view with the same values
    assert model.loss_and_grads(wide[:, ::2, ::2], y, train=False)[0] == ref
    assert model.loss_and_grads(x.tolist(), y.tolist(), train=False)[0] == ref
    xi = np.arange(30).reshape(2, 5, 3) % 3  # ints in a float slot are converted
    np.testing.assert_array_equal(model.forward(xi)[0], model.forward(xi.astype(np.float64))[0])


# ---------------------------------------------------------------------------- extreme values

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("head, loss", [("last", "mse"), ("all", "softmax_ce"), ("all", "mse")])
@pytest.mark.parametrize("scale_x, scale_w", [(1e4, 1.0), (1.0, 1e4), (-1e4, 1e4)])
def test_model_is_finite_and_warning_free_for_huge_inputs_and_weights(dtype, head, loss, scale_x, scale_w, impl):
    """Pre-activations of order +-1e4 (and far beyond) saturate the gates instead of overflowing."""
    import warnings

    rng = np.random.default_rng(0)
    model = LSTMModel(3, 4, 5, num_layers=2, dropout=0.2, head=head, loss=loss, dtype=dtype, impl=impl)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape) * scale_w
    x = rng.standard_normal((2, 6, 3)) * scale_x
    y = rng.integers(0, 5, (2, 6)) if loss == "softmax_ce" else rng.standard_normal(
        (2, 5) if head == "last" else (2, 6, 5))
    state = rng.standard_normal((2, 2, 2, 4)) * 1e4
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss_value, grads, new_state = model.loss_and_grads(x, y, state)
    assert np.isfinite(loss_value) and np.isfinite(new_state).all()
    assert all(np.isfinite(g).all() for g in grads.values())


def test_softmax_ce_is_finite_and_warning_free_for_huge_logits():
    import warnings

    from numpylstm.losses import softmax_ce

    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e300, -1e300, 0.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss, dz = softmax_ce(logits, np.array([1, 0, 0]))
    assert np.isfinite(loss) and np.isfinite(dz).all()
    # row 0 puts all mass on class 0 but the target is 1: loss 2e4 / 3 rows; row 1 is uniform: log 3
    assert loss == pytest.approx((2e4 + np.log(3.0) + 0.0) / 3)
