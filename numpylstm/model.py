"""A stack of cells, dropout on each layer's output, a dense head and a loss: the model of chapters 04 and 05.

Derivation: derivations/04_stacking_dropout.md (S1-S2, D1-D2) and derivations/05_head_losses.md (H1-H4,
L1-L4). Read top to bottom, a training step (``loss_and_grads``) is:

    forward   (S1) layer l reads layer l-1's hidden states; (D1) dropout on each layer's output;
              (H1) y = h W + b; the loss (L1 or L3)
    backward  (L2 or L4) dy; (H2)-(H4) the head's gradients and dh; then from the top layer down:
              (D2) dh times the mask, the layer's BPTT, (S2) its dx is the gradient of the layer below.

Each layer is a cell of ``numpylstm/cells/`` (``cell="lstm"`` by default; "rnn", "gru", "peephole" and
Greff's variants). How the stack runs is chosen in one place, ``numpylstm/engines.py``: the cells'
step-by-step code, or for the standard LSTM with ``impl="fast"`` (the default) the equal and faster
``fast.py`` (F1-F5, B1-B14) or, for a small stack, ``wavefront.py``. Training on two or more cores runs this
model in several processes, each on a block of the batch: ``numpylstm/parallel.py``.

TF-1 words -> numpylstm: ``lstm_size`` = hidden_size H (units in each gate), ``timesteps`` = T,
``lstm_layers`` = num_layers, ``keep_prob`` = 1 - dropout, ``final_state`` = the state array
(num_layers, 2, N, H) holding (c, h) for each layer.
"""

from __future__ import annotations

import numbers
import threading

import numpy as np

from . import _checks as chk
from . import cells, engines
from .losses import mse, softmax_ce

HEADS = ("last", "all")
LOSSES = ("mse", "softmax_ce")
IMPLS = ("fast", "textbook")
CELLS = cells.NAMES  # "lstm", "rnn", "gru", "peephole" and Greff's variants: numpylstm/cells/


