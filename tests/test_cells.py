"""numpylstm.cells: the plug-in cell interface, the peephole LSTM and Greff's variants, check_cell.

Every cell: central differences for every array (x, h0, c0, every parameter), token ids, float32; the cells
"lstm" and "rnn" equal textbook.py and rnn.py bit for bit; each variant's forward equals its paper's equations
written out here independently; a dropped gate's parameters get exactly zero gradient; each variant's file
differs from peephole.py only in its (Y) lines.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import numpy as np
import pytest

import numpylstm
from numpylstm import cells, rnn, textbook
from numpylstm.cells import peephole
from numpylstm.cells._family import peephole_cell
from numpylstm.gradcheck import LAYER_TOL, check_arrays, check_cell, check_layer_pair, format_report

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")


def make_params(cell, D, H, rng, dtype=np.float64):
    return {k: (rng.standard_normal(s) * (1 / np.sqrt(s[0]) if len(s) == 2 else 0.5)).astype(dtype)
            for k, s in cell.param_shapes(D, H).items()}


def run(cell, x, h0, c0, params, dhs, dhT=None, dcT=None):
    hs, (hT, cT), cache = cell.forward(x, h0, c0, params)
    dx, dh0, dc0, dp = cell.backward(dhs, cache, dhT, dcT)
    return hs, hT, cT, dx, dh0, dc0, dp


# ---------------------------------------------------------------------------------------- the interface


def test_names_and_get():
    assert cells.NAMES == ("lstm", "rnn", "gru", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr")
    for name in cells.NAMES:
        cell = cells.get(name)
        assert cell.name == name
        assert cell.has_cell_state == (name not in ("rnn", "gru"))
        assert cell.forget_block == (None if name in ("rnn", "gru") else ("b", 1))
    with pytest.raises(ValueError, match="name must be one of 'lstm', 'rnn', 'gru'.*got 'lstmm'"):
        cells.get("lstmm")
    with pytest.raises(ValueError, match="name must be one of"):
        cells.get(None)


def test_param_shapes_in_the_contracts_order():
    D, H = 5, 2
    assert cells.get("lstm").param_shapes(D, H) == {"Wx": (5, 8), "Wh": (2, 8), "b": (8,)}
    assert cells.get("rnn").param_shapes(D, H) == {"Wx": (5, 2), "Wh": (2, 2), "b": (2,)}
    assert list(cells.get("gru").param_shapes(D, H).items()) == [("Wx", (5, 6)), ("Wh", (2, 6)), ("bx", (6,)),
                                                                 ("bh", (6,))]
    for name in ("peephole",) + VARIANTS:
        shapes = cells.get(name).param_shapes(D, H)
        want = [("Wx", (5, 8)), ("Wh", (2, 8)), ("b", (8,)), ("p", (3, 2))] + ([("R", (6, 6))] if name == "fgr" else [])
        assert list(shapes.items()) == want, name
    with pytest.raises(ValueError, match="H must be a positive integer"):
        cells.get("gru").param_shapes(3, 0)


@pytest.mark.parametrize("name", cells.NAMES)
def test_every_cell_matches_central_differences(name):
    rows = check_cell(name)
    want = {"x", "h0", *cells.get(name).param_shapes(3, 3)} | ({"c0"} if cells.get(name).has_cell_state else set())
    assert {r.name for r in rows} == want
    for r in rows:
        assert r.max_rel < LAYER_TOL, (name, r.name, r.max_rel, r.max_abs)


@pytest.mark.parametrize("name", ["gru", "peephole", "cifg", "fgr"])
def test_gradients_other_sizes_and_no_final_state_gradient(name):
    for N, T, D, H, fsg in ((1, 1, 1, 1, True), (3, 4, 2, 4, False)):
        for r in check_cell(name, N=N, T=T, D=D, H=H, seed=N + T, final_state_grads=fsg):
            assert r.max_rel < LAYER_TOL, (name, N, T, D, H, r.name, r.max_rel)


def test_rows_of_fused_gate_arrays_report_each_block():
    gru_rows = check_cell("gru", T=2)
    rows = {r.name: r for r in gru_rows}
    assert len(rows["Wx"].gates) == 3 and rows["Wx"].gate_names == "rzn" and rows["x"].gates is None
    rows = {r.name: r for r in check_cell("fgr", T=2)}
    assert len(rows["Wh"].gates) == 4 and rows["R"].gates is None and rows["p"].gates is None
    report = format_report(gru_rows, LAYER_TOL)
    assert "max rel r" in report and "max rel n" in report and "max rel g" not in report


@pytest.mark.parametrize("name", cells.NAMES)
def test_token_ids_equal_one_hot_input(name, rng):
    cell = cells.get(name)
    V, N, T, H = 5, 3, 4, 2
    ids = rng.integers(0, V, (N, T))
    params = make_params(cell, V, H, rng)
    h0 = rng.standard_normal((N, H))
    c0 = rng.standard_normal((N, H)) if cell.has_cell_state else None
    dhs = rng.standard_normal((N, T, H))
    a = run(cell, ids, h0, c0, params, dhs)
    b = run(cell, np.eye(V)[ids], h0, c0, params, dhs)
    assert a[3] is None and b[3].shape == (N, T, V)
    for u, v in zip(a[:3] + a[4:6], b[:3] + b[4:6]):
        if u is not None or v is not None:
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-14)
    for k in params:
        np.testing.assert_allclose(a[6][k], b[6][k], rtol=0, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("name", cells.NAMES)
def test_float32_runs_in_float32_and_agrees_with_float64(name, rng):
    cell = cells.get(name)
    N, T, D, H = 2, 5, 3, 4
    p64 = make_params(cell, D, H, rng)
    x = rng.standard_normal((N, T, D))
    dhs = rng.standard_normal((N, T, H))
    out64 = run(cell, x, None, None, p64, dhs)
    out32 = run(cell, x, None, None, {k: v.astype(np.float32) for k, v in p64.items()}, dhs)
    for u, v in zip(out32[:6], out64[:6]):
        if v is None:
            assert u is None
            continue
        assert u.dtype == np.float32
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    for k, v in out64[6].items():
        assert out32[6][k].dtype == np.float32
        np.testing.assert_allclose(out32[6][k], v, rtol=1e-4, atol=1e-5, err_msg=k)


# ------------------------------------------------------------------ "lstm" and "rnn": the existing code


@pytest.mark.parametrize("tokens", [False, True])
def test_lstm_cell_is_textbook_bit_for_bit(tokens, rng):
    N, T, D, H = 3, 5, 4, 3
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    p = make_params(cells.get("lstm"), D, H, rng)
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    dhs, dhT, dcT = rng.standard_normal((N, T, H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    got = run(cells.get("lstm"), x, h0, c0, p, dhs, dhT, dcT)
    hs, (hT, cT), cache = textbook.lstm_forward(x, h0, c0, p["Wx"], p["Wh"], p["b"])
    dx, dh0, dc0, dWx, dWh, db = textbook.lstm_backward(dhs, cache, dhT, dcT)
    for u, v in zip(got[:6], (hs, hT, cT, dx, dh0, dc0)):
        assert (u is None and v is None) or np.array_equal(u, v)
    for k, v in (("Wx", dWx), ("Wh", dWh), ("b", db)):
        assert np.array_equal(got[6][k], v), k


@pytest.mark.parametrize("tokens", [False, True])
def test_rnn_cell_is_rnn_py_bit_for_bit(tokens, rng):
    N, T, D, H = 3, 5, 4, 3
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    p = make_params(cells.get("rnn"), D, H, rng)
    h0, dhs, dhT = rng.standard_normal((N, H)), rng.standard_normal((N, T, H)), rng.standard_normal((N, H))
    got = run(cells.get("rnn"), x, h0, None, p, dhs, dhT)
    hs, hT, cache = rnn.rnn_forward(x, h0, p["Wx"], p["Wh"], p["b"])
    dx, dh0, dWx, dWh, db = rnn.rnn_backward(dhs, cache, dhT)
    assert got[2] is None and got[5] is None
    for u, v in zip((got[0], got[1], got[3], got[4]), (hs, hT, dx, dh0)):
        assert (u is None and v is None) or np.array_equal(u, v)
    for k, v in (("Wx", dWx), ("Wh", dWh), ("b", db)):
        assert np.array_equal(got[6][k], v), k


def test_bit_for_bit_check_can_fail(rng):
    """The equality above is exact: a cell whose loop adds dhs_t after the step differs."""
    N, T, D, H = 2, 3, 2, 2
    p = make_params(cells.get("lstm"), D, H, rng)
    x = rng.standard_normal((N, T, D))
    got = run(cells.get("lstm"), x, None, None, p, np.ones((N, T, H)))
    want = run(cells.get("lstm"), x, None, None, {**p, "b": p["b"] * (1 + 1e-15)}, np.ones((N, T, H)))
    assert not np.array_equal(got[0], want[0])


# ------------------------------------------------------------- the variants: their papers' equations


def sig(z):
    return 1 / (1 + np.exp(-z))


def reference_forward(name, x, h0, c0, P):
    """The peephole LSTM and Greff's variants as Greff et al. 2017 write them (section 2 and 3.1), one
    formula each, written here without numpylstm. x (N, T, D) floats."""
    Wx, Wh, b, p = P["Wx"], P["Wh"], P["b"], P["p"]
    H = Wh.shape[0]
    h, c = h0, c0
    prev = np.zeros((x.shape[0], 3 * H))  # [i, f, o]_{t-1}, FGR only
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ Wx + h @ Wh + b
        zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        if name == "fgr":
            rec = prev @ P["R"]
            zi, zf, zo = zi + rec[:, :H], zf + rec[:, H:2 * H], zo + rec[:, 2 * H:]
        i = np.ones_like(zi) if name == "nig" else sig(zi + p[0] * c)
        f = np.ones_like(zf) if name == "nfg" else (1 - i if name == "cifg" else sig(zf + p[1] * c))
        g = zg if name == "niaf" else np.tanh(zg)
        c = g * i + c * f
        o = np.ones_like(zo) if name == "nog" else sig(zo + p[2] * c)
        h = (c if name == "noaf" else np.tanh(c)) * o
        prev = np.concatenate([i, f, o], axis=1)
        hs.append(h)
    return np.stack(hs, axis=1), h, c


@pytest.mark.parametrize("name", ("peephole",) + VARIANTS)
def test_forward_is_the_papers_equations(name, rng):
    N, T, D, H = 3, 6, 2, 4
    P = make_params(cells.get(name), D, H, rng)
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    hs, (hT, cT), _ = cells.get(name).forward(x, h0, c0, P)
    want = reference_forward(name, x, h0, c0, P)
    for u, v in zip((hs, hT, cT), want):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)
    if name != "peephole":  # and each variant really is a different function from the vanilla cell
        assert np.abs(hs - reference_forward("peephole", x, h0, c0, P)[0]).max() > 1e-3


def test_reference_check_can_fail(rng):
    """Comparing with the wrong variant's equations fails (cifg against nfg)."""
    P = make_params(cells.get("cifg"), 2, 3, rng)
    x = rng.standard_normal((2, 4, 2))
    hs, _, _ = cells.get("cifg").forward(x, None, None, P)
    assert np.abs(hs - reference_forward("nfg", x, np.zeros((2, 3)), np.zeros((2, 3)), P)[0]).max() > 1e-3


