"""Time one training step of numpylstm against PyTorch's CPU LSTM.

One "step" is ``LSTMModel.loss_and_grads`` (forward, loss, backward through the whole model), and for PyTorch
the same work: ``nn.LSTM(batch_first=True)`` + ``nn.Linear``, the loss, ``backward()``, default threads.

Configurations (N batch, T steps, H hidden, L layers), input size 1, head "last", MSE:

    A  (64,  20,  20, 2)   the sine model of the TF-1 notes
    B  (64,  20, 128, 2)
    C  (32, 100, 256, 2)   char-RNN sized
    C-onehot               C with V = 77 token ids (anna.txt's vocabulary; random ids, no file read),
                           head "all", softmax cross-entropy over 77 classes.

For C-onehot numpylstm gets (N, T) integer ids (its input projection is a row gather of Wx); PyTorch gets a
one-hot float tensor (N, T, 77) built once outside the timed step, the way the char-RNN notes feed
``tf.one_hot`` into the LSTM -- so PyTorch does a (N*T, 77) @ (77, 4H) GEMM where numpylstm gathers rows.

Method: each implementation is warmed up, then numpylstm, torch and a large reference ``a @ b`` are timed
in rotating order, ``--reps`` rounds per configuration, so that machine drift hits all of them alike; medians
are reported, with the spread (max/min - 1 over the repetitions) as a noise figure. GFLOP/s use an explicit
count of the GEMM FLOPs of the step (``gemm_flops``), the same count for both implementations; %peak divides
numpylstm's GFLOP/s by the reference GEMM's median GFLOP/s over the same rounds, per dtype.

Numbers are printed, never asserted. ``--quick`` runs in a few seconds (for CI); PyTorch is skipped when it
is not installed.

    python benchmarks/bench_lstm.py            # full run, for the record
    python benchmarks/bench_lstm.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("ROOT", str(Path(__file__).resolve().parents[1])))
from numpylstm import LSTMModel  # noqa: E402

try:  # torch is an optional oracle
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

# name -> (N, T, H, layers, onehot)
CONFIGS = {
    "A": (64, 20, 20, 2, False),
    "B": (64, 20, 128, 2, False),
    "C": (32, 100, 256, 2, False),
    "C-onehot": (32, 100, 256, 2, True),
}
VOCAB = 77  # distinct characters in anna.txt


# ---------------------------------------------------------------------------------------------- counting
def gemm_flops(N, T, H, L, D, O, head, onehot):
    """FLOPs (2 per multiply-add) of every matrix product in one forward + backward step.

    Per layer: input projection (T*N, D) @ (D, 4H) (a gather for one-hot input: 0 FLOPs), recurrence
    T x (N, H) @ (H, 4H), backward through the recurrence T x (N, 4H) @ (4H, H), dWh and dWx (one GEMM
    each over all T), dx for layers above the first. Head: forward, dW and dh over the rows it reads.
    """
    total = 0
    for l in range(L):
        d = D if l == 0 else H
        proj = 0 if (l == 0 and onehot) else 2 * T * N * d * 4 * H
        total += proj  # forward input projection
        total += 2 * T * N * H * 4 * H  # forward recurrence
        total += 2 * T * N * 4 * H * H  # backward dh_{t-1} = da_t Wh^T
        total += 2 * T * N * H * 4 * H  # dWh
        total += proj  # dWx (scatter-add for one-hot, counted 0)
        if l > 0:
            total += 2 * T * N * 4 * H * d  # dx into the layer below
    rows = T * N if head == "all" else N
    total += 3 * 2 * rows * H * O  # head forward, dW, dh
    return total


# ---------------------------------------------------------------------------------------------- steps
def make_problem(name, dtype, seed=0, scale_T=None):
    N, T, H, L, onehot = CONFIGS[name]
    if scale_T is not None:
        T = scale_T
    rng = np.random.default_rng(seed)
    if onehot:
        D = O = VOCAB
        head, loss = "all", "softmax_ce"
        x = rng.integers(0, VOCAB, (N, T))
        y = rng.integers(0, VOCAB, (N, T))
    else:
        D, O = 1, 1
        head, loss = "last", "mse"
        x = rng.standard_normal((N, T, D)).astype(dtype)
        y = rng.standard_normal((N, O)).astype(dtype)
    model = LSTMModel(D, H, O, num_layers=L, head=head, loss=loss, seed=seed, dtype=dtype)
    info = dict(N=N, T=T, H=H, L=L, D=D, O=O, head=head, loss=loss, onehot=onehot)
    return model, x, y, info


def numpy_step(model, x, y):
    def step():
        model.loss_and_grads(x, y)
    return step


def torch_step(model, x, y, info, dtype):
    """The equivalent PyTorch step, with numpylstm's initial weights copied in."""
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    H, L, D, O = info["H"], info["L"], info["D"], info["O"]
    lstm = torch.nn.LSTM(D, H, num_layers=L, batch_first=True, dtype=tdt)
    lin = torch.nn.Linear(H, O, dtype=tdt)
    with torch.no_grad():
        for l in range(L):
            P = model.params
            getattr(lstm, f"weight_ih_l{l}").copy_(torch.from_numpy(P[f"lstm.{l}.Wx"].T.copy()))
            getattr(lstm, f"weight_hh_l{l}").copy_(torch.from_numpy(P[f"lstm.{l}.Wh"].T.copy()))
            getattr(lstm, f"bias_ih_l{l}").copy_(torch.from_numpy(P[f"lstm.{l}.b"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()
        lin.weight.copy_(torch.from_numpy(model.params["head.W"].T.copy()))
        lin.bias.copy_(torch.from_numpy(model.params["head.b"]))
    params = list(lstm.parameters()) + list(lin.parameters())
    if info["onehot"]:
        xt = torch.nn.functional.one_hot(torch.from_numpy(x), D).to(tdt)  # built once, outside the step
        yt = torch.from_numpy(y).reshape(-1)
        loss_fn = torch.nn.CrossEntropyLoss()
    else:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.MSELoss()

    def step():
        for p in params:
            p.grad = None
        out, _ = lstm(xt)
        if info["head"] == "last":
            z = lin(out[:, -1])
        else:
            z = lin(out).reshape(-1, O)
        loss = loss_fn(z, yt)
        loss.backward()
    return step


def timed(fn, calls=1):
    """Seconds per call over ``calls`` consecutive calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


BURST_SECONDS = 0.02


def time_interleaved(fns, reps, warmup):
    """Warm every callable up, then time them in rotating order, ``reps`` rounds. Returns one list per callable.

    Each round times a short burst of consecutive calls (enough for ~20 ms, at least one) and records the
    time per call: a training loop runs step after step, and a single tiny call timed right after another
    library's work (or the reference GEMM, which flushes the caches) measures mostly cold caches.
    None entries are skipped (e.g. torch absent). Rotating the order each round means neither implementation
    always runs right after the other, and machine drift during the run hits all of them alike.
    """
    live = [k for k, f in enumerate(fns) if f is not None]
    calls = {}
    for k in live:
        t = min(timed(fns[k]) for _ in range(max(warmup, 1)))
        calls[k] = max(1, int(BURST_SECONDS / max(t, 1e-9)))
    times = [[] for _ in fns]
    for r in range(reps):
        for j in range(len(live)):
            k = live[(j + r) % len(live)]
            times[k].append(timed(fns[k], calls[k]))
    return times


def gemm_call(dtype, n):
    """One (n, n) @ (n, n) product in this dtype (the machine's reference GEMM) and its FLOP count."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    return (lambda: np.matmul(a, b, out=c)), 2.0 * n ** 3


def spread(ts):
    return max(ts) / min(ts) - 1.0 if ts else float("nan")


def cache_memory(model, x, y):
    """(bytes the caches hold by arithmetic, bytes still allocated after forward, peak during the step).

    Arithmetic size per layer: gates (T, N, 4H) + c (T+1, N, H) + tanh c (T, N, H) + h (T+1, N, H).
    The two traced numbers come from tracemalloc, which sees NumPy's data buffers.
    """
    xt = model._time_major_input(x)
    T, N = xt.shape[:2]
    H, L, item = model.hidden_size, model.num_layers, model.dtype.itemsize
    arithmetic = L * (T * N * 4 * H + (T + 1) * N * H + T * N * H + (T + 1) * N * H) * item
    gc.collect()
    tracemalloc.start()
    out = model._forward_tm(xt, None, None)
    held, fwd_peak = tracemalloc.get_traced_memory()
    del out
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    model.loss_and_grads(x, y)
    step_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return arithmetic, held, fwd_peak, step_peak


# ---------------------------------------------------------------------------------------------- report
def environment():
    lines = [f"python {platform.python_version()}, numpy {np.__version__}"
             + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", torch absent"),
             f"cpu count {os.cpu_count()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
             f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')} "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}"]
    try:
        from threadpoolctl import threadpool_info
        for p in threadpool_info():
            lines.append(f"  {p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')} "
                         f"threads={p.get('num_threads')} ({Path(p.get('filepath', '')).name})")
    except ImportError:
        lines.append("  (pip install threadpoolctl to see which BLAS kernel runs)")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions, short C (T=20): seconds, for CI")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per implementation")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of A,B,C,C-onehot")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--seq-len", type=int, default=None, help="override T of every configuration (smoke tests)")
    ap.add_argument("--no-torch", action="store_true", help="time numpylstm only")
    ap.add_argument("--gemm-n", type=int, default=None, help="size of the reference a @ b")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc cache measurement")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit NumPy's BLAS (needs threadpoolctl) and torch to this many threads; default: theirs")
    args = ap.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - optional, only for this flag
        threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)

    reps = args.reps or (2 if args.quick else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    gemm_n = args.gemm_n or (256 if args.quick else 2048)
    scale_T = 20 if args.quick else None  # quick mode shortens C to T=20
    names = [c for c in args.configs.split(",") if c]
    for c in names:
        if c not in CONFIGS:
            ap.error(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    dtypes = [np.dtype(d) for d in args.dtypes.split(",") if d]
    use_torch = torch is not None and not args.no_torch

    print("numpylstm vs PyTorch: one training step (loss_and_grads / forward+loss+backward)")
    for line in environment():
        print(line)
    print(f"reps={reps} (medians, interleaved; each rep a burst of ~20 ms of consecutive calls), warmup={warmup}, reference GEMM {gemm_n}x{gemm_n}"
          + (", QUICK mode (C at T=20)" if args.quick else ""))
    if not use_torch:
        print("PyTorch not timed" + (" (not installed)" if torch is None else ""))

    rows = []
    for dt in dtypes:
        gemm, gemm_fl = gemm_call(dt, gemm_n)
        gemm_times = []
        print(f"\n{dt.name}: (reference GEMM timed interleaved with every configuration; %peak uses the median"
              " over the configuration's own rounds)")
        hdr = (f"{'config':<9}{'N':>4}{'T':>5}{'H':>5}  {'numpylstm ms':>12}{'spread':>7}  {'torch ms':>9}"
               f"{'spread':>7}  {'ratio':>6}  {'GFLOP/s':>8}{'%peak':>7}  {'torch GF/s':>10}")
        print(hdr + f"{'GEMM GF/s':>10}")
        for name in names:
            model, x, y, info = make_problem(name, dt, scale_T=args.seq_len or (scale_T if name.startswith("C") else None))
            flops = gemm_flops(info["N"], info["T"], info["H"], info["L"], info["D"], info["O"],
                               info["head"], info["onehot"])
            fa = numpy_step(model, x, y)
            fb = torch_step(model, x, y, info, dt) if use_torch else None
            ta, tb, tg = time_interleaved([fa, fb, gemm], reps, warmup)
            gemm_times += tg
            peak = gemm_fl / statistics.median(tg) / 1e9
            ma = statistics.median(ta)
            mb = statistics.median(tb) if tb else float("nan")
            gf = flops / ma / 1e9
            row = dict(dtype=dt.name, config=name, ms=ma * 1e3, torch_ms=mb * 1e3, ratio=ma / mb, gflops=gf,
                       frac=gf / peak, torch_gflops=flops / mb / 1e9, spread=spread(ta), torch_spread=spread(tb),
                       peak=peak)
            rows.append(row)
            print(f"{name:<9}{info['N']:>4}{info['T']:>5}{info['H']:>5}  {row['ms']:>12.2f}{row['spread']:>7.0%}"
                  f"  {row['torch_ms']:>9.2f}{row['torch_spread']:>7.0%}  {row['ratio']:>6.2f}  {gf:>8.1f}"
                  f"{row['frac']:>7.0%}  {row['torch_gflops']:>10.1f}{peak:>10.1f}")
            sys.stdout.flush()
            del fb
        print(f"reference GEMM {gemm_n}x{gemm_n} {dt.name}: median {gemm_fl / statistics.median(gemm_times) / 1e9:.1f}"
              f" GFLOP/s over {len(gemm_times)} runs (spread {spread(gemm_times):.0%})")
    if not args.no_memory:
        print("\ncache memory (tracemalloc, NumPy buffers):")
        for dt in dtypes:
            for name in [n for n in names if n.startswith("C")]:
                model, x, y, info = make_problem(name, dt, scale_T=args.seq_len or scale_T)
                arith, held, fwd_peak, step_peak = cache_memory(model, x, y)
                print(f"  {dt.name} {name:<9} arithmetic {arith / 2**20:7.2f} MiB   held after forward "
                      f"{held / 2**20:7.2f} MiB ({held / arith:.2f}x)   forward peak {fwd_peak / 2**20:7.2f} MiB"
                      f"   whole-step peak {step_peak / 2**20:7.2f} MiB")
    print("\nratio = numpylstm ms / torch ms (lower is better); spread = max/min - 1 over the repetitions;"
          "\nGFLOP/s from gemm_flops(); %peak = numpylstm GFLOP/s / reference GEMM GFLOP/s of that dtype.")
    return rows


if __name__ == "__main__":
    main()
