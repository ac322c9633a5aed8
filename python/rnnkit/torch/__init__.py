"""rnnkit's kernels inside PyTorch training loops: drop-in torch.nn.RNN/LSTM/GRU (and cells).

    from rnnkit.torch import LSTM        # instead of torch.nn.LSTM: nothing else changes
    lstm = LSTM(32, 64, num_layers=2, bidirectional=True, batch_first=True)
    out, (h_n, c_n) = lstm(x_or_packed_sequence, (h0, c0))

Same constructor, forward signature, outputs (PackedSequence in, PackedSequence out) and
state_dict as torch.nn; forward also takes lengths= for padded input. In eager mode forward and
backward run rnnkit's kernels through a torch.autograd.Function; tensors and NumPy arrays share
memory both ways (no copy of weights per call). Under torch.compile and torch.export the same
kernels run as registered operators (torch.ops.rnnkit.layer_forward/layer_backward, in _ops.py),
so `torch.compile(model, fullgraph=True)` and `torch.export.export(model, args)` capture models
holding these modules. CPU tensors only.
Importing `rnnkit` never imports torch; importing `rnnkit.torch` needs it (the `torch` extra).
Check: tests/test_torch_modules.py.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .. import functional as F
from .._buffers import InnerOutputs
from .._validate import positive_int
from . import _ops  # noqa: F401 - registers torch.ops.rnnkit.*
from ._onnx import export_onnx, onnx_translations


def _check_args(input_size, hidden_size, num_layers=1, dropout=0.0, **flags):
    """torch.nn's constructor arguments, each named when wrong (torch's own messages vary)."""
    positive_int("input_size", input_size)
    positive_int("hidden_size", hidden_size)
    positive_int("num_layers", num_layers)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    for name, v in flags.items():
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {v!r}")

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "recurrent", "export_onnx", "onnx_translations"]

_DTYPES = (torch.float32, torch.float64)
_NP_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}


def _np(t: Optional[torch.Tensor]):
    """A NumPy view of a CPU tensor (no copy when contiguous)."""
    return None if t is None else t.detach().numpy()


def _check_tensor(name, t):
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        hint = " (rnnkit.RNN/LSTM/GRU are the NumPy layers)" if isinstance(t, np.ndarray) else ""
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}{hint}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on device {t.device}; rnnkit's kernels run on the CPU (move it with .cpu())")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")


class _Recurrent(torch.autograd.Function):
    """One layer, its D directions in one call (side by side on the C++ backend where a step is
    too small to split): (x, then per direction W_ih, W_hh, b_ih, b_hh, h0, c0) -> (y [T, B, D*H],
    then per direction h_n, c_n)."""

    @staticmethod
    def forward(ctx, cell, backend, reverses, lengths, training, y_out, x, *flat):
        lstm = cell == "lstm"
        calls = []
        for d, reverse in enumerate(reverses):
            w_ih, w_hh, b_ih, b_hh, h0, c0 = flat[6 * d : 6 * d + 6]
            calls.append(dict(cell=cell, x=_np(x), weights=(_np(w_ih), _np(w_hh), _np(b_ih), _np(b_hh)),
                              state=(_np(h0), _np(c0)) if lstm else _np(h0), lengths=lengths,
                              reverse=reverse, training=training))  # fmt: skip
        # y of every direction side by side, [T, B, D*H], written there by the kernels (a torch.cat
        # here woke torch's OpenMP threads, which then spin for milliseconds on the cores rnnkit's
        # next call needs: a bidirectional layer took 19 ms instead of 11).
        xa = calls[0]["x"]
        if y_out is None and len(calls) > 1 and xa.ndim == 3:
            y_out = np.empty((xa.shape[0], xa.shape[1], len(calls) * _np(flat[1]).shape[1]), xa.dtype)
        runs = F._forward_group(calls, backend, y_out=y_out)
        ctx.fctxs = [fctx for _, _, fctx in runs]
        ctx.lstm = lstm
        # The inputs go through autograd's own saving, which is what makes torch's rules hold:
        # an in-place change before backward, or a second backward without retain_graph, raises
        # (the kernels' cache holds views of these same tensors' memory).
        ctx.save_for_backward(x, *flat)
        ys = [y for y, _, _ in runs]
        out = [torch.from_numpy(ys[0] if y_out is None else y_out)]
        ctx.H = ys[0].shape[2]
        for _, sn, _ in runs:
            h_n, c_n = sn if lstm else (sn, None)
            out += [torch.from_numpy(h_n), torch.from_numpy(c_n) if c_n is not None else x.new_zeros(0)]
        return tuple(out)

    @staticmethod
    @once_differentiable  # no second derivatives: create_graph=True then a loss on them raises
    def backward(ctx, *grads):
        ctx.saved_tensors  # noqa: B018 - checks the version counters and the retain_graph rule

        def arr(t):
            return None if t is None else np.ascontiguousarray(t.detach().numpy())

        items, dy, H = [], grads[0].detach().numpy(), ctx.H
        for d, fctx in enumerate(ctx.fctxs):
            dh_n, dc_n = grads[1 + 2 * d : 3 + 2 * d]
            dyd = np.ascontiguousarray(dy[..., d * H : (d + 1) * H])
            items.append((fctx, dyd, (arr(dh_n), arr(dc_n)) if ctx.lstm else arr(dh_n)))
        dx, flat = None, []
        for d_x, ds0, dw in F._backward_group(items):
            dx = d_x if dx is None else dx + d_x
            dh0, dc0 = ds0 if ctx.lstm else (ds0, None)
            flat += [None if a is None else torch.from_numpy(a) for a in (*dw, dh0, dc0)]
        return (None, None, None, None, None, None, torch.from_numpy(dx), *flat)


def _apply(cell, x, directions, lengths=None, backend="auto", y_out=None):
    """directions: (weights, h0, c0, reverse) each; returns y [T, B, D*H] and [(h_n, c_n)] per
    direction. y_out: an array to write y into (rnnkit/_buffers.py), or None."""
    _check_tensor("x", x)
    flat = []
    for weights, h0, c0, _ in directions:
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights):
            _check_tensor(name, w)
        flat += [*weights, h0, c0]
    # Keep per-step activations only when autograd will ask for them (not under no_grad/inference).
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *flat))
    reverses = tuple(bool(r) for *_, r in directions)
    y, *states = _Recurrent.apply(cell, backend, reverses, lengths, training, y_out, x, *flat)
    lstm = cell == "lstm"
    return y, [(states[2 * d], states[2 * d + 1] if lstm else None) for d in range(len(directions))]


def _compiling() -> bool:
    """Whether torch.compile or torch.export is tracing: then the layers run as the registered
    operators of rnnkit/torch/_ops.py, which a graph can hold; in eager mode as _Recurrent (the
    same kernels, and buffers kept between calls, which an operator may not return)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _apply_op(cell, x, directions, lengths=None, backend="auto"):
    """_apply through torch.ops.rnnkit.layer_forward; lengths: an int64 tensor or None."""
    _check_tensor("x", x)
    params, h0, c0 = [], [], []
    bias = directions[0][0][2] is not None
    for weights, h, c, _ in directions:
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights):
            _check_tensor(name, w)
        params += list(weights if bias else weights[:2])
        if h is not None:
            h0.append(h)
        if c is not None:
            c0.append(c)
    training = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *params, *h0, *c0))
    reverses = [bool(r) for *_, r in directions]
    y, h_n, c_n, _ = torch.ops.rnnkit.layer_forward(cell, backend, x, params, h0, c0, lengths, reverses, bias,
                                                    training)  # fmt: skip
    return y, [(h_n[d], c_n[d] if cell == "lstm" else None) for d in range(len(directions))]


