"""The sine model's free-running forecast: ``python demo.py --rollout K`` (and ``demo.py inside --rollout K``).

The model was trained to predict one value from T true values. Free-running, it starts from a true test
window and then feeds its own predictions back in: each new window drops its oldest value and appends the
model's last prediction (W1), for K steps. Errors compound: a small error in one prediction is part of every
later input, and the model never saw its own, slightly wrong, outputs as input during training
(docs/sine.md, "Free-running forecast"; derivations/05_head_losses.md, 5.5).

``rollout`` runs every start window at once (one batch), so the error against the horizon is an average over
many starting points; the figure shows one of them against the truth, and that average against the horizon.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["rollout", "sine_truth", "horizon_rmse", "report_rollout", "plot_rollout", "HORIZONS"]

HORIZONS = (1, 10, 100)  # printed, with K itself


def rollout(model, windows, K):
    """Free-running forecast of a head "last" model with one input feature.

    windows (N, T, 1): the true starting windows. Returns (N, K): entry [n, k-1] is the prediction k steps
    after window n's last true value, made from the model's own earlier predictions (no true value after
    the start is ever used).
    """
    w = np.array(windows, dtype=model.dtype, copy=True)
    if w.ndim != 3 or w.shape[2] != 1:
        raise ValueError(f"windows must have shape (N, T, 1); got {w.shape}")
    if model.head != "last":
        raise ValueError(f"a rollout needs a head 'last' model (one prediction per window); got head {model.head!r}")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K (the rollout length) must be an integer >= 1; got {K!r}")
    out = np.empty((w.shape[0], int(K)), dtype=np.float64)
    for k in range(int(K)):
        y, _ = model.forward(w)  # y (N, 1): the next value from the current window
        out[:, k] = y[:, 0]
        w = np.concatenate([w[:, 1:], y[:, None, :].astype(w.dtype)], axis=1)  # (W1) shift in the prediction
    return out


def sine_truth(t_first, dt, K):
    """The true continuation: (N, K) with sin(t_first[n] + k dt), k = 0..K-1 (t_first: the first target's t)."""
    return np.sin(np.asarray(t_first, np.float64)[:, None] + dt * np.arange(K)[None, :])


def horizon_rmse(pred, truth):
    """(K,): the root mean square over the start windows of the error k steps ahead, k = 1..K."""
    return np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2, axis=0))


def report_rollout(model, data, K, *, window=500, png=None, say=print, outputs=None):
    """Roll out from every test window (one batch), print the RMSE at 1, 10, 100 and K steps, draw ``png``.

    ``data``: the demo's ``SineData``; ``window``: the test window drawn in the figure; ``outputs``: the
    command's ``numpylstm._files.Outputs`` (the file was claimed before training), or None. A figure that
    cannot be written is one line on stderr; the errors are printed all the same. Returns the (K,) RMSE.
    """
    M = data.test_x.shape[0]
    if not 0 <= window < M:
        raise ValueError(f"--window must be in [0, {M - 1}] (a test window); got {window}")
    dt = float(data.test_t[1] - data.test_t[0]) if M > 1 else 0.01
    pred = rollout(model, data.test_x, K)
    truth = sine_truth(data.test_t, dt, K)
    err = horizon_rmse(pred, truth)
    # the "no model" forecast: the last true value, held for all K steps
    last = np.asarray(data.test_x[:, -1, 0], np.float64)[:, None]
    hold = horizon_rmse(np.broadcast_to(last, truth.shape), truth)
    shown = [k for k in HORIZONS if k < K] + [K]
    say(f"free-running forecast: {K} steps from each of the {M} test windows, on its own predictions")
    say("  RMSE k steps ahead:           " + ", ".join(f"k={k}: {err[k - 1]:.3g}" for k in shown))
    say("  holding the last true value:  " + ", ".join(f"k={k}: {hold[k - 1]:.3g}" for k in shown))
    if png is not None:
        from .plots import PlotsUnavailable

        try:
            say(f"  rollout plot: "
                f"{plot_rollout(png, data, window, pred[window], truth[window], err, hold, dt, outputs=outputs)}")
        except PlotsUnavailable as exc:
            say(f"  rollout plot skipped: {exc}")
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"error: could not write the plot {png} ({why})", file=sys.stderr, flush=True)
    return err


def plot_rollout(path, data, window, pred, truth, err, hold, dt, outputs=None):
    """Two panels: window ``window``'s rollout against the truth, and the RMSE against the horizon."""
    from .plots import PlotsUnavailable, _save

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable("plots need matplotlib: pip install 'numpylstm[plot]' (or matplotlib)") from exc
    K = len(pred)
    fig = Figure(figsize=(8.8, 6.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)
    x = np.asarray(data.test_x[window, :, 0], np.float64)
    T = x.size
    t0 = float(data.test_t[window])
    top.plot(t0 + dt * np.arange(-T, 0), x, "o", color="#555555", markersize=3, label=f"input window (T = {T} true values)")
    tk = t0 + dt * np.arange(K)
    top.plot(tk, truth, color="#9ecae1", linewidth=4, label="true continuation")
    top.plot(tk, pred, "--", color="#d62728", linewidth=1.5, label="free-running forecast")
    top.set_xlabel("t")
    top.set_ylabel("value")
    top.set_title(f"test window {window}: the model's own predictions fed back for {K} steps", fontsize=11)
    top.legend(loc="best", fontsize=9)
    k = np.arange(1, K + 1)
    bottom.plot(k, err, color="#d62728", label="free-running forecast")
    bottom.plot(k, hold, ":", color="#555555", label="holding the last true value")
    bottom.set_xscale("log")
    bottom.set_yscale("log")
    bottom.set_xlabel("steps ahead k (log scale)")
    bottom.set_ylabel("RMSE over all test windows")
    bottom.set_title(f"error against horizon ({data.test_x.shape[0]} start windows)", fontsize=11)
    bottom.legend(loc="lower right", fontsize=9)
    for ax in (top, bottom):
        ax.tick_params(labelsize=9)
    return _save(fig, path, outputs=outputs)
