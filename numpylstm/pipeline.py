"""A second core for one stacked LSTM: the big matrix products run beside the time loops.

Read ``textbook.py``, then ``fast.py``, first. This file changes no arithmetic: every number still comes from
``fast.py``'s functions. It cuts the T steps into a few chunks and hands the products that are not part of
any time loop to a second thread, which runs them while this thread goes on with the loops:

- forward, the input part of (F1) for layer l+1, ``lstm_input_tm`` = (x_t Wx + b) s over a chunk's steps,
  as soon as layer l has finished that chunk (the loop of layer l+1 then starts on a ready array);
- also during the forward pass, each chunk's backward factors (``fast.lstm_backward_factors_tm``, step 5 of
  chapter 10: they need only the forward pass), each layer's contiguous Wh^T, and (head "all") the head and
  the loss of each finished chunk of the top layer;
- backward, (B11) dx = da Wx^T of each chunk, which the layer below needs next, and the chunk's share of the
  weight gradients (B12)-(B14); the weight gradients are sums over the steps, so the shares of the chunks
  add up to the one-GEMM result, and they are added in a fixed order (k = 0, 1, ...): the same numbers on
  every run, equal to the unchunked result up to rounding;
- a layer's loop over T steps equals its loop over the first chunk, then over the next chunk from the
  (h, c) the first one ended in: the same recurrence run in pieces (how stateful training continues a
  sequence from batch to batch), and backward the same from the (dh, dc) the later chunk handed back.

Why not one thread per layer, a wavefront through the (layer x time) grid? Python's GIL: two threads that
both run time loops of small NumPy calls (a few microseconds each) spend their time waiting for each other;
measured at the char-RNN's size it was 30% *slower* than one thread. A thread running one big product holds
the GIL only to start and finish it (NumPy releases the GIL inside BLAS), so loops here and products there
do overlap. While a pass runs, BLAS is held to one thread per call (two threads, two cores), and Python's
thread switch interval is shortened, so the second thread gets the GIL back quickly after each product.

``LSTMModel`` uses this when NumPy's BLAS may use at least two threads and the layers are big enough
(``worth_it``); derivations/10_making_it_fast.md, section 10.13, explains and measures it. One pipelined pass
runs at a time in a process; the "auto" decision reads the BLAS thread count, which a pass running on another
thread of the same process holds at 1 (such a caller then runs the plain pass: same numbers up to rounding).
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
from contextlib import ExitStack, contextmanager
from functools import reduce

import numpy as np

from . import fast

CHUNK_STEPS = 10  # timesteps per chunk (about): shorter chunks start the second thread sooner, longer ones keep
#                  its products big and the per-call overheads few (section 10.13 measures 3 to 20)
MIN_STEP_MACS = 1 << 20  # multiply-adds of one recurrent product N x H x 4H below which a second core doesn't pay
SWITCH_INTERVAL = 2e-4  # seconds: Python's thread switch interval during a pass (its default is 5e-3)


def chunk_bounds(T, steps=None):
    """[(start, stop), ...]: T timesteps cut into K = max(2, round(T / steps)) (at most T) consecutive chunks of
    nearly equal length; steps defaults to CHUNK_STEPS."""
    K = min(T, max(2, round(T / (steps or CHUNK_STEPS))))
    return [(T * k // K, T * (k + 1) // K) for k in range(K)]


def blas_threads():
    """How many threads NumPy's BLAS may use now (1 when threadpoolctl is not installed: it cannot be told)."""
    blas = fast.blas_controller()
    return max((lib.num_threads for lib in blas.lib_controllers), default=1) if blas else 1


def worth_it(num_layers, T, N, H):
    """True when a pipelined pass should beat the plain one on this machine, as it is set now: two or more
    layers and steps, BLAS allowed two or more threads (the budget this uses: this thread and one more), this
    process not held to a single CPU, and a recurrent product big enough (N H 4H >= MIN_STEP_MACS) that the
    products handed over outweigh the cost of handing them over. The sine model (N 64, H 20) is far below;
    the char-RNN (32, 192) above."""
    return (num_layers >= 2 and T >= 2 and N * H * 4 * H >= MIN_STEP_MACS and blas_threads() >= 2
            and len(_cpus()) != 1)


