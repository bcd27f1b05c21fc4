"""Checkpoints as plain ``.npz`` files: readable with ``np.load(path, allow_pickle=False)``, written atomically.

Layout of a checkpoint (every entry is an ordinary array; nothing is pickled):

    format_version     0-d int64, ``FORMAT_VERSION``
    meta               0-d unicode array holding JSON text: {"kind": "numpylstm.checkpoint",
                       "model_config": model.config (with "cell" unless it is "lstm"), "step": int,
                       "rng_state": the model's bit-generator state, "optimizer": optimizer class name or
                       null, "user": any JSON the caller passes}
    param/<name>       one array per ``model.params`` entry (``lstm.0.Wx``, ``gru.0.bh`` ...), in the model's dtype
    optim/<key>        the optimizer's ``state_dict()`` (``m/lstm.0.Wx`` ..., ``t``)
    extra/<name>       arrays the caller adds: loss history, a char-RNN's vocabulary, a carried state ...

Saving writes a temporary file in the destination folder, flushes and fsyncs it, then ``os.replace``-s it
over the destination, so an interrupted save never leaves a half-written checkpoint behind: the file is
either the previous checkpoint or the new one. A new checkpoint gets the user's normal file permissions
(0666 minus the umask), a replaced one keeps its mode. A file that is not a numpylstm checkpoint (notes, a
script, someone else's ``.npz``) is never replaced: ``save_checkpoint`` refuses with a ``ValueError``.
``check_replaceable`` is the command line's rule for existing files (replace only your own run's checkpoint,
or with ``--overwrite``).

Loading verifies the format version, the model configuration (the architecture), and the name, shape and
dtype of every array before it changes anything, and reports any problem as a ``ValueError`` naming the
file and what is wrong. A missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._files import atomic_write, real_target

__all__ = ["FORMAT_VERSION", "ARCHITECTURE_KEYS", "Checkpoint", "save_checkpoint", "read_checkpoint",
           "load_checkpoint", "model_from_checkpoint", "is_checkpoint", "check_replaceable", "unused_path"]

FORMAT_VERSION = 1
KIND = "numpylstm.checkpoint"
# model.config entries that must agree between a checkpoint and the model it is loaded into. seed and
# forget_bias only shape the initial weights, which the checkpoint replaces, so they may differ.
ARCHITECTURE_KEYS = ("input_size", "hidden_size", "output_size", "num_layers", "dropout", "head", "loss", "dtype")


@dataclass
class Checkpoint:
    """Everything read from a checkpoint file (already verified as well-formed)."""

    path: Path
    step: int
    model_config: dict
    rng_state: dict | None
    optimizer_name: str | None
    params: dict = field(default_factory=dict)  # name -> array
    optimizer_state: dict = field(default_factory=dict)  # state_dict key -> array
    extra: dict = field(default_factory=dict)  # name -> array
    user: dict = field(default_factory=dict)  # the JSON the caller stored


def _to_jsonable(obj):
    """Python ints/floats/str/lists/dicts; NumPy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(path, model, optimizer=None, *, step=0, user=None, extra=None) -> Path:
    """Write ``model`` (params, config, RNG state), ``optimizer`` state, ``step`` and extras to ``path``.

    Args:
        path: destination file (its folder is created if needed). Written atomically.
        model: an ``LSTMModel`` (anything with ``params``, ``config`` and ``rng``).
        optimizer: an optimizer with ``state_dict()``, or None.
        step: number of completed training steps.
        user: a JSON-serialisable dict (run settings, history, ...), stored in ``meta["user"]``.
        extra: dict name -> array stored as ``extra/<name>`` (must not be of dtype object).

    Returns the path written (for a symbolic link: the file it points to, which is what gets updated).
    """
    path = real_target(path)
    if path.exists() and not is_checkpoint(path):
        raise ValueError(f"cannot save to {path}: it exists and is not a numpylstm checkpoint, so it is never "
                         f"replaced; choose another file name")
    arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64)}
    meta = {"kind": KIND, "model_config": model.config, "step": int(step),
            "rng_state": model.rng.bit_generator.state if hasattr(model, "rng") else None,
            "optimizer": None if optimizer is None else type(optimizer).__name__,
            "user": {} if user is None else user}
    try:
        text = json.dumps(_to_jsonable(meta), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save {path}: user data must be JSON-serialisable ({exc})") from exc
    arrays["meta"] = np.array(text)  # 0-d unicode array, no pickle
    for name, p in model.params.items():
        arrays[f"param/{name}"] = p
    if optimizer is not None:
        for key, a in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = a
    for name, a in (extra or {}).items():
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise ValueError(f"cannot save {path}: extra[{name!r}] has dtype object, which needs pickle")
        arrays[f"extra/{name}"] = a
    return _atomic_savez(path, arrays)


def _atomic_savez(path: Path, arrays: dict) -> Path:
    """The rule of every file numpylstm writes (``_files.atomic_write``): a temporary file beside ``path``,
    fsynced, renamed over it; a symbolic link is followed (its target is updated, the link stays)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint file on its own (no model needed). See the module docstring."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a numpylstm checkpoint file")

    def bad(problem):
        return ValueError(f"{path} is not a usable numpylstm checkpoint: {problem}")

    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head == b"PK\x03\x04":  # an .npz is a zip archive; anything else (text, a pickle, an .npy) must
                # not reach np.load, whose loaders for other formats answer with irrelevant pickle advice
                f.seek(0)
                with np.load(f, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}  # reading every member checks every CRC
    except ValueError as exc:  # includes "Object arrays cannot be loaded when allow_pickle=False"
        raise bad(f"cannot be read without pickle or is corrupt ({exc})") from exc
    except Exception as exc:  # any other damage: zipfile, struct, NotImplementedError (a flipped compression
        # method), RuntimeError (a flipped "encrypted" bit), OSError, MemoryError (an absurd array header) ...
        raise bad(f"not a readable .npz file, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if head != b"PK\x03\x04":
        what = "it is a single .npy array" if head == b"\x93NUM" else "a foreign or corrupt file?"
        raise bad(f"not an .npz (zip) archive ({what})")
    if not isinstance(data, dict) or "format_version" not in data or "meta" not in data:
        raise bad("it has no 'format_version' and 'meta' entries (a foreign .npz file?)")
    fv = data.pop("format_version")
    if fv.shape != () or fv.dtype.kind not in "iu":
        raise bad(f"'format_version' must be a 0-d integer array; got {fv.dtype} of shape {fv.shape}")
    if int(fv) != FORMAT_VERSION:
        raise bad(f"format version {int(fv)}; this numpylstm reads version {FORMAT_VERSION}")
    m = data.pop("meta")
    if m.shape != () or m.dtype.kind != "U":
        raise bad("'meta' must be a 0-d unicode array of JSON text")
    try:
        meta = json.loads(str(m[()]))
    except json.JSONDecodeError as exc:
        raise bad(f"'meta' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise bad(f"'meta' does not describe a {KIND}")
    for key, typ in (("model_config", dict), ("step", int), ("user", dict)):
        if not isinstance(meta.get(key), typ):
            raise bad(f"meta[{key!r}] is missing or not a {typ.__name__}")
    if meta["step"] < 0:
        raise bad(f"meta['step'] is negative ({meta['step']})")
    ck = Checkpoint(path=path, step=meta["step"], model_config=meta["model_config"],
                    rng_state=meta.get("rng_state"), optimizer_name=meta.get("optimizer"), user=meta["user"])
    groups = {"param": ck.params, "optim": ck.optimizer_state, "extra": ck.extra}
    for key, a in data.items():
        prefix, _, name = key.partition("/")
        if prefix not in groups or not name:
            raise bad(f"unexpected entry {key!r}")
        groups[prefix][name] = a
    return ck


def is_checkpoint(path) -> bool:
    """True when ``path`` is a numpylstm checkpoint file (reads only its 'format_version' and 'meta' entries)."""
    try:
        return _peek(Path(path)) is not None
    except Exception:
        return False


def _peek(path: Path):
    """(step, meta) of a checkpoint from its small entries only; None if it is not one."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return None
        f.seek(0)
        with np.load(f, allow_pickle=False) as z:
            if "format_version" not in z.files or "meta" not in z.files:
                return None
            m = z["meta"]
    if m.shape != () or m.dtype.kind != "U":
        return None
    meta = json.loads(str(m[()]))
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        return None
    return meta.get("step"), meta


def check_replaceable(path, *, overwrite=False, own=None, flag="--checkpoint", also="") -> None:
    """May a run write its checkpoint to ``path``? Raises a one-line ValueError if not.

    Yes when nothing is there, when ``path`` is the file the run continues (``own``: the ``--resume`` file),
    or when it is a numpylstm checkpoint and ``overwrite`` is true. A file that is not a numpylstm checkpoint
    is never replaced, not even with ``overwrite``.
    """
    p = Path(path)
    if not os.path.lexists(p):
        return
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; expected a file name")
    try:
        peek = _peek(p)
    except Exception:
        peek = None
    if peek is None:
        raise ValueError(f"{flag} {p} exists and is not a numpylstm checkpoint; it is never replaced: "
                         f"choose another file name")
    if own is not None and os.path.lexists(own) and os.path.samefile(p, own):
        return
    if overwrite:
        return
    step = peek[0]
    at = f" (at step {step})" if isinstance(step, int) else ""
    raise ValueError(f"{flag} {p} holds another run's checkpoint{at}: continue that run with --resume {p}, "
                     f"or replace it with --overwrite{also}")


def unused_path(path) -> Path:
    """``path`` if nothing is there, else the first free ``stem-2.suffix``, ``stem-3.suffix`` ... beside it."""
    p = Path(path)
    n = 2
    while os.path.lexists(p):
        p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
        n += 1
    return p


def _check_params(ck: Checkpoint, model) -> None:
    def bad(problem):
        return ValueError(f"checkpoint {ck.path} does not fit this model: {problem}")

    want = model.param_shapes()
    missing = [k for k in want if k not in ck.params]
    unexpected = [k for k in ck.params if k not in want]
    if missing or unexpected:
        raise bad(f"parameter names differ (missing {missing}, unexpected {unexpected})")
    for k, shape in want.items():
        a = ck.params[k]
        if a.shape != tuple(shape) or a.dtype != model.dtype:
            raise bad(f"param {k!r} is {a.dtype} {a.shape}; the model needs {model.dtype} {tuple(shape)}")
        if not np.isfinite(a).all():
            raise bad(f"param {k!r} holds NaN or infinite values")


def _check_architecture(ck: Checkpoint, model) -> None:
    have = model.config
    diffs = [f"{k}={ck.model_config.get(k)!r} (model has {have.get(k)!r})"
             for k in ARCHITECTURE_KEYS if ck.model_config.get(k) != have.get(k)]
    # the cell: model.config names it unless it is the standard "lstm" (checkpoints made before there was a
    # choice of cell hold no name: they are LSTMs)
    cell, want = ck.model_config.get("cell", "lstm"), have.get("cell", "lstm")
    if cell != want:
        diffs.insert(0, f"cell={cell!r} (model has {want!r})")
    if diffs:
        raise ValueError(f"checkpoint {ck.path} was made for another architecture: " + ", ".join(diffs))


def _check_optimizer(ck: Checkpoint, optimizer) -> None:
    def bad(problem):
        return ValueError(f"checkpoint {ck.path} does not fit this optimizer: {problem}")

    if ck.optimizer_name != type(optimizer).__name__:
        raise bad(f"it holds {ck.optimizer_name or 'no optimizer'} state, not {type(optimizer).__name__}")
    want = optimizer.state_dict()
    if set(want) != set(ck.optimizer_state):
        raise bad(f"state keys differ (missing {sorted(set(want) - set(ck.optimizer_state))}, "
                  f"unexpected {sorted(set(ck.optimizer_state) - set(want))})")
    for k, a in want.items():
        b = ck.optimizer_state[k]
        if b.shape != a.shape or b.dtype != a.dtype:
            raise bad(f"state {k!r} is {b.dtype} {b.shape}; expected {a.dtype} {a.shape}")


def load_checkpoint(path, model=None, optimizer=None) -> Checkpoint:
    """Read ``path`` and, if given, restore ``model`` (params in place, RNG state) and ``optimizer``.

    Everything is verified before anything is changed: format version, architecture
    (``ARCHITECTURE_KEYS`` of ``model.config``), parameter names/shapes/dtypes, optimizer type and state
    shapes/dtypes. Returns the ``Checkpoint`` (step, extras, user data ...) so the caller can restore the rest.
    """
    return _restore(read_checkpoint(path), model, optimizer)


def _restore(ck: Checkpoint, model, optimizer) -> Checkpoint:
    if model is not None:
        _check_architecture(ck, model)
        _check_params(ck, model)
    if optimizer is not None:
        _check_optimizer(ck, optimizer)
    rng_restore = model is not None and ck.rng_state is not None and hasattr(model, "rng")
    if rng_restore:  # try the state on a scratch generator first: a refusal must change nothing
        try:
            type(model.rng.bit_generator)().state = ck.rng_state
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"checkpoint {ck.path} holds an unusable RNG state ({exc})") from exc
    if optimizer is not None:  # checks every value (finite, moments >= 0) before it copies anything
        try:
            optimizer.load_state_dict(ck.optimizer_state)
        except ValueError as exc:
            raise ValueError(f"checkpoint {ck.path}: {exc}") from exc
    if model is not None:  # nothing below can fail
        for k, p in model.params.items():
            np.copyto(p, ck.params[k])  # in place: the optimizer holds references to these arrays
        if rng_restore:
            model.rng.bit_generator.state = ck.rng_state
    return ck


