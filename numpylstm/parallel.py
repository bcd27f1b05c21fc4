"""Data parallel: K worker processes each run ``LSTMModel.loss_and_grads`` on a block of the batch's rows.

Derivation: derivations/10_making_it_fast.md, section 10.15 (Q1)-(Q3). The loss of a mini-batch is a mean
over its N examples, so it is a weighted sum of the means over K blocks of rows, N_k rows each, with the
weights N_k / N (Q1); so is its gradient with respect to every weight (Q2); the gradient with respect to an
input row or an initial state row is the one of its own block, times the same weight (Q3). No equation of the
model changes: each worker runs the model's own forward and backward pass on its rows.

What is shared and what is sent (one step):

- one shared-memory block ("fixed") holds a copy of every weight, and one gradient slot per worker. The parent
  copies ``model.params`` into it before each step (one memcpy of the weights: the optimizer keeps updating the
  model's own arrays, nothing aliases them); the workers' models read the weights there, read-only.
- a second block ("io") holds the step's inputs (x, y, state, dropout masks) and outputs (final state, input
  gradients), whole-batch arrays; worker k reads and writes only its rows. It grows when a bigger batch comes.
- a pipe to each worker carries a few hundred bytes per step: the rows, the layout of "io", and back the loss.
- each worker writes (N_k / N) times its gradients into its slot; the parent adds the K slots (Q2).

Dropout masks are drawn in the parent from ``model.rng`` exactly as ``loss_and_grads`` would draw them, so a run
with the engine consumes the same random numbers and gives the same numbers as one without (up to rounding).

Each worker runs with one BLAS thread (threadpoolctl) and the model's own passes (the wavefront as the model
decides): the K processes are the parallelism.

When it pays: ``auto_workers`` (what the demos' ``--workers auto``, their default, uses) picks K = the usable
cores when a step is big enough that the engine's fixed cost (copying the weights, messages, adding the
gradient slots: half a millisecond for the sine model, 1-4 ms for the char-RNN) is small beside it, and one
process otherwise (the sine model).

Workers are started with the 'fork' method on Linux (a copy of the parent: no second import of NumPy and no
re-run of the user's script, which 'spawn' needs and which fails in a script without an
``if __name__ == "__main__":`` guard); elsewhere with 'spawn'. Forking a parent that runs threads is safe here:
OpenBLAS stops its threads around a fork (pthread_atfork), and the worker sets its BLAS threads with
threadpoolctl after the fork. Workers ignore SIGINT, SIGTERM and
SIGHUP (Ctrl-C, a closed terminal: the parent decides, finishes its step, saves, and closes the engine), and
exit when the parent closes the engine, when their pipe closes, or when the parent process is gone. The parent
ends a worker that must stop at once with SIGKILL. Shared-memory segments are unlinked from /dev/shm as soon
as every worker has attached to them, so even a killed parent leaves none behind.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from . import _checks as chk

_ALIGN = 64  # bytes; every array in a shared block starts on a cache line
_START_TIMEOUT = 120.0  # seconds for a worker to start (a fresh interpreter importing NumPy on a busy machine)
_PARENT_CHECK = 0.5  # seconds between a waiting worker's checks that its parent is alive


def split_rows(N, K):
    """Row bounds of K blocks of N rows, as even as can be: [(start, stop)] with sizes differing by at most 1.

    >>> split_rows(5, 2)
    [(0, 3), (3, 5)]
    """
    base, extra = divmod(N, K)
    bounds, start = [], 0
    for k in range(K):
        stop = start + base + (k < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def usable_cores():
    """The CPU cores this process may run on: its affinity mask where the system has one (Linux: a container or
    ``taskset`` may allow fewer than the machine has), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


AUTO_MIN_MACS = 1e8  # multiply-adds of a training step from which data parallel pays (section 10.15)


