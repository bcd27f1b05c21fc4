"""PNG plots with matplotlib's Agg renderer: no screen, no pyplot, no global backend switch.

matplotlib is imported only when a plot is drawn (it is an optional dependency: ``pip install
numpylstm[plot]``); ``PlotsUnavailable`` says so when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PlotsUnavailable", "plot_predictions", "plot_loss", "plot_error"]


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


def _save(fig, path, dpi=100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_predictions(path, t, y_true, y_pred, title="", dpi=100) -> Path:
    """Predicted vs true values over time: t (M,), y_true (M,) or (M, 1), y_pred likewise."""
    fig, ax = _figure()
    ax.plot(t, np.ravel(y_true), label="real sin", linewidth=3, color="#9ecae1")
    ax.plot(t, np.ravel(y_pred), label="predicted", linewidth=1, color="#d62728", linestyle="--")
    ax.set_xlabel("t")
    ax.set_ylabel("value")
    ax.set_title(title or "test range: next value predicted from the previous T values")
    ax.legend(loc="upper right")
    return _save(fig, path, dpi)


def plot_loss(path, losses, window=50, dpi=100, *, evals=None, log=True, ylabel="training loss (MSE)",
              title="training loss", eval_label="validation", hlines=None) -> Path:
    """Training loss per step, with a moving average over ``window`` steps; log y-axis unless ``log=False``.

    ``evals``: optional [(step, {"val loss": value}), ...] (``Trainer.evals``), drawn as a second curve.
    ``hlines``: optional {name: loss} of baselines, drawn as labelled dotted horizontal lines.
    """
    losses = np.asarray(losses, dtype=np.float64)
    fig, ax = _figure()
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, linewidth=0.5, color="#bbbbbb", label="per step")
    if losses.size >= window:
        avg = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], avg, color="#1f77b4", label=f"mean of {window} steps")
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
    return _save(fig, path, dpi)


def plot_sine_run(out, t, y_true, y_pred, losses, title=None) -> list[Path]:
    """The sine demos' three PNGs in folder ``out``: predictions, training loss, prediction error."""
    out = Path(out)
    return [plot_predictions(out / "predictions.png", t, y_true, y_pred, title=title),
            plot_loss(out / "loss.png", losses),
            plot_error(out / "error.png", t, y_true, y_pred)]


def plot_error(path, t, y_true, y_pred, dpi=100) -> Path:
    """Prediction error (predicted - true) over time, with its RMSE in the title."""
    err = np.ravel(y_pred) - np.ravel(y_true)
    rmse = float(np.sqrt(np.mean(err**2)))
    fig, ax = _figure()
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.plot(t, err, color="#2ca02c", linewidth=1)
    ax.set_xlabel("t")
    ax.set_ylabel("predicted - true")
    ax.set_title(f"prediction error over the test range (RMSE {rmse:.3g})")
    return _save(fig, path, dpi)
