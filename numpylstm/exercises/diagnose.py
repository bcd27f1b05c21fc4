"""Localising a wrong gradient: which equation of a backward step is wrong. Chapter 8, section 8.5.

The gradient check says *that* a backward pass is wrong; a sequence of T steps smears one wrong line over
every gate block (dc_t and dh_t carry it back in time). One step alone does not: with T = 1 and a chosen
dc_next each output of ``lstm_step_backward`` is a short chain of labelled lines, and inputs chosen to zero
one factor at a time tell apart the lines that touch the same gate block. This module probes a learner's
step pair that way:

1. The forward first (h_t, c_t against ``textbook.lstm_step_forward``): a wrong forward is named, the backward
   cannot be judged before it is right.
2. The five views of da_t. With N = 1, db = da_t (B14), dWx = x_t^T da_t (B12), dWh = h_{t-1}^T da_t (B13),
   dx_t = da_t Wx^T (B11), dh_{t-1} = da_t Wh^T (B10): each view gives or tests the da_t the learner computed.
   The view that disagrees with the others is the wrong line; a batch of three rows then tests the sums
   over the batch (a mean instead of a sum).
3. The learner's da_t against the true one, gate block by gate block, and dc_{t-1}:
   - a permutation of the true blocks is the assembly of da_t in the wrong order (K1);
   - one wrong dc_t shows in blocks i, f, g and in dc_{t-1} together, the same dc_t implied by all four (B2);
   - a block alone is either its upstream line ((B3)-(B6): do, di, df, dg) or its local derivative ((B8),
     (B9)). Two probes separate them: with the true upstream gradient zero (g = 0 for di, c_{t-1} = 0 for
     df, i = 0 for dg, c_t = 0 for do) a wrong local derivative still gives zero, a wrong upstream line
     usually not; with the gate's pre-activation held fixed (its weight columns zero, its bias fixed) a
     wrong local derivative gives the same ratio learner / truth whatever the other inputs, a wrong
     upstream line usually not (K2).
4. The zoo: the learner's six outputs are compared with each published bug of ``bugzoo.BUGS`` on the same
   probes; a match is named.

``diagnose_step(step_forward, step_backward)`` returns a ``Diagnosis``: a list of suspect labels (empty when
the pair is right) with ``.notes`` (the evidence, one line each) and ``.published`` (the zoo bug's name or
None). ``diagnose_rnn_step`` does the same for the tanh RNN's step ((R4)-(R9)), ``diagnose_lstm_backward`` for
the BPTT loop ((B1), the carried dc_{t+1} of (B2), the sums (B12)-(B14)).
"""

from __future__ import annotations

import itertools

import numpy as np

from .. import bugzoo, rnn, textbook

__all__ = ["Diagnosis", "diagnose_step", "diagnose_rnn_step", "diagnose_lstm_backward", "LSTM_OUTPUTS",
           "RNN_OUTPUTS"]

GATES = "ifgo"
RTOL = 1e-6  # two computations of the same float64 formula agree to ~1e-15; a wrong line differs by far more
LSTM_OUTPUTS = ("dx_t", "dh_prev", "dc_prev", "dWx", "dWh", "db")
RNN_OUTPUTS = ("dx_t", "dh_prev", "dWx", "dWh", "db")
# the line that computes each view of da_t
LSTM_VIEW_LABEL = {"dx_t": "B11", "dh_prev": "B10", "dWx": "B12", "dWh": "B13", "db": "B14"}
RNN_VIEW_LABEL = {"dx_t": "R5", "dh_prev": "R9", "dWx": "R6", "dWh": "R7", "db": "R8"}
UPSTREAM = {"i": "B4", "f": "B5", "g": "B6", "o": "B3"}  # the line computing d(gate)
LOCAL = {"i": "B8", "f": "B8", "g": "B9", "o": "B8"}  # the line multiplying by the gate's derivative


class Diagnosis(list):
    """Suspect equation labels, most likely first (a plain list: ``diagnose_step(...) == ["B6"]`` works).

    ``notes``: the evidence, one line each. ``published``: the name of the zoo bug the pair behaves like, or
    None. ``forward_wrong``: True when the suspects are forward labels (the backward was not judged).
    """

    def __init__(self, labels=(), notes=(), published=None, forward_wrong=False):
        super().__init__(labels)
        self.notes = list(notes)
        self.published = published
        self.forward_wrong = forward_wrong


