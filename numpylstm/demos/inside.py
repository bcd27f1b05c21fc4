"""Inside the sine model: ``python demo.py inside`` draws every gate, the cell and hidden states for one window.

The sine model's weights (a ``demo.py sine`` checkpoint, or a fresh default run trained here) are run through
``textbook.lstm_forward`` layer by layer on one test window; its step caches hold the gate activations
i_t, f_t, o_t (F2) and g_t (F3), from which c_t (F4) and h_t (F5) follow. One row of heatmaps per layer
(units x timesteps) and the window with its prediction go into ``runs/sine/inside.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .._files import Outputs
from ..checkpoint import check_replaceable, model_from_checkpoint, read_checkpoint
from ..textbook import lstm_forward
from ..train import Progress, SaveOnStop, run_for_cli
from .data import sine_data
from .sine import SineSettings, build, settings_from_checkpoint

__all__ = ["layer_activations", "run_inside"]

PANELS = ("i", "f", "g", "o", "c", "h")


def layer_activations(model, x):
    """Run ``model`` (float input, no dropout) on x (N, T, D) with the textbook layer, keeping everything.

    Returns (y (N, O), layers): layers[l] is a dict of (N, T, H) arrays "i", "f", "g", "o", "c", "h".
    """
    P, inp, layers = model.params, np.asarray(x, model.dtype), []
    for l in range(model.num_layers):
        hs, _, cache = lstm_forward(inp, None, None, P[f"lstm.{l}.Wx"], P[f"lstm.{l}.Wh"], P[f"lstm.{l}.b"])
        got = {k: np.stack([step[5 + j] for step in cache], axis=1) for j, k in enumerate("ifgo")}
        c_prev = np.stack([step[2] for step in cache], axis=1)
        got["c"] = got["f"] * c_prev + got["i"] * got["g"]  # (F4) c_t = f_t c_{t-1} + i_t g_t
        got["h"] = hs  # (F5)
        layers.append(got)
        inp = hs  # (S1)
    y = inp[:, -1] @ P["head.W"] + P["head.b"]  # (H1)
    return y, layers


def _unfinished(path, s):
    """The step of an 'inside' model at ``path`` that stopped before the end of its training, else None."""
    try:
        ck = read_checkpoint(path)
        info = ck.user.get("trainer") or {}
        if settings_from_checkpoint(path) == s and ck.step < info.get("total_steps", -1):
            return ck.step
    except (OSError, ValueError):
        pass
    return None


def _model(checkpoint, out, overwrite, quiet, stream, outputs):
    """(model, settings, description, trainer) from a checkpoint, or trained here with the default settings
    (continuing DIR/inside.npz when an earlier 'inside' run stopped before the end of its training).

    Returns (None, exit code, None, None) when training ended early (Ctrl-C, divergence).
    """
    if checkpoint is not None:
        s = settings_from_checkpoint(checkpoint)
        model, ck = model_from_checkpoint(checkpoint)
        if model.cell != "lstm":  # layer_activations walks textbook.py's LSTM
            raise ValueError(f"{checkpoint} holds a sine model of cell {model.cell!r}; this picture draws the gates "
                             "of the standard LSTM (cell 'lstm') only")
        return model, s, f"{checkpoint} (step {ck.step})", None
    s = SineSettings()
    ckpt = Path(out) / "inside.npz"
    at = None if overwrite else _unfinished(ckpt, s)
    if ckpt.exists() and not overwrite and at is None:
        raise ValueError(f"{ckpt} exists (the model of an earlier 'inside' run): reuse it with --checkpoint "
                         f"{ckpt}, or pass --overwrite to train a new one")
    check_replaceable(ckpt, overwrite=overwrite or at is not None, flag=f"--out {out}: the model")  # never a
    outputs.claim(ckpt, "checkpoint", overwrite=overwrite, own=ckpt if at is not None else None,  # foreign file
                  flag=f"--out {out}: the model")
    progress = Progress(s.steps, stream=stream, enabled=not quiet, every=max(1, s.steps // 10))
    _, model, trainer = build(s, progress, checkpoint_path=ckpt, interrupt_path=ckpt, outputs=outputs)
    if at is not None:
        trainer.resume(ckpt)
        if not quiet:
            print(f"continuing the unfinished model in {ckpt} from step {at}", file=stream, flush=True)
    again = "python demo.py inside" + ("" if Path(out) == Path("runs/sine") else f" --out {out}")
    result, code = run_for_cli(trainer, resume_hint=again + " (it continues {checkpoint}, then draws)")
    if code is not None:
        return None, code, None, None
    return model, s, f"the default sine model trained here ({result.step} steps), saved to {ckpt}", trainer


def run_inside(*, checkpoint=None, out="runs/sine", window=500, overwrite=False, quiet=False, stream=None,
               rollout=None) -> int:
    """Draw DIR/inside.png (see the module docstring). The picture and a model trained here follow the file rule
    of ``numpylstm._files`` (an existing inside.png only with ``overwrite``; written atomically). ``rollout``: K,
    to also forecast K steps free-running (``rollout.report_rollout``, DIR/rollout.png under the same rule)."""
    with Outputs("demo.py inside") as outputs:
        png = Path(out) / "inside.png"
        outputs.claim(png, "png", overwrite=overwrite)
        if rollout:
            outputs.claim(Path(out) / "rollout.png", "png", overwrite=overwrite)
        model, s, how, trainer = _model(checkpoint, out, overwrite, quiet, stream, outputs)
        if model is None:
            return s
        if trainer is None:
            return _draw(model, s, how, png, window, quiet, stream, outputs, rollout)
        with SaveOnStop(trainer, trainer.checkpoint_path, "python demo.py inside --checkpoint {checkpoint}",
                        doing="drawing") as stop:
            status = _draw(model, s, how, png, window, quiet, stream, outputs, rollout)
        return status if stop.code is None else stop.code


def _draw(model, s, how, png, window, quiet, stream, outputs, rollout=None):
    stream = sys.stdout if stream is None else stream
    say = (lambda *a: None) if quiet else (lambda text="": print(text, file=stream, flush=True))
    data = sine_data(s.training_examples, s.testing_examples, s.sample_gap, s.timesteps, dtype=s.dtype)
    if not 0 <= window < data.test_x.shape[0]:
        raise ValueError(f"--window must be in [0, {data.test_x.shape[0] - 1}] (a test window); got {window}")
    x = data.test_x[window:window + 1]
    y, layers = layer_activations(model, x)
    ref = model.forward(x)[0]
    if not np.allclose(y, ref, rtol=1e-4, atol=1e-5):  # the textbook walk is the model, or the picture lies
        raise RuntimeError(f"textbook forward {y.ravel()} differs from the model's {ref.ravel()}")
    say(f"inside the sine model: {how}; {s.lstm_layers} layers x {s.lstm_size} units, test window {window} "
        f"(T = {s.timesteps})")
    for l, acts in enumerate(layers):
        means = "  ".join(f"mean {k} {acts[k].mean():.2f}" for k in "ifo")
        say(f"  layer {l}: {means}  |c| max {np.abs(acts['c']).max():.2f}")
    from .plots import PlotsUnavailable

    try:
        path = plot_inside(png, x[0, :, 0], float(data.test_y[window, 0]), float(y[0, 0]), layers,
                           data.test_t[window], s.sample_gap, outputs)
    except PlotsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        from .sine import plot_failed

        return plot_failed(exc, None)
    if rollout:
        from .rollout import report_rollout

        report_rollout(model, data, rollout, window=window, png=png.parent / "rollout.png", say=say, outputs=outputs)
    print(f"prediction {float(y[0, 0]):.6f}, target {float(data.test_y[window, 0]):.6f}; plot: {path}",
          file=stream, flush=True)
    return 0


def plot_inside(path, window, target, pred, layers, t_target, gap, outputs=None):
    from .plots import _save

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        from .plots import PlotsUnavailable

        raise PlotsUnavailable("plots need matplotlib: pip install 'numpylstm[plot]' (or matplotlib)") from exc
    L = len(layers)
    T, H = layers[0]["h"].shape[1:]
    # 8.8 in at 100 dpi = 880 px, GitHub's column: nothing is scaled down, so 9 pt text stays 12.5 px high.
    # Each layer takes two rows of three panels: the gates i, f, o (0..1), then g, c, h (signed).
    fig = Figure(figsize=(8.8, 2.1 * 2 * L + 2.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 * L + 1, 3, height_ratios=[1.0] * (2 * L) + [1.1])
    titles = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o",
              "c": "cell state c", "h": "hidden state h"}
    order = ("i", "f", "o", "g", "c", "h")
    for l, acts in enumerate(layers):
        for j, k in enumerate(order):
            ax = fig.add_subplot(grid[2 * l + j // 3, j % 3])
            a = acts[k][0].T  # (H, T): units down, time across
            if k in "ifo":
                im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                lim = 1.0 if k in "gh" else max(1.0, float(np.abs(a).max()))
                im = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            bar = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.02)
            bar.ax.tick_params(labelsize=9)
            ax.set_title(f"layer {l}: {titles[k]}", fontsize=10)
            if j // 3 == 1:
                ax.set_xlabel("timestep t", fontsize=9)
            if j % 3 == 0:
                ax.set_ylabel("unit", fontsize=9)
            ax.tick_params(labelsize=9)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax = fig.add_subplot(grid[2 * L, :])
    ts = t_target - gap * np.arange(T, 0, -1)
    ax.plot(ts, window, "o-", color="#9ecae1", label="input window (T values of sin)")
    ax.plot([t_target], [target], "s", color="#333333", markersize=8, label=f"target {target:.4f}")
    ax.plot([t_target], [pred], "x", color="#d62728", markersize=12, mew=2, label=f"prediction {pred:.4f}")
    ax.set_xlabel("t (the curve's abscissa)", fontsize=9)
    ax.set_ylabel("sin t", fontsize=9)
    ax.tick_params(labelsize=9)
    ax.set_title("the window, its next value and the model's prediction (from h_T of the top layer)", fontsize=10)
    ax.legend(loc="best", fontsize=9)
    return _save(fig, path, outputs=outputs)
