"""demo.py chars / sample / sine --stateful, end to end on small texts written to tmp_path."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import demo
from numpylstm.demos import text as tx
from numpylstm.checkpoint import model_from_checkpoint

TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
        "Everything was in confusion in the Oblonskys' house. ") * 12
SMALL = ["--lstm-size", "16", "--n-seqs", "4", "--n-steps", "10", "--eval-every", "20", "--no-plot"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests below: (text path, out dir, stdout lines)."""
    root = tmp_path_factory.mktemp("chars")
    path = root / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    out = root / "run"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        status = demo.main(["chars", "--text", str(path), "--epochs", "3", "--out", str(out),
                            "--sample-length", "40", *SMALL])
    assert status == 0
    return path, out, buf.getvalue().splitlines()


def test_tiny_run_ends_with_the_val_loss_line(trained):
    _, out, lines = trained
    m = re.fullmatch(r"val loss: (\d+\.\d+) nats/char", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) < np.log(len(set(TEXT)))  # it learned something beyond uniform guessing
    assert any("chars/s" in line and "ETA" in line for line in lines)  # progress lines
    i = lines.index("sample (prime 'Hap', top-5, temperature 1):")  # no 'F' in TEXT: the prime is its start
    assert lines[i + 1].startswith("Hap")
    assert (out / "chars.npz").is_file()


def test_checkpoint_round_trip_with_vocabulary(trained):
    _, out, lines = trained
    with np.load(out / "chars.npz", allow_pickle=False) as f:
        codes = f["extra/vocab"]
        meta = json.loads(str(f["meta"]))
    vocab = tx.Vocab.from_array(codes)
    assert vocab == tx.Vocab.from_text(TEXT)
    assert meta["user"]["demo"] == "chars" and meta["user"]["settings"]["lstm_size"] == 16
    model, ck = model_from_checkpoint(out / "chars.npz")
    _, val = tx.split(vocab.encode(TEXT))
    printed = float(lines[-1].split()[2])
    assert tx.evaluate(model, val, 4, 10) == pytest.approx(printed, abs=5e-5)  # the saved weights are the final ones


def test_sample_cli_is_reproducible(trained, capsys):
    _, out, _ = trained
    args = ["sample", "--checkpoint", str(out / "chars.npz"), "--prime", "Every", "--length", "60", "--top-k", "3",
            "--temperature", "0.8", "--seed", "4"]
    assert demo.main(args) == 0
    first = capsys.readouterr().out
    assert demo.main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("Every") and len(first.rstrip("\n")) == 65


def test_unknown_prime_character_is_a_one_line_error(trained, capsys):
    _, out, _ = trained
    with pytest.raises(SystemExit) as exc:
        demo.main(["sample", "--checkpoint", str(out / "chars.npz"), "--prime", "Zürich"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "prime" in err and "'ü'" in err


def test_resume_continues_a_timed_run(trained, capsys):
    path, out, _ = trained
    run = out.parent / "timed"
    common = ["chars", "--text", str(path), "--out", str(run), "--sample-length", "0", "--quiet", *SMALL]
    assert demo.main([*common, "--minutes", "0.01"]) == 0
    with np.load(run / "chars.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
    step, spent = meta["step"], meta["user"]["train_seconds"]
    assert step >= 1 and spent >= 0.6
    capsys.readouterr()
    assert demo.main([*common[:-len(SMALL)], "--resume", str(run / "chars.npz"), "--minutes", "0.02"]) == 0
    assert re.fullmatch(r"val loss: \d+\.\d+ nats/char\n", capsys.readouterr().out)
    with np.load(run / "chars.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["step"] > step and meta["user"]["train_seconds"] >= 1.2


def test_chars_errors_exit_2(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("abc" * 10, encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        demo.main(["chars", "--text", str(short), "--epochs", "1", "--out", str(tmp_path / "o"), *SMALL])
    assert exc.value.code == 2
    assert "needs at least 41" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        demo.main(["chars", "--minutes", "1", "--epochs", "1"])
    assert exc.value.code == 2


def test_sine_stateful_prints_test_rmse_last(tmp_path, capsys):
    status = demo.main(["sine", "--stateful", "--steps", "300", "--lstm-size", "8", "--batch-size", "16",
                        "--no-plot", "--out", str(tmp_path)])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"test RMSE: \S+", lines[-1])
    assert float(lines[-1].split()[-1]) < 0.3  # far better than predicting 0 (RMS of a sine: 0.7)
    assert any("state carried" in line for line in lines)


def test_trainer_time_limit_ends_the_run_like_its_last_step():
    from numpylstm import LSTMModel
    from numpylstm.optim import Adam
    from numpylstm.train import Progress, Trainer

    model = LSTMModel(3, 4, 3, head="all", loss="softmax_ce")
    ids = np.tile(np.arange(3), 50)
    w = tx.Windows(ids, 2, 5)
    evals = []

    def make():
        return Trainer(model, Adam(model.params, 1e-2), lambda step: w[step % len(w)], 10**6, stateful=True,
                       eval_fn=lambda m: evals.append(1) or {"val": 0.0}, progress=Progress(10**6, enabled=False))

    result = make().run(time_limit=0)
    assert result.steps_run == 0
    evals.clear()
    result = make().run(time_limit=0.05)
    assert 1 <= result.steps_run < 10**6 and not result.interrupted
    assert len(evals) == 1  # the early end is evaluated like a last step


def test_default_text_and_help_say_where_anna_is(capsys):
    from numpylstm.demos.chars import default_text

    text, where = default_text()  # the project's own Markdown: present in every checkout
    assert len(text) > 1000 and "Markdown" in where
    with pytest.raises(SystemExit) as exc:
        demo.main(["chars", "--help"])
    assert exc.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "eBook #1399" in help_text and "Garnett" in help_text and "anna.txt" in help_text


def test_an_unwritable_chars_checkpoint_is_refused_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "chars.npz").mkdir()  # DIR/chars.npz can never be written
    monkeypatch.setattr(demo, "run_chars", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as exc:
        demo.main(["chars", "--epochs", "1", "--out", str(tmp_path), *SMALL])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chars.npz is a folder" in err


def test_a_failed_save_is_one_line_and_exit_1_in_chars_and_stateful_sine(trained, tmp_path, capsys, monkeypatch):
    import numpylstm.train as train_module

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_module, "save_checkpoint", full_disk)
    path, _, _ = trained
    assert demo.main(["chars", "--text", str(path), "--epochs", "1", "--out", str(tmp_path / "c"), "--quiet",
                      *SMALL]) == 1
    assert demo.main(["sine", "--stateful", "--steps", "3", "--lstm-size", "4", "--batch-size", "4", "--no-plot",
                      "--quiet", "--checkpoint", str(tmp_path / "s.npz"), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("could not write a checkpoint" in e and "No space left" in e for e in err), err


def test_chars_resume_without_out_saves_into_the_resumed_files_folder(trained, tmp_path, monkeypatch):
    path, out, _ = trained
    seen = {}
    monkeypatch.setattr(demo, "run_chars", lambda *a, **k: seen.update(k) or 0)
    assert demo.main(["chars", "--text", str(path), "--resume", str(out / "chars.npz")]) == 0
    assert Path(seen["out"]) == out
