"""Where does the wavefront pay? A training step with ``wavefront=True`` against layer by layer, over sizes.

``numpylstm/wavefront.py`` runs all layers of a stack in one time loop: half the NumPy calls for two layers,
but a bigger product per row (the block matrix's zero blocks) and the upper layers' input parts inside the
loop. Which wins depends on the sizes; ``wavefront.worth_it`` is the rule ``LSTMModel(wavefront="auto")``
uses, and this script is the measurement behind it (derivations/10_making_it_fast.md, section 10.14).

Float32, BLAS on one thread (set before NumPy is imported), T = 20, input size 1, head "last", MSE: the sine
model's shape with other N, H and L. Both variants run in this process, alternating in short bursts, so drift
of the machine hits them alike; the table gives the median burst per step and the ratio.

    python benchmarks/wavefront_sizes.py            # ~1 minute
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from numpylstm import LSTMModel, wavefront  # noqa: E402
from numpylstm.train import pipe_safe_stdout  # noqa: E402

T = 20
SIZES = ([(N, H, L) for L in (2, 3) for H in (16, 20, 32, 48, 64) for N in (32, 64, 256)]
         + [(N, H, 4) for H in (8, 16) for N in (32, 64, 256)] + [(1000, 20, 2)])


def burst(model, x, y, seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model.loss_and_grads(x, y)
        n += 1
    return (time.perf_counter() - t0) / n


def measure(N, H, L, rounds=5, seconds=0.15):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, 1)).astype(np.float32)
    y = rng.standard_normal((N, 1)).astype(np.float32)
    models = {w: LSTMModel(1, H, 1, num_layers=L, dtype="float32", wavefront=w) for w in (True, False)}
    times = {True: [], False: []}
    for m in models.values():
        burst(m, x, y, seconds / 2)  # warm-up: buffers allocated, views made
    for r in range(rounds):
        for w in ((True, False) if r % 2 == 0 else (False, True)):
            times[w].append(burst(models[w], x, y, seconds))
    return float(np.median(times[True])) * 1e3, float(np.median(times[False])) * 1e3


def main(out):
    print(f"training step, float32, 1 BLAS thread, T = {T}, input 1, head 'last'; ms per step (median burst)")
    print()
    print("| N | H | layers | N L H 4 L H | auto uses it | wavefront | layer by layer | ratio |")
    print("|---:|---:|---:|---:|:---:|---:|---:|---:|", flush=True)
    for N, H, L in SIZES:
        if out.broken:  # the reader went away (`| head`): nothing more to show
            return
        wave, plain = measure(N, H, L)
        macs = N * L * H * 4 * L * H
        auto = "yes" if wavefront.worth_it(L, N, H) else "no"
        print(f"| {N} | {H} | {L} | {macs:,} | {auto} | {wave:.2f} | {plain:.2f} | {wave / plain:.2f} |", flush=True)


if __name__ == "__main__":
    with pipe_safe_stdout() as stdout:
        main(stdout)
