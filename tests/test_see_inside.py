"""demo.py inside / gradients / adding / cells, end to end at tiny sizes, and the pieces they are built on."""

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from demo_cli import run_demo
from numpylstm.demos import adding as ad
from numpylstm.demos import cells as ce
from numpylstm.demos.gradients import gradient_norms
from numpylstm.demos.inside import layer_activations
from numpylstm.model import LSTMModel


run = run_demo  # tests/demo_cli.py


# ------------------------------------------------------------------------------------------ adding


def test_adding_batch_is_the_le_jaitly_hinton_variant():
    x, y = ad.adding_batch(20000, 10, np.random.default_rng(0))
    assert x.shape == (20000, 10, 2) and y.shape == (20000, 1)
    marks = x[:, :, 1]
    assert np.all(marks.sum(axis=1) == 2)
    assert np.all(marks[:, :5].sum(axis=1) == 1) and np.all(marks[:, 5:].sum(axis=1) == 1)  # one in each half
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=1), rtol=0, atol=1e-15)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(ad.BASELINE, abs=0.005)  # the 0.167 baseline
    with pytest.raises(ValueError, match="timesteps"):
        ad.adding_batch(3, 1, np.random.default_rng(0))


TINY_ADDING = ["--timesteps", "6", "--lstm-size", "4", "--minutes", "0.01", "--eval-every", "5"]


def test_adding_both_cells_plot_refuse_to_overwrite_and_resume(tmp_path):
    out = str(tmp_path / "add")
    status, lines, _ = run(["adding", *TINY_ADDING, "--out", out])
    assert status == 0 and re.fullmatch(r"test MSE: \d\.\d+(e-\d+)?", lines[-1]), lines[-1:]
    status, lines, _ = run(["adding", *TINY_ADDING, "--out", out, "--cell", "rnn", "--quiet"])
    assert status == 0 and len(lines) == 1 and lines[0].startswith("test MSE: ")
    assert (tmp_path / "add" / "adding.png").stat().st_size > 10000
    before = (tmp_path / "add" / "lstm.npz").read_bytes()
    status, _, err = run(["adding", *TINY_ADDING, "--out", out])
    assert status == 2 and "another run's checkpoint" in err and "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "add" / "lstm.npz").read_bytes() == before  # nothing replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "lstm.npz").write_text("not a checkpoint")
    status, _, err = run(["adding", *TINY_ADDING, "--out", str(tmp_path / "other"), "--overwrite"])
    assert status == 2 and "never replaced" in err
    assert (tmp_path / "other" / "lstm.npz").read_text() == "not a checkpoint"
    s, hist = ad._history(tmp_path / "add" / "lstm.npz")
    assert s.timesteps == 6 and hist[0][0] == 0 and hist[0][1] < 1e-3  # the score before training, at 0 s
    steps = hist[-1][0]
    status, lines, _ = run(["adding", "--resume", str(tmp_path / "add" / "lstm.npz"), "--minutes", "0.02"])
    assert status == 0 and lines[-1].startswith("test MSE: ")
    assert ad._history(tmp_path / "add" / "lstm.npz")[1][-1][0] > steps  # continued, in the same file
    status, _, err = run(["adding", "--resume", str(tmp_path / "add" / "lstm.npz"), "--lstm-size", "5"])
    assert status == 2 and "differ" in err


def test_adding_rejects_bad_flags(tmp_path):
    for argv, word in ((["--timesteps", "1"], "--timesteps"), (["--cell", "grue"], "--cell"),
                       (["--minutes", "0"], "--minutes")):
        status, _, err = run(["adding", *argv, "--out", str(tmp_path)])
        assert status == 2 and word in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_gradient_norms_are_the_gradients_at_each_state(cell):
    """An independent oracle: the gradient at (c_t, h_t) is the initial-state gradient of the model run on the
    remaining steps x[:, t:] from that state (the fast kernel's loss_and_grads, not the textbook walk)."""
    rng = np.random.default_rng(3)
    model = LSTMModel(2, 5, 1, seed=2, cell=cell)
    x, y = ad.adding_batch(4, 7, rng)
    dh_norms, dc_norms = gradient_norms(model, x, y)
    assert dh_norms.shape == (7,) and (dc_norms is None) == (cell == "rnn")
    for t in (1, 3, 6):  # the state after t steps is h_t, entry t - 1
        _, state = model.forward(x[:, :t])
        _, _, _, ig = model.loss_and_grads(x[:, t:], y, state, train=False, input_grads=True)
        dstate = ig["state"][0]
        assert dh_norms[t - 1] == pytest.approx(np.linalg.norm(dstate[1], axis=1).mean(), rel=1e-10)
        if cell == "lstm":  # c_t reaches the loss through step t+1, dstate[0], and through h_t by (F5):
            acts = layer_activations(model, x[:, :t])[1][0]
            o, c = acts["o"][:, -1], acts["c"][:, -1]
            total = dstate[0] + dstate[1] * o * (1 - np.tanh(c) ** 2)  # (B2)
            assert dc_norms[t - 1] == pytest.approx(np.linalg.norm(total, axis=1).mean(), rel=1e-10)


def test_gradients_command_prints_four_ratios(tmp_path):
    argv = ["gradients", "--timesteps", "8", "--lstm-size", "4", "--batch", "8", "--train-steps", "3",
            "--from", str(tmp_path / "none"), "--out", str(tmp_path / "g")]
    status, lines, _ = run(argv)
    assert status == 0
    ratios = [line for line in lines if "||dh_1|| / ||dh_T||" in line]
    assert len(ratios) == 4 and lines[-4:] == ratios
    assert all("||dc_1||" in line for line in ratios if line.startswith("LSTM"))
    assert (tmp_path / "g" / "flow.png").stat().st_size > 10000
    status, _, err = run(argv)
    assert status == 2 and "--overwrite" in err


