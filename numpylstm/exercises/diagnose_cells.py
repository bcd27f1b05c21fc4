"""Localising a wrong gradient in the GRU's and the peephole LSTM's step (chapter 8 section 8.5's method).

The cells come from ``numpylstm/gru.py`` and ``numpylstm/cells/peephole.py`` (chapter 12); both are imported
when a diagnosis runs, so this module loads on a branch without them.

- GRU, ``diagnose_gru_step(step_backward)``: with N = 1, dbx is d ax_t and dbh is d ah_t; the other outputs
  are views of them (dx_t, dWx of d ax_t; dWh and dh_prev of d ah_t), and d ah_t is d ax_t with the n block
  times r_t. The blocks r, z, n of d ax_t then separate the lines as in the LSTM: a wrong n block (with the r
  block wrong through it) is dn_t or tanh'; z alone is dz_t or sigma'; r alone is dr_t or sigma'. Inputs that
  zero the upstream gradient (z = 1 for dn_t, h_{t-1} Wh_n + bh_n = 0 for dr_t) and that hold one gate fixed
  tell the two apart, the ratio test of (K2).
- Peephole, ``diagnose_peephole_step(step_forward, step_backward)``: with p = 0 the peephole step is the LSTM
  step, so ``diagnose_step`` localises every line they share (its dc_t and dc_{t-1} lines are the peephole's
  own, which extend the LSTM's (B2) and (B7)); with p != 0, what is then still wrong is a peephole term: dp's
  rows i, f or o, the dc_t line or the dc_{t-1} line.
"""

from __future__ import annotations

import itertools

import numpy as np

from .diagnose import Diagnosis, _close, _sort_labels, diagnose_step

GRU_BLOCKS = "rzn"
# labels of numpylstm/gru.py, by role
GRU = {"dn": "U7", "dz": "U8", "dtanh": "U9", "dr": "U10", "dsigma": "U11", "dax": "U12", "dah": "U13",
       "dh_prev": "U14", "dWh": "U15", "db": "U16", "dx": "U17"}
# peephole.py's own lines, and the LSTM label each one extends
PEEPHOLE = {"dc_t": "P4", "dc_prev": "P5", "dp_if": "P6", "dp_o": "P7"}
PEEPHOLE_FOR_LSTM = {"B2": "P4", "B7": "P5"}


def _gru_blocks(v, H):
    return {k: v[..., j * H:(j + 1) * H] for j, k in enumerate(GRU_BLOCKS)}


class _GRUProbe:
    def __init__(self, rng, N=1, D=2, H=3, fix=None, ah_n_zero=False):
        from .. import gru

        self.H = H
        self.x = rng.standard_normal((N, D))
        self.h_prev = rng.standard_normal((N, H))
        self.Wx = rng.standard_normal((D, 3 * H)) / np.sqrt(D)
        self.Wh = rng.standard_normal((H, 3 * H)) / np.sqrt(H)
        self.bx, self.bh = rng.standard_normal(3 * H) * 0.5, rng.standard_normal(3 * H) * 0.5
        for k, value in (fix or {}).items():  # hold gate k's pre-activation at value: its columns zero
            j = GRU_BLOCKS.index(k)
            self.Wx[:, j * H:(j + 1) * H] = 0.0
            self.Wh[:, j * H:(j + 1) * H] = 0.0
            self.bx[j * H:(j + 1) * H] = value
            self.bh[j * H:(j + 1) * H] = 0.0
        if ah_n_zero:  # h_{t-1} Wh_n + bh_n = 0: the reset gate gets no gradient
            self.Wh[:, 2 * H:] = 0.0
            self.bh[2 * H:] = 0.0
        self.dh = rng.standard_normal((N, H))
        _, self.cache = gru.gru_step_forward(self.x, self.h_prev, self.Wx, self.Wh, self.bx, self.bh)
        self.ref = gru.gru_step_backward(self.dh, self.cache)
        self.r, self.z, self.n = self.cache[4], self.cache[5], self.cache[6]

    def run(self, backward):
        try:
            with np.errstate(all="ignore"):
                out = backward(self.dh.copy(), tuple(a.copy() if isinstance(a, np.ndarray) else a
                                                     for a in self.cache))
        except Exception:  # noqa: BLE001
            return None
        if not isinstance(out, tuple) or len(out) != 6:
            return None
        return dict(zip(("dx_t", "dh_prev", "dWx", "dWh", "dbx", "dbh"), out))


