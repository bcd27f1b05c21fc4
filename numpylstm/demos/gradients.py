"""Gradient flow, measured: ``python demo.py gradients`` (derivations/11_why_lstm.md, 11.3-11.4).

For a loss on the last of T steps (the adding problem's MSE on h_T through the dense head), walk the backward
pass one step at a time with the textbook step functions and record, at every t, the batch mean of the
per-sequence norms of dh_t (the total gradient at h_t, (B1) / (R3)) and, for the LSTM, of dc_t (the total
gradient at c_t, (B2)). Done for the LSTM and the plain tanh RNN, at initialisation and after training on the
adding problem (the weights of ``demo.py adding``'s checkpoints when present, else a short training run here),
drawn on a log scale into ``runs/gradients/flow.png``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..checkpoint import model_from_checkpoint
from ..model import LSTMModel
from ..optim import Adam
from ..rnn import rnn_forward, rnn_step_backward
from ..textbook import lstm_forward, lstm_step_backward
from .._files import Outputs
from ..train import Progress, Trainer, check_memory, constant_lr, run_for_cli
from .adding import BASELINE, TEST_SIZE, AddingSettings, adding_batch, settings_from_checkpoint

CELLS = ("lstm", "rnn")  # the two cells this picture compares (gradient_norms walks their step functions)

__all__ = ["gradient_norms", "run_gradients"]

NAMES = {"lstm": "LSTM", "rnn": "tanh RNN"}
LEARNED = 0.01  # test MSE below which a cell has learned the adding problem (adding.py's target)


def gradient_norms(model, x, y):
    """Per-step gradient norms of a one-layer, head "last", MSE model on (x, y).

    Returns (dh_norms (T,), dc_norms (T,) or None for the RNN): entry t-1 is the mean over the batch of
    ||dL/dh_t|| (and ||dL/dc_t||), the total gradient at step t for the loss on the last step only.
    """
    if model.num_layers != 1 or model.head != "last" or model.loss != "mse":
        raise ValueError("gradient_norms needs a one-layer model with head 'last' and loss 'mse'")
    P, cell = model.params, model.cell
    Wx, Wh, b = P[f"{cell}.0.Wx"], P[f"{cell}.0.Wh"], P[f"{cell}.0.b"]
    if cell == "rnn":
        hs, hT, cache = rnn_forward(x, None, Wx, Wh, b)
    else:
        hs, (hT, _), cache = lstm_forward(x, None, None, Wx, Wh, b)
    pred = hT @ P["head.W"] + P["head.b"]  # (H1)
    dy = 2.0 * (pred - y) / pred.size  # (L2) the gradient of the mean squared error
    dh = dy @ P["head.W"].T  # (H4): dh_T, the only gradient from outside the recurrence
    dc = np.zeros_like(dh)
    T = len(cache)
    dh_norms, dc_norms = np.zeros(T), np.zeros(T)
    for t in reversed(range(T)):
        dh_norms[t] = np.linalg.norm(dh, axis=1).mean()
        if cell == "rnn":
            _, dh, _, _, _ = rnn_step_backward(dh, cache[t])  # (V1): dh_{t-1} = dh_t Lambda_t Wh^T, Lambda_t = diag(1 - h_t^2)
        else:
            step = cache[t]
            o, tanh_c = step[8], step[9]
            dc_norms[t] = np.linalg.norm(dc + dh * o * (1 - tanh_c**2), axis=1).mean()  # (B2): the total dc_t
            _, dh, dc, _, _, _ = lstm_step_backward(dh, dc, step)
    return dh_norms, (None if cell == "rnn" else dc_norms)


def _trained(cell, s, source, steps, quiet, stream):
    """A trained model of ``cell``: from ``source``/<cell>.npz when it exists, else ``steps`` steps here.

    Returns (model, description) or (None, exit code) after Ctrl-C / divergence.
    """
    path = Path(source) / f"{cell}.npz" if source else None
    if path is not None and path.is_file():
        ks = settings_from_checkpoint(path)
        model, ck = model_from_checkpoint(path)
        if ks.cell != cell or model.cell != cell:  # a renamed file would be drawn under the wrong name
            raise ValueError(f"--from {source}: {path} holds a {NAMES.get(model.cell, model.cell)} (cell "
                             f"{model.cell!r}), not the {NAMES[cell]} its name says: rename it to "
                             f"{model.cell}.npz, or move it out of {source}")
        return _to_float64(model), f"weights of {path} (step {ck.step}, trained at T = {ks.timesteps})"
    ks = replace(s, cell=cell)
    dt = np.dtype(ks.dtype)
    model = LSTMModel(2, ks.lstm_size, 1, seed=ks.seed, dtype=dt, cell=cell)
    trainer = Trainer(model, Adam(model.params, lr=ks.lr),
                      lambda step: adding_batch(ks.batch_size, ks.timesteps,
                                                np.random.default_rng([ks.seed, 0, step]), dt),
                      steps, schedule=constant_lr(ks.lr), clip_norm=ks.clip,
                      progress=Progress(steps, stream=stream, enabled=not quiet, every=max(1, steps // 4)))
    result, code = run_for_cli(trainer, resume_hint="(nothing saved; run again)")
    if code is not None:
        return None, code
    return _to_float64(model), f"{result.step} steps of Adam here (lr {ks.lr:g}, batch {ks.batch_size})"


def _to_float64(model):
    """The same model in float64 (the measurement needs the range: RNN gradients reach 1e-30 and below)."""
    c = model.config
    c["dtype"] = "float64"
    m = LSTMModel(**c)
    m.params.update({k: v.astype(np.float64) for k, v in model.params.items()})
    return m


def run_gradients(s: AddingSettings, *, out="runs/gradients", source="runs/adding", train_steps=1000,
                  batch=256, overwrite=False, plot=True, quiet=False, stream=None) -> int:
    """Measure, print the ratios ||dh_1|| / ||dh_T|| (and the c ratios), draw ``out``/flow.png."""
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    s.check()
    check_memory(s.memory_bytes(batch), f"timesteps {s.timesteps}, lstm_size {s.lstm_size}, batch {batch}, "
                                        f"batch_size {s.batch_size}")
    with Outputs("demo.py gradients") as outputs:
        png = Path(out) / "flow.png"
        if plot:
            outputs.claim(png, "png", overwrite=overwrite)
        return _run(s, outputs, png, source, train_steps, batch, plot, quiet, stream)


def _run(s, outputs, png, source, train_steps, batch, plot, quiet, stream):
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    x, y = adding_batch(batch, s.timesteps, np.random.default_rng([s.seed, 2]), np.float64)
    say(f"gradient flow: loss on step T = {s.timesteps} of the adding problem, {batch} sequences, "
        f"H = {s.lstm_size}, one layer + dense head, float64")
    curves, learned = {}, {}
    for cell in CELLS:
        init = LSTMModel(2, s.lstm_size, 1, seed=s.seed, dtype=np.float64, cell=cell)
        curves[(cell, "at initialisation")] = gradient_norms(init, x, y)
        say(f"{NAMES[cell]} after training: ...")
        trained, how = _trained(cell, s, source, train_steps, quiet, stream)
        if trained is None:
            return how
        say(f"  {how}")
        mse = test_mse(trained, s)
        say(f"  test MSE {mse:.3g} on {TEST_SIZE} fresh sequences (baseline, always predict 1: {BASELINE:.3f})")
        if not mse < LEARNED:
            say(f"  warning: the {NAMES[cell]} has not learned the task (test MSE {mse:.3g}, not below {LEARNED:g}): "
                f"its 'after training' curve is that of a cell that has not learned to remember")
        learned[cell] = mse
        curves[(cell, "after training")] = gradient_norms(trained, x, y)
        if cell == "rnn":
            for label, m in (("at initialisation", init), ("after training", trained)):
                Wh = m.params["rnn.0.Wh"]
                say(f"  RNN W_h {label}: largest singular value {np.linalg.norm(Wh, 2):.3f}, spectral radius "
                    f"{np.abs(np.linalg.eigvals(Wh)).max():.3f}  (V2)")
    lines, status = [], 0
    for (cell, when), (dh, dc) in curves.items():
        text = f"{NAMES[cell] + ' ' + when + ':':<32} ||dh_1|| / ||dh_T|| = {dh[0] / dh[-1]:.3g}"  # (V2)
        if dc is not None:
            text += f"   ||dc_1|| / ||dc_T|| = {dc[0] / dc[-1]:.3g}"
        lines.append(text)
    if plot:
        from .plots import PlotsUnavailable

        from .sine import plot_failed

        try:
            say(f"plot: {plot_flow(png, curves, learned, outputs)}")
        except PlotsUnavailable as exc:
            say(f"plot skipped: {exc}")
        except (OSError, ValueError) as exc:
            status = plot_failed(exc, None)
    for text in lines:
        print(text, file=stream, flush=True)
    return status


def test_mse(model, s: AddingSettings) -> float:
    """The model's MSE on the adding demo's test set (TEST_SIZE fresh sequences, as ``demo.py adding`` scores)."""
    x, y = adding_batch(TEST_SIZE, s.timesteps, np.random.default_rng([s.seed, 1]), model.dtype)
    return float(model.evaluate(x, y)[0])


def plot_flow(path, curves, learned=None, outputs=None):
    """Two panels, each on its own log scale: the LSTM's ||dh_t|| and ||dc_t||, and the RNN's ||dh_t||, where
    a gradient that underflows float64 to exactly 0 is marked at the bottom edge."""
    from .plots import _figure, _save

    learned = learned or {}
    fig, ax0 = _figure(8.8, 4.6)
    fig.clear()
    panels = dict(zip(CELLS, fig.subplots(1, len(CELLS))))
    styles = {"at initialisation": "--", "after training": "-"}
    colours = {"dh": "#1f77b4", "dc": "#2ca02c", "rnn": "#d62728"}
    for (cell, when), (dh, dc) in curves.items():
        ax = panels[cell]
        t = np.arange(1, dh.size + 1)
        tag = when
        if when == "after training" and cell in learned and not learned[cell] < LEARNED:
            tag += " (not learned)"
        colour = colours["rnn" if cell == "rnn" else "dh"]
        pos = dh > 0
        ax.plot(t[pos], dh[pos], styles[when], color=colour, label=f"$\\|\\delta h_t\\|$, {tag}")
        if dc is not None:
            ax.plot(t, dc, styles[when], color=colours["dc"], label=f"$\\|\\delta c_t\\|$, {tag}")
        if (~pos).any():  # exactly 0: below the smallest float64, no point on a log axis
            last = int(t[~pos].max())
            ax.axvspan(0.5, last + 0.5, color="#d62728", alpha=0.08, lw=0)
            ax.text(last / 2, 0.03, f"exactly 0 for t <= {last}\n(underflows float64)", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9, color="#a00000")
    for cell, ax in panels.items():
        ax.set_yscale("log")
        ax.set_xlabel("timestep t (the loss is on the last one)", fontsize=10)
        ax.set_title(f"{NAMES[cell]}: gradient norm at each step", fontsize=11)
        ax.legend(loc="lower right" if cell == "rnn" else "best", fontsize=9)
        ax.tick_params(labelsize=9)
    panels[CELLS[0]].set_ylabel("mean over the batch of the norm", fontsize=10)
    return _save(fig, path, outputs=outputs)
