"""The exercises, in course order, and the checker that grades a learner's function.

Each ``Exercise`` names the function the learner writes, its reference solution (the project's own textbook
function), the imports the learner's file needs, how to make inputs, and how to judge the outputs: shapes
first, then values against the reference, then the gradient check (G3) (or, for the optimizer steps, the
library's own optimizer), then for a wrong backward step the suspect equations (``diagnose``).

``check_function(name, func)`` and ``check_file(name, path)`` return a ``Report`` (``.ok``, ``.lines``,
``.suspects``); nothing raised by the learner's code escapes: it becomes one line of the report.
"""

from __future__ import annotations

import inspect
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import gradcheck, optim, rnn, textbook
from . import reference
from .blanks import where
from .diagnose import Diagnosis, diagnose_lstm_backward, diagnose_rnn_step, diagnose_step
from .diagnose_cells import diagnose_gru_step, diagnose_peephole_step

try:  # the cells of chapter 12 (issue 20); their exercises wait until they are on the branch
    from .. import gru as _gru
except ImportError:
    _gru = None
try:
    from ..cells import peephole as _peephole
except ImportError:
    _peephole = None

VALUE_TOL = 1e-9  # relative (G2) error between the learner's float64 result and the reference's
GRAD_TOL = gradcheck.LAYER_TOL


class Problem(Exception):
    """The learner's file or function cannot be graded: the message is the one line the learner sees."""


@dataclass
class Report:
    name: str
    lines: list = field(default_factory=list)
    ok: bool = True
    suspects: list = field(default_factory=list)
    published: str | None = None

    def say(self, text):
        self.lines.append(text)

    def fail(self, text):
        self.ok = False
        self.lines.append(text)

    @property
    def text(self):
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str  # what the learner writes, in words
    labels: str  # the equations, e.g. "(B2)-(B14)"
    chapter: str  # derivations/...md
    reference: Callable | None  # None: waits for a module not on this branch
    source: str  # where the reference lives, for `solution`
    imports: str  # the lines the learner's file starts with
    outputs: tuple  # names of the returned values (None: a single value)
    inputs: Callable  # inputs(rng, tokens=False) -> (args, context)
    judge: Callable  # judge(ex, func, report)
    missing: str = ""  # why the exercise is not available yet


# ---------------------------------------------------------------------------------------------- helpers


