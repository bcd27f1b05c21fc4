"""Adam's memory (derivations/07_optimizers.md): the sine demo's default run with three values of beta2.

For each beta2: the test RMSE after the demo's 2000 steps, and how far one Adam step moves the weights at
step 1500, in units of the learning rate (|step| / lr, element by element: about 1 when the gradient is
consistent and v remembers gradients of today's size; much less when v still remembers larger ones).

    PYTHONPATH=. python derivations/scripts/adam_memory.py     # about 20 s
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as demo.py: same numbers as `python demo.py --beta2 B2`

from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from numpylstm.demos.sine import SineSettings, build, rmse  # noqa: E402
from numpylstm.optim import clip_grad_norm  # noqa: E402
from numpylstm.train import Progress, pipe_safe_stdout  # noqa: E402

PROBE = 1500  # the step at which the step size is probed


def step_sizes(model, trainer, s):
    """|one Adam step| / lr for every weight, at step PROBE (weights and optimizer state are put back after)."""
    x, y = trainer.batches(PROBE)
    _, grads, _ = model.loss_and_grads(x, y)
    clip_grad_norm(grads, s.clip)
    before = {k: p.copy() for k, p in model.params.items()}
    state = trainer.optimizer.state_dict()
    lr = trainer.optimizer.lr
    trainer.optimizer.step(grads)
    moved = np.concatenate([np.abs(model.params[k] - before[k]).ravel() / lr for k in before])
    model.params = before
    trainer.optimizer.load_state_dict(state)
    trainer.optimizer.t = int(state["t"])
    return moved


def main(out):
    print("| beta2 | memory (steps) | test RMSE after 2000 steps | step size / lr at step 1500: median | mean |")
    print("|---|---:|---:|---:|---:|", flush=True)
    for b2 in (0.999, 0.99, 0.95):
        if out.broken:  # the reader went away (`| head`): nothing more to show
            return
        s = replace(SineSettings(), beta2=b2)
        data, model, trainer = build(s, progress=Progress(s.steps, enabled=False))
        trainer.run(stop_at=PROBE)
        trainer.optimizer.lr = trainer.schedule(PROBE)
        moved = step_sizes(model, trainer, s)
        trainer.run()
        err = rmse(model.forward(data.test_x)[0], data.test_y)
        print(f"| {b2:g} | ~{1 / (1 - b2):.0f} | {err:.3g} | {np.median(moved):.4f} | {moved.mean():.4f} |", flush=True)


if __name__ == "__main__":
    with pipe_safe_stdout() as stdout:
        main(stdout)
