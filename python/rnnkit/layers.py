"""torch.nn-style recurrent layers and cells on NumPy, built only on rnnkit.functional.

    lstm = rnnkit.LSTM(input_size, hidden_size, num_layers=2, bidirectional=True, seed=0)
    y, (h_n, c_n) = lstm(x, lengths=lengths)          # shapes exactly torch.nn.LSTM's
    dx, (dh0, dc0) = lstm.backward(dy)                 # parameter gradients accumulate in lstm.grads

Parameters carry torch's names (weight_ih_l0, ..., bias_hh_l1_reverse), so a torch state_dict loads
unchanged and ours loads into torch. Check: tests/test_layers.py (against torch.nn).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from . import functional as F
from ._buffers import InnerOutputs
from ._validate import positive_int

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "Embedding"]


def _as_array(name, value, dtype):
    """A parameter value from NumPy or torch (a state_dict), as a C-contiguous array of dtype."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"load_state_dict: {name} must be an array of numbers, got {type(value).__name__} of dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _expect_grad(name, dy, shape, dtype):
    """The incoming gradient of a layer's output: an array of exactly the output's shape."""
    dy = np.asarray(dy)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of the last forward's output {tuple(shape)}, got {dy.shape}")
    return dy.astype(dtype, copy=False)


def _consumed(what):
    return RuntimeError(
        f"backward was already called for the last forward of this {what}: its gradients are in "
        f".grads. Run forward again, or pass retain_graph=True to the first backward to call it twice"
    )


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class _Module:
    """Parameters under torch's names, their gradients, train/eval, state_dict round trips."""

    params: Dict[str, np.ndarray]
    grads: Dict[str, np.ndarray]

    def _init_params(self, shapes, hidden_size, rng):
        k = 1.0 / np.sqrt(hidden_size)  # torch.nn's default: U(-1/sqrt(H), 1/sqrt(H))
        self.params = {n: rng.uniform(-k, k, s).astype(self.dtype) for n, s in shapes.items()}
        self.grads = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.training = True

    def parameters(self):
        """(name, array) pairs in torch's order; the arrays are the live parameters."""
        return list(self.params.items())

    def state_dict(self) -> Dict[str, np.ndarray]:
        """A copy of every parameter under torch's name (torch's load_state_dict accepts it after
        torch.from_numpy on each value)."""
        return {n: v.copy() for n, v in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Load parameters by name: arrays or torch tensors, e.g. a torch.nn module's state_dict."""
        missing = [n for n in self.params if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self.params]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        new = {}
        for n, v in state_dict.items():
            a = _as_array(n, v, self.dtype)
            if a.shape != self.params[n].shape:
                raise ValueError(f"load_state_dict: {n} must have shape {self.params[n].shape}, got {a.shape}")
            new[n] = a
        for n, a in new.items():
            self.params[n][...] = a

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def _accumulate(self, names, dweights):
        for n, d in zip(names, dweights):
            if d is not None:
                self.grads[n] += d


class _RecurrentLayer(_Module):
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, backend="auto", seed=None):  # fmt: skip
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = _float_dtype(dtype)
        self.backend = backend
        self._rng = _rng(seed)
        G, H, D = self._gates, self.hidden_size, self.num_directions
        shapes = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else H * D
            for sfx in self._suffixes(layer):
                shapes[f"weight_ih{sfx}"] = (G * H, in_size)
                shapes[f"weight_hh{sfx}"] = (G * H, H)
                if self.bias:
                    shapes[f"bias_ih{sfx}"] = (G * H,)
                    shapes[f"bias_hh{sfx}"] = (G * H,)
        self._init_params(shapes, H, self._rng)
        self._tape = None
        self._outputs = InnerOutputs()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self, layer):
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _names(self, sfx):
        return [f"weight_ih{sfx}", f"weight_hh{sfx}", f"bias_ih{sfx}", f"bias_hh{sfx}"]

    def _weights(self, sfx):
        return tuple(self.params.get(n) for n in self._names(sfx))

    def _split_state(self, state, name, B):
        """(h, c) per (layer, direction) from torch-shaped states [L*D, B, H] (None: zeros)."""
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        lstm = self._cell == "lstm"
        if state is None:
            return [None] * LD
        parts = state if lstm else (state,)
        if lstm and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise TypeError(f"{name} of an LSTM must be a tuple (h, c), got {type(state).__name__}")
        arrays = []
        for label, a in zip(("h", "c"), parts):
            if a is None:
                arrays.append(None)
                continue
            a = np.asarray(a)
            if a.shape != (LD, B, H):
                raise ValueError(
                    f"{name} ({label}) must have shape (num_layers * num_directions, B, H) = "
                    f"({LD}, {B}, {H}), got {a.shape}"
                )
            arrays.append(a)
        if lstm:
            return [(None if arrays[0] is None else arrays[0][i], None if arrays[1] is None else arrays[1][i]) for i in range(LD)]
        return [None if arrays[0] is None else arrays[0][i] for i in range(LD)]

    def forward(self, x, state=None, lengths=None, return_states=False):
        """y [T, B, D*H] (batch_first: [B, T, D*H]) and the final state(s) [L*D, B, H].

        return_states=True also returns every step's state (torch.nn has no such option): h_all
        [T, L*D, B, H], and for the LSTM (h_all, c_all), time-major whatever batch_first says.
        """
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D ({'B, T, I' if self.batch_first else 'T, B, I'}), got shape {x.shape}")
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        B = x.shape[1]
        states = self._split_state(state, "state", B)
        with self._outputs.call(not self.training and self.num_layers > 1) as held:  # rnnkit/_buffers.py
            return self._forward_layers(x, B, states, lengths, return_states, held)

    def _forward_layers(self, x, B, states, lengths, return_states, held):
        lstm = self._cell == "lstm"
        inp, tape, h_n, c_n, h_all, c_all = x, [], [], [], [], []
        for layer in range(self.num_layers):
            outs, ctxs = [], []
            sfxs = self._suffixes(layer)
            i0 = layer * self.num_directions
            y_out = None
            if return_states:
                runs = [F.forward(self._cell, inp, self._weights(sfx), states[i0 + d], lengths=lengths,
                                  reverse=d == 1, training=self.training, backend=self.backend,
                                  return_states=True) for d, sfx in enumerate(sfxs)]  # fmt: skip
                for *_, st in runs:
                    h_all.append(st[0] if lstm else st)
                    if lstm:
                        c_all.append(st[1])
            else:  # both directions in one call (they run concurrently), writing into one output
                y_out = self._outputs.get(layer, (inp.shape[0], B, self.num_directions * self.hidden_size), self.dtype,
                                          held, last=layer == self.num_layers - 1)  # fmt: skip
                runs = F._forward_group([dict(cell=self._cell, x=inp, weights=self._weights(sfx), state=states[i0 + d],
                                              lengths=lengths, reverse=d == 1, training=self.training)
                                         for d, sfx in enumerate(sfxs)], self.backend, y_out=y_out)  # fmt: skip
            for y, sn, ctx, *_ in runs:
                outs.append(y)
                ctxs.append(ctx)
                h_n.append(sn[0] if lstm else sn)
                if lstm:
                    c_n.append(sn[1])
            if y_out is not None:
                out = y_out
            else:
                out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(out.shape) < keep).astype(out.dtype) / out.dtype.type(keep)
                out = out * mask
            tape.append((ctxs, mask, inp.shape))
            inp = out
        y = inp.transpose(1, 0, 2) if self.batch_first else inp
        self._tape = (tape, y.shape) if self.training else None
        self._consumed = False
        h_n = np.stack(h_n)
        state_n = (h_n, np.stack(c_n)) if lstm else h_n
        if not return_states:
            return y, state_n
        h_all = np.stack(h_all, axis=1)
        return y, state_n, ((h_all, np.stack(c_all, axis=1)) if lstm else h_all)

    __call__ = forward

    def backward(self, dy, dstate_n=None, *, retain_graph=False):
        """Backpropagation through the last training-mode call. Returns dx (shaped like x) and the
        gradient of the initial state(s); parameter gradients are added to self.grads.

        dy has the shape of that call's y. Like torch's, a second backward of the same forward
        raises (it would add the gradients twice) unless the first one passed retain_graph=True."""
        if self._tape is None:
            raise RuntimeError("backward needs a forward call in training mode first (layer.train())")
        if self._consumed:
            raise _consumed(type(self).__name__)
        tape, y_shape = self._tape
        dy = _expect_grad("dy", dy, y_shape, self.dtype)
        self._consumed = not retain_graph
        if self.batch_first:
            dy = dy.transpose(1, 0, 2)
        H, D, lstm = self.hidden_size, self.num_directions, self._cell == "lstm"
        B = dy.shape[1] if dy.ndim == 3 else 0
        dstates = self._split_state(dstate_n, "dstate_n", B)
        LD = self.num_layers * D
        dh0 = np.zeros((LD, B, H), self.dtype)
        dc0 = np.zeros((LD, B, H), self.dtype) if lstm else None
        dout = dy
        for layer in range(self.num_layers - 1, -1, -1):
            ctxs, mask, in_shape = tape[layer]
            if mask is not None:
                dout = dout * mask
            sfxs = self._suffixes(layer)
            outs = F._backward_group([(ctxs[d], np.ascontiguousarray(dout[..., d * H : (d + 1) * H]), dstates[layer * D + d])
                                      for d in range(len(sfxs))])  # fmt: skip
            dinp = np.zeros(in_shape, self.dtype)
            for d, (sfx, (dx, ds0, dw)) in enumerate(zip(sfxs, outs)):
                i = layer * D + d
                dinp += dx
                self._accumulate(self._names(sfx), dw)
                if lstm:
                    dh0[i], dc0[i] = ds0
                else:
                    dh0[i] = ds0
            dout = dinp
        dx = dout.transpose(1, 0, 2) if self.batch_first else dout
        return dx, ((dh0, dc0) if lstm else dh0)