def _lengths_tensor(lengths):
    return None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)


def recurrent(cell: str, x, weights, h0, c0=None, lengths=None, reverse=False, backend="auto"):
    """Differentiable single-layer, single-direction call: x [T, B, I] -> (y, h_n, c_n)."""
    if _compiling():
        y, [(h_n, c_n)] = _apply_op(cell, x, [(tuple(weights), h0, c0, reverse)], _lengths_tensor(lengths), backend)
        return y, h_n, c_n
    return _recurrent_eager(cell, x, weights, h0, c0, lengths, reverse, backend)


def _recurrent_eager(cell, x, weights, h0, c0, lengths, reverse, backend):
    y, [(h_n, c_n)] = _apply(cell, x, [(tuple(weights), h0, c0, reverse)], lengths, backend)
    return y, h_n, c_n


def _layer(cell, x, directions, lengths, backend, y_out=None):
    return _apply(cell, x, directions, lengths, backend, y_out)


class _RNNBase(nn.Module):
    """torch.nn.RNNBase's constructor, parameters (names, shapes, initialisation) and forward."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, backend="auto"):  # fmt: skip
        super().__init__()
        _check_args(input_size, hidden_size, num_layers, dropout, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional)  # fmt: skip
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"device {device}: rnnkit's kernels run on the CPU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.backend = float(dropout), bidirectional, backend
        G = {"lstm": 4, "gru": 3}.get(mode, 1)
        D = 2 if bidirectional else 1
        kw = dict(dtype=dtype or torch.get_default_dtype())
        self._flat_names = []
        self._outputs = InnerOutputs()
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * D
            for sfx in ("", "_reverse")[:D]:
                names = [f"weight_ih_l{layer}{sfx}", f"weight_hh_l{layer}{sfx}"]
                self.register_parameter(names[0], nn.Parameter(torch.empty(G * hidden_size, in_size, **kw)))
                self.register_parameter(names[1], nn.Parameter(torch.empty(G * hidden_size, hidden_size, **kw)))
                if bias:
                    names += [f"bias_ih_l{layer}{sfx}", f"bias_hh_l{layer}{sfx}"]
                    self.register_parameter(names[2], nn.Parameter(torch.empty(G * hidden_size, **kw)))
                    self.register_parameter(names[3], nn.Parameter(torch.empty(G * hidden_size, **kw)))
                self._flat_names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def _weights(self, i):
        names = self._flat_names[i]
        w = [getattr(self, n) for n in names]
        return tuple(w) if self.bias else (w[0], w[1], None, None)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + f", backend={self.backend!r}"

    def forward(self, input, hx=None, *, lengths=None):
        """torch.nn's forward; also lengths=: the valid steps of each sequence of a padded input
        (a [B] int tensor or sequence), an alternative to a PackedSequence that torch.compile can
        trace (torch.compile does not trace pack_padded_sequence). The output is then padded,
        zero past each sequence's length, and the states are those after its last valid step."""
        cell = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}.get(self.mode, self.mode)
        packed = isinstance(input, PackedSequence)
        if not packed and not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}")
        compiling = _compiling()
        if lengths is not None:
            if packed:
                raise ValueError("lengths is for a padded input; a PackedSequence carries its own")
            if compiling:
                lengths = _lengths_tensor(lengths)
            else:
                lengths = lengths.numpy() if isinstance(lengths, torch.Tensor) else np.asarray(lengths)
        if packed:
            x, lens = pad_packed_sequence(input, batch_first=False)
            lengths = lens.to(torch.int64) if compiling else lens.numpy().astype(np.int64)
        else:
            _check_tensor("input", input)
            if input.dim() != 3:
                raise ValueError(f"input must be 3-D, got {input.dim()}-D (unbatched input is not supported)")
            x = input.transpose(0, 1) if self.batch_first else input
        x = x.contiguous()
        B = x.shape[1]
        D, H, L = 2 if self.bidirectional else 1, self.hidden_size, self.num_layers
        lstm = cell == "lstm"
        if hx is None and compiling:  # the operator starts from zeros: no kernel in the graph for them
            h0 = c0 = None
        elif hx is None:
            zeros = x.new_zeros(L * D, B, H)
            h0, c0 = zeros, (zeros if lstm else None)
        elif lstm:
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        for name, s in (("h0", h0), ("c0", c0)):
            if s is not None and tuple(s.shape) != (L * D, B, H):
                raise ValueError(f"{name} must have shape (num_layers * num_directions, B, H) = ({L * D}, {B}, {H}), got {tuple(s.shape)}")
        inp, hs, cs = x, [], []
        # Without autograd the inner layers write into the module's kept buffers (rnnkit/_buffers.py).
        infer = not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        shape, dt = (x.shape[0], B, D * H), _NP_DTYPES.get(x.dtype)
        with self._outputs.call(infer and L > 1 and dt is not None and not compiling) as held:
            for layer in range(L):
                dirs = [(self._weights(i), None if h0 is None else h0[i].contiguous(),
                         None if c0 is None else c0[i].contiguous(), i % D == 1)
                        for i in range(layer * D, layer * D + D)]  # fmt: skip
                if compiling:
                    inp, states = _apply_op(cell, inp, dirs, lengths, self.backend)
                else:
                    y_out = None
                    if dt is not None and (D > 1 or (held and layer < L - 1)):
                        y_out = self._outputs.get(layer, shape, dt, held, last=layer == L - 1)
                    inp, states = _layer(cell, inp, dirs, lengths, self.backend, y_out)  # both directions, one call
                for h_n, c_n in states:
                    hs.append(h_n)
                    cs.append(c_n)
                if self.dropout and self.training and layer < L - 1:
                    inp = nn.functional.dropout(inp, self.dropout, True)
        h_n = torch.stack(hs)
        state = (h_n, torch.stack(cs)) if lstm else h_n
        if packed:
            bs = input.batch_sizes
            si = input.sorted_indices if input.sorted_indices is not None else torch.arange(B)
            data = torch.cat([inp[t, si[: int(bs[t])]] for t in range(len(bs))])
            return PackedSequence(data, bs, input.sorted_indices, input.unsorted_indices), state
        out = inp.transpose(0, 1) if self.batch_first else inp
        return out, state