def _close(a, b, rtol=RTOL):
    """Same values to rtol, relative to the larger of the two arrays' scales (at least 1e-8)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    if a.size == 0:
        return True
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(float(np.abs(b).max()), float(np.abs(a).max()), 1e-8)
    return bool(np.abs(a - b).max() <= rtol * scale)


def _blocks(v, H):
    """{gate: v[..., k H:(k+1) H]} for the fused 4H axis."""
    return {k: v[..., j * H:(j + 1) * H] for j, k in enumerate(GATES)}


def _sort_labels(labels):
    return sorted(dict.fromkeys(labels), key=lambda s: (s[0], int(s[1:])))


# ------------------------------------------------------------------------------------------- views of da_t


def _views(da, x, h_prev, Wx, Wh):
    """What each output computed from da_t should be ((B10)-(B14), or (R5)-(R9): the same five lines)."""
    return {"dx_t": da @ Wx.T, "dh_prev": da @ Wh.T, "dWx": x.T @ da, "dWh": h_prev.T @ da, "db": da.sum(axis=0)}


def _da_from_views(out, x, h_prev, Wx, Wh, da_ref):
    """For one row (N = 1): the da_t the learner's views agree on, and the views that disagree with it.

    Candidates: db itself, the first row of dWx / x[0, 0], of dWh / h[0, 0], and the true da_t; the candidate
    matching the most views wins (the true one on a tie).
    """
    cands = [da_ref]
    if out["db"] is not None and np.shape(out["db"]) == da_ref.shape[1:]:
        cands.append(np.asarray(out["db"])[None, :])
    if np.shape(out["dWx"]) == (x.shape[1], da_ref.shape[1]) and x[0, 0] != 0:
        cands.append(np.asarray(out["dWx"])[:1] / x[0, 0])
    if np.shape(out["dWh"]) == (h_prev.shape[1], da_ref.shape[1]) and h_prev[0, 0] != 0:
        cands.append(np.asarray(out["dWh"])[:1] / h_prev[0, 0])
    best = None
    for da in cands:
        if not np.all(np.isfinite(da)):
            continue
        want = _views(da, x, h_prev, Wx, Wh)
        bad = [k for k in want if not _close(out[k], want[k])]
        if best is None or len(bad) < len(best[1]):
            best = (da, bad)
    return best


# ------------------------------------------------------------------------------------------------ LSTM step


class _LSTMProbe:
    """One set of inputs for a step: forward inputs, dh_t, dc_next; run through the learner and textbook."""

    def __init__(self, rng, N=1, D=2, H=3, *, zero_block=None, bias=None, c_prev=None, dh=None, dc_next=None,
                 cancel_dc=False):
        self.H = H
        self.x = rng.standard_normal((N, D))
        self.h_prev = rng.standard_normal((N, H))
        self.c_prev = rng.standard_normal((N, H)) if c_prev is None else np.full((N, H), float(c_prev))
        self.Wx = rng.standard_normal((D, 4 * H)) / np.sqrt(D)
        self.Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
        self.b = rng.standard_normal(4 * H) * 0.5
        for k, value in (bias or {}).items():  # hold a gate's pre-activation at `value`: its columns zero
            j = GATES.index(k)
            self.Wx[:, j * H:(j + 1) * H] = 0.0
            self.Wh[:, j * H:(j + 1) * H] = 0.0
            self.b[j * H:(j + 1) * H] = value
        self.dh = rng.standard_normal((N, H)) if dh is None else np.full((N, H), float(dh))
        self.dc_next = rng.standard_normal((N, H)) if dc_next is None else np.full((N, H), float(dc_next))
        h, c, cache = textbook.lstm_step_forward(*self.inputs)
        _, _, _, _, _, self.i, self.f, self.g, self.o, self.tanh_c = cache
        if cancel_dc:  # dc_t = dc_next + dh o (1 - tanh^2 c) = 0: only the output gate gets a gradient
            self.dc_next = -self.dh * self.o * (1 - self.tanh_c**2)
        self.ref = textbook.lstm_step_backward(self.dh, self.dc_next, cache)
        self.h_ref, self.c_ref = h, c
        self.dc_t = self.dc_next + self.dh * self.o * (1 - self.tanh_c**2)  # (B2) the true dc_t

    @property
    def inputs(self):
        return self.x, self.h_prev, self.c_prev, self.Wx, self.Wh, self.b

    def run(self, forward, backward):
        """(h, c, outputs dict) of the learner's pair; raises what the learner's code raises."""
        h, c, cache = forward(*[a.copy() for a in self.inputs])
        out = backward(self.dh.copy(), self.dc_next.copy(), cache)
        if not isinstance(out, tuple) or len(out) != 6:
            raise ValueError("the step backward must return 6 arrays (dx_t, dh_prev, dc_prev, dWx, dWh, db)")
        return h, c, dict(zip(LSTM_OUTPUTS, out))


def _run(probe, forward, backward):
    try:
        with np.errstate(all="ignore"):
            return probe.run(forward, backward)
    except Exception:  # noqa: BLE001 - a learner's code may raise anything; the probe then tells nothing
        return None


def _forward_suspects(forward, rng):
    """Labels of a wrong forward step, or [] when h_t, c_t agree with textbook on three probes."""
    p = _LSTMProbe(rng, N=2)
    try:
        with np.errstate(all="ignore"):
            h, c, _ = forward(*[a.copy() for a in p.inputs])
    except Exception as e:  # noqa: BLE001
        return ["F1"], f"the forward step raised {type(e).__name__}: {e}"
    if _close(c, p.c_ref) and _close(h, p.h_ref):
        return [], ""
    if _close(c, p.c_ref):  # c_t right, h_t wrong: the output gate or (F5)
        return ["F5", "F2"], "c_t is right, h_t is wrong: the output line (F5) or the output gate (F2)"
    q = _LSTMProbe(rng, N=2, c_prev=0.0)
    try:
        with np.errstate(all="ignore"):
            _, c0, _ = forward(*[a.copy() for a in q.inputs])
    except Exception:  # noqa: BLE001
        c0 = None
    if c0 is not None and _close(c0, q.c_ref):
        return ["F4", "F2"], "c_t is wrong, but right when c_{t-1} = 0: the forget term f_t c_{t-1} of (F4)"
    return ["F4", "F3", "F2"], "c_t is wrong even with c_{t-1} = 0: the term i_t g_t of (F4), g_t (F3) or i_t (F2)"


def _published(probes, outs):
    """The name of the zoo's step bug that gives the learner's outputs on every probe, or None."""
    for bug in bugzoo.BUGS:
        if bug.backward_step is None:
            continue
        same = True
        for p, out in zip(probes, outs):
            if out is None:
                same = False
                break
            cache = textbook.lstm_step_forward(*p.inputs)[2]
            with np.errstate(all="ignore"):
                theirs = bug.backward_step(p.dh, p.dc_next, cache)
            if not all(_close(out[k], v) for k, v in zip(LSTM_OUTPUTS, theirs)):
                same = False
                break
        if same:
            return bug.name
    return None


def diagnose_step(step_forward, step_backward, seed=0):
    """Suspect labels for an LSTM step pair with the signatures of ``textbook.lstm_step_forward`` /
    ``lstm_step_backward`` (the cache is whatever ``step_forward`` returns). Empty when the pair is right.

    Returns a ``Diagnosis`` (a list of labels, with ``.notes`` and ``.published``). Chapter 8, section 8.5.
    """
    rng = np.random.default_rng(seed)
    fw, why = _forward_suspects(step_forward, rng)
    if fw:
        return Diagnosis(fw, [why + "; the backward is judged once the forward is right"], forward_wrong=True)
    notes, suspects = [], []

    # -- the probes (N = 1 unless said otherwise): generic ones with dc_next = 0 and not, then special ones
    generic = [_LSTMProbe(rng), _LSTMProbe(rng, dc_next=0.0), _LSTMProbe(rng), _LSTMProbe(rng, dh=0.0)]
    outs = [_run(p, step_forward, step_backward) for p in generic]
    if all(o is None for o in outs):
        return Diagnosis([], ["the step backward raised on every probe: nothing to localise"])

    # -- shapes: a wrong shape names its own line
    shape_bad = []
    for p, o in zip(generic, outs):
        if o is None:
            continue
        for k, ref in zip(LSTM_OUTPUTS, p.ref):
            if np.shape(o[2][k]) != np.shape(ref):
                shape_bad.append(k)
    for k in dict.fromkeys(shape_bad):
        label = LSTM_VIEW_LABEL.get(k, "B7")
        notes.append(f"{k} has the wrong shape: ({label})")
        suspects.append(label)
    if suspects:
        return Diagnosis(_sort_labels(suspects), notes)

    # -- views of da_t (N = 1): which of dx, dh_prev, dWx, dWh, db disagrees with the others
    H = generic[0].H
    da_l, view_bad = [], []
    for p, o in zip(generic, outs):
        if o is None:
            da_l.append(None)
            continue
        da, bad = _da_from_views(o[2], p.x, p.h_prev, p.Wx, p.Wh, p.ref[5][None, :])
        da_l.append(da)
        view_bad += bad
    batch = _LSTMProbe(rng, N=3)  # the sums over the batch: each row alone, then the three together
    rows = []
    for n in range(3):
        q = _LSTMProbe(np.random.default_rng(0), N=1)
        q.x, q.h_prev, q.c_prev = batch.x[n:n + 1], batch.h_prev[n:n + 1], batch.c_prev[n:n + 1]
        q.Wx, q.Wh, q.b, q.dh, q.dc_next = batch.Wx, batch.Wh, batch.b, batch.dh[n:n + 1], batch.dc_next[n:n + 1]
        cache = textbook.lstm_step_forward(*q.inputs)[2]
        q.ref = textbook.lstm_step_backward(q.dh, q.dc_next, cache)
        o = _run(q, step_forward, step_backward)
        rows.append(None if o is None else _da_from_views(o[2], q.x, q.h_prev, q.Wx, q.Wh, q.ref[5][None, :])[0])
    ob = _run(batch, step_forward, step_backward)
    if ob is not None and all(r is not None for r in rows):
        want = _views(np.concatenate(rows), batch.x, batch.h_prev, batch.Wx, batch.Wh)
        bad = [k for k in want if not _close(ob[2][k], want[k])]
        if bad and len(bad) < 5:
            notes += [f"{k} is right for one row but not for a batch of three: the sum over the batch in "
                      f"({LSTM_VIEW_LABEL[k]})" for k in bad if k not in view_bad]
            view_bad += bad
    for k in dict.fromkeys(view_bad):
        if len(set(view_bad)) < 5:
            suspects.append(LSTM_VIEW_LABEL[k])
            notes.append(f"{k} disagrees with the da_t the other outputs agree on: ({LSTM_VIEW_LABEL[k]})")

    # -- the learner's da_t against the true one, block by block, and dc_prev
    wrong, cw = set(), False
    for p, o, da in zip(generic, outs, da_l):
        if o is None or da is None:
            continue
        ref_da = p.ref[5][None, :]
        lb, rb = _blocks(da, H), _blocks(ref_da, H)
        wrong |= {k for k in GATES if not _close(lb[k], rb[k])}
        cw |= not _close(o[2]["dc_prev"], p.ref[2])
    explained = set()
    if wrong:  # the blocks in the wrong order: (K1)
        for p, o, da in zip(generic, outs, da_l):
            if da is None:
                continue
            rb = _blocks(p.ref[5][None, :], H)
            perms = [perm for perm in itertools.permutations(GATES) if perm != tuple(GATES)
                     and all(_close(_blocks(da, H)[k], rb[perm[j]]) for j, k in enumerate(GATES))]
            if not perms:
                break
        else:
            perm = perms[0]
            notes.append("da_t holds the right blocks in the wrong order: "
                         f"{', '.join(perm)} where (F1)'s order is i, f, g, o (K1)")
            suspects.append("K1")
            explained |= {k for j, k in enumerate(GATES) if perm[j] != k}
    if wrong and cw and {"i", "f", "g"} <= wrong:  # one wrong dc_t: (B2)
        agree, differs = True, False
        for p, o, da in zip(generic, outs, da_l):
            if da is None:
                continue
            lb = _blocks(da, H)
            implied = [o[2]["dc_prev"] / p.f, lb["i"] / (p.g * p.i * (1 - p.i)),
                       lb["f"] / (p.c_prev * p.f * (1 - p.f)), lb["g"] / (p.i * (1 - p.g**2))]
            agree &= all(_close(v, implied[0], 1e-5) for v in implied[1:])
            differs |= not _close(implied[0], p.dc_t)
        if agree and differs:
            at0 = outs[1] is None or not _close(outs[1][2]["dc_prev"], generic[1].ref[2])
            notes.append("blocks i, f, g and dc_prev are all wrong by one and the same dc_t: (B2)"
                         + (" (also with dc_next = 0: its dh_t term)" if at0 else
                            " (right when dc_next = 0: its dc_next term)"))
            suspects.append("B2")
            explained |= {"i", "f", "g"}
            cw = False
    if cw:
        notes.append("dc_prev is wrong while da_t is right or explained otherwise: (B7)")
        suspects.append("B7")
    rest = sorted(wrong - explained, key=GATES.index)
    if rest:
        suspects += _blocks_suspects(rest, step_forward, step_backward, rng, notes)

    published = _published(generic, [None if o is None else o[2] for o in outs]) if suspects else None
    if published:
        notes.append(f"this is the published bug '{published}' of the zoo (python -m numpylstm.gradcheck --bugs)")
    return Diagnosis(_sort_labels(suspects), notes, published)


def _block_da(probe, out, H):
    """The learner's and the true da_t block dicts of an N = 1 probe (the da_t most views agree on)."""
    ref = probe.ref[5][None, :]
    da = _da_from_views(out, probe.x, probe.h_prev, probe.Wx, probe.Wh, ref)[0]
    return _blocks(da, H), _blocks(ref, H)