# ------------------------------------------------------------------------------------------ inside


def test_inside_draws_a_checkpoint_and_its_activations_are_the_model(tmp_path):
    ck = str(tmp_path / "s.npz")
    assert run(["sine", "--steps", "20", "--lstm-size", "4", "--timesteps", "6", "--checkpoint", ck, "--no-plot",
                "--quiet"])[0] == 0
    status, lines, _ = run(["inside", "--checkpoint", ck, "--out", str(tmp_path / "o"), "--window", "3"])
    assert status == 0 and lines[-1].startswith("prediction ") and lines[-1].endswith("inside.png")
    assert (tmp_path / "o" / "inside.png").stat().st_size > 20000
    status, _, err = run(["inside", "--checkpoint", ck, "--out", str(tmp_path / "o")])
    assert status == 2 and "--overwrite" in err
    status, _, err = run(["inside", "--checkpoint", ck, "--out", str(tmp_path / "o2"), "--window", "5000"])
    assert status == 2 and "--window" in err

    model = LSTMModel(1, 3, 1, num_layers=2, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 5, 1))
    y, layers = layer_activations(model, x)
    np.testing.assert_allclose(y, model.forward(x)[0], rtol=0, atol=1e-13)
    for acts in layers:
        assert set(acts) == {"i", "f", "g", "o", "c", "h"}
        np.testing.assert_allclose(acts["h"], acts["o"] * np.tanh(acts["c"]), rtol=0, atol=1e-14)  # (F5)


# ------------------------------------------------------------------------------------------ cells


def test_text_properties():
    p = ce.text_properties('ab "cd" e\n(f)')
    np.testing.assert_array_equal(p["inside quotes"], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["position in line"], [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3])
    np.testing.assert_array_equal(p["after a space"], [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["position in word"], [1, 2, 0, 0, 1, 2, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(p["inside parentheses"], [0] * 10 + [1, 1, 1])
    assert ce.text_properties('"a\n\nb"')["inside quotes"].tolist() == [1, 1, 1, 0, 0, 1]  # reset at a blank line


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.rows, self.data, self._in = [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script" and a.get("type") == "application/json":
            self._in = "json"
        if tag == "tr" and "data-kind" in a:
            self.rows.append(a)

    def handle_data(self, data):
        if self._in == "json":
            self.data = json.loads(data)
            self._in = None


TEXT = ('"Where are you going?" she asked.\nHe said nothing, and went out (slowly) into the garden.\n\n'
        'It was late. "Come back," she called, "it is raining."\n') * 15


def test_cells_page_is_self_contained_and_says_what_it_computed(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert run(["chars", "--text", str(path), "--epochs", "2", "--lstm-size", "8", "--lstm-layers", "2",
                "--n-seqs", "4", "--n-steps", "10", "--out", str(tmp_path / "c"), "--no-plot", "--quiet",
                "--sample-length", "0"])[0] == 0
    ck = str(tmp_path / "c" / "chars.npz")
    status, lines, _ = run(["cells", "--checkpoint", ck, "--text", str(path), "--length", "150", "--top", "2"])
    assert status == 0 and lines[-1] == f"page: {tmp_path / 'c' / 'cells.html'}"
    html_text = (tmp_path / "c" / "cells.html").read_text(encoding="utf-8")
    assert str(tmp_path) not in html_text and "chars.npz" in html_text  # file names, never the user's folders
    page = Page()
    page.feed(html_text)
    # self-contained: no external script, style sheet, image or frame; nothing with a network address
    for tag, attrs in page.tags:
        assert "src" not in attrs and not (tag == "link"), (tag, attrs)
        assert not any(str(v).startswith(("http:", "https:", "//")) for v in attrs.values()), (tag, attrs)
    d = page.data
    L, H, T = d["layers"], d["units"], d["length"]
    assert (L, H) == (2, 8) and T == len(d["text"]) == 150
    assert d["text"] in TEXT
    for kind in ("c", "h"):
        assert len(base64.b64decode(d[kind])) == L * H * T
    # the values shown are the model's: recompute one cell
    from numpylstm.checkpoint import model_from_checkpoint
    from numpylstm.demos.text import Vocab

    model, ckpt = model_from_checkpoint(ck)
    states = ce.cell_states(model, Vocab.from_array(ckpt.extra["vocab"]).encode(d["text"]))
    h = np.frombuffer(base64.b64decode(d["h"]), np.int8).reshape(L, H, T)
    np.testing.assert_allclose(h[1, 3] / 127, states["h"][1, :, 3], atol=0.5 / 127 + 1e-6)
    # the table: two rows per property present, each r recomputed
    corr = ce.correlations(states, ce.text_properties(d["text"]))
    assert len(page.rows) == len(d["top"]) == 2 * len(corr)
    assert "inside quotes" in corr and "after a space" in corr
    for row in d["top"]:
        r = corr[row["property"]][row["kind"]][row["layer"], row["unit"]]
        assert row["r"] == pytest.approx(r, abs=1e-4)
    best = {p: max(np.abs(corr[p][k]).max() for k in "ch") for p in corr}
    firsts = {}
    for row in d["top"]:
        firsts.setdefault(row["property"], abs(row["r"]))
    for p, v in firsts.items():
        assert v == pytest.approx(best[p], abs=1e-4)  # the listed cells are the most correlated
    status, _, err = run(["cells", "--checkpoint", ck, "--text", str(path)])
    assert status == 2 and "--overwrite" in err
