"""Draw the figures of derivations/: the unrolled sine model, one LSTM cell forward, the same cell backward,
one GRU cell forward.

Run from the repository root:  python derivations/scripts/figures.py [--out DIR]
Writes unrolled_sine.svg, cell_forward.svg, cell_backward.svg, gru_cell.svg and a PNG of each into DIR (default
derivations/figures/). Matplotlib with the Agg backend only; nothing is downloaded.

Every figure is 11 inches wide with fonts of at least 10.5 pt, so text stays at least 11 px high when GitHub
scales the figure to its ~880 px column (10.5 / 72 * 880 / 11 = 11.7 px). Each equation label drawn, e.g.
"(F4)", is one defined in derivations/*.md; tests/test_figures.py checks both.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "figures"
WIDTH_IN = 11.0  # figure width in inches; GitHub's column is ~880 px
MIN_PT = 10.5  # smallest font size used anywhere
COLUMN_PX = 880
LABEL_RE = re.compile(r"\(([A-Z]\d+)\)")

FWD = "#1f4e79"  # forward arrows
BWD = "#b22222"  # backward arrows
STATE = "#2e7d32"  # the cell-state highway
GREY = "#555555"
FILL = {"cell": "#e8f0fb", "gate": "#fff4d6", "op": "#ffffff", "io": "#f2f2f2", "layer": "#f7f9fc",
        "bwd": "#fdecea", "note": "#fffbe6"}

plt.rcParams.update({"svg.fonttype": "path", "font.size": 12, "mathtext.fontset": "dejavusans",
                     "svg.hashsalt": "numpylstm"})  # fixed ids: the SVGs only change when a figure does


# ----------------------------------------------------------------------------------------- primitives


def new_figure(height_in, xmax=110.0):
    """A figure WIDTH_IN wide whose data coordinates run 0..xmax horizontally with square units."""
    fig = plt.figure(figsize=(WIDTH_IN, height_in))
    ax = fig.add_axes((0, 0, 1, 1))
    ymax = xmax * height_in / WIDTH_IN
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def text(ax, x, y, s, size=12, color="black", ha="center", va="center", **kw):
    assert size >= MIN_PT, f"font {size} pt < {MIN_PT} pt: unreadable at GitHub's column width"
    return ax.text(x, y, s, fontsize=size, color=color, ha=ha, va=va, zorder=5, **kw)


def box(ax, x, y, w, h, s="", fill="cell", edge=GREY, size=12, lw=1.3, round_=1.0, **kw):
    """A rounded box centred on (x, y), width w and height h (data units), with centred text."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={round_}",
                                fc=FILL.get(fill, fill), ec=edge, lw=lw, zorder=2))
    if s:
        text(ax, x, y, s, size=size, **kw)


def op(ax, x, y, sym, r=2.0, edge=GREY, size=15):
    """A round node for an elementwise operation (⊙, +)."""
    ax.add_patch(Circle((x, y), r, fc="white", ec=edge, lw=1.5, zorder=3))
    text(ax, x, y, sym, size=size)


def arrow(ax, p0, p1, color=FWD, lw=1.6, style="-|>", rad=0.0, ms=14, shrink=0.0, ls="-"):
    ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle=style, mutation_scale=ms, color=color, lw=lw, ls=ls,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=shrink, shrinkB=shrink, zorder=1))


def line(ax, pts, color=FWD, lw=1.6, ls="-"):
    xs, ys = zip(*pts)
    ax.plot(xs, ys, color=color, lw=lw, ls=ls, zorder=1, solid_capstyle="butt")


def path_arrow(ax, pts, color=FWD, lw=1.6, ms=14):
    """A polyline through pts whose last segment ends in an arrow head."""
    if len(pts) > 2:
        line(ax, pts[:-1], color=color, lw=lw)
    arrow(ax, pts[-2], pts[-1], color=color, lw=lw, ms=ms)


# ---------------------------------------------------------------------------------- unrolled sine model