def _blocks_suspects(rest, forward, backward, rng, notes):
    """For wrong gate blocks not explained by (B2) or (K1): the upstream line or the local derivative."""
    evident, local, constant = {}, {}, {}
    for k in rest:
        # zero the true upstream gradient of block k
        zero = {"i": dict(bias={"g": 0.0}), "f": dict(c_prev=0.0), "g": dict(bias={"i": -40.0}),
                "o": dict(bias={"g": 0.0}, c_prev=0.0)}[k]
        p = _LSTMProbe(rng, **zero)
        r = _run(p, forward, backward)
        evident[k] = False
        if r is not None:
            lb, rb = _block_da(p, r[2], p.H)
            scale = max(float(np.abs(p.ref[5]).max()), 1e-3)
            evident[k] = bool(np.abs(lb[k] - rb[k]).max() > RTOL * scale)
        # hold block k's pre-activation fixed (distinct per unit), vary everything else
        ratios = []
        for _ in range(3):
            q = _LSTMProbe(rng, bias={k: np.array([-1.5, 0.3, 1.2])})
            s = _run(q, forward, backward)
            if s is None:
                continue
            lb, rb = _block_da(q, s[2], q.H)
            with np.errstate(all="ignore"):
                ratios.append((lb[k] / rb[k]).ravel())
        ratios = np.array(ratios)
        ok = len(ratios) >= 2 and np.all(np.isfinite(ratios))
        local[k] = bool(ok and np.all(np.abs(ratios - ratios[0]) <= 1e-6 * np.maximum(1, np.abs(ratios[0]))))
        constant[k] = bool(local[k] and np.ptp(ratios[0]) <= 1e-6 * max(1.0, float(np.abs(ratios[0]).max())))
    out = []
    if len(rest) >= 2 and not (set(rest) - set("ifo")) and not any(evident[k] for k in rest):
        notes.append(f"gate blocks {', '.join(rest)} are wrong, g is right, and each vanishes with its "
                     "upstream gradient: the sigmoid derivative line (B8)")
        return ["B8"]
    for k in rest:
        up, lo = UPSTREAM[k], LOCAL[k]
        if evident[k]:
            notes.append(f"block {k} is wrong even where its true upstream gradient is 0: ({up})")
            out.append(up)
        elif local[k] and not constant[k]:
            notes.append(f"block {k}: learner / truth depends on the gate's value only (K2): its derivative ({lo})")
            out.append(lo)
        else:
            notes.append(f"block {k} is wrong: its upstream line ({up}) or its derivative ({lo})")
            out += [up, lo]
    return out


