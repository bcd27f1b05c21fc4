"""The errata of derivations/01 and 04-09 stay fixed: numbers quoted in the prose are computed, not typed.

* 09's tables are exactly what derivations/scripts/worked_example.py prints (so every figure in them comes
  from unrounded arithmetic), and the sums quoted in the prose of 08 and 09 are recomputed here.
* 08's finite-difference figures come from derivations/scripts/fd_accuracy.py and gradcheck_demo.py.
* 07's factor for TF-1's epsilon is recomputed.
* The incoming gradients into the final state are written delta h_T^in, delta c_T^in, never delta h_T.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DERIV = ROOT / "derivations"
SCRIPTS = DERIV / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read(name):
    return (DERIV / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def example():
    return load("worked_example")


def test_worked_example_tables_are_the_scripts_output():
    out = subprocess.run([sys.executable, str(SCRIPTS / "worked_example.py")], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    doc = read("09_worked_example.md")
    tables = [t for t in out.strip().split("\n\n") if t.strip()]
    assert len(tables) == 4
    for t in tables:
        assert t in doc, f"09_worked_example.md does not hold this table as worked_example.py prints it:\n{t[:300]}"


def test_dc1_parts_quoted_from_unrounded_values(example):
    v = example.rows_by_key
    own = v["dh_1"] * example.acts[0][3] * (1 - example.tcs[0] ** 2)  # dh_1 o_1 (1 - tanh^2 c_1), (B2)
    assert math.isclose(v["dc_1<-2"] + own, v["dc_1"], rel_tol=1e-12)
    own_s, carried_s, total_s = example.fmt(own), example.fmt(v["dc_1<-2"]), example.fmt(v["dc_1"])
    assert own_s == "0.281827"
    doc9 = read("09_worked_example.md")
    assert f"and ${own_s}$ from $h_1$'s own gradient (B2)" in doc9
    assert f"`dc_1` $= {total_s}$ is the sum of `dc_1<-2` $= {carried_s}$" in doc9
    doc8 = read("08_gradient_checking.md")
    m = re.search(r"the same bug would give \$\\delta c_1 = ([0-9.]+)\$ instead of\s+\$([0-9.]+)\$", doc8)
    assert m and m.groups() == (own_s, total_s), m and m.groups()
    m = re.search(r"`dh_1` \$= ([0-9.]+)\$: \$w_1 = 0.5\$ from the loss plus \$([0-9.]+)\$", doc9)
    assert m and m.groups() == (example.fmt(v["dh_1"]), example.fmt(v["dh_1<-2"]))


def test_incoming_gradients_are_not_called_the_totals():
    bad = [r"\delta h_T = \delta c_T = 0", r"$\delta h_T$ (zero)", r"$\delta c_T$ (zero)",
           r"as its $(\delta h_T, \delta c_T)$", r"$(\delta h^{(l)}_T, \delta c^{(l)}_T)$"]
    files = ["01_notation.md"] + [p.name for p in sorted(DERIV.glob("0[4-9]_*.md"))]
    found = [f"{name}: {b}" for name in files for b in bad if b in read(name)]
    assert not found, found
    assert r"$\delta h_T^{\text{in}}$ (zero)" in read("09_worked_example.md")


def _sci(text):
    """'1.2 \\times 10^{-13}' -> 1.2e-13."""
    m = re.fullmatch(r"([0-9.]+) \\times 10\^\{(-?\d+)\}", text)
    return float(m.group(1)) * 10.0 ** int(m.group(2))


def _quoted(doc, before):
    m = re.search(re.escape(before) + r"\s*\$([^$]+)\$", doc)
    assert m, f"08 no longer says '{before} $...$'"
    return _sci(m.group(1))


def test_floor_example_in_08_is_measured():
    fa = load("fd_accuracy")
    largest, diff, plain, floored = fa.floor_example()
    doc = read("08_gradient_checking.md")
    # the analytic gradient is exact arithmetic: two printed digits must match
    assert f"{_quoted(doc, 'is at most'):.1e}" == f"{largest:.1e}"
    # roundoff-level figures depend on the BLAS; they must be of the printed size (within a factor of 10)
    for before, value in (("differ there by", diff), ("relative error reaches", plain),
                          ("In the example\nabove (G2) gives", floored)):
        q = _quoted(doc, before)
        assert q / 10 <= value <= q * 10, f"08 quotes {q:g} after '{before}', fd_accuracy.py gives {value:.2g}"
    # and the example shows what it is there to show: a correct gradient the floor rescues
    assert largest < fa.FLOOR and plain > 1e-5 and floored < 1e-9


def test_fifteen_problems_in_08_are_measured():
    fa = load("fd_accuracy")
    assert len(fa.SHAPES) == 15 and fa.SHAPES[0] == (1, 1, 1, 1) and fa.SHAPES[-1] == (3, 12, 4, 8)
    w1, w3 = fa.fifteen_problems()
    doc = read("08_gradient_checking.md")
    q1 = _quoted(doc, "gave a\nworst relative error of")
    q3 = _quoted(doc, "the worst relative error fell to\n")
    # roundoff-dominated figures: the printed size within a factor of 5 (they vary with the BLAS)
    assert q1 / 5 <= w1 <= q1 * 5 and q3 / 5 <= w3 <= q3 * 5, (q1, w1, q3, w3)
    assert w3 < w1 / 10  # (G3) at 1e-3 really is better than (G1) at 1e-5


def test_tf_epsilon_factor_in_07():
    factor = 1 / math.sqrt(1 - 0.999)  # TF-1's epsilon acts as epsilon / sqrt(1 - beta2^k) at k = 1
    assert round(factor) == 32
    assert f"about ${round(factor)}$ times `epsilon` at $k = 1$" in read("07_optimizers.md")
