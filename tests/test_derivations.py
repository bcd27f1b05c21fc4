"""The derivations in derivations/*.md and the code in numpylstm/ must agree.

* Labels: every equation label cited in the code, e.g. ``(B7)`` in a comment, is defined exactly once in the
  Markdown (as a MathJax tag inside a display block), and every defined label is cited somewhere in the code.
  The label rules cover the project's own files only: the files of ``numpylstm/`` and ``derivations/`` that
  git tracks (committed or ``git add``-ed; all files when git or the repository is unavailable, e.g. in an
  unpacked archive). A module of your own with its own labels, say ``(P9)`` for a cell you are trying, does
  not break ``pytest`` while it is untracked; to bring it under the rules, define each label with ``\\tag{P9}``
  in a chapter of derivations/, add it to ``AGREED`` below, and ``git add`` both (derivations/README.md).
* The public layer functions name the files that derive them.
* The worked example of derivations/09_worked_example.md: its tables are parsed from the Markdown and every
  printed number is checked against numpylstm and against an independent scalar computation (math only).
* Quoted code: every inline code span of the derivations that quotes a line of numpylstm (a NumPy call, an
  ``out=`` argument, a matrix product ``@`` or an assignment) occurs verbatim, up to whitespace, in the package's
  tracked Python files (``numpylstm/cells/`` included), and the line-by-line tables list their lines in the
  order the code runs them.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import re
import subprocess
import tokenize
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import numpylstm
from numpylstm import lstm_backward, lstm_forward

ROOT = Path(__file__).resolve().parents[1]
DERIV = ROOT / "derivations"
PKG = ROOT / "numpylstm"
EXAMPLE = DERIV / "09_worked_example.md"

TAG_RE = re.compile(r"\\tag\{([A-Z]\d+)\}")
CITE_RE = re.compile(r"\(([A-Z]\d+)\)")

# The labels agreed with the authors of layers.py, model.py, optim.py and gradcheck.py.
AGREED = (
    [f"F{k}" for k in range(1, 6)]
    + ["E1", "E2"]
    + [f"B{k}" for k in range(1, 15)]
    + ["D1", "D2", "S1", "S2"]
    + [f"H{k}" for k in range(1, 5)]
    + [f"L{k}" for k in range(1, 5)]
    + [f"O{k}" for k in range(1, 7)]
    + ["G1", "G2", "G3"]
    + [f"R{k}" for k in range(1, 10)]  # 11_why_lstm.md: the plain RNN (numpylstm/rnn.py)
    + ["V1", "V2"]  # 11_why_lstm.md: the RNN's gradient across many steps (numpylstm/demos/gradients.py)
    + [f"U{k}" for k in range(1, 18)]  # 12_the_lstm_family.md: the GRU (numpylstm/gru.py)
    + [f"P{k}" for k in range(1, 8)]  # 12_the_lstm_family.md: the peephole LSTM (numpylstm/cells/peephole.py)
    + [f"Y{k}" for k in range(1, 17)]  # 12_the_lstm_family.md: Greff's variants (numpylstm/cells/<name>.py)
    + ["K1", "K2"]  # 08_gradient_checking.md 8.5: localising a wrong gradient (numpylstm/exercises/diagnose.py)
    + ["Q1", "Q2", "Q3"]  # 10_making_it_fast.md 10.15: the gradient as a sum over the batch (numpylstm/parallel.py)
    + [f"M{k}" for k in range(1, 10)]  # 13_memory_tasks.md: baselines, continual stream (numpylstm/demos/tasks.py)
    + ["W1"]  # 05_head_losses.md: the free-running forecast (numpylstm/demos/rollout.py)
)


def tracked_files(folder: Path, pattern: str) -> list[Path]:
    """The files under ``folder`` (recursively) matching ``pattern`` that git tracks -- committed or added to
    the index -- so that a learner's untracked module with labels of its own does not break the label tests.
    All matching files when git or a repository is unavailable."""
    files = sorted(folder.rglob(pattern))
    try:
        res = subprocess.run(["git", "ls-files", "-z"], cwd=folder, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return files
    if res.returncode != 0:
        return files
    listed = {(folder / name).resolve() for name in res.stdout.split("\0") if name}
    return [f for f in files if f.resolve() in listed]


def _label_key(label):
    return label[0], int(label[1:])


def _md_files():
    files = [f for f in tracked_files(DERIV, "*.md") if f.parent == DERIV]
    assert files, f"no Markdown files in {DERIV}"
    return files


def defined_labels() -> Counter:
    """label -> how many times it is defined with a tag in derivations/*.md."""
    counts: Counter = Counter()
    for path in _md_files():
        counts.update(TAG_RE.findall(path.read_text(encoding="utf-8")))
    return counts


def cited_labels(pkg: Path = PKG) -> dict[str, list[str]]:
    """label -> ['numpylstm/file.py:line', ...] for every (X) in the package's tracked Python files.

    The package's files only: a learner's exercise folder (``python -m numpylstm.exercises start``, default
    ``exercises/`` outside ``numpylstm/``) may cite labels as it likes without failing this test."""
    cites: dict[str, list[str]] = {}
    files = tracked_files(pkg, "*.py")
    assert files, f"no Python files in {pkg}"
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for label in CITE_RE.findall(line):
                cites.setdefault(label, []).append(f"{path.relative_to(pkg.parent)}:{lineno}")
    return cites


def _fmt(labels):
    return ", ".join(sorted(labels, key=_label_key))


# ---------------------------------------------------------------------------------------------- labels


def test_no_label_defined_twice():
    twice = {label: n for label, n in defined_labels().items() if n > 1}
    assert not twice, "labels defined more than once in derivations/*.md: " + ", ".join(
        f"{label} ({n}x)" for label, n in sorted(twice.items(), key=lambda kv: _label_key(kv[0]))
    )


def test_every_label_cited_in_code_is_defined():
    defined = defined_labels()
    missing = {label: where for label, where in cited_labels().items() if label not in defined}
    assert not missing, "labels cited in numpylstm/ but not defined in derivations/: " + "; ".join(
        f"{label} at {', '.join(where)}" for label, where in sorted(missing.items(), key=lambda kv: _label_key(kv[0]))
    )


def test_every_defined_label_is_cited_in_code():
    uncited = set(defined_labels()) - set(cited_labels())
    assert not uncited, f"labels defined in derivations/ but cited nowhere in numpylstm/: {_fmt(uncited)}"


def test_an_untracked_learner_module_does_not_break_the_label_rules(tmp_path):
    """A learner's own module citing (P9), not added to git, is outside the rules; once added, it is inside.
    Without git (or outside a repository) every file counts."""
    pkg = tmp_path / "numpylstm"
    (pkg / "cells").mkdir(parents=True)
    (pkg / "ours.py").write_text("a = 1  # (F1)\n", encoding="utf-8")
    (pkg / "cells" / "mine.py").write_text("p = 2  # (P9) my own peephole\n", encoding="utf-8")
    assert set(cited_labels(pkg)) == {"F1", "P9"}  # not a repository: every file
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    try:
        subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
        subprocess.run(git + ["add", "numpylstm/ours.py"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available")
    assert set(cited_labels(pkg)) == {"F1"}
    assert [f.name for f in tracked_files(pkg, "*.py")] == ["ours.py"]
    subprocess.run(git + ["add", "numpylstm/cells/mine.py"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert set(cited_labels(pkg)) == {"F1", "P9"}


def test_defined_labels_are_the_agreed_set():
    defined = set(defined_labels())
    assert defined == set(AGREED), (
        f"not defined: {_fmt(set(AGREED) - defined) or '-'}; unexpected: {_fmt(defined - set(AGREED)) or '-'}"
    )


def test_labels_cited_in_the_derivations_are_defined():
    defined = defined_labels()
    bad = []
    for path in _md_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            bad += [f"{label} at {path.name}:{lineno}" for label in CITE_RE.findall(line) if label not in defined]
    assert not bad, "the derivations refer to undefined labels: " + "; ".join(bad)


def tag_placement_problems(text: str, name: str = "<text>") -> list[str]:
    """Where a tag is not alone in a display: GitHub renders a tag only inside display math. A tag must sit
    in a fenced ```math block holding exactly one tag (the form issue 11 asks for: Markdown leaves its
    backslashes alone), or on a one-line $$ ... $$ display of its own."""
    bad, fence = [], None  # fence: (first line, tags so far) while inside a ```math block
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if fence is None and s.startswith("```math"):
            fence = (lineno, 0)
            continue
        if fence is not None:
            if s.startswith("```"):
                if fence[1] > 1:
                    bad.append(f"{name}:{fence[0]} ({fence[1]} tags in one math block)")
                fence = None
            else:
                fence = (fence[0], fence[1] + len(TAG_RE.findall(line)))
            continue
        if TAG_RE.search(line) and not (s.startswith("$$") and s.endswith("$$") and len(TAG_RE.findall(line)) == 1):
            bad.append(f"{name}:{lineno}")
    if fence is not None:
        bad.append(f"{name}:{fence[0]} (math block never closed)")
    return bad


def test_tags_sit_alone_in_display_blocks():
    bad = []
    for path in _md_files():
        bad += tag_placement_problems(path.read_text(encoding="utf-8"), path.name)
    assert not bad, "tagged equations outside a display of their own: " + ", ".join(bad)


def test_tag_placement_check_can_fail():
    good = "```math\na = b \\tag{F1}\n```\n$$ c = d \\tag{F2} $$\n"
    assert tag_placement_problems(good) == []
    two = "```math\na \\tag{F1}\n```\n```math\nb \\tag{F2} \\\\ c \\tag{F3}\n```\n"
    assert tag_placement_problems(two) == ["<text>:4 (2 tags in one math block)"]
    assert tag_placement_problems("text $a \\tag{F1}$ more\n") == ["<text>:1"]


def test_chapters_02_03_10_define_their_labels():
    """Each label lives in its chapter: the forward pass in 02, the backward pass in 03; 10 defines only the
    data-parallel equalities of 10.15, Q1-Q3 (it restates the others it uses, untagged)."""
    text = {n: (DERIV / n).read_text(encoding="utf-8") for n in ("02_forward.md", "03_backward.md")}
    labels = lambda name: sorted(TAG_RE.findall(text[name]), key=_label_key)  # noqa: E731
    assert labels("02_forward.md") == ["E1"] + [f"F{k}" for k in range(1, 6)]
    assert labels("03_backward.md") == [f"B{k}" for k in range(1, 15)] + ["E2"]
    assert TAG_RE.findall((DERIV / "10_making_it_fast.md").read_text(encoding="utf-8")) == ["Q1", "Q2", "Q3"]


# ------------------------------------------------------------------------------------------ docstrings


@pytest.mark.parametrize(
    "func, doc",
    [(lstm_forward, "derivations/02_forward.md"), (lstm_backward, "derivations/03_backward.md")],
)
def test_docstrings_name_their_derivation(func, doc):
    assert doc in (func.__doc__ or ""), f"{func.__name__}'s docstring should point to {doc}"
    assert (ROOT / doc).is_file(), f"{doc} named in {func.__name__}'s docstring does not exist"
    assert getattr(numpylstm, func.__name__) is func


# ----------------------------------------------------------------------------------------- quoted code

FENCE_RE = re.compile(r"^```.*?^```", flags=re.S | re.M)
SPAN_RE = re.compile(r"`([^`\n]+)`")
# What makes an inline span a quote of numpylstm's code rather than a name, a shape or TF-1 code: a NumPy
# call, an out= argument, a matrix product, or an assignment whose right side is not a literal (so
# `db = dA2.sum(axis=0)` counts, `lstm_size = 20` and `x = [[[0.5], [-1.0]]]` do not).
QUOTE_RE = re.compile(r"""np\.[\w.]+\(|\bout=|\s@\s|^[\w\s,\[\]:]+\s=\s+(?![\d\[\-"'])""")


def _squeeze(text: str) -> str:
    return "".join(text.split())


def code_text(source: str) -> str:
    """The executable part of a Python source, whitespace removed: no comments, no docstrings."""
    kept, prev = [], tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING and prev in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                                    tokenize.DEDENT):
            continue  # a string that starts a statement: a docstring
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok.type
        kept.append(tok.string)
    return _squeeze("".join(kept))


def package_code() -> dict[str, str]:
    files = tracked_files(PKG, "*.py")
    assert files, f"no Python files in {PKG}"
    return {str(path.relative_to(PKG)): code_text(path.read_text(encoding="utf-8")) for path in files}


def inline_spans(text: str):
    """(line number, span) for every inline code span outside fenced blocks."""
    text = FENCE_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for lineno, line in enumerate(text.splitlines(), 1):
        for span in SPAN_RE.findall(line):
            yield lineno, span


def code_quotes(text: str):
    return [(lineno, span) for lineno, span in inline_spans(text) if QUOTE_RE.search(span)]


def missing_quotes(text: str, code: dict[str, str]):
    return [(lineno, span) for lineno, span in code_quotes(text)
            if not any(_squeeze(span) in src for src in code.values())]


def test_quoted_code_exists_verbatim():
    code, bad, n = package_code(), [], 0
    for path in _md_files():
        text = path.read_text(encoding="utf-8")
        n += len(code_quotes(text))
        bad += [f"{path.name}:{lineno}: {span}" for lineno, span in missing_quotes(text, code)]
    assert n >= 30, f"only {n} quoted code spans found in derivations/*.md: is QUOTE_RE still right?"
    assert not bad, "code quoted in derivations/ but not found in numpylstm/*.py:\n" + "\n".join(bad)


def test_quote_check_catches_stale_quotes():
    """Lines of the first layers.py that the derivations used to quote must be reported missing."""
    stale = ("| `np.multiply(da, dact[t], out=da)` | (B8), (B9) | `da` $= \\delta a_t$ |\n"
             "Code: `np.matmul(da, WhT, out=dh)` and `gates = (x.reshape(T * N, -1) @ Wx).reshape(T, N, 4 * H)`\n"
             "```python\nnp.multiply(a, b, out=c)  # fenced blocks are not inline quotes\n```\n"
             "`np.add(dh, dhs[t], out=dh)`, `dhs`, `hs[t]`, `lstm_size = 20`, `dWx[idx] += dA2`\n"
             "Code: `db = dA2.sum(axis=0)`.\n")
    found = [span for _, span in missing_quotes(stale, package_code())]
    assert found == ["np.multiply(da, dact[t], out=da)", "np.matmul(da, WhT, out=dh)",
                     "gates = (x.reshape(T * N, -1) @ Wx).reshape(T, N, 4 * H)", "db = dA2.sum(axis=0)"]
    # comments and docstrings are not code: a quote must match an executable line
    assert code_text('def f():\n    """np.add(a, b, out=a)"""\n    y = 1  # np.tanh(y, out=y)\n') == "deff():y=1"


def code_tables(text: str):
    """[(header cell, [(line number, [code spans of the first column]), ...])] for each table whose first
    header cell starts with "code"."""
    tables, rows, in_table = [], None, False
    for lineno, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            in_table = False
            continue
        if not in_table:
            in_table, rows = True, None
            if cells[0].startswith("code"):
                rows = []
                tables.append((cells[0], rows))
            continue
        if rows is not None and not set(cells[0]) <= set("-: "):
            rows.append((lineno, SPAN_RE.findall(cells[0])))
    return tables


@functools.lru_cache(maxsize=None)
def functions_code(path: Path) -> dict[str, str]:
    """name -> executable code (whitespace removed) of every top-level function of a module (read once per
    test session: ast.get_source_segment is slow on a long file)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    segment = lambda node: "".join(lines[node.lineno - 1:node.end_lineno])  # noqa: E731 (whole lines)
    return {node.name: code_text(segment(node))
            for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


# Which module each chapter's line-by-line tables quote: 02 and 03 derive textbook.py, 10 walks to fast.py;
# 12 quotes several modules, each table the module holding the function its header names.
TABLE_MODULE = {"02_forward.md": "textbook.py", "03_backward.md": "textbook.py", "10_making_it_fast.md": "fast.py",
                "12_the_lstm_family.md": ("cells/loop.py", "gru.py", "cells/peephole.py")}
# The tables 02 and 03 must have, in this order: the step functions, then the sequence loops.
TABLE_FUNCTIONS = {"02_forward.md": ["lstm_step_forward", "lstm_forward"],
                   "03_backward.md": ["lstm_step_backward", "lstm_backward"]}


def table_order_problems(name: str, text: str) -> list[str]:
    """Rows of each code table that are not found, in order, in the table's module (in the function the
    header names, when it names one)."""
    modules = TABLE_MODULE.get(name, "fast.py")
    modules = modules if isinstance(modules, tuple) else (modules,)
    tables = code_tables(text)
    all_funcs = {m: functions_code(PKG / m) for m in modules} if tables else {}
    bad = []
    for header, rows in tables:
        # the module that defines the function the header names (the chapter's first module otherwise)
        module = next((m for m in modules for f in SPAN_RE.findall(header) if f in all_funcs[m]), modules[0])
        src = code_text((PKG / module).read_text(encoding="utf-8"))
        funcs = all_funcs[module]
        named = [f for f in SPAN_RE.findall(header) if f in funcs]
        where, code = (f"{module} {named[0]}()", funcs[named[0]]) if named else (module, src)
        pos = 0
        for lineno, spans in rows:
            for span in spans:
                at = code.find(_squeeze(span), pos)
                if at < 0:
                    bad.append(f"{name}:{lineno}: {span} (not in {where} after the previous row)")
                else:
                    pos = at + len(_squeeze(span))
    return bad


def test_code_tables_follow_the_code_order():
    """Each line-by-line table quotes lines of its module (all its code spans, not only NumPy calls), in the
    order they run: textbook.py for 02 and 03, fast.py for 10."""
    n_tables, bad = 0, []
    for path in _md_files():
        text = path.read_text(encoding="utf-8")
        n_tables += len(code_tables(text))
        bad += table_order_problems(path.name, text)
    assert n_tables >= 6, f"expected two tables in each of 02, 03 and 10, found {n_tables}"
    assert not bad, "line-by-line tables out of the code's order:\n" + "\n".join(bad)


def test_textbook_tables_are_the_step_functions_then_the_loops():
    for name, expected in TABLE_FUNCTIONS.items():
        headers = [h for h, _ in code_tables((DERIV / name).read_text(encoding="utf-8"))]
        named = [f for h in headers for f in SPAN_RE.findall(h)]
        assert named == expected, f"{name}: tables for {named}, expected {expected} in that order"
    fast_tables = code_tables((DERIV / "10_making_it_fast.md").read_text(encoding="utf-8"))
    assert len(fast_tables) >= 2, "10_making_it_fast.md should show fast.py's loops line by line"


def test_textbook_tables_quote_every_labelled_line():
    """Every line of textbook.py's four layer functions that cites an equation appears in 02's or 03's
    tables: the tables are the whole code, not a selection."""
    source = (PKG / "textbook.py").read_text(encoding="utf-8")
    quoted = {_squeeze(span) for name in TABLE_FUNCTIONS
              for _, rows in code_tables((DERIV / name).read_text(encoding="utf-8"))
              for _, spans in rows for span in spans}
    missing = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name in sum(TABLE_FUNCTIONS.values(), []):
            for line in ast.get_source_segment(source, node).splitlines():
                code, _, comment = line.partition("  # ")
                if CITE_RE.search(comment) and _squeeze(code) not in quoted:
                    missing.append(f"{node.name}: {code.strip()}")
    assert not missing, "labelled lines of textbook.py missing from the tables of 02/03:\n" + "\n".join(missing)


def test_table_order_check_can_fail():
    swapped = ("| code (`lstm_step_forward`) | equation |\n|---|---|\n"
               "| `c_t = f * c_prev + i * g` | (F4) |\n| `a = xWx + h_prev @ Wh + b` | (F1) |\n")
    assert table_order_problems("02_forward.md", swapped) == [
        "02_forward.md:4: a = xWx + h_prev @ Wh + b (not in textbook.py lstm_step_forward() after the previous row)"]
    wrong_function = "| code (`lstm_forward`) | equation |\n|---|---|\n| `c_t = f * c_prev + i * g` | (F4) |\n"
    assert len(table_order_problems("02_forward.md", wrong_function)) == 1


def test_gradcheck_demo_patches_existing_lines():
    """derivations/scripts/gradcheck_demo.py breaks a backward function (textbook.py's step, or fast.py's
    time-major kernel) by replacing a line that must exist there exactly once."""
    import inspect

    from numpylstm import fast, textbook

    script = (DERIV / "scripts" / "gradcheck_demo.py").read_text(encoding="utf-8")
    calls = [node for node in ast.walk(ast.parse(script))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "patched"]
    assert len(calls) >= 2
    modules = {"textbook": textbook, "fast": fast}
    patched = set()
    for call in calls:
        func = call.args[0]
        assert isinstance(func, ast.Attribute) and func.value.id in modules, ast.unparse(func)
        target = getattr(modules[func.value.id], func.attr)
        old = ast.literal_eval(call.args[1])
        assert inspect.getsource(target).count(old) == 1, f"gradcheck_demo.py patches a line {ast.unparse(func)} no longer has: {old}"
        patched.add(ast.unparse(func))
    assert "textbook.lstm_step_backward" in patched


# -------------------------------------------------------------------------------------- worked example

ROW_RE = re.compile(r"^\|\s*`([^`]+)`\s*\|.*\|\s*([^|]*?)\s*\|\s*$")
GATES = "ifgo"


def parse_example() -> dict[str, str]:
    """key -> the value exactly as printed, from every table row of 09_worked_example.md starting with `key`."""
    values: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = ROW_RE.match(line)
        if m:
            key, value = m.groups()
            assert key not in values, f"key {key} appears twice in {EXAMPLE.name}"
            values[key] = value
    return values


def printed_tolerance(text: str) -> float:
    """Half a unit in the last printed digit: '0.0573151' -> 5e-8, '1.2e-05' -> 5e-7, '1' -> 0.5."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def example_inputs(printed):
    get = lambda k: float(printed[k])  # noqa: E731
    return dict(
        x=[get("x_1"), get("x_2")],
        Wx=[get(f"Wx.{k}") for k in GATES],
        Wh=[get(f"Wh.{k}") for k in GATES],
        b=[get(f"b.{k}") for k in GATES],
        w=[get("w_1"), get("w_2")],
    )


def scalar_reference(x, Wx, Wh, b, w):
    """The example computed with Python floats and math.exp / math.tanh only: (F1)-(F5), (B1)-(B14)."""
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    r: dict[str, float] = {}
    h, c, act = [0.0], [0.0], [None]
    for t in (1, 2):
        a = [x[t - 1] * Wx[k] + h[t - 1] * Wh[k] + b[k] for k in range(4)]  # (F1)
        gi, gf, gg, go = sig(a[0]), sig(a[1]), math.tanh(a[2]), sig(a[3])  # (F2), (F3)
        c.append(gf * c[t - 1] + gi * gg)  # (F4)
        h.append(go * math.tanh(c[t]))  # (F5)
        act.append((gi, gf, gg, go))
        r.update({f"a_{t}.{k}": a[n] for n, k in enumerate(GATES)})
        r.update({f"i_{t}": gi, f"f_{t}": gf, f"g_{t}": gg, f"o_{t}": go})
        r.update({f"c_{t}": c[t], f"tanhc_{t}": math.tanh(c[t]), f"h_{t}": h[t]})
    r["L"] = w[0] * h[1] + w[1] * h[2]
    dh_in = dc_in = 0.0
    dWx, dWh, db = [0.0] * 4, [0.0] * 4, [0.0] * 4
    for t in (2, 1):
        gi, gf, gg, go = act[t]
        tc = math.tanh(c[t])
        dh = w[t - 1] + dh_in  # (B1)
        dc = dc_in + dh * go * (1 - tc * tc)  # (B2)
        d = {"o": dh * tc, "i": dc * gg, "f": dc * c[t - 1], "g": dc * gi}  # (B3)-(B6)
        da = [d["i"] * gi * (1 - gi), d["f"] * gf * (1 - gf), d["g"] * (1 - gg * gg), d["o"] * go * (1 - go)]
        r.update({f"dh_{t}": dh, f"dc_{t}": dc})
        r.update({f"d{k}_{t}": v for k, v in d.items()})
        r.update({f"da_{t}.{k}": da[n] for n, k in enumerate(GATES)})  # (B8), (B9)
        r[f"dc_{t - 1}<-{t}"] = dc_in = dc * gf  # (B7)
        r[f"dh_{t - 1}<-{t}"] = dh_in = sum(da[n] * Wh[n] for n in range(4))  # (B10)
        r[f"dx_{t}"] = sum(da[n] * Wx[n] for n in range(4))  # (B11)
        for n in range(4):
            dWx[n] += x[t - 1] * da[n]  # (B12)
            dWh[n] += h[t - 1] * da[n]  # (B13)
            db[n] += da[n]  # (B14)
    for n, k in enumerate(GATES):
        r[f"dWx.{k}"], r[f"dWh.{k}"], r[f"db.{k}"] = dWx[n], dWh[n], db[n]
    return r


def numpylstm_values(x, Wx, Wh, b, w):
    """Every quantity of the example, read off numpylstm (full-length call and one call per step)."""
    X = np.array(x).reshape(1, 2, 1)
    WX, WH, B = np.array([Wx]), np.array([Wh]), np.array(b)
    dhs = np.array(w).reshape(1, 2, 1)
    hs, _, cache = lstm_forward(X, None, None, WX, WH, B)
    full = lstm_backward(dhs, cache)

    r: dict[str, float] = {}
    acts = cache.gates[:, 0, :]  # (T, 4) time-major activations i, f, g, o
    for t in (1, 2):
        gi, gf, gg, go = acts[t - 1]
        pre = [math.log(gi / (1 - gi)), math.log(gf / (1 - gf)), math.atanh(gg), math.log(go / (1 - go))]
        r.update({f"a_{t}.{k}": pre[n] for n, k in enumerate(GATES)})
        r.update({f"i_{t}": gi, f"f_{t}": gf, f"g_{t}": gg, f"o_{t}": go})
        r.update({f"c_{t}": cache.cs[t, 0, 0], f"tanhc_{t}": cache.tcs[t - 1, 0, 0], f"h_{t}": hs[0, t - 1, 0]})
    r["L"] = float(np.sum(dhs * hs))

    # One chunk per step (06_truncated_bptt.md): a step's db is its da_t, its dh0/dc0 what it sends back.
    h1, c1 = hs[:, 0, :], cache.cs[1]
    _, _, cache2 = lstm_forward(X[:, 1:], h1, c1, WX, WH, B)
    dx2, dh_1, dc_1, dWx2, dWh2, db2 = lstm_backward(dhs[:, 1:], cache2)
    _, _, cache1 = lstm_forward(X[:, :1], None, None, WX, WH, B)
    dx1, dh_0, dc_0, dWx1, dWh1, db1 = lstm_backward(dhs[:, :1], cache1, dhT=dh_1, dcT=dc_1)
    carried = {2: (0.0, 0.0), 1: (dh_1[0, 0], dc_1[0, 0])}
    sent = {2: (dh_1[0, 0], dc_1[0, 0]), 1: (dh_0[0, 0], dc_0[0, 0])}
    for t, da, dx in ((2, db2, dx2), (1, db1, dx1)):
        gi, gf, gg, go = acts[t - 1]
        r.update({f"da_{t}.{k}": da[n] for n, k in enumerate(GATES)})
        r[f"dh_{t - 1}<-{t}"], r[f"dc_{t - 1}<-{t}"] = sent[t]
        r[f"dx_{t}"] = dx[0, 0, 0]
        # undo the local derivatives (B8), (B9), (B7) and recombine (B1) from numpylstm's own outputs
        r[f"di_{t}"] = da[0] / (gi * (1 - gi))
        r[f"df_{t}"] = da[1] / (gf * (1 - gf))
        r[f"dg_{t}"] = da[2] / (1 - gg * gg)
        r[f"do_{t}"] = da[3] / (go * (1 - go))
        r[f"dc_{t}"] = sent[t][1] / gf
        r[f"dh_{t}"] = w[t - 1] + carried[t][0]
    dx, dh0, dc0, dWx, dWh, db = full
    for n, k in enumerate(GATES):
        r[f"dWx.{k}"], r[f"dWh.{k}"], r[f"db.{k}"] = dWx[0, n], dWh[0, n], db[n]

    # the chunks add up to the full-length call, and their carried gradients are its dh0, dc0, dx
    np.testing.assert_allclose(dWx1 + dWx2, dWx, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dWh1 + dWh2, dWh, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(db1 + db2, db, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.concatenate([dx1, dx2], axis=1), dx, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dh_0, dh0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dc_0, dc0, rtol=1e-13, atol=1e-15)
    return {k: float(v) for k, v in r.items()}


def _check_printed(printed, truth, source):
    bad = []
    for key, value in truth.items():
        text = printed[key]
        if not abs(float(text) - value) <= printed_tolerance(text) * (1 + 1e-9) + 1e-15:
            bad.append(f"{key}: printed {text}, {source} gives {value:.9g}")
    assert not bad, f"{EXAMPLE.name} disagrees with {source}:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def example():
    printed = parse_example()
    return printed, example_inputs(printed)


def test_worked_example_has_every_quantity(example):
    printed, inputs = example
    input_keys = {"x_1", "x_2", "w_1", "w_2"} | {f"{p}.{k}" for p in ("Wx", "Wh", "b") for k in GATES}
    expected = input_keys | set(scalar_reference(**inputs))
    assert set(printed) == expected, (
        f"missing rows: {sorted(expected - set(printed))}; unexpected rows: {sorted(set(printed) - expected)}"
    )


def test_worked_example_matches_scalar_reference(example):
    printed, inputs = example
    _check_printed(printed, scalar_reference(**inputs), "the scalar reference (math.exp / math.tanh)")


def test_worked_example_matches_numpylstm(example):
    printed, inputs = example
    _check_printed(printed, numpylstm_values(**inputs), "numpylstm")


def test_numpylstm_and_scalar_reference_agree_to_rounding(example):
    _, inputs = example
    ref, npl = scalar_reference(**inputs), numpylstm_values(**inputs)
    assert set(ref) == set(npl)
    for key in ref:
        assert npl[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-14), key


def test_worked_example_code_block_runs_and_matches(example):
    """The ```python block of the example file uses the same inputs as its tables."""
    printed, _ = example
    blocks = re.findall(r"```python\n(.*?)```", EXAMPLE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "expected exactly one python block in the worked example"
    ns: dict = {}
    exec(compile(blocks[0].replace("print(", "(lambda *a: None)("), EXAMPLE.name, "exec"), ns)
    got = {"h_1": ns["hs"][0, 0, 0], "h_2": ns["hs"][0, 1, 0], "dh_0<-1": ns["dh0"][0, 0],
           "dc_0<-1": ns["dc0"][0, 0], "dx_1": ns["dx"][0, 0, 0], "dx_2": ns["dx"][0, 1, 0]}
    for n, k in enumerate(GATES):
        got[f"dWx.{k}"], got[f"dWh.{k}"], got[f"db.{k}"] = ns["dWx"][0, n], ns["dWh"][0, n], ns["db"][n]
    _check_printed(printed, {k: float(v) for k, v in got.items()}, "the python block of the example")


# ---------------------------------------------------------------------------------- chapter 10's script


def _making_it_fast():
    import importlib.util

    spec = importlib.util.spec_from_file_location("making_it_fast", DERIV / "scripts" / "making_it_fast.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_making_it_fast_variants_equal_the_textbook():
    """Every cumulative variant of derivations/scripts/making_it_fast.py (textbook -> ... -> fast.py) gives
    the textbook's outputs and gradients to 1e-13 relative in float64 (its timings are not run here)."""
    mif = _making_it_fast()
    assert [run.__name__ for _, run in mif.VARIANTS][-2:] == ["in_place", "reused_buffers"]
    assert len(mif.VARIANTS) == 9
    assert mif.check(tol=1e-13) <= 1e-13


def test_making_it_fast_check_can_fail():
    """A variant with one wrong line is caught (the check compares all nine outputs)."""
    mif = _making_it_fast()
    last = mif.VARIANTS[-1][1]

    def broken(*args):
        out = list(last(*args))
        out[7] = out[7] * (1 + 1e-12)  # dWh off by 1e-12 relative
        return tuple(out)

    mif.VARIANTS.append(("broken", broken))
    with pytest.raises(AssertionError, match="broken.*dWh differs"):
        mif.check(tol=1e-13)


def test_chapter_10_lists_every_variant_of_the_script():
    mif = _making_it_fast()
    text = (DERIV / "10_making_it_fast.md").read_text(encoding="utf-8")
    for k, (name, _) in enumerate(mif.VARIANTS):
        assert f"| {k}. {name} |" in text, f"chapter 10's table lacks the row of step {k}: {name}"


def test_chapter_10_table_is_the_scripts_output():
    """The block between the markers in chapter 10 is what making_it_fast.py prints (header, machine line,
    table in the script's format); the lead pastes a quiet machine's run there."""
    mif = _making_it_fast()
    text = (DERIV / "10_making_it_fast.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- making_it_fast.py output: begin -->\n(.*?)<!-- making_it_fast.py output: end -->",
                  text, flags=re.S)
    assert m, "chapter 10 lacks the marked block of making_it_fast.py's output"
    lines = m.group(1).strip().splitlines()
    assert lines[0].startswith("Forward + backward of one layer, float32, median of ")
    assert lines[1].startswith(f"Sine: N {mif.SINE['N']}, T {mif.SINE['T']}, D {mif.SINE['D']}, H {mif.SINE['H']}")
    assert lines[3].startswith("Machine: ") and "NumPy" in lines[3]
    table_lines = lines[5:]
    assert tuple(table_lines[:2]) == mif.TABLE_HEAD
    assert len(table_lines) == 2 + len(mif.VARIANTS)
    for k, (row, (name, _)) in enumerate(zip(table_lines[2:], mif.VARIANTS)):
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert cells[0] == f"{k}. {name}" and len(cells) == 7, row
        for c in cells[1:]:
            assert re.fullmatch(r"(\d+\.\d\d(x)?|same code as step 5|)", c), f"step {k}: cell {c!r}"


@pytest.mark.parametrize("chapter, figure", [("02_forward.md", "figures/cell_forward.svg"),
                                             ("03_backward.md", "figures/cell_backward.svg")])
def test_cell_figures_are_shown_next_to_their_equations(chapter, figure):
    """02 shows the forward cell by (F1)-(F5), 03 the backward cell by (B1)/(B2) (figures drawn by
    derivations/scripts/figures.py)."""
    lines = (DERIV / chapter).read_text(encoding="utf-8").splitlines()
    at = [n for n, line in enumerate(lines) if re.search(r"!\[[^\]]+\]\(" + re.escape(figure) + r"\)", line)]
    assert len(at) == 1, f"{chapter} should show {figure} once, with alt text"
    labels = ["F1", "F2", "F3", "F4", "F5"] if chapter.startswith("02") else ["B1", "B2", "B7"]
    tags = [n for n, line in enumerate(lines) for label in labels if f"\\tag{{{label}}}" in line]
    assert len(tags) == len(labels)
    assert min(abs(at[0] - n) for n in tags) <= 10, f"{figure} is not next to any of {labels} in {chapter}"


# ------------------------------------------------------------------------------- chapter 12's tables

FAMILY_TABLES = {"cells/loop.py": ["sequence_forward", "sequence_backward"],
                 "gru.py": ["gru_step_forward", "gru_step_backward"],
                 "cells/peephole.py": ["peephole_step_forward", "peephole_step_backward"]}


def test_family_tables_quote_every_labelled_line():
    """Chapter 12 has a line-by-line table for the generic loop (cells/loop.py) and each step function of
    gru.py and cells/peephole.py, and every line of them that cites an equation appears in it."""
    text = (DERIV / "12_the_lstm_family.md").read_text(encoding="utf-8")
    tables = code_tables(text)
    named = [f for h, _ in tables for f in SPAN_RE.findall(h)]
    assert named == sum(FAMILY_TABLES.values(), []), named
    quoted = {_squeeze(span) for _, rows in tables for _, spans in rows for span in spans}
    missing = []
    for module, names in FAMILY_TABLES.items():
        source = (PKG / module).read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                for line in ast.get_source_segment(source, node).splitlines():
                    code, _, comment = line.partition("  # ")
                    if CITE_RE.search(comment) and _squeeze(code) not in quoted:
                        missing.append(f"{module} {node.name}: {code.strip()}")
    assert not missing, "labelled lines missing from the tables of 12_the_lstm_family.md:\n" + "\n".join(missing)
