"""pipeline.py, the second thread: it must change no number (beyond roundoff), lose no error, leave no setting
changed, and never leave the second thread busy with a dead pass's work.

"Equal" is test_textbook.py's: max |pipelined - plain| <= 1e-13 * max |plain| for every result, float64. The
pipelined pass adds the weight gradients chunk by chunk (k = 0, 1, ...) where the plain pass makes one GEMM over
all T, so the two differ by roundoff (~1e-16), and the pipelined numbers are the same from run to run.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from numpylstm import LSTMModel, fast, pipeline
from numpylstm.gradcheck import MODEL_TOL, check_model

from test_textbook import assert_same, model_data, run_model

# (D, H, O, L, dropout, head, loss, N, T, tokens): every head and loss, token ids, dropout, 3 layers, and the
# chunkings: T = 2 (two chunks of one step), T = 3 (chunks of 1 and 2 steps), T = 23 (2 chunks), T = 31 (3)
CASES = {
    "last-mse": (3, 5, 2, 2, 0.0, "last", "mse", 4, 11, False),
    "all-ce-ids-3layers-dropout": (7, 5, 7, 3, 0.3, "all", "softmax_ce", 4, 11, True),
    "all-mse-dropout": (3, 4, 2, 2, 0.5, "all", "mse", 3, 23, False),
    "last-ce-dropout": (2, 6, 3, 2, 0.3, "last", "softmax_ce", 5, 31, False),
    "last-mse-ids-dropout-4layers": (9, 5, 2, 4, 0.25, "last", "mse", 3, 26, True),
    "T2": (3, 4, 2, 2, 0.2, "all", "mse", 2, 2, False),
    "T3-ids": (600, 4, 5, 2, 0.0, "all", "softmax_ce", 2, 3, True),  # V > 512: the scatter-add branch of (E2)
}


def pair(case):
    D, H, O, L, dropout, head, loss, N, T, tokens = CASES[case]
    kw = dict(num_layers=L, dropout=dropout, head=head, loss=loss, seed=3)
    return (LSTMModel(D, H, O, pipeline=False, **kw), LSTMModel(D, H, O, pipeline=True, **kw),
            model_data(np.random.default_rng(len(case)), D, H, O, L, head, loss, N, T, tokens))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_pipelined_equals_plain(case):
    plain, piped, (x, y, state) = pair(case)
    N, T = x.shape[:2]
    assert piped._pipelined(T, N) and not plain._pipelined(T, N)
    masks = plain.make_masks(N, T)
    want = run_model(plain, x, y, state, masks)
    got = run_model(piped, x, y, state, masks)
    assert_same(got, want)
    assert_same(run_model(piped, x, y, state, masks), got, rtol=0.0)  # bit for bit from run to run
    assert piped.evaluate(x, y, state)[0] == pytest.approx(plain.evaluate(x, y, state)[0], rel=1e-13)
    # and the comparison fails on a wrong pipeline: one chunk's weight-gradient share dropped (the pass really
    # ran in chunks: one share per layer and chunk)
    real = fast.lstm_weight_grads_tm
    calls = []

    def drop_first(cache, dA, work=None):
        calls.append(1)
        out = real(cache, dA, work)
        return tuple(np.zeros_like(a) for a in out) if len(calls) == 1 else out
    pipeline.fast.lstm_weight_grads_tm = drop_first
    try:
        with pytest.raises(AssertionError):
            assert_same(run_model(piped, x, y, state, masks), want)
    finally:
        pipeline.fast.lstm_weight_grads_tm = real
    assert len(calls) == piped.num_layers * len(pipeline.chunk_bounds(T)) and len(pipeline.chunk_bounds(T)) >= 2


@pytest.mark.parametrize("case", ["last-mse", "all-ce-ids-3layers-dropout"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pipelined_equals_plain_without_masks_or_state(case, dtype):
    """No masks (train=False, or dropout 0 with masks drawn inside) and no initial state: the None paths."""
    D, H, O, L, dropout, head, loss, N, T, tokens = CASES[case]
    kw = dict(num_layers=L, dropout=dropout, head=head, loss=loss, seed=3, dtype=dtype)
    plain, piped = LSTMModel(D, H, O, pipeline=False, **kw), LSTMModel(D, H, O, pipeline=True, **kw)
    x, y, _ = model_data(np.random.default_rng(7), D, H, O, L, head, loss, N, T, tokens)
    if not tokens:
        x = x.astype(dtype)
    if loss == "mse":
        y = y.astype(dtype)
    rtol = 1e-13 if dtype == "float64" else 1e-5
    for train in (False, True):
        if train and dropout:
            continue  # fresh masks from each model's rng: test_pipelined_equals_plain fixes them instead
        a = plain.loss_and_grads(x, y, None, train=train, input_grads=True)
        b = piped.loss_and_grads(x, y, None, train=train, input_grads=True)
        assert b[0] == pytest.approx(a[0], rel=rtol)
        assert_same(b[1], a[1], rtol=rtol)
        assert_same({"final": b[2], "dstate": b[3]["state"]}, {"final": a[2], "dstate": a[3]["state"]}, rtol=rtol)


@pytest.mark.parametrize("head, loss", [("last", "mse"), ("all", "softmax_ce")])
def test_pipelined_model_passes_central_differences(head, loss):
    model = LSTMModel(3, 4, 5 if loss == "softmax_ce" else 2, num_layers=2, dropout=0.25, head=head, loss=loss,
                      seed=1, pipeline=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3))
    y = rng.integers(0, 5, (2, 5)) if loss == "softmax_ce" else rng.standard_normal((2, 2))
    rows = check_model(model, x, y, rng.standard_normal((2, 2, 2, 4)) * 0.5)
    assert rows and all(r.max_rel < MODEL_TOL for r in rows), [(r.name, r.max_rel) for r in rows]


def test_auto_uses_the_second_thread_only_where_it_pays(monkeypatch):
    sine = LSTMModel(1, 20, 1, num_layers=2)
    chars = LSTMModel(77, 192, 77, num_layers=2, head="all", loss="softmax_ce")
    monkeypatch.setattr(pipeline, "blas_threads", lambda: 2)
    monkeypatch.setattr(pipeline, "_cpus", lambda: {0, 1})
    assert not sine._pipelined(20, 64) and chars._pipelined(50, 32)
    assert not chars._pipelined(1, 32)  # one step: nothing to chunk
    assert not LSTMModel(77, 192, 77, num_layers=1)._pipelined(50, 32)  # one layer: nothing to hand over
    assert not LSTMModel(77, 192, 77, num_layers=2, impl="textbook")._pipelined(50, 32)
    assert not LSTMModel(77, 192, 77, num_layers=2, cell="rnn")._pipelined(50, 32)
    assert not LSTMModel(77, 192, 77, num_layers=2, pipeline=False)._pipelined(50, 32)
    monkeypatch.setattr(pipeline, "blas_threads", lambda: 1)  # BLAS told to use one thread: the budget is 1 core
    assert not chars._pipelined(50, 32)
    assert LSTMModel(1, 2, 1, num_layers=2, pipeline=True)._pipelined(2, 1)  # True: always (an LSTM stack)


def test_pipeline_argument_is_checked():
    for bad in ("yes", 0, 1, None, np.False_):
        with pytest.raises(ValueError, match="pipeline must be 'auto', True or False; got "):
            LSTMModel(1, 2, 1, pipeline=bad)


def test_an_error_on_the_second_thread_reaches_the_caller_and_the_next_pass_works(monkeypatch):
    plain, piped, (x, y, state) = pair("last-mse")
    real = fast.lstm_input_grad_tm

    def boom(*args, **kwargs):
        raise MemoryError("no room for dx")
    monkeypatch.setattr(fast, "lstm_input_grad_tm", boom)
    with pytest.raises(MemoryError, match="no room for dx"):
        piped.loss_and_grads(x, y, state)
    monkeypatch.setattr(fast, "lstm_input_grad_tm", real)
    want = plain.loss_and_grads(x, y, state)
    got = piped.loss_and_grads(x, y, state)
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    assert_same(got[1], want[1])


def test_settings_are_restored_after_a_pass_and_after_a_failed_one(monkeypatch):
    _, piped, (x, y, state) = pair("last-mse")
    interval = sys.getswitchinterval()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    threads = pipeline.blas_threads()
    piped.loss_and_grads(x, y, state)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(fast, "lstm_backward_tm", boom)
    with pytest.raises(KeyboardInterrupt):
        piped.loss_and_grads(x, y, state)
    assert sys.getswitchinterval() == interval
    assert pipeline.blas_threads() == threads
    if cpus is not None:
        assert os.sched_getaffinity(0) == cpus
    # and the pass released its lock: another thread can take it at once
    import threading
    got = []
    t = threading.Thread(target=lambda: got.append(pipeline._pass_lock.acquire(blocking=False)))
    t.start()
    t.join()
    assert got == [True]
    pipeline._pass_lock.release()


def test_a_failed_pass_cancels_its_queued_jobs(monkeypatch):
    """After a pass fails, no job of it may still run: it would write into chunk buffers the next pass uses."""
    import time
    _, piped, (x, y, state) = pair("last-mse-ids-dropout-4layers")
    jobs = piped.num_layers * len(pipeline.chunk_bounds(x.shape[1]))  # one factor job per layer and chunk
    ran, calls = [], []
    real_factors, real_forward = fast.lstm_backward_factors_tm, fast.lstm_forward_tm

    def slow_factors(cache, work=None):  # queued during the forward pass, one per layer and chunk
        time.sleep(0.03)
        ran.append(1)
        return real_factors(cache, work)

    def forward_failing_last(*args, **kwargs):  # the forward pass fails at its last chunk: factor jobs queued
        calls.append(1)
        if len(calls) == jobs:
            raise KeyboardInterrupt
        return real_forward(*args, **kwargs)
    monkeypatch.setattr(fast, "lstm_backward_factors_tm", slow_factors)
    monkeypatch.setattr(fast, "lstm_forward_tm", forward_failing_last)
    with pytest.raises(KeyboardInterrupt):
        piped.loss_and_grads(x, y, state)
    after = len(ran)
    time.sleep(0.03 * jobs)  # time enough for every queued factor job
    assert len(ran) == after < jobs - 1


def test_chunk_bounds_cover_the_steps_once():
    for T in (2, 3, 9, 10, 11, 20, 50, 100, 101):
        bounds = pipeline.chunk_bounds(T)
        assert bounds[0][0] == 0 and bounds[-1][1] == T and len(bounds) >= 2
        assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
    assert len(pipeline.chunk_bounds(50)) == 5 and len(pipeline.chunk_bounds(100)) == 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_second_thread():
    """A child process inherits the module's worker variable but not the thread: it must make its own (else
    its first pipelined pass would wait forever for a thread that does not exist)."""
    import time
    _, piped, (x, y, state) = pair("last-mse")
    want = piped.loss_and_grads(x, y, state)[0]  # the parent's second thread now exists
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os._exit(0 if piped.loss_and_grads(x, y, state)[0] == want else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's pipelined pass hung")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