def _check_model_memory(path, cfg) -> None:
    """A one-line ValueError, before anything is allocated, when the model a checkpoint describes would not fit
    in memory (a damaged or hand-edited ``model_config``: hidden_size 10^6 would need terabytes). A rough upper
    estimate: every layer with 4 gate blocks plus room for cell variants' extras, the weights, their gradients and
    the layer's buffers (about 4 copies)."""
    from .train import MAX_MEMORY

    sizes = {}
    for key in ("input_size", "hidden_size", "output_size", "num_layers"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return  # LSTMModel says what is wrong with it
        sizes[key] = v
    D, H, O, L = sizes["input_size"], sizes["hidden_size"], sizes["output_size"], sizes["num_layers"]
    params = 4 * H * (D + H + 1) + (L - 1) * 4 * H * (2 * H + 1) + 3 * H * L + H * O + O
    if cfg.get("cell") == "fgr":
        params += L * 9 * H * H
    nbytes = 4.0 * 8 * params
    if nbytes > MAX_MEMORY:
        raise ValueError(f"checkpoint {path} describes a model too big for this machine ({params:,} parameters: "
                         f"input_size {D}, hidden_size {H}, output_size {O}, num_layers {L}; about "
                         f"{nbytes / 1e9:.0f} GB, the limit is {MAX_MEMORY / 1e9:.0f} GB): a damaged or foreign "
                         f"checkpoint?")


def model_from_checkpoint(path):
    """Rebuild the ``LSTMModel`` a checkpoint was saved from, with its weights and RNG state.

    Returns (model, checkpoint). Handy for sampling or evaluating without repeating the architecture flags.
    """
    from .model import LSTMModel

    ck = read_checkpoint(path)
    cfg = dict(ck.model_config)
    _check_model_memory(ck.path, cfg)
    try:
        model = LSTMModel(**cfg)
    except (TypeError, ValueError, MemoryError) as exc:
        raise ValueError(f"checkpoint {ck.path} holds an unusable model_config {cfg} ({exc})") from exc
    return model, _restore(ck, model, None)
