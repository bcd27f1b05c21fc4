"""Character-level language modelling ("Anna KaRNNa"): a vocabulary, Udacity-format batches, sampling.

The pieces of the Udacity char-RNN, rebuilt on ``LSTMModel``:

- ``Vocab``: the sorted distinct characters of a text; ``encode`` turns a string into integer ids (the
  model's (N, T) token input, a row gather of Wx), ``decode`` turns ids back. It is saved with a checkpoint
  as a plain int32 array of code points (``to_array`` / ``from_array``), so no pickle is ever needed.
- ``split``: the last 10% of the text is the validation set.
- ``Windows`` / ``batches``: the encoded text cut to a multiple of ``n_seqs * n_steps``, reshaped to
  ``(n_seqs, -1)`` and walked left to right in windows of ``n_steps``. Row r of one batch continues row r
  of the previous one, so the final state of a batch is the right initial state of the next (stateful
  truncated BPTT). Targets are
  the inputs shifted by one character, and the last target of a row is the true next character of the
  text, never an invented one (which is why the cut keeps one character more than ``n_seqs * n_steps * K``).
- ``evaluate``: mean loss over a whole sequence, walked the same way with the state carried (nats per
  character for a char model).
- ``sample``: warm the state on a prime, then feed back each drawn character (TF's ``pick_top_n`` plus a
  temperature).

Shapes: N = n_seqs (rows of a batch), T = n_steps (window length), V = vocabulary size, L layers, H hidden.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _checks as chk

__all__ = ["Vocab", "split", "num_batches", "Windows", "batches", "evaluate", "sample", "sample_stream"]


class Vocab:
    """The distinct characters of a text in code-point order; id k is the k-th smallest character.

    ``Vocab.from_text("abca")`` -> chars "abc"; ``encode("cab")`` -> [2, 0, 1]; ``decode([0, 1])`` -> "ab".
    """

    def __init__(self, chars):
        chars = sorted(set(chars)) if not isinstance(chars, Vocab) else list(chars.chars)
        if not chars or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("Vocab needs a non-empty collection of single characters")
        self.chars = "".join(chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}
        # code point -> id, -1 for characters outside the vocabulary: encodes a whole text in one gather
        self._table = np.full(ord(self.chars[-1]) + 1, -1, np.int64)
        self._table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str; got {type(text).__name__} of length "
                             f"{len(text) if hasattr(text, '__len__') else '?'}")
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"Vocab({len(self)} chars: {self.chars[:40]!r}{'...' if len(self) > 40 else ''})"

    def encode(self, text: str, name: str = "text") -> np.ndarray:
        """str of length n -> int64 ids (n,). An unknown character is a ValueError naming ``name``."""
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a str; got {type(text).__name__}")
        if not text:
            return np.zeros(0, np.int64)
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        inside = codes < len(self._table)
        ids = np.full(codes.shape, -1, np.int64)
        ids[inside] = self._table[codes[inside]]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            unknown = sorted(set(text[i] for i in bad[:1000]))
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown[:5])
            raise ValueError(f"{name} contains {bad.size} character(s) that are not in the {len(self)}-character "
                             f"vocabulary, first at index {bad[0]}: {shown}")
        return ids

    def decode(self, ids) -> str:
        """Integer ids in [0, V), any shape -> the string of their characters (flattened in C order)."""
        ids = chk.token_ids("ids", np.asarray(ids).reshape(-1), "n", (None,), len(self)) if np.size(ids) \
            else np.zeros(0, np.intp)
        return "".join(self.chars[i] for i in ids.tolist())

    def to_array(self) -> np.ndarray:
        """The characters' code points, int32 (V,), increasing: what a checkpoint stores."""
        return np.array([ord(c) for c in self.chars], np.int32)

    @classmethod
    def from_array(cls, codes) -> "Vocab":
        """Inverse of ``to_array``: a 1-D array of strictly increasing valid code points."""
        arr = np.asarray(codes)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
            raise ValueError(f"vocabulary array must be 1-D non-empty integer code points; got shape "
                             f"{arr.shape} dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() > 0x10FFFF or np.any(np.diff(arr.astype(np.int64)) <= 0):
            raise ValueError("vocabulary array must hold strictly increasing code points in [0, 0x10FFFF]")
        return cls(chr(int(c)) for c in arr)


def split(seq, val_fraction: float = 0.1):
    """(train, val): the first 1 - val_fraction of ``seq`` and the rest (the end of the text is validation)."""
    seq = np.asarray(seq)
    if seq.ndim != 1:
        raise ValueError(f"seq must be 1-D; got shape {seq.shape}")
    if (isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real)
            or not 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be a number in (0, 1); got {val_fraction!r}")
    n_train = int(round(len(seq) * (1.0 - val_fraction)))
    return seq[:n_train], seq[n_train:]


def num_batches(length: int, n_seqs: int, n_steps: int) -> int:
    """How many (n_seqs, n_steps) batches ``batches`` makes from a sequence of ``length`` items.

    Every input needs a real next item as its target, so only length - 1 inputs are available.
    """
    n_seqs = chk.positive_int("n_seqs", n_seqs)
    n_steps = chk.positive_int("n_steps", n_steps)
    return max(int(length) - 1, 0) // (n_seqs * n_steps)


class Windows:
    """The Udacity batches of ``seq`` as a random-access list: ``w[k]`` is batch k, ``len(w)`` is K.

    ``seq`` (any 1-D array: token ids or a float series) is cut to K * n_seqs * n_steps inputs plus one,
    the inputs are reshaped to (n_seqs, K * n_steps) and the targets are the same positions one item later;
    batch k is the column window [k * n_steps, (k + 1) * n_steps) of both, each (n_seqs, n_steps). Row r of
    batch k + 1 continues row r of batch k, so carrying the final state between batches is exact. Batches
    are views, not copies. Indexing (rather than only iterating) lets a resumed run find batch ``step % K``.
    """

    def __init__(self, seq, n_seqs: int, n_steps: int, name: str = "seq"):
        seq = np.asarray(seq)
        if seq.ndim != 1:
            raise ValueError(f"{name} must be 1-D; got shape {seq.shape}")
        K = num_batches(len(seq), n_seqs, n_steps)
        if K == 0:
            raise ValueError(f"{name} has {len(seq)} items; one batch of n_seqs * n_steps = {n_seqs} * {n_steps} "
                             f"inputs needs at least {n_seqs * n_steps + 1} (each input needs a next item as "
                             f"target)")
        M = K * n_seqs * n_steps
        self.n_seqs, self.n_steps = n_seqs, n_steps
        self.x = seq[:M].reshape(n_seqs, -1)  # the Udacity reshape (n_seqs, -1)
        self.y = seq[1 : M + 1].reshape(n_seqs, -1)  # targets: the next item; the last one is real data

    def __len__(self) -> int:
        return self.x.shape[1] // self.n_steps

    def __getitem__(self, k):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < len(self):
            raise IndexError(f"batch index must be an integer in [0, {len(self)}); got {k!r}")
        cols = slice(k * self.n_steps, (k + 1) * self.n_steps)
        return self.x[:, cols], self.y[:, cols]

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def batches(seq, n_seqs: int, n_steps: int):
    """Iterate over the (x, y) batches of ``Windows(seq, n_seqs, n_steps)``, each (n_seqs, n_steps)."""
    return iter(Windows(seq, n_seqs, n_steps))


def evaluate(model, seq, n_seqs: int, n_steps: int, engine=None) -> float:
    """Mean loss of ``model`` over ``seq`` walked by ``batches``, state carried from batch to batch.

    The state starts at zeros, as at the start of each training epoch. Integer ``seq`` is fed as token ids
    (mean softmax cross-entropy: nats per character); a float series is fed as (N, T, 1) with (N, T, 1)
    targets. All batches have the same size, so the mean over batches is the mean over every position.
    engine: a ``numpylstm.parallel.DataParallel`` over ``model``: the same walk on its worker processes, each
    on its rows (``DataParallel.evaluate_walk``; equal up to rounding); None: in this process.
    """
    tokens = np.asarray(seq).dtype.kind in "iu"
    if engine is not None:
        if engine.model is not model:
            raise ValueError("engine must be a DataParallel over this model (it evaluates engine.model)")
        xs, ys = (np.stack(a) for a in zip(*batches(seq, n_seqs, n_steps)))
        return engine.evaluate_walk(xs, ys) if tokens else engine.evaluate_walk(xs[..., None], ys[..., None])
    state, total, count = None, 0.0, 0
    for x, y in batches(seq, n_seqs, n_steps):
        if not tokens:
            x, y = x[..., None], y[..., None]
        loss, state = model.evaluate(x, y, state)
        total, count = total + loss, count + 1
    return total / count


def _next_distribution(logits, top_k, temperature):
    """softmax(logits / temperature) restricted to the top_k largest entries and renormalised."""
    z = np.asarray(logits, np.float64)
    if top_k < z.size:
        drop = np.argsort(z, kind="stable")[: z.size - top_k]  # pick_top_n: zero all but the top k
        z[drop] = -np.inf
    # the largest logit subtracted *before* dividing: a tiny temperature (1e-320) then sends the others to -inf
    # (probability 0: greedy) instead of overflowing every logit to inf and the softmax to NaN
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        z = (z - z.max()) / temperature
    p = np.exp(z)
    return p / p.sum()


def sample(model, vocab: Vocab, prime: str = "Far", length: int = 500, top_k: int | None = 5,
           temperature: float = 1.0, seed=None) -> str:
    """Generate text: the prime followed by ``length`` drawn characters (``sample_stream``, joined)."""
    return "".join(sample_stream(model, vocab, prime, length, top_k, temperature, seed))


def sample_stream(model, vocab: Vocab, prime: str = "Far", length: int = 500, top_k: int | None = 5,
                  temperature: float = 1.0, seed=None):
    """Generate text piece by piece: yields the prime, then each drawn character as soon as it is drawn.

    The prime is run through the model in one call to warm the state (L, 2, 1, H); then each step draws a
    character from the distribution of the last output -- softmax(logits / temperature), only the top_k most
    likely characters kept (None: all V) -- and feeds it back as the next input. ``seed`` seeds a private
    generator, so the same seed gives the same text and ``model.rng`` is untouched.
    """
    if not isinstance(vocab, Vocab):
        raise ValueError(f"vocab must be a numpylstm.demos.text.Vocab; got {type(vocab).__name__}")
    if model.input_size != len(vocab) or model.output_size != len(vocab) or model.head != "all":
        raise ValueError(f"model must map the {len(vocab)}-character vocabulary to itself with head 'all'; got "
                         f"input_size={model.input_size}, output_size={model.output_size}, head={model.head!r}")
    if not isinstance(prime, str) or not prime:
        raise ValueError(f"prime must be a non-empty str; got {prime!r}")
    ids = vocab.encode(prime, name="prime")
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
        raise ValueError(f"length must be a non-negative integer; got {length!r}")
    top_k = len(vocab) if top_k is None else chk.positive_int("top_k", top_k)
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature!r}")
    return _draw(model, vocab, prime, ids, int(length), top_k, temperature, np.random.default_rng(seed))


def _draw(model, vocab, prime, ids, length, top_k, temperature, rng):
    y, state = model.forward(ids[None, :])  # warm-up on the prime: y (1, len(prime), V)
    yield prime
    for _ in range(length):
        p = _next_distribution(y[0, -1], top_k, temperature)
        c = int(rng.choice(len(p), p=p))
        yield vocab.decode([c])
        y, state = model.forward(np.array([[c]]), state)