def _gru_views(out, p):
    """(d ax_t, d ah_t) the learner's views agree on (N = 1), and the labels of the views that disagree."""
    bad = []
    dax, dah = np.asarray(out["dbx"])[None, :], np.asarray(out["dbh"])[None, :]
    cands_x = [dax, np.asarray(out["dWx"])[:1] / p.x[0, 0]]
    cands_h = [dah, np.asarray(out["dWh"])[:1] / p.h_prev[0, 0]]

    def views_x(d):
        return {"dx_t": d @ p.Wx.T, "dWx": p.x.T @ d, "dbx": d.sum(axis=0)}

    def views_h(d):
        return {"dh_prev": p.dh * p.z + d @ p.Wh.T, "dWh": p.h_prev.T @ d, "dbh": d.sum(axis=0)}

    lab = {"dx_t": GRU["dx"], "dWx": GRU["dx"], "dbx": GRU["db"], "dh_prev": GRU["dh_prev"], "dWh": GRU["dWh"],
           "dbh": GRU["db"]}
    best = []
    for cands, views in ((cands_x, views_x), (cands_h, views_h)):
        scored = []
        for d in cands:
            if d.shape != (1, 3 * p.H) or not np.all(np.isfinite(d)):
                continue
            want = views(d)
            scored.append((sum(not _close(out[k], w) for k, w in want.items()), d,
                           [k for k, w in want.items() if not _close(out[k], w)]))
        scored.sort(key=lambda s: s[0])
        if not scored:
            return None, None, ["view"]
        best.append(scored[0][1])
        bad += [lab[k] for k in scored[0][2]]
    return best[0], best[1], bad


def diagnose_gru_step(step_backward, seed=0):
    """Suspect labels for a GRU step backward with the signature of ``gru.gru_step_backward`` (the cache of
    ``gru.gru_step_forward``). Empty when it is right."""
    rng = np.random.default_rng(seed)
    notes, suspects = [], []
    probes = [_GRUProbe(rng) for _ in range(3)]
    outs = [p.run(step_backward) for p in probes]
    if all(o is None for o in outs):
        return Diagnosis([], ["the step backward raised on every probe: nothing to localise"])
    for p, o in zip(probes, outs):
        if o is None:
            continue
        names = ("dx_t", "dh_prev", "dWx", "dWh", "dbx", "dbh")
        for k, r in zip(names, p.ref):
            if np.shape(o[k]) != np.shape(r):
                return Diagnosis([GRU["dx"] if k in ("dx_t", "dWx") else GRU["db"] if k.startswith("db")
                                  else GRU[k]], [f"{k} has the wrong shape"])
    wrong, dah_bad = set(), False
    for p, o in zip(probes, outs):
        if o is None:
            continue
        dax, dah, bad = _gru_views(o, p)
        suspects += bad
        if dax is None:
            continue
        ref_dax = p.ref[4][None, :]
        lb, rb = _gru_blocks(dax, p.H), _gru_blocks(ref_dax, p.H)
        wrong |= {k for k in GRU_BLOCKS if not _close(lb[k], rb[k])}
        lx = _gru_blocks(dax, p.H)
        want_dah = np.concatenate([lx["r"], lx["z"], lx["n"] * p.r], axis=1)
        dah_bad |= not _close(dah, want_dah)
    for s in dict.fromkeys(suspects):
        notes.append(f"a view of d ax_t or d ah_t disagrees with the others: ({s})")
    if dah_bad:
        suspects.append(GRU["dah"])
        notes.append(f"d ah_t is not d ax_t with its n block times r_t: ({GRU['dah']})")
    if wrong:
        p, o = probes[0], outs[0]
        perm_found = False
        if o is not None:
            dax = _gru_views(o, p)[0]
            rb = _gru_blocks(p.ref[4][None, :], p.H)
            for perm in itertools.permutations(GRU_BLOCKS):
                if perm != tuple(GRU_BLOCKS) and all(_close(_gru_blocks(dax, p.H)[k], rb[perm[j]])
                                                     for j, k in enumerate(GRU_BLOCKS)):
                    perm_found = True
        if perm_found:
            suspects = [s for s in suspects if s != GRU["dah"]]  # d ah_t's relation was to the wrong d ax_t
            suspects.append(GRU["dax"])
            notes.append(f"d ax_t holds the right blocks in the wrong order (r, z, n expected): ({GRU['dax']})")
        else:
            suspects += _gru_block_suspects(sorted(wrong, key=GRU_BLOCKS.index), step_backward, rng, notes)
    return Diagnosis(_sort_labels(suspects), notes)


def _ratio_local(step_backward, rng, k, upstream_zero):
    """(evident, local, constant) for block k of d ax_t, as in the LSTM's _blocks_suspects."""
    p = _GRUProbe(rng, **upstream_zero)
    o = p.run(step_backward)
    evident = False
    if o is not None:
        dax = _gru_views(o, p)[0]
        if dax is not None:
            lb, rb = _gru_blocks(dax, p.H), _gru_blocks(p.ref[4][None, :], p.H)
            scale = max(float(np.abs(p.ref[4]).max()), 1e-3)
            evident = bool(np.abs(lb[k] - rb[k]).max() > 1e-6 * scale)
    ratios = []
    for _ in range(3):
        q = _GRUProbe(rng, fix={k: np.array([-1.5, 0.3, 1.2])})
        s = q.run(step_backward)
        if s is None:
            continue
        dax = _gru_views(s, q)[0]
        if dax is None:
            continue
        with np.errstate(all="ignore"):
            ratios.append((_gru_blocks(dax, q.H)[k] / _gru_blocks(q.ref[4][None, :], q.H)[k]).ravel())
    ratios = np.array(ratios)
    ok = len(ratios) >= 2 and np.all(np.isfinite(ratios))
    local = bool(ok and np.all(np.abs(ratios - ratios[0]) <= 1e-6 * np.maximum(1, np.abs(ratios[0]))))
    constant = bool(local and np.ptp(ratios[0]) <= 1e-6 * max(1.0, float(np.abs(ratios[0]).max())))
    return evident, local, constant