# ------------------------------------------------------------------------------------------------ RNN step


def diagnose_rnn_step(step_backward, seed=0):
    """Suspect labels for a tanh RNN step backward with the signature of ``rnn.rnn_step_backward``
    (the cache from ``rnn.rnn_step_forward``): (R4) for a wrong da_t, (R5)-(R9) for a wrong view of it."""
    rng = np.random.default_rng(seed)
    notes, suspects, wrong_da = [], [], False
    N1 = []
    for _ in range(3):
        D, H = 2, 3
        x, h_prev = rng.standard_normal((1, D)), rng.standard_normal((1, H))
        Wx, Wh, b = rng.standard_normal((D, H)), rng.standard_normal((H, H)) / np.sqrt(H), rng.standard_normal(H)
        dh = rng.standard_normal((1, H))
        _, cache = rnn.rnn_step_forward(x, h_prev, Wx, Wh, b)
        ref = rnn.rnn_step_backward(dh, cache)
        try:
            with np.errstate(all="ignore"):
                out = step_backward(dh.copy(), tuple(a.copy() for a in cache))
        except Exception:  # noqa: BLE001
            continue
        if not isinstance(out, tuple) or len(out) != 5:
            continue
        out = dict(zip(RNN_OUTPUTS, out))
        for k, r in zip(RNN_OUTPUTS, ref):
            if np.shape(out[k]) != np.shape(r):
                return Diagnosis([RNN_VIEW_LABEL[k]], [f"{k} has the wrong shape: ({RNN_VIEW_LABEL[k]})"])
        da, bad = _da_from_views(out, x, h_prev, Wx, Wh, ref[4][None, :])
        N1.append(bad)
        if len(bad) < 5:
            suspects += [RNN_VIEW_LABEL[k] for k in bad]
        if not _close(da, ref[4][None, :]):
            wrong_da = True
    # batch sums
    D, H, N = 2, 3, 3
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, H)), rng.standard_normal((H, H)) / np.sqrt(H), rng.standard_normal(H)
    dh = rng.standard_normal((N, H))
    rows = []
    try:
        with np.errstate(all="ignore"):
            for n in range(N):
                _, c = rnn.rnn_step_forward(x[n:n + 1], h_prev[n:n + 1], Wx, Wh, b)
                o = dict(zip(RNN_OUTPUTS, step_backward(dh[n:n + 1].copy(), c)))
                rows.append(_da_from_views(o, x[n:n + 1], h_prev[n:n + 1], Wx, Wh,
                                           rnn.rnn_step_backward(dh[n:n + 1], c)[4][None, :])[0])
            _, c = rnn.rnn_step_forward(x, h_prev, Wx, Wh, b)
            ob = dict(zip(RNN_OUTPUTS, step_backward(dh.copy(), c)))
        want = _views(np.concatenate(rows), x, h_prev, Wx, Wh)
        bad = [k for k in want if not _close(ob[k], want[k])]
        if 0 < len(bad) < 5:
            suspects += [RNN_VIEW_LABEL[k] for k in bad]
            notes += [f"{k} is right for one row but not for a batch: the sum over the batch in "
                      f"({RNN_VIEW_LABEL[k]})" for k in bad]
    except Exception:  # noqa: BLE001
        pass
    for k in dict.fromkeys(suspects):
        notes.append(f"a view of da_t disagrees with the others: ({k})")
    if wrong_da:
        notes.append("all five outputs agree on a wrong da_t = dh_t (1 - h_t^2): (R4)")
        suspects.append("R4")
    return Diagnosis(_sort_labels(suspects), notes)


