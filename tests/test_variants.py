"""demo.py variants (the variant lab) end to end at tiny sizes, its Reber stream, its table and its safety rules."""

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest

from demo_cli import run_demo
from numpylstm.demos import variants as va

# ------------------------------------------------------------------------------------------ the Reber stream

def _reber_ok(s):
    """Walk Reber's graph: every symbol must be an edge out of the current node, ending in node 5 then E."""
    if not (s.startswith("B") and s.endswith("E")):
        return False
    node = 0
    for ch in s[1:-1]:
        nxt = dict(va.REBER_GRAPH.get(node, ()))
        if ch not in nxt:
            return False
        node = nxt[ch]
    return node == 5


def test_embedded_reber_strings_follow_the_grammar():
    rng = np.random.default_rng(0)
    strings = [va.embedded_reber(rng) for _ in range(500)]
    for s in strings:
        assert s[0] == "B" and s[-1] == "E" and s[1] in "TP" and s[-2] == s[1], s
        assert _reber_ok(s[2:-2]), s
    assert {s[1] for s in strings} == {"T", "P"}  # both sides occur
    assert _reber_ok("BTSSXXTVVE")  # the checker itself accepts a string of the grammar ...
    assert not _reber_ok("BTSXVE") and not _reber_ok("BPVE")  # ... and rejects strings off the graph


def test_the_stream_marks_the_long_memory_symbol_and_chunks_continue():
    ids, long = va.reber_stream(np.random.default_rng(1)).take(400)
    text = "".join(va.REBER_SYMBOLS[i] for i in ids)
    starts = [m.start() for m in re.finditer("B[TP]B", text)]
    assert starts[0] == 0
    for a, b in zip(starts, starts[1:]):  # one embedded string after another, no resets in between
        s = text[a:b]
        assert s[-2] == s[1] and long[a + len(s) - 2] and long[a:b].sum() == 1, s
    data = va.reber_batches(3, [7, 0])
    x1, y1, l1 = data.next_chunk(5)
    x2, y2, _ = data.next_chunk(5)
    assert x1.shape == y1.shape == l1.shape == (3, 5)
    np.testing.assert_array_equal(x1[:, 1:], y1[:, :-1])  # the target is the next input
    np.testing.assert_array_equal(x2[:, 0], y1[:, -1])  # the next chunk continues the stream
    again = va.reber_batches(3, [7, 0]).next_chunk(10)[1]
    np.testing.assert_array_equal(again, np.concatenate([y1, y2], axis=1))  # chunking does not change it


# ------------------------------------------------------------------------------------------ the table


def _rec(task, cell, seed, score, c=None):
    result = {va.TASKS[task].score: score, "diverged at step": None, "parameters": 10, "curve": []}
    if task == "adding":
        result["steps to MSE < 0.01"] = 100 if score < 0.01 else None
    else:
        result.update({"mean |c|": c, "mean |c| first quarter": c, "mean |c| last quarter": c})
    return {"lab": "variants", "format": va.RUN_FORMAT, "task": task, "cell": cell, "seed": seed,
            "dtype": "float32", "settings": {"steps": 7}, "result": result, "seconds": 1.0}


def test_the_ranking_orders_by_the_tasks_direction_and_ties_share_a_rank():
    recs = [_rec("adding", "rnn", 0, 0.17), _rec("adding", "rnn", 1, 0.16),
            _rec("adding", "lstm", 0, 0.001), _rec("adding", "lstm", 1, 0.003),
            _rec("adding", "gru", 0, 0.000184), _rec("adding", "cifg", 0, 0.000227),  # small, not tied
            _rec("reber", "rnn", 0, 0.9991), _rec("reber", "lstm", 0, 0.9989, c=2.0),  # tied at 3 digits
            _rec("reber", "gru", 0, 0.6)]
    table = va.summarise(recs)
    assert [r["cell"] for r in table["adding"]] == ["gru", "cifg", "lstm", "rnn"]  # lower MSE first
    assert [r["rank"] for r in table["adding"]] == [1, 2, 3, 4]
    lstm = table["adding"][2]
    assert lstm["mean"] == pytest.approx(0.002) and lstm["min"] == 0.001 and lstm["max"] == 0.003
    assert lstm["sd"] == pytest.approx(np.std([0.001, 0.003], ddof=1))
    assert [(r["cell"], r["rank"]) for r in table["reber"]] == [("rnn", 1.5), ("lstm", 1.5), ("gru", 3.0)]
    text = va.format_table(table)
    assert "2/2 (step 100)" in text and "0/2" in text  # solved counts
    overall = text.split("overall")[1]
    assert overall.index("gru") < overall.index("lstm") < overall.index("rnn")  # mean ranks 2, 2.25, 2.75
    assert "cifg" not in overall  # it ran one task only
    md = va.format_table(table, markdown=True)
    assert "| rank | cell | Greff |" in md and "|---|" in md


