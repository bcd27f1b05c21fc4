"""Time one training step of numpylstm (fast and textbook) against PyTorch's CPU LSTM, each library alone.

One "step" is ``LSTMModel.loss_and_grads`` (forward, loss, backward through the whole model), and for PyTorch
the same work: ``nn.LSTM(batch_first=True)`` + ``nn.Linear``, the loss, ``backward()``. Same initial weights.

Configurations (N batch, T steps, H hidden, L layers):

    A     (64,  20,  20, 2)  input size 1, head "last", MSE: the sine model of the TF-1 notes
    B     (64,  20, 128, 2)  same, wider
    C     (32, 100, 256, 2)  same, char-RNN sized
    char  (32,  50, 192, 2)  what ``demo.py chars`` runs: V = 77 token ids (anna.txt's vocabulary; random ids,
                             no file read), head "all", softmax cross-entropy over 77 classes.

For ``char`` numpylstm gets (N, T) integer ids (its input projection is a row gather of Wx); PyTorch gets a
one-hot float tensor (N, T, 77) built once outside the timed step, the way the char-RNN notes feed
``tf.one_hot`` into the LSTM (so PyTorch does a (N*T, 77) @ (77, 4H) GEMM where numpylstm gathers rows).

Method (why: an earlier in-process, interleaved design measured mostly contention -- OpenBLAS's threads keep
spinning after a call and took the CPU from torch's threads right after):
- every timing runs in its own fresh subprocess that imports only the library it times (torch is never
  imported by a NumPy worker); the parent process only waits;
- both libraries at the same thread count: the env variables OMP/OPENBLAS/MKL_NUM_THREADS are set before the
  worker imports anything, then threadpoolctl limits NumPy's BLAS and ``torch.set_num_threads`` torch;
  reported at 1 thread and at the machine's default (``os.cpu_count()``);
- each worker warms up (``--warmup-seconds`` of steps, at least 2 steps), then times ``--seconds`` (2.5) of
  consecutive steps, each step timed on its own; ``--rounds`` rounds, the implementations in alternating
  order from round to round, so drift of the machine hits them alike;
- reported: the median step time over all rounds' steps, and the spread = max/min - 1 of the per-round
  medians (how far two runs of the same thing disagree: the noise figure to read the ratio against);
- the reference GEMM (a 2048 x 2048 product, the machine's BLAS peak) is timed alone the same way.

Numbers are printed, never asserted. ``--quick`` runs in seconds (for CI); PyTorch is skipped when it is not
installed. The markdown table at the end is in the README's format.

    python benchmarks/bench_lstm.py                        # the full table, ~4 minutes
    python benchmarks/bench_lstm.py --quick                # seconds
    python benchmarks/bench_lstm.py --configs C --threads 1 --impls fast,torch
    python benchmarks/bench_lstm.py --configs B,C,char --threads 2 --impls dp,fast,plain,torch --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (N, T, H, layers, onehot)
CONFIGS = {
    "A": (64, 20, 20, 2, False),
    "B": (64, 20, 128, 2, False),
    "C": (32, 100, 256, 2, False),
    "char": (32, 50, 192, 2, True),
}
VOCAB = 77  # distinct characters in anna.txt
IMPLS = ("fast", "textbook", "torch")
EXTRA_IMPLS = ("plain", "dp")  # on request: fast layer by layer, the wavefront off, for comparison;
# dp: numpylstm/parallel.py, data parallel over --threads worker processes (one BLAS thread each)
MARKS = {"wavefront": " \u2020"}  # how a numpylstm row ran, in the table
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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


def config_info(name, seq_len=None):
    N, T, H, L, onehot = CONFIGS[name]
    T = seq_len or T
    if onehot:
        return dict(N=N, T=T, H=H, L=L, D=VOCAB, O=VOCAB, head="all", loss="softmax_ce", onehot=True)
    return dict(N=N, T=T, H=H, L=L, D=1, O=1, head="last", loss="mse", onehot=False)


# ---------------------------------------------------------------------------------------------- worker
def make_problem(info, dtype, seed=0):
    """The numpylstm model and a random batch for one configuration."""
    import numpy as np

    from numpylstm import LSTMModel

    rng = np.random.default_rng(seed)
    N, T = info["N"], info["T"]
    if info["onehot"]:
        x = rng.integers(0, VOCAB, (N, T))
        y = rng.integers(0, VOCAB, (N, T))
    else:
        x = rng.standard_normal((N, T, info["D"])).astype(dtype)
        y = rng.standard_normal((N, info["O"])).astype(dtype)
    model = LSTMModel(info["D"], info["H"], info["O"], num_layers=info["L"], head=info["head"],
                      loss=info["loss"], seed=seed, dtype=dtype)
    return model, x, y


def numpy_step(info, dtype, impl, loop_threads="1", plain=False):
    """numpylstm's step in this process, and how it runs: "wavefront" (all layers in one time loop) or "" (layer
    by layer).

    plain: the "plain" implementation, fast.py layer by layer (LSTMModel(wavefront=False))."""
    import numpy as np

    from numpylstm import fast

    if loop_threads == "all":  # the time loops' products on all of BLAS's threads (fast.LOOP_BLAS_THREADS = None)
        fast.LOOP_BLAS_THREADS = None
    model, x, y = make_problem(info, dtype)
    model.impl = impl
    if plain:
        model.wavefront = False

    def step():
        model.loss_and_grads(x, y)
    T, N = info["T"], info["N"]
    xt = np.zeros((T, N), int) if info["onehot"] else np.zeros((T, N, info["D"]), dtype)
    return step, "wavefront" if model._wave(xt, None) else ""


def load_into_torch(params, lstm, linear):
    """numpylstm's weights into nn.LSTM + nn.Linear, through numpylstm.params_to_torch."""
    import torch

    from numpylstm import params_to_torch

    lstm_sd, linear_sd = params_to_torch(params)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_sd.items()})
    linear.load_state_dict({k: torch.from_numpy(v) for k, v in linear_sd.items()})