class LSTMModel:
    """num_layers stacked cells (LSTM layers by default), inverted dropout on each layer's output, a dense head.

    Args:
        input_size: D, features per timestep; for integer token input, the vocabulary size V.
        hidden_size: H (TF's ``lstm_size``).
        output_size: O, outputs of the dense head (classes for ``softmax_ce``).
        num_layers: L; layer l+1 reads layer l's hidden states.
        dropout: 1 - keep_prob, applied to every layer's output when training (TF's
            ``DropoutWrapper(output_keep_prob=keep_prob)``); never to the recurrent state.
        head: "last" (many-to-one: y (N, O) from h at the last step) or "all" (many-to-many: y (N, T, O)).
        loss: "mse" (mean over all elements) or "softmax_ce" (mean over positions, integer targets).
        forget_bias: added at initialisation to the forget gate's bias block of every layer (TF/Keras
            convention): the block the cell names as its ``forget_block`` (b's f block for the LSTM family;
            none for "rnn" and "gru").
        seed: seeds initialisation and dropout masks (``self.rng``).
        dtype: float64 (default) or float32.
        impl: which layer code runs the standard LSTM: "fast" (``numpylstm/fast.py``, default) or "textbook"
            (``numpylstm/textbook.py``, the step-by-step code the derivations quote; same numbers, slower).
            Every other cell always runs its own step-by-step code (``numpylstm/cells/``); impl is ignored.
        wavefront: "auto" (default), True or False: run all layers of a small stack in one time loop, a
            wavefront through (layer x time) (``numpylstm/wavefront.py``; same numbers up to rounding). It
            needs float input and no dropout masks in the pass (other passes run layer by layer). "auto" uses
            it for a fast LSTM stack of 2+ layers small enough to be bound by NumPy's per-call cost
            (``wavefront.worth_it``: the sine model, not the char-RNN); True whenever it can, False never.
            A run setting, like ``impl``: not saved.
        cell: the layers' cell, one of ``numpylstm.cells.NAMES``: "lstm" (default), "rnn" (plain tanh RNN,
            ``numpylstm/rnn.py``, derivations/11_why_lstm.md), "gru" (PyTorch's GRU), "peephole" (Gers &
            Schmidhuber's LSTM with peepholes) or one of Greff et al.'s variants "nig", "nfg", "nog", "niaf",
            "noaf", "cifg", "fgr" (derivations/12_the_lstm_family.md). The same head, losses, dropout,
            optimizers and state layout for every cell. Layer l's parameters are ``f"{cell}.{l}.{key}"`` for
            each key of the cell's ``param_shapes`` (``lstm.0.Wx``, ``gru.1.bh``, ``nfg.0.p``); state[l, 0]
            (the c slot) stays zero for a cell without a cell state ("rnn", "gru"). "fgr"'s previous gates
            [i, f, o]_{t-1} are not part of the state: a sequence continued from a returned state (stateful
            training) restarts them at zero, so for "fgr" two halves are not the whole.

    Inputs x are (N, T, D) floats, or (N, T) integer token ids in [0, input_size) (a one-hot input computed
    as a row gather of Wx). ``state`` is (L, 2, N, H): state[l, 0] is layer l's c, state[l, 1] its h.

    Threads: one model may be called from several threads at once (``forward``, ``evaluate``,
    ``loss_and_grads``), with the same results as one call after another. The fast engines reuse big buffers
    from call to call (``fast.Workspace``); each thread gets its own set (``_scratch``, a ``threading.local``),
    made on the thread's first call and freed with the thread. Chosen over a lock because a lock would make the
    threads wait for each other for the whole pass, while NumPy releases the GIL inside its products, so
    threads with their own buffers can overlap; the price is one set of buffers per calling thread. Not
    covered: dropout masks drawn from the shared ``self.rng`` come out in whichever order the threads ask (each
    draw is safe, the order is not fixed), and changing ``params`` while another thread trains.
    """

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, dropout=0.0, head="last",
                 loss="mse", forget_bias=1.0, seed=0, dtype=np.float64, impl="fast",
                 cell="lstm", wavefront="auto"):
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
        if not (isinstance(wavefront, bool) or (isinstance(wavefront, str) and wavefront == "auto")):
            raise ValueError(f"wavefront must be 'auto', True or False; got {wavefront!r}")
        self.wavefront = wavefront
        self.rng = np.random.default_rng(seed)
        self.params = self._init_params()
        self._per_thread = _PerThread(self.num_layers)

    # ------------------------------------------------------------------ buffers, one set per thread
    def _scratch(self) -> engines.Scratch:
        """The calling thread's buffers for the fast engines (made on its first call)."""
        return self._per_thread.scratch

    @property
    def _wave_work(self):
        """The calling thread's Workspace of the wavefront passes."""
        return self._scratch().wave

    @_wave_work.setter
    def _wave_work(self, work):
        self._scratch().wave = work

    def __getstate__(self):
        """A copy (``copy.deepcopy``, pickle) starts without buffers: they are scratch space, per thread."""
        state = dict(self.__dict__)
        del state["_per_thread"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._per_thread = _PerThread(self.num_layers)

    # ------------------------------------------------------------------ set-up
    @property
    def cell_type(self):
        """The layers' cell (``numpylstm.cells.get(self.cell)``): param_shapes, forget_block, forward, backward."""
        return cells.get(self.cell)

    @property
    def config(self) -> dict:
        """The constructor's arguments (dtype as a string): enough to rebuild the architecture."""
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, output_size=self.output_size,
                    num_layers=self.num_layers, dropout=self.dropout, head=self.head, loss=self.loss,
                    forget_bias=self.forget_bias, seed=self.seed, dtype=self.dtype.name,
                    **({} if self.cell == "lstm" else {"cell": self.cell}))

    def param_shapes(self) -> dict:
        """Name -> shape of every parameter array, in the order of ``params``: layer by layer the cell's
        ``param_shapes(D, H)`` (D = input_size for layer 0, H above it) as ``f"{cell}.{l}.{key}"``, then the
        head's ``head.W`` (H, O) and ``head.b`` (O,)."""
        key = (self.cell, self.input_size, self.hidden_size, self.output_size, self.num_layers)
        kept = self.__dict__.get("_shapes")
        if kept is None or kept[0] != key:  # made once: every call checks the params against it (_check_params)
            H, shapes, c = self.hidden_size, {}, self.cell
            for l in range(self.num_layers):
                D = self.input_size if l == 0 else H
                for k, shape in self.cell_type.param_shapes(D, H).items():
                    shapes[f"{c}.{l}.{k}"] = tuple(shape)
            shapes["head.W"] = (H, self.output_size)
            shapes["head.b"] = (self.output_size,)
            kept = self._shapes = (key, shapes)
        return dict(kept[1])

    def _init_params(self) -> dict:
        """uniform(-1/sqrt(H), 1/sqrt(H)) everywhere, like PyTorch, drawn in ``param_shapes`` order; forget_bias
        added to the cell's ``forget_block`` (the f block of b for the LSTM family) of every layer."""
        H, k = self.hidden_size, 1.0 / np.sqrt(self.hidden_size)
        block = self.cell_type.forget_block  # (key, j): H-block j of that parameter, or None
        params = {}
        for name, shape in self.param_shapes().items():
            p = self.rng.uniform(-k, k, size=shape)
            if block is not None and name.startswith(f"{self.cell}.") and name.endswith(f".{block[0]}"):
                j = block[1]
                p[..., j * H : (j + 1) * H] += self.forget_bias
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
    def _engine(self, xt, masks):
        """How this pass's stack runs (numpylstm/engines.py, the one place that chooses), with this thread's
        buffers."""
        return engines.choose(self, xt, masks, self._scratch())

    def _wave(self, xt, masks) -> bool:
        """Whether a pass runs as a wavefront (``engines.wave``; see the ``wavefront`` argument)."""
        return engines.wave(self, xt, masks)

    def _stack_forward(self, run, xt, state, masks):
        """The stack of cells, time-major: (S1) each layer reads the layer below's output after (D1) dropout.

        run: the engine (``_engine``); xt (T, N, D) or (T, N) ids; state (L, 2, N, H) or None; masks: L arrays
        (T, N, H) or None. Returns top (the top layer's output after dropout, (T, N, H); for head "last" at least
        its last step, top[-1] = h_T), the new state (L, 2, N, H) (c slot 0 without a cell state), the caches.
        """
        T, N = xt.shape[:2]
        L, H = self.num_layers, self.hidden_size
        new_state = np.zeros((L, 2, N, H), self.dtype)
        if run.whole_stack:  # wavefront.py: the same equations, the whole stack in one time loop
            top, finals, caches = run.stack_forward(xt, state, masks)
        else:
            finals, caches, top = [], [], xt
            for l in range(L):
                h0, c0 = (None, None) if state is None else (state[l, 1], state[l, 0])
                hs, final, cache = run.layer_forward(l, top, h0, c0)  # layer l's cell over all T steps
                finals.append(final)
                caches.append(cache)
                top = hs if masks is None else hs * masks[l]  # (D1) dropout on the output; (S1) feeds layer l+1
        for l, (hT, cT) in enumerate(finals):
            new_state[l, 1] = hT
            if cT is not None:  # no cell state (rnn, gru): its slot stays 0
                new_state[l, 0] = cT
        return top, new_state, caches

    def _stack_backward(self, run, caches, dtop, dlast, masks, input_grads):
        """BPTT through the stack, from the top layer down: (D2) through each mask, (S2) each layer's dx is the
        gradient of the layer below's output.

        dtop (T, N, H): dL/d(top output after dropout) at every step, or None (head "last"); dlast (N, H): its
        gradient at the last step only (head "last"), or None. Returns dx (T, N, D) or None (token ids, or not
        input_grads), dstate (L, 2, N, H) and {param name: gradient} of every layer's cell.
        """
        L, cell = self.num_layers, self.cell
        if run.whole_stack:  # wavefront.py: the same equations, the whole stack in one time loop
            dtop, dfirst, layer_grads = run.stack_backward(caches, dtop, dlast, masks, input_grads)
        else:
            dfirst, layer_grads = [None] * L, [None] * L
            for l in range(L - 1, -1, -1):
                if masks is not None and dtop is not None:
                    dtop = dtop * masks[l]  # (D2) dh = dy * m
                elif masks is not None:
                    dlast = dlast * masks[l][-1]  # (D2) at the last step, the only one with a gradient
                dx, dh0, dc0, layer_grads[l] = run.layer_backward(l, dtop, caches[l], dlast, l > 0 or input_grads)
                dfirst[l], dlast = (dh0, dc0), None
                dtop = dx  # (S2) layer l's input gradient is the gradient of layer l-1's output
        dstate = np.zeros((L, 2) + dfirst[0][0].shape, self.dtype)
        grads = {}
        for l in range(L):
            dstate[l, 1] = dfirst[l][0]
            if dfirst[l][1] is not None:  # no cell state: dL/dc0 stays 0
                dstate[l, 0] = dfirst[l][1]
            grads.update({f"{cell}.{l}.{k}": g for k, g in layer_grads[l].items()})
        return dtop, dstate, grads

    def _head(self, top):
        """(H1) y = h W + b on the rows the head reads: h_T (head "last") or every step (head "all").
        Returns y_tm ((N, O) or (T, N, O)) and h, the (rows, H) array it was computed from."""
        T, N, H = (None,) + top.shape[1:] if self.head == "last" else top.shape
        hidden = top[-1] if self.head == "last" else top.reshape(-1, H)
        y = hidden @ self.params["head.W"] + self.params["head.b"]  # (H1) y = h W + b
        return (y if self.head == "last" else y.reshape(T, N, -1)), hidden

    def _loss(self, y_tm, target):
        """The loss and dy, the gradient of the head's output y_tm: (L1), (L2) for "mse", (L3), (L4) for
        "softmax_ce" (``numpylstm/losses.py``)."""
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
        run = self._engine(xt, masks)
        top, new_state, _ = self._stack_forward(run, xt, state, masks)  # (S1), (D1)
        y, _ = self._head(top)  # (H1)
        return self._batch_first(y), new_state

    def evaluate(self, x, y, state=None):
        """Loss without dropout and without gradients. Returns (loss, final state)."""
        xt = self._time_major_input(x)
        T, N = xt.shape[:2]
        state = self._check_state(state, N)
        target = self._targets(y, T, N)
        run = self._engine(xt, None)
        top, new_state, _ = self._stack_forward(run, xt, state, None)  # (S1)
        y_tm, _ = self._head(top)  # (H1)
        return self._loss(y_tm, target)[0], new_state  # (L1) or (L3)

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
            input_grads: also return {"x": dL/dx (N, T, D) (None for ids), "state": dL/dstate (L, 2, N, H)}
                (its c slot is 0 for a cell without a cell state).

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
        return self._loss_and_grads(self._engine(xt, masks), xt, target, state, masks, input_grads)

    def _loss_and_grads(self, run, xt, target, state, masks, input_grads):
        T, N = xt.shape[:2]
        H, O = self.hidden_size, self.output_size
        grads = {}
        top, new_state, caches = self._stack_forward(run, xt, state, masks)  # (S1), (D1)
        y_tm, hidden = self._head(top)  # (H1) y = h W + b
        loss, dy = self._loss(y_tm, target)  # (L1)/(L2) or (L3)/(L4): the loss and dy
        dy2 = dy.reshape(-1, O)
        grads["head.W"] = hidden.T @ dy2  # (H2) dW = h^T dy
        grads["head.b"] = dy2.sum(axis=0)  # (H3) db = sum over rows of dy
        dhidden = dy2 @ self.params["head.W"].T  # (H4) dh = dy W^T
        # dtop: dL/dh_t of the top layer's output, (T, N, H). Head "last" reads only h_T, so the top layer
        # gets its gradient as dh_T (dlast) and no (T, N, H) array of zeros is made.
        dtop, dlast = (None, dhidden) if self.head == "last" else (dhidden.reshape(T, N, H), None)
        dx, dstate, layer_grads = self._stack_backward(run, caches, dtop, dlast, masks, input_grads)  # (D2), (S2)
        grads.update(layer_grads)
        grads = {k: grads[k] for k in self.params}  # same order as params
        if input_grads:
            dxin = None if dx is None else dx.transpose(1, 0, 2).copy()  # not the workspace's buffer
            return loss, grads, new_state, {"x": dxin, "state": dstate}
        return loss, grads, new_state


class _PerThread(threading.local):
    """``scratch``: the calling thread's ``engines.Scratch`` (``threading.local`` runs __init__ once per thread)."""

    def __init__(self, num_layers):
        self.scratch = engines.Scratch(num_layers)
