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

from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .. import _backends
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
    # The backend goes into the graph by its concrete name: the fake implementation's cache layout
    # depends on it, and a compiled graph cached for "auto" on an install with the C++ backend must
    # not be reused by one that resolves "auto" to numba.
    backend = _backends.resolve(backend)
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


_CELLS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
_LOW = (torch.float16, torch.bfloat16)  # computed in float32, returned in their own dtype


def _check_device(device):
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"device {device}: rnnkit's kernels run on the CPU")


def _compute_dtype(cell, x):
    """(the dtype the kernels compute in, the dtype to return): float16/bfloat16 input runs in
    float32 and comes back in its dtype; under CPU autocast to a lower dtype the LSTM returns that
    dtype, as torch.nn.LSTM does (torch's GRU and RNN stay in float32 there)."""
    if x.dtype in _LOW:
        return torch.float32, x.dtype
    if cell == "lstm" and x.dtype == torch.float32 and torch.is_autocast_enabled("cpu"):
        low = torch.get_autocast_dtype("cpu")
        if low in _LOW:
            return torch.float32, low
    return x.dtype, x.dtype


def _as(t, dtype):
    return t if t is None or t.dtype == dtype else t.to(dtype)


class _RNNBase(nn.RNNBase):
    """torch.nn.RNNBase itself (constructor, parameters, initialisation, all_weights,
    flatten_parameters, extra_repr, state_dict), with the forward running rnnkit's kernels."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, *, backend="auto"):  # fmt: skip
        _check_args(input_size, hidden_size, num_layers, dropout, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional)  # fmt: skip
        if proj_size != 0:
            if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
                raise ValueError(f"proj_size must be a non-negative int, got {proj_size!r}")
            raise NotImplementedError(f"proj_size={proj_size}: LSTM projections are not implemented in rnnkit yet "
                                      "(use torch.nn.LSTM for them)")  # fmt: skip
        _check_device(device)
        # torch warns about dropout with one layer, as it does for its own modules
        nn.RNNBase.__init__(self, mode, input_size, hidden_size, num_layers, bias, batch_first, float(dropout),
                         bidirectional, 0, device, dtype)  # fmt: skip
        self.backend = backend
        self._outputs = InnerOutputs()

    def _weights(self, i, dtype):
        w = [_as(getattr(self, n), dtype) for n in self._all_weights[i]]
        return tuple(w) if self.bias else (w[0], w[1], None, None)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.backend == "auto" else s + f", backend={self.backend!r}"

    def forward(self, input, hx=None, *, lengths=None):
        """torch.nn's forward (batched or unbatched input, a PackedSequence); also lengths=: the
        valid steps of each sequence of a padded input (a [B] int tensor or sequence), an
        alternative to a PackedSequence that torch.compile can trace (it does not trace
        pack_padded_sequence). The output is then padded, zero past each sequence's length, and
        the states are those after its last valid step."""
        cell = _CELLS[self.mode]
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
        unbatched = False
        if packed:
            x, lens = pad_packed_sequence(input, batch_first=False)
            lengths = lens.to(torch.int64) if compiling else lens.numpy().astype(np.int64)
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"input must be 3-D (batched) or 2-D (unbatched), got {input.dim()}-D")
            unbatched = input.dim() == 2
            if unbatched:  # (T, I), whatever batch_first says, as in torch.nn
                x = input.unsqueeze(1)
                if hx is not None:
                    hx = tuple(s.unsqueeze(1) for s in hx) if isinstance(hx, (tuple, list)) else hx.unsqueeze(1)
            else:
                x = input.transpose(0, 1) if self.batch_first else input
        dt, out_dt = _compute_dtype(cell, x)
        x = _as(x, dt)
        _check_tensor("input", x)
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
        h0, c0 = _as(h0, dt), _as(c0, dt)
        for name, s in (("h0", h0), ("c0", c0)):
            if s is not None and tuple(s.shape) != (L * D, B, H):
                raise ValueError(f"{name} must have shape (num_layers * num_directions, B, H) = ({L * D}, {B}, {H}), got {tuple(s.shape)}")
        inp, hs, cs = x, [], []
        # Without autograd the inner layers write into the module's kept buffers (rnnkit/_buffers.py).
        infer = not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        shape, npdt = (x.shape[0], B, D * H), _NP_DTYPES.get(x.dtype)
        with self._outputs.call(infer and L > 1 and npdt is not None and not compiling) as held:
            for layer in range(L):
                dirs = [(self._weights(i, dt), None if h0 is None else h0[i].contiguous(),
                         None if c0 is None else c0[i].contiguous(), i % D == 1)
                        for i in range(layer * D, layer * D + D)]  # fmt: skip
                if compiling:
                    inp, states = _apply_op(cell, inp, dirs, lengths, self.backend)
                else:
                    y_out = None
                    if npdt is not None and (D > 1 or (held and layer < L - 1)):
                        y_out = self._outputs.get(layer, shape, npdt, held, last=layer == L - 1)
                    inp, states = _layer(cell, inp, dirs, lengths, self.backend, y_out)  # both directions, one call
                for h_n, c_n in states:
                    hs.append(h_n)
                    cs.append(c_n)
                if self.dropout and self.training and layer < L - 1:
                    inp = nn.functional.dropout(inp, self.dropout, True)
        inp = _as(inp, out_dt)
        h_n = _as(torch.stack(hs), out_dt)
        state = (h_n, _as(torch.stack(cs), out_dt)) if lstm else h_n
        if packed:
            bs = input.batch_sizes
            si = input.sorted_indices if input.sorted_indices is not None else torch.arange(B)
            data = torch.cat([inp[t, si[: int(bs[t])]] for t in range(len(bs))])
            return PackedSequence(data, bs, input.sorted_indices, input.unsorted_indices), state
        if unbatched:
            return inp.squeeze(1), tuple(s.squeeze(1) for s in state) if lstm else state.squeeze(1)
        out = inp.transpose(0, 1) if self.batch_first else inp
        return out, state


# The modules are torch.nn.RNNBase instances but not torch.nn.RNN/LSTM/GRU ones: torch.compile
# refuses to trace any instance of those three (torch/_dynamo/variables/builder.py, "Attempted to
# wrap RNN, GRU, or LSTM") unless torch._dynamo.config.allow_rnn, a process-wide switch that also
# changes how torch's own modules compile; as instances they would lose fullgraph compilation.
class RNN(_RNNBase):
    """torch.nn.RNN running rnnkit's kernels (a torch.nn.RNNBase)."""

    def __init__(self, *args, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        _RNNBase.__init__(self, f"RNN_{nonlinearity.upper()}", *args, **kw)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """torch.nn.LSTM running rnnkit's kernels (a torch.nn.RNNBase)."""

    def __init__(self, *args, **kw):
        _RNNBase.__init__(self, "LSTM", *args, **kw)


class GRU(_RNNBase):
    """torch.nn.GRU running rnnkit's kernels (a torch.nn.RNNBase)."""

    def __init__(self, *args, **kw):
        _RNNBase.__init__(self, "GRU", *args, **kw)


class _CellBase(nn.RNNCellBase):
    """torch.nn.RNNCellBase itself (constructor, parameters, initialisation, extra_repr), with the
    forward running rnnkit's kernels; batched (B, I) or unbatched (I,) input, as torch."""

    def __init__(self, cell, gates, input_size, hidden_size, bias=True, device=None, dtype=None, *, backend="auto"):
        _check_args(input_size, hidden_size, bias=bias)
        _check_device(device)
        nn.RNNCellBase.__init__(self, input_size, hidden_size, bias, gates, device, dtype)
        self.cell, self.backend = cell, backend

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.backend == "auto" else s + f", backend={self.backend!r}"

    def forward(self, input, hx=None):
        if not isinstance(input, torch.Tensor):
            _check_tensor("input", input)  # raises, naming what it got
        if input.dim() not in (1, 2):
            raise ValueError(f"input must be 2-D (B, I) or 1-D (I,), got {input.dim()}-D")
        lstm = self.cell == "lstm"
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
            if hx is not None:
                hx = tuple(s.unsqueeze(0) for s in hx) if lstm else hx.unsqueeze(0)
        dt, out_dt = _compute_dtype(self.cell, input)
        x = _as(input, dt)
        _check_tensor("input", x)
        B, H = x.shape[0], self.hidden_size
        if hx is None:
            h0 = x.new_zeros(B, H)
            c0 = x.new_zeros(B, H) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        w = tuple(_as(t, dt) for t in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
        _, h_n, c_n = recurrent(self.cell, x.unsqueeze(0).contiguous(), w, _as(h0, dt).contiguous(),
                                None if c0 is None else _as(c0, dt).contiguous(), backend=self.backend)  # fmt: skip
        out = tuple(_as(t, out_dt) for t in ((h_n, c_n) if lstm else (h_n,)))
        if unbatched:
            out = tuple(t.squeeze(0) for t in out)
        return out if lstm else out[0]


class RNNCell(_CellBase, nn.RNNCell):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", 1, input_size, hidden_size, bias, **kw)
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase, nn.LSTMCell):
    def __init__(self, input_size, hidden_size, bias=True, **kw):
        super().__init__("lstm", 4, input_size, hidden_size, bias, **kw)


class GRUCell(_CellBase, nn.GRUCell):
    def __init__(self, input_size, hidden_size, bias=True, **kw):
        super().__init__("gru", 3, input_size, hidden_size, bias, **kw)
