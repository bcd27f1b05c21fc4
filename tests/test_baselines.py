"""n-gram baselines of the chars demo: exact on hand-checkable texts, normalised, and printed by the demo."""

import io
import math
import re
from contextlib import redirect_stdout
from fractions import Fraction

import numpy as np
import pytest

import demo
from numpylstm.demos import text as tx
from numpylstm.demos.baselines import DISCOUNT, baselines, format_baselines, ngram_cross_entropy

A, B, C = 0, 1, 2  # vocabulary "abc"; training text "abab" never shows c
TRAIN = [A, B, A, B]


def test_hand_checked_numbers():
    """Train "abab", score the b of val "ab" (context: ..., b | a), D = 3/4, V = 3.

    unigram: counts a 2, b 2 of 4, 2 types: p(b) = (2 - 3/4)/4 + (3/4)(2/4)(1/3) = 7/16.
    bigram: top counts ab 2, ba 1; context a: total 2, 1 type. Continuation counts (distinct bigrams ab, ba):
      a 1, b 1 of 2, 2 types: p1(b) = (1/4)/2 + (3/4)(2/2)(1/3) = 3/8; p(b|a) = (5/4)/2 + (3/4)(1/2)(3/8) = 49/64.
    trigram (context "b a": the end of train, then val[0]): top counts aba 1, bab 1; context ba: total 1, 1 type.
      middle level = continuation counts of bigrams (distinct trigrams aba, bab): ba 1, ab 1; context a: total 1,
      1 type: p2(b|a) = 1/4 + (3/4)(3/8) = 17/32; p(b|ba) = 1/4 + (3/4)(17/32) = 83/128.
    """
    assert DISCOUNT == 0.75
    val = [A, B]
    for order, p in ((1, Fraction(7, 16)), (2, Fraction(49, 64)), (3, Fraction(83, 128))):
        assert ngram_cross_entropy(TRAIN, val, order, 3) == pytest.approx(-math.log(p), rel=1e-15, abs=0)
    b = baselines(TRAIN, val, 3)
    assert list(b) == ["uniform", "unigram", "bigram", "trigram"]
    assert b["uniform"] == math.log(3)
    # an unseen character: unigram p(c) = (3/4)(2/4)(1/3) = 1/8; after "a": (3/4)(1/2) p1(c) = (3/8)(1/4) = 3/32
    assert ngram_cross_entropy(TRAIN, [A, C], 1, 3) == pytest.approx(math.log(8), rel=1e-15)
    assert ngram_cross_entropy(TRAIN, [A, C], 2, 3) == pytest.approx(-math.log(3 / 32), rel=1e-15)


def test_the_mean_is_over_val_after_its_first_character():
    val = [A, B, A, C]  # scores b | a, a | b, c | a
    p = [Fraction(49, 64), None, Fraction(3, 32)]
    # a | b: top count ba 1, context b: total 1, 1 type; p1(a) = 3/8: p = 1/4 + (3/4)(1/1)(3/8) = 17/32
    p[1] = Fraction(17, 32)
    expected = -sum(math.log(q) for q in p) / 3
    assert ngram_cross_entropy(TRAIN, val, 2, 3) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_in_every_context(order):
    rng = np.random.default_rng(order)
    V = 5
    train = rng.integers(0, V - 1, 60)  # the last symbol never occurs in training
    for ctx in range(V):
        p = [math.exp(-ngram_cross_entropy(train, [ctx, w], order, V)) for w in range(V)]
        assert sum(p) == pytest.approx(1.0, abs=1e-12)
        assert min(p) > 0


def test_more_context_helps_on_text_with_structure():
    text = ("the cat sat on the mat. the dog sat on the log. " * 40)
    vocab = tx.Vocab.from_text(text)
    train, val = tx.split(vocab.encode(text), 0.1)
    b = baselines(train, val, len(vocab))
    assert b["uniform"] > b["unigram"] > b["bigram"] > b["trigram"]
    assert format_baselines(b) == ("baselines (nats/char): " + ", ".join(f"{k} {v:.4f}" for k, v in b.items()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(order=0), "order"), (dict(order=True), "order"), (dict(val=[A]), "val must hold"),
    (dict(train=[A], order=2), "train must hold"), (dict(val=[A, 3]), r"val ids must be in \[0, 3\)"),
    (dict(discount=1.0), "discount"),
])
def test_bad_arguments_are_one_line_errors(kwargs, match):
    args = dict(train=TRAIN, val=[A, B], order=2, vocab_size=3) | kwargs
    with pytest.raises(ValueError, match=match):
        ngram_cross_entropy(args.pop("train"), args.pop("val"), args.pop("order"), args.pop("vocab_size"), **args)


TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
        "Everything was in confusion in the Oblonskys' house. ") * 12


def _run(tmp_path, *extra):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    buf = io.StringIO()
    with redirect_stdout(buf):
        status = demo.main(["chars", "--text", str(path), "--epochs", "1", "--out", str(tmp_path / "run"),
                            "--lstm-size", "8", "--n-seqs", "4", "--n-steps", "10", "--sample-length", "0",
                            *extra])
    assert status == 0
    return buf.getvalue().splitlines()


def test_chars_demo_prints_the_baselines_before_training(tmp_path):
    lines = _run(tmp_path, "--no-plot")
    k = next(i for i, line in enumerate(lines) if line.startswith("baselines (nats/char): "))
    assert k < next(i for i, line in enumerate(lines) if line.startswith("step "))
    vocab = tx.Vocab.from_text(TEXT)
    train, val = tx.split(vocab.encode(TEXT), 0.1)
    M = tx.num_batches(len(val), 4, 10) * 4 * 10
    assert lines[k] == format_baselines(baselines(train, val[: M + 1], len(vocab)))
    m = re.fullmatch(r"  untrained loss on the first batch (\d+\.\d+) nats/char \(ln V = (\d+\.\d+): .*", lines[k + 1])
    assert m and float(m.group(2)) == pytest.approx(math.log(len(vocab)), abs=1e-4)
    assert abs(float(m.group(1)) - float(m.group(2))) < 0.1


def test_chars_demo_warns_when_the_first_loss_is_far_from_ln_v(tmp_path, monkeypatch):
    from numpylstm.model import LSTMModel

    real = LSTMModel.evaluate
    calls = []

    def evaluate(self, x, y, state=None):  # the first call is the untrained check
        loss, st = real(self, x, y, state)
        calls.append(loss)
        return (loss + 3.0 if len(calls) == 1 else loss), st

    monkeypatch.setattr(LSTMModel, "evaluate", evaluate)
    lines = _run(tmp_path, "--no-plot")
    warning = [line for line in lines if line.startswith("warning: the untrained model's loss")]
    assert len(warning) == 1 and "far from ln V" in warning[0]


def test_loss_plot_draws_the_baselines(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from numpylstm.demos import plots

    figures = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi=100, outputs=None: figures.append(fig)
                        or real_save(fig, path, dpi, outputs))
    path = plots.plot_loss(tmp_path / "loss.png", np.linspace(3, 1, 50), 10, log=False,
                           hlines={"uniform": 3.3, "bigram": 2.0})
    assert path.stat().st_size > 1000
    ax = figures[0].axes[0]
    flat = {float(line.get_ydata()[0]) for line in ax.lines if len(set(line.get_ydata())) == 1}
    assert {3.3, 2.0} <= flat
    assert {"uniform 3.30", "bigram 2.00"} <= {t.get_text() for t in ax.texts}


def test_orders_whose_codes_overflow_are_refused():
    with pytest.raises(ValueError, match="int64"):
        ngram_cross_entropy(TRAIN, [A, B], 11, 77)  # 77**11 > 2**63


def test_command_prints_the_demo_line(tmp_path, capsys):
    from numpylstm.demos.baselines import main

    path = tmp_path / "t.txt"
    path.write_text(TEXT * 12, encoding="utf-8")  # long enough for one 32 x 50 validation batch
    assert main(["--text", str(path), "--orders", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    vocab = tx.Vocab.from_text(TEXT * 12)
    train, val = tx.split(vocab.encode(TEXT * 12), 0.1)
    M = tx.num_batches(len(val), 32, 50) * 32 * 50
    assert out[1] == format_baselines(baselines(train, val[: M + 1], len(vocab)))
    assert out[2] == f"4-gram {ngram_cross_entropy(train, val[: M + 1], 4, len(vocab)):.4f}"
    with pytest.raises(SystemExit) as info:  # a usage error: one line, exit status 2
        main(["--text", str(tmp_path / "missing.txt")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "missing.txt cannot be read" in err, err
