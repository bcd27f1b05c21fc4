"""Find the bug: ``python -m numpylstm.gradcheck --bugs --quiz``.

The zoo's bugs (numpylstm/bugzoo.py) one by one, names and stories hidden: the learner sees what the gradient
check shows -- the zoo's T = 3 table (worst error per gate block) and the one-step check (T = 1, dc_next = 0,
chapter 8 section 8.5) array by array -- and answers with the label of the wrong equation. Then the
diagnosis (``diagnose_step``, or ``diagnose_lstm_backward`` for the loop's bug) and the zoo's story.

Answers come from ``stdin`` one per line: a label (``B5``, ``(B5)``), empty to skip, ``q`` to stop. At the end
of the input (a pipe, a file, Ctrl-D) the quiz stops cleanly with the score so far.
"""

from __future__ import annotations

import re
import sys

import numpy as np

from .. import bugzoo, textbook
from ..gradcheck import check_layer_pair
from .blanks import where
from .diagnose import diagnose_lstm_backward, diagnose_step

LABEL_RE = re.compile(r"^\(?\s*([A-Za-z])\s*(\d+)\s*\)?$")


def _table(rows, say):
    say(f"    {'array':<8}{'max rel err':>13}   per gate block i, f, g, o")
    for r in rows:
        gates = "" if r.gates is None else "   " + "  ".join(f"{e:8.1e}" for e in r.gates)
        say(f"    {r.name:<8}{r.max_rel:>13.1e}{gates}")


def diagnosis_of(bug):
    """The Diagnosis of a zoo bug: its step pair, or its loop."""
    if bug.backward_step is not None:
        return diagnose_step(textbook.lstm_step_forward, bug.backward_step)
    return diagnose_lstm_backward(bug.backward)


def quiz(stdin=None, stream=None, bugs=None) -> int:
    """Run the quiz; returns 0 (the score is printed, not an exit status)."""
    stdin = sys.stdin if stdin is None else stdin
    stream = sys.stdout if stream is None else stream
    bugs = bugzoo.BUGS if bugs is None else bugs

    def say(text=""):
        print(text, file=stream, flush=True)

    say("Find the bug: each backward pass below has one wrong equation (or one wrong group of lines).")
    say("Answer with its label (B2 ... B14, K1: the assembly of da_t), Enter to skip, q to stop.")
    say("Chapter 8, section 8.5 (derivations/08_gradient_checking.md) explains how to read the one-step table.")
    right = asked = 0
    for k, bug in enumerate(bugs, 1):
        forward, backward = bugzoo.layer_pair(bug)
        say()
        say(f"bug {k} of {len(bugs)}")
        with np.errstate(all="ignore"):
            seq = check_layer_pair(forward, backward, N=2, T=3, D=4, H=3, seed=0)
            one = check_layer_pair(forward, backward, N=2, T=1, D=4, H=3, seed=0, final_state_grads=False)
        say("  the zoo's check, T = 3 (nonzero dhT, dcT):")
        _table(seq, say)
        say("  one step: T = 1, dc_next = 0 (h0 -> dh_prev, c0 -> dc_prev, x -> dx):")
        _table(one, say)
        print("  which equation is wrong? ", end="", file=stream, flush=True)
        line = stdin.readline()
        if not line:
            say()
            say("(end of input: the quiz stops here)")
            break
        answer = line.strip()
        say(answer)
        if answer.lower() in ("q", "quit", "exit"):
            break
        d = diagnosis_of(bug)
        m = LABEL_RE.match(answer)
        label = f"{m.group(1).upper()}{m.group(2)}" if m else None
        if answer and label is None:
            say(f"  '{answer}' is not a label (a letter and a number, e.g. B5): counted as skipped")
        if label is not None:
            asked += 1
            ok = label in d
            right += ok
            say(f"  {'right' if ok else 'not quite'}: ({label})" + ("" if ok else f"; the wrong line is "
                                                                     f"{' or '.join(f'({s})' for s in d)}"))
        say(f"  diagnosis: suspects {', '.join(f'({s}) {where(s)}' for s in d) or 'none'}")
        for note in d.notes:
            say(f"    {note}")
        say(f"  the bug: '{bug.name}': {bug.known_from}")
    say()
    say(f"score: {right} of {asked} answered")
    return 0