@pytest.mark.parametrize("tokens", [False, True])
def test_peephole_with_zero_peepholes_is_the_plain_lstm_exactly(tokens, rng):
    N, T, D, H = 3, 5, 4, 3
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    P = make_params(cells.get("peephole"), D, H, rng)
    P["p"] = np.zeros((3, H))
    h0, c0, dhs = rng.standard_normal((N, H)), rng.standard_normal((N, H)), rng.standard_normal((N, T, H))
    dhT, dcT = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    a = run(cells.get("peephole"), x, h0, c0, P, dhs, dhT, dcT)
    b = run(cells.get("lstm"), x, h0, c0, {k: P[k] for k in ("Wx", "Wh", "b")}, dhs, dhT, dcT)
    for u, v in zip(a[:6], b[:6]):
        assert (u is None and v is None) or np.array_equal(u, v)
    for k in ("Wx", "Wh", "b"):
        assert np.array_equal(a[6][k], b[6][k]), k


def test_fgr_with_zero_recurrence_is_the_peephole_cell_exactly(rng):
    """FGR's extra state (the previous gates) enters only through R."""
    N, T, D, H = 2, 5, 3, 3
    P = make_params(cells.get("fgr"), D, H, rng)
    P["R"] = np.zeros((3 * H, 3 * H))
    x, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    a = run(cells.get("fgr"), x, None, None, P, dhs)
    b = run(cells.get("peephole"), x, None, None, {k: v for k, v in P.items() if k != "R"}, dhs)
    for u, v in zip(a[:6], b[:6]):
        assert np.array_equal(u, v)


