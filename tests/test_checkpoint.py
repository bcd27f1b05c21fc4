import json
import zipfile

import numpy as np
import pytest

from numpylstm import LSTMModel
from numpylstm.checkpoint import (FORMAT_VERSION, load_checkpoint, model_from_checkpoint, read_checkpoint,
                                  save_checkpoint)
from numpylstm.optim import Adam


def _trained(seed=0, hidden=4, dtype=np.float64, dropout=0.1):
    model = LSTMModel(2, hidden, 3, num_layers=2, dropout=dropout, seed=seed, dtype=dtype)
    opt = Adam(model.params, lr=1e-2)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((5, 4, 2)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)
    for _ in range(3):
        _, grads, _ = model.loss_and_grads(x, y)
        opt.step(grads)
    return model, opt


def test_round_trip_restores_params_optimizer_rng_and_extras(tmp_path):
    model, opt = _trained()
    path = tmp_path / "sub" / "ck.npz"
    vocab = np.array(list("abc"))
    save_checkpoint(path, model, opt, step=3, user={"note": "hi", "n": np.int64(2)}, extra={"vocab": vocab})
    assert [p.name for p in path.parent.iterdir()] == ["ck.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as z:  # plain npz, no pickle
        assert int(z["format_version"]) == FORMAT_VERSION
        assert json.loads(str(z["meta"][()]))["step"] == 3
    other, opt2 = _trained(seed=5)
    ck = load_checkpoint(path, other, opt2)
    assert ck.step == 3 and ck.user == {"note": "hi", "n": 2}
    np.testing.assert_array_equal(ck.extra["vocab"], vocab)
    for k in model.params:
        np.testing.assert_array_equal(other.params[k], model.params[k])
    for k, a in opt.state_dict().items():
        np.testing.assert_array_equal(opt2.state_dict()[k], a)
    assert other.rng.random() == model.rng.random()  # same dropout masks from here on
    rebuilt, _ = model_from_checkpoint(path)
    assert rebuilt.config["hidden_size"] == 4
    np.testing.assert_array_equal(rebuilt.params["head.W"], model.params["head.W"])


def test_another_architecture_is_a_clear_error_and_changes_nothing(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "ck.npz", model, opt, step=3)
    other = LSTMModel(2, 5, 3, num_layers=2, dropout=0.1)
    before = {k: p.copy() for k, p in other.params.items()}
    with pytest.raises(ValueError, match=r"ck\.npz was made for another architecture: hidden_size=4"):
        load_checkpoint(tmp_path / "ck.npz", other)
    for k in before:
        np.testing.assert_array_equal(other.params[k], before[k])
    with pytest.raises(ValueError, match="dtype='float64'"):
        load_checkpoint(tmp_path / "ck.npz", LSTMModel(2, 4, 3, num_layers=2, dropout=0.1, dtype=np.float32))


def test_truncated_corrupt_and_foreign_files_are_refused_by_name(tmp_path):
    model, opt = _trained()
    good = tmp_path / "good.npz"
    save_checkpoint(good, model, opt)
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        read_checkpoint(cut)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ValueError, match="garbage.npz.*corrupt"):
        read_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="foreign.npz.*format_version"):
        read_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_checkpoint(tmp_path / "missing.npz")


def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(dst, **arrays)


def test_version_meta_and_array_checks(tmp_path):
    model, opt = _trained()
    good = tmp_path / "good.npz"
    save_checkpoint(good, model, opt)
    _rewrite(good, tmp_path / "v.npz", format_version=np.array(99))
    with pytest.raises(ValueError, match="format version 99"):
        read_checkpoint(tmp_path / "v.npz")
    _rewrite(good, tmp_path / "m.npz", meta=np.array("{not json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        read_checkpoint(tmp_path / "m.npz")
    _rewrite(good, tmp_path / "s.npz", **{"param/head.W": np.zeros((4, 2))})
    with pytest.raises(ValueError, match=r"head\.W"):
        load_checkpoint(tmp_path / "s.npz", _trained()[0])
    _rewrite(good, tmp_path / "d.npz", **{"param/head.W": model.params["head.W"].astype(np.float32)})
    with pytest.raises(ValueError, match="float32"):
        load_checkpoint(tmp_path / "d.npz", _trained()[0])
    _rewrite(good, tmp_path / "o.npz", **{"optim/m/head.W": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(tmp_path / "o.npz", *_trained())
    _rewrite(good, tmp_path / "x.npz", **{"junk": np.zeros(1)})
    with pytest.raises(ValueError, match="unexpected entry 'junk'"):
        read_checkpoint(tmp_path / "x.npz")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    model, opt = _trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, step=1)
    with pytest.raises(ValueError, match="dtype object"):
        save_checkpoint(path, model, opt, step=2, extra={"bad": np.array([{}, 1], dtype=object)})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(path, model, opt, step=2, user={"bad": object()})
    assert read_checkpoint(path).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
    assert zipfile.is_zipfile(path)


def test_a_save_removes_temp_files_left_by_a_killed_save(tmp_path):
    model = LSTMModel(1, 3, 1, seed=0)
    path = tmp_path / "run.npz"
    stale = tmp_path / ".run.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.npz.abc123.tmp"  # another checkpoint's temp file is not ours to delete
    other.write_bytes(b"x")
    save_checkpoint(path, model, step=1)
    assert not stale.exists() and other.exists()
    assert read_checkpoint(path).step == 1


def test_a_file_that_is_not_a_zip_is_named_as_such_without_pickle_advice(tmp_path):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ValueError, match=r"passwd is not a usable numpylstm checkpoint: not an \.npz \(zip\)") as e:
        read_checkpoint(text)
    assert "pickle" not in str(e.value)
    npy = tmp_path / "a.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"not an \.npz \(zip\) archive \(it is a single \.npy array\)"):
        read_checkpoint(npy)
