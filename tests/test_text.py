"""numpylstm.demos.text: vocabulary, Udacity-format batches, stateful evaluation, sampling, and the char model."""

import math

import numpy as np
import pytest

from numpylstm import LSTMModel
from numpylstm.demos import text as tx
from numpylstm.gradcheck import MODEL_TOL, check_model, format_report
from numpylstm.optim import Adam, clip_grad_norm

TEXT = "Happy families are all alike; every unhappy family is unhappy in its own way.\n" * 3


def char_model(V, H=8, L=2, dropout=0.0, seed=0, dtype=np.float64):
    return LSTMModel(V, H, V, num_layers=L, dropout=dropout, head="all", loss="softmax_ce", seed=seed,
                     dtype=dtype)


# ----------------------------------------------------------------------------- vocabulary
def test_vocab_round_trip_and_portable_array(tmp_path):
    s = "Levin — Kitty, café; «Anna»!\n\t0"
    v = tx.Vocab.from_text(s)
    assert v.chars == "".join(sorted(set(s))) and len(v) == len(set(s))
    ids = v.encode(s)
    assert ids.dtype == np.int64 and ids.shape == (len(s),)
    assert np.array_equal(ids, [v.chars.index(c) for c in s])
    assert v.decode(ids) == s
    assert v.decode(ids.reshape(1, -1)) == s and v.decode([]) == ""
    np.savez(tmp_path / "v.npz", vocab=v.to_array())
    with np.load(tmp_path / "v.npz", allow_pickle=False) as f:
        assert f["vocab"].dtype == np.int32
        assert tx.Vocab.from_array(f["vocab"]) == v


def test_vocab_refuses_unknown_chars_and_bad_arrays():
    v = tx.Vocab.from_text("abc")
    with pytest.raises(ValueError, match=r"prime contains 1 character.*'z' \(U\+007A\)"):
        v.encode("abz", name="prime")
    with pytest.raises(ValueError, match=r"'é'"):  # beyond the lookup table
        v.encode("é")
    with pytest.raises(ValueError, match="ids holds ids outside"):
        v.decode([0, 3])
    for bad in ([], [98, 97], [[97]], [97.0], [-1, 97]):
        with pytest.raises(ValueError, match="vocabulary array"):
            tx.Vocab.from_array(np.array(bad))
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        tx.Vocab.from_text("")


# ----------------------------------------------------------------------------- batches
def test_batches_shapes_shift_and_row_continuity():
    seq = np.arange(23)  # 22 inputs with a real next item -> K = 22 // (2 * 3) = 3 batches
    got = list(tx.batches(seq, n_seqs=2, n_steps=3))
    assert tx.num_batches(len(seq), 2, 3) == len(got) == 3
    xs = np.concatenate([x for x, _ in got], axis=1)
    ys = np.concatenate([y for _, y in got], axis=1)
    assert np.array_equal(xs, np.arange(18).reshape(2, 9))  # the Udacity reshape (n_seqs, -1)
    assert np.array_equal(ys, xs + 1)  # targets shifted by one; the very last target (18) is real text
    for (x0, _), (x1, _) in zip(got, got[1:]):
        assert x0.shape == (2, 3)
        assert np.array_equal(x1[:, 0], x0[:, -1] + 1)  # row r continues row r: state carrying is exact


def test_windows_random_access_matches_iteration():
    w = tx.Windows(np.arange(50), 3, 4)
    assert len(w) == 4 == tx.num_batches(50, 3, 4)
    for k, (x, y) in enumerate(tx.batches(np.arange(50), 3, 4)):
        assert np.array_equal(w[k][0], x) and np.array_equal(w[k][1], y)
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        w[4]


def test_batches_never_invent_the_last_target():
    assert len(list(tx.batches(np.arange(7), 2, 3))) == 1  # 6 inputs + their 6 true targets
    with pytest.raises(ValueError, match=r"needs at least 7"):
        next(tx.batches(np.arange(6), 2, 3))
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        next(tx.batches(np.arange(100), 2, 0))


def test_split_keeps_the_end_for_validation():
    seq = np.arange(1000)
    tr, va = tx.split(seq)
    assert len(tr) == 900 and len(va) == 100 and np.array_equal(np.concatenate([tr, va]), seq)
    with pytest.raises(ValueError, match="val_fraction"):
        tx.split(seq, 1.0)


# ----------------------------------------------------------------------------- model on token ids
def test_gather_input_gradients_pass_the_checker():
    rng = np.random.default_rng(3)
    V = 6
    model = char_model(V, H=4, dropout=0.25, seed=1)
    x = rng.integers(0, V - 1, (2, 5))  # id V-1 never occurs: its Wx row must get exactly zero gradient
    x[0, :3] = 2  # a repeated id: np.add.at must accumulate, not overwrite
    y = rng.integers(0, V, (2, 5))
    state = rng.standard_normal((2, 2, 2, 4)) * 0.5
    rows = check_model(model, x, y, state)
    assert all(r.max_rel < MODEL_TOL for r in rows), format_report(rows, MODEL_TOL)
    assert {r.name for r in rows} >= {"lstm.0.Wx", "initial state"}
    _, grads, _ = model.loss_and_grads(x, y, state, train=False)
    assert np.all(grads["lstm.0.Wx"][V - 1] == 0) and np.any(grads["lstm.0.Wx"][2] != 0)