def test_fgr_previous_gates_start_at_zero_every_call(rng):
    """Documented in loop.py: the gate recurrence's state is not carried across calls; two halves run as two
    calls therefore differ from one call (they agree in h, c at the split only)."""
    N, T, D, H = 2, 6, 3, 3
    P = make_params(cells.get("fgr"), D, H, rng)
    x = rng.standard_normal((N, T, D))
    cell = cells.get("fgr")
    hs, _, _ = cell.forward(x, None, None, P)
    hs_again, _, _ = cell.forward(x, None, None, P)
    assert np.array_equal(hs, hs_again)
    hs1, (h, c), _ = cell.forward(x[:, :3], None, None, P)
    hs2, _, _ = cell.forward(x[:, 3:], h, c, P)
    assert np.array_equal(hs1, hs[:, :3]) and np.abs(hs2 - hs[:, 3:]).max() > 1e-6


DROPPED = {"nig": (0, 0), "nfg": (1, 1), "nog": (3, 2), "cifg": (1, 1)}  # name: (4H block, row of p)


@pytest.mark.parametrize("name", DROPPED)
def test_a_dropped_gates_parameters_get_exactly_zero_gradient(name, rng):
    block, row = DROPPED[name]
    N, T, D, H = 3, 5, 2, 3
    P = make_params(cells.get(name), D, H, rng)
    out = run(cells.get(name), rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
              rng.standard_normal((N, H)), P, rng.standard_normal((N, T, H)), rng.standard_normal((N, H)),
              rng.standard_normal((N, H)))
    dp = out[6]
    cols = slice(block * H, (block + 1) * H)
    for k in ("Wx", "Wh", "b"):
        assert not dp[k][..., cols].any(), (name, k)
        others = np.delete(dp[k], np.arange(block * H, (block + 1) * H), axis=-1)
        assert np.abs(others).min() > 0, (name, k)
    assert not dp["p"][row].any() and np.abs(np.delete(dp["p"], row, axis=0)).min() > 0