class RNN(_RNNBase):
    def __init__(self, *args, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"RNN_{nonlinearity.upper()}", *args, **kw)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    def __init__(self, *args, **kw):
        super().__init__("lstm", *args, **kw)


class GRU(_RNNBase):
    def __init__(self, *args, **kw):
        super().__init__("gru", *args, **kw)


class _CellBase(nn.Module):
    def __init__(self, cell, gates, input_size, hidden_size, bias=True, device=None, dtype=None, *, backend="auto"):
        super().__init__()
        _check_args(input_size, hidden_size, bias=bias)
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"device {device}: rnnkit's kernels run on the CPU")
        self.cell, self.input_size, self.hidden_size, self.bias, self.backend = cell, input_size, hidden_size, bias, backend
        kw = dict(dtype=dtype or torch.get_default_dtype())
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        k = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def forward(self, input, hx=None):
        _check_tensor("input", input)
        if input.dim() != 2:
            raise ValueError(f"input must be 2-D (B, I), got {input.dim()}-D")
        B, H = input.shape[0], self.hidden_size
        lstm = self.cell == "lstm"
        if hx is None:
            h0 = input.new_zeros(B, H)
            c0 = input.new_zeros(B, H) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        w = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        _, h_n, c_n = recurrent(self.cell, input.unsqueeze(0).contiguous(), w, h0.contiguous(),
                                None if c0 is None else c0.contiguous(), backend=self.backend)  # fmt: skip
        return (h_n, c_n) if lstm else h_n


class RNNCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", 1, input_size, hidden_size, bias, **kw)


class LSTMCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, **kw):
        super().__init__("lstm", 4, input_size, hidden_size, bias, **kw)


class GRUCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, **kw):
        super().__init__("gru", 3, input_size, hidden_size, bias, **kw)
