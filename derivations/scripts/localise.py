"""Chapter 8, section 8.5: localising a wrong gradient, on the zoo's bugs and on single-line bugs of our own.

    PYTHONPATH=. python derivations/scripts/localise.py "no tanh'" "df uses c_t"   # the worked examples
    PYTHONPATH=. python derivations/scripts/localise.py --table                     # the diagnosis table

For each named zoo bug: the zoo's check at T = 3 (the table of section 8.4, every array), the one-step check
(T = 1, dc_next = 0) and what ``numpylstm.exercises.diagnose_step`` concludes, with its evidence.
``--table``: bug, true label, suspects for the zoo and for the own bugs of tests/own_bugs.py. A few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # own_bugs.py: the single-line bugs the tests keep

from numpylstm import bugzoo, textbook  # noqa: E402
from numpylstm.exercises import diagnose_step  # noqa: E402
from numpylstm.exercises.quiz import _table, diagnosis_of  # noqa: E402
from numpylstm.gradcheck import check_layer_pair  # noqa: E402
from numpylstm.train import pipe_safe_stdout  # noqa: E402

ZOO_TRUE = {"no tanh'": "B2", "dc not carried": "B7", "sigmoid twice": "B8", "sigma' at a": "B8",
            "averaged over T": "B12-B14", "wrong bias block": "B14", "gates swapped": "K1",
            "dh not carried": "B10", "df uses c_t": "B5"}


def show(name):
    bug = next(b for b in bugzoo.BUGS if b.name == name)
    forward, backward = bugzoo.layer_pair(bug)
    with np.errstate(all="ignore"):
        seq = check_layer_pair(forward, backward, N=2, T=3, D=4, H=3, seed=0)
        one = check_layer_pair(forward, backward, N=2, T=1, D=4, H=3, seed=0, final_state_grads=False)
    print(f"bug '{name}'")
    print("  the zoo's check, T = 3 (nonzero dhT, dcT):")
    _table(seq, print)
    print("  one step: T = 1, dc_next = 0 (h0 -> dh_prev, c0 -> dc_prev, x -> dx):")
    _table(one, print)
    d = diagnosis_of(bug)
    print(f"  diagnose_step: {list(d)}")
    for note in d.notes:
        print(f"    {note}")
    print()


def table():
    from own_bugs import OWN_BUGS, mutant

    print(f"{'bug':<34}{'true label':<12}suspects")
    for bug in bugzoo.BUGS:
        print(f"{'zoo: ' + bug.name:<34}{ZOO_TRUE[bug.name]:<12}{', '.join(diagnosis_of(bug))}")
    hits = 0
    for name, (label, _, _) in OWN_BUGS.items():
        d = diagnose_step(textbook.lstm_step_forward, mutant(name))
        hits += label in d and len(d) <= 2
        print(f"{'own: ' + name:<34}{label:<12}{', '.join(d)}")
    print(f"own bugs localised to at most two suspects including the true one: {hits} of {len(OWN_BUGS)}")
    try:
        from numpylstm import gru
        from numpylstm.cells import peephole
    except ImportError:
        return
    import inspect
    import textwrap

    from own_bugs import GRU_BUGS, PEEPHOLE_BUGS

    from numpylstm.exercises import diagnose_gru_step, diagnose_peephole_step

    def mutant_of(func, old, new, namespace):
        ns = dict(namespace)
        exec(textwrap.dedent(inspect.getsource(func)).replace(old, new, 1), ns)  # noqa: S102
        return ns[func.__name__]

    print()
    print(f"{'GRU step: wrong line':<52}{'expected':<12}suspects")
    for old, new, labels in GRU_BUGS:
        d = diagnose_gru_step(mutant_of(gru.gru_step_backward, old, new, vars(gru)))
        print(f"{new[:50]:<52}{', '.join(labels):<12}{', '.join(d)}")
    print(f"{'peephole step: wrong line':<52}{'expected':<12}suspects")
    for old, new, labels, _ in PEEPHOLE_BUGS:
        d = diagnose_peephole_step(peephole.peephole_step_forward,
                                   mutant_of(peephole.peephole_step_backward, old, new, vars(peephole)))
        print(f"{new[:50]:<52}{', '.join(labels):<12}{', '.join(d)}")


def main(argv):
    with pipe_safe_stdout():
        if argv == ["--table"]:
            table()
            return 0
        names = argv or ["no tanh'", "df uses c_t"]
        known = [b.name for b in bugzoo.BUGS]
        for name in names:
            if name not in known:
                print(f"unknown bug {name!r}; the zoo's: {', '.join(known)}", file=sys.stderr)
                return 2
            show(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
