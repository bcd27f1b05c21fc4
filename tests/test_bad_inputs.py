"""A table of bad inputs across the public API: each must raise the stated error whose message names the
culprit (the argument, and where it matters the expected shape in N/T/D/H terms and what was received).

The rule for ints, bools and finiteness these rows follow is written once, in ``numpylstm/_checks.py``.
"""

import numpy as np
import pytest

from numpylstm import (SGD, Adagrad, Adam, LSTMModel, clip_grad_norm, lstm_backward, lstm_forward,
                       params_from_torch, params_to_torch, sigmoid)
from numpylstm.gradcheck import check_layer, check_model
from numpylstm.losses import mse, softmax_ce

N, T, D, H, O, L = 2, 3, 4, 5, 2, 2
R = np.random.default_rng(0)
X = R.standard_normal((N, T, D))
H0 = np.zeros((N, H))
WX, WH, B = R.standard_normal((D, 4 * H)), R.standard_normal((H, 4 * H)), np.zeros(4 * H)
CACHE = lstm_forward(X, H0, H0, WX, WH, B)[2]
Y = R.standard_normal((N, O))
STATE = np.zeros((L, 2, N, H))


def model(**kw):
    args = dict(input_size=D, hidden_size=H, output_size=O, num_layers=L)
    args.update(kw)
    return LSTMModel(**args)


def with_param(name, value):
    m = model()
    m.params[name] = value
    return m


def nan_at(a, idx=0):
    a = np.array(a, dtype=np.float64)
    a.flat[idx] = np.nan
    return a


TORCH_SD, TORCH_LIN = params_to_torch(model().params)