# ------------------------------------------------------------------ each variant is peephole.py + a diff


def code_lines(path):
    """The lines of a cell module after its module docstring, with the cell's name replaced by 'peephole'."""
    text = path.read_text(encoding="utf-8")
    body = text.split('"""\n\n', 1)[1]
    return re.sub(r"\b(nig|nfg|nog|niaf|noaf|cifg|fgr)_step_", "peephole_step_", body).splitlines()


# lines FGR needs besides its (Y) equations: the signatures, docstrings, cache, return, its adapter
FGR_PLUMBING = ("def peephole_step_forward(", "def peephole_step_backward(", "x_t (N, D) floats", "(zeros before",
                "R (3H, 3H) the", "reaching c_t from", "The output gate", "Returns dx_t", "terms of dWx",
                "step_cache = (", "return h_t, c_t", "x_t, h_prev, c_prev, gates_prev", "H = Wh.shape[0]",
                "dar = np.concatenate", "return dx_t,", "from ._family import", "CELL = ")


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_is_peephole_py_with_its_Y_lines_changed(name):
    base = code_lines(ROOT / "numpylstm/cells/peephole.py")
    mine = code_lines(ROOT / f"numpylstm/cells/{name}.py")
    added = [line for line in difflib.ndiff(base, mine) if line.startswith("+ ")]
    assert added
    bad = [line for line in added
           if "(Y" not in line and '"""One timestep' not in line and f'peephole_cell("{name}"' not in line
           and not (name == "fgr" and any(s in line for s in FGR_PLUMBING))]
    assert not bad, f"{name}.py changes lines of peephole.py that carry no (Y) label:\n" + "\n".join(bad)
    if name != "fgr":
        assert len(added) <= 6, added  # docstrings x2, CELL, at most three equations


