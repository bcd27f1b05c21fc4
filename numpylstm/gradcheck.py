"""Gradient checking by central differences. Derivation: derivations/08_gradient_checking.md.

Every analytic gradient is compared, entry by entry, with a central difference computed in float64:

    (G1)  n = (f(theta + eps e_k) - f(theta - eps e_k)) / (2 eps)              error O(eps^2)
    (G3)  n = (8 [f(+eps) - f(-eps)] - [f(+2 eps) - f(-2 eps)]) / (12 eps)      error O(eps^4)

and judged by

    (G2)  rel = |a - n| / max(|a|, |n|, floor).

Choices (and why, measured on this project's layer checks):
- (G3), the four-point central difference, with ``EPS = 1e-3``. Plain (G1) is limited by roundoff
  (machine-epsilon * |f| / eps) against truncation (eps^2): its best accuracy in float64 is ~1e-10 absolute,
  which left relative errors up to 1e-7 at entries near the floor -- no margin against the 1e-7 tolerance.
  (G3) cancels the eps^2 term, so eps can be 100x larger and the roundoff 100x smaller: worst relative error
  seen ~2e-9 (layer) and ~6e-10 (model), with absolute errors ~1e-12 for small gradients.
- ``FLOOR = 1e-3``: an entry whose true gradient is ~0 can't have a meaningful *relative* error (both
  numbers are roundoff), so below the floor the check becomes an absolute one: |a - n| / 1e-3.
  Used for the layer and the model alike.
- Tolerances: ``LAYER_TOL = 1e-7`` for the functional layer, ``MODEL_TOL = 1e-6`` for the whole model.
- Arrays with more than ``max_entries`` entries are checked on a seeded random subset.

``python -m numpylstm.gradcheck`` runs a default check of both, prints a table per parameter (with the worst
error per gate block i, f, g, o for the arrays with a fused 4H axis) and exits non-zero if any check fails.
``python -m numpylstm.gradcheck --bugs`` runs the bug zoo instead (``numpylstm/bugzoo.py``): classic published
backward-pass bugs, each caught by the check, next to how well each still trains. ``--bugs --quiz`` hides their
names and asks for the wrong equation's label (``numpylstm/exercises/quiz.py``).
``python -m numpylstm.gradcheck --cell NAME`` checks one cell of ``numpylstm.cells`` (``--cell all``: every one)
with ``check_cell``: every array, extra parameters included, with the worst error per gate block.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from . import _checks as chk
from . import textbook
from .fast import lstm_backward, lstm_forward
from .model import IMPLS, LSTMModel

EPS = 1e-3
FLOOR = 1e-3
LAYER_TOL = 1e-7
MODEL_TOL = 1e-6


@dataclass
class Row:
    """One line of the report: the worst entry of one array."""

    name: str
    shape: tuple
    checked: int
    max_rel: float
    max_abs: float
    gates: tuple | None = None  # worst rel. error in each gate block (i, f, g, o) of a fused 4H axis, else None
    gate_names: str = "ifgo"  # the names of those blocks: "ifgo" for the LSTM family, "rzn" for the GRU


def relative_error(a, n, floor=FLOOR):
    """(G2) |a - n| / max(|a|, |n|, floor), elementwise."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)


def numerical_gradient(f, arr, indices, eps=EPS):
    """Central differences of the scalar f() with respect to ``arr.flat[k]`` for k in indices.

    (G3), the four-point central difference: (G1) at eps and at 2 eps combined so that the eps^2 error
    terms cancel. ``arr`` is perturbed in place and restored exactly.
    """
    flat = arr.reshape(-1)  # a view: arr must be contiguous
    out = np.empty(len(indices))

    def at(k, value):
        flat[k] = value
        return f()

    for j, k in enumerate(indices):
        old = flat[k]
        d1 = at(k, old + eps) - at(k, old - eps)  # (G1) numerator at eps
        d2 = at(k, old + 2 * eps) - at(k, old - 2 * eps)  # (G1) numerator at 2 eps
        flat[k] = old
        out[j] = (8.0 * d1 - d2) / (12.0 * eps)  # (G3) = (4 G1(eps) - G1(2 eps)) / 3
    return out