# (id, call, error type, regex the message must match: it names the culprit)
API_CASES = [
    # --- lstm_forward / lstm_backward
    ("layer x rank 2", lambda: lstm_forward(X[0], H0, H0, WX, WH, B), ValueError, r"^x must have shape \(N, T, D\)"),
    ("layer x wrong D", lambda: lstm_forward(X[..., :3], H0, H0, WX, WH, B), ValueError, r"^x .*D is 3, expected 4"),
    ("layer x N=0", lambda: lstm_forward(X[:0], None, None, WX, WH, B), ValueError, r"^x .*N is 0"),
    ("layer x T=0", lambda: lstm_forward(X[:, :0], None, None, WX, WH, B), ValueError, r"^x .*T is 0"),
    ("layer x NaN", lambda: lstm_forward(nan_at(X), H0, H0, WX, WH, B), ValueError, r"^x contains 1 NaN"),
    ("layer x bool", lambda: lstm_forward(X > 0, H0, H0, WX, WH, B), ValueError, r"^x must be a real numeric .*bool"),
    ("layer x complex", lambda: lstm_forward(X + 0j, H0, H0, WX, WH, B), ValueError, r"^x .*complex"),
    ("layer x None", lambda: lstm_forward(None, H0, H0, WX, WH, B), ValueError, r"^x .*None"),
    ("layer x ragged list", lambda: lstm_forward([[[1.0]], [[1.0], [2.0]]], H0, H0, WX, WH, B), ValueError, r"^x must be a numeric array"),
    ("layer h0 wrong N", lambda: lstm_forward(X, np.zeros((3, H)), H0, WX, WH, B), ValueError, r"^h0 must have shape \(N, H\) = \(2, 5\)"),
    ("layer c0 string", lambda: lstm_forward(X, H0, "zeros", WX, WH, B), ValueError, r"^c0 must be a real numeric"),
    ("layer Wh not (H,4H)", lambda: lstm_forward(X, H0, H0, WX, WH[:, :8], B), ValueError, r"^Wh must have shape \(H, 4H\)"),
    ("layer Wx transposed", lambda: lstm_forward(X, H0, H0, WX.T, WH, B), ValueError, r"^Wx must have shape \(D, 4H\)"),
    ("layer b wrong size", lambda: lstm_forward(X, H0, H0, WX, WH, B[:-1]), ValueError, r"^b must have shape \(4H,\) = \(20,\)"),
    ("layer b inf", lambda: lstm_forward(X, H0, H0, WX, WH, np.full(4 * H, np.inf)), ValueError, r"^b contains 20 NaN"),
    ("backward dhs wrong T", lambda: lstm_backward(np.ones((N, T + 1, H)), CACHE), ValueError, r"^dhs .*T is 4, expected 3"),
    ("backward cache tuple", lambda: lstm_backward(np.ones((N, T, H)), (1, 2)), ValueError, r"^cache must be"),
    ("backward dcT NaN", lambda: lstm_backward(np.ones((N, T, H)), CACHE, None, nan_at(H0)), ValueError, r"^dcT contains"),
    ("sigmoid string", lambda: sigmoid("0.5"), ValueError, r"^z must be a real numeric"),
    ("sigmoid out shape", lambda: sigmoid(np.zeros(3), out=np.zeros(2)), ValueError, r"^out must be"),
    # --- LSTMModel constructor
    ("model hidden_size 0", lambda: model(hidden_size=0), ValueError, r"^hidden_size must be a positive integer"),
    ("model num_layers bool", lambda: model(num_layers=True), ValueError, r"^num_layers must be a positive integer"),
    ("model input_size float", lambda: model(input_size=4.0), ValueError, r"^input_size"),
    ("model dropout 1", lambda: model(dropout=1.0), ValueError, r"^dropout must be a number in \[0, 1\)"),
    ("model dropout keep_prob mixup", lambda: model(dropout="0.5"), ValueError, r"^dropout"),
    ("model head", lambda: model(head="many"), ValueError, r"^head must be one of 'last', 'all'"),
    ("model head array", lambda: model(head=np.array(["last", "all"])), ValueError, r"^head must be one of"),
    ("model loss", lambda: model(loss="ce"), ValueError, r"^loss must be one of"),
    ("model dtype float16", lambda: model(dtype=np.float16), ValueError, r"^dtype must be float32 or float64"),
    ("model seed negative", lambda: model(seed=-3), ValueError, r"^seed"),
    ("model forget_bias inf", lambda: model(forget_bias=np.inf), ValueError, r"^forget_bias"),
    # --- LSTMModel calls
    ("forward x (N, T) floats", lambda: LSTMModel(1, 3, 1).forward(np.zeros((4, 5))), ValueError, r"^x must have shape \(N, T, D\) = \(\?, \?, 1\).*x\[\.\.\., None\]"),
    ("forward x wrong D", lambda: model().forward(np.zeros((N, T, D + 1))), ValueError, r"^x .*D is 5, expected 4"),
    ("forward x empty T", lambda: model().forward(np.zeros((N, 0, D))), ValueError, r"^x .*T is 0"),
    ("forward x token id too big", lambda: model().forward(np.array([[0, D]])), ValueError, r"^x holds ids outside \[0, 4\)"),
    ("forward x negative id", lambda: model().forward(np.array([[-1, 0]])), ValueError, r"^x holds ids outside"),
    ("forward x 1e300 into float32", lambda: model(dtype=np.float32).forward(np.full((N, T, D), 1e300)), ValueError, r"^x contains .*float32"),
    ("forward state wrong L", lambda: model().forward(X, np.zeros((1, 2, N, H))), ValueError, r"^state must have shape \(L, 2, N, H\) = \(2, 2, 2, 5\).*L is 1"),
    ("forward state (h, c) tuple", lambda: model().forward(X, (H0, H0)), ValueError, r"^state must have shape \(L, 2, N, H\)"),
    ("forward state NaN", lambda: model().forward(X, nan_at(STATE)), ValueError, r"^state contains 1 NaN"),
    ("forward train string", lambda: model().forward(X, train="false"), ValueError, r"^train must be True or False"),
    ("loss_and_grads y (N,) for O=1", lambda: LSTMModel(D, H, 1).loss_and_grads(X, np.zeros(N)), ValueError, r"^y must have shape \(N, O\) = \(2, 1\).*y\[\.\.\., None\]"),
    ("loss_and_grads y wrong N", lambda: model().loss_and_grads(X, Y[:1]), ValueError, r"^y .*N is 1, expected 2"),
    ("loss_and_grads y NaN", lambda: model().loss_and_grads(X, nan_at(Y)), ValueError, r"^y contains"),
    ("softmax_ce y floats", lambda: model(loss="softmax_ce").loss_and_grads(X, np.zeros(N)), ValueError, r"^y must hold integer ids"),
    ("softmax_ce y class too big", lambda: model(loss="softmax_ce").loss_and_grads(X, np.array([0, O])), ValueError, r"^y holds ids outside \[0, 2\)"),
    ("softmax_ce head all y (N,)", lambda: model(loss="softmax_ce", head="all").loss_and_grads(X, np.zeros(N, int)), ValueError, r"^y must have shape \(N, T\)"),
    ("masks not a list", lambda: model(dropout=0.5).loss_and_grads(X, Y, masks=np.ones((N, T, H))), ValueError, r"^masks must be a list of num_layers = 2"),
    ("masks wrong shape", lambda: model(dropout=0.5).loss_and_grads(X, Y, masks=[np.ones((N, T, H)), np.ones((N, T, 1))]), ValueError, r"^masks\[1\] .*H is 1, expected 5"),
    ("input_grads not bool", lambda: model().loss_and_grads(X, Y, input_grads="yes"), ValueError, r"^input_grads must be True or False"),
    ("evaluate state wrong N", lambda: model().evaluate(X, Y, np.zeros((L, 2, 3, H))), ValueError, r"^state .*N is 3, expected 2"),
    ("make_masks N=0", lambda: model().make_masks(0, T), ValueError, r"^N must be a positive integer"),
    ("make_masks T float", lambda: model().make_masks(N, 2.5), ValueError, r"^T must be a positive integer"),
    ("params wrong shape", lambda: with_param("head.W", np.zeros((H, O + 1))).forward(X), ValueError, r"^model\.params\['head\.W'\] must be a float64 array of shape \(5, 2\)"),
    ("params wrong dtype", lambda: with_param("lstm.0.Wh", np.zeros((H, 4 * H), np.float32)).forward(X), ValueError, r"^model\.params\['lstm\.0\.Wh'\] .*float32"),
    ("params a list", lambda: with_param("lstm.1.b", [0.0] * (4 * H)).forward(X), ValueError, r"^model\.params\['lstm\.1\.b'\]"),
    ("params missing key", lambda: (lambda m: (m.params.pop("head.b"), m.forward(X)))(model()), ValueError, r"^model\.params is missing 'head\.b'"),
    # --- losses
    ("mse shapes differ", lambda: mse(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"^target must have the shape of y"),
    ("softmax_ce logits 1-D", lambda: softmax_ce(np.zeros(3), np.zeros(3, int)), ValueError, r"^logits must have shape \(P, O\)"),
    ("softmax_ce target bool", lambda: softmax_ce(np.zeros((3, 2)), np.zeros(3, bool)), ValueError, r"^target must hold integer ids"),
    # --- optimizers, clipping
    ("Adam lr string", lambda: Adam({"w": np.zeros(3)}, lr="1e-3"), ValueError, r"^lr must be a real number"),
    ("SGD momentum 1", lambda: SGD({"w": np.zeros(3)}, momentum=1.0), ValueError, r"^momentum must be in \[0, 1\)"),
    ("Adagrad int params", lambda: Adagrad({"w": np.zeros(3, int)}), ValueError, r"^params\['w'\] must be a float32 or float64"),
    ("step grads wrong shape", lambda: Adam({"w": np.zeros(3)}).step({"w": np.zeros(4)}), ValueError, r"^grads\['w'\] has shape \(4,\) but params\['w'\] has shape \(3,\)"),
    ("step grads bool", lambda: Adam({"w": np.zeros(3)}).step({"w": np.zeros(3, bool)}), ValueError, r"^grads\['w'\] must be a real numeric"),
    ("step grads NaN", lambda: SGD({"w": np.zeros(3)}).step({"w": nan_at(np.zeros(3))}), ValueError, r"^grads\['w'\] contains 1 NaN"),
    ("load_state_dict missing t", lambda: Adam({"w": np.zeros(3)}).load_state_dict({}), ValueError, r"^state dict is missing key"),
    ("clip max_norm 0", lambda: clip_grad_norm({"w": np.ones(3)}, 0), ValueError, r"^max_norm must be a finite number > 0"),
    ("clip grads list", lambda: clip_grad_norm({"w": [1.0, 2.0]}, 1.0), ValueError, r"^grads\['w'\] must be a float32 or float64"),
    # --- interop
    ("from_torch not a dict", lambda: params_from_torch([1, 2]), ValueError, r"^lstm_state_dict must be a dict"),
    ("from_torch bias wrong size", lambda: params_from_torch({**TORCH_SD, "bias_hh_l1": np.zeros(7)}), ValueError, r"^lstm_state_dict\['bias_hh_l1'\] must have shape \(4H,\) = \(20,\)"),
    ("from_torch layer 1 input not H", lambda: params_from_torch({**TORCH_SD, "weight_ih_l1": np.zeros((20, 3))}), ValueError, r"^lstm_state_dict\['weight_ih_l1'\] .*D is 3, expected 5"),
    ("from_torch bidirectional", lambda: params_from_torch({**TORCH_SD, "weight_ih_l0_reverse": np.zeros((20, 4))}), ValueError, r"'weight_ih_l0_reverse'.*bidirectional"),
    ("from_torch weight_hh None", lambda: params_from_torch({**TORCH_SD, "weight_hh_l0": None}), ValueError, r"^lstm_state_dict\['weight_hh_l0'\]"),
    ("from_torch NaN weight", lambda: params_from_torch({**TORCH_SD, "weight_hh_l1": nan_at(TORCH_SD["weight_hh_l1"])}), ValueError, r"^lstm_state_dict\['weight_hh_l1'\] contains"),
    ("from_torch linear wrong H", lambda: params_from_torch(TORCH_SD, {"weight": np.zeros((O, H + 1))}), ValueError, r"^linear_state_dict\['weight'\] .*H is 6, expected 5"),
    ("from_torch linear extra key", lambda: params_from_torch(TORCH_SD, {**TORCH_LIN, "scale": 1}), ValueError, r"^linear_state_dict has key 'scale'"),
    ("to_torch not a dict", lambda: params_to_torch(None), ValueError, r"^params must be a dict"),
    ("to_torch head.b missing", lambda: params_to_torch({k: v for k, v in model().params.items() if k != "head.b"}), ValueError, r"^params is missing 'head\.b'"),
    # --- gradient checker
    ("check_layer H=0", lambda: check_layer(H=0), ValueError, r"^H must be a positive integer"),
    ("check_model not a model", lambda: check_model("model", X, Y), ValueError, r"^model must be an LSTMModel"),
    ("check_model float32 model", lambda: check_model(model(dtype=np.float32), X, Y), ValueError, r"float64 model"),
    ("check_model x wrong D", lambda: check_model(model(), X[..., :1], Y), ValueError, r"^x .*D is 1, expected 4"),
]


@pytest.mark.parametrize("call, error, culprit", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_input_raises_a_named_error(call, error, culprit):
    with pytest.raises(error, match=culprit):
        call()


def test_the_table_is_big_enough():
    assert len(API_CASES) >= 30
    assert len({c[0] for c in API_CASES}) == len(API_CASES)  # ids are unique


# ----------------------------------------------------------------------------- the command line

def _demo_main():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "demo.py"
    spec = importlib.util.spec_from_file_location("demo_cli_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _cli_files(folder):
    """Files the CLI rows refer to, created in the (temporary) working folder."""
    np.savez(folder / "foreign.npz", a=np.arange(3))
    (folder / "truncated.npz").write_bytes(b"PK\x03\x04 this zip stops here")
    (folder / "afile").write_text("not a folder\n")
    (folder / "adir").mkdir()


# (id, argv, regex the single stderr line must match: it names the culprit flag or file)
CLI_CASES = [
    ("timesteps 0", ["--timesteps", "0"], r"--timesteps: must be an integer >= 1, got 0"),
    ("timesteps float", ["--timesteps", "1.5"], r"--timesteps: expected an integer, got '1\.5'"),
    ("lstm-size negative", ["--lstm-size", "-1"], r"--lstm-size"),
    ("lstm-layers word", ["--lstm-layers", "two"], r"--lstm-layers: expected an integer"),
    ("keep-prob 0", ["--keep-prob", "0"], r"--keep-prob: must be in \(0, 1\]"),
    ("keep-prob 1.5", ["--keep-prob", "1.5"], r"--keep-prob"),
    ("keep-prob tiny", ["--keep-prob", "1e-17"], r"keep_prob must be in \(0, 1\]"),
    ("batch-size 0", ["--batch-size", "0"], r"--batch-size"),
    ("steps 0", ["--steps", "0"], r"--steps"),
    ("steps 1e3", ["--steps", "1e3"], r"--steps: expected an integer, got '1e3'"),
    ("lr 0", ["--lr", "0"], r"--lr: must be a number > 0"),
    ("lr negative", ["--lr", "-0.1"], r"--lr"),
    ("lr inf", ["--lr", "inf"], r"--lr"),
    ("lr nan", ["--lr", "nan"], r"--lr"),
    ("warmup negative", ["--warmup", "-1"], r"--warmup"),
    ("clip 0", ["--clip", "0"], r"--clip"),
    ("clip nan", ["--clip", "nan"], r"--clip"),
    ("seed negative", ["--seed", "-1"], r"--seed"),
    ("dtype float16", ["--dtype", "float16"], r"--dtype: invalid choice"),
    ("checkpoint-every 0", ["--checkpoint-every", "0"], r"--checkpoint-every"),
    ("stop-at 0", ["--stop-at", "0"], r"--stop-at"),
    ("stop-at past steps", ["--stop-at", "50", "--steps", "10"], r"--stop-at 50 is beyond --steps 10"),
    ("resume missing", ["--resume", "missing.npz"], r"--resume: no such file: missing\.npz"),
    ("resume a folder", ["--resume", "adir"], r"--resume: adir is a folder; expected a file"),  # issue 23, 8
    ("resume /dev/null", ["--resume", "/dev/null"], r"/dev/null is not a usable numpylstm checkpoint"),
    ("out empty", ["--out", ""], r"--out: expected a file or folder name, got ''"),
    ("checkpoint empty", ["--checkpoint", ""], r"--checkpoint: expected a file or folder name"),
    ("resume foreign npz", ["--resume", "foreign.npz"], r"foreign\.npz is not a usable numpylstm checkpoint"),
    ("resume truncated", ["--resume", "truncated.npz"], r"truncated\.npz is not a usable numpylstm checkpoint"),
    ("resume a text file", ["--resume", "afile"],
     r"afile is not a usable numpylstm checkpoint: not an \.npz \(zip\) archive"),
    ("checkpoint is a folder", ["--checkpoint", "adir"], r"--checkpoint adir is a folder"),
    ("checkpoint under a file", ["--checkpoint", "afile/ck.npz"], r"--checkpoint afile/ck\.npz: afile is a file"),
    ("out is a file", ["--out", "afile"], r"--out afile is a file"),
    ("sizes beyond memory", ["--timesteps", "100000"], r"GB of memory \(timesteps 100000"),
    ("unknown flag", ["--frobnicate"], r"unrecognized arguments: --frobnicate"),
    ("TF-1 spelling", ["--lstm_size", "20"], r"unrecognized arguments: --lstm_size"),
]


@pytest.mark.parametrize("argv, culprit", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_flag_prints_one_line_and_exits_2(argv, culprit, tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.chdir(tmp_path)
    _cli_files(tmp_path)
    main = _demo_main()
    with pytest.raises(SystemExit) as info:
        main(["--no-plot", "--quiet", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(culprit, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "foreign.npz", "truncated.npz"]


def test_the_cli_table_is_big_enough():
    assert len(CLI_CASES) >= 20 and len({c[0] for c in CLI_CASES}) == len(CLI_CASES)