def draw_unrolled_sine():
    """The 2-layer sine model unrolled over T = 20 steps: time left to right, layer 0 below layer 1."""
    fig, ax = new_figure(8.6, xmax=116.0)
    cols = {1: 30.0, 2: 50.0, "dots": 65.0, 20: 80.0}
    y_in, y0, y1, y_out = 5.0, 24.0, 54.0, 76.0
    cw, ch = 11.0, 7.0

    # input row
    box(ax, 55, y_in, 64, 5.5, "x : (64, 20, 1) = (N, T, D);   $x_t$ = x[:, t-1, :]", fill="io", size=12)

    for y, lay, wx in ((y0, 0, "(1, 80)"), (y1, 1, "(20, 80)")):
        ax.add_patch(FancyBboxPatch((18.5, y - 5.5), 69, 14.5, boxstyle="round,pad=0,rounding_size=1.5",
                                    fc=FILL["layer"], ec="#9db3d1", lw=1.0, ls="--", zorder=0))
        text(ax, 20, y + 7.2, f"layer {lay}: one cell, the same $W_x$ {wx}, $W_h$ (20, 80), b (80,) at every t",
             size=11, color="#33506e", ha="left",
             bbox={"fc": FILL["layer"], "ec": "none", "pad": 1.5})
        box(ax, 8, y, 13, 8, "$h_0 = c_0 = 0$\n(64, 20) each", fill="io", size=10.5)
        arrow(ax, (14.5, y), (cols[1] - cw / 2, y))
        for t in (1, 2, 20):
            box(ax, cols[t], y, cw, ch, f"cell\nt = {t}", size=12)
        text(ax, cols["dots"], y, "· · ·", size=16)
        arrow(ax, (cols[1] + cw / 2, y), (cols[2] - cw / 2, y))
        text(ax, (cols[1] + cols[2]) / 2, y - 2.4, "$h_1, c_1$", size=11)
        text(ax, (cols[1] + cols[2]) / 2, y + 2.3, "(64, 20)", size=10.5, color=GREY)
        arrow(ax, (cols[2] + cw / 2, y), (cols["dots"] - 3, y))
        text(ax, (cols[2] + cols["dots"]) / 2 + 1, y - 2.4, "$h_2, c_2$", size=11)
        arrow(ax, (cols["dots"] + 3, y), (cols[20] - cw / 2, y))
        text(ax, (cols["dots"] + cols[20]) / 2 - 1.5, y - 2.4, "$h_{19}, c_{19}$", size=11)

    for t in (1, 2, 20):
        x = cols[t]
        arrow(ax, (x, y_in + 2.75), (x, y0 - ch / 2))
        arrow(ax, (x, y0 + ch / 2), (x, y1 - ch / 2))
        arrow(ax, (x, y1 + ch / 2), (x, y_out - 3))
    for t, lab in ((1, "$x_1$ : (64, 1)"), (2, "$x_2$"), (20, "$x_{20}$")):
        text(ax, cols[t] + 1, 13.0, lab, size=11, ha="left")
    for t, lab in ((1, "dropout($h_1$) : (64, 20)\n(D1), layer 0's output"), (2, "dropout($h_2$)"),
                   (20, "dropout($h_{20}$)")):
        text(ax, cols[t] + 1, 39.0, lab, size=11, ha="left")
    text(ax, cols[1] + 1, 67.2, "dropout($h_1$) : (64, 20)", size=11, ha="left")

    # outputs, and the head on the last step
    box(ax, 55, y_out, 64, 6, "outputs = dropout($h_t$) of layer 1, all t : (64, 20, 20) = (N, T, H)",
        fill="io", size=12)
    box(ax, 104, y_out, 15, 9, "dense head (H1)\n$W$ (20, 1), $b$ (1,)", fill="gate", size=11)
    arrow(ax, (87, y_out), (96.5, y_out))
    text(ax, 96.5, y_out - 7.6, "outputs[:, -1, :] = $h_{20}$ : (64, 20)", size=11, ha="center")
    box(ax, 104, y_out + 11.5, 15, 4.5, "prediction (64, 1)", fill="io", size=11)
    arrow(ax, (104, y_out + 4.5), (104, y_out + 9.25))

    # final state
    yf = (y0 + y1) / 2
    box(ax, 103, yf, 17, 14, "final_state\n(2, 2, 64, 20)\n= ($n_{layers}$, 2, N, H)\n[layer][0 = c, 1 = h]",
        fill="note", size=11)
    arrow(ax, (cols[20] + cw / 2, y0), (94.5, yf - 4), color=STATE)
    arrow(ax, (cols[20] + cw / 2, y1), (94.5, yf + 4), color=STATE)
    text(ax, 88.5, y0 - 2.0, "$c_{20}, h_{20}$", size=10.5, color=STATE, ha="left")
    text(ax, 88.5, y1 + 2.0, "$c_{20}, h_{20}$", size=10.5, color=STATE, ha="left")
    return fig