class RNN(_RecurrentLayer):
    """Elman RNN, torch.nn.RNN's arguments and semantics; nonlinearity "tanh" or "relu"."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, **kw):  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._cell = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kw)


class LSTM(_RecurrentLayer):
    """LSTM, torch.nn.LSTM's arguments and semantics (gate order i, f, g, o)."""

    _cell, _gates = "lstm", 4


class GRU(_RecurrentLayer):
    """GRU, torch.nn.GRU's arguments and semantics (gate order r, z, n)."""

    _cell, _gates = "gru", 3


class _Cell(_Module):
    """One step of a recurrent cell (torch.nn.*Cell): x [B, I] -> h' [B, H] (LSTM: (h', c')).
    Calls stack up a tape; backward(dh) undoes the most recent call first, so a decoder loop
    calls backward once per step in reverse."""

    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, backend="auto", seed=None):
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.bias, self.dtype, self.backend = bool(bias), _float_dtype(dtype), backend
        G, H = self._gates, self.hidden_size
        shapes = {"weight_ih": (G * H, self.input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        self._init_params(shapes, H, _rng(seed))
        self._tape = []

    _names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def forward(self, x, state=None):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (B, I), got shape {x.shape}")
        w = tuple(self.params.get(n) for n in self._names)
        y, sn, ctx = F.forward(self._cell, x[None], w, state, training=self.training, backend=self.backend)
        if self.training:
            self._tape.append(ctx)
        return sn

    __call__ = forward

    def backward(self, dstate):
        """dstate: dL/dh' (LSTM: (dL/dh', dL/dc')) of the most recent call not yet undone.
        Returns dx [B, I] and the gradient of the state passed to that call."""
        if not self._tape:
            raise RuntimeError("backward needs a forward call in training mode first (cell.train())")
        ctx = self._tape.pop()
        dy = np.zeros((1, ctx.problem.B, self.hidden_size), self.dtype)
        dx, ds0, dw = F.backward(ctx, dy, dstate)
        self._accumulate(self._names, dw)
        return dx[0], ds0

    def clear_tape(self) -> None:
        self._tape.clear()


class RNNCell(_Cell):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._cell = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, bias, **kw)


class LSTMCell(_Cell):
    _cell, _gates = "lstm", 4


class GRUCell(_Cell):
    _cell, _gates = "gru", 3



class Linear(_Module):
    """y = x @ W^T + b over the last axis (torch.nn.Linear: weight [out, in], bias [out])."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, seed=None):
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.dtype = _float_dtype(dtype)
        shapes = {"weight": (self.out_features, self.in_features)}
        if bias:
            shapes["bias"] = (self.out_features,)
        self._init_params(shapes, self.in_features, _rng(seed))
        self._x = None

    def forward(self, x):
        x = np.asarray(x, dtype=self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must end in in_features = {self.in_features}, got shape {x.shape}")
        self._x = x if self.training else None
        self._consumed = False
        y = x @ self.params["weight"].T
        return y + self.params["bias"] if "bias" in self.params else y

    __call__ = forward

    def backward(self, dy, *, retain_graph=False):
        """dL/dx for dL/dy (the shape of the last training-mode call's output); adds dL/dW, dL/db
        to self.grads. A second backward of one forward raises unless retain_graph=True."""
        if self._x is None:
            raise RuntimeError("backward needs a forward call in training mode first")
        if self._consumed:
            raise _consumed("Linear")
        dy = _expect_grad("dy", dy, self._x.shape[:-1] + (self.out_features,), self.dtype)
        self._consumed = not retain_graph
        x2 = self._x.reshape(-1, self.in_features)
        dy2 = dy.reshape(-1, self.out_features)
        self.grads["weight"] += dy2.T @ x2
        if "bias" in self.grads:
            self.grads["bias"] += dy2.sum(axis=0)
        return (dy2 @ self.params["weight"]).reshape(self._x.shape)


class Embedding(_Module):
    """Integer ids -> vectors (torch.nn.Embedding: weight [num_embeddings, embedding_dim], N(0, 1))."""

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, seed=None):
        self.num_embeddings = positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        self.dtype = _float_dtype(dtype)
        rng = _rng(seed)
        self.params = {"weight": rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self.training = True
        self._ids = None

    def forward(self, ids):
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), got values in [{ids.min()}, {ids.max()}]")
        self._ids = ids if self.training else None
        self._consumed = False
        return self.params["weight"][ids]

    __call__ = forward

    def backward(self, dy, *, retain_graph=False):
        """Adds dL/dweight for dL/dy (the shape of the last training-mode call's output) to
        self.grads. A second backward of one forward raises unless retain_graph=True."""
        if self._ids is None:
            raise RuntimeError("backward needs a forward call in training mode first")
        if self._consumed:
            raise _consumed("Embedding")
        dy = _expect_grad("dy", dy, self._ids.shape + (self.embedding_dim,), self.dtype)
        self._consumed = not retain_graph
        np.add.at(self.grads["weight"], self._ids.reshape(-1), dy.reshape(-1, self.embedding_dim))
