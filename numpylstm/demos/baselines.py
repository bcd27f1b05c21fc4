"""What a char-RNN's loss means: the cross-entropy of n-gram models on the same validation characters.

``baselines(train, val, V)`` returns, in nats per character,

- ``uniform``: ln V, every character equally likely (the loss of an untrained model whose logits are ~0);
- ``unigram``, ``bigram``, ``trigram``: n-gram models fitted on the training split and scored on the
  validation split, each character predicted from the n - 1 characters before it.

Smoothing: interpolated Kneser-Ney with one fixed absolute discount D = 0.75 at every order (Chen & Goodman
1998, "An empirical study of smoothing techniques", section 2.7), ending in the uniform distribution, so
every character of the vocabulary (even one never seen in training) has a probability > 0 and the
probabilities over the vocabulary sum to 1 in every context. Nothing is tuned on the validation text.

For a model of order n and a context h of k - 1 characters (k = n, n-1, ..., 1; p_0(w) = 1/V):

    p_k(w | h) = max(c_k(h w) - D, 0) / c_k(h .)  +  D * N_k(h .) / c_k(h .) * p_{k-1}(w | h without its first char)

where c_k(h .) = sum over w of c_k(h w) and N_k(h .) = the number of distinct w with c_k(h w) > 0; when
c_k(h .) = 0 (a context never seen) p_k(w | h) = p_{k-1}(w | shorter h). The counts c_k are the training
counts of the k-grams at the top order k = n, and *continuation* counts below it: c_k(w_1..w_k) = the number
of distinct characters that precede w_1..w_k in the training text (Kneser-Ney's idea: a lower order is only
used when the higher one has too little evidence, so it should say how many contexts a character completes,
not how often it occurs). For n = 1 this is absolute discounting of the character frequencies towards uniform.

Which characters are scored: ``val[1:]``, the targets of the LSTM's validation loss (the demo passes exactly
the characters its evaluation walks). The context of val[1] reaches back into the end of the training text
(the text is contiguous), so every scored character has its full n - 1 characters of context.

``python -m numpylstm.demos.baselines --text FILE [--orders N]`` prints the chars demo's line for FILE with the
demo's split and batch sizes (defaults of ``CharSettings``), and with ``--orders N`` also orders 4 .. N.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

__all__ = ["DISCOUNT", "ORDERS", "baselines", "format_baselines", "ngram_cross_entropy"]

DISCOUNT = 0.75
ORDERS = {"unigram": 1, "bigram": 2, "trigram": 3}


def _codes(seq, k, V):
    """The k-grams of seq as integers: seq[j] V^(k-1) + ... + seq[j+k-1], for j = 0 .. len(seq) - k."""
    n = len(seq) - k + 1
    code = np.zeros(max(n, 0), np.int64)
    for i in range(k):
        code = code * V + seq[i : i + n]
    return code


def _lookup(keys, values, queries):
    """values[keys == q] for each query (0 where q is not among the sorted unique keys)."""
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)  # keys is never empty here
    return np.where(keys[pos] == queries, values[pos], 0)


def _level(train, k, top, V):
    """(k-gram codes, their counts c_k, context codes, c_k(h .), N_k(h .)) for level k of the recursion."""
    if top:
        grams, counts = np.unique(_codes(train, k, V), return_counts=True)
    else:  # continuation counts: how many distinct characters precede each k-gram
        distinct = np.unique(_codes(train, k + 1, V))
        grams, counts = np.unique(distinct % V**k, return_counts=True)
    ctx_keys, start, ctx_types = np.unique(grams // V, return_index=True, return_counts=True)  # grams sorted
    return grams, counts, ctx_keys, np.add.reduceat(counts, start), ctx_types


def ngram_cross_entropy(train, val, order, vocab_size, discount=DISCOUNT) -> float:
    """Mean -ln p(val[j] | the order - 1 characters before it), j = 1 .. len(val) - 1, in nats per character.

    train, val: 1-D integer ids in [0, vocab_size), contiguous in the text (train first). The model is the
    interpolated Kneser-Ney model of the module docstring, fitted on ``train``.
    """
    V = int(vocab_size)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an int >= 1; got {order!r}")
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1); got {discount!r}")
    train, val = np.asarray(train, np.int64), np.asarray(val, np.int64)
    if train.ndim != 1 or val.ndim != 1:
        raise ValueError("train and val must be 1-D sequences of token ids")
    if len(val) < 2:
        raise ValueError(f"val must hold at least 2 characters (the first is only context); got {len(val)}")
    if V < 1 or V**order >= 2**63:
        raise ValueError(f"vocab_size**order must fit in int64 (the n-grams are coded as integers); got "
                         f"vocab_size {V}, order {order}")
    if len(train) < order:
        raise ValueError(f"train must hold at least order = {order} characters; got {len(train)}")
    for name, s in (("train", train), ("val", val)):
        if s.size and (s.min() < 0 or s.max() >= V):
            raise ValueError(f"{name} ids must be in [0, {V}); got values in [{s.min()}, {s.max()}]")
    # every scored character with its order - 1 characters of context: the end of train, then val
    seq = np.concatenate([train[len(train) - (order - 1):] if order > 1 else train[:0], val])
    first = len(seq) - (len(val) - 1)  # index in seq of val[1]
    targets = seq[first:]
    p = np.full(len(targets), 1.0 / V)  # p_0: uniform
    for k in range(1, order + 1):
        grams, counts, ctx_keys, ctx_total, ctx_types = _level(train, k, k == order, V)
        query = _codes(seq[first - (k - 1):], k, V)  # the k-gram ending at each target
        c = _lookup(grams, counts, query).astype(np.float64)
        total = _lookup(ctx_keys, ctx_total, query // V).astype(np.float64)
        types = _lookup(ctx_keys, ctx_types, query // V).astype(np.float64)
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        p = np.where(seen, np.maximum(c - discount, 0.0) / safe + discount * types / safe * p, p)
    return float(-np.mean(np.log(p)))


def baselines(train, val, vocab_size, discount=DISCOUNT) -> dict[str, float]:
    """{"uniform": ln V, "unigram": .., "bigram": .., "trigram": ..} in nats per character (see the module)."""
    out = {"uniform": math.log(vocab_size)}
    for name, order in ORDERS.items():
        out[name] = ngram_cross_entropy(train, val, order, vocab_size, discount)
    return out


def format_baselines(b: dict) -> str:
    """The one line the chars demo prints: ``baselines (nats/char): uniform 4.3438, unigram ...``."""
    return "baselines (nats/char): " + ", ".join(f"{k} {v:.4f}" for k, v in b.items())


def main(argv=None) -> int:
    """``baselines (nats/char): ...`` for a text, split and scored exactly as ``demo.py chars`` does."""
    from .chars import CharSettings, default_text, read_text
    from .text import Vocab, Windows, num_batches, split

    from .._cli import Parser

    parser = Parser(prog="python -m numpylstm.demos.baselines", description=main.__doc__)
    parser.add_argument("--text", help="UTF-8 text file (default: the project's README.md, docs and derivations)")
    parser.add_argument("--orders", type=_orders, default=3, metavar="N",
                        help="also print n-gram models of order 4 .. N (default 3: unigram, bigram, trigram only)")
    args = parser.parse_args(argv)
    s = CharSettings(epochs=1)
    try:
        text = read_text(args.text) if args.text else default_text()[0]
        vocab = Vocab.from_text(text)
        train, val = split(vocab.encode(text), s.val_fraction)
        # the chars demo's own check, with its message: the validation part must hold one batch
        Windows(val, s.n_seqs, s.n_steps, name=f"the validation text (last {s.val_fraction:.0%} of "
                                                 f"{args.text or 'the default text'})")
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if len(vocab) ** args.orders >= 2**63:
        parser.error(f"--orders {args.orders}: with {len(vocab)} distinct characters the {args.orders}-grams do "
                     f"not fit in 64-bit codes; the largest order for this text is "
                     f"{int(63 / math.log2(max(len(vocab), 2)) - 1e-9)}")
    scored = num_batches(len(val), s.n_seqs, s.n_steps) * s.n_seqs * s.n_steps
    print(f"{len(text):,} characters, {len(vocab)} distinct; train {len(train):,}; validation characters "
          f"scored {scored:,} (n_seqs {s.n_seqs} x n_steps {s.n_steps} batches of the last "
          f"{s.val_fraction:.0%})", flush=True)
    print(format_baselines(baselines(train, val[: scored + 1], len(vocab))), flush=True)
    for order in range(4, args.orders + 1):
        print(f"{order}-gram {ngram_cross_entropy(train, val[: scored + 1], order, len(vocab)):.4f}", flush=True)
    return 0


def _orders(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 3:
        raise argparse.ArgumentTypeError(f"must be an integer >= 3 (orders 1 to 3 are always printed), got {n}")
    return n


if __name__ == "__main__":
    from .._cli import run_cli

    sys.exit(run_cli(main, "python -m numpylstm.demos.baselines"))