# ------------------------------------------------------------------------------------------ threads
class _Worker:
    """A daemon thread that runs queued jobs, most urgent first, for the life of the process.

    Jobs wait in a priority queue: 0 for a product a loop will need as soon as it gets there (an input part, a
    dx, a chunk's head), 1 for one needed later (the backward factors and Wh^T, made during the forward pass
    for the backward pass; the weight-gradient shares, needed only at the end); -1 for ``cancel``'s marker.
    ``help()`` lets the caller take queued jobs itself once its own loops are done. On Linux the thread keeps to the last CPU it may use: left free to move, the
    scheduler tends to wake it on the CPU of the thread that woke it, and the two then share one core for
    milliseconds (measured: the passes came out no faster than one thread).
    """

    def __init__(self):
        self.jobs = queue.PriorityQueue()
        self.order = itertools.count()  # ties within a priority: first queued, first run
        self.cpu = None
        threading.Thread(target=self._serve, name="numpylstm-pipeline", daemon=True).start()

    def _serve(self):
        while True:
            self._run(self.jobs.get())

    @staticmethod
    def _run(item, here=False):
        """Run one job and put (ok, result or exception) into its ticket. here: on the caller's own thread
        (``help``), where a KeyboardInterrupt or SystemExit must go on up, not into the ticket."""
        _, _, fn, done = item
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            done.put((False, exc))
            return
        except BaseException as exc:
            done.put((False, exc))
            if here:
                raise
            return
        done.put((True, value))

    def pin(self, cpu):
        """Keep the thread to this CPU from now on (Linux; the thread pins itself). False if that failed."""
        if self.cpu != cpu:
            ok, _ = self.submit(lambda: os.sched_setaffinity(0, {cpu})).get()
            if not ok:
                return False
            self.cpu = cpu
        return True

    def submit(self, fn, priority=0):
        done = queue.SimpleQueue()
        self.jobs.put((priority, next(self.order), fn, done))
        return done

    def help(self):
        """Run queued jobs on the calling thread until none is left."""
        while True:
            try:
                item = self.jobs.get_nowait()
            except queue.Empty:
                return
            self._run(item, here=True)

    def cancel(self):
        """Drop the queued jobs and wait for the one running to end (after a pass that failed or was
        interrupted: its leftover jobs must not write into buffers the next pass uses)."""
        while True:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        self.submit(lambda: None, priority=-1).get()


_worker = None
_worker_lock = threading.Lock()


