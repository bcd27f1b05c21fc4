"""parallel.py, the data-parallel engine: the same numbers as one process, and nothing left behind.

"Equal" is test_textbook.py's: max |K processes - one process| <= 1e-12 * max |one process| for every result
(loss, every gradient, final state, input gradients), float64. The K processes add K weighted gradients where
one process makes one GEMM over all rows, so they differ by roundoff (~1e-16).

Workers start with 'fork' (the default on Linux, ~0.1 s); one test starts them with 'spawn'.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from numpylstm import Adam, LSTMModel
from numpylstm.parallel import DataParallel, segment_prefix, split_rows

from test_textbook import assert_same, model_data

RTOL = 1e-12
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory (/dev/shm)")

# (D, H, O, L, dropout, head, loss, N, T, tokens, stateful, K)
CASES = {
    "last-mse": (3, 5, 2, 2, 0.0, "last", "mse", 6, 7, False, False, 2),
    "all-mse-dropout": (3, 4, 2, 2, 0.4, "all", "mse", 5, 6, False, True, 2),  # N = 5 on 2: 3 + 2 rows
    "all-ce-ids-dropout": (7, 5, 7, 2, 0.3, "all", "softmax_ce", 7, 5, True, True, 3),  # 3 + 2 + 2 rows
    "last-ce-ids": (9, 4, 3, 3, 0.0, "last", "softmax_ce", 4, 6, True, False, 2),
    "last-mse-dropout-1layer": (2, 6, 1, 1, 0.5, "last", "mse", 3, 4, False, True, 2),
    "N1": (3, 4, 2, 2, 0.2, "all", "mse", 1, 3, False, True, 2),  # more workers than rows: one idles
}


def results(out):
    loss, grads, final, ig = out
    got = {"loss": np.float64(loss), "final_state": final, "dx": ig["x"], "dstate": ig["state"]}
    got.update({f"d{k}": v for k, v in grads.items()})
    return got


def shm_names(pid=None):
    """This process's (or ``pid``'s) segments in /dev/shm (the machine may have others', coming and going)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(segment_prefix(pid))}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes only once reaped; /proc says which
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_split_rows_covers_every_row_once_and_evenly():
    for N in range(1, 12):
        for K in range(1, 5):
            bounds = split_rows(N, K)
            assert [a for a, _ in bounds][0] == 0 and bounds[-1][1] == N
            assert all(b0[1] == b1[0] for b0, b1 in zip(bounds, bounds[1:]))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_engine_equals_one_process(case):
    """Two steps (the second from the first's final state when stateful), masks drawn from model.rng:
    loss, gradients, final state and input gradients as one process's, and the RNG left where one process
    leaves it."""
    D, H, O, L, dropout, head, loss, N, T, tokens, stateful, K = CASES[case]
    kw = dict(num_layers=L, dropout=dropout, head=head, loss=loss, seed=3)
    one, many = LSTMModel(D, H, O, **kw), LSTMModel(D, H, O, **kw)
    rng = np.random.default_rng(len(case))
    batches = [model_data(rng, D, H, O, L, head, loss, N, T, tokens) for _ in range(2)]
    before = shm_names()  # (none: each test closes its engines)
    with DataParallel(many, workers=K) as engine:
        state_one = state_many = None
        for x, y, state in batches:
            if not stateful:
                state_one = state_many = state
            want = results(one.loss_and_grads(x, y, state_one, input_grads=True))
            got = results(engine.loss_and_grads(x, y, state_many, input_grads=True))
            assert (got["dx"] is None) == tokens
            assert_same(got, want, RTOL)
            state_one, state_many = want["final_state"], got["final_state"]
            assert one.rng.bit_generator.state == many.rng.bit_generator.state  # the same masks were drawn
        # and the comparison fails on a wrong engine: one weight changed by 1e-9 relative
        many.params["lstm.0.Wh"].flat[0] *= 1 + 1e-9
        x, y, state = batches[0]
        one_out = results(one.loss_and_grads(x, y, state, train=False, input_grads=True))
        with pytest.raises(AssertionError, match="relative difference"):
            assert_same(results(engine.loss_and_grads(x, y, state, train=False, input_grads=True)), one_out, RTOL)
    assert shm_names() == before


def test_given_masks_and_train_false_as_one_process():
    one, many = (LSTMModel(3, 4, 2, 2, dropout=0.5, head="all", seed=1) for _ in range(2))
    x, y, state = model_data(np.random.default_rng(0), 3, 4, 2, 2, "all", "mse", 5, 4, False)
    masks = one.make_masks(5, 4)
    many.make_masks(5, 4)
    with DataParallel(many, workers=2) as engine:
        for kw in (dict(masks=masks), dict(train=False), dict(train=False, masks=masks)):
            assert_same(results(engine.loss_and_grads(x, y, state, input_grads=True, **kw)),
                        results(one.loss_and_grads(x, y, state, input_grads=True, **kw)), RTOL)
            assert one.rng.bit_generator.state == many.rng.bit_generator.state
        loss, grads, final = engine.loss_and_grads(x, y)  # without input_grads: three results, as the model's
        assert set(grads) == set(many.params) and final.shape == (2, 2, 5, 4)


def test_float32_and_the_textbook_layers():
    for kw in (dict(dtype=np.float32), dict(impl="textbook")):
        one, many = (LSTMModel(3, 4, 2, 2, head="all", seed=1, **kw) for _ in range(2))
        x, y, state = model_data(np.random.default_rng(0), 3, 4, 2, 2, "all", "mse", 5, 4, False)
        if "dtype" in kw:
            x, y, state = (a.astype(np.float32) for a in (x, y, state))
        with DataParallel(many, workers=2) as engine:
            got = results(engine.loss_and_grads(x, y, state, input_grads=True))
        assert_same(got, results(one.loss_and_grads(x, y, state, input_grads=True)), 1e-5 if "dtype" in kw else RTOL)


@pytest.mark.parametrize("cell", ["rnn", "gru", "fgr"])
def test_other_cells(cell):
    """Workers rebuild the model from ``model.config``, which names the cell."""
    one, many = (LSTMModel(3, 4, 2, 2, head="all", seed=1, cell=cell, dropout=0.3) for _ in range(2))
    x, y, state = model_data(np.random.default_rng(0), 3, 4, 2, 2, "all", "mse", 5, 4, False)
    with DataParallel(many, workers=2) as engine:
        got = results(engine.loss_and_grads(x, y, state, input_grads=True))
    assert_same(got, results(one.loss_and_grads(x, y, state, input_grads=True)), RTOL)


def test_auto_falls_back_to_one_process_when_workers_cannot_start(monkeypatch):
    """--workers auto on a machine without usable shared memory: one line, then training in this process;
    an explicit --workers K still fails loudly."""
    from types import SimpleNamespace

    from numpylstm import parallel

    def no_shm(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(parallel, "DataParallel", no_shm)
    trainer, said = SimpleNamespace(model=None, engine=None), []
    with parallel.training_on(trainer, 2, 8, fallback=said.append) as engine:
        assert engine is None and trainer.engine is None
    assert len(said) == 1 and "2 worker processes" in said[0] and "in this process" in said[0]
    with pytest.raises(OSError), parallel.training_on(trainer, 2, 8):
        pass


@pytest.mark.parametrize("tokens", [True, False], ids=["ids", "floats"])
def test_the_stateful_evaluation_walk_equals_one_process(tokens):
    """evaluate_walk: text.evaluate's walk (state carried over the batches) on 2 workers, 5 rows (3 + 2)."""
    from numpylstm.demos.text import evaluate

    rng = np.random.default_rng(3)
    if tokens:
        model = LSTMModel(6, 5, 6, num_layers=2, head="all", loss="softmax_ce", seed=1)
        seq = rng.integers(0, 6, 5 * 4 * 3 + 1)
    else:
        model = LSTMModel(1, 5, 1, num_layers=2, head="all", loss="mse", seed=1)
        seq = rng.standard_normal(5 * 4 * 3 + 1)
    want = evaluate(model, seq, 5, 4)
    with DataParallel(model, workers=2) as engine:
        got = evaluate(model, seq, 5, 4, engine=engine)
        model.params["lstm.0.Wh"] += 1e-3  # the next walk reads the model's current weights
        changed = evaluate(model, seq, 5, 4, engine=engine)
    assert abs(got - want) <= RTOL * abs(want)
    assert abs(changed - evaluate(model, seq, 5, 4)) <= RTOL * abs(want) and changed != got


def test_training_with_an_optimizer_sees_the_updated_weights():
    """Adam updates the model's own arrays in place; every step's gradients are taken at the new weights."""
    one, many = (LSTMModel(2, 5, 1, 2, dropout=0.2, seed=4) for _ in range(2))
    opt_one, opt_many = Adam(one.params, lr=0.01), Adam(many.params, lr=0.01)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5, 2)), rng.standard_normal((6, 1))
    with DataParallel(many, workers=2) as engine:
        for _ in range(5):
            l1, g1, _ = one.loss_and_grads(x, y)
            l2, g2, _ = engine.loss_and_grads(x, y)
            opt_one.step(g1)
            opt_many.step(g2)
            assert abs(l2 - l1) <= RTOL * abs(l1)
    assert_same(many.params, one.params, 1e-11)
    assert not any(np.shares_memory(g, p) for g in g2.values() for p in many.params.values())


