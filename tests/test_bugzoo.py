"""The bug zoo (python -m numpylstm.gradcheck --bugs) and the per-gate-block report of the gradient check."""

import inspect
import io

import numpy as np
import pytest

from numpylstm import bugzoo, textbook
from numpylstm.gradcheck import LAYER_TOL, MODEL_TOL, check_layer, check_model, gate_block_errors, main
from numpylstm.model import LSTMModel


def test_the_zoo_has_at_least_seven_distinct_bugs():
    assert len(bugzoo.BUGS) >= 7
    assert len({b.name for b in bugzoo.BUGS}) == len(bugzoo.BUGS)
    for bug in bugzoo.BUGS:
        assert (bug.backward_step is None) != (bug.backward is None), bug.name  # exactly one replacement
        assert bug.known_from


@pytest.mark.parametrize("bug", bugzoo.BUGS, ids=lambda b: b.name)
def test_each_bug_is_caught(bug):
    gates, worst, _ = bugzoo.gate_errors(bug)
    assert gates.max() > bugzoo.CAUGHT, (bug.name, gates)
    assert worst > bugzoo.CAUGHT


def test_the_correct_code_is_not_flagged():
    gates, worst, rows = bugzoo.gate_errors(bugzoo.CORRECT)
    assert worst < LAYER_TOL, rows
    assert gates.max() < LAYER_TOL
    forward, backward = bugzoo.layer_pair(bugzoo.CORRECT)
    assert forward is textbook.lstm_forward and backward is textbook.lstm_backward


def test_a_bug_in_one_gate_shows_in_that_gate_only():
    """The forget gate's bias gradient taken from the input gate's block: only the f column lights up."""
    gates, _, rows = bugzoo.gate_errors(next(b for b in bugzoo.BUGS if b.name == "wrong bias block"))
    i, f, g, o = gates
    assert f > 0.1 and max(i, g, o) < LAYER_TOL
    by_name = {r.name: r for r in rows}
    assert by_name["Wx"].max_rel < LAYER_TOL and by_name["b"].gates[1] == pytest.approx(f)


def _body(func):
    """The source lines of func after its signature and docstring."""
    lines = inspect.getsource(func).splitlines()[1:]
    if lines[0].strip().startswith('"""'):
        end = next(k for k in range(1, len(lines)) if lines[k].strip().endswith('"""'))
        lines = lines[end + 1:]
    return lines


@pytest.mark.parametrize("bug", bugzoo.BUGS, ids=lambda b: b.name)
def test_each_bug_is_textbook_code_but_for_its_marked_lines(bug):
    """A copy drifting from textbook.py would exhibit a different bug than the one it names."""
    copy, original = (bug.backward_step, textbook.lstm_step_backward) if bug.backward_step else (
        bug.backward, textbook.lstm_backward)
    assert inspect.signature(copy) == inspect.signature(original)
    mine, theirs = _body(copy), _body(original)
    assert len(mine) == len(theirs)
    changed = [(a, b) for a, b in zip(mine, theirs) if a != b]
    assert changed, f"{bug.name}: no line differs from textbook"
    for a, _ in changed:
        assert "# BUG" in a, f"{bug.name}: unmarked change {a!r}"
    assert all("# BUG" not in a for a, b in zip(mine, theirs) if a == b)


def test_layer_pair_leaves_textbook_alone():
    bug = bugzoo.BUGS[0]
    _, backward = bugzoo.layer_pair(bug)
    assert backward is not textbook.lstm_backward
    assert textbook.lstm_step_backward.__module__ == "numpylstm.textbook"
    assert textbook.lstm_backward.__globals__["lstm_step_backward"] is textbook.lstm_step_backward


@pytest.fixture(scope="module")
def zoo_output():
    buf = io.StringIO()
    status = bugzoo.main(stream=buf)
    return status, buf.getvalue().splitlines()