def _learner_line(exc, path):
    """' (your line K)' for the deepest frame of the traceback in the learner's file, else ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if path and f.filename == str(path)]
    return f" at line {frames[-1].lineno}" if frames else ""


def _copy(a):
    """A deep copy of arrays and of tuples, lists and dicts of them (the learner may write into its inputs)."""
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, (tuple, list)):
        return type(a)(_copy(v) for v in a)
    if isinstance(a, dict):
        return {k: _copy(v) for k, v in a.items()}
    return a


def _call(func, args, report, path=None, copy=True):
    """func(*copies of args) (the args themselves if not copy); a raise becomes a Problem with one line."""
    args = [_copy(a) for a in args] if copy else list(args)
    try:
        with np.errstate(all="ignore"):
            return func(*args)
    except NotImplementedError as e:
        raise Problem(f"not finished: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever the learner's code raises is reported, not re-raised
        msg = str(e).splitlines()[0] if str(e) else ""
        raise Problem(f"your {report.name} raised {type(e).__name__}{_learner_line(e, path)}: {msg}") from None


def _as_outputs(result, names, report):
    """The tuple of outputs, or a Problem naming what came back."""
    if len(names) == 1:
        return (result,)
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise Problem(f"{report.name} must return {len(names)} values ({', '.join(names)}); it returned {got}")
    return result


def _shape(v):
    return None if v is None else np.shape(v)


def _check_shapes(names, got, want, report, what="shapes"):
    bad = []
    for k, g, w in zip(names, got, want):
        if w is None and g is None:
            continue
        if w is None or g is None:
            bad.append(f"{k} should be {'None' if w is None else f'an array {np.shape(w)}'}, got "
                       f"{'None' if g is None else f'shape {_shape(g)}'}")
        elif not isinstance(g, (np.ndarray, float, int, np.floating)) and not np.isscalar(g):
            bad.append(f"{k} should be {'an array' if np.ndim(w) else 'a number'}, got {type(g).__name__}")
        elif np.shape(g) != np.shape(w):
            bad.append(f"{k} has shape {np.shape(g)}, expected {np.shape(w)}")
    if bad:
        raise Problem(f"{what}: " + "; ".join(bad))
    nan = [k for k, g in zip(names, got) if g is not None and not np.all(np.isfinite(np.asarray(g, float)))]
    if nan:
        raise Problem(f"{', '.join(nan)} contain{'s' if len(nan) == 1 else ''} NaN or inf (a division by zero, "
                      "log of 0, or an overflow?)")
    report.say(f"{what}: right (" + ", ".join(f"{k} {_shape(w) or 'scalar'}" for k, w in zip(names, want)
                                            if w is not None) + ")")


def _num(v):
    return "0" if v == 0 else f"{v:.1e}"


def _gate_text(err, H):
    """' (gate blocks: i 0, f 2.3e-01 ...)' for an error array whose last axis is 4H."""
    err = np.asarray(err)
    cols = err.reshape(-1, err.shape[-1]).max(axis=0)
    return "; per gate block " + ", ".join(
        f"{k} {_num(cols[j * H:(j + 1) * H].max())}" for j, k in enumerate("ifgo"))


def _compare(names, got, want, report, what="values", gates=None):
    """Right/wrong per output against the reference, one line for the right ones and one per wrong one;
    returns the names of the wrong ones."""
    wrong, right, lines = [], [], []
    for k, g, w in zip(names, got, want):
        if w is None:
            continue
        rel = gradcheck.relative_error(np.asarray(g, float), np.asarray(w, float))
        worst = float(rel.max()) if rel.size else 0.0
        if worst <= VALUE_TOL:
            right.append(k)
        else:
            wrong.append(k)
            extra = _gate_text(rel, gates) if gates and np.ndim(w) and np.shape(w)[-1] == 4 * gates else ""
            lines.append(f"  WRONG {k}: max rel err {worst:.1e}{extra}")
    report.say(f"{what}: " + (f"right: {', '.join(right)}" if right else "nothing right")
               + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    for line in lines:
        report.fail(line)
    return wrong


def _report_diagnosis(d: Diagnosis, report, hint_name):
    report.suspects = list(d)
    report.published = d.published
    if d.forward_wrong:
        report.fail("the forward step is wrong: " + (d.notes[0] if d.notes else ""))
    if d:
        report.fail("suspect equations: " + "; ".join(f"({s}) {where(s)}" for s in d))
        for note in d.notes:
            report.say("  evidence: " + note)
        report.say(f"  hint: python -m numpylstm.exercises hint {hint_name} --level 2")
    elif d.notes:
        for note in d.notes:
            report.say("  " + note)


# --------------------------------------------------------------------------------------------- the inputs


def _lstm_step_inputs(rng, tokens=False, N=2, D=3, H=2):
    x = rng.integers(0, D, N) if tokens else rng.standard_normal((N, D))
    return (x, rng.standard_normal((N, H)), rng.standard_normal((N, H)), rng.standard_normal((D, 4 * H)) / 2,
            rng.standard_normal((H, 4 * H)) / 2, rng.standard_normal(4 * H) / 2)


def _inputs_step_forward(rng, tokens=False):
    args = _lstm_step_inputs(rng, tokens)
    return args, {"H": 2}


def _inputs_step_backward(rng, tokens=False):
    fwd = _lstm_step_inputs(rng, tokens)
    _, _, cache = textbook.lstm_step_forward(*fwd)
    N, H = fwd[1].shape
    return (rng.standard_normal((N, H)), rng.standard_normal((N, H)), cache), {"H": H, "fwd": fwd}


def _inputs_backward(rng, tokens=False):
    N, T, D, H = 2, 3, 3, 2
    x = rng.integers(0, D, (N, T)) if tokens else rng.standard_normal((N, T, D))
    fwd = (x, rng.standard_normal((N, H)), rng.standard_normal((N, H)), rng.standard_normal((D, 4 * H)) / 2,
           rng.standard_normal((H, 4 * H)) / 2, rng.standard_normal(4 * H) / 2)
    _, _, cache = textbook.lstm_forward(*fwd)
    return (rng.standard_normal((N, T, H)), cache, rng.standard_normal((N, H)), rng.standard_normal((N, H))), \
        {"H": H, "fwd": fwd}


def _inputs_rnn(rng, tokens=False, N=2, D=3, H=2):
    x = rng.integers(0, D, N) if tokens else rng.standard_normal((N, D))
    fwd = (x, rng.standard_normal((N, H)), rng.standard_normal((D, H)), rng.standard_normal((H, H)) / 2,
           rng.standard_normal(H) / 2)
    _, cache = rnn.rnn_step_forward(*fwd)
    return (rng.standard_normal((N, H)), cache), {"fwd": fwd}


def _inputs_gru(rng, tokens=False, N=2, D=3, H=2):
    x = rng.integers(0, D, N) if tokens else rng.standard_normal((N, D))
    fwd = (x, rng.standard_normal((N, H)), rng.standard_normal((D, 3 * H)) / 2, rng.standard_normal((H, 3 * H)) / 2,
           rng.standard_normal(3 * H) / 2, rng.standard_normal(3 * H) / 2)
    _, cache = _gru.gru_step_forward(*fwd)
    return (rng.standard_normal((N, H)), cache), {"fwd": fwd}


def _inputs_peephole(rng, tokens=False):
    fwd = (*_lstm_step_inputs(rng, tokens), rng.standard_normal((3, 2)))
    _, _, cache = _peephole.peephole_step_forward(*fwd)
    N, H = fwd[1].shape
    return (rng.standard_normal((N, H)), rng.standard_normal((N, H)), cache), {"H": H, "fwd": fwd}


def _inputs_softmax(rng, tokens=False):
    return (rng.standard_normal((4, 3)) * 2, rng.integers(0, 3, 4)), {}


def _inputs_adam(rng, tokens=False):
    shape = (2, 3)
    return (rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape) * 0.1,
            rng.random(shape) * 0.1, 3, 1e-2, 0.9, 0.999, 1e-8), {}


def _inputs_clip(rng, tokens=False):
    return ({"Wx": rng.standard_normal((3, 8)), "b": rng.standard_normal(8)}, 1.5), {}


# ---------------------------------------------------------------------------------------------- the judges


def _run_both(ex, func, args, report, path):
    got = _as_outputs(_call(func, args, report, path), ex.outputs, report)
    want = _as_outputs(ex.reference(*[_copy(a) for a in args]), ex.outputs, report)
    return got, want


def _judge_step_forward(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    names = ex.outputs[:2]
    _check_shapes(names, got[:2], want[:2], report)
    wrong = _compare(names, got[:2], want[:2], report, "values against numpylstm/textbook.py")
    if not wrong:
        targs, _ = ex.inputs(rng, tokens=True)
        tgot, twant = _run_both(ex, func, targs, report, path)
        _check_shapes(names, tgot[:2], twant[:2], report, "token-id input (E1), shapes")
        wrong += _compare(names, tgot[:2], twant[:2], report, "token-id input (E1)")
    # gradient check: finite differences of your forward against textbook's backward
    x, h_prev, c_prev, Wx, Wh, b = (np.ascontiguousarray(a, np.float64) for a in args)
    arrays = {"x_t": x, "h_prev": h_prev, "c_prev": c_prev, "Wx": Wx, "Wh": Wh, "b": b}
    R, RC = rng.standard_normal(h_prev.shape), rng.standard_normal(h_prev.shape)

    def f():
        with np.errstate(all="ignore"):
            h, c = func(*arrays.values())[:2]
        return float(np.vdot(h, R) + np.vdot(c, RC))

    _, _, cache = textbook.lstm_step_forward(*arrays.values())
    analytic = dict(zip(arrays, textbook.lstm_step_backward(R, RC, cache)))
    _gradcheck_rows(f, arrays, analytic, report, ctx["H"], "your forward, by finite differences, against "
                    "textbook's lstm_step_backward")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_step(func, textbook.lstm_step_backward), report, ex.name)


def _gradcheck_rows(f, arrays, analytic, report, H, what):
    try:
        with np.errstate(all="ignore"):
            rows = gradcheck.check_arrays(f, arrays, analytic, gates={k: H for k in ("Wx", "Wh", "b")
                                                                      if k in arrays and H})
    except Problem:
        raise
    except Exception as e:  # noqa: BLE001
        raise Problem(f"the gradient check could not run your code: {type(e).__name__}: {e}") from None
    bad = [r for r in rows if not r.max_rel < GRAD_TOL]
    text = ", ".join(f"{r.name} {r.max_rel:.0e}" for r in rows)
    (report.fail if bad else report.say)(f"gradient check (G3), {what}: {text} "
                                         f"({'all' if not bad else 'NOT all'} below {GRAD_TOL:g})")


def _judge_step_backward(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against numpylstm/textbook.py", ctx["H"])
    if not wrong:
        targs, _ = ex.inputs(rng, tokens=True)
        tgot, twant = _run_both(ex, func, targs, report, path)
        _check_shapes(ex.outputs, tgot, twant, report, "token-id input (E2), shapes")
        wrong += _compare(ex.outputs, tgot, twant, report, "token-id input (E2)", ctx["H"])
    fwd = [np.ascontiguousarray(a, np.float64) for a in ctx["fwd"]]
    arrays = dict(zip(("x_t", "h_prev", "c_prev", "Wx", "Wh", "b"), fwd))
    dh, dc_next = args[0], args[1]

    def f():
        h, c, _ = textbook.lstm_step_forward(*arrays.values())
        return float(np.vdot(h, dh) + np.vdot(c, dc_next))

    _gradcheck_rows(f, arrays, dict(zip(arrays, (got[0], got[1], got[2], got[3], got[4], got[5]))), report,
                    ctx["H"], "against finite differences of textbook's forward")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_step(textbook.lstm_step_forward, func), report, ex.name)


def _judge_backward(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against numpylstm/textbook.py", ctx["H"])
    fwd = [np.ascontiguousarray(a, np.float64) for a in ctx["fwd"]]
    arrays = dict(zip(("x", "h0", "c0", "Wx", "Wh", "b"), fwd))
    dhs, _, dhT, dcT = args

    def f():
        hs, (hT, cT), _ = textbook.lstm_forward(*arrays.values())
        return float(np.vdot(hs, dhs) + np.vdot(hT, dhT) + np.vdot(cT, dcT))

    _gradcheck_rows(f, arrays, dict(zip(arrays, got)), report, ctx["H"],
                    "against finite differences of textbook's lstm_forward, T = 3")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_lstm_backward(func), report, ex.name)


def _judge_rnn(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against numpylstm/rnn.py")
    if not wrong:
        targs, _ = ex.inputs(rng, tokens=True)
        tgot, twant = _run_both(ex, func, targs, report, path)
        _check_shapes(ex.outputs, tgot, twant, report, "token-id input (E2), shapes")
        wrong += _compare(ex.outputs, tgot, twant, report, "token-id input (E2)")
    arrays = dict(zip(("x_t", "h_prev", "Wx", "Wh", "b"), (np.ascontiguousarray(a, np.float64) for a in ctx["fwd"])))
    dh = args[0]

    def f():
        return float(np.vdot(rnn.rnn_step_forward(*arrays.values())[0], dh))

    _gradcheck_rows(f, arrays, dict(zip(arrays, got)), report, None,
                    "against finite differences of rnn.rnn_step_forward")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_rnn_step(func), report, ex.name)


def _judge_gru(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against numpylstm/gru.py")
    if not wrong:
        targs, _ = ex.inputs(rng, tokens=True)
        tgot, twant = _run_both(ex, func, targs, report, path)
        _check_shapes(ex.outputs, tgot, twant, report, "token-id input (E2), shapes")
        wrong += _compare(ex.outputs, tgot, twant, report, "token-id input (E2)")
    arrays = dict(zip(("x_t", "h_prev", "Wx", "Wh", "bx", "bh"),
                      (np.ascontiguousarray(a, np.float64) for a in ctx["fwd"])))
    dh = args[0]

    def f():
        return float(np.vdot(_gru.gru_step_forward(*arrays.values())[0], dh))

    _gradcheck_rows(f, arrays, dict(zip(arrays, got)), report, None,
                    "against finite differences of gru.gru_step_forward")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_gru_step(func), report, ex.name)


def _judge_peephole(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, ctx = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against numpylstm/cells/peephole.py", ctx["H"])
    if not wrong:
        targs, _ = ex.inputs(rng, tokens=True)
        tgot, twant = _run_both(ex, func, targs, report, path)
        _check_shapes(ex.outputs, tgot, twant, report, "token-id input (E2), shapes")
        wrong += _compare(ex.outputs, tgot, twant, report, "token-id input (E2)", ctx["H"])
    arrays = dict(zip(("x_t", "h_prev", "c_prev", "Wx", "Wh", "b", "p"),
                      (np.ascontiguousarray(a, np.float64) for a in ctx["fwd"])))
    dh, dc_next = args[0], args[1]

    def f():
        h, c, _ = _peephole.peephole_step_forward(*arrays.values())
        return float(np.vdot(h, dh) + np.vdot(c, dc_next))

    _gradcheck_rows(f, arrays, dict(zip(arrays, got)), report, ctx["H"],
                    "against finite differences of peephole_step_forward")
    if wrong or not report.ok:
        _report_diagnosis(diagnose_peephole_step(_peephole.peephole_step_forward, func), report, ex.name)


def _judge_softmax(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, _ = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "values against the reference (losses.softmax_ce)")
    big = (args[0] + 800.0, args[1])  # logits ~800: e^800 overflows unless z_max is subtracted (L3)
    bgot, bwant = _run_both(ex, func, big, report, path)
    finite = all(np.all(np.isfinite(np.asarray(v, float))) for v in bgot)
    if not finite:
        report.fail("logits near 800 give NaN or inf: subtract z_max before exp, as (L3) does")
        wrong.append("loss")
    else:
        wrong += _compare(ex.outputs, bgot, bwant, report, "logits near 800")
    z = np.ascontiguousarray(args[0], np.float64)

    def f():
        return reference.softmax_ce_backward(z, args[1])[0]

    _gradcheck_rows(f, {"logits": z}, {"logits": got[1]}, report, None, "dlogits against finite differences of (L3)")
    if wrong or not report.ok:
        labels = (["L3"] if "loss" in wrong else []) + (["L4"] if "dlogits" in wrong or not report.ok else [])
        _report_diagnosis(Diagnosis(dict.fromkeys(labels), [
            "the loss (L3) is wrong" if "L3" in labels else "the loss (L3) is right",
            "dlogits (L4) is wrong" if "L4" in labels else "dlogits (L4) is right"]), report, ex.name)


def _judge_adam(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    args, _ = ex.inputs(rng)
    got, want = _run_both(ex, func, args, report, path)
    _check_shapes(ex.outputs, got, want, report)
    wrong = _compare(ex.outputs, got, want, report, "one step at t = 3 against the reference")
    # three steps from zero moments against numpylstm.optim.Adam
    theta0 = rng.standard_normal((2, 3))
    p = {"w": theta0.copy()}
    opt = optim.Adam(p, lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    for t in range(1, 4):
        g = rng.standard_normal(theta0.shape)
        opt.step({"w": g})
        theta, m, v = _as_outputs(_call(func, (theta, g, m, v, t, 1e-2, 0.9, 0.999, 1e-8), report, path),
                                  ex.outputs, report)
    rel = float(gradcheck.relative_error(np.asarray(theta, float), p["w"]).max())
    (report.say if rel <= VALUE_TOL else report.fail)(
        f"three steps from m = v = 0 against numpylstm.optim.Adam: max rel err {rel:.1e}")
    if wrong or not report.ok:
        labels = []
        if "m" in wrong or "v" in wrong:
            labels.append("O3")
        else:  # m, v right: the corrections (O4) or the step (O5); at t = 10^6 the corrections are 1
            a = list(args)
            a[4] = 10**6
            late, late_ref = (_as_outputs(_call(fn, a, report, path), ex.outputs, report)
                              for fn in (func, ex.reference))
            labels.append("O4" if _compare(("theta",), late[:1], late_ref[:1], Report("x")) == [] else "O5")
        _report_diagnosis(Diagnosis(labels, [{"O3": "m or v is wrong: the moments (O3)",
                                              "O4": "theta is right once the bias corrections are 1 (t = 10^6): (O4)",
                                              "O5": "m and v are right, theta is wrong even at t = 10^6: the step (O5)"}
                                             [labels[0]]]), report, ex.name)


def _judge_clip(ex, func, report, path=None):
    rng = np.random.default_rng(0)
    wrong = []
    for scale, what in ((1.0, "a norm above max_norm"), (0.01, "a norm below max_norm (nothing changes)")):
        (grads, max_norm), _ = ex.inputs(rng)
        grads = {k: v * scale for k, v in grads.items()}
        mine = {k: v.copy() for k, v in grads.items()}
        theirs = {k: v.copy() for k, v in grads.items()}
        n = _call(func, (mine, max_norm), report, path, copy=False)
        n_ref = reference.clip_grad_norm(theirs, max_norm)
        if not isinstance(n, (float, int, np.floating)) or not math.isfinite(float(n)):
            raise Problem(f"clip_grad_norm must return the norm before clipping as a number; got {n!r}")
        names = ("n", *mine)
        got, want = (float(n), *mine.values()), (n_ref, *theirs.values())
        _check_shapes(names, got, want, report, "shapes" if scale == 1.0 else f"{what}, shapes")
        wrong += _compare(names, got, want, report, what)
    if wrong:
        _report_diagnosis(Diagnosis(["O6"], ["the norm n is wrong" if "n" in wrong else
                                             "n is right; the arrays are not rescaled in place by max_norm / n"]),
                          report, ex.name)


# ----------------------------------------------------------------------------------------------- catalog


def _span(first, last):
    """'(first)-(last)': the labels of an exercise whose module may be missing (a copy without chapter 12)."""
    return f"({first})-({last})"


_LSTM_IMPORTS = ("import numpy as np\n\n"
                 "from numpylstm.textbook import sigmoid  # sigmoid(z) = 1 / (1 + e^(-z)), overflow-safe\n")

EXERCISES = (
    Exercise("lstm_step_forward", "one LSTM step forward", "(F1)-(F5), (E1)", "derivations/02_forward.md",
             textbook.lstm_step_forward, "numpylstm/textbook.py", _LSTM_IMPORTS, ("h_t", "c_t", "step_cache"),
             _inputs_step_forward, _judge_step_forward),
    Exercise("lstm_step_backward", "one LSTM step backward", "(B2)-(B14), (E2)", "derivations/03_backward.md",
             textbook.lstm_step_backward, "numpylstm/textbook.py", "import numpy as np\n",
             ("dx_t", "dh_prev", "dc_prev", "dWx", "dWh", "db"), _inputs_step_backward, _judge_step_backward),
    Exercise("lstm_backward", "the BPTT loop over T steps", "(B1), (B12)-(B14)", "derivations/03_backward.md",
             textbook.lstm_backward, "numpylstm/textbook.py",
             "import numpy as np\n\nfrom numpylstm import _checks as chk  # argument checks\n"
             "from numpylstm.textbook import lstm_step_backward  # the step, as the library writes it\n",
             ("dx", "dh0", "dc0", "dWx", "dWh", "db"), _inputs_backward, _judge_backward),
    Exercise("rnn_step_backward", "one tanh RNN step backward", "(R4)-(R9), (E2)", "derivations/11_why_lstm.md",
             rnn.rnn_step_backward, "numpylstm/rnn.py", "import numpy as np\n",
             ("dx_t", "dh_prev", "dWx", "dWh", "db"), _inputs_rnn, _judge_rnn),
    Exercise("gru_step_backward", "one GRU step backward",
             _span("U7", "U17") + ", (E2)" if _gru else "the GRU's labels",
             "derivations/12_the_lstm_family.md", _gru and _gru.gru_step_backward, "numpylstm/gru.py",
             "import numpy as np\n", ("dx_t", "dh_prev", "dWx", "dWh", "dbx", "dbh"), _inputs_gru, _judge_gru,
             missing="waits for numpylstm/gru.py (the cells branch), not on this branch yet"),
    Exercise("peephole_step_backward", "one peephole LSTM step backward",
             "(B2)-(B14), " + _span("P4", "P7") if _peephole else "the peephole's labels",
             "derivations/12_the_lstm_family.md",
             _peephole and _peephole.peephole_step_backward, "numpylstm/cells/peephole.py", "import numpy as np\n",
             ("dx_t", "dh_prev", "dc_prev", "dWx", "dWh", "db", "dp"), _inputs_peephole, _judge_peephole,
             missing="waits for numpylstm/cells/peephole.py (the cells branch), not on this branch yet"),
    Exercise("softmax_ce_backward", "softmax cross-entropy and its gradient", "(L3), (L4)",
             "derivations/05_head_losses.md", reference.softmax_ce_backward, "numpylstm/exercises/reference.py",
             "import numpy as np\n", ("loss", "dlogits"), _inputs_softmax, _judge_softmax),
    Exercise("adam_step", "one Adam step", "(O3)-(O5)", "derivations/07_optimizers.md", reference.adam_step,
             "numpylstm/exercises/reference.py", "import numpy as np\n", ("theta", "m", "v"), _inputs_adam,
             _judge_adam),
    Exercise("clip_grad_norm", "global-norm gradient clipping", "(O6)", "derivations/07_optimizers.md",
             reference.clip_grad_norm, "numpylstm/exercises/reference.py", "import numpy as np\n", ("n",),
             _inputs_clip, _judge_clip),
)
BY_NAME = {ex.name: ex for ex in EXERCISES}


def available():
    return [ex for ex in EXERCISES if ex.reference is not None]


def check_function(name, func, path=None) -> Report:
    """Grade ``func`` as the exercise ``name``: a Report; nothing the learner's code raises escapes."""
    ex = BY_NAME[name]
    report = Report(name)
    try:
        _check_signature(ex, func)
        ex.judge(ex, func, report, path)
    except Problem as e:
        report.fail(str(e))
    return report