# --------------------------------------------------------------------------------------- bad input


def test_bad_input_is_a_one_line_error(rng):
    gru, lstm = cells.get("gru"), cells.get("lstm")
    P = make_params(gru, 2, 3, rng)
    x = rng.standard_normal((2, 4, 2))
    with pytest.raises(ValueError, match="c0 must be None: cell 'gru' has no cell state"):
        gru.forward(x, None, np.zeros((2, 3)), P)
    with pytest.raises(ValueError, match="params of cell 'gru' must have the keys Wx, Wh, bx, bh; got Wx, Wh, b"):
        gru.forward(x, None, None, {"Wx": P["Wx"], "Wh": P["Wh"], "b": P["bx"]})
    with pytest.raises(ValueError, match=r"bh of cell 'gru' must have shape \(9,\)"):
        gru.forward(x, None, None, {**P, "bh": np.zeros(4)})
    with pytest.raises(ValueError, match="x must have shape"):
        gru.forward(rng.standard_normal((2, 4, 5)), None, None, P)
    with pytest.raises(ValueError, match="h0 must have shape"):
        gru.forward(x, np.zeros((3, 3)), None, P)
    hs, _, cache = gru.forward(x, None, None, P)
    with pytest.raises(ValueError, match="dcT must be None"):
        gru.backward(hs, cache, None, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="cache must be the cache returned by the forward pass of cell 'lstm'"):
        lstm.backward(hs, cache)
    with pytest.raises(ValueError, match="dhs must have shape"):
        gru.backward(hs[:, :2], cache)
    with pytest.raises(ValueError, match="x holds ids outside"):
        gru.forward(np.array([[0, 5]]), None, None, P)


# ----------------------------------------------------------------- check_cell, check_arrays, counts


def test_check_cell_and_check_arrays_are_public():
    assert numpylstm.check_cell is check_cell and numpylstm.check_arrays is check_arrays
    assert "check_cell" in numpylstm.__all__ and "check_arrays" in numpylstm.__all__


class MyCell:
    """A learner's own cell, not built on numpylstm.cells.Cell: h_t = tanh(x_t Wx + h_{t-1} Wh) * s,
    with an extra parameter s (H,)."""

    has_cell_state = False

    def param_shapes(self, D, H):
        return {"Wx": (D, H), "Wh": (H, H), "s": (H,)}

    def forward(self, x, h0, c0, params):
        h, hs, steps = h0, [], []
        for t in range(x.shape[1]):
            u = np.tanh(x[:, t] @ params["Wx"] + h @ params["Wh"])
            steps.append((x[:, t], h, u))
            h = u * params["s"]
            hs.append(h)
        return np.stack(hs, 1), (h, None), (steps, params)

    def backward(self, dhs, cache, dhT=None, dcT=None, drop_s=False):
        steps, P = cache
        dh = np.zeros_like(dhs[:, 0]) if dhT is None else dhT
        dx = np.zeros(dhs.shape[:2] + (P["Wx"].shape[0],))
        g = {k: np.zeros_like(v) for k, v in P.items()}
        for t in reversed(range(len(steps))):
            x_t, h_prev, u = steps[t]
            dh = dh + dhs[:, t]
            g["s"] += (dh * u).sum(0)
            da = dh * P["s"] * (1 - u**2)
            g["Wx"] += x_t.T @ da
            g["Wh"] += h_prev.T @ da
            dx[:, t] = da @ P["Wx"].T
            dh = da @ P["Wh"].T
        if drop_s:
            del g["s"]
        return dx, dh, None, g