# ------------------------------------------------------------------------------------------ end to end


@dataclass(frozen=True)
class TinyAdding(va.AddingTask):
    timesteps: int = 8
    hidden: int = 4
    batch: int = 8
    test_size: int = 20
    eval_every: int = 2


@dataclass(frozen=True)
class TinyReber(va.ReberTask):
    hidden: int = 4
    streams: int = 4
    bptt: int = 10
    test_streams: int = 2
    test_length: int = 80
    curve_length: int = 40
    eval_every: int = 2


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(va.TASKS, "adding", TinyAdding)
    monkeypatch.setitem(va.TASKS, "reber", TinyReber)


def run(argv):
    return run_demo(argv, lines=False)  # tests/demo_cli.py


LAB = ["variants", "--cells", "lstm", "rnn", "--seeds", "1", "--steps", "4", "--jobs", "1"]


def test_lab_end_to_end_and_resume(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(va, "HEARTBEAT_SECONDS", 0.0)  # a "still running" line after every step
    out = str(tmp_path / "lab")
    status, text, err = run([*LAB, "--out", out, "--no-plot"])
    assert status == 0, err
    assert "... reber rnn seed 0: step 3/4; 3/4 runs done, elapsed" in text
    runs = sorted(p.name for p in (tmp_path / "lab" / "runs").iterdir())
    assert runs == ["adding.lstm.seed0.json", "adding.rnn.seed0.json", "reber.lstm.seed0.json",
                    "reber.rnn.seed0.json"]
    assert "[  4/4]" in text and "elapsed" in text  # a progress line per run, with the time
    table = text[text.index("adding problem"):text.index("lab done")]
    assert "lstm" in table and "rnn" in table and "overall" in table
    assert not (tmp_path / "lab" / "variants.png").exists()
    record = json.loads((tmp_path / "lab" / "runs" / "reber.lstm.seed0.json").read_text())
    assert record["settings"]["steps"] == 4 and record["result"]["mean |c|"] > 0
    assert json.loads((tmp_path / "lab" / "runs" / "reber.rnn.seed0.json").read_text())["result"]["mean |c|"] is None

    status, again, _ = run([*LAB, "--out", out, "--no-plot"])  # resumes: nothing left to train, the same table
    assert status == 0 and "4 run(s) already saved there: skipped" in again and "0 run(s) trained" in again
    assert again[again.index("adding problem"):again.index("lab done")] == table

    status, md, _ = run(["variants", "--redraw", "--out", out, "--markdown", "--no-plot", "--tasks", "reber"])
    assert status == 0 and "| rank |" in md and "adding" not in md

    status, text, _ = run([*LAB[:5], "2", *LAB[6:], "--out", out, "--no-plot", "--tasks", "reber"])  # seed 1 too
    assert status == 0 and "2 seed(s)" in text
    status, md, _ = run(["variants", "--redraw", "--out", out, "--no-plot", "--tasks", "reber", "--seeds", "1"])
    assert status == 0 and "1 seed(s)" in md and md[md.index("continual"):].strip() == table[table.index("continual"):table.index("overall")].strip()


def test_redraw_draws_the_table_from_the_saved_runs(tmp_path, tiny):
    pytest.importorskip("matplotlib")
    out = str(tmp_path / "lab")
    status, text, _ = run([*LAB, "--out", out, "--no-plot", "--steps", "2"])
    assert status == 0
    table = text[text.index("adding problem"):text.index("lab done")]
    status, redrawn, _ = run(["variants", "--redraw", "--out", out])
    assert status == 0 and redrawn[:redrawn.index("plot:")] == table
    png = tmp_path / "lab" / "variants.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png.read_bytes()[16:20], "big") <= 880  # width in pixels (the PNG's IHDR)


def test_lab_runs_are_a_function_of_their_settings_not_of_the_order(tmp_path, tiny):
    a = va.run_one("reber", va.asdict(TinyReber(steps=3)), "lstm", 1, "float32")
    b = va.run_one("reber", va.asdict(TinyReber(steps=3)), "lstm", 1, "float32")
    c = va.run_one("reber", va.asdict(TinyReber(steps=3)), "lstm", 2, "float32")
    assert a["result"] == b["result"] and a["result"] != c["result"]


def test_lab_refuses_to_replace_what_it_was_not_asked_to(tmp_path, tiny):
    out = tmp_path / "lab"
    assert run([*LAB, "--out", str(out), "--no-plot", "--tasks", "reber"])[0] == 0
    # other settings: the saved runs would be replaced
    status, _, err = run([*LAB[:-4], "--steps", "5", "--jobs", "1", "--out", str(out), "--tasks", "reber"])
    assert status == 2 and "other settings" in err and "--overwrite" in err and err.count("\n") == 1
    before = (out / "runs" / "reber.lstm.seed0.json").read_text()
    status, text, err = run([*LAB[:-4], "--steps", "5", "--jobs", "1", "--out", str(out), "--tasks", "reber",
                             "--overwrite", "--no-plot"])
    assert status == 0, err
    assert json.loads((out / "runs" / "reber.lstm.seed0.json").read_text())["settings"]["steps"] == 5
    assert before != (out / "runs" / "reber.lstm.seed0.json").read_text()
    # a file in runs/ that is not a lab run is never replaced, even with --overwrite
    (out / "runs" / "reber.lstm.seed0.json").write_text("my notes")
    status, _, err = run([*LAB, "--out", str(out), "--tasks", "reber", "--overwrite"])
    assert status == 2 and "never replaced" in err and (out / "runs" / "reber.lstm.seed0.json").read_text() == "my notes"
    # a variants.png in a folder without lab runs is someone else's picture
    other = tmp_path / "other"
    other.mkdir()
    (other / "variants.png").write_bytes(b"mine")
    status, _, err = run([*LAB, "--out", str(other), "--tasks", "reber"])
    assert status == 2 and "variants.png exists" in err and (other / "variants.png").read_bytes() == b"mine"
    assert not (other / "runs").exists()  # refused before training


@pytest.mark.parametrize("argv, message", [
    (["--cells", "lstm", "nope"], "unknown cell 'nope'"),
    (["--tasks", "sine"], "invalid choice"),
    (["--steps", "0"], "must be an integer >= 1"),
    (["--steps", "adding=x"], "expected an integer"),
    (["--steps", "sine=3"], "'sine' is not one of the tasks"),
    (["--steps", "3", "4"], "one number or TASK=N"),
    (["--seeds", "0"], "must be an integer >= 1"),
    (["--redraw", "--steps", "2"], "--redraw trains nothing"),
    (["--redraw"], "no saved lab runs"),
])
def test_lab_rejects_bad_flags_with_one_line(tmp_path, argv, message):
    status, _, err = run(["variants", *argv, "--out", str(tmp_path / "x")])
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


def test_cells_the_model_does_not_know_yet_are_named():
    cells = va.available_cells()
    assert cells[0] == "lstm" and "rnn" in cells and set(cells) <= set(va.LAB_CELLS)
    missing = [c for c in va.LAB_CELLS if c not in cells]
    if missing:
        status, _, err = run(["variants", "--cells", missing[0]])
        assert status == 2 and "not available in this checkout" in err


def test_the_labs_reber_strings_pass_the_tasks_checker():
    """The lab's stream (its own small generator) and demo.py task's grammar agree: every string the lab draws
    is an embedded Reber string by numpylstm/demos/tasks.py's checker, and the checker rejects a broken one."""
    tasks = pytest.importorskip("numpylstm.demos.tasks")
    rng = np.random.default_rng(3)
    strings = [va.embedded_reber(rng) for _ in range(300)]
    assert all(tasks.is_embedded_reber(s) for s in strings)
    assert not tasks.is_embedded_reber(strings[0][:1] + ("P" if strings[0][1] == "T" else "T") + strings[0][2:])