def test_bad_input_is_a_one_line_error_and_the_engine_keeps_working():
    model = LSTMModel(3, 4, 5, 2, head="all", loss="softmax_ce", seed=0)
    x = np.random.default_rng(0).integers(0, 3, (4, 6))
    y = np.zeros((4, 6), int)
    with DataParallel(model, workers=2) as engine:
        with pytest.raises(ValueError, match="y must .* N = 4 rows"):
            engine.loss_and_grads(x, y[:3])
        with pytest.raises(ValueError, match="state must"):
            engine.loss_and_grads(x, y, state=np.zeros((2, 2, 3, 4)))
        with pytest.raises(ValueError, match="masks must"):
            engine.loss_and_grads(x, y, masks=[np.ones((4, 6, 4))])
        with pytest.raises(ValueError, match="y"):  # found by a worker's model: class 7 >= O = 5
            engine.loss_and_grads(x, y + 7)
        assert np.isfinite(engine.loss_and_grads(x, y)[0])
    with pytest.raises(RuntimeError, match="closed"):
        engine.loss_and_grads(x, y)
    with pytest.raises(ValueError, match="workers"):
        DataParallel(model, workers=0)
    with pytest.raises(ValueError, match="start_method"):
        DataParallel(model, start_method="threads")


def test_masks_that_are_not_numbers_are_refused_before_anything_is_shared():
    """Object or string masks would put Python object pointers into shared memory, meaningless in a worker:
    refused by the main process in one line, nothing left in /dev/shm, the engine keeps working."""
    model = LSTMModel(3, 4, 5, 2, head="all", loss="softmax_ce", seed=0)
    x = np.random.default_rng(0).integers(0, 3, (4, 6))
    y = np.zeros((4, 6), int)
    before = shm_names()
    with DataParallel(model, workers=2) as engine:
        for bad in (np.full((4, 6, 4), None, object), np.full((4, 6, 4), "a")):
            with pytest.raises(ValueError, match="masks must be a list of num_layers = 2 numeric arrays"):
                engine.loss_and_grads(x, y, masks=[bad] * 2)
        assert shm_names() == before
        assert np.isfinite(engine.loss_and_grads(x, y)[0])
        assert shm_names() == before


