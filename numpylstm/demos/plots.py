"""PNG plots with matplotlib's Agg renderer: no screen, no pyplot, no global backend switch.

matplotlib is imported only when a plot is drawn (it is an optional dependency: ``pip install
numpylstm[plot]``); ``PlotsUnavailable`` says so when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PlotsUnavailable", "plot_predictions", "plot_loss", "plot_error", "centred_mean"]


class PlotsUnavailable(ImportError):
    pass


def _figure(width=8.0, height=4.0):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable("plots need matplotlib: pip install 'numpylstm[plot]' (or matplotlib)") from exc
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path, dpi=100, outputs=None) -> Path:
    """Write ``fig`` as a PNG at ``path``: through ``outputs`` (``numpylstm._files.Outputs``: the file rule of
    the command, decided now) when given, else atomically (never a 0-byte or half-written PNG) and marked as
    drawn by numpylstm. Returns the path written."""
    if outputs is not None:
        return outputs.save_figure(fig, path, dpi=dpi)
    from .._files import MARK, atomic_write

    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, metadata={"Software": MARK}))


def plot_predictions(path, t, y_true, y_pred, title="", dpi=100, outputs=None) -> Path:
    """Predicted vs true values over time, and below them the error: t (M,), y_true (M,) or (M, 1), y_pred likewise.

    At a good model's accuracy the two curves coincide, so the lower panel (predicted - true, its own scale)
    is where the picture says something."""
    fig, ax = _figure(8.0, 5.0)
    fig.clear()
    ax, low = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax.plot(t, np.ravel(y_true), label="real sin", linewidth=3, color="#9ecae1")
    ax.plot(t, np.ravel(y_pred), label="predicted", linewidth=1, color="#d62728", linestyle="--")
    ax.set_ylabel("value")
    ax.set_title(title or "test range: next value predicted from the previous T values", loc="left", fontsize=11)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False, fontsize=9)  # off the curve
    err = np.ravel(y_pred) - np.ravel(y_true)
    low.axhline(0.0, color="#888888", linewidth=0.8)
    low.plot(t, err, color="#2ca02c", linewidth=1)
    low.set_xlabel("t")
    low.set_ylabel("predicted - true")
    low.set_title(f"the error (RMSE {float(np.sqrt(np.mean(err ** 2))):.3g})", fontsize=10)
    return _save(fig, path, dpi, outputs)


def centred_mean(values, window):
    """(x, mean): the mean of each run of ``window`` consecutive values, placed at the centre of its run --
    steps 1..n, so the run of steps s..s+window-1 is plotted at s + (window - 1) / 2. Unlike a trailing
    mean (plotted at the run's last step) it does not lag: on a falling curve a trailing mean runs above it.
    Only full windows: the curve starts and ends window / 2 steps in from the ends."""
    v = np.asarray(values, dtype=np.float64)
    w = int(window)
    if v.size < w or w < 1:
        return np.empty(0), np.empty(0)
    mean = np.convolve(v, np.ones(w) / w, mode="valid")
    x = np.arange(1, mean.size + 1) + (w - 1) / 2.0
    return x, mean


def plot_loss(path, losses, window=50, dpi=100, *, evals=None, log=True, ylabel="training loss (MSE)",
              title="training loss", eval_label="validation", hlines=None, outputs=None) -> Path:
    """Training loss per step, with a centred moving mean over ``window`` steps (``centred_mean``: no lag);
    log y-axis unless ``log=False``.

    ``evals``: optional [(step, {"val loss": value}), ...] (``Trainer.evals``), drawn as a second curve.
    ``hlines``: optional {name: loss} of baselines, drawn as labelled dotted horizontal lines.
    """
    losses = np.asarray(losses, dtype=np.float64)
    fig, ax = _figure()
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, linewidth=0.5, color="#bbbbbb", label="per step")
    if losses.size >= window:
        ax.plot(*centred_mean(losses, window), color="#1f77b4", label=f"centred mean of {window} steps")
    if evals:
        ax.plot([s for s, _ in evals], [m["val loss"] for _, m in evals], "o-", color="#d62728", label=eval_label)
    for name, value in (hlines or {}).items():
        ax.axhline(value, color="#555555", linewidth=0.8, linestyle=":")
        ax.text(0.01, value, f"{name} {value:.2f}", transform=ax.get_yaxis_transform(), va="bottom",
                fontsize=8, color="#555555")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right")
    return _save(fig, path, dpi, outputs)


def plot_sine_run(out, t, y_true, y_pred, losses, title=None, outputs=None) -> list[Path]:
    """The sine demos' three PNGs in folder ``out``: predictions, training loss, prediction error."""
    out = Path(out)
    return [plot_predictions(out / "predictions.png", t, y_true, y_pred, title=title, outputs=outputs),
            plot_loss(out / "loss.png", losses, outputs=outputs),
            plot_error(out / "error.png", t, y_true, y_pred, outputs=outputs)]


def plot_error(path, t, y_true, y_pred, dpi=100, outputs=None) -> Path:
    """Prediction error (predicted - true) over time, with its RMSE in the title."""
    err = np.ravel(y_pred) - np.ravel(y_true)
    rmse = float(np.sqrt(np.mean(err**2)))
    fig, ax = _figure()
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.plot(t, err, color="#2ca02c", linewidth=1)
    ax.set_xlabel("t")
    ax.set_ylabel("predicted - true")
    ax.set_title(f"prediction error over the test range (RMSE {rmse:.3g})")
    return _save(fig, path, dpi, outputs)
