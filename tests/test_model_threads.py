"""One model called from several threads at once gives exactly the results of one call after another.

The fast engines reuse big buffers from call to call; LSTMModel gives each calling thread its own set
(``LSTMModel._scratch``, see the class docstring). Before that, 4 threads calling ``forward`` on one model got
hundreds of 400 outputs wrong (issue 23, item 2). The last test shows the check catches exactly that bug: with
one set of buffers shared by all threads, outputs come out wrong.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from numpylstm import LSTMModel, engines

THREADS, CALLS = 4, 100


def concurrently(fn, inputs, threads=THREADS):
    """fn(input) for every input, from ``threads`` threads at once (thread k takes inputs k, k + threads, ...)."""
    out = [None] * len(inputs)
    errors = []
    start = threading.Barrier(threads)

    def work(k):
        try:
            start.wait()
            for i in range(k, len(inputs), threads):
                out[i] = fn(inputs[i])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: interleave the calls as much as possible
    try:
        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    return out


def wrong(got, want):
    """How many results differ from the single-threaded ones (exactly: every array, bit for bit)."""
    def same(a, b):
        if isinstance(a, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (tuple, list)):
            return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b))
        return np.array_equal(a, b)
    return sum(not same(g, w) for g, w in zip(got, want))


def sine_inputs(n=THREADS * CALLS, N=8, T=12, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((N, T, 1)) for _ in range(n)]


def sine_model(**kw):
    return LSTMModel(1, 12, 1, num_layers=2, seed=0, **kw)


@pytest.mark.parametrize("engine, kw", [("FastLayers", dict(wavefront=False)), ("Wavefront", dict(wavefront=True))])
def test_forward_from_four_threads_is_exact(engine, kw):
    model = sine_model(**kw)
    xs = sine_inputs()
    assert type(model._engine(model._time_major_input(xs[0]), None)).__name__ == engine
    want = [model.forward(x) for x in xs]
    got = concurrently(model.forward, xs)
    assert wrong(got, want) == 0


@pytest.mark.parametrize("kw", [dict(wavefront=False), dict(wavefront=True)])
def test_loss_and_grads_from_four_threads_is_exact(kw):
    model = sine_model(**kw)
    xs = sine_inputs(THREADS * 25)
    y = np.ones((8, 1))

    def step(x):
        return model.loss_and_grads(x, y, input_grads=True)
    want = [step(x) for x in xs]
    got = concurrently(step, xs)
    assert wrong(got, want) == 0


def test_each_thread_has_its_own_buffers_and_copies_start_without_them():
    import copy
    import pickle

    model = sine_model()
    mine = model._scratch()
    theirs = concurrently(lambda _: model._scratch(), [0, 1])
    assert mine is model._scratch() and all(s is not mine for s in theirs)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin._scratch() is not mine and twin.cell_type.name == model.cell
        x = sine_inputs(1)[0]
        np.testing.assert_array_equal(twin.forward(x)[0], model.forward(x)[0])


def test_one_shared_set_of_buffers_is_caught(monkeypatch):
    """The bug the per-thread buffers fix: every thread writing into one set. The check must see it."""
    model = sine_model(wavefront=False)
    xs = sine_inputs()
    want = [model.forward(x) for x in xs]
    shared = engines.Scratch(model.num_layers)
    monkeypatch.setattr(LSTMModel, "_scratch", lambda self: shared)
    got = concurrently(model.forward, xs)
    assert wrong(got, want) > 0