def dp_step(info, dtype, workers):
    """numpylstm's step on ``workers`` processes (numpylstm/parallel.py). Returns (step, engine)."""
    from numpylstm.parallel import DataParallel

    model, x, y = make_problem(info, dtype)
    engine = DataParallel(model, workers=workers)

    def step():
        engine.loss_and_grads(x, y)
    return step, engine


def torch_step(info, dtype):
    """The equivalent PyTorch step, with numpylstm's initial weights copied in."""
    import torch

    model, x, y = make_problem(info, dtype)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    H, L, D, O = info["H"], info["L"], info["D"], info["O"]
    lstm = torch.nn.LSTM(D, H, num_layers=L, batch_first=True, dtype=tdt)
    lin = torch.nn.Linear(H, O, dtype=tdt)
    load_into_torch(model.params, lstm, lin)
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
        z = lin(out[:, -1]) if info["head"] == "last" else lin(out).reshape(-1, O)
        loss_fn(z, yt).backward()
    return step


def gemm_step(dtype, n):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    return lambda: np.matmul(a, b, out=c)


def time_steps(step, seconds, warmup_seconds):
    """Warm up for ``warmup_seconds`` (at least 2 calls), then time consecutive calls for ``seconds`` (at least
    3). Returns the list of per-call seconds; ``time_steps.cpu`` holds the process's CPU seconds per call."""
    t_end = time.perf_counter() + warmup_seconds
    for k in range(10**9):
        step()
        if k >= 1 and time.perf_counter() >= t_end:
            break
    times, cpu = [], []
    t_end = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < t_end:
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    time_steps.cpu = cpu  # this process's CPU seconds per step (all its threads), read by worker()
    return times


def worker(job):
    """Runs in the subprocess: thread limits first, then import only what this job times, then time it."""
    threads = job["threads"]
    if job["impl"] == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    import numpy as np

    try:  # the env variables already limit BLAS; threadpoolctl makes sure and names the kernel
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - depends on the environment
        threadpool_info = list
    if job["impl"] == "gemm":
        step = gemm_step(job["dtype"], job["gemm_n"])
    elif job["impl"] == "torch":
        step = torch_step(job["info"], job["dtype"])
    mode, engine = "", None
    if job["impl"] == "dp":
        step, engine = dp_step(job["info"], job["dtype"], threads)
        mode = f"{threads} processes"
    if job["impl"] in ("fast", "textbook", "plain"):
        impl = "fast" if job["impl"] == "plain" else job["impl"]
        step, mode = numpy_step(job["info"], job["dtype"], impl, job.get("loop_threads", "1"), job["impl"] == "plain")
    times = time_steps(step, job["seconds"], job["warmup_seconds"])
    comm = None
    if engine is not None:  # the parent's parts of a step, per step, in ms (warm-up steps included)
        t = engine.timings
        comm = {k: 1e3 * v / t["steps"] for k, v in t.items() if k != "steps"}
        engine.close()
    out = dict(times=times, cpu=time_steps.cpu, comm=comm, numpy=np.__version__, mode=mode,
               blas=[dict(api=p.get("internal_api"), version=p.get("version"), kernel=p.get("architecture"),
                          threads=p.get("num_threads"), file=Path(p.get("filepath", "")).name)
                     for p in threadpool_info()])
    if job["impl"] == "torch":
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    return out