def step_macs(model, N, T):
    """About how many multiply-adds one training step of ``model`` on N sequences of T steps costs: each layer
    weight is used once per row and step in the forward pass and twice in the backward pass (the head's few
    weights left out)."""
    layer_params = sum(p.size for name, p in model.params.items() if not name.startswith("head."))
    return 3 * N * T * layer_params


def auto_workers(model, batch_size, timesteps, cores=None):
    """How many processes ``--workers auto`` trains on: K = min(cores, batch_size) when there are two or more
    cores and a step has at least AUTO_MIN_MACS multiply-adds (``step_macs``); None (one process, no engine)
    otherwise. cores: default ``usable_cores()``.

    The sine model (N 64, T 20, H 20, 2 layers: 1.9e7) stays in one process, the char-RNN (N 32, T 50, H 192:
    2.4e9) gets every core; section 10.15 gives the measurements the threshold comes from.
    """
    cores = usable_cores() if cores is None else cores
    K = min(cores, batch_size)
    if K < 2 or step_macs(model, batch_size, timesteps) < AUTO_MIN_MACS:
        return None
    return K


def _layout(items):
    """[(key, shape, dtype)] -> ({key: (offset, shape, dtype string)}, total bytes), offsets aligned."""
    out, offset = {}, 0
    for key, shape, dtype in items:
        dtype = np.dtype(dtype)
        out[key] = (offset, tuple(int(s) for s in shape), dtype.str)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset += -(-max(nbytes, 1) // _ALIGN) * _ALIGN
    return out, offset


def segment_prefix(pid=None):
    """The start of the /dev/shm names of the segments process ``pid`` (default: this one) makes."""
    return f"nplstm{os.getpid() if pid is None else pid}_"


def _new_segment(nbytes):
    """A new shared-memory segment named ``segment_prefix() + 8 random hex digits`` (short: macOS allows 31)."""
    while True:
        try:
            return SharedMemory(name=segment_prefix() + secrets.token_hex(4), create=True, size=nbytes)
        except FileExistsError:  # pragma: no cover - 2^-32
            continue


def _view(shm, entry):
    offset, shape, dtype = entry
    return np.ndarray(shape, np.dtype(dtype), buffer=shm.buf, offset=offset)


def _close_quietly(shm, unlink=False):
    if shm is None:
        return
    try:
        shm.close()
    except (BufferError, OSError):  # a view still alive: the mapping goes when it does
        pass
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------- the worker
def _worker_main(conn, k, settings, fixed_name, fixed_layout, parent_pid):
    """One worker process: build the model, attach to the shared weights, then serve steps until told to stop.

    Everything it sends back goes through ``conn``.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the parent's to handle (module docstring)
        signal.signal(sig, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    from .model import LSTMModel

    threadpool_limits(1)  # this process is one of K: one BLAS thread each
    fixed = io = None
    model = grads = None
    try:
        fixed = SharedMemory(name=fixed_name)
        model = LSTMModel(**settings)
        for name in model.params:  # the model reads its weights from the shared block (written by the parent)
            w = _view(fixed, fixed_layout[f"w/{name}"])
            w.flags.writeable = False
            model.params[name] = w
        grads = {name: _view(fixed, fixed_layout[f"g{k}/{name}"]) for name in model.params}
        conn.send(("ready", os.getpid()))
        while True:
            while not conn.poll(_PARENT_CHECK):
                if os.getppid() != parent_pid:  # the parent is gone (killed): nobody will read our results
                    return
            msg = conn.recv()
            if msg[0] == "close":
                return
            io_name, io_layout, start, stop, weight = msg[1:6]
            if io is None or io.name != io_name:  # a new io block (a bigger batch): attach to it
                _close_quietly(io)
                io = SharedMemory(name=io_name)
            try:
                if msg[0] == "walk":
                    reply = _worker_walk(model, io, io_layout, start, stop)
                else:
                    reply = _worker_step(model, grads, io, io_layout, start, stop, weight, *msg[6:])
            except Exception as e:  # bad input: report it, stay alive for the next step
                reply = ("error", type(e).__name__, str(e), traceback.format_exc())
            conn.send(reply)
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the parent closed its end: stop
        return
    finally:
        model = grads = None
        _close_quietly(io)
        _close_quietly(fixed)


def _worker_step(model, grads, io, layout, start, stop, weight, train, input_grads):
    """Rows start:stop of the batch in ``io``: loss_and_grads on them, weight * gradients into our slot (Q2)."""
    if stop == start:  # more workers than rows this step: nothing to do
        return ("done", 0.0, 0.0, 0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = slice(start, stop)
    x = np.array(_view(io, layout["x"])[rows])  # private copies: the model keeps no view of the shared block
    y = np.array(_view(io, layout["y"])[rows])
    state = np.array(_view(io, layout["state"])[:, :, rows]) if "state" in layout else None
    masks = ([np.array(_view(io, layout[f"mask{l}"])[rows]) for l in range(model.num_layers)]
             if "mask0" in layout else None)
    out = model.loss_and_grads(x, y, state=state, train=train, masks=masks, input_grads=input_grads)
    loss, g, final = out[:3]
    for name, slot in grads.items():
        np.multiply(g[name], weight, out=slot)  # (Q2) this block's term: (N_k / N) dL_k/dtheta
    _view(io, layout["final"])[:, :, rows] = final
    if input_grads:
        ig = out[3]
        if ig["x"] is not None:
            np.multiply(ig["x"], weight, out=_view(io, layout["dx"])[rows])  # (Q3) dL/dx_n = (N_k / N) dL_k/dx_n
        np.multiply(ig["state"], weight, out=_view(io, layout["dstate"])[:, :, rows])  # (Q3) for the state rows
    return ("done", loss, time.perf_counter() - t0, time.process_time() - c0)


def _worker_walk(model, io, layout, start, stop):
    """Rows start:stop of every batch in ``io``: ``model.evaluate`` batch after batch, the state carried from one
    to the next (zeros at the start), as ``numpylstm.demos.text.evaluate`` walks them; returns the mean of the
    batches' losses over these rows."""
    if stop == start:
        return ("done", 0.0, 0.0, 0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    xs, ys = _view(io, layout["xs"]), _view(io, layout["ys"])
    state, total = None, 0.0
    for b in range(len(xs)):
        loss, state = model.evaluate(np.array(xs[b, start:stop]), np.array(ys[b, start:stop]), state)
        total += loss
    return ("done", total / len(xs), time.perf_counter() - t0, time.process_time() - c0)


# ---------------------------------------------------------------------------------------------- the parent
# Every open engine, held until closed: an engine dropped without close() still has workers, which ignore the
# SIGTERM multiprocessing sends its children at exit (and it would then wait for them forever); _close_all ends them.
_ENGINES = set()


@atexit.register
def _close_all():
    for engine in list(_ENGINES):
        engine.close()


class DataParallel:
    """``loss_and_grads`` of ``model`` computed by K worker processes, each on a block of the batch's rows.

    Same arguments and results as ``LSTMModel.loss_and_grads`` (loss, grads, final state, input gradients),
    equal to one process up to rounding; dropout masks are drawn from ``model.rng`` as the model draws them.
    The weights are read from ``model.params`` at every call, so an optimizer updating them works unchanged.

    Args:
        model: an ``LSTMModel`` (its constructor settings, ``impl`` and ``wavefront`` are copied into each
            worker; each worker runs with one BLAS thread).
        workers: K, the number of processes (default ``usable_cores()``), at most ``batch_size`` when given.
            A step with N < K rows uses N of them.
        start_method: "fork" (default on Linux), "spawn" (default elsewhere) or "forkserver": how the
            workers start (module docstring). With "spawn" and "forkserver", a script that makes the engine
            needs the ``if __name__ == "__main__":`` guard.

    Use as a context manager, or call ``close()`` (also run at exit). Not picklable; one call at a time
    (a lock); only the process that made it can use it.

        with DataParallel(model, workers=2) as engine:
            loss, grads, state = engine.loss_and_grads(x, y)

    ``timings`` accumulates the seconds the parent spent per part of a step (see ``reset_timings``):
    "weights" (copying params into shared memory), "inputs" (x, y, state, masks into shared memory),
    "compute" (the slowest worker's loss_and_grads, as the worker measured it), "compute_cpu" (the largest
    CPU time a worker spent on it: what "compute" would be on an idle machine), "wait" (from sending the
    step to the last reply: compute plus messaging), "reduce" (adding the K gradient slots, reading outputs),
    and "steps".
    """

    def __init__(self, model, workers=None, start_method=None, batch_size=None):
        self.workers = usable_cores() if workers is None else chk.positive_int("workers", workers)
        if batch_size is not None:
            self.workers = min(self.workers, chk.positive_int("batch_size", batch_size))
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        self.start_method = chk.choice("start_method", start_method, ("fork", "spawn", "forkserver"))
        self.model = model
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._procs, self._conns = [], []
        self._fixed = self._io = None
        self._closed = False
        self.reset_timings()
        self.dtype = model.dtype
        self._names = list(model.params)
        shapes = {name: tuple(p.shape) for name, p in model.params.items()}
        items = [(f"w/{n}", s, self.dtype) for n, s in shapes.items()]
        for k in range(self.workers):
            items += [(f"g{k}/{n}", s, self.dtype) for n, s in shapes.items()]
        self._fixed_layout, nbytes = _layout(items)
        settings = dict(model.config, impl=model.impl, wavefront=model.wavefront)
        _ENGINES.add(self)
        try:
            self._fixed = _new_segment(nbytes)
            self._w = {n: _view(self._fixed, self._fixed_layout[f"w/{n}"]) for n in self._names}
            self._g = [[_view(self._fixed, self._fixed_layout[f"g{k}/{n}"]).reshape(-1) for n in self._names]
                       for k in range(self.workers)]
            self._start(settings)
            self._fixed.unlink()  # every worker has it mapped: the name is no longer needed
        except BaseException:
            self._abort()
            raise

    def _start(self, settings):
        ctx = get_context(self.start_method)
        for k in range(self.workers):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_worker_main, name=f"numpylstm-dp-{k}", daemon=True,
                            args=(child_end, k, settings, self._fixed.name, self._fixed_layout, self._pid))
            with warnings.catch_warnings():  # Python 3.12+ warns at every fork of a process with threads; the
                # threads here are OpenBLAS's, made safe across a fork (module docstring)
                warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
                p.start()
            child_end.close()
            self._procs.append(p)
            self._conns.append(parent_end)
        deadline = time.monotonic() + _START_TIMEOUT
        for k in range(self.workers):
            self._receive(k, deadline, "start")

    def _receive(self, k, deadline, what):
        """The next message from worker k; RuntimeError if it dies or is silent until ``deadline``."""
        conn, proc = self._conns[k], self._procs[k]
        while True:
            ready = wait([conn, proc.sentinel], timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            if conn in ready:
                try:
                    return conn.recv()
                except (EOFError, OSError):  # closed or reset: it died
                    pass
            if ready or (deadline is not None and time.monotonic() >= deadline):
                proc.join(0.1)
                raise RuntimeError(f"data-parallel worker {k} {'died' if not proc.is_alive() else 'did not answer'} "
                                   f"during {what} (exit code {proc.exitcode})")

    # ------------------------------------------------------------------------------------------ a step
    def loss_and_grads(self, x, y, state=None, train=True, masks=None, input_grads=False):
        """``model.loss_and_grads`` on K processes (see ``LSTMModel.loss_and_grads`` for the arguments)."""
        self._check_usable()
        train, input_grads = chk.flag("train", train), chk.flag("input_grads", input_grads)
        return self._locked(self._step, x, y, state, train, masks, input_grads)

    def _check_usable(self):
        if self._closed:
            raise RuntimeError("this DataParallel engine is closed")
        if os.getpid() != self._pid:
            raise RuntimeError("a DataParallel engine can only be used by the process that made it")

    def _locked(self, run, *args):
        """run(*args), one call at a time. Bad input (ValueError, TypeError) leaves the workers as they are; any
        other ending (Ctrl-C, a dead worker, ...) stops them and frees the shared memory."""
        with self._lock:
            try:
                return run(*args)
            except (ValueError, TypeError):  # bad input: the workers are fine
                raise
            except BaseException:  # Ctrl-C, a dead worker, ...: stop the workers, free the memory
                self._abort()
                raise

    def _inputs(self, x, y, state, train, masks):
        """Checks what splitting by rows needs (the workers' models check the rest); the arrays to share."""
        model = self.model
        x = np.asarray(x)
        if x.ndim not in (2, 3) or x.shape[0] == 0 or x.shape[1] == 0 or x.dtype.kind not in "iuf":
            raise ValueError(f"x must be an (N, T, D) float array or (N, T) integer token ids, N, T >= 1; got "
                             f"{chk.describe(x)}")
        N, T = x.shape[:2]
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != N or y.dtype.kind not in "iuf":
            raise ValueError(f"y must be a numeric array with N = {N} rows (one per row of x); got {chk.describe(y)}")
        arrays = {"x": x, "y": y}
        if state is not None:
            state = np.asarray(state)
            want = (model.num_layers, 2, N, model.hidden_size)
            if state.shape != want or state.dtype.kind != "f":
                raise ValueError(f"state must be a float array of shape (L, 2, N, H) = {want}; got "
                                 f"{chk.describe(state)}")
            arrays["state"] = state
        if masks is not None:
            want = (N, T, model.hidden_size)
            if (not isinstance(masks, (list, tuple)) or len(masks) != model.num_layers
                    or any(np.shape(m) != want or np.asarray(m).dtype.kind not in "biuf" for m in masks)):
                raise ValueError(f"masks must be a list of num_layers = {model.num_layers} numeric arrays (N, T, H) "
                                 f"= {want} (see make_masks); got {chk.describe(masks)}")
        if not train:
            masks = None
        elif masks is None and model.dropout > 0:
            masks = model.make_masks(N, T)  # the draws loss_and_grads would make (model.rng), batch-first
        for l, m in enumerate(masks or ()):
            arrays[f"mask{l}"] = np.asarray(m)
        return N, T, arrays

    def _copy_weights(self):
        """The weights the workers read: a copy of the model's current ones into shared memory."""
        for name in self._names:
            p = self.model.params.get(name)
            w = self._w[name]
            if not isinstance(p, np.ndarray) or p.shape != w.shape or p.dtype != w.dtype:
                raise ValueError(f"model.params[{name!r}] must be a {w.dtype} array of shape {w.shape}; got "
                                 f"{chk.describe(p)}")
            np.copyto(w, p)

    def _share(self, arrays, outputs):
        """arrays {key: array} copied into the io block, outputs [(key, shape, dtype)] made room for there.
        Returns (io, layout, fresh): fresh when the block is new (bigger) and must be unlinked after the run."""
        items = [(key, a.shape, a.dtype) for key, a in arrays.items()] + list(outputs)
        layout, nbytes = _layout(items)
        fresh = self._io is None or self._io.size < nbytes
        if fresh:  # a bigger block; the old one was unlinked when the workers attached to it
            _close_quietly(self._io)
            self._io = None
            self._io = _new_segment(nbytes)
        try:
            for key, a in arrays.items():
                _view(self._io, layout[key])[...] = a
        except BaseException:  # e.g. an array NumPy cannot cast: no worker has this block yet, so drop it
            if fresh:
                _close_quietly(self._io, unlink=True)
                self._io = None
            raise
        return self._io, layout, fresh

    def _run(self, kind, io, layout, fresh, N, *args):
        """Send every worker its rows of the N in ``io`` and their weight N_k / N (message ``kind`` plus args),
        wait for all replies.
        Returns (replies, row bounds); raises the first worker's error."""
        what = "a step" if kind == "step" else "an evaluation walk"
        bounds = split_rows(N, self.workers)
        for k, (start, stop) in enumerate(bounds):
            try:
                self._conns[k].send((kind, io.name, layout, start, stop, (stop - start) / N) + args)
            except OSError:  # its end of the pipe is closed: it died
                self._receive(k, time.monotonic(), what)  # raises, naming it
                raise
        replies = [self._receive(k, None, what) for k in range(self.workers)]
        if fresh:
            io.unlink()  # every worker has attached to it
        errors = [r for r in replies if r[0] == "error"]
        if errors:
            kind, message, tb = errors[0][1:]
            if kind in ("ValueError", "TypeError"):
                raise {"ValueError": ValueError, "TypeError": TypeError}[kind](message)
            raise RuntimeError(f"a data-parallel worker failed:\n{tb}")
        return replies, bounds

    def _step(self, x, y, state, train, masks, input_grads):
        model, timings = self.model, self.timings
        t0 = time.perf_counter()
        self._copy_weights()
        t1 = time.perf_counter()
        N, T, arrays = self._inputs(x, y, state, train, masks)
        L, H = model.num_layers, model.hidden_size
        outputs = [("final", (L, 2, N, H), self.dtype)]
        if input_grads:
            if arrays["x"].ndim == 3:
                outputs.append(("dx", arrays["x"].shape, self.dtype))
            outputs.append(("dstate", (L, 2, N, H), self.dtype))
        io, layout, fresh = self._share(arrays, outputs)
        t2 = time.perf_counter()
        replies, bounds = self._run("step", io, layout, fresh, N, train, input_grads)
        t3 = time.perf_counter()
        loss = sum(r[1] * (stop - start) / N for r, (start, stop) in zip(replies, bounds))  # (Q1)
        active = [k for k, (start, stop) in enumerate(bounds) if stop > start]
        total = np.empty(sum(g.size for g in self._g[0]), self.dtype)  # fresh: not a view of shared memory
        grads, offset = {}, 0
        for i, name in enumerate(self._names):
            size = self._g[0][i].size
            out = total[offset : offset + size]
            np.copyto(out, self._g[active[0]][i])
            for k in active[1:]:
                out += self._g[k][i]  # (Q2) dL/dtheta = sum over blocks of (N_k / N) dL_k/dtheta
            grads[name] = out.reshape(self._w[name].shape)
            offset += size
        final = np.array(_view(io, layout["final"]))
        result = (loss, grads, final)
        if input_grads:
            dx = np.array(_view(io, layout["dx"])) if "dx" in layout else None
            result += ({"x": dx, "state": np.array(_view(io, layout["dstate"]))},)
        t4 = time.perf_counter()
        timings["weights"] += t1 - t0
        timings["inputs"] += t2 - t1
        timings["wait"] += t3 - t2
        timings["compute"] += max(r[2] for r in replies)
        timings["compute_cpu"] += max(r[3] for r in replies)
        timings["reduce"] += t4 - t3
        timings["steps"] += 1
        return result

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate_walk(self, xs, ys):
        """The mean of ``model.evaluate``'s loss over B batches walked in order, the state carried from each
        batch to the next (zeros at the first): what ``numpylstm.demos.text.evaluate`` computes, on K processes.

        xs: (B, N, T) token ids or (B, N, T, D) floats, the B batches stacked; ys: their targets (B, N, ...).
        Row n of every batch continues row n of the batch before (a stateful walk), so each worker walks its
        rows through all B batches with its own state, and one message per worker does the whole walk. Every
        batch's loss is a mean over its N rows, so the walk's mean is (Q1): the workers' means weighted N_k / N.
        """
        self._check_usable()
        xs, ys = np.asarray(xs), np.asarray(ys)
        if xs.ndim not in (3, 4) or 0 in xs.shape[:3] or xs.dtype.kind not in "iuf":
            raise ValueError(f"xs must be (B, N, T) token ids or (B, N, T, D) floats, B, N, T >= 1; got "
                             f"{chk.describe(xs)}")
        if ys.ndim < 2 or ys.shape[:2] != xs.shape[:2] or ys.dtype.kind not in "iuf":
            raise ValueError(f"ys must be numeric with the (B, N) = {xs.shape[:2]} leading axes of xs; got "
                             f"{chk.describe(ys)}")
        return self._locked(self._walk, xs, ys)

    def _walk(self, xs, ys):
        self._copy_weights()
        io, layout, fresh = self._share({"xs": xs, "ys": ys}, [])
        N = xs.shape[1]
        replies, bounds = self._run("walk", io, layout, fresh, N)
        return sum(r[1] * (stop - start) / N for r, (start, stop) in zip(replies, bounds))  # (Q1)

    @property
    def pids(self) -> list:
        """The worker processes' ids."""
        return [p.pid for p in self._procs]

    def reset_timings(self):
        self.timings = dict.fromkeys(("weights", "inputs", "compute", "compute_cpu", "wait", "reduce", "steps"), 0.0)

    # ------------------------------------------------------------------------------------------ the end
    def close(self):
        """Stop the workers (they finish their step first) and free the shared memory. Safe to call twice."""
        if self._closed or os.getpid() != self._pid:
            return
        with self._lock:
            for conn in self._conns:
                try:
                    conn.send(("close",))
                except OSError:
                    pass
            for p in self._procs:
                p.join(5.0)
            self._abort()

    def _abort(self):
        """Terminate every worker still running, free and unlink the shared memory (also after an error)."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        for p in self._procs:
            if p.is_alive():
                p.kill()  # the workers ignore SIGTERM (module docstring)
        for p in self._procs:
            p.join()
        for conn in self._conns:
            conn.close()
        self._w = self._g = None
        _close_quietly(self._fixed, unlink=True)
        _close_quietly(self._io, unlink=True)
        self._fixed = self._io = None
        _ENGINES.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __reduce__(self):
        raise TypeError("a DataParallel engine cannot be pickled or copied (it owns processes); make a new one")

    def __repr__(self):
        return (f"DataParallel(workers={self.workers}, start_method={self.start_method!r}, "
                f"{'closed' if self._closed else 'running'})")


def resolve_workers(workers, model, batch_size, timesteps):
    """A ``workers`` setting as the demos take it -> None (one process) or K >= 2 processes.

    workers: "auto" (``auto_workers``), None or 1 (one process), or K > 1 (at most batch_size: a worker
    needs a row)."""
    if workers == "auto":
        return auto_workers(model, batch_size, timesteps)
    if workers is None:
        return None
    K = min(chk.positive_int("workers", workers), batch_size)
    return K if K > 1 else None


@contextmanager
def training_on(trainer, workers, batch_size=None, fallback=None):
    """While inside, ``trainer`` (a ``train.Trainer``) runs its steps on ``workers`` processes (a
    ``DataParallel`` over ``trainer.model``); None: in this process, as without it. Sampling and checkpoints
    stay in this process (the weights are the model's own arrays throughout); an ``eval_fn`` may use
    ``trainer.engine`` (the char demo's validation walk does).

    fallback: None (default): an engine that cannot start (no shared memory, no fork) is an error; a function
    ``fallback(message)``: it is called with a one-line message instead and the steps run in this process
    (the demos pass their ``say`` when the user did not ask for workers: ``--workers auto``).

        with training_on(trainer, 2, batch_size=32):
            result = trainer.run()
    """
    if workers is None:
        yield None
        return
    try:
        engine = DataParallel(trainer.model, workers=workers, batch_size=batch_size)
    except (OSError, RuntimeError) as e:
        if fallback is None:
            raise
        fallback(f"note: could not start {workers} worker processes ({type(e).__name__}: {e}); training in "
                 f"this process instead")
        engine = None
    if engine is None:  # outside the except block: a later error in the body is not chained to this one
        yield None
        return
    with engine:
        trainer.engine = engine
        try:
            yield engine
        finally:
            trainer.engine = None
