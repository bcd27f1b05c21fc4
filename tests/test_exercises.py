"""The exercises (python -m numpylstm.exercises), the localisation of a wrong step (diagnose_step) and the quiz.

Every check of a checker is shown failing on a broken input too: broken files, zoo bugs, own single-line bugs.
"""

import inspect
import shlex
import io
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from numpylstm import bugzoo, losses, optim, rnn, textbook
from numpylstm.exercises import BY_NAME, EXERCISES, check_file, check_function, diagnose_lstm_backward, \
    diagnose_rnn_step, diagnose_step
from numpylstm.exercises import reference
from numpylstm.exercises.blanks import blanks, exercise_body, label_location
from numpylstm.exercises.cli import exercise_text, main, solution_file_text
from numpylstm.exercises.quiz import diagnosis_of, quiz

from own_bugs import GRU_BUGS, OWN_BUGS, PEEPHOLE_BUGS, mutant  # tests/own_bugs.py

ROOT = Path(__file__).resolve().parents[1]
AVAILABLE = [ex for ex in EXERCISES if ex.reference is not None]
# what diagnose_step says about each zoo bug: its equation
ZOO_LABELS = {"no tanh'": ["B2"], "dc not carried": ["B7"], "sigmoid twice": ["B8"], "sigma' at a": ["B8"],
              "averaged over T": ["B12", "B13", "B14"], "wrong bias block": ["B14"], "gates swapped": ["K1"],
              "dh not carried": ["B10"], "df uses c_t": ["B5"]}


# ------------------------------------------------------------------------------------------- references


def test_reference_softmax_ce_backward_is_the_library_s():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5)
    loss, dz = reference.softmax_ce_backward(z, t)
    want_loss, want_dz = losses.softmax_ce(z, t)
    assert loss == pytest.approx(want_loss, rel=1e-14)
    np.testing.assert_allclose(dz, want_dz, rtol=1e-13, atol=1e-16)


def test_reference_adam_step_is_optim_adam():
    rng = np.random.default_rng(1)
    theta = rng.standard_normal((3, 2))
    p = {"w": theta.copy()}
    opt = optim.Adam(p, lr=0.05, betas=(0.8, 0.95), eps=1e-6)
    m = v = np.zeros_like(theta)
    for t in range(1, 6):
        g = rng.standard_normal(theta.shape)
        opt.step({"w": g})
        theta, m, v = reference.adam_step(theta, g, m, v, t, 0.05, 0.8, 0.95, 1e-6)
    np.testing.assert_allclose(theta, p["w"], rtol=1e-13)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_reference_clip_grad_norm_is_optim_s(scale):
    rng = np.random.default_rng(2)
    a = {"x": rng.standard_normal((3, 4)) * scale, "y": rng.standard_normal(5) * scale}
    b = {k: v.copy() for k, v in a.items()}
    assert reference.clip_grad_norm(a, 1.0) == pytest.approx(optim.clip_grad_norm(b, 1.0), rel=1e-14)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-14)


# -------------------------------------------------------------------------------------- exercise files


def test_course_order_and_names():
    assert [ex.name for ex in EXERCISES] == [
        "lstm_step_forward", "lstm_step_backward", "lstm_backward", "rnn_step_backward", "gru_step_backward",
        "peephole_step_backward", "softmax_ce_backward", "adam_step", "clip_grad_norm"]


@pytest.mark.parametrize("ex", AVAILABLE, ids=lambda e: e.name)
def test_exercise_file_is_the_reference_with_numbered_blanks(ex, tmp_path):
    text = exercise_text(ex)
    compile(text, "exercise", "exec")
    bl = blanks(ex.reference)
    assert bl and [b.number for b in bl] == list(range(1, len(bl) + 1))
    for b in bl:
        assert f"blank {b.number} of {len(bl)}: ({b.label})" in text
        assert b.code not in text.split('"""')[-1] or b.code.startswith("np.add.at")  # the line itself is gone
        assert label_location(b.label) is not None, b.label
    head = inspect.getsource(ex.reference).split('"""')[:2]
    assert '"""'.join(head) in text  # the reference's own signature and docstring
    path = tmp_path / f"{ex.name}.py"
    path.write_text(text)
    report = check_file(ex.name, path)
    assert not report.ok and len(report.lines) == 1
    assert report.lines[0].startswith("not finished: blank ") and f" of {len(bl)}: (" in report.lines[0]