def test_zoo_command_ends_with_caught_all(zoo_output):
    status, lines = zoo_output
    K = len(bugzoo.BUGS)
    assert lines[-1] == f"caught: {K} of {K} bugs"
    assert status == 0
    for bug in bugzoo.BUGS:
        row = next(line for line in lines if line.startswith(bug.name + " "))
        assert " yes " in row
        assert bug.known_from in " ".join(line[20:] for line in lines if line.startswith("  "))  # wrapped
    assert max(map(len, lines)) <= 100  # fits a code block in GitHub's column


def test_zoo_training_losses_fall_for_the_correct_code(zoo_output):
    """The correct code learns the delayed recall (so the loss column means something)."""
    first, final = bugzoo.train_loss(bugzoo.CORRECT, steps=bugzoo.STEPS)
    assert final < 0.1 * first
    _, lines = zoo_output
    row = next(line for line in lines if line.startswith("correct "))
    assert f"{final:.4f}" in row


def test_gradcheck_main_dispatches_bugs(capsys, monkeypatch):
    monkeypatch.setattr(bugzoo, "main", lambda: 7)
    assert main(["--bugs"]) == 7
    assert main(["--bogus"]) == 2
    assert "--bugs" in capsys.readouterr().err


def test_check_layer_and_model_report_gate_blocks():
    rows = {r.name: r for r in check_layer()}
    for name in ("Wx", "Wh", "b"):
        assert len(rows[name].gates) == 4 and max(rows[name].gates) == rows[name].max_rel
    assert rows["x"].gates is None and rows["h0"].gates is None
    model = LSTMModel(3, 4, 2, num_layers=2, seed=1)
    rng = np.random.default_rng(0)
    mrows = {r.name: r for r in check_model(model, rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 2)))}
    for name in ("lstm.0.Wx", "lstm.1.Wh", "lstm.1.b"):
        assert max(mrows[name].gates) == mrows[name].max_rel < MODEL_TOL
    assert mrows["head.W"].gates is None


def test_gate_block_errors_assigns_columns_to_gates():
    H = 2
    rel = np.zeros((3, 4 * H))
    rel[:, 2 * H + 1] = 0.5  # column 5: the g block
    rel[1, 3 * H] = 0.25  # column 6: the o block
    assert gate_block_errors(rel.ravel(), np.arange(rel.size), H) == (0.0, 0.0, 0.5, 0.25)
    idx = np.array([0, 1])  # only the i block checked (a subset)
    e = gate_block_errors(np.array([0.1, 0.2]), idx, H)
    assert e[0] == 0.2 and all(np.isnan(e[1:]))


def test_chapter_08_table_is_the_commands_output(zoo_output):
    """derivations/08 section 8.4 pastes the command's output: its bugs, verdicts and figures must still hold."""
    from pathlib import Path

    chapter = (Path(__file__).resolve().parents[1] / "derivations" / "08_gradient_checking.md").read_text("utf-8")
    block = chapter[chapter.index("## 8.4"):].split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    _, lines = zoo_output
    assert block[-1] == lines[-1]
    names = [b.name for b in (bugzoo.CORRECT, *bugzoo.BUGS)]

    def table(rows):
        out = {}
        for name in names:
            row = next(r for r in rows if r.startswith(name + " "))
            fields = row[len(name):].split()
            out[name] = ([float(v) for v in fields[:4]], fields[4], float(fields[5]))
        return out

    pasted, now = table(block), table(lines)
    for name in names:
        (e1, mark1, loss1), (e2, mark2, loss2) = pasted[name], now[name]
        assert mark1 == mark2, name
        assert loss1 == pytest.approx(loss2, rel=0.05, abs=2e-4), name
        for a, b in zip(e1, e2):
            assert (a > bugzoo.CAUGHT) == (b > bugzoo.CAUGHT), name
            if b > bugzoo.CAUGHT:
                assert a == pytest.approx(b, rel=0.06), name
