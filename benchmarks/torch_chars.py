"""PyTorch reference for ``python demo.py chars``: the same recipe, data, batches and initial weights.

What is the same as the demo (numpylstm/demos/chars.py, CharSettings defaults):
- the text's vocabulary, the 90/10 split (last 10 % is validation), Udacity batches of 32 sequences x 50
  steps (``numpylstm.demos.text.Windows``: the very same arrays, in the same order);
- 2 x 192 LSTM on one-hot input, a dense head, softmax cross-entropy (mean nats per character), numpylstm's
  initial weights copied in (seed 0, forget bias 1), float32;
- Adam (betas 0.9, 0.999, eps 1e-8), lr 4e-3 with a cosine down to 5 % of it over the *wall time* budget,
  global-norm clip 5, the state carried from batch to batch (detached) and reset at each epoch;
- validation loss (state carried over the validation batches) every 500 steps and at the end, inside the
  budget; chars/s = characters trained / seconds of the whole run (evaluations included), as the demo.

    python benchmarks/torch_chars.py --text anna.txt --minutes 10
    python benchmarks/torch_chars.py --text anna.txt --seconds 45 --threads 1   # a short, noisy look

It prints progress lines, then ``trained ... chars/s`` and ``val loss: <value> nats/char`` like the demo.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True, help="UTF-8 text file, e.g. anna.txt")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="wall-time budget (default 10)")
    budget.add_argument("--seconds", type=float, default=None, help="wall-time budget in seconds")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--lstm-size", type=int, default=192)
    ap.add_argument("--lstm-layers", type=int, default=2)
    ap.add_argument("--n-seqs", type=int, default=32)
    ap.add_argument("--n-steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--final-lr", type=float, default=0.05, help="fraction of lr reached at the end")
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    budget_s = args.seconds if args.seconds is not None else 60.0 * (args.minutes or 10.0)
    if not budget_s > 0:
        ap.error("the budget must be > 0")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import numpy as np  # noqa: PLC0415 - after the thread variables
    import torch  # noqa: PLC0415

    sys.path.insert(0, str(ROOT))
    from numpylstm import LSTMModel, params_to_torch  # noqa: PLC0415
    from numpylstm.demos.chars import read_text  # noqa: PLC0415
    from numpylstm.demos.text import Vocab, Windows, split  # noqa: PLC0415

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        text = read_text(args.text)
    except ValueError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    vocab = Vocab.from_text(text)
    V = len(vocab)
    ids = vocab.encode(text)
    train_ids, val_ids = split(ids, 0.1)
    try:
        train = Windows(train_ids, args.n_seqs, args.n_steps, name="the training text (first 90%)")
        val = Windows(val_ids, args.n_seqs, args.n_steps, name="the validation text (last 10%)")
    except ValueError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    K = len(train)
    H, L = args.lstm_size, args.lstm_layers

    # numpylstm's initial weights (same seed, forget bias 1), copied into nn.LSTM + nn.Linear
    ref = LSTMModel(V, H, V, num_layers=L, head="all", loss="softmax_ce", seed=args.seed, dtype=np.float32)
    lstm = torch.nn.LSTM(V, H, num_layers=L, batch_first=True)
    head = torch.nn.Linear(H, V)
    lstm_sd, head_sd = params_to_torch(ref.params)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_sd.items()})
    head.load_state_dict({k: torch.from_numpy(v) for k, v in head_sd.items()})
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    final = args.lr * args.final_lr

    def forward(x, y, state):
        xt = torch.nn.functional.one_hot(torch.from_numpy(np.ascontiguousarray(x)), V).to(torch.float32)
        out, state = lstm(xt, state)
        z = head(out).reshape(-1, V)
        return loss_fn(z, torch.from_numpy(np.ascontiguousarray(y)).reshape(-1)), state

    def val_loss():
        total, state = 0.0, None
        with torch.no_grad():
            for x, y in val:
                loss, state = forward(x, y, state)
                total += float(loss)
        return total / len(val)

    print(f"torch_chars: {args.text}: {len(text):,} characters, {V} distinct; {L} x {H} LSTM, batches "
          f"{args.n_seqs} x {args.n_steps} ({K} per epoch); PyTorch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; budget {budget_s:g} s", flush=True)
    state, step, evals, losses = None, 0, [], []
    t0 = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= budget_s:
            break
        frac = min(elapsed / budget_s, 1.0)
        for group in opt.param_groups:
            group["lr"] = final + (args.lr - final) * 0.5 * (1.0 + math.cos(math.pi * frac))
        if step % K == 0:
            state = None  # a new epoch starts from zeros
        x, y = train[step % K]
        opt.zero_grad(set_to_none=True)
        loss, state = forward(x, y, state)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        state = tuple(s.detach() for s in state)
        losses.append(loss.item())
        step += 1
        if args.eval_every and step % args.eval_every == 0:
            v = val_loss()
            evals.append((step, v))
            el = time.perf_counter() - t0
            print(f"step {step}  train loss {sum(losses[-100:]) / len(losses[-100:]):.3f}  "
                  f"{step * args.n_seqs * args.n_steps / el:,.0f} chars/s  elapsed {el:.0f} s  val loss {v:.4f}",
                  flush=True)
    v = val_loss()
    seconds = time.perf_counter() - t0
    chars = step * args.n_seqs * args.n_steps
    print(f"trained {step} steps ({chars:,} characters, {chars / (K * args.n_seqs * args.n_steps):.2f} epochs) "
          f"in {seconds:.1f} s: {chars / seconds:,.0f} chars/s")
    print(f"val loss: {v:.4f} nats/char")
    return 0


if __name__ == "__main__":
    sys.exit(main())