@pytest.mark.parametrize("ex", AVAILABLE, ids=lambda e: e.name)
def test_each_reference_solution_passes_its_check(ex, tmp_path):
    path = tmp_path / f"{ex.name}.py"
    path.write_text(solution_file_text(ex))
    report = check_file(ex.name, path)
    assert report.ok, report.text
    assert report.suspects == []
    assert any(line.startswith(("gradient check", "three steps", "a norm below")) for line in report.lines)


def _tag_line(label, chapter="03_backward.md"):
    """The line of derivations/<chapter> that defines ``label`` (computed, so editing the chapter moves it)."""
    lines = (Path(__file__).resolve().parents[1] / "derivations" / chapter).read_text(encoding="utf-8").splitlines()
    return next(k for k, line in enumerate(lines, 1) if f"\\tag{{{label}}}" in line)


def _solution_line(code):
    """The line of the reference solution file that holds ``code``."""
    lines = solution_file_text(BY_NAME["lstm_step_backward"]).splitlines()
    return next(k for k, line in enumerate(lines, 1) if code in line)


def test_blank_lines_point_to_the_chapter():
    body = exercise_body(textbook.lstm_step_backward)
    assert (f"raise NotImplementedError('blank 3 of 16: (B4) di = ...  [derivations/03_backward.md line "
            f"{_tag_line('B4')}]')") in body
    assert "da = np.concatenate([dai, daf, dag, dao], axis=1)" in body  # unlabelled plumbing stays