# ------------------------------------------------------------------------------------------- one cell

# shared geometry of the forward and the backward cell
HWY = 50.0  # y of the cell-state highway
GX = {"f": 40.0, "i": 54.0, "g": 66.0, "o": 82.0}  # x of each gate
GY = 27.0  # y of the gate boxes
AFF = (61.0, 9.0, 58.0, 7.0)  # the fused affine box: centre x, centre y, width, height
MUL_F, ADD, MUL_IG = (40.0, HWY), (60.0, HWY), (60.0, 38.0)
TANH_C, MUL_O = (90.0, 42.0), (90.0, 33.0)


def _cell_frame(ax, color):
    ax.add_patch(FancyBboxPatch((14, 2.5), 84, 55, boxstyle="round,pad=0,rounding_size=2.5", fc="#fbfcfe",
                                ec="#9db3d1", lw=1.2, zorder=0))
    text(ax, 95.5, 55.2, "one step t", size=11, color="#33506e", ha="right")


def draw_cell_forward():
    """One LSTM cell, forward: (F1) the fused affine map, (F2)/(F3) the gates, (F4) the new cell state, (F5)."""
    fig, ax = new_figure(6.2)
    _cell_frame(ax, FWD)

    # inputs
    box(ax, 6, HWY, 11, 7, "$c_{t-1}$\n(N, H)", fill="io", size=11.5)
    box(ax, 6, 14, 11, 7, "$h_{t-1}$\n(N, H)", fill="io", size=11.5)
    box(ax, 6, 4.5, 11, 7, "$x_t$\n(N, D)", fill="io", size=11.5)
    text(ax, 6, HWY + 5.2, "from step t-1", size=10.5, color=GREY)
    arrow(ax, (11.5, 4.5), (AFF[0] - AFF[2] / 2, 7.0))
    arrow(ax, (11.5, 14), (AFF[0] - AFF[2] / 2, 11.0))

    # (F1)
    box(ax, *AFF, r"(F1)   $a_t = x_t W_x + h_{t-1} W_h + b$   (N, 4H):  blocks $a^i \,|\, a^f \,|\, a^g \,|\, a^o$",
        fill="cell", size=12)

    # gates
    gate = {"f": (r"$\sigma$", "(F2)", "$f_t$"), "i": (r"$\sigma$", "(F2)", "$i_t$"),
            "g": ("tanh", "(F3)", "$g_t$"), "o": (r"$\sigma$", "(F2)", "$o_t$")}
    for k, (fn, lab, out) in gate.items():
        x = GX[k]
        arrow(ax, (x, AFF[1] + AFF[3] / 2), (x, GY - 3))
        text(ax, x + 0.8, 15.8, f"$a^{k}_t$", size=11, ha="left")
        box(ax, x, GY, 8, 6, fn, fill="gate", size=13)
        text(ax, x - 1.0, GY - 5.2, lab, size=10.5, color=GREY, ha="right")
        text(ax, x + (0.9 if k != "i" else -0.9), GY + 4.8, out, size=12, ha="left" if k != "i" else "right")

    # cell-state highway: c_{t-1} -> (x) f_t -> (+) -> c_t
    line(ax, [(11.5, HWY), (MUL_F[0] - 2, HWY)], color=STATE, lw=3)
    op(ax, *MUL_F, "⊙", edge=STATE)
    line(ax, [(MUL_F[0] + 2, HWY), (ADD[0] - 2, HWY)], color=STATE, lw=3)
    op(ax, *ADD, "+", edge=STATE)
    arrow(ax, (ADD[0] + 2, HWY), (104, HWY), color=STATE, lw=3, ms=18)
    text(ax, 106, HWY, "$c_t$", size=13, ha="left")
    text(ax, 104, HWY - 3.2, "to step t+1", size=10.5, color=GREY, ha="right")
    text(ax, MUL_F[0] - 2.5, HWY + 3.2, r"(F4)  $f_t \odot c_{t-1}$", size=11, ha="right", color=STATE)
    text(ax, ADD[0] + 2.5, HWY + 3.2, r"(F4)  $c_t = f_t \odot c_{t-1} + i_t \odot g_t$", size=11, ha="left",
         color=STATE)

    # f_t up to the highway
    arrow(ax, (GX["f"], GY + 3), (MUL_F[0], MUL_F[1] - 2))
    # i_t and g_t into their product, then up to the sum
    op(ax, *MUL_IG, "⊙")
    arrow(ax, (GX["i"], GY + 3), (MUL_IG[0] - 1.4, MUL_IG[1] - 1.4))
    arrow(ax, (GX["g"], GY + 3), (MUL_IG[0] + 1.4, MUL_IG[1] - 1.4))
    arrow(ax, (MUL_IG[0], MUL_IG[1] + 2), (ADD[0], ADD[1] - 2))
    text(ax, MUL_IG[0] - 2.6, MUL_IG[1] + 0.2, r"(F4)  $i_t \odot g_t$", size=11, ha="right")

    # (F5): tanh(c_t), times o_t
    line(ax, [(TANH_C[0], HWY), (TANH_C[0], TANH_C[1] + 2.2)], color=FWD)
    arrow(ax, (TANH_C[0], HWY - 0.1), (TANH_C[0], TANH_C[1] + 2.4))
    box(ax, TANH_C[0], TANH_C[1], 8, 4.4, "tanh", fill="gate", size=12)
    text(ax, TANH_C[0] + 4.6, TANH_C[1], "(F5)", size=10.5, color=GREY, ha="left")
    arrow(ax, (TANH_C[0], TANH_C[1] - 2.2), (MUL_O[0], MUL_O[1] + 2))
    op(ax, *MUL_O, "⊙")
    arrow(ax, (GX["o"], GY + 3), (MUL_O[0] - 2, MUL_O[1] - 0.4))
    arrow(ax, (MUL_O[0] + 2, MUL_O[1]), (104, MUL_O[1]))
    text(ax, 106, MUL_O[1], "$h_t$", size=13, ha="left")
    text(ax, 104, MUL_O[1] - 3.2, "to step t+1\nand the layer above", size=10.5, color=GREY, ha="right",
         va="top")
    text(ax, MUL_O[0] + 2.6, MUL_O[1] + 2.6, r"(F5)  $h_t = o_t \odot \tanh(c_t)$", size=11, ha="left")
    return fig