def test_gather_equals_one_hot_input():
    rng = np.random.default_rng(4)
    V = 5
    model = char_model(V, H=3)
    x = rng.integers(0, V, (3, 4))
    y = rng.integers(0, V, (3, 4))
    loss_ids, g_ids, s_ids = model.loss_and_grads(x, y, train=False)
    loss_hot, g_hot, s_hot = model.loss_and_grads(np.eye(V)[x], y, train=False)
    assert loss_ids == pytest.approx(loss_hot, rel=1e-13)
    np.testing.assert_allclose(s_ids, s_hot, rtol=1e-13, atol=1e-15)
    for k in g_ids:
        np.testing.assert_allclose(g_ids[k], g_hot[k], rtol=1e-11, atol=1e-14, err_msg=k)


def test_evaluate_carries_state_exactly():
    """Walking in windows with the state carried == one long window per row."""
    v = tx.Vocab.from_text(TEXT)
    ids = v.encode(TEXT)
    model = char_model(len(v), H=6, seed=2)
    K = tx.num_batches(len(ids), 3, 7)
    chunked = tx.evaluate(model, ids, 3, 7)
    whole = tx.evaluate(model, ids, 3, 7 * K)
    assert chunked == pytest.approx(whole, rel=1e-12)
    fresh_each_batch = np.mean([model.evaluate(x, y)[0] for x, y in tx.batches(ids, 3, 7)])
    assert abs(fresh_each_batch - chunked) > 1e-6  # the carried state really changes the numbers


def test_evaluate_float_series():
    t = np.sin(np.linspace(0, 20, 301))
    model = LSTMModel(1, 4, 1, head="all", loss="mse")
    mse = tx.evaluate(model, t, 4, 10)
    K = tx.num_batches(len(t), 4, 10)
    x, y = next(tx.batches(t, 4, 10 * K))  # each row in one window: same positions, same mean
    assert mse == pytest.approx(model.evaluate(x[..., None], y[..., None])[0], rel=1e-12)


def test_periodic_text_is_learned_to_near_zero_loss():
    text = "abc" * 400
    v = tx.Vocab.from_text(text)
    ids = v.encode(text)
    model = char_model(len(v), H=16, seed=0, dtype=np.float32)
    opt = Adam(model.params, lr=1e-2)
    first = tx.evaluate(model, ids, 4, 10)
    assert first == pytest.approx(math.log(3), abs=0.15)
    for _ in range(8):  # epochs; the state starts at zeros each epoch
        state = None
        for x, y in tx.batches(ids, 4, 10):
            _, grads, state = model.loss_and_grads(x, y, state)
            clip_grad_norm(grads, 5.0)
            opt.step(grads)
    assert tx.evaluate(model, ids, 4, 10) < 0.02
    assert tx.sample(model, v, prime="ab", length=30, top_k=3, seed=0) == "ab" + "cab" * 10


# ----------------------------------------------------------------------------- sampling
def test_sample_is_reproducible_and_stays_in_the_top_k():
    v = tx.Vocab.from_text(TEXT)
    model = char_model(len(v), H=8, seed=5)
    a = tx.sample(model, v, prime="Hap", length=60, top_k=3, temperature=1.0, seed=7)
    assert a == tx.sample(model, v, prime="Hap", length=60, top_k=3, temperature=1.0, seed=7)
    assert a.startswith("Hap") and len(a) == 63
    assert a != tx.sample(model, v, prime="Hap", length=60, top_k=None, seed=8)
    # Replay the whole text in one forward pass: y[0, p] is the distribution that drew character p + 1.
    ids = v.encode(a)
    y, _ = model.forward(ids[None, :-1])
    for p in range(2, len(a) - 1):
        top3 = np.argsort(y[0, p])[-3:]
        assert ids[p + 1] in top3
    greedy = tx.sample(model, v, prime="Hap", length=40, top_k=1, seed=0)
    assert greedy == tx.sample(model, v, prime="Hap", length=40, top_k=1, seed=123)
    assert greedy == tx.sample(model, v, prime="Hap", length=40, top_k=None, temperature=1e-4, seed=1)


def test_sample_argument_errors():
    v = tx.Vocab.from_text("abc")
    model = char_model(3, H=4)
    with pytest.raises(ValueError, match=r"prime contains .*'F'"):
        tx.sample(model, v, prime="Far")
    with pytest.raises(ValueError, match="prime must be a non-empty str"):
        tx.sample(model, v, prime="")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        tx.sample(model, v, prime="a", top_k=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        tx.sample(model, v, prime="a", temperature=0.0)
    with pytest.raises(ValueError, match="length must be a non-negative integer"):
        tx.sample(model, v, prime="a", length=-1)
    with pytest.raises(ValueError, match="3-character vocabulary"):
        tx.sample(char_model(4, H=4), v, prime="a")