def _check_signature(ex, func):
    if not callable(func):
        raise Problem(f"{ex.name} is not a function")
    want = inspect.signature(ex.reference)
    try:
        have = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        have.bind(*range(len(want.parameters)))
    except TypeError:
        raise Problem(f"wrong signature: {ex.name}{have} cannot be called as {ex.name}{want}") from None


def load_function(name, path):
    """The function ``name`` defined in the learner's file at ``path`` (a Problem with one line if not)."""
    path = Path(path)
    try:
        src = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Problem(f"cannot read {path}: {e}") from None
    try:
        code = compile(src, str(path), "exec")
    except SyntaxError as e:
        raise Problem(f"{path} line {e.lineno}: SyntaxError: {e.msg}") from None
    namespace = {"__name__": f"exercise_{name}", "__file__": str(path)}
    try:
        exec(code, namespace)  # noqa: S102 - the learner's own file, run as the learner asked
    except Exception as e:  # noqa: BLE001
        raise Problem(f"running {path} raised {type(e).__name__}{_learner_line(e, path)}: {e}") from None
    func = namespace.get(name)
    if not callable(func):
        raise Problem(f"{path} defines no function {name}(...)")
    return func


def check_file(name, path) -> Report:
    """Grade the learner's file: load it, then ``check_function``. The pytest route calls this too."""
    report = Report(name)
    try:
        func = load_function(name, path)
    except Problem as e:
        report.fail(str(e))
        return report
    return check_function(name, func, path=Path(path))