def draw_cell_backward():
    """The same cell, backward: (B1), (B2) where the gradients arrive, (B7) along the cell state, (B10)."""
    fig, ax = new_figure(7.4, xmax=124.0)
    C = BWD
    hwy, gy = 66.0, 30.0
    gx = {"f": 40.0, "i": 54.0, "g": 66.0, "o": 80.0}
    mul_f, add_c, mul_ig = (40.0, hwy), (92.0, hwy), (60.0, 48.0)
    tanh_c, mul_o, add_h = (92.0, 55.0), (92.0, 44.0), (108.0, 44.0)
    aff = (56.0, 10.0, 52.0, 7.0)
    ax.add_patch(FancyBboxPatch((15, 2.5), 89, 71, boxstyle="round,pad=0,rounding_size=2.5", fc="#fbfcfe",
                                ec="#9db3d1", lw=1.2, zorder=0))
    text(ax, 17, 71.0, "one step t, backward", size=11, color="#33506e", ha="left")

    # arrivals: dc_t from step t+1 along the highway; dh_t = dhs_t + what step t+1 sends back, (B1)
    box(ax, 115, hwy, 16, 8, "$\\delta c_t$ via step t+1\n(B7) of step t+1", fill="bwd", size=10.5, edge=C)
    box(ax, 117.5, add_h[1], 11, 10, "$\\delta h_t$ via\nstep t+1\n(B10) of\nstep t+1", fill="bwd", size=10.5,
        edge=C)
    box(ax, add_h[0], 28.0, 14, 8, "$\\delta hs_t$ from\nthe layer above\nor the head", fill="bwd",
        size=10.5, edge=C)
    op(ax, *add_h, "+", edge=C)
    arrow(ax, (112, add_h[1]), (add_h[0] + 2, add_h[1]), color=C)
    arrow(ax, (add_h[0], 32), (add_h[0], add_h[1] - 2), color=C)
    text(ax, add_h[0] + 1.2, add_h[1] + 3.4, "(B1)", size=11, color=C, ha="center")

    # dh_t into the product h = o * tanh(c): up through tanh' into (B2), down-left to o as (B3)
    arrow(ax, (add_h[0] - 2, add_h[1]), (mul_o[0] + 2, mul_o[1]), color=C)
    text(ax, 100, add_h[1] - 2.4, "$\\delta h_t$", size=12, color=C)
    op(ax, *mul_o, "⊙", edge=C)
    arrow(ax, (mul_o[0], mul_o[1] + 2), (tanh_c[0], tanh_c[1] - 2.2), color=C)
    box(ax, *tanh_c, 9, 4.4, "tanh'", fill="bwd", size=12, edge=C)
    arrow(ax, (tanh_c[0], tanh_c[1] + 2.2), (add_c[0], add_c[1] - 2), color=C)
    text(ax, tanh_c[0] - 5.2, tanh_c[1] + 0.2, "$\\delta h_t\\, o_t (1 - \\tanh^2 c_t)$", size=10.5, color=C,
         ha="right")
    arrow(ax, (mul_o[0] - 1.8, mul_o[1] - 1), (gx["o"] + 2, gy + 3), color=C)
    text(ax, 85.5, 35.5, "(B3) $\\delta o_t = \\delta h_t \\tanh(c_t)$", size=10.5, color=C, ha="left")

    # the highway backwards: (B2) sum, then (B7) one product with f_t, out to step t-1
    arrow(ax, (107, hwy), (add_c[0] + 2, hwy), color=STATE, lw=3, ms=18)
    op(ax, *add_c, "+", edge=C)
    text(ax, add_c[0] + 2.6, hwy + 3.0, "(B2)", size=11, color=C, ha="left")
    line(ax, [(add_c[0] - 2, hwy), (mul_f[0] + 2, hwy)], color=STATE, lw=3)
    text(ax, 76, hwy + 2.6, "$\\delta c_t$ (total)", size=12, color=STATE)
    op(ax, *mul_f, "⊙", edge=STATE)
    arrow(ax, (mul_f[0] - 2, hwy), (13, hwy), color=STATE, lw=3, ms=18)
    box(ax, 7, hwy, 11, 5, "$\\delta c_{t-1}$", fill="bwd", size=12, edge=C)
    text(ax, 27, hwy - 3.4, "(B7)  $\\delta c_t \\odot f_t$", size=12, color=STATE)
    text(ax, 7, hwy - 4.6, "to step t-1", size=10.5, color=GREY)
    text(ax, 60, 77.5, "the cell-state path back in time: one elementwise product with $f_t$ per step, "
         "no matrix, no squashing", size=11.5, color=STATE)

    # dc_t to the gate gradients
    arrow(ax, (mul_ig[0], hwy), (mul_ig[0], mul_ig[1] + 2), color=C)
    op(ax, *mul_ig, "⊙", edge=C)
    arrow(ax, (mul_ig[0] - 1.4, mul_ig[1] - 1.4), (gx["i"], gy + 3), color=C)
    arrow(ax, (mul_ig[0] + 1.4, mul_ig[1] - 1.4), (gx["g"], gy + 3), color=C)
    text(ax, mul_ig[0] + 2.8, mul_ig[1] + 0.4, "(B4) $\\delta i_t = \\delta c_t\\, g_t$\n"
         "(B6) $\\delta g_t = \\delta c_t\\, i_t$", size=10.5, color=C, ha="left")
    arrow(ax, (mul_f[0], mul_f[1] - 2), (gx["f"], gy + 3), color=C)
    text(ax, mul_f[0] - 1.0, 48.0, "(B5) $\\delta f_t$\n$= \\delta c_t\\, c_{t-1}$", size=10.5, color=C,
         ha="right")

    # through the nonlinearities, (B8) and (B9)
    deriv = {"f": ("$f_t(1-f_t)$", "(B8)"), "i": ("$i_t(1-i_t)$", "(B8)"), "g": ("$1-g_t^2$", "(B9)"),
             "o": ("$o_t(1-o_t)$", "(B8)")}
    for k, (fn, lab) in deriv.items():
        x = gx[k]
        box(ax, x, gy, 11, 6, fn, fill="bwd", size=11, edge=C)
        text(ax, x - 1.0, gy - 5.6, lab, size=10.5, color=C, ha="right")
        arrow(ax, (x, gy - 3), (x, aff[1] + aff[3] / 2), color=C)
        text(ax, x + 0.8, gy - 7.6, f"$\\delta a^{k}_t$", size=11, ha="left", color=C)

    # the fused affine map, backwards: (B10), (B11), and the parameter sums (B12)-(B14)
    box(ax, *aff, "$\\delta a_t = [\\delta a^i_t \\,|\\, \\delta a^f_t \\,|\\, \\delta a^g_t \\,|\\, "
        "\\delta a^o_t]$   (N, 4H)", fill="bwd", size=12, edge=C)
    arrow(ax, (aff[0] - aff[2] / 2, 11.5), (12.5, 21), color=C)
    arrow(ax, (aff[0] - aff[2] / 2, 8.5), (12.5, 6), color=C)
    box(ax, 7, 21, 11, 5, "$\\delta h_{t-1}$", fill="bwd", size=12, edge=C)
    box(ax, 7, 6, 11, 5, "$\\delta x_t$", fill="bwd", size=12, edge=C)
    text(ax, 7, 26.2, "to step t-1", size=10.5, color=GREY)
    text(ax, 16.5, 19.8, "(B10)  $\\delta h_{t-1} = \\delta a_t W_h^\\top$", size=11, color=C, ha="left")
    text(ax, 16.5, 4.4, "(B11)  $\\delta a_t W_x^\\top$", size=11, color=C, ha="left")
    box(ax, 109.5, 10, 28, 13, "(B12)  $\\delta W_x$ += $x_t^\\top \\delta a_t$\n(B13)  $\\delta W_h$ += "
        "$h_{t-1}^\\top \\delta a_t$\n(B14)  $\\delta b$ += $\\delta a_t$ summed over n", fill="note", size=10.5,
        edge="#c9b458")
    arrow(ax, (aff[0] + aff[2] / 2, 10), (95.5, 10), color=C)
    return fig