def test_check_cell_accepts_a_learners_own_cell_and_checks_its_extra_parameter():
    rows = {r.name: r for r in check_cell(MyCell())}
    assert set(rows) == {"x", "h0", "Wx", "Wh", "s"}
    assert all(r.max_rel < LAYER_TOL for r in rows.values())


def test_check_cell_fails_on_a_broken_cell():
    """A test that cannot fail is a defect: drop (P4)'s peephole term dao * p_o from dc_t."""

    def broken_backward(dh_t, dc_next, step_cache):
        sc = list(step_cache)
        sc[5] = step_cache[5] * np.array([[1.0], [1.0], [0.0]])  # p with its o row zeroed, for the backward only
        return peephole.peephole_step_backward(dh_t, dc_next, tuple(sc))

    rows = {r.name: r for r in check_cell(peephole_cell("broken", peephole.peephole_step_forward, broken_backward))}
    assert set(rows) == {"x", "h0", "c0", "Wx", "Wh", "b", "p"}
    for r in rows.values():  # chapter 12.3 quotes this range
        assert 0.2 < r.max_rel <= 1, (r.name, r.max_rel)


def test_check_cell_refuses_a_missing_gradient():
    class NoS(MyCell):
        def backward(self, dhs, cache, dhT=None, dcT=None):
            return super().backward(dhs, cache, dhT, dcT, drop_s=True)

    with pytest.raises(ValueError, match="dparams with the keys Wx, Wh, s; got Wx, Wh"):
        check_cell(NoS())
    with pytest.raises(ValueError, match="cell_or_name must be a cell name .* lacking param_shapes"):
        check_cell(object())


def test_check_arrays_refuses_a_gradient_count_that_does_not_match():
    """Before issue 20, ``dict(zip(arrays, grads))`` in check_layer_pair dropped the arrays beyond the shorter
    list silently: a backward returning five gradients for six arrays "passed" without checking b. Now it is
    an error, in check_layer_pair and in check_arrays."""

    def five(dhs, cache, dhT=None, dcT=None):
        return textbook.lstm_backward(dhs, cache, dhT, dcT)[:5]

    def seven(dhs, cache, dhT=None, dcT=None):
        return textbook.lstm_backward(dhs, cache, dhT, dcT) + (np.zeros(3),)

    for backward in (five, seven):
        with pytest.raises(ValueError, match="backward must return 6 gradients"):
            check_layer_pair(textbook.lstm_forward, backward)
    a = {"u": np.ones(2), "v": np.ones(3)}
    with pytest.raises(ValueError, match="one gradient per array.*missing: v"):
        check_arrays(lambda: 0.0, a, {"u": np.zeros(2)})
    with pytest.raises(ValueError, match="extra: w"):
        check_arrays(lambda: 0.0, a, {"u": np.zeros(2), "v": np.zeros(3), "w": np.zeros(1)})
    # the correct pair still passes
    assert all(r.max_rel < LAYER_TOL for r in check_layer_pair(textbook.lstm_forward, textbook.lstm_backward))


def test_parameter_count_table_of_chapter_12():
    """Every number of 12.5's table: the arrays' size at D = 1, H = 20, and the parameters a cell uses (a
    dropped gate's block of Wx, Wh, b and its peephole are unused)."""
    import math

    text = (ROOT / "derivations" / "12_the_lstm_family.md").read_text(encoding="utf-8")
    section = text.split("## 12.5 Parameter counts", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    seen = set()
    D, H = 1, 20
    for row in rows:
        cells_ = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cells_[0])
        total = int(cells_[2].replace(",", ""))
        used = int(cells_[3].split("=")[-1].strip().replace(",", ""))
        for name in names:
            seen.add(name)
            size = sum(math.prod(s) for s in cells.get(name).param_shapes(D, H).values())
            dropped = H * (D + H + 1) + H if name in DROPPED else 0
            assert (total, used) == (size, size - dropped), name
    assert seen == set(cells.NAMES)


