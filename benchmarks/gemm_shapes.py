"""How fast NumPy's BLAS runs the recurrent products of one LSTM step, as one GEMM and cut into column blocks.

The forward recurrence h_{t-1} Wh is (N, H) @ (H, 4H): few rows (the batch), many columns. numpylstm/fast.py
computes it as products on contiguous column blocks of Wh (``_column_blocks``); this script shows why, for
the shapes of the benchmark configurations, and lets you check it on your machine and BLAS:

    python benchmarks/gemm_shapes.py                 # one thread, float32
    python benchmarks/gemm_shapes.py --threads 2 --dtype float64
    python benchmarks/gemm_shapes.py --torch         # and PyTorch's own GEMM (torch.mm) on the same shapes

The rows with N = 16 are what each of two data-parallel workers computes for the char-RNN (H 192) and
config C (H 256) (section 10.15); the second table is the backward loop's product da_t Wh^T, (N, 4H) @ (4H, H).
With --torch, PyTorch runs after NumPy in this same process, at the same thread count.

Times are CPU seconds of this thread (``time.thread_time``, robust to other processes taking the CPU) at one
thread, wall seconds otherwise; the best of 9 repetitions of 200 calls.
"""

import argparse
import os
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--torch", action="store_true", help="also time torch.mm on each shape (needs PyTorch)")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # noqa: PLC0415 - after the thread variables

    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def best_us(f, n=200):
        best = float("inf")
        for _ in range(9):
            t0 = clock()
            for _ in range(n):
                f()
            best = min(best, (clock() - t0) / n)
        return best * 1e6

    dt = np.dtype(args.dtype)
    mm = None
    if args.torch:
        import torch  # noqa: PLC0415 - optional, after NumPy's timings are set up

        torch.set_num_threads(args.threads)

        def mm(a, b, out):
            ta, tb, to = (torch.from_numpy(v) for v in (a, b, out))
            return lambda: torch.mm(ta, tb, out=to)
    shapes = [(64, 20), (64, 128), (32, 192), (32, 256), (16, 192), (16, 256)]
    widths = (32, 64, 128)
    print(f"numpy {np.__version__}, {args.threads} thread(s), {dt}: microseconds per (N, H) @ (H, 4H)")
    print(f"{'N':>4}{'H':>5}  {'one GEMM':>9}  " + "  ".join(f"{'by ' + str(w):>9}" for w in widths)
          + (f"  {'torch.mm':>9}" if mm else ""))
    for N, H in shapes:
        rng = np.random.default_rng(0)
        h = rng.random((N, H)).astype(dt)
        W = rng.random((H, 4 * H)).astype(dt)
        out = np.empty((N, 4 * H), dt)
        row = [best_us(lambda: np.matmul(h, W, out=out))]
        for w in widths:
            cols = [slice(k, min(k + w, 4 * H)) for k in range(0, 4 * H, w)]
            blocks = [np.ascontiguousarray(W[:, c]) for c in cols]

            def blocked():
                for c, Wc in zip(cols, blocks):
                    np.matmul(h, Wc, out=out[:, c])
            row.append(best_us(blocked))
        if mm:
            row.append(best_us(mm(h, W, out)))
        print(f"{N:>4}{H:>5}  " + "  ".join(f"{v:>9.1f}" for v in row))
    print(f"\nthe backward loop's product, microseconds per (N, 4H) @ (4H, H)")
    print(f"{'N':>4}{'H':>5}  {'one GEMM':>9}" + (f"  {'torch.mm':>9}" if mm else ""))
    for N, H in shapes:
        rng = np.random.default_rng(0)
        dA = rng.random((N, 4 * H)).astype(dt)
        WhT = rng.random((4 * H, H)).astype(dt)
        out = np.empty((N, H), dt)
        row = [best_us(lambda: np.matmul(dA, WhT, out=out))] + ([best_us(mm(dA, WhT, out))] if mm else [])
        print(f"{N:>4}{H:>5}  " + "  ".join(f"{v:>9.1f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