BROKEN = {  # replacement in textbook's lstm_step_backward -> the start of the one-line message
    "syntax error": (("do_ = dh_t * tanh_c", "do_ = dh_t * (tanh_c"), "line {do_}: SyntaxError"),
    "wrong signature": (("def lstm_step_backward(dh_t, dc_next, step_cache)", "def lstm_step_backward(dh_t, cache)"),
                        "wrong signature: lstm_step_backward(dh_t, cache) cannot be called as"),
    "wrong shape": (("db = da.sum(axis=0)", "db = da.sum(axis=1)"), "shapes: db has shape (2,), expected (8,)"),
    "NaN": (("do_ = dh_t * tanh_c", "do_ = dh_t * tanh_c / 0"), "dx_t, dh_prev, dWx, dWh, db contain NaN or inf"),
    "raises": (("do_ = dh_t * tanh_c", "do_ = dh_t * tanhc"),
               "your lstm_step_backward raised NameError at line {do_}: name 'tanhc' is not defined"),
    "returns too few": (("return dx_t, dh_prev, dc_prev, dWx, dWh, db", "return dx_t, dh_prev"),
                        "lstm_step_backward must return 6 values"),
    "import fails": (("import numpy as np", "import numpy as np\nimport no_such_module_here"),
                     "running "),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_broken_files_get_one_line(case, tmp_path):
    (old, new), start = BROKEN[case]
    text = solution_file_text(BY_NAME["lstm_step_backward"])
    assert old in text
    path = tmp_path / "lstm_step_backward.py"
    path.write_text(text.replace(old, new, 1))
    report = check_file("lstm_step_backward", path)
    assert not report.ok
    assert len(report.lines) == 1 and "Traceback" not in report.text, report.text
    start = start.replace("{do_}", str(_solution_line("do_ = dh_t * tanh_c")))
    assert start in report.lines[0], report.lines[0]


def test_check_function_survives_anything_the_learner_returns():
    for func in (lambda *a: None, lambda *a: 1 / 0, lambda *a: (np.zeros(3),) * 6, "not a function"):
        report = check_function("lstm_step_backward", func)
        assert not report.ok and len(report.lines) == 1, report.text


def test_a_wrong_backward_step_names_its_suspects_and_the_zoo_bug(tmp_path):
    text = solution_file_text(BY_NAME["lstm_step_backward"]).replace("df = dc_t * c_prev",
                                                                     "df = dc_t * (f * c_prev + i * g)")
    path = tmp_path / "mine.py"
    path.write_text(text)
    report = check_file("lstm_step_backward", path)
    assert not report.ok and report.suspects == ["B5"] and report.published == "df uses c_t"
    assert f"suspect equations: (B5) derivations/03_backward.md line {_tag_line('B5')}" in report.text
    assert "WRONG dWx" in report.text and "per gate block i 0, f " in report.text


@pytest.mark.parametrize("name, old, new, label", [
    ("lstm_step_forward", "c_t = f * c_prev + i * g", "c_t = f * c_prev + i * o", "F4"),
    ("lstm_backward", "dh_t = dhs[:, t] + dh_next", "dh_t = dhs[:, t]", "B1"),
    ("rnn_step_backward", "da = dh_t * (1 - h_t**2)", "da = dh_t * (1 - h_t)", "R4"),
    ("softmax_ce_backward", "dlogits = (softmax - onehot) / P", "dlogits = softmax - onehot", "L4"),
    ("adam_step", "m_hat = m / (1 - beta1**t)", "m_hat = m", "O4"),
    ("adam_step", "v = beta2 * v + (1 - beta2) * grad**2", "v = beta2 * v + (1 - beta2) * grad", "O3"),
    ("clip_grad_norm", "g *= max_norm / n", "g = g * max_norm / n", "O6"),
])
def test_each_exercise_catches_a_bug(name, old, new, label, tmp_path):
    text = solution_file_text(BY_NAME[name])
    assert old in text
    path = tmp_path / f"{name}.py"
    path.write_text(text.replace(old, new, 1))
    report = check_file(name, path)
    assert not report.ok and label in report.suspects, report.text


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_list_start_check_hint_solution(tmp_path, capsys):
    d = str(tmp_path / "ex")
    assert main(["list", "--dir", d]) == 0
    out = capsys.readouterr().out
    assert "1. lstm_step_forward" in out and "9. clip_grad_norm" in out and "not started" in out
    assert main(["start", "rnn_step_backward", "--dir", d]) == 0
    mine = tmp_path / "ex" / "rnn_step_backward.py"
    assert mine.is_file() and (tmp_path / "ex" / "test_rnn_step_backward.py").is_file()
    capsys.readouterr()
    mine.write_text(mine.read_text() + "\n# my work\n")
    before = mine.read_text()
    assert main(["start", "rnn_step_backward", "--dir", d]) == 1  # refuses: never overwrites
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "exists: not overwritten" in out and mine.read_text() == before
    assert main(["list", "--dir", d]) == 0 and "started, 7 blanks left" in capsys.readouterr().out
    assert main(["check", "rnn_step_backward", "--dir", d]) == 1
    assert "not finished: blank 1 of 7: (R4) da = ..." in capsys.readouterr().out
    assert main(["hint", "rnn_step_backward", "--dir", d]) == 0
    out = capsys.readouterr().out
    assert "(R4), derivations/11_why_lstm.md line 41" in out and "tanh" not in out.split("level 1")[1]
    assert main(["hint", "rnn_step_backward", "--dir", d, "--level", "2"]) == 0
    assert "\\delta a_t = \\delta h_t \\odot (1 - h_t^2) \\tag{R4}" in capsys.readouterr().out
    assert main(["hint", "rnn_step_backward", "--dir", d, "--level", "3", "--blank", "2"]) == 0
    assert "dh_prev = da @ Wh.T" in capsys.readouterr().out
    mine.write_text(solution_file_text(BY_NAME["rnn_step_backward"]))
    assert main(["check", "rnn_step_backward", "--dir", d]) == 0
    assert "RIGHT: rnn_step_backward" in capsys.readouterr().out
    assert main(["check", "--dir", d]) == 0  # every started exercise
    assert main(["check", str(mine)]) == 0  # a FILE
    assert main(["solution", "rnn_step_backward"]) == 0
    assert inspect.getsource(rnn.rnn_step_backward) in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["start", "nope"], ["check", "nope"], ["hint", "lstm_step_forward", "--level", "4"],
                                  ["solution"], ["check", "adam_step", "--dir", "/nonexistent/dir"]])
