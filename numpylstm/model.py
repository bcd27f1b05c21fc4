"""A stacked LSTM with dropout and a dense head: the model behind the sine demo and the char-RNN.

Derivation: derivations/04_stacking_dropout.md (S1-S2, D1-D2) and derivations/05_head_losses.md (H1-H4,
L1-L4); each layer is ``textbook.lstm_forward`` / ``lstm_backward`` or, by default, the equal and faster
``fast.lstm_forward_tm`` / ``lstm_backward_tm`` (F1-F5, B1-B14).

TF-1 words -> numpylstm: ``lstm_size`` = hidden_size H (units in each gate), ``timesteps`` = T,
``lstm_layers`` = num_layers, ``keep_prob`` = 1 - dropout, ``final_state`` = the state array
(num_layers, 2, N, H) holding (c, h) for each layer.
"""

from __future__ import annotations

import numbers
from contextlib import nullcontext
from functools import reduce

import numpy as np

from . import _checks as chk
from . import fast, pipeline, rnn, textbook, wavefront
from .fast import Workspace
from .losses import mse, softmax_ce

HEADS = ("last", "all")
LOSSES = ("mse", "softmax_ce")
IMPLS = ("fast", "textbook")
CELLS = ("lstm", "rnn")


class LSTMModel:
    """num_layers stacked LSTM layers, inverted dropout on each layer's output, a dense head.

    Args:
        input_size: D, features per timestep; for integer token input, the vocabulary size V.
        hidden_size: H (TF's ``lstm_size``).
        output_size: O, outputs of the dense head (classes for ``softmax_ce``).
        num_layers: L; layer l+1 reads layer l's hidden states.
        dropout: 1 - keep_prob, applied to every layer's output when training (TF's
            ``DropoutWrapper(output_keep_prob=keep_prob)``); never to the recurrent state.
        head: "last" (many-to-one: y (N, O) from h at the last step) or "all" (many-to-many: y (N, T, O)).
        loss: "mse" (mean over all elements) or "softmax_ce" (mean over positions, integer targets).
        forget_bias: added to the f block of every b at initialisation (TF/Keras convention).
        seed: seeds initialisation and dropout masks (``self.rng``).
        dtype: float64 (default) or float32.
        impl: which layer code runs: "fast" (``numpylstm/fast.py``, default) or "textbook"
            (``numpylstm/textbook.py``, the step-by-step code the derivations quote; same numbers, slower).
        pipeline: "auto" (default), True or False: run the layers side by side on two threads, chunk by
            chunk (``numpylstm/pipeline.py``; same numbers up to rounding). "auto" does so for the fast LSTM
            when NumPy's BLAS may use two or more threads and the layers are big enough (``pipeline.worth_it``);
            True forces it for any fast LSTM stack, False never. A run setting, like ``impl``: not saved.
        wavefront: "auto" (default), True or False: run all layers of a small stack in one time loop, a
            wavefront through (layer x time) (``numpylstm/wavefront.py``; same numbers up to rounding). It
            needs float input and no dropout masks in the pass (other passes run layer by layer). "auto" uses
            it for a fast LSTM stack of 2+ layers small enough to be bound by NumPy's per-call cost
            (``wavefront.worth_it``: the sine model, not the char-RNN); True whenever it can, False never.
            A pipelined pass (``pipeline``) takes precedence. A run setting, not saved.
        cell: "lstm" (default) or "rnn": plain tanh RNN layers (``numpylstm/rnn.py``, derivations/11_why_lstm.md)
            in place of the LSTM layers, with the same head, losses, dropout and optimizers; their parameters
            are ``rnn.{l}.Wx`` (D, H), ``rnn.{l}.Wh`` (H, H), ``rnn.{l}.b`` (H,), ``impl`` is ignored and
            state[l, 0] (the c slot) stays zero.

    Inputs x are (N, T, D) floats, or (N, T) integer token ids in [0, input_size) (a one-hot input computed
    as a row gather of Wx). ``state`` is (L, 2, N, H): state[l, 0] is layer l's c, state[l, 1] its h.
    """

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, dropout=0.0, head="last",
                 loss="mse", forget_bias=1.0, seed=0, dtype=np.float64, impl="fast",
                 cell="lstm", pipeline="auto", wavefront="auto"):
        self.input_size = chk.positive_int("input_size", input_size)
        self.hidden_size = chk.positive_int("hidden_size", hidden_size)
        self.output_size = chk.positive_int("output_size", output_size)
        self.num_layers = chk.positive_int("num_layers", num_layers)
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be a number in [0, 1) (dropout = 1 - keep_prob); got {dropout!r}")
        self.dropout = float(dropout)
        self.head = chk.choice("head", head, HEADS)
        self.loss = chk.choice("loss", loss, LOSSES)
        if (isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real)
                or not np.isfinite(forget_bias)):
            raise ValueError(f"forget_bias must be a finite number; got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
        self.seed = seed
        self.dtype = chk.resolve_dtype(dtype)
        self.impl = chk.choice("impl", impl, IMPLS)
        self.cell = chk.choice("cell", cell, CELLS)
        if not (isinstance(pipeline, bool) or (isinstance(pipeline, str) and pipeline == "auto")):
            raise ValueError(f"pipeline must be 'auto', True or False; got {pipeline!r}")
        self.pipeline = pipeline
        if not (isinstance(wavefront, bool) or (isinstance(wavefront, str) and wavefront == "auto")):
            raise ValueError(f"wavefront must be 'auto', True or False; got {wavefront!r}")
        self.wavefront = wavefront
        self.rng = np.random.default_rng(seed)
        self.params = self._init_params()
        # One Workspace per layer: the big forward/backward buffers are reused from call to call.
        self._work = [Workspace() for _ in range(self.num_layers)]
        self._chunk_work = {}  # (layer, chunk) -> Workspace, for the pipelined passes
        self._wave_work = Workspace()  # for the wavefront passes

    def _pipelined(self, T, N) -> bool:
        """Whether this forward/backward pass runs pipelined (see the ``pipeline`` argument)."""
        if self.pipeline is False or self.cell != "lstm" or self.impl != "fast" or self.num_layers < 2 or T < 2:
            return False
        return self.pipeline is True or pipeline.worth_it(self.num_layers, T, N, self.hidden_size)

    def _wave(self, xt, masks, piped) -> bool:
        """Whether this pass runs all layers in one wavefront loop (see the ``wavefront`` argument)."""
        if (self.wavefront is False or piped or masks is not None or xt.ndim != 3 or self.cell != "lstm"
                or self.impl != "fast" or self.num_layers < 2):
            return False
        return self.wavefront is True or wavefront.worth_it(self.num_layers, xt.shape[1], self.hidden_size)

    def _stack_params(self):
        """[(Wx, Wh, b)] per layer: how pipeline.py and wavefront.py take the LSTM stack's weights."""
        return [tuple(self.params[f"lstm.{l}.{w}"] for w in ("Wx", "Wh", "b")) for l in range(self.num_layers)]

    @staticmethod
    def _threads(piped):
        """The thread settings of a pass: ``pipeline.two_threads()`` when it runs pipelined, else none."""
        return pipeline.two_threads() if piped else nullcontext()

    def _chunk_works(self, T):
        K = len(pipeline.chunk_bounds(T))
        return [[self._chunk_work.setdefault((l, k), Workspace()) for k in range(K)] for l in range(self.num_layers)]

    # ------------------------------------------------------------------ set-up
    @property
    def config(self) -> dict:
        """The constructor's arguments (dtype as a string): enough to rebuild the architecture."""
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, output_size=self.output_size,
                    num_layers=self.num_layers, dropout=self.dropout, head=self.head, loss=self.loss,
                    forget_bias=self.forget_bias, seed=self.seed, dtype=self.dtype.name,
                    **({} if self.cell == "lstm" else {"cell": self.cell}))

    def param_shapes(self) -> dict:
        """Name -> shape of every parameter array, in the order of ``params``."""
        H, shapes, c = self.hidden_size, {}, self.cell
        G = 4 if c == "lstm" else 1  # the LSTM's fused i, f, g, o axis is 4H wide; the RNN has one H block
        for l in range(self.num_layers):
            D = self.input_size if l == 0 else H
            shapes[f"{c}.{l}.Wx"] = (D, G * H)
            shapes[f"{c}.{l}.Wh"] = (H, G * H)
            shapes[f"{c}.{l}.b"] = (G * H,)
        shapes["head.W"] = (H, self.output_size)
        shapes["head.b"] = (self.output_size,)
        return shapes

    def _init_params(self) -> dict:
        """uniform(-1/sqrt(H), 1/sqrt(H)) everywhere, like PyTorch; forget_bias added to the f block of b."""
        H, k = self.hidden_size, 1.0 / np.sqrt(self.hidden_size)
        params = {}
        for name, shape in self.param_shapes().items():
            p = self.rng.uniform(-k, k, size=shape)
            if name.startswith("lstm.") and name.endswith(".b"):
                p[H : 2 * H] += self.forget_bias
            params[name] = p.astype(self.dtype)
        return params

    @property
    def params(self) -> dict:
        """Name -> weight array (see ``param_shapes``). The optimizer holds references to these arrays.

        Assigning a whole dict, ``model.params = new``, copies ``new``'s values into the existing arrays (same
        names, shapes and dtype required; ValueError otherwise), so an optimizer created earlier keeps
        training the arrays the model uses.
        """
        return self._params

    @params.setter
    def params(self, new) -> None:
        if getattr(self, "_params", None) is None:
            self._params = new
            return
        old = self._params
        if not isinstance(new, dict):
            raise ValueError(f"model.params must be a dict of name -> array; got {type(new).__name__}")
        if set(new) != set(old):
            raise ValueError(f"model.params must have the keys {list(old)}; got {list(new)}")
        for name, p in old.items():
            q = new[name]
            if not isinstance(q, np.ndarray) or q.dtype != p.dtype or q.shape != p.shape:
                got = f"shape {q.shape} and dtype {q.dtype}" if isinstance(q, np.ndarray) else chk.describe(q)
                raise ValueError(f"model.params[{name!r}] must be a {p.dtype} array of shape {p.shape}; got {got}")
        for name, p in old.items():
            if new[name] is not p:
                np.copyto(p, new[name])

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    # ------------------------------------------------------------------ input checks
    def _check_params(self):
        """``self.params`` must hold exactly ``param_shapes()``, each an ndarray of the model's dtype.

        Checked on every call (a few dict look-ups) because users assign into ``params`` directly, e.g. from
        ``params_from_torch``. Not converted (the optimizer holds references) and not checked for
        finiteness: non-finite weights are how divergence shows, as a non-finite loss.
        """
        P, shapes = self.params, self.param_shapes()
        if not isinstance(P, dict):
            raise ValueError(f"model.params must be a dict of name -> array; got {type(P).__name__}")
        for name, shape in shapes.items():
            if name not in P:
                raise ValueError(f"model.params is missing {name!r} (expected shape {shape})")
            p = P[name]
            if not isinstance(p, np.ndarray) or p.dtype != self.dtype or p.shape != shape:
                got = f"shape {p.shape} and dtype {p.dtype}" if isinstance(p, np.ndarray) else chk.describe(p)
                raise ValueError(f"model.params[{name!r}] must be a {self.dtype} array of shape {shape} "
                                 f"(D = {self.input_size}, H = {self.hidden_size}, O = {self.output_size}); "
                                 f"got {got}")
        for name in P:
            if name not in shapes:
                raise ValueError(f"model.params has an unexpected key {name!r}; expected {list(shapes)}")

    def _time_major_input(self, x):
        """x (N, T, D) floats -> (T, N, D); (N, T) integer ids -> (T, N). Every public entry point starts
        here, so the parameters are checked here too."""
        self._check_params()
        arr = chk.as_array("x", x)
        if arr.ndim == 2 and arr.dtype.kind in "iu":
            ids = chk.token_ids("x", arr, "NT", (None, None), self.input_size)
            return np.ascontiguousarray(ids.T)
        if arr.ndim == 2:
            hint = " (add the feature axis D = 1: x[..., None])" if self.input_size == 1 else ""
            raise ValueError(
                f"x must have shape (N, T, D) = (?, ?, {self.input_size}) with float features, or (N, T) "
                f"integer token ids; got shape {arr.shape} with dtype {arr.dtype}{hint}")
        arr = chk.array("x", arr, "NTD", (None, None, self.input_size), self.dtype)
        return np.ascontiguousarray(arr.transpose(1, 0, 2))

    def _check_state(self, state, N):
        if state is None:
            return None
        return chk.array("state", state, "L2NH", (self.num_layers, 2, N, self.hidden_size), self.dtype)

    def _targets(self, y, T, N):
        """Targets in the time-major layout of the head's output."""
        O = self.output_size
        if self.loss == "softmax_ce":
            if self.head == "last":
                return chk.token_ids("y", y, "N", (N,), O)
            return np.ascontiguousarray(chk.token_ids("y", y, "NT", (N, T), O).T).reshape(-1)
        if self.head == "last":
            return chk.array("y", y, "NO", (N, O), self.dtype)
        return np.ascontiguousarray(chk.array("y", y, "NTO", (N, T, O), self.dtype).transpose(1, 0, 2))

    # ------------------------------------------------------------------ dropout
    def make_masks(self, N, T):
        """Draw one inverted-dropout mask per layer from ``self.rng``: a list of L arrays (N, T, H).

        Entries are 0 or 1/keep_prob (all ones when dropout is 0). Pass them to ``loss_and_grads(masks=...)``
        to hold dropout fixed.
        """
        N, T = chk.positive_int("N", N), chk.positive_int("T", T)
        masks = self._draw_masks(T, N)
        if masks is None:
            return [np.ones((N, T, self.hidden_size), self.dtype) for _ in range(self.num_layers)]
        return [m.transpose(1, 0, 2) for m in masks]

    def _draw_masks(self, T, N):
        if self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        shape = (T, N, self.hidden_size)
        # (D1) m = Bernoulli(keep) / keep
        return [(self.rng.random(shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                for _ in range(self.num_layers)]

    def _check_masks(self, masks, T, N):
        if not isinstance(masks, (list, tuple)) or len(masks) != self.num_layers:
            got = f"a {type(masks).__name__} of length {len(masks)}" if isinstance(masks, (list, tuple)) \
                else chk.describe(masks)
            raise ValueError(f"masks must be a list of num_layers = {self.num_layers} arrays (N, T, H) "
                             f"(see make_masks); got {got}")
        return [np.ascontiguousarray(
                    chk.array(f"masks[{l}]", m, "NTH", (N, T, self.hidden_size), self.dtype).transpose(1, 0, 2))
                for l, m in enumerate(masks)]

    # ------------------------------------------------------------------ forward / backward
    def _forward_tm(self, xt, state, masks, piped=False, backward=False, head_chunk=None):
        """Run the stack time-major; piped: pipelined (see ``_pipelined``), backward: a backward pass follows.
        Returns (y_tm, new_state, caches, hidden); with head_chunk (pipelined only), (the list of head_chunk's
        results, chunk by chunk, new_state, caches, None)."""
        T, N = xt.shape[:2]
        L, H, P = self.num_layers, self.hidden_size, self.params
        new_state = np.empty((L, 2, N, H), self.dtype)
        if piped:  # the big products on a second thread, beside the loops: numpylstm/pipeline.py
            outs, finals, caches = pipeline.stack_forward(self._stack_params(), xt, state, masks, self._chunk_works(T),
                                                          backward, head_chunk)
            for l, (hT, cT) in enumerate(finals):
                new_state[l, 0], new_state[l, 1] = cT, hT
            if head_chunk is not None:
                return outs, new_state, caches, None
            inp = np.concatenate(outs) if self.head == "all" else outs[-1]  # head "last" reads only h_T
        elif self._wave(xt, masks, piped):  # all layers in one time loop: numpylstm/wavefront.py
            inp, finals, caches = wavefront.stack_forward(self._stack_params(), xt, state, self._wave_work)
            for l, (hT, cT) in enumerate(finals):
                new_state[l, 0], new_state[l, 1] = cT, hT
        else:
            caches, inp = [], xt
            for l in range(L):
                h0, c0 = (None, None) if state is None else (state[l, 1], state[l, 0])
                hs, (hT, cT), cache = self._layer_forward(l, inp, h0, c0)
                new_state[l, 0], new_state[l, 1] = cT, hT
                caches.append(cache)
                inp = hs if masks is None else hs * masks[l]  # (D1) dropout on the output; (S1) feeds layer l+1
        hidden = inp[-1] if self.head == "last" else inp.reshape(T * N, H)
        y = hidden @ P["head.W"] + P["head.b"]  # (H1) y = h W + b
        if self.head == "all":
            y = y.reshape(T, N, -1)
        return y, new_state, caches, hidden

    def _layer_forward(self, l, inp, h0, c0):
        """Layer l forward, time-major: inp (T, N, D) or (T, N) ids -> hs (T, N, H), (hT, cT), cache."""
        P = self.params
        Wx, Wh, b = P[f"{self.cell}.{l}.Wx"], P[f"{self.cell}.{l}.Wh"], P[f"{self.cell}.{l}.b"]
        if self.cell == "lstm" and self.impl == "fast":
            return fast.lstm_forward_tm(inp, h0, c0, Wx, Wh, b, work=self._work[l])
        xb = np.swapaxes(inp, 0, 1)  # the step-by-step layers are batch-first
        if self.cell == "rnn":
            hs, hT, cache = rnn.rnn_forward(xb, h0, Wx, Wh, b)
            final = (hT, np.zeros_like(hT))  # no cell state: its slot of the state stays 0
        else:
            hs, final, cache = textbook.lstm_forward(xb, h0, c0, Wx, Wh, b)
        return np.ascontiguousarray(hs.swapaxes(0, 1)), final, cache

    def _layer_backward(self, l, dhs, cache, dhT, need_dx):
        """Layer l backward, time-major: dhs (T, N, H) or None -> dx (T, N, D) or None, dh0, dc0, dWx, dWh, db."""
        if self.cell == "lstm" and self.impl == "fast":
            return fast.lstm_backward_tm(dhs, cache, dhT=dhT, need_dx=need_dx, work=self._work[l])
        N, H = cache[0][1].shape
        dhs = np.zeros((N, len(cache), H), self.dtype) if dhs is None else dhs.swapaxes(0, 1)
        if self.cell == "rnn":
            dx, dh0, dWx, dWh, db = rnn.rnn_backward(dhs, cache, dhT)
            dc0 = np.zeros_like(dh0)  # no cell state
        else:
            dx, dh0, dc0, dWx, dWh, db = textbook.lstm_backward(dhs, cache, dhT)
        dx = None if dx is None or not need_dx else np.ascontiguousarray(dx.swapaxes(0, 1))
        return dx, dh0, dc0, dWx, dWh, db

    def _head_chunk(self, target, T, N):
        """The head and the loss on one chunk of steps (start, stop, out (stop - start, N, H)), for head "all":
        returns (the chunk's share of the loss, its terms of (H2) and (H3), its dh (H4), (stop - start, N, H)).

        The loss is a mean over all T N positions (MSE: over all T N O outputs); the chunk's own mean, times its
        share of them, (stop - start) / T, is its part of that mean, and likewise its dy. ``pipeline.py`` runs this on the
        second thread while the top layer computes the next chunk.
        """
        W, b, H, O = self.params["head.W"], self.params["head.b"], self.hidden_size, self.output_size

        def job(start, stop, out):
            rows, share = (stop - start) * N, (stop - start) / T
            hidden = out.reshape(rows, H)
            y = hidden @ W + b  # (H1) y = h W + b, this chunk's steps
            part = target[start * N : stop * N] if self.loss == "softmax_ce" else target[start:stop]
            loss, dy = self._loss(y.reshape(stop - start, N, O), part)
            dy2 = dy.reshape(rows, O) * share
            return loss * share, hidden.T @ dy2, dy2.sum(axis=0), (dy2 @ W.T).reshape(stop - start, N, H)
        return job

    def _loss(self, y_tm, target):
        if self.loss == "mse":
            return mse(y_tm, target)
        logits = y_tm.reshape(-1, self.output_size)
        loss, dz = softmax_ce(logits, target)
        return loss, dz.reshape(y_tm.shape)

    @staticmethod
    def _batch_first(y_tm):
        return y_tm if y_tm.ndim == 2 else y_tm.transpose(1, 0, 2)

    def forward(self, x, state=None, train=False):
        """Predict. x (N, T, D) or (N, T) ids; state (L, 2, N, H) or None for zeros.

        Returns y ((N, O) for head "last", (N, T, O) for head "all") and the final state (L, 2, N, H);
        pass that state back in to continue the sequence. ``train=True`` applies dropout.
        """
        train = chk.flag("train", train)
        xt = self._time_major_input(x)
        state = self._check_state(state, xt.shape[1])
        masks = self._draw_masks(*xt.shape[:2]) if train else None
        piped = self._pipelined(*xt.shape[:2])
        with self._threads(piped):
            y, new_state, _, _ = self._forward_tm(xt, state, masks, piped)
        return self._batch_first(y), new_state

    def evaluate(self, x, y, state=None):
        """Loss without dropout and without gradients. Returns (loss, final state)."""
        xt = self._time_major_input(x)
        T, N = xt.shape[:2]
        state = self._check_state(state, N)
        target = self._targets(y, T, N)
        piped = self._pipelined(T, N)
        with self._threads(piped):
            y_tm, new_state, _, _ = self._forward_tm(xt, state, None, piped)
            return self._loss(y_tm, target)[0], new_state

    def loss_and_grads(self, x, y, state=None, train=True, masks=None, input_grads=False):
        """Loss and its gradient with respect to every parameter (full BPTT over the T steps of x).

        Args:
            x: (N, T, D) floats or (N, T) integer ids. y: targets, (N, O) for head "last" with mse,
                (N, T, O) for head "all" with mse, (N,) or (N, T) integer classes for softmax_ce.
            state: (L, 2, N, H) initial (c, h) per layer, or None for zeros. No gradient flows back past it
                into earlier batches (truncated BPTT).
            train: apply dropout (fresh masks from ``self.rng`` unless ``masks`` is given).
            masks: fixed dropout masks from ``make_masks``, a list of L arrays (N, T, H); used only when
                train is True (then even if dropout is 0).
            input_grads: also return {"x": dL/dx (N, T, D) (None for ids), "state": dL/dstate (L, 2, N, H)}.

        Returns:
            (loss, grads, final_state) -- grads has the keys of ``params`` -- plus the input gradients
            when ``input_grads`` is True.
        """
        train, input_grads = chk.flag("train", train), chk.flag("input_grads", input_grads)
        xt = self._time_major_input(x)
        T, N = xt.shape[:2]
        state = self._check_state(state, N)
        target = self._targets(y, T, N)
        if masks is not None:
            masks = self._check_masks(masks, T, N)
        if not train:
            masks = None
        elif masks is None:
            masks = self._draw_masks(T, N)
        piped = self._pipelined(T, N)
        with self._threads(piped):
            return self._loss_and_grads(xt, target, state, masks, input_grads, piped)

    def _loss_and_grads(self, xt, target, state, masks, input_grads, piped):
        T, N = xt.shape[:2]
        P, L, H = self.params, self.num_layers, self.hidden_size
        grads = {}
        if piped and self.head == "all":  # head and loss chunk by chunk, on the second thread: _head_chunk
            parts, new_state, caches, _ = self._forward_tm(xt, state, masks, piped, True, self._head_chunk(target, T, N))
            loss = sum(part[0] for part in parts)
            grads["head.W"] = reduce(np.add, [part[1] for part in parts])  # (H2), the chunks' terms added
            grads["head.b"] = reduce(np.add, [part[2] for part in parts])  # (H3)
            dtop, dlast = [part[3] for part in parts], None  # (H4), chunk by chunk
        else:
            y_tm, new_state, caches, hidden = self._forward_tm(xt, state, masks, piped, backward=True)
            loss, dy = self._loss(y_tm, target)
            dy2 = dy.reshape(-1, self.output_size)
            grads["head.W"] = hidden.T @ dy2  # (H2) dW = h^T dy
            grads["head.b"] = dy2.sum(axis=0)  # (H3) db = sum over rows of dy
            dhidden = dy2 @ P["head.W"].T  # (H4) dh = dy W^T
            # dtop: dL/dh_t of the layer being back-propagated, (T, N, H). Head "last" reads only h_T, so the top
            # layer gets its gradient as dh_T (dlast) and no (T, N, H) array of zeros is made.
            dtop, dlast = (None, dhidden) if self.head == "last" else (dhidden.reshape(T, N, H), None)
        dstate = np.empty((L, 2, N, H), self.dtype)
        wave = isinstance(caches, wavefront.WavefrontCache)
        if piped or wave:  # the forward pass ran pipelined (caches per chunk) or as a wavefront: so does the backward
            if wave:
                dtop, states, layer_grads = wavefront.stack_backward(caches, dtop, dlast, self._wave_work, input_grads)
            else:
                if masks is not None and dlast is not None:
                    dlast = dlast * masks[L - 1][-1]  # (D2) at the last step, the only one with a gradient
                dtop, states, layer_grads = pipeline.stack_backward(caches, dtop, dlast, masks, input_grads,
                                                                    self._chunk_works(T))
            for l in range(L):
                dstate[l, 0], dstate[l, 1] = states[l]
                grads[f"lstm.{l}.Wx"], grads[f"lstm.{l}.Wh"], grads[f"lstm.{l}.b"] = layer_grads[l]
        else:
            for l in range(L - 1, -1, -1):
                if masks is not None and dtop is not None:
                    dtop = dtop * masks[l]  # (D2) dh = dy * m
                elif masks is not None:
                    dlast = dlast * masks[l][-1]  # (D2) at the last step, the only one with a gradient
                dx, dh0, dc0, dWx, dWh, db = self._layer_backward(l, dtop, caches[l], dlast, l > 0 or input_grads)
                dlast = None
                grads[f"{self.cell}.{l}.Wx"], grads[f"{self.cell}.{l}.Wh"], grads[f"{self.cell}.{l}.b"] = dWx, dWh, db
                dstate[l, 0], dstate[l, 1] = dc0, dh0
                dtop = dx  # (S2) layer l's input gradient is layer l-1's dhs
        grads = {k: grads[k] for k in P}  # same order as params
        if input_grads:
            dxin = None if dtop is None else dtop.transpose(1, 0, 2).copy()  # not the workspace's buffer
            return loss, grads, new_state, {"x": dxin, "state": dstate}
        return loss, grads, new_state