# ------------------------------------------------------------------------------------------------ LSTM loop


def diagnose_lstm_backward(backward, seed=0):
    """Suspect labels for a BPTT loop with the signature of ``textbook.lstm_backward`` (textbook's forward
    and step functions around it): (B1) the summed dh_t, (B2) the carried dc_{t+1} f_{t+1}, (B12)-(B14)
    the sums over time of the weight gradients. The published bug 'averaged over T' is named."""
    rng = np.random.default_rng(seed)
    N, T, D, H = 2, 3, 2, 3
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)) / np.sqrt(H)
    b = rng.standard_normal(4 * H)
    _, _, cache = textbook.lstm_forward(x, h0, c0, Wx, Wh, b)
    # two forwards that cut one path back in time: Wh = 0 (no dh_{t-1} through (B10)), f = 0 (no (B7))
    _, _, cache_no_h = textbook.lstm_forward(x, h0, c0, Wx, np.zeros_like(Wh), b)
    Wx_f, Wh_f, b_f = Wx.copy(), Wh.copy(), b.copy()
    Wx_f[:, H:2 * H], Wh_f[:, H:2 * H], b_f[H:2 * H] = 0.0, 0.0, -40.0  # f_t = sigma(-40) ~ 4e-18
    _, _, cache_no_c = textbook.lstm_forward(x, h0, c0, Wx_f, Wh_f, b_f)
    names = ("dx", "dh0", "dc0", "dWx", "dWh", "db")
    weight_label = {"dWx": "B12", "dWh": "B13", "db": "B14"}

    def run(dhs, dhT, dcT, cache=cache):
        ref = dict(zip(names, textbook.lstm_backward(dhs, cache, dhT, dcT)))
        try:
            with np.errstate(all="ignore"):
                got = backward(dhs.copy(), cache, None if dhT is None else dhT.copy(),
                               None if dcT is None else dcT.copy())
            got = dict(zip(names, got))
        except Exception:  # noqa: BLE001
            return ref, None
        return ref, got

    notes, suspects = [], []
    full = (rng.standard_normal((N, T, H)), rng.standard_normal((N, H)), rng.standard_normal((N, H)))
    ref, got = run(*full)
    if got is None:
        return Diagnosis([], ["lstm_backward raised: nothing to localise"])
    bad = [k for k in names if not _close(got[k], ref[k])]
    if not bad:
        return Diagnosis([], [])
    if set(bad) <= set(weight_label):
        ratios = {k: np.asarray(got[k]) / ref[k] for k in bad}
        for k in bad:
            suspects.append(weight_label[k])
            notes.append(f"{k} is wrong while dx, dh0, dc0 are right: the sum over t ({weight_label[k]})")
        if all(np.allclose(r, 1 / T) for r in ratios.values()):
            notes.append(f"each is the true one divided by T = {T}: this is the published bug 'averaged over T' "
                         "of the zoo (python -m numpylstm.gradcheck --bugs)")
            return Diagnosis(_sort_labels(suspects), notes, "averaged over T")
        return Diagnosis(_sort_labels(suspects), notes)
    zero = np.zeros((N, H))
    dhs0 = np.zeros((N, T, H))
    probes = (("B2", "only dcT nonzero and Wh = 0 (no path through h): the cell gradient carried back, "
                     "dc_{t+1} f_{t+1} of (B2),", (dhs0, zero, rng.standard_normal((N, H)), cache_no_h)),
              ("B1", "only dhT nonzero and f = 0 (no path through c): the carried dh_t of (B1)",
               (dhs0, rng.standard_normal((N, H)), zero, cache_no_c)))
    for label, why, args in probes:
        r, g = run(*args)
        if g is None or not all(_close(g[k], r[k]) for k in names):
            suspects.append(label)
            notes.append(why + " is wrong")
    last = np.zeros((N, T, H))
    last[:, -1] = rng.standard_normal((N, H))
    r, g = run(last, zero, zero)
    if g is None or not _close(np.asarray(g["dx"])[:, -1], r["dx"][:, -1]):
        suspects.append("B1")
        notes.append("dhs at the last step alone gives a wrong dx at that step: the sum dh_t = dhs_t + ... (B1)")
    if not suspects:
        suspects = [weight_label[k] for k in bad if k in weight_label] or ["B1"]
        notes.append("wrong outputs: " + ", ".join(bad))
    return Diagnosis(_sort_labels(suspects), notes)