def _gru_block_suspects(wrong, step_backward, rng, notes):
    """Block n (its error also reaches r through dr_t = da_n ah_n), z alone, r alone, or r and z."""
    if "n" in wrong:
        up, lo, zero, k = GRU["dn"], GRU["dtanh"], {"fix": {"z": 40.0}}, "n"  # z = 1: dn_t = 0
    elif wrong == ["r", "z"]:
        notes.append(f"blocks r and z are wrong, n is right: the sigmoid derivative line ({GRU['dsigma']})")
        return [GRU["dsigma"]]
    elif wrong == ["z"]:
        up, lo, zero, k = GRU["dz"], GRU["dsigma"], None, "z"
    else:
        up, lo, zero, k = GRU["dr"], GRU["dsigma"], {"ah_n_zero": True}, "r"
    if zero is None:
        _, local, constant = _ratio_local(step_backward, rng, k, {})
        evident = False
    else:
        evident, local, constant = _ratio_local(step_backward, rng, k, zero)
    if evident:
        notes.append(f"block {k} is wrong even where its true upstream gradient is 0: ({up})")
        return [up]
    if local and not constant:
        notes.append(f"block {k}: learner / truth depends on the gate's value only (K2): its derivative ({lo})")
        return [lo]
    notes.append(f"block {k} is wrong: its upstream line ({up}) or its derivative ({lo})")
    return [up, lo]


# -------------------------------------------------------------------------------------------------- peephole


def diagnose_peephole_step(step_forward, step_backward, seed=0):
    """Suspect labels for a peephole step pair with the signatures of ``cells.peephole.peephole_step_forward``
    / ``peephole_step_backward``. Empty when the pair is right."""
    from ..cells import peephole

    def fwd0(x, h, c, Wx, Wh, b):  # p = 0: the LSTM step
        return step_forward(x, h, c, Wx, Wh, b, np.zeros((3, Wh.shape[0])))

    def bwd0(dh, dc, cache):
        out = step_backward(dh, dc, cache)
        if not isinstance(out, tuple) or len(out) != 7:
            raise ValueError("the peephole step backward returns 7 arrays")
        return out[:6]

    d = diagnose_step(fwd0, bwd0, seed)
    if d:
        labels = [PEEPHOLE_FOR_LSTM.get(s, s) for s in d]
        notes = ["with p = 0 the peephole step is the LSTM step: " + n for n in d.notes]
        return Diagnosis(_sort_labels(labels), notes, d.published, d.forward_wrong)
    # p != 0: only the peephole terms are left
    rng = np.random.default_rng(seed + 1)
    N, D, H = 2, 2, 3
    suspects, notes = [], []
    for _ in range(3):
        args = (rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
                rng.standard_normal((D, 4 * H)) / 2, rng.standard_normal((H, 4 * H)) / 2,
                rng.standard_normal(4 * H) / 2, rng.standard_normal((3, H)))
        h, c, cache = peephole.peephole_step_forward(*args)
        dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
        ref = peephole.peephole_step_backward(dh, dc, cache)
        try:
            with np.errstate(all="ignore"):
                h_l, c_l, cache_l = step_forward(*[a.copy() for a in args])
                if not (_close(h_l, h) and _close(c_l, c)):
                    return Diagnosis(["P1", "P2", "P3"][:2] if not _close(c_l, c) else ["P3"],
                                     ["the forward is wrong only when p != 0: its peephole terms"], None, True)
                got = step_backward(dh.copy(), dc.copy(), cache_l)
        except Exception:  # noqa: BLE001
            continue
        names = ("dx_t", "dh_prev", "dc_prev", "dWx", "dWh", "db", "dp")
        bad = {k for k, g, r in zip(names, got, ref) if not _close(g, r)}
        if bad == {"dc_prev"}:
            suspects.append(PEEPHOLE["dc_prev"])
        elif bad == {"dp"}:
            rows = [j for j in range(3) if not _close(np.asarray(got[6])[j], ref[6][j])]
            suspects += [PEEPHOLE["dp_o"] if j == 2 else PEEPHOLE["dp_if"] for j in rows]
        elif bad:
            suspects.append(PEEPHOLE["dc_t"])
    for s in dict.fromkeys(suspects):
        notes.append(f"right with p = 0, wrong with p != 0: a peephole term, ({s})")
    return Diagnosis(_sort_labels(suspects), notes)