def test_a_walk_over_another_model_is_refused():
    from numpylstm.demos.text import evaluate

    model, other = (LSTMModel(6, 5, 6, 2, head="all", loss="softmax_ce", seed=s) for s in (0, 1))
    with DataParallel(model, workers=2) as engine, pytest.raises(ValueError, match="engine must"):
        evaluate(other, np.arange(61) % 6, 5, 4, engine=engine)


def test_close_leaves_no_process_and_no_segment():
    model = LSTMModel(3, 4, 2, 2, seed=0)
    before = shm_names()  # (none: each test closes its engines)
    engine = DataParallel(model, workers=2)
    pids = engine.pids
    assert all(alive(p) for p in pids)
    assert shm_names() == before  # unlinked as soon as the workers attached
    engine.loss_and_grads(np.zeros((3, 4, 3)), np.zeros((3, 2)))
    engine.loss_and_grads(np.zeros((9, 4, 3)), np.zeros((9, 2)))  # a bigger batch: a new io block
    assert shm_names() == before
    engine.close()
    engine.close()  # twice is fine
    assert not any(alive(p) for p in pids)
    assert shm_names() == before
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(engine)
    from numpylstm.parallel import _new_segment

    seg = _new_segment(64)  # and the listing sees a segment left linked
    try:
        assert shm_names() == before | {seg.name}
    finally:
        seg.close()
        seg.unlink()