def _after_fork_in_child():
    """A child process has none of the parent's threads: forget the second thread and unlock what a parent's
    thread may have held at the fork (the child makes its own on first use)."""
    global _worker, _worker_lock, _pass_lock, _inside
    _worker, _worker_lock, _pass_lock, _inside = None, threading.Lock(), threading.Lock(), threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _second_thread():
    """The process's second thread, made on first use (in a forked child too: ``_after_fork_in_child``)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
    return _worker


class _Jobs:
    """Products handed to the second thread: ``put(fn)`` queues one, ``get(ticket)`` waits for its result.

    Every job is a function of arrays that are ready when it is queued, so the second thread never waits for
    this one (a failed or interrupted pass cannot leave it blocked). The caller's NumPy error settings
    (np.errstate, which is per thread) apply to the jobs too.
    """

    def __init__(self):
        self.worker = _second_thread()
        self.settings = np.geterr()

    def put(self, fn, priority=0):
        settings = self.settings

        def job():
            with np.errstate(**settings):
                return fn()
        return self.worker.submit(job, priority)

    def help(self):
        self.worker.help()

    @staticmethod
    def get(ticket):
        ok, value = ticket.get()
        if not ok:
            raise value
        return value


@contextmanager
def two_threads():
    """The settings of a pipelined step, for all of it (head included): BLAS on one thread per call, this thread
    pinned to the first CPU and the second thread to the last, a short thread switch interval.

    Why the whole step: OpenBLAS's own threads keep spinning for a while after a multi-threaded product, so
    one 2-thread product between the passes (say the head's) leaves a spinning thread that takes a core from
    the two threads here; measured, that undid the whole gain.
    """
    if getattr(_inside, "pass_", False):  # already inside a pass on this thread: its settings hold
        yield
        return
    with _pass_lock:  # one pipelined pass at a time in a process (two would share the second thread and a core)
        _inside.pass_ = True
        try:
            with _two_threads():
                yield
        finally:
            _inside.pass_ = False


_pass_lock = threading.Lock()
_inside = threading.local()


@contextmanager
def _two_threads():
    blas = fast.blas_controller()
    with ExitStack() as undo:  # every setting is put back, in reverse order, however the pass ends
        old = sys.getswitchinterval()
        undo.callback(sys.setswitchinterval, old)
        sys.setswitchinterval(SWITCH_INTERVAL)
        cpus = _cpus()
        if len(cpus) > 1:  # this thread on the first CPU, the second thread on the last (see _Worker)
            undo.callback(os.sched_setaffinity, 0, cpus)
            if _second_thread().pin(max(cpus)):
                os.sched_setaffinity(0, {min(cpus)})
        if blas:
            undo.enter_context(blas.limit(limits=1))
        try:
            yield
        except BaseException:
            _second_thread().cancel()  # before BLAS gets its threads back: the job running may be a product
            raise


def _cpus():
    """The CPUs this thread may run on (an empty set where the OS cannot tell or pin: no pinning then)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return set()


# ------------------------------------------------------------------------------------------ the passes
def stack_forward(params, xt, state, masks, works, backward=False, top_job=None):
    """Forward through the whole stack, layer after layer, each chunk by chunk; the input part of (F1) for the
    layer above runs on the second thread as soon as a chunk is done.

    params: [(Wx, Wh, b)] per layer; xt (T, N, D) floats or (T, N) token ids, time-major; state (L, 2, N, H) or
    None for zeros; masks: None or one (T, N, H) dropout mask per layer (time-major), (D1); works[l][k]: the
    ``fast.Workspace`` of layer l's chunk k (each chunk keeps its own buffers until the backward pass).
    backward: a backward pass follows; the second thread then also computes each chunk's
    ``fast.lstm_backward_factors_tm`` (which needs only the forward pass) as soon as the chunk is done.
    top_job: None, or a function (start, stop, out) run on the second thread on each chunk of the top layer's
    output as soon as it is done (``LSTMModel`` passes its head and loss); then the list of its results, chunk
    by chunk, is returned in place of the outputs.
    Returns outs, the top layer's output after its dropout as a list of (steps in chunk, N, H) arrays, chunk
    by chunk (``np.concatenate(outs)`` is the (T, N, H) whole), finals [(hT, cT)] per layer, and
    caches[l][k], a triple: the ``fast.LSTMCache`` of layer l's chunk k, the ticket of its backward factors
    and, for k = 0, of the layer's contiguous Wh^T (both None without backward). Call it inside ``two_threads()``.
    """
    T, L = xt.shape[0], len(params)
    bounds = chunk_bounds(T)
    K = len(bounds)
    caches = [[None] * K for _ in range(L)]
    finals, outs = [], [xt[start:stop] for start, stop in bounds]
    jobs = _Jobs()
    Wx0, _, b0 = params[0]  # layer 0's (F1) input part too (a row gather, or D = 1: cheap), ahead of its loop
    pre = [jobs.put(lambda x=outs[k], w=works[0][k]: fast.lstm_input_tm(x, Wx0, b0, w)) for k in range(K)]
    tops = []
    for l in range(L):
        Wx, Wh, b = params[l]
        blocks = fast.recurrent_blocks(Wh)  # once for all chunks
        WhT = jobs.put(lambda W=Wh: np.ascontiguousarray(W.T), 1) if backward else None  # for (B10), all chunks
        h, c = (None, None) if state is None else (state[l, 1], state[l, 0])
        next_pre = [None] * K
        for k, (start, stop) in enumerate(bounds):
            inp = outs[k]
            p = None if pre[k] is None else jobs.get(pre[k])  # (F1) input part, from the second thread
            # (F1)-(F5) over this chunk's steps, from the state the previous chunk ended in
            hs, (h, c), cache = fast.lstm_forward_tm(inp, h, c, Wx, Wh, b, work=works[l][k], pre=p, blocks=blocks)
            factors = (jobs.put(lambda c=cache, w=works[l][k]: fast.lstm_backward_factors_tm(c, w), 1)
                       if backward else None)  # needed only by the backward pass: priority 1
            caches[l][k] = (cache, factors, WhT if k == 0 else None)
            outs[k] = hs if masks is None else hs * masks[l][start:stop]  # (D1) dropout on the output
            if l < L - 1:  # (S1) the layer above reads it: its (F1) input part, on the second thread
                Wx1, _, b1 = params[l + 1]
                next_pre[k] = jobs.put(lambda x=outs[k], W=Wx1, b=b1, w=works[l + 1][k]: fast.lstm_input_tm(x, W, b, w))
            elif top_job is not None:  # the top layer's chunk: the head on the second thread
                tops.append(jobs.put(lambda a=start, z=stop, o=outs[k]: top_job(a, z, o)))
        finals.append((h, c))
        pre = next_pre
    if top_job is not None:
        return [jobs.get(t) for t in tops], finals, caches
    return outs, finals, caches


def stack_backward(caches, dtop, dlast, masks, input_grads, works):
    """BPTT through the whole stack, layer after layer from the top, each chunk by chunk from the last; (B11) dx
    and the weight-gradient shares (B12)-(B14) of every chunk run on the second thread. The partner of
    ``stack_forward`` (same caches, masks and works).

    dtop: (T, N, H) gradient into the top layer's outputs after dropout (or a list of its chunks), or None (a
    head that reads only h_T);
    dlast: (N, H) gradient into the top layer's h_T (already through its dropout mask), or None.
    input_grads: also return the gradient of the bottom layer's input.
    Returns dx (T, N, D) or None, dstate [(dc0, dh0)] per layer, grads [(dWx, dWh, db)] per layer. Call it
    inside ``two_threads()``.
    """
    L, K = len(caches), len(caches[0])
    bounds, start = [], 0
    for cache, _, _ in caches[0]:
        bounds.append((start, start + cache.gates.shape[0]))
        start = bounds[-1][1]
    shares = [[None] * K for _ in range(L)]  # tickets, then (dWx, dWh, db) of layer l's chunk k
    dstate = [None] * L
    jobs = _Jobs()
    dxs = list(dtop) if isinstance(dtop, list) else [None if dtop is None else dtop[a:z] for a, z in bounds]
    for l in range(L - 1, -1, -1):
        dh, dc = (dlast if l == L - 1 else None), None
        WhT = caches[l][0][2]
        WhT = None if WhT is None else jobs.get(WhT)
        for k in range(K - 1, -1, -1):
            start, stop = bounds[k]
            g = dxs[k] if l == L - 1 or dxs[k] is None else jobs.get(dxs[k])  # (S2) the layer above's dx
            if masks is not None and g is not None:
                g = g * masks[l][start:stop]  # (D2) dh = dy * m
            # (B1)-(B10) over this chunk's steps, from the (dh, dc) the chunk after it handed back
            (cache, factors, _), work = caches[l][k], works[l][k]
            factors = None if factors is None else jobs.get(factors)  # computed during the forward pass
            _, dh, dc, dA = fast.lstm_backward_tm(g, cache, dhT=dh, dcT=dc, need_dx=False, work=work,
                                                  weight_grads=False, factors=factors, WhT=WhT)
            has_dx = cache.x.ndim == 3 and (l > 0 or input_grads)
            dxs[k] = jobs.put(lambda c=cache, d=dA, w=work: fast.lstm_input_grad_tm(c, d, w)) if has_dx else None
            shares[l][k] = jobs.put(lambda c=cache, d=dA, w=work: fast.lstm_weight_grads_tm(c, d, w), 1)
        dstate[l] = (dc, dh)
    jobs.help()  # the loops are done: take a share of the queued products here too
    dx = np.concatenate([jobs.get(t) for t in dxs]) if dxs[0] is not None else None
    shares = [[jobs.get(t) for t in layer] for layer in shares]
    grads = [tuple(reduce(np.add, [shares[l][k][i] for k in range(K)]) for i in range(3)) for l in range(L)]
    return dx, dstate, grads