def test_cli_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error: " in capsys.readouterr().err  # argparse: names the argument and what was expected


def test_an_exercise_whose_module_is_missing_says_so(capsys, monkeypatch):
    """On a copy without numpylstm/gru.py the GRU exercise is listed but declined (exit 2), never a traceback."""
    import dataclasses

    from numpylstm.exercises import catalog

    waiting = dataclasses.replace(BY_NAME["gru_step_backward"], reference=None)
    monkeypatch.setitem(catalog.BY_NAME, "gru_step_backward", waiting)
    with pytest.raises(SystemExit) as e:
        main(["start", "gru_step_backward"])
    assert e.value.code == 2 and "waits for numpylstm/gru.py" in capsys.readouterr().out


def test_pytest_route_passes_and_fails_with_the_diagnosis(tmp_path, capsys):
    d = tmp_path / "exercises"
    for name in ("lstm_step_backward", "adam_step"):
        assert main(["start", name, "--dir", str(d)]) == 0
    (d / "lstm_step_backward.py").write_text(solution_file_text(BY_NAME["lstm_step_backward"]))
    (d / "adam_step.py").write_text(solution_file_text(BY_NAME["adam_step"]).replace("m_hat = m / (1 - beta1**t)",
                                                                                     "m_hat = m"))
    # pytest in this process (a subprocess costs ~5 s of imports on this machine); rootdir is the folder
    status = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(d), str(d)])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "1 failed, 1 passed" in out
    assert "suspect equations: (O4)" in out and "Traceback" not in out