def _pick(size, max_entries, rng):
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def gate_block_errors(rel, indices, H, blocks=4):
    """Worst of ``rel`` in each gate block of an array whose last axis is a fused gate axis of ``blocks`` H
    (4H: i, f, g, o; 3H for the GRU: r, z, n).

    ``indices``: the flat indices the errors belong to; column k of the last axis is in block k // H.
    A block with no checked entry gets nan.
    """
    block = (np.asarray(indices) % (blocks * H)) // H
    return tuple(float(rel[block == j].max()) if np.any(block == j) else float("nan") for j in range(blocks))


def check_arrays(f, arrays, analytic, max_entries=None, seed=0, eps=EPS, floor=FLOOR, gates=None,
                 gate_names="ifgo"):
    """Compare ``analytic[name]`` with (G3) for each ``arrays[name]`` (float64, contiguous, perturbed in place).

    f: a callable returning the scalar loss computed from the arrays; arrays {name: array}; analytic
    {name: gradient}, with exactly the names of ``arrays`` (a missing or extra gradient is a ValueError, never
    a silently unchecked array). ``gates``: optional {name: H} for the arrays whose last axis is a fused gate
    axis of ``len(gate_names)`` blocks of H ("ifgo": the LSTM's 4H; "rzn": the GRU's 3H); their rows also get
    the worst error per gate block (``Row.gates``). Returns a list of ``Row``, one per array.
    """
    gates = gates or {}
    if not callable(f):
        raise ValueError(f"f must be a callable returning the scalar loss; got {chk.describe(f)}")
    if not isinstance(arrays, dict) or not isinstance(analytic, dict):
        raise ValueError("arrays and analytic must be dicts {name: array}; "
                         f"got {chk.describe(arrays)} and {chk.describe(analytic)}")
    if set(analytic) != set(arrays):
        raise ValueError(f"analytic must hold one gradient per array: arrays {', '.join(arrays)}; gradients "
                         f"{', '.join(analytic)} (missing: {', '.join(k for k in arrays if k not in analytic) or '-'}; "
                         f"extra: {', '.join(k for k in analytic if k not in arrays) or '-'})")
    rng = np.random.default_rng(seed)
    rows = []
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{name}: gradient checks perturb arrays in place; got {chk.describe(arr)}")
        if arr.dtype != np.float64 or not arr.flags.c_contiguous:
            raise ValueError(f"{name}: gradient checks need a contiguous float64 array; got {arr.dtype}")
        a = np.asarray(analytic[name], np.float64).reshape(-1)
        if a.size != arr.size:
            raise ValueError(f"{name}: analytic gradient has {a.size} entries, the array {arr.size}")
        idx = _pick(arr.size, max_entries, rng)
        n = numerical_gradient(f, arr, idx, eps)
        rel = relative_error(a[idx], n, floor)
        per_gate = gate_block_errors(rel, idx, gates[name], len(gate_names)) if name in gates else None
        rows.append(Row(name, tuple(arr.shape), len(idx), float(rel.max()), float(np.abs(a[idx] - n).max()),
                        per_gate, gate_names))
    return rows


def check_layer(N=2, T=3, D=4, H=3, seed=0, final_state_grads=True, max_entries=None, impl="fast"):
    """Check all six outputs of ``lstm_backward`` against (G3), with nonzero h0, c0 (and dhT, dcT).

    The loss is sum(hs * R) + sum(hT * RT) + sum(cT * RC) with fixed random R, RT, RC, so gradients are
    of order one; ``dhs = R``, ``dhT = RT``, ``dcT = RC``. impl: "fast" (``fast.py``) or "textbook"
    (``textbook.py``), the layer pair checked.
    """
    N, T, D, H = (chk.positive_int(k, v) for k, v in (("N", N), ("T", T), ("D", D), ("H", H)))
    impl = chk.choice("impl", impl, IMPLS)
    pair = (lstm_forward, lstm_backward) if impl == "fast" else (textbook.lstm_forward, textbook.lstm_backward)
    return check_layer_pair(*pair, N, T, D, H, seed, final_state_grads, max_entries)


