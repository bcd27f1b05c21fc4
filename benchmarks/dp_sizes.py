"""Where does data parallel pay? A training step on two worker processes against one process, over sizes.

``numpylstm/parallel.py`` runs ``loss_and_grads`` on K processes, each on a block of the batch's rows. It has
a fixed cost per step (the weights copied into shared memory, a message to each worker and back, the K
gradient slots added: 1-4 ms), and a block of N/K rows costs more than 1/K of the whole batch (NumPy's cost
per call is the same for 32 rows as for 64). So for a small model one process is as fast or faster.
``parallel.auto_workers`` (the demos' ``--workers auto``) uses the engine when a step has at least
``AUTO_MIN_MACS`` multiply-adds (``parallel.step_macs``); this script is the measurement behind that threshold
(derivations/10_making_it_fast.md, section 10.15).

Float32, T = 20, input size 1, two layers, head "last", MSE: the sine model's shape with other H and N. This
process runs BLAS on one thread (set before NumPy is imported: a spinning BLAS thread of the one-process
variant would take a core from the workers that run next), as each worker does; both variants alternate in
short bursts, so drift of the machine hits them alike. The table gives the median burst per step and the ratio.

    python benchmarks/dp_sizes.py              # ~1 minute on two cores
    python benchmarks/dp_sizes.py --workers 4  # on a machine with four cores
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from numpylstm import LSTMModel  # noqa: E402
from numpylstm.parallel import AUTO_MIN_MACS, DataParallel, step_macs, usable_cores  # noqa: E402
from numpylstm.train import pipe_safe_stdout  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wavefront_sizes import burst  # noqa: E402  - burst(runner, x, y, seconds): s per loss_and_grads(x, y)

T = 20
SIZES = [(64, H) for H in (20, 32, 48, 64, 96, 128)] + [(32, H) for H in (32, 48, 64, 96)]


def measure(N, H, workers, rounds=5, seconds=0.3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, 1)).astype(np.float32)
    y = rng.standard_normal((N, 1)).astype(np.float32)
    model = LSTMModel(1, H, 1, num_layers=2, dtype="float32")
    with DataParallel(model, workers=workers) as engine:
        runners = {"one": model, "dp": engine}  # the same loss_and_grads(x, y), in this process or on K
        times = {k: [] for k in runners}
        for runner in runners.values():
            burst(runner, x, y, seconds / 2)  # warm-up: buffers allocated, workers started
        for r in range(rounds):
            for k in (("one", "dp") if r % 2 == 0 else ("dp", "one")):
                times[k].append(burst(runners[k], x, y, seconds))
    return step_macs(model, N, T), float(np.median(times["dp"])) * 1e3, float(np.median(times["one"])) * 1e3


def main(out, argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = ap.parse_args(argv)
    if args.workers < 2:
        ap.error("--workers must be >= 2")
    if usable_cores() < args.workers:
        print(f"note: {args.workers} workers on {usable_cores()} usable cores: they will share cores")
    K = args.workers
    print(f"training step, float32, T = {T}, input 1, 2 layers, head 'last'; ms per step (median burst); "
          f"auto threshold AUTO_MIN_MACS = {AUTO_MIN_MACS:.0e}")
    print()
    print(f"| N | H | multiply-adds a step | auto uses it | {K} processes | one process | ratio |")
    print("|---:|---:|---:|:---:|---:|---:|---:|", flush=True)
    for N, H in SIZES:
        if out.broken:  # the reader went away (`| head`): nothing more to show
            return
        macs, dp, one = measure(N, H, K)
        auto = "yes" if macs >= AUTO_MIN_MACS else "no"
        print(f"| {N} | {H} | {macs:.2g} | {auto} | {dp:.2f} | {one:.2f} | {dp / one:.2f} |", flush=True)


if __name__ == "__main__":
    with pipe_safe_stdout() as stdout:
        main(stdout)