# ------------------------------------------------------------------------------------------- GRU cell

G_HWY = 50.0  # the h_{t-1} -> h_t line
G_AFF = (53.0, 13.0, 74.0, 9.0)  # centre x, centre y, width, height of the two affine maps (U1), (U2)
G_Z, G_R = (30.0, 30.0), (50.0, 24.0)  # the update and reset gates
G_MUL_R, G_ADD_N, G_TANH = (62.0, 24.0), (74.0, 24.0), (74.0, 33.0)  # r * a^hn, + a^xn, tanh: (U5)
G_MUL_N, G_ADD_H, G_MUL_Z = (74.0, 42.0), (74.0, G_HWY), (30.0, G_HWY)  # (U6)


def draw_gru_cell():
    """One GRU cell, forward: (U1), (U2) the two affine maps, (U3) reset, (U4) update, (U5) the candidate
    with the reset applied after the recurrent product (PyTorch's placement), (U6) the mix."""
    fig, ax = new_figure(6.2)
    _cell_frame(ax, FWD)
    top = G_AFF[1] + G_AFF[3] / 2

    # inputs
    box(ax, 6, G_HWY, 11, 7, "$h_{t-1}$\n(N, H)", fill="io", size=11.5)
    box(ax, 6, 6, 11, 7, "$x_t$\n(N, D)", fill="io", size=11.5)
    text(ax, 6, G_HWY + 5.2, "from step t-1", size=10.5, color=GREY)
    arrow(ax, (11.5, 8.0), (G_AFF[0] - G_AFF[2] / 2, 10.0))
    path_arrow(ax, [(6, G_HWY - 3.5), (6, 15.5), (G_AFF[0] - G_AFF[2] / 2, 15.5)])

    # (U1), (U2)
    box(ax, G_AFF[0], G_AFF[1], G_AFF[2], G_AFF[3],
        "(U1)  $a^x_t = x_t W_x + b_x$        (U2)  $a^h_t = h_{t-1} W_h + b_h$\n"
        "(N, 3H) each, in blocks r | z | n", fill="cell", size=12)

    # (U4) update gate, (U3) reset gate
    for (x, y), fn_, lab, out, inp in ((G_Z, r"$\sigma$", "(U4)", "$z_t$", r"$a^{xz}_t + a^{hz}_t$"),
                                       (G_R, r"$\sigma$", "(U3)", "$r_t$", r"$a^{xr}_t + a^{hr}_t$")):
        arrow(ax, (x, top), (x, y - 2.8))
        text(ax, x - 0.8, (top + y - 2.8) / 2 + 0.4, inp, size=11, ha="right")
        box(ax, x, y, 7, 5, fn_, fill="gate", size=13)
        text(ax, x + 4.2, y - 1.4, lab, size=10.5, color=GREY, ha="left")
    text(ax, G_R[0] + 1.0, G_R[1] + 3.6, "$r_t$", size=12, ha="left")

    # (U5): n_t = tanh(a^xn + r * a^hn), the reset after the product
    arrow(ax, (G_R[0] + 3.5, G_R[1]), (G_MUL_R[0] - 2, G_MUL_R[1]))
    op(ax, *G_MUL_R, "⊙")
    arrow(ax, (G_MUL_R[0], top), (G_MUL_R[0], G_MUL_R[1] - 2))
    text(ax, G_MUL_R[0] + 0.8, top + 2.0, "$a^{hn}_t$", size=11, ha="left")
    arrow(ax, (G_MUL_R[0] + 2, G_MUL_R[1]), (G_ADD_N[0] - 2, G_ADD_N[1]))
    op(ax, *G_ADD_N, "+")
    arrow(ax, (G_ADD_N[0], top), (G_ADD_N[0], G_ADD_N[1] - 2))
    text(ax, G_ADD_N[0] + 0.8, top + 2.0, "$a^{xn}_t$", size=11, ha="left")
    arrow(ax, (G_ADD_N[0], G_ADD_N[1] + 2), (G_TANH[0], G_TANH[1] - 2.2))
    box(ax, G_TANH[0], G_TANH[1], 8, 4.4, "tanh", fill="gate", size=12)
    text(ax, G_TANH[0] + 4.6, G_TANH[1], "(U5)  $n_t$", size=11, ha="left")
    text(ax, G_ADD_N[0] + 2.6, G_ADD_N[1] - 0.4, r"$a^{xn}_t + r_t \odot a^{hn}_t$", size=11, ha="left")

    # (U6): h_t = (1 - z) * n + z * h_{t-1}
    line(ax, [(G_Z[0], G_Z[1] + 2.5), (G_Z[0], G_MUL_Z[1] - 2)])
    arrow(ax, (G_Z[0], G_MUL_N[1] - 0.1), (G_Z[0], G_MUL_Z[1] - 2))
    text(ax, G_Z[0] - 0.9, G_Z[1] + 4.0, "$z_t$", size=12, ha="right")
    arrow(ax, (G_Z[0], G_MUL_N[1]), (G_MUL_N[0] - 2, G_MUL_N[1]))
    text(ax, (G_Z[0] + G_MUL_N[0]) / 2, G_MUL_N[1] + 1.6, "$1 - z_t$", size=11)
    arrow(ax, (G_TANH[0], G_TANH[1] + 2.2), (G_MUL_N[0], G_MUL_N[1] - 2))
    op(ax, *G_MUL_N, "⊙")
    text(ax, G_MUL_N[0] + 2.6, G_MUL_N[1] + 0.2, r"$(1 - z_t) \odot n_t$", size=11, ha="left")
    arrow(ax, (G_MUL_N[0], G_MUL_N[1] + 2), (G_ADD_H[0], G_ADD_H[1] - 2))
    line(ax, [(11.5, G_HWY), (G_MUL_Z[0] - 2, G_HWY)], color=STATE, lw=3)
    op(ax, *G_MUL_Z, "⊙", edge=STATE)
    line(ax, [(G_MUL_Z[0] + 2, G_HWY), (G_ADD_H[0] - 2, G_HWY)], color=STATE, lw=3)
    op(ax, *G_ADD_H, "+", edge=STATE)
    arrow(ax, (G_ADD_H[0] + 2, G_HWY), (104, G_HWY), color=STATE, lw=3, ms=18)
    text(ax, 106, G_HWY, "$h_t$", size=13, ha="left")
    text(ax, 104, G_HWY - 3.2, "to step t+1\nand the layer above", size=10.5, color=GREY, ha="right", va="top")
    text(ax, G_MUL_Z[0] + 2.6, G_HWY + 3.2, r"(U6)  $z_t \odot h_{t-1}$", size=11, ha="left", color=STATE)
    text(ax, G_ADD_H[0] - 2.5, G_HWY + 3.2, r"(U6)  $h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$", size=11,
         ha="right", color=STATE)
    return fig