def _docs_blocks():
    text = (ROOT / "docs" / "cells.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_cells_examples_run(capsys):
    """docs/cells.md: both python blocks run; the leaky cell of your own passes check_cell, alpha included."""
    blocks = _docs_blocks()
    assert len(blocks) == 2
    ns: dict = {}
    exec(compile(blocks[0], "docs/cells.md[0]", "exec"), ns)
    assert ns["dparams"].keys() == ns["params"].keys() and ns["hs"].shape == (4, 10, 8)
    ns = {}
    exec(compile(blocks[1], "docs/cells.md[1]", "exec"), ns)
    assert {r.name for r in ns["rows"]} == {"x", "h0", "Wx", "Wh", "b", "alpha"}
    assert "NO" not in capsys.readouterr().out


def test_docs_cells_broken_leaky_cell_fails():
    """The docs' claim: drop dh_t * (1 - alpha) from dh_prev and x, h0 and the weights fail."""
    block = _docs_blocks()[1]
    old = "dh_prev = dh_t * (1 - alpha) + da @ Wh.T"
    assert block.count(old) == 1
    block = block.replace(old, "dh_prev = da @ Wh.T").split("rows = check_cell")[0]
    ns: dict = {}
    exec(compile(block, "docs/cells.md[1] broken", "exec"), ns)
    rows = {r.name: r for r in check_cell(ns["leaky"])}
    for name in ("x", "h0", "Wx", "Wh", "b"):
        assert rows[name].max_rel > 1e-3, name


def test_gradcheck_command_checks_cells(capsys, monkeypatch):
    from numpylstm import gradcheck

    assert gradcheck.main(["--cell", "gru"]) == 0
    out = capsys.readouterr().out
    assert "cell 'gru'" in out and "max rel z" in out and "all gradient checks passed" in out
    assert gradcheck.main(["--cell", "gruu"]) == 2
    assert "--cell must be one of lstm, rnn, gru" in capsys.readouterr().err
    # a failing cell makes the command fail
    broken = peephole_cell("peephole", peephole.peephole_step_forward,
                           lambda dh, dc, sc: peephole.peephole_step_backward(dh, 0 * dc, sc))
    monkeypatch.setattr(peephole, "CELL", broken)
    assert gradcheck.main(["--cell", "peephole"]) == 1
    assert "GRADIENT CHECK FAILED" in capsys.readouterr().out


def test_cells_pickle_and_copy_as_their_name():
    """A model that holds a cell must survive pickle and deepcopy: the adapters of the peephole family are
    closures, so a cell of numpylstm.cells pickles as its name."""
    import copy
    import pickle

    for name in cells.NAMES:
        cell = cells.get(name)
        assert pickle.loads(pickle.dumps(cell)) is cell
        assert copy.deepcopy(cell) is cell and copy.copy(cell) is cell


def test_chapter_12_shows_cifgs_whole_code_diff():
    """The diff block of chapter 12.4: its '-' lines are peephole.py's, its '+' lines cifg.py's, and they are
    all of cifg.py's (Y) lines (test_each_variant_is_peephole_py_with_its_Y_lines_changed shows that nothing
    else changes)."""
    text = (ROOT / "derivations" / "12_the_lstm_family.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```diff\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    lines = blocks[0].splitlines()
    base = (ROOT / "numpylstm/cells/peephole.py").read_text(encoding="utf-8").splitlines()
    mine = (ROOT / "numpylstm/cells/cifg.py").read_text(encoding="utf-8").splitlines()
    assert all(line[1:] in base for line in lines if line.startswith("-"))
    assert [line[1:] for line in lines if line.startswith("+")] == [line for line in mine if "  # (Y" in line]