def test_a_dead_worker_is_an_error_and_the_rest_is_cleaned_up():
    model = LSTMModel(3, 4, 2, 2, seed=0)
    before = shm_names()  # (none: each test closes its engines)
    engine = DataParallel(model, workers=2)
    pids = engine.pids
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(RuntimeError, match="worker 0 died"):
        engine.loss_and_grads(np.zeros((3, 4, 3)), np.zeros((3, 2)))
    assert not any(alive(p) for p in pids)
    assert shm_names() == before
    with pytest.raises(RuntimeError, match="closed"):
        engine.loss_and_grads(np.zeros((3, 4, 3)), np.zeros((3, 2)))


def test_spawn_gives_the_same_numbers():
    one, many = (LSTMModel(3, 4, 2, 2, dropout=0.3, head="all", seed=1) for _ in range(2))
    x, y, state = model_data(np.random.default_rng(0), 3, 4, 2, 2, "all", "mse", 5, 4, False)
    with DataParallel(many, workers=2, start_method="spawn") as engine:
        assert_same(results(engine.loss_and_grads(x, y, state, input_grads=True)),
                    results(one.loss_and_grads(x, y, state, input_grads=True)), RTOL)


# A parent that runs steps until told otherwise; it prints its workers' pids, then "step" after each step.
PARENT = textwrap.dedent("""
    import sys, numpy as np
    from numpylstm import LSTMModel
    from numpylstm.parallel import DataParallel
    model = LSTMModel(3, 16, 2, 2, seed=0)
    x, y = np.zeros((8, 30, 3)), np.zeros((8, 2))
    engine = DataParallel(model, workers=2)
    print(*engine.pids, flush=True)
    try:
        while True:
            engine.loss_and_grads(x, y)
            print("step", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
""")


def start_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    assert proc.stdout.readline().strip() == "step"
    return proc, pids