FIGURES = {"unrolled_sine": draw_unrolled_sine, "cell_forward": draw_cell_forward,
           "cell_backward": draw_cell_backward, "gru_cell": draw_gru_cell}


def drawn_texts(fig):
    """Every string drawn on a figure."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def drawn_labels(fig):
    return sorted({m for s in drawn_texts(fig) for m in LABEL_RE.findall(s)})


def smallest_text_px(fig, column_px=COLUMN_PX):
    """Height in pixels of the smallest font when the figure is scaled to column_px wide."""
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    return min(sizes) / 72 * column_px / fig.get_figwidth()


def fit_column(svg_path, column_px=COLUMN_PX):
    """Give the SVG a natural width of column_px (the drawing and its viewBox stay as they are).

    Matplotlib writes width="792pt" (11 in, 1056 px); a viewer that shows images at their natural size
    without shrinking them to the column would cut the right edge off. 1 px = 0.75 pt.
    """
    text = svg_path.read_text(encoding="utf-8")
    m = re.search(r'<svg [^>]*?width="([\d.]+)pt" height="([\d.]+)pt"', text)
    if not m:
        raise RuntimeError(f"{svg_path}: no width/height in pt on the <svg> element")
    w, h = float(m.group(1)), float(m.group(2))
    new_w = column_px * 0.75
    new = f'width="{new_w:g}pt" height="{h * new_w / w:.1f}pt"'
    svg_path.write_text(text[:m.start(1) - 7] + new + text[m.end(2) + 3:], encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.exit(f"--out: cannot create folder {args.out}: {e.strerror}")
    written = []
    for name, draw in FIGURES.items():
        fig = draw()
        for ext, kw in (("svg", {"metadata": {"Date": None}}), ("png", {"dpi": 100})):
            path = args.out / f"{name}.{ext}"
            fig.savefig(path, format=ext, **kw)
            if ext == "svg":
                fit_column(path)
            written.append(path)
        print(f"{name}: labels {', '.join(drawn_labels(fig)) or '-'}; smallest text "
              f"{smallest_text_px(fig):.1f} px at {COLUMN_PX} px wide")
        plt.close(fig)
    print("wrote " + ", ".join(str(p) for p in written))
    return written


if __name__ == "__main__":
    main()