def test_the_project_suite_never_collects_a_learner_folder():
    """`pytest` at the root runs tests/ only; the label test reads numpylstm/ only."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert cfg["testpaths"] == ["tests"]
    src = (ROOT / "tests" / "test_derivations.py").read_text()
    assert 'PKG = ROOT / "numpylstm"' in src and "def cited_labels(pkg: Path = PKG)" in src


# ------------------------------------------------------------------------------------------- diagnosis


def test_the_correct_pairs_get_no_suspect():
    assert diagnose_step(textbook.lstm_step_forward, textbook.lstm_step_backward) == []
    assert diagnose_rnn_step(rnn.rnn_step_backward) == []
    assert diagnose_lstm_backward(textbook.lstm_backward) == []


@pytest.mark.parametrize("bug", bugzoo.BUGS, ids=lambda b: b.name)
def test_every_zoo_bug_is_localised_and_recognised(bug):
    d = diagnosis_of(bug)
    assert list(d) == ZOO_LABELS[bug.name], (bug.name, list(d), d.notes)
    assert d.published == bug.name
    assert any(f"this is the published bug '{bug.name}'" in n for n in d.notes)


def test_own_bugs_are_not_in_the_zoo_and_are_single_lines():
    assert len(OWN_BUGS) >= 8
    for name, (label, old, new) in OWN_BUGS.items():
        assert "\n" not in new and old != new
        assert diagnose_step(textbook.lstm_step_forward, mutant(name)).published is None, name


def test_own_bugs_are_localised_to_at_most_two_suspects():
    hits = []
    for name, (label, _, _) in OWN_BUGS.items():
        d = diagnose_step(textbook.lstm_step_forward, mutant(name))
        hits.append(label in d and len(d) <= 2)
        assert d, name  # every one is caught
    assert sum(hits) >= 7 * len(OWN_BUGS) / 8, dict(zip(OWN_BUGS, hits))
    assert all(hits)  # measured: all twelve


def test_a_wrong_forward_is_named_before_the_backward():
    src = textwrap.dedent(inspect.getsource(textbook.lstm_step_forward)).replace(
        "h_t = o * tanh_c", "h_t = o * c_t")
    ns = {"np": np, "sigmoid": textbook.sigmoid, "chk": None}
    exec(src, ns)  # noqa: S102
    d = diagnose_step(ns["lstm_step_forward"], textbook.lstm_step_backward)
    assert d.forward_wrong and "F5" in d and len(d) <= 2


def _rnn_mutant(old, new):
    src = textwrap.dedent(inspect.getsource(rnn.rnn_step_backward))
    assert old in src
    ns = {"np": np}
    exec(src.replace(old, new, 1), ns)  # noqa: S102
    return ns["rnn_step_backward"]


@pytest.mark.parametrize("old, new, label", [
    ("da = dh_t * (1 - h_t**2)", "da = dh_t * (1 - h_t)", "R4"),
    ("dh_prev = da @ Wh.T", "dh_prev = da @ Wh", "R9"),
    ("dWh = h_prev.T @ da", "dWh = h_t.T @ da", "R7"),
    ("db = da.sum(axis=0)", "db = da.mean(axis=0)", "R8"),
    ("dWx = x_t.T @ da", "dWx = np.outer(x_t.sum(axis=0), da.sum(axis=0))", "R6"),
])
def test_rnn_step_bugs_are_localised(old, new, label):
    assert diagnose_rnn_step(_rnn_mutant(old, new)) == [label]


def test_loop_bugs_are_localised():
    src = textwrap.dedent(inspect.getsource(textbook.lstm_backward))
    ns = dict(vars(textbook))
    exec(src.replace("dh_t = dhs[:, t] + dh_next", "dh_t = dhs[:, t]"), ns)  # noqa: S102
    assert "B1" in diagnose_lstm_backward(ns["lstm_backward"])
    ns = dict(vars(textbook))
    exec(src.replace("dh_next, dc_next, dWx_t", "dh_next, _, dWx_t"), ns)  # noqa: S102
    assert diagnose_lstm_backward(ns["lstm_backward"]) == ["B2"]


# ------------------------------------------------------------------------------------------------ quiz


def test_quiz_with_piped_answers():
    buf = io.StringIO()
    assert quiz(io.StringIO("banana\n(b7)\n"), buf, bugs=bugzoo.BUGS[:3]) == 0
    out = buf.getvalue()
    assert "no tanh" not in out.split("the bug:")[0]  # the names are hidden until answered
    assert "'banana' is not a label" in out and "right: (B7)" in out
    assert "this is the published bug 'dc not carried'" in out
    assert "(end of input: the quiz stops here)" in out and out.rstrip().endswith("score: 1 of 1 answered")


def test_quiz_cli_reads_stdin_and_stops_at_eof():
    r = subprocess.run([sys.executable, "-m", "numpylstm.gradcheck", "--bugs", "--quiz"], cwd=ROOT, input="K1\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "not quite: (K1); the wrong line is (B2)" in r.stdout
    assert "this is the published bug 'no tanh''" in r.stdout and "score: 0 of 1 answered" in r.stdout


@pytest.mark.parametrize("name", ["no tanh'", "df uses c_t"])
def test_chapter_8_5_pastes_the_tool_s_output(name):
    """The worked examples of section 8.5 (derivations/scripts/localise.py): tables and diagnosis still hold."""
    from numpylstm.exercises.quiz import _table
    from numpylstm.gradcheck import check_layer_pair

    text = (ROOT / "derivations" / "08_gradient_checking.md").read_text().split("## 8.5")[1]
    bug = next(b for b in bugzoo.BUGS if b.name == name)
    lines = []
    one = check_layer_pair(*bugzoo.layer_pair(bug), N=2, T=1, D=4, H=3, seed=0, final_state_grads=False)
    _table(one, lines.append)
    d = diagnosis_of(bug)
    for line in [f"diagnose_step: {list(d)}", *d.notes, *lines[1:]]:
        # the error columns agree to the printed digits except the rounding-level ones (~1e-11)
        if "e-1" in line and not line.strip().startswith(("x", "h0", "c0")):
            line = line.split()[0]
        assert line.strip() in text, line


# ------------------------------------------------------------------------- GRU and peephole (issue 20's cells)


def _mutant_of(func, old, new, namespace):
    src = textwrap.dedent(inspect.getsource(func))
    assert old in src, old
    ns = dict(namespace)
    exec(src.replace(old, new, 1), ns)  # noqa: S102
    return ns[func.__name__]


@pytest.mark.parametrize("old, new, labels", GRU_BUGS, ids=[b[1] for b in GRU_BUGS])
def test_gru_step_bugs_are_localised(old, new, labels):
    gru = pytest.importorskip("numpylstm.gru")
    from numpylstm.exercises.diagnose_cells import diagnose_gru_step

    assert diagnose_gru_step(gru.gru_step_backward) == []
    assert diagnose_gru_step(_mutant_of(gru.gru_step_backward, old, new, vars(gru))) == labels


@pytest.mark.parametrize("old, new, labels, published", PEEPHOLE_BUGS, ids=[b[1] for b in PEEPHOLE_BUGS])
def test_peephole_step_bugs_are_localised(old, new, labels, published):
    peephole = pytest.importorskip("numpylstm.cells.peephole")
    from numpylstm.exercises.diagnose_cells import diagnose_peephole_step

    fwd = peephole.peephole_step_forward
    assert diagnose_peephole_step(fwd, peephole.peephole_step_backward) == []
    d = diagnose_peephole_step(fwd, _mutant_of(peephole.peephole_step_backward, old, new, vars(peephole)))
    assert d == labels and d.published == published


@pytest.mark.parametrize("name, old, new, label", [
    ("gru_step_backward", "dr = dan * ah_n", "dr = dan * n", "U10"),
    ("peephole_step_backward", "dp_o = (dao * c_t).sum(axis=0)", "dp_o = (dao * c_prev).sum(axis=0)", "P7")])
def test_cell_exercises_pass_with_the_reference_and_catch_a_bug(name, old, new, label, tmp_path):
    ex = BY_NAME[name]
    if ex.reference is None:
        pytest.skip(ex.missing)
    path = tmp_path / f"{name}.py"
    path.write_text(solution_file_text(ex))
    assert check_file(name, path).ok
    path.write_text(solution_file_text(ex).replace(old, new, 1))
    report = check_file(name, path)
    assert not report.ok and report.suspects == [label], report.text


def test_commands_printed_for_another_folder_work_as_pasted(tmp_path, capsys, monkeypatch):
    """``start --dir D`` prints ``check NAME --dir D`` (the check without --dir looked in exercises/ and failed),
    the file's own docstring and ``hint``'s "more:" line carry --dir too; each printed command runs."""
    monkeypatch.chdir(tmp_path)
    d = "my ex"
    assert main(["start", "rnn_step_backward", "--dir", d]) == 0
    out = capsys.readouterr().out
    printed = out.split("then: python -m numpylstm.exercises ")[1].split("   ")[0]
    assert printed == "check rnn_step_backward --dir 'my ex'"
    assert "check rnn_step_backward --dir 'my ex'" in (tmp_path / d / "rnn_step_backward.py").read_text()
    assert main(shlex.split(printed)) == 1  # runs (the blanks are not filled yet), not a usage error
    assert "not finished" in capsys.readouterr().out
    assert main(["hint", "rnn_step_backward", "--dir", d]) == 0
    more = capsys.readouterr().out.split("more: python -m numpylstm.exercises ")[1].strip()
    assert "--dir 'my ex'" in more and main(shlex.split(more)) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # the default folder has nothing: the message names --dir
        main(["check", "rnn_step_backward"])
    assert e.value.code == 2 and "pass --dir FOLDER" in capsys.readouterr().err