def test_ctrl_c_in_the_parent_stops_the_workers_and_frees_the_memory(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: the workers ignore it; the parent's
    KeyboardInterrupt ends them and unlinks its segments."""
    proc, pids = start_parent(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "interrupted" in out
    assert gone_within(pids, 5)
    assert shm_names(proc.pid) == set()


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    proc, pids = start_parent(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert gone_within(pids, 10)  # they notice within _PARENT_CHECK seconds of their current step
    assert shm_names(proc.pid) == set()


# ------------------------------------------------------------------------------------------ the demos
SINE = ["--steps", "30", "--lstm-size", "6", "--timesteps", "8", "--batch-size", "9", "--warmup", "5",
        "--dtype", "float64", "--keep-prob", "0.8", "--no-plot", "--quiet"]
CHARS_TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n"
              "Everything was in confusion in the Oblonskys' house. ") * 12
CHARS = ["--lstm-size", "8", "--n-seqs", "5", "--n-steps", "10", "--eval-every", "20", "--no-plot", "--epochs", "1",
         "--dtype", "float64", "--keep-prob", "0.7", "--sample-length", "0", "--quiet"]


def checkpoint_arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if f[k].dtype.kind == "f"}


@pytest.mark.parametrize("command", ["sine", "sine --stateful", "chars"])
def test_the_demos_train_the_same_with_workers(command, tmp_path, capsys):
    """The same run with and without --workers 2 (odd batch sizes: uneven blocks) ends with the same weights,
    optimizer moments and losses, to rounding."""
    import demo

    (tmp_path / "t.txt").write_text(CHARS_TEXT, encoding="utf-8")
    saved = {}
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"])):
        if command == "chars":
            args = ["chars", "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path / name), *CHARS, *extra]
            path = tmp_path / name / "chars.npz"
        else:
            path = tmp_path / f"{name}.npz"
            args = [*command.split(), *SINE, "--checkpoint", str(path), "--out", str(tmp_path / name), *extra]
        before = shm_names()  # (none: each test closes its engines)
        assert demo.main(args) == 0
        assert shm_names() == before
        saved[name] = checkpoint_arrays(path)
    assert saved["one"].keys() == saved["two"].keys() and len(saved["one"]) > 5
    for k, want in saved["one"].items():
        got = saved["two"][k]
        assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max(), k
    capsys.readouterr()


def test_the_workers_flag_is_checked(capsys):
    import demo

    for bad in ("0", "two", "Auto"):
        with pytest.raises(SystemExit) as e:
            demo.main(["sine", "--workers", bad])
        assert e.value.code == 2 and "--workers" in capsys.readouterr().err


def test_auto_picks_every_core_for_the_char_rnn_and_one_process_for_the_sine_model():
    from numpylstm.demos.chars import CharSettings
    from numpylstm.demos.sine import SineSettings
    from numpylstm.parallel import AUTO_MIN_MACS, auto_workers, resolve_workers, step_macs

    c, s = CharSettings(), SineSettings()
    char = LSTMModel(77, c.lstm_size, 77, num_layers=c.lstm_layers, head="all", loss="softmax_ce")
    sine = LSTMModel(1, s.lstm_size, 1, num_layers=s.lstm_layers)
    assert step_macs(char, c.n_seqs, c.n_steps) > 10 * AUTO_MIN_MACS  # 2.4e9: far above the threshold
    assert step_macs(sine, s.batch_size, s.timesteps) < AUTO_MIN_MACS / 2  # 1.9e7: far below it
    assert auto_workers(char, c.n_seqs, c.n_steps, cores=2) == 2
    assert auto_workers(char, c.n_seqs, c.n_steps, cores=64) == c.n_seqs  # a worker needs a row
    assert auto_workers(char, c.n_seqs, c.n_steps, cores=1) is None
    assert auto_workers(sine, s.batch_size, s.timesteps, cores=8) is None
    # the threshold itself: just below it one process, at it every core
    wide = LSTMModel(1, 48, 1, num_layers=2)  # 3 N T * 28,224 layer weights
    n_at = -(-int(AUTO_MIN_MACS) // (3 * 20 * step_macs(wide, 1, 1) // 3))
    assert auto_workers(wide, n_at, 20, cores=2) == 2 and auto_workers(wide, n_at - 1, 20, cores=2) is None
    assert resolve_workers("auto", char, c.n_seqs, c.n_steps) == auto_workers(char, c.n_seqs, c.n_steps)
    assert resolve_workers(1, char, 32, 50) is None and resolve_workers(None, char, 32, 50) is None
    assert resolve_workers(3, sine, 64, 20) == 3 and resolve_workers(8, sine, 5, 20) == 5
    assert resolve_workers(3, sine, 1, 20) is None  # one row: nothing to split


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"])
def test_a_signal_during_a_demo_run_with_workers_saves_and_says_how_to_continue(tmp_path, sig):
    """A signal to the whole process group (a terminal's Ctrl-C, a closed terminal, a shutdown) reaches the
    workers too: they ignore it, the step in flight finishes, the run saves and exits 128 + the signal's
    number; no worker and no segment is left."""
    cmd = [sys.executable, "demo.py", "sine", "--steps", "100000", "--lstm-size", "16", "--batch-size", "64",
           "--workers", "2", "--no-plot", "--checkpoint", str(tmp_path / "ck.npz"), "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
    children = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 2:  # wait for the two workers to run
        time.sleep(0.1)
        try:
            children = [c for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                        if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]  # (stdlib's)
        except FileNotFoundError:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert len(children) == 2, err
    assert proc.returncode == 128 + sig, err
    assert "--resume" in out + err and (tmp_path / "ck.npz").is_file()
    assert gone_within([int(c) for c in children], 5)
    assert shm_names(proc.pid) == set()


def test_a_program_that_forgets_close_leaves_nothing_behind(tmp_path):
    """atexit closes every engine still open, also one the program no longer refers to: the workers are gone
    when the program has ended (without that, multiprocessing's own exit handler waits for them forever)."""
    script = tmp_path / "forgets.py"
    script.write_text(textwrap.dedent("""
        import os
        import numpy as np
        from numpylstm import LSTMModel
        from numpylstm.parallel import DataParallel
        engine = DataParallel(LSTMModel(3, 4, 2, 2, seed=0), workers=2)
        engine.loss_and_grads(np.zeros((4, 5, 3)), np.zeros((4, 2)))
        dropped = DataParallel(LSTMModel(3, 4, 2, 2, seed=0), workers=2)  # not even referenced at the end
        print(os.getpid(), *engine.pids, *dropped.pids, flush=True)
        del dropped
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    parent, *pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 4 and gone_within(pids, 5)
    assert shm_names(parent) == set()


def test_the_example_of_docs_parallel_runs():
    text = (ROOT / "docs" / "parallel.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "docs/parallel.md", "exec"), namespace)
    assert np.isfinite(namespace["loss"]) and namespace["engine"]._closed