def check_layer_pair(forward, backward, N=2, T=3, D=4, H=3, seed=0, final_state_grads=True, max_entries=None):
    """``check_layer``'s problem for any pair with the signatures of ``lstm_forward`` / ``lstm_backward``
    (e.g. a deliberately broken backward of the bug zoo)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal((N, T, D)),
        "h0": rng.standard_normal((N, H)),
        "c0": rng.standard_normal((N, H)),
        "Wx": rng.standard_normal((D, 4 * H)) / np.sqrt(D),
        "Wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H),
        "b": rng.standard_normal(4 * H) * 0.5,
    }
    R = rng.standard_normal((N, T, H))
    RT = rng.standard_normal((N, H)) if final_state_grads else np.zeros((N, H))
    RC = rng.standard_normal((N, H)) if final_state_grads else np.zeros((N, H))
    args = [arrays[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b")]

    def f():
        hs, (hT, cT), _ = forward(*args)
        return float(np.vdot(hs, R) + np.vdot(hT, RT) + np.vdot(cT, RC))

    _, _, cache = forward(*args)
    grads = backward(R, cache, RT if final_state_grads else None, RC if final_state_grads else None)
    grads = tuple(grads)
    if len(grads) != len(arrays):  # zip would silently drop the arrays (or gradients) beyond the shorter one
        raise ValueError(f"backward must return {len(arrays)} gradients ({', '.join(arrays)}); got {len(grads)}")
    analytic = dict(zip(arrays, grads))
    return check_arrays(f, arrays, analytic, max_entries, seed, gates=dict.fromkeys(("Wx", "Wh", "b"), H))


CELL_INTERFACE = ("param_shapes", "forward", "backward", "has_cell_state")


def check_cell(cell_or_name, N=2, T=4, D=3, H=3, seed=0, max_entries=None, final_state_grads=True):
    """Gradient check of any cell: every array it has, against (G3) central differences in float64.

    cell_or_name: a name of ``numpylstm.cells.NAMES`` or an object with the ``Cell`` interface
    (``param_shapes(D, H)``, ``forward(x, h0, c0, params)``, ``backward(dhs, cache, dhT, dcT)``,
    ``has_cell_state``) -- e.g. a cell of your own. Checked: x (N, T, D), h0, c0 (when the cell has a cell
    state) and every parameter of ``param_shapes`` (extra ones such as the peepholes' p too), for the loss
    sum(hs * R) + sum(hT * RT) [+ sum(cT * RC)] with fixed random R, RT, RC (so dhT, dcT are nonzero unless
    final_state_grads=False). Returns a list of ``Row``, one per array; rows of arrays whose last axis is a
    fused gate axis (4H: i, f, g, o; 3H: the GRU's r, z, n) carry the worst error per gate block.
    Pass: every ``max_rel`` below ``LAYER_TOL``.
    """
    from . import cells

    if isinstance(cell_or_name, str):
        cell = cells.get(cell_or_name)
    else:
        cell = cell_or_name
        lacking = [a for a in CELL_INTERFACE if not hasattr(cell, a)]
        if lacking:
            raise ValueError(f"cell_or_name must be a cell name ({', '.join(cells.NAMES)}) or an object with "
                             f"{', '.join(CELL_INTERFACE)}; got {chk.describe(cell)} lacking {', '.join(lacking)}")
    N, T, D, H = (chk.positive_int(k, v) for k, v in (("N", N), ("T", T), ("D", D), ("H", H)))
    has_c = bool(cell.has_cell_state)
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((N, T, D)), "h0": rng.standard_normal((N, H))}
    if has_c:
        arrays["c0"] = rng.standard_normal((N, H))
    shapes = dict(cell.param_shapes(D, H))
    for key, shape in shapes.items():
        if key in arrays:
            raise ValueError(f"a cell's parameter may not be called {key!r} (the name of an input)")
        scale = 1 / np.sqrt(shape[0]) if len(shape) == 2 else 0.5  # matrices: by fan-in; vectors: 0.5
        arrays[key] = np.ascontiguousarray(rng.standard_normal(shape) * scale)
    R = rng.standard_normal((N, T, H))
    RT = rng.standard_normal((N, H)) if final_state_grads else None
    RC = rng.standard_normal((N, H)) if final_state_grads and has_c else None
    params = {k: arrays[k] for k in shapes}

    def run():
        return cell.forward(arrays["x"], arrays["h0"], arrays["c0"] if has_c else None, params)

    def f():
        hs, (hT, cT), _ = run()
        loss = np.vdot(hs, R)
        if RT is not None:
            loss += np.vdot(hT, RT)
        if RC is not None:
            loss += np.vdot(cT, RC)
        return float(loss)

    grads = cell.backward(R, run()[2], RT, RC)
    if not isinstance(grads, tuple) or len(grads) != 4:
        raise ValueError("a cell's backward must return (dx, dh0, dc0, dparams); "
                         f"got {len(grads) if isinstance(grads, tuple) else chk.describe(grads)} values")
    dx, dh0, dc0, dparams = grads
    if not isinstance(dparams, dict) or set(dparams) != set(shapes):
        got = ", ".join(dparams) if isinstance(dparams, dict) else chk.describe(dparams)
        raise ValueError(f"a cell's backward must return dparams with the keys {', '.join(shapes)}; got {got}")
    if not has_c and dc0 is not None:
        raise ValueError("a cell without a cell state must return dc0 = None")
    analytic = {"x": dx, "h0": dh0, **({"c0": dc0} if has_c else {}), **dparams}
    names = getattr(cell, "gate_names", "") or "ifgo"
    gates = {k: H for k, shape in shapes.items() if shape[-1] == len(names) * H and shape[-1] > H}
    return check_arrays(f, arrays, analytic, max_entries, seed, gates=gates, gate_names=names)


def check_model(model: LSTMModel, x, y, state=None, train=True, masks=None, max_entries=None, seed=0, impl=None):
    """Check ``model.loss_and_grads``: every parameter, the input x (unless token ids) and the initial state.

    Any cell (``model.cell``); the rows of arrays with a fused gate axis (Wx, Wh and the biases of the LSTM
    family and the GRU) carry the worst error per gate block (i, f, g, o or r, z, n; ``format_report`` shows
    them).

    The model must be float64. With dropout and train=True, masks are drawn once (or taken from ``masks``)
    and held fixed for every evaluation. impl: "fast" or "textbook" to check the model with that layer code
    (``model.impl`` is set for the check and restored after it), or None for the model's own ``impl``.
    """
    if not isinstance(model, LSTMModel):
        raise ValueError(f"model must be an LSTMModel; got {chk.describe(model)}")
    if impl is not None:
        own, model.impl = model.impl, chk.choice("impl", impl, IMPLS)
        try:
            return check_model(model, x, y, state, train, masks, max_entries, seed)
        finally:
            model.impl = own
    if model.dtype != np.float64:
        raise ValueError("gradient checks need a float64 model")
    T, N = model._time_major_input(x).shape[:2]  # validates x (and the params) with the model's messages
    x = np.array(x)
    tokens = x.dtype.kind in "iu"
    if not tokens:
        x = np.ascontiguousarray(x, np.float64)
    if state is None:
        state = np.zeros((model.num_layers, 2, N, model.hidden_size))
    state = np.array(state, np.float64)
    if train and model.dropout > 0 and masks is None:
        masks = model.make_masks(N, T)
    masks = None if masks is None else [np.array(m) for m in masks]

    def f():
        return model.loss_and_grads(x, y, state, train=train, masks=masks)[0]

    _, grads, _, ig = model.loss_and_grads(x, y, state, train=train, masks=masks, input_grads=True)
    arrays, analytic = dict(model.params), dict(grads)
    if not tokens:
        arrays["input x"], analytic["input x"] = x, ig["x"]
    arrays["initial state"], analytic["initial state"] = state, ig["state"]
    # the arrays with a fused gate axis (the cell's gate_names: "ifgo" for the LSTM family, "rzn" for the GRU, none for
    # the RNN) get the worst error per gate block: Wx, Wh and the biases of each layer
    names, H = getattr(model.cell_type, "gate_names", ""), model.hidden_size
    gates = {k: H for k, shape in model.param_shapes().items()
             if names and k.startswith(f"{model.cell}.") and shape[-1] == len(names) * H}
    return check_arrays(f, arrays, analytic, max_entries, seed, gates=gates, gate_names=names or "ifgo")


def format_report(rows, tol, title=""):
    """The table of ``rows``; arrays with a gate axis also show the worst error per gate block (i, f, g, o
    for the LSTM family, r, z, n for the GRU)."""
    lines = [title] if title else []
    gated = [r for r in rows if r.gates is not None]
    per_gate = bool(gated)
    names = gated[0].gate_names if gated else ""
    gate_head = "".join(f"{'max rel ' + k:>12}" for k in names)
    lines.append(f"{'array':<16}{'shape':<16}{'checked':>8}{'max rel err':>14}{'max abs err':>14}{gate_head}  ok")
    for r in rows:
        ok = "yes" if r.max_rel < tol else "NO"
        gate_cols = "" if not per_gate else (f"{'':>{12 * len(names)}}" if r.gates is None
                                             else "".join(f"{e:>12.2e}" for e in r.gates))
        lines.append(f"{r.name:<16}{str(r.shape):<16}{r.checked:>8}{r.max_rel:>14.2e}{r.max_abs:>14.2e}"
                     f"{gate_cols}  {ok}")
    return "\n".join(lines)


USAGE = """usage: python -m numpylstm.gradcheck [--bugs [--quiz] | --cell NAME]

Finite-difference gradient checks of numpylstm (float64, central differences):
  (no flag)   the layer (lstm_forward/lstm_backward, N=2 T=3 D=4 H=3) and a 2-layer model with dropout, both
              heads; exit status 0 when every array agrees within the tolerance, 1 otherwise
  --bugs      the bug zoo: classic LSTM backward bugs, each caught by the check (numpylstm/bugzoo.py)
  --bugs --quiz  the bug zoo with the bugs' names hidden: answer with the equation label of each bug
  --cell NAME check_cell of the cell NAME of numpylstm.cells (every cell: all)
  -h, --help  this text"""


def main(argv=None) -> int:
    """Default check: one layer (N=2, T=3, D=4, H=3) and a 2-layer model with dropout, both heads.

    ``--bugs``: run the bug zoo (``numpylstm.bugzoo.main``) instead; ``--bugs --quiz``: the quiz. ``--cell NAME``:
    check the cell NAME of ``numpylstm.cells`` (or every cell, for ``all``) with ``check_cell``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    from .train import pipe_safe_stdout  # `| head` ends the output, not in a BrokenPipeError traceback

    if argv == ["--bugs"]:
        from . import bugzoo

        with pipe_safe_stdout():
            return bugzoo.main()
    if sorted(argv) == ["--bugs", "--quiz"]:
        from .exercises.quiz import quiz

        with pipe_safe_stdout():
            return quiz()
    if len(argv) == 2 and argv[0] == "--cell":
        return main_cells(argv[1])
    if argv:
        print(f"python -m numpylstm.gradcheck: error: unexpected arguments {' '.join(argv)} (usage: python -m "
              f"numpylstm.gradcheck [--bugs [--quiz] | --cell NAME]; see -h)", file=sys.stderr)
        return 2
    ok = True
    rows = check_layer()
    print(format_report(rows, LAYER_TOL, f"lstm_forward/lstm_backward, N=2 T=3 D=4 H=3 (tol {LAYER_TOL:g})"))
    ok &= all(r.max_rel < LAYER_TOL for r in rows)
    rng = np.random.default_rng(1)
    for head, loss in (("last", "mse"), ("all", "softmax_ce")):
        model = LSTMModel(3, 4, 5 if loss == "softmax_ce" else 2, num_layers=2, dropout=0.25, head=head,
                          loss=loss, seed=1)
        x = rng.standard_normal((2, 4, 3))
        y = rng.integers(0, 5, (2, 4)) if loss == "softmax_ce" else rng.standard_normal((2, 2))
        state = rng.standard_normal((2, 2, 2, 4)) * 0.5
        rows = check_model(model, x, y, state)
        print()
        print(format_report(rows, MODEL_TOL,
                            f"LSTMModel 2 layers, dropout 0.25, head={head}, loss={loss} (tol {MODEL_TOL:g})"))
        ok &= all(r.max_rel < MODEL_TOL for r in rows)
    print("\nall gradient checks passed" if ok else "\nGRADIENT CHECK FAILED")
    return 0 if ok else 1


def main_cells(name) -> int:
    """``--cell NAME``: check_cell for one cell of ``numpylstm.cells.NAMES`` or, for "all", every one."""
    from . import cells

    if name != "all" and name not in cells.NAMES:
        print(f"--cell must be one of {', '.join(cells.NAMES)} or all; got {name!r}", file=sys.stderr)
        return 2
    ok = True
    for k, cell in enumerate(cells.NAMES if name == "all" else (name,)):
        rows = check_cell(cell)
        title = f"cell {cell!r}, N=2 T=4 D=3 H=3 (tol {LAYER_TOL:g})"
        print(("\n" if k else "") + format_report(rows, LAYER_TOL, title))
        ok &= all(r.max_rel < LAYER_TOL for r in rows)
    print("\nall gradient checks passed" if ok else "\nGRADIENT CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    from ._cli import run_cli

    sys.exit(run_cli(main, "python -m numpylstm.gradcheck"))