def run_job(job):
    """Run one job in a fresh interpreter whose thread variables are set before anything is imported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in THREAD_VARS:
        env[var] = str(job["threads"])
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed ({job['impl']} {job.get('config', '')}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- report
def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def torch_available():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def summarize(times_by_round):
    """(median ms over all steps, spread = max/min - 1 of the per-round medians, steps timed)."""
    pooled = [t for ts in times_by_round for t in ts]
    meds = [statistics.median(ts) for ts in times_by_round]
    return statistics.median(pooled) * 1e3, max(meds) / min(meds) - 1.0, len(pooled)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke run: 0.2 s per timing, one round, one thread, C at T=20")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--impls", default=",".join(IMPLS),
                    help="comma-separated subset of " + ",".join(IMPLS + EXTRA_IMPLS) + " (plain: fast layer by "
                         "layer, without the wavefront; dp: fast on --threads worker processes, "
                         "numpylstm/parallel.py)")
    ap.add_argument("--threads", default=None,
                    help=f"comma-separated thread counts (default: 1,{os.cpu_count()}; --quick: 1)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--seconds", type=float, default=None, help="timed seconds of consecutive steps per run (2.5)")
    ap.add_argument("--warmup-seconds", type=float, default=None, help="untimed steps first (0.5)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds, implementations alternating (2)")
    ap.add_argument("--loop-threads", default="1", choices=("1", "all"),
                    help="numpylstm fast's own BLAS thread choice: 1 (its default, fast.LOOP_BLAS_THREADS: the "
                         "time loops' products and small layers on one thread) or all (every product on all of "
                         "--threads, as before)")
    ap.add_argument("--seq-len", type=int, default=None, help="override T of every configuration (smoke tests)")
    ap.add_argument("--gemm-n", type=int, default=None, help="size of the reference a @ b (2048; 0 skips it)")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None

    q = args.quick
    seconds = args.seconds if args.seconds is not None else (0.2 if q else 2.5)
    warm = args.warmup_seconds if args.warmup_seconds is not None else (0.05 if q else 0.5)
    rounds = args.rounds or (1 if q else 2)
    gemm_n = args.gemm_n if args.gemm_n is not None else (256 if q else 2048)
    threads = [int(t) for t in (args.threads or ("1" if q else f"1,{os.cpu_count()}")).split(",") if t]
    names = [c for c in args.configs.split(",") if c]
    impls = [i for i in args.impls.split(",") if i]
    for c in names:
        if c not in CONFIGS:
            ap.error(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    for i in impls:
        if i not in IMPLS + EXTRA_IMPLS:
            ap.error(f"unknown implementation {i!r}; choose from {', '.join(IMPLS + EXTRA_IMPLS)}")
    if any(t < 1 for t in threads):
        ap.error("--threads must be positive integers")
    if "torch" in impls and not torch_available():
        print("PyTorch not installed: not timed")
        impls.remove("torch")

    print(f"numpylstm vs PyTorch: one training step, {args.dtype}, each implementation alone in its own process")
    print(f"machine: {machine()}; python {platform.python_version()}")
    print(f"method: {warm} s warm-up, then {seconds} s of consecutive steps per run, {rounds} round(s) in "
          f"alternating order; median step over all rounds, spread = max/min - 1 of the round medians"
          + ("; QUICK mode" if q else "")
          + ("; numpylstm's in-loop products on all threads (--loop-threads all)" if args.loop_threads == "all"
             else ""))
    seq = {c: args.seq_len or (20 if q and c == "C" else None) for c in names}
    results, env_seen, modes, comms, cpus = {}, {}, {}, {}, {}
    for th in threads:
        for c in names:
            info = config_info(c, seq[c])
            per_impl = {i: [] for i in impls}
            for r in range(rounds):
                order = impls[r % len(impls):] + impls[:r % len(impls)]
                for impl in order:
                    out = run_job(dict(impl=impl, info=info, config=c, dtype=args.dtype, threads=th,
                                       seconds=seconds, warmup_seconds=warm, loop_threads=args.loop_threads))
                    per_impl[impl].append(out["times"])
                    cpus.setdefault((th, c, impl), []).append(statistics.median(out["cpu"]) * 1e3)
                    if out.get("comm"):
                        comms.setdefault((th, c), []).append(out["comm"])
                    if out.get("mode"):
                        modes[th, c, impl] = out["mode"]
                    env_seen.setdefault(impl, out)
            for impl in impls:
                results[th, c, impl] = summarize(per_impl[impl])
            flops = gemm_flops(info["N"], info["T"], info["H"], info["L"], info["D"], info["O"], info["head"],
                               info["onehot"])
            cells = "  ".join(f"{i} {results[th, c, i][0]:9.2f} ms ({results[th, c, i][1]:4.0%}, "
                              f"{results[th, c, i][2]} steps)" for i in impls)
            gf = f"  fast {flops / results[th, c, 'fast'][0] / 1e6:6.1f} GFLOP/s" if "fast" in impls else ""
            print(f"threads {th}  {c:<5} N={info['N']} T={info['T']} H={info['H']}:  {cells}{gf}", flush=True)
            rounds_ms = "; ".join(f"{i} " + " ".join(f"{statistics.median(ts) * 1e3:.1f}" for ts in per_impl[i])
                                  for i in impls)
            print(f"    round medians (ms): {rounds_ms}", flush=True)
            cpu_ms = "; ".join(f"{i} " + " ".join(f"{v:.1f}" for v in cpus[th, c, i]) for i in impls)
            print(f"    CPU ms per step in the timing process, per round: {cpu_ms}", flush=True)
            for comm in comms.get((th, c), []):
                print("    dp, per step (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in comm.items())
                      + f"; messaging = wait - compute {comm['wait'] - comm['compute']:.3f}; on an idle machine "
                      f"~ compute_cpu + weights + inputs + reduce = "
                      f"{comm['compute_cpu'] + comm['weights'] + comm['inputs'] + comm['reduce']:.2f}", flush=True)
        if gemm_n:
            out = run_job(dict(impl="gemm", dtype=args.dtype, threads=th, gemm_n=gemm_n, seconds=min(seconds, 1.0),
                               warmup_seconds=warm))
            ms = statistics.median(out["times"]) * 1e3
            results[th, "gemm", "gemm"] = 2.0 * gemm_n ** 3 / ms / 1e6
            print(f"threads {th}  reference GEMM {gemm_n}x{gemm_n}: {results[th, 'gemm', 'gemm']:.1f} GFLOP/s "
                  f"(alone, median of {len(out['times'])})", flush=True)
            env_seen.setdefault("gemm", out)

    some = next(iter(env_seen.values()))
    blas = ("; ".join(f"{b['api']} {b['version']} kernel {b['kernel']} ({b['file']})" for b in some["blas"])
            or "BLAS kernel unknown: pip install threadpoolctl to name it")
    tv = f", PyTorch {env_seen['torch']['torch']} CPU" if "torch" in env_seen else ""
    print(f"\nNumPy {some['numpy']} ({blas}){tv}")
    print(f"\n{args.dtype}, ms per training step (spread between rounds); ratio = numpylstm fast / PyTorch "
          f"(below 1: numpylstm is faster)\n")
    head = ["threads", "config (N, T, H, layers)"] + [dict(fast="numpylstm fast", plain="fast, layer by layer", textbook="numpylstm textbook",
                                                           torch="PyTorch", dp="data parallel")[i] for i in impls]
    both = "fast" in impls and "torch" in impls
    if both:
        head.append("fast / PyTorch")
    dp_both = "dp" in impls and "torch" in impls
    if dp_both:
        head.append("data parallel / PyTorch")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for th in threads:
        for c in names:
            info = config_info(c, seq[c])
            label = f"{c} ({info['N']}, {info['T']}, {info['H']}, {info['L']})" + (", one-hot 77, CE" if
                                                                                  info["onehot"] else "")
            row = [str(th), label] + [f"{results[th, c, i][0]:.2f} ({results[th, c, i][1]:.0%})"
                                      + MARKS.get(modes.get((th, c, i)), "") for i in impls]
            if both:
                row.append(f"{results[th, c, 'fast'][0] / results[th, c, 'torch'][0]:.2f}")
            if dp_both:
                row.append(f"{results[th, c, 'dp'][0] / results[th, c, 'torch'][0]:.2f}")
            print("| " + " | ".join(row) + " |")
    if "dp" in impls:
        print("\ndata parallel: numpylstm/parallel.py, one worker process per thread, each with one BLAS thread")
    if "wavefront" in modes.values():
        print("\n\u2020 wavefront: all layers in one time loop (numpylstm/wavefront.py)")
    if gemm_n:
        print("\nreference GEMM " + ", ".join(f"{results[th, 'gemm', 'gemm']:.0f} GFLOP/s at {th} thread(s)"
                                              for th in threads))
    return results


if __name__ == "__main__":
    main()
