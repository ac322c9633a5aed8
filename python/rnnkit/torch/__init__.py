"""PyTorch modules running rnnkit's kernels: drop-in ``torch.nn`` recurrent layers and cells.

`RNN`, `LSTM`, `GRU`, `RNNCell`, `LSTMCell` and `GRUCell` take the constructor arguments of
their ``torch.nn`` namesakes, have the same parameters, ``state_dict`` and forward signature,
and return the same outputs (a ``PackedSequence`` in gives a ``PackedSequence`` out). Their
forward also takes ``lengths=`` for a padded input. In eager mode forward and backward run
rnnkit's kernels through a ``torch.autograd.Function``; tensors and NumPy arrays share memory
both ways (no copy of the weights per call). Under ``torch.compile`` and ``torch.export`` the
same kernels run as registered operators (``torch.ops.rnnkit.layer_forward`` and
``torch.ops.rnnkit.layer_backward``), so ``torch.compile(model, fullgraph=True)`` and
``torch.export.export(model, args)`` capture models holding these modules; `export_onnx`
writes them as standard ONNX nodes. CPU tensors, and CUDA tensors in eager mode (backend
``"cuda"``: rnnkit built with its CUDA extension, and CuPy; the tensors reach the kernels through
DLPack without a copy, and the kernels run on torch's current stream). On the CPU the kernels run
on at most ``torch.get_num_threads()`` threads (``torch.set_num_threads`` governs them as it
governs ``torch.nn``), capped by `rnnkit.set_num_threads`.

Importing ``rnnkit`` never imports torch; importing ``rnnkit.torch`` needs it (the ``torch``
extra).

Examples
--------
>>> import torch
>>> from rnnkit.torch import LSTM  # instead of torch.nn.LSTM: nothing else changes
>>> lstm = LSTM(32, 64, num_layers=2, bidirectional=True, batch_first=True)
>>> x = torch.randn(8, 20, 32)  # (B, T, input_size)
>>> out, (h_n, c_n) = lstm(x)
>>> tuple(out.shape), tuple(h_n.shape)
((8, 20, 128), (4, 8, 64))
"""

# Check: tests/test_torch_modules.py (the modules), tests/test_torch_ops.py (the operators).

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union, cast, overload

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .. import _backends, _threads
from .. import functional as F
from .. import _buffers
from .._buffers import InnerOutputs, stack_states as _stack
from .._validate import _cupy, positive_int, proj_size_of
from . import _ops  # noqa: F401 - registers torch.ops.rnnkit.*
from ._ops import torch_threads as _torch_threads

_threads.use_torch_openmp()  # the kernels' threads are torch's own OpenMP threads
from ._onnx import export_onnx, onnx_translations

# A module's state: h (RNN, GRU) or (h, c) (LSTM).
_State = Union[Tensor, Tuple[Tensor, Tensor]]
# The valid steps of each sequence of a padded input.
_Lengths = Union[Tensor, Sequence[int], NDArray[Any], None]
# What torch.nn's constructors take as device=.
_Device = Union[torch.device, str, int, None]
# One direction of a layer: ((W_ih, W_hh, b_ih, b_hh), h0, c0, reverse); biases and states may be None.
_Weights = Tuple[Optional[Tensor], ...]
_Direction = Tuple[_Weights, Optional[Tensor], Optional[Tensor], bool]
_P = TypeVar("_P", bound="_Packable")
# y, and (h_n, c_n) per direction (c_n None but for the LSTM).
_LayerOut = Tuple[Tensor, List[Tuple[Tensor, Optional[Tensor]]]]


def _check_args(input_size: Any, hidden_size: Any, num_layers: Any = 1, dropout: Any = 0.0, **flags: Any) -> None:
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


# The devices whose tensors the kernels take: the CPU (backends cpp, numba, numpy) and CUDA GPUs
# (backend cuda).
_DEVICES = ("cpu", "cuda")


@overload
def _np(t: Tensor) -> Any: ...
@overload
def _np(t: None) -> None: ...
def _np(t: Optional[Tensor]) -> Any:
    """The array the kernels take for a tensor, sharing its memory: a NumPy view of a CPU tensor,
    a CuPy view (DLPack) of a CUDA tensor."""
    if t is None:
        return None
    t = t.detach()
    return t.numpy() if t.device.type == "cpu" else _cupy(f"a tensor on {t.device}").from_dlpack(t)


def _tensor(a: Any) -> Tensor:
    """The tensor of a kernel's result, sharing its memory (NumPy: CPU; CuPy: through DLPack)."""
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.utils.dlpack.from_dlpack(a)


@contextlib.contextmanager
def _on_device(t: Tensor) -> Iterator[None]:
    """Around a call with t's device: for a CUDA tensor, CuPy on that device with torch's current
    stream there as its current stream, so the kernels queue behind torch's work and torch's
    next work queues behind them, without a synchronisation."""
    if t.device.type != "cuda":
        yield
        return
    cp = _cupy(f"a tensor on {t.device}")
    with cp.cuda.Device(t.device.index):
        with _cupy_stream(cp, torch.cuda.current_stream(t.device).cuda_stream, t.device.index):
            yield


class _StreamHandle:
    """A raw stream address in the CUDA stream protocol (what CuPy's Stream.from_external reads)."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __cuda_stream__(self) -> Tuple[int, int]:
        return (0, self.ptr)


def _cupy_stream(cp: Any, ptr: int, device: Optional[int]) -> Any:
    """torch's stream `ptr` as a CuPy stream (CuPy 14: Stream.from_external; before: ExternalStream,
    deprecated since)."""
    from_external = getattr(cp.cuda.Stream, "from_external", None)
    if from_external is not None:
        return from_external(_StreamHandle(ptr))
    return cp.cuda.ExternalStream(ptr, -1 if device is None else device)


def _check_tensor(name: str, t: object) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        hint = " (rnnkit.RNN/LSTM/GRU are the NumPy layers)" if isinstance(t, np.ndarray) else ""
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}{hint}")
    if t.device.type not in _DEVICES:
        raise ValueError(f"{name} is on device {t.device}; rnnkit's kernels run on the CPU and on CUDA GPUs "
                         "(move it with .cpu())")  # fmt: skip
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")


class _Recurrent(torch.autograd.Function):
    """One layer, its D directions in one call (side by side on the C++ backend where a step is
    too small to split): (x, then per direction W_ih, W_hh, b_ih, b_hh, h0, c0, W_hr) -> (y [T, B, D*H],
    then per direction h_n, c_n); W_hr is None except for an LSTM with projections (y and h are
    then S = W_hr.shape[0] wide)."""

    @staticmethod
    def forward(ctx: Any, cell: str, backend: str, reverses: Tuple[bool, ...], lengths: Any, training: bool,
                y_out: Optional[NDArray[Any]], x: Tensor, *flat: Optional[Tensor]) -> Tuple[Tensor, ...]:  # fmt: skip
        with _on_device(x):  # (with a ctx every output is a tensor)
            return cast(Tuple[Tensor, ...], _Recurrent._forward(ctx, cell, backend, reverses, lengths, training,
                                                                y_out, x, *flat))  # fmt: skip

    @staticmethod
    def _forward(ctx: Any, cell: str, backend: str, reverses: Tuple[bool, ...], lengths: Any, training: bool,
                 y_out: Optional[NDArray[Any]], x: Tensor, *flat: Optional[Tensor],
                 packs: Optional[Sequence[Any]] = None) -> Tuple[Optional[Tensor], ...]:  # fmt: skip
        """The call itself; ctx None: outside autograd (nothing to differentiate, see _apply), and a
        cell without c returns None for it instead of the empty tensor a Function must return.
        packs: per direction, its weights as functional.PackedWeights (a packed copy's), or None."""
        lstm = cell == "lstm"
        calls: List[dict[str, Any]] = []
        for d, reverse in enumerate(reverses):
            w_ih, w_hh, b_ih, b_hh, h0, c0, w_hr = flat[7 * d : 7 * d + 7]
            weights = packs[d] if packs is not None else (
                (_np(w_ih), _np(w_hh), _np(b_ih), _np(b_hh)) + (() if w_hr is None else (_np(w_hr),)))  # fmt: skip
            calls.append(dict(cell=cell, x=_np(x), weights=weights,
                              state=(_np(h0), _np(c0)) if lstm else _np(h0), lengths=lengths,
                              reverse=reverse, training=training))  # fmt: skip
        # y of every direction side by side, [T, B, D*H], written there by the kernels (a torch.cat
        # here woke torch's OpenMP threads, which then spin for milliseconds on the cores rnnkit's
        # next call needs: a bidirectional layer took 19 ms instead of 11).
        y_t: Optional[Tensor] = None  # y_out as a tensor, for a CUDA x (the module buffers are CPU ones)
        if y_out is None and len(calls) > 1 and x.dim() == 3:
            shape = (x.shape[0], x.shape[1], len(calls) * cast(Tensor, flat[1]).shape[1])
            if x.device.type == "cpu":
                y_out = np.empty(shape, calls[0]["x"].dtype)
            else:
                y_t = torch.empty(shape, dtype=x.dtype, device=x.device)
                y_out = _np(y_t)
        with _torch_threads():
            runs = F._forward_group(calls, backend, y_out=y_out)
        ys = [y for y, _, _ in runs]
        if ctx is not None:
            ctx.fctxs = [fctx for _, _, fctx in runs]
            ctx.lstm = lstm
            # The inputs go through autograd's own saving, which is what makes torch's rules hold:
            # an in-place change before backward, or a second backward without retain_graph, raises
            # (the kernels' cache holds views of these same tensors' memory).
            ctx.save_for_backward(x, *flat)
            ctx.H = ys[0].shape[2]
        out: List[Optional[Tensor]] = [y_t if y_t is not None else _tensor(ys[0] if y_out is None else y_out)]
        for _, sn, _ in runs:
            h_n, c_n = sn if lstm else (sn, None)
            out += [_tensor(h_n), _tensor(c_n) if c_n is not None else (x.new_zeros(0) if ctx is not None else None)]
        return tuple(out)

    @staticmethod
    @once_differentiable  # no second derivatives: create_graph=True then a loss on them raises
    def backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        x = ctx.saved_tensors[0]  # also checks the version counters and the retain_graph rule
        with _on_device(x):
            return _Recurrent._backward(ctx, *grads)

    @staticmethod
    def _backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        def arr(t: Optional[Tensor]) -> Any:
            return None if t is None else _np(t.contiguous())

        items: List[Tuple[Any, Any, Any]] = []
        dy, H = cast(Tensor, grads[0]).detach(), ctx.H
        for d, fctx in enumerate(ctx.fctxs):
            dh_n, dc_n = grads[1 + 2 * d : 3 + 2 * d]
            # (on the CPU as it is: the C++ backend reads a direction's columns in place)
            dyd = _np(dy if dy.device.type == "cpu" else dy.contiguous())[..., d * H : (d + 1) * H]
            items.append((fctx, dyd, (arr(dh_n), arr(dc_n)) if ctx.lstm else arr(dh_n)))
        flat: List[Optional[Tensor]] = []
        with _torch_threads():
            outs = F._backward_group(items, input_grad=ctx.needs_input_grad[6])
        dx = F._summed_dx(outs)
        for _, ds0, dw in outs:
            dh0, dc0 = ds0 if ctx.lstm else (ds0, None)
            dW_hr = dw[4] if len(dw) > 4 else None
            flat += [None if a is None else _tensor(a) for a in (*dw[:4], dh0, dc0, dW_hr)]
        return (None, None, None, None, None, None, None if dx is None else _tensor(dx), *flat)


def _apply(cell: str, x: Tensor, directions: Sequence[_Direction], lengths: Any = None, backend: str = "auto",
           y_out: Optional[NDArray[Any]] = None, packs: Optional[Sequence[Any]] = None) -> _LayerOut:  # fmt: skip
    """directions: (weights, h0, c0, reverse) each, weights (W_ih, W_hh, b_ih, b_hh[, W_hr]);
    returns y [T, B, D*H] and [(h_n, c_n)] per direction. y_out: an array to write y into
    (rnnkit/_buffers.py), or None. packs: the directions' weights packed (a packed copy's, equal
    to the tensors), used when there is nothing to differentiate."""
    _check_tensor("x", x)
    flat: List[Optional[Tensor]] = []
    for weights, h0, c0, _ in directions:
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), weights):
            if w is not None:
                _check_tensor(name, w)
        flat += [*weights[:4], h0, c0, weights[4] if len(weights) > 4 else None]
    # Keep per-step activations only when autograd will ask for them (not under no_grad/inference).
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *flat))
    reverses = tuple(bool(r) for *_, r in directions)
    if training:
        # torch's stubs leave Function.apply unannotated
        y, *states = _Recurrent.apply(cell, backend, reverses, lengths, training, y_out, x, *flat)  # type: ignore[no-untyped-call]
    else:  # nothing to differentiate: the call without autograd's Function machinery (~25 us a call)
        with _on_device(x):
            y, *states = _Recurrent._forward(None, cell, backend, reverses, lengths, False, y_out, x, *flat,
                                             packs=packs)  # fmt: skip
    lstm = cell == "lstm"
    return cast(Tensor, y), [(cast(Tensor, states[2 * d]), states[2 * d + 1] if lstm else None)
                             for d in range(len(directions))]  # fmt: skip


def _compiling() -> bool:
    """Whether torch.compile or torch.export is tracing: then the layers run as the registered
    operators of rnnkit/torch/_ops.py, which a graph can hold; in eager mode as _Recurrent (the
    same kernels, and buffers kept between calls, which an operator may not return)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _apply_op(cell: str, x: Tensor, directions: Sequence[_Direction], lengths: Optional[Tensor] = None,
              backend: str = "auto") -> _LayerOut:  # fmt: skip
    """_apply through torch.ops.rnnkit.layer_forward; lengths: an int64 tensor or None."""
    _check_tensor("x", x)
    if x.device.type != "cpu":
        raise NotImplementedError(f"torch.compile / torch.export of rnnkit's modules take CPU tensors; x is on "
                                  f"{x.device} (CUDA tensors run in eager mode)")  # fmt: skip
    params: List[Optional[Tensor]] = []
    h0: List[Tensor] = []
    c0: List[Tensor] = []
    bias = directions[0][0][2] is not None
    for weights, h, c, _ in directions:
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), weights):
            if w is not None:
                _check_tensor(name, w)
        params += list(weights[:4] if bias else weights[:2])
        if len(weights) > 4 and weights[4] is not None:
            params.append(weights[4])  # an LSTM with projections: W_hr last
        if h is not None:
            h0.append(h)
        if c is not None:
            c0.append(c)
    # (params holds no None here: all four of a direction are given when bias, else the first two)
    training = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *cast(List[Tensor], params), *h0, *c0))
    reverses = [bool(r) for *_, r in directions]
    # The backend goes into the graph by its concrete name: the fake implementation's cache layout
    # depends on it, and a compiled graph cached for "auto" on an install with the C++ backend must
    # not be reused by one that resolves "auto" to numba.
    backend = _backends.resolve(backend)
    y, h_n, c_n, _ = torch.ops.rnnkit.layer_forward(cell, backend, x, params, h0, c0, lengths, reverses, bias,
                                                    training)  # fmt: skip
    return y, [(h_n[d], c_n[d] if cell == "lstm" else None) for d in range(len(directions))]


def _lengths_tensor(lengths: _Lengths) -> Optional[Tensor]:
    return None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)


def recurrent(cell: str, x: Tensor, weights: Sequence[Optional[Tensor]], h0: Optional[Tensor],
              c0: Optional[Tensor] = None, lengths: _Lengths = None, reverse: bool = False,
              backend: str = "auto") -> Tuple[Tensor, Tensor, Optional[Tensor]]:  # fmt: skip
    """Run one layer in one direction, differentiably: the function behind the modules.

    A differentiable single-layer, single-direction call of rnnkit's kernels on torch tensors
    (through autograd in eager mode, as a registered operator under ``torch.compile`` and
    ``torch.export``). Tensors of float32 or float64, all of the same dtype, all on the CPU, or in
    eager mode all on one CUDA GPU (backend ``"cuda"``).

    Parameters
    ----------
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}
        The recurrence.
    x : torch.Tensor
        The input sequence, of shape (T, B, input_size).
    weights : sequence of torch.Tensor
        ``(weight_ih, weight_hh, bias_ih, bias_hh)`` in ``torch.nn``'s layout: shapes
        (G * H, input_size), (G * H, H), (G * H,) and (G * H,), where H is the hidden size and
        G = 1 (RNN), 4 (LSTM, gates i, f, g, o) or 3 (GRU, gates r, z, n). Both biases may be
        None (no bias).
    h0 : torch.Tensor or None
        The initial hidden state, of shape (B, H); None for zeros.
    c0 : torch.Tensor, optional
        The initial cell state of the LSTM, of shape (B, H); None for zeros (and for the other
        cells).
    lengths : torch.Tensor or sequence of int, optional
        The valid steps of each sequence of a padded ``x``, shape (B,). The output is then zero
        past each sequence's length and the states are those after its last valid step.
    reverse : bool, default False
        Run from the last step to the first (the backward direction of a bidirectional layer).
    backend : str, default "auto"
        The rnnkit backend to run (``"auto"`` picks the fastest usable one).

    Returns
    -------
    y : torch.Tensor
        The hidden state at every step, of shape (T, B, H).
    h_n : torch.Tensor
        The final hidden state, of shape (B, H).
    c_n : torch.Tensor or None
        The final cell state of the LSTM, of shape (B, H); None for the other cells.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import recurrent
    >>> T, B, I, H = 5, 2, 3, 4
    >>> w = (torch.randn(3 * H, I), torch.randn(3 * H, H), torch.zeros(3 * H), torch.zeros(3 * H))
    >>> y, h_n, c_n = recurrent("gru", torch.randn(T, B, I), w, torch.zeros(B, H))
    >>> tuple(y.shape), tuple(h_n.shape), c_n is None
    ((5, 2, 4), (2, 4), True)
    """
    if _compiling():
        y, [(h_n, c_n)] = _apply_op(cell, x, [(tuple(weights), h0, c0, reverse)], _lengths_tensor(lengths), backend)
        return y, h_n, c_n
    return _recurrent_eager(cell, x, weights, h0, c0, lengths, reverse, backend)


def _recurrent_eager(cell: str, x: Tensor, weights: Sequence[Optional[Tensor]], h0: Optional[Tensor],
                     c0: Optional[Tensor], lengths: _Lengths, reverse: bool, backend: str,
                     pack: Any = None) -> Tuple[Tensor, Tensor, Optional[Tensor]]:  # fmt: skip
    y, [(h_n, c_n)] = _apply(cell, x, [(tuple(weights), h0, c0, reverse)], lengths, backend,
                             packs=None if pack is None else [pack])  # fmt: skip
    return y, h_n, c_n


def _layer(cell: str, x: Tensor, directions: Sequence[_Direction], lengths: Any, backend: str,
           y_out: Optional[NDArray[Any]] = None, packs: Optional[Sequence[Any]] = None) -> _LayerOut:  # fmt: skip
    return _apply(cell, x, directions, lengths, backend, y_out, packs)


def _state_parts(hx: Any, lstm: bool) -> Optional[Tuple[Any, ...]]:
    """The short paths' state as a tuple of its parts: () for None, (h,), or (h, c) for an LSTM's
    tuple or list of two; None for anything else (the general path then explains it)."""
    if hx is None:
        return ()
    if not lstm:
        return (hx,)
    return tuple(hx) if type(hx) in (tuple, list) and len(hx) == 2 else None


class _Packs:
    """A packed copy's packs: (parameter index, dtype) -> (the parameters' stamp, PackedWeights).
    Not copied or pickled with the module (a copy packs afresh)."""

    def __init__(self) -> None:
        self.packs: dict[Any, Tuple[Any, Any]] = {}

    def get(self, index: int, cell: str, dt: torch.dtype, own: Sequence[Optional[Tensor]],
            weights: Sequence[Optional[Tensor]]) -> Any:  # fmt: skip
        """weights (CPU tensors of dtype dt, made from the parameters own) as PackedWeights: the
        pack kept for (index, dt) while own's stamp (each one's data_ptr and version) holds."""
        stamp = tuple(None if w is None else (w.data_ptr(), w._version) for w in own)
        hit = self.packs.get((index, dt))
        if hit is None or hit[0] != stamp:
            hit = self.packs[(index, dt)] = (stamp, F.pack(cell, tuple(_np(w) for w in weights)))
        return hit[1]

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class _Packable(nn.Module):
    """packed() for the modules and cells: an inference copy whose weights are packed once."""

    _packs: Optional[_Packs] = None

    def packed(self: _P) -> _P:
        """An inference copy of this module whose weights are packed once.

        Every call of the C++ backend otherwise packs the weights into the panels its products
        read (see `rnnkit.functional.pack`), a part of every small call of several steps (a
        single step with a batch of at most 4 reads the weights as they are either way). The
        copy is in eval mode, its parameters are copies that do not require grad (this module's later changes do not reach it: pack again after
        training), and ``train(True)`` on it raises. Its packs are made at its first call of each
        layer and dtype and made again when its own parameters change in place (their version
        counter; a write through ``.data`` is not seen). A call with an input that requires grad
        runs the plain path (gradients reach the input only). Results are bitwise those of this
        module in eval mode.

        Returns
        -------
        module
            A module of the same class and settings.

        Examples
        --------
        >>> import torch
        >>> from rnnkit.torch import LSTM
        >>> fast = LSTM(8, 16).packed()
        >>> out, (h_n, c_n) = fast(torch.zeros(5, 1, 8))
        >>> fast.training, fast.weight_hh_l0.requires_grad
        (False, False)
        """
        clone = copy.deepcopy(self)
        clone.train(False)
        clone.requires_grad_(False)
        clone._packs = _Packs()
        return clone

    def train(self: _P, mode: bool = True) -> _P:
        if mode and self._packs is not None:
            raise RuntimeError(f"this {type(self).__name__} is a packed inference copy (packed()): it cannot "
                               "train; train the module it was made from and pack it again")  # fmt: skip
        return super().train(mode)

    def _pack_for(self, index: int, cell: str, dt: torch.dtype, own: Sequence[Optional[Tensor]],
                  weights: Sequence[Optional[Tensor]]) -> Any:  # fmt: skip
        """weights (own: the parameters they were made from) as PackedWeights in a packed copy,
        on the CPU and outside torch.compile; else None."""
        if self._packs is None or _compiling() or any(w is not None and w.device.type != "cpu" for w in weights):
            return None
        return self._packs.get(index, cell, dt, own, weights)


_CELLS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
_LOW = (torch.float16, torch.bfloat16)  # computed in float32, returned in their own dtype


def _check_device(device: _Device) -> None:
    if device is not None and torch.device(device).type not in _DEVICES:
        raise ValueError(f"device {device}: rnnkit's kernels run on the CPU and on CUDA GPUs")


def _compute_dtype(cell: str, x: Tensor) -> Tuple[torch.dtype, torch.dtype]:
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


@overload
def _as(t: Tensor, dtype: torch.dtype) -> Tensor: ...
@overload
def _as(t: None, dtype: torch.dtype) -> None: ...
@overload
def _as(t: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]: ...
def _as(t: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    return t if t is None or t.dtype == dtype else t.to(dtype)


class _RNNBase(_Packable, nn.RNNBase):
    """torch.nn.RNNBase itself (constructor, parameters, initialisation, all_weights,
    flatten_parameters, extra_repr, state_dict), with the forward running rnnkit's kernels."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        _check_args(input_size, hidden_size, num_layers, dropout, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional)  # fmt: skip
        proj_size = proj_size_of(proj_size, hidden_size)
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        _check_device(device)
        # torch warns about dropout with one layer, as it does for its own modules
        nn.RNNBase.__init__(self, mode, input_size, hidden_size, num_layers, bias, batch_first, float(dropout),
                         bidirectional, proj_size, device, dtype)  # fmt: skip
        self.backend = backend
        self._outputs = InnerOutputs()

    def _weights(self, i: int, dtype: torch.dtype) -> _Weights:
        w = [_as(getattr(self, n), dtype) for n in self._all_weights[i]]  # (W_hr last, with projections)
        return tuple(w) if self.bias else (w[0], w[1], None, None, *w[2:])

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.backend == "auto" else s + f", backend={self.backend!r}"

    # The public classes' forward (each with its own signature and documentation) calls this one.
    def _forward(self, input: Union[Tensor, PackedSequence], hx: Any,
                 lengths: _Lengths) -> Tuple[Union[Tensor, PackedSequence], _State]:  # fmt: skip
        """torch.nn's forward (batched or unbatched input, a PackedSequence); also lengths=: the
        valid steps of each sequence of a padded input (a [B] int tensor or sequence), an
        alternative to a PackedSequence that torch.compile can trace (it does not trace
        pack_padded_sequence). The output is then padded, zero past each sequence's length, and
        the states are those after its last valid step. hx: a tensor, or a tuple or list of two
        (the LSTM)."""
        cell = _CELLS[self.mode]
        if lengths is None:
            short = self._short_call(cell, input, hx)
            if short is not None:
                return short
        if not isinstance(input, (PackedSequence, torch.Tensor)):
            raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}")
        compiling = _compiling()
        lens: Any = None  # as the kernels take them: an int64 tensor when compiling, else an array
        if lengths is not None:
            if isinstance(input, PackedSequence):
                raise ValueError("lengths is for a padded input; a PackedSequence carries its own")
            if compiling:
                lens = _lengths_tensor(lengths)
            else:
                lens = lengths.cpu().numpy() if isinstance(lengths, torch.Tensor) else np.asarray(lengths)
        unbatched = False
        if isinstance(input, PackedSequence):
            x, packed_lens = pad_packed_sequence(input, batch_first=False)
            lens = packed_lens.to(torch.int64) if compiling else packed_lens.numpy().astype(np.int64)
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
        S = self.proj_size or H  # the width of h and of each direction's output
        lstm = cell == "lstm"
        h0: Optional[Tensor]
        c0: Optional[Tensor]
        # Without autograd the inner layers write into the module's kept buffers (rnnkit/_buffers.py),
        # and a missing state stays None (the kernels start from zeros; no zeros tensor per call).
        infer = not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if hx is None and (compiling or infer):  # the operator / the kernels start from zeros
            h0 = c0 = None
        elif hx is None:
            zeros = x.new_zeros(L * D, B, H)
            h0, c0 = (zeros if S == H else x.new_zeros(L * D, B, S)), (zeros if lstm else None)
        elif lstm:
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        h0, c0 = _as(h0, dt), _as(c0, dt)
        for name, s, w in (("h0", h0, S), ("c0", c0, H)):
            if s is not None and tuple(s.shape) != (L * D, B, w):
                letter = "H" if w == H else "proj_size"
                raise ValueError(f"{name} must have shape (num_layers * num_directions, B, {letter}) = ({L * D}, {B}, {w}), got {tuple(s.shape)}")
        inp = x
        hs: List[Tensor] = []
        cs: List[Tensor] = []
        # (the buffers are NumPy arrays: CPU tensors only)
        shape, npdt = (x.shape[0], B, D * S), _NP_DTYPES.get(x.dtype) if x.device.type == "cpu" else None
        with self._outputs.call(infer and L > 1 and npdt is not None and not compiling) as held:
            for layer in range(L):
                dirs = [(self._weights(i, dt), None if h0 is None else h0[i].contiguous(),
                         None if c0 is None else c0[i].contiguous(), i % D == 1)
                        for i in range(layer * D, layer * D + D)]  # fmt: skip
                if compiling:
                    inp, states = _apply_op(cell, inp, dirs, lens, self.backend)
                else:
                    y_out = None
                    if npdt is not None and (D > 1 or (held and layer < L - 1)):
                        y_out = self._outputs.get(layer, shape, npdt, held, last=layer == L - 1)
                    packs = None  # a packed copy's, when there is nothing to differentiate
                    if infer and self._packs is not None:
                        packs = [self._pack_for(i, cell, dt, [getattr(self, n) for n in self._all_weights[i]], d[0])
                                 for i, d in zip(range(layer * D, layer * D + D), dirs)]  # fmt: skip
                    inp, states = _layer(cell, inp, dirs, lens, self.backend, y_out,  # both directions, one call
                                         None if packs is None or packs[0] is None else packs)  # fmt: skip
                for h_n, c_n in states:
                    hs.append(h_n)
                    if c_n is not None:
                        cs.append(c_n)
                if self.dropout and self.training and layer < L - 1:
                    inp = nn.functional.dropout(inp, self.dropout, True)
        inp = _as(inp, out_dt)
        def stack(ts: List[Tensor]) -> Tensor:
            return ts[0].unsqueeze(0) if len(ts) == 1 else torch.stack(ts)

        h_n = _as(stack(hs), out_dt)
        state: _State = (h_n, _as(stack(cs), out_dt)) if lstm else h_n
        if isinstance(input, PackedSequence):
            bs = input.batch_sizes
            si = input.sorted_indices if input.sorted_indices is not None else torch.arange(B, device=inp.device)
            data = torch.cat([inp[t, si[: int(bs[t])]] for t in range(len(bs))])
            return PackedSequence(data, bs, input.sorted_indices, input.unsorted_indices), state
        if unbatched:
            return inp.squeeze(1), (state[0].squeeze(1), state[1].squeeze(1)) if isinstance(state, tuple) else state.squeeze(1)
        out = inp.transpose(0, 1) if self.batch_first else inp
        return out, state

    def _short_call(self, cell: str, input: Any, hx: Any) -> Optional[Tuple[Tensor, _State]]:
        """The common call in short: a dense CPU input tensor of the parameters' float dtype, no
        dropout to apply, no autocast, outside torch.compile. Without anything to differentiate,
        each layer's directions go straight to functional's group call on NumPy views (the packed
        copy's packs, the inner layers' kept buffers, as below); with something to differentiate,
        the whole module (every layer and direction) is one autograd Function, _ModuleCall,
        instead of one per layer with its tensor conversions, copies and zero states. None
        otherwise: the general path then runs, with the same kernels and results (and raises,
        naming what is wrong)."""
        params = self._parameters  # (nn.Module's attribute lookup costs ~1 us a name)
        names = self._all_weights
        first = params.get(names[0][0])
        if first is None:  # (a parametrized weight, torch.nn.utils.parametrize: the general path)
            return None
        dt = first.dtype
        if (type(input) is not Tensor or not input.is_cpu or input.dtype != dt or dt not in _DTYPES
                or _compiling()):  # fmt: skip
            return None
        nd = input.dim()
        L, D, H = self.num_layers, 2 if self.bidirectional else 1, self.hidden_size
        S = self.proj_size or H
        lstm = cell == "lstm"
        if (nd not in (2, 3) or (self.dropout and self.training and L > 1)
                or (lstm and dt == torch.float32 and torch.is_autocast_enabled("cpu"))):  # fmt: skip
            return None
        grad = torch.is_grad_enabled()
        train = grad and input.requires_grad
        own = cast(List[List[Tensor]], [[params.get(n) for n in ns] for ns in names])  # (checked below)
        for ws in own:
            for w in ws:
                if w is None or not w.is_cpu or w.dtype != dt:
                    return None
                train = train or (grad and w.requires_grad)
        parts = _state_parts(hx, lstm)
        if parts is None:
            return None
        B = (input.shape[0] if self.batch_first else input.shape[1]) if nd == 3 else 1
        for t, width in zip(parts, (S, H)):
            if (type(t) is not Tensor or not t.is_cpu or t.dtype != dt
                    or t.shape != ((L * D, B, width) if nd == 3 else (L * D, width))):  # fmt: skip
                return None
            train = train or (grad and t.requires_grad)
        layout = _Layout(cell, self.backend, L, D, S, self.bias, self.batch_first, nd)
        if train:
            outs = _ModuleCall.apply(layout, len(parts), input, *parts, *(w for ws in own for w in ws))  # type: ignore[no-untyped-call]
            return outs[0], ((outs[1], outs[2]) if lstm else outs[1])
        x = layout.inner(input.detach().numpy())
        packs = self._packs

        def weights(i: int) -> Any:  # laid out as _weights does: the biases None without bias, W_hr last
            full = layout.full(own[i])
            if packs is not None:  # (_pack_for's stamp)
                return packs.get(i, cell, dt, own[i], full)
            return tuple(None if w is None else w.detach().numpy() for w in full)

        with self._outputs.call(L > 1) as held:
            def y_out(layer: int) -> Optional[NDArray[Any]]:  # the kept buffers (rnnkit/_buffers.py)
                if D > 1 or (held and layer < L - 1):
                    return self._outputs.get(layer, layout.y_shape(x), x.dtype, held, last=layer == L - 1)
                return None

            y, hs, cs, _ = layout.run(x, weights, [layout.inner(t.detach().numpy(), state=True) for t in parts],
                                      False, y_out)  # fmt: skip
        return layout.outputs(y, hs, cs)


class _Layout(NamedTuple):
    """How a module's short call lays out its arrays: the NumPy views in the kernels' layout
    ([T, B, I] inputs, [L * D, B, S] states) of the module's (batch_first, unbatched) tensors,
    and back; the (layer, direction) calls' weights and states."""

    cell: str
    backend: str
    L: int
    D: int
    S: int
    bias: bool
    batch_first: bool
    nd: int

    def inner(self, a: NDArray[Any], state: bool = False) -> NDArray[Any]:
        """A sequence [T, B, I] (or a state [L * D, B, S]) in the kernels' layout, a view of a, the
        module's (unbatched (T, I), or batch_first [B, T, I]) layout."""
        if self.nd == 2:
            return a[:, None]
        return a.transpose(1, 0, 2) if self.batch_first and not state else a

    def outer(self, a: NDArray[Any], state: bool = False) -> NDArray[Any]:
        """inner's inverse."""
        if self.nd == 2:
            return a[:, 0]
        return a.transpose(1, 0, 2) if self.batch_first and not state else a

    def full(self, ws: Sequence[Any]) -> Tuple[Any, ...]:
        """A direction's parameters (W_ih, W_hh[, b_ih, b_hh][, W_hr]) as the kernels take them:
        the biases None without bias, W_hr last."""
        return tuple(ws) if self.bias else (ws[0], ws[1], None, None, *ws[2:])

    def state(self, states: Sequence[Any], i: int) -> Any:
        """The (layer, direction) call i's initial state: None, h, or (h, c) for an LSTM."""
        if not states:
            return None
        return (states[0][i], states[1][i]) if self.cell == "lstm" else states[0][i]

    def y_shape(self, x: NDArray[Any]) -> Tuple[int, int, int]:
        return (x.shape[0], x.shape[1], self.D * self.S)

    def run(self, x: NDArray[Any], weights: Callable[[int], Any], states: Sequence[Any], training: bool,
            y_out: Callable[[int], Optional[NDArray[Any]]]) -> Tuple[Any, List[Any], List[Any], List[List[Any]]]:  # fmt: skip
        """Every layer, its directions in one group call: weights(i) and states give call i's
        weights and initial state, y_out(layer) the array to write that layer's y into (or None).
        Returns the last layer's y, the calls' final h and c (c: the LSTM's), and per layer its
        calls' contexts (training)."""
        hs: List[Any] = []
        cs: List[Any] = []
        ctxs: List[List[Any]] = []
        inp, D = x, self.D
        with _torch_threads():
            for layer in range(self.L):
                calls = [dict(cell=self.cell, x=inp, weights=weights(i), state=self.state(states, i),
                              reverse=i % D == 1, training=training)
                         for i in range(layer * D, layer * D + D)]  # fmt: skip
                out = y_out(layer)
                runs = F._forward_group(calls, self.backend, y_out=out)
                inp = runs[0][0] if out is None else out
                ctxs.append([fctx for _, _, fctx in runs])
                for _, sn, _ in runs:
                    if self.cell == "lstm":
                        hs.append(sn[0])
                        cs.append(sn[1])
                    else:
                        hs.append(sn)
        return inp, hs, cs, ctxs

    def outputs(self, y: NDArray[Any], hs: List[Any], cs: List[Any]) -> Tuple[Tensor, _State]:
        """The module's (output, state) tensors of the last layer's y and the calls' final states."""
        lstm = self.cell == "lstm"
        out = torch.from_numpy(self.outer(y))
        st = [torch.from_numpy(self.outer(_stack(a), state=True)) for a in ((hs, cs) if lstm else (hs,))]
        return out, ((st[0], st[1]) if lstm else st[0])


class _ModuleCall(torch.autograd.Function):
    """A whole module's differentiable call (every layer and direction, no dropout) as one
    Function over NumPy views: (layout, n_state, input, the state's parts, every direction's
    parameters) -> (output, h_n[, c_n]); n_state: how many of the inputs after `input` are the
    state's parts (0 for none: the kernels start from zeros). The same kernel calls as the general
    path's per-layer _Recurrent, in the same order, so bitwise the same results."""

    @staticmethod
    def forward(ctx: Any, layout: _Layout, n_state: int, input: Tensor, *rest: Tensor) -> Tuple[Tensor, ...]:
        parts, params = rest[:n_state], rest[n_state:]
        k = len(params) // (layout.L * layout.D)
        x = layout.inner(input.detach().numpy())
        arrs = [p.detach().numpy() for p in params]
        y, hs, cs, fctxs = layout.run(
            x, lambda i: layout.full(arrs[i * k : i * k + k]),
            [layout.inner(t.detach().numpy(), state=True) for t in parts], True,
            lambda layer: _buffers.empty(layout.y_shape(x), x.dtype) if layout.D > 1 else None)  # fmt: skip
        out, state = layout.outputs(y, hs, cs)
        ctx.layout, ctx.fctxs, ctx.k, ctx.n_state = layout, fctxs, k, n_state
        ctx.set_materialize_grads(False)
        # Through autograd's own saving, so torch's rules hold: an in-place change before backward,
        # or a second backward without retain_graph, raises (the kernels' caches hold views).
        ctx.save_for_backward(input, *rest)
        return (out, *state) if isinstance(state, tuple) else (out, state)

    @staticmethod
    @once_differentiable  # no second derivatives: create_graph=True then a loss on them raises
    def backward(ctx: Any, dy: Optional[Tensor], *dstate: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        saved = ctx.saved_tensors  # also checks the version counters and the retain_graph rule
        layout: _Layout = ctx.layout
        lstm, L, D, S, k = layout.cell == "lstm", layout.L, layout.D, layout.S, ctx.k
        params = saved[1 + ctx.n_state :]
        g: Any = None
        if dy is not None:
            g = layout.inner(dy.detach().numpy())
        dn = [None if t is None else layout.inner(t.detach().numpy(), state=True) for t in dstate]
        dparams: List[Optional[Tensor]] = [None] * len(params)
        d0: List[List[Any]] = [[None] * (L * D) for _ in dstate]
        with _torch_threads():
            for layer in reversed(range(L)):
                fctxs = ctx.fctxs[layer]
                if g is None:
                    g = np.zeros(layout.y_shape(fctxs[0].problem.x), fctxs[0].problem.dtype)
                items = []
                for d, fctx in enumerate(fctxs):
                    i = layer * D + d
                    parts = [None if a is None else a[i] for a in dn]
                    dsn = tuple(parts) if lstm else parts[0]
                    items.append((fctx, g[..., d * S : (d + 1) * S] if D > 1 else g, dsn))
                # (the first layer's dx only if the input needs it: a third of its products)
                need_dx = layer > 0 or ctx.needs_input_grad[2]
                outs = F._backward_group(items, input_grad=need_dx)
                g = F._summed_dx(outs)
                for d, (_, ds0, dw) in enumerate(outs):
                    i = layer * D + d
                    for j, a in enumerate((ds0[0], ds0[1]) if lstm else (ds0,)):
                        d0[j][i] = a
                    ours = (dw[:4] if layout.bias else dw[:2]) + tuple(dw[4:5])
                    for j, a in enumerate(ours):
                        dparams[i * k + j] = torch.from_numpy(a)
        dx = torch.from_numpy(layout.outer(g)) if ctx.needs_input_grad[2] else None
        dstates = [torch.from_numpy(layout.outer(np.stack(d0[j]), state=True))
                   if ctx.needs_input_grad[3 + j] else None for j in range(ctx.n_state)]  # fmt: skip
        return (None, None, dx, *dstates, *dparams)


# The modules are torch.nn.RNNBase instances but not torch.nn.RNN/LSTM/GRU ones: torch.compile
# refuses to trace any instance of those three (torch/_dynamo/variables/builder.py, "Attempted to
# wrap RNN, GRU, or LSTM") unless torch._dynamo.config.allow_rnn, a process-wide switch that also
# changes how torch's own modules compile; as instances they would lose fullgraph compilation.
class RNN(_RNNBase):
    """A multi-layer Elman RNN (tanh or ReLU) running rnnkit's kernels: a drop-in ``torch.nn.RNN``.

    The constructor, parameters (``weight_ih_l0``, ``weight_hh_l0``, ...), initialisation,
    ``state_dict`` and forward of ``torch.nn.RNN``. The module is a ``torch.nn.RNNBase`` but
    not a ``torch.nn.RNN`` instance (``torch.compile`` refuses to trace those). CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden state, H.
    num_layers : int, default 1
        The number of stacked layers, each reading the previous one's output.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation of the recurrence.
    bias : bool, default True
        Whether the layers have the biases ``bias_ih_l[k]`` and ``bias_hh_l[k]``.
    batch_first : bool, default False
        Input and output as (B, T, feature) instead of (T, B, feature); the state keeps its
        (num_layers * D, B, H) layout either way.
    dropout : float, default 0.0
        The probability of dropout on the outputs of every layer but the last, in training
        mode.
    bidirectional : bool, default False
        Add a direction running from the last step to the first (then D = 2, else D = 1); the
        output holds both directions' hidden states side by side.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own dtype.
    proj_size : int, default 0
        Keyword only, accepted as 0 (an argument of ``torch.nn.RNNBase``); another value
        raises ``ValueError``, as torch's (projections are the LSTM's).
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer, a dropout outside [0, 1], an unknown
        nonlinearity, a negative ``proj_size`` or a device other than the CPU.
    TypeError
        A size that is not an integer, or a flag that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import RNN
    >>> rnn = RNN(10, 20, num_layers=2, nonlinearity="relu")
    >>> output, h_n = rnn(torch.randn(5, 3, 10))  # (T, B, input_size)
    >>> tuple(output.shape), tuple(h_n.shape)
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, proj_size: int = 0,
                 backend: str = "auto") -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        _RNNBase.__init__(self, f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                          dropout, bidirectional, proj_size, device, dtype, backend=backend)  # fmt: skip
        self.nonlinearity = nonlinearity

    @overload
    def forward(self, input: Tensor, hx: Optional[Tensor] = None, *, lengths: _Lengths = None) -> Tuple[Tensor, Tensor]: ...
    @overload
    def forward(self, input: PackedSequence, hx: Optional[Tensor] = None, *,
                lengths: None = None) -> Tuple[PackedSequence, Tensor]: ...  # fmt: skip
    def forward(self, input: Union[Tensor, PackedSequence], hx: Optional[Tensor] = None, *,
                lengths: _Lengths = None) -> Tuple[Union[Tensor, PackedSequence], Tensor]:  # fmt: skip
        """Run the layers over a sequence.

        Parameters
        ----------
        input : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The input sequence: (T, B, input_size), or (B, T, input_size) when ``batch_first``;
            (T, input_size) for one unbatched sequence; or a ``PackedSequence``.
        hx : torch.Tensor, optional
            The initial hidden state, (num_layers * D, B, H), or (num_layers * D, H) for an
            unbatched input; None for zeros.
        lengths : torch.Tensor or sequence of int, optional
            Keyword only: the valid steps of each sequence of a padded input, shape (B,). An
            alternative to a ``PackedSequence`` that ``torch.compile`` can trace (it does not
            trace ``pack_padded_sequence``): the output is then zero past each sequence's
            length, and the state is the one after its last valid step.

        Returns
        -------
        output : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The last layer's hidden state at every step: (T, B, D * H), or (B, T, D * H) when
            ``batch_first``; (T, D * H) for an unbatched input; a ``PackedSequence`` for a
            ``PackedSequence`` input.
        h_n : torch.Tensor
            The final hidden state of every layer and direction, (num_layers * D, B, H), or
            (num_layers * D, H) for an unbatched input.
        """
        output, state = self._forward(input, hx, lengths)
        return output, cast(Tensor, state)


class LSTM(_RNNBase):
    """A multi-layer LSTM running rnnkit's kernels: a drop-in ``torch.nn.LSTM``.

    The constructor, parameters (``weight_ih_l0``, ``weight_hh_l0``, ...), initialisation,
    ``state_dict`` and forward of ``torch.nn.LSTM``. The module is a ``torch.nn.RNNBase`` but
    not a ``torch.nn.LSTM`` instance (``torch.compile`` refuses to trace those). CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden and cell states, H.
    num_layers : int, default 1
        The number of stacked layers, each reading the previous one's output.
    bias : bool, default True
        Whether the layers have the biases ``bias_ih_l[k]`` and ``bias_hh_l[k]``.
    batch_first : bool, default False
        Input and output as (B, T, feature) instead of (T, B, feature); the states keep their
        (num_layers * D, B, H) layout either way.
    dropout : float, default 0.0
        The probability of dropout on the outputs of every layer but the last, in training
        mode.
    bidirectional : bool, default False
        Add a direction running from the last step to the first (then D = 2, else D = 1); the
        output holds both directions' hidden states side by side.
    proj_size : int, default 0
        With ``0 < proj_size < hidden_size``, an LSTM with projections, as ``torch.nn.LSTM``'s:
        ``h_t = W_hr (o * tanh(c_t))`` through ``weight_hr_l[k]`` of shape (proj_size, H);
        the output and ``h_n`` are then proj_size wide per direction, ``c_n`` stays H wide.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own
        dtype, as does a float32 input under CPU autocast to a lower dtype.
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer, a dropout outside [0, 1], a ``proj_size``
        outside [0, hidden_size) or a device other than the CPU.
    TypeError
        A size that is not an integer, or a flag that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import LSTM
    >>> lstm = LSTM(10, 20, num_layers=2, bidirectional=True, batch_first=True)
    >>> output, (h_n, c_n) = lstm(torch.randn(3, 5, 10))  # (B, T, input_size)
    >>> tuple(output.shape), tuple(h_n.shape), tuple(c_n.shape)
    ((3, 5, 40), (4, 3, 20), (4, 3, 20))

    Padded sequences of different lengths, without packing them:

    >>> output, (h_n, c_n) = lstm(torch.randn(3, 5, 10), lengths=[5, 2, 4])
    >>> bool((output[1, 2:] == 0).all())  # zero past the second sequence's 2 steps
    True
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        _RNNBase.__init__(self, "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                          bidirectional, proj_size, device, dtype, backend=backend)  # fmt: skip

    @overload
    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None, *,
                lengths: _Lengths = None) -> Tuple[Tensor, Tuple[Tensor, Tensor]]: ...  # fmt: skip
    @overload
    def forward(self, input: PackedSequence, hx: Optional[Tuple[Tensor, Tensor]] = None, *,
                lengths: None = None) -> Tuple[PackedSequence, Tuple[Tensor, Tensor]]: ...  # fmt: skip
    def forward(self, input: Union[Tensor, PackedSequence], hx: Optional[Tuple[Tensor, Tensor]] = None, *,
                lengths: _Lengths = None) -> Tuple[Union[Tensor, PackedSequence], Tuple[Tensor, Tensor]]:  # fmt: skip
        """Run the layers over a sequence.

        Parameters
        ----------
        input : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The input sequence: (T, B, input_size), or (B, T, input_size) when ``batch_first``;
            (T, input_size) for one unbatched sequence; or a ``PackedSequence``.
        hx : tuple of torch.Tensor, optional
            ``(h_0, c_0)``, the initial hidden and cell states, each (num_layers * D, B, H), or
            (num_layers * D, H) for an unbatched input; None for zeros.
        lengths : torch.Tensor or sequence of int, optional
            Keyword only: the valid steps of each sequence of a padded input, shape (B,). An
            alternative to a ``PackedSequence`` that ``torch.compile`` can trace (it does not
            trace ``pack_padded_sequence``): the output is then zero past each sequence's
            length, and the states are those after its last valid step.

        Returns
        -------
        output : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The last layer's hidden state at every step: (T, B, D * H), or (B, T, D * H) when
            ``batch_first``; (T, D * H) for an unbatched input; a ``PackedSequence`` for a
            ``PackedSequence`` input.
        state : tuple of torch.Tensor
            ``(h_n, c_n)``, the final hidden and cell states of every layer and direction, each
            (num_layers * D, B, H), or (num_layers * D, H) for an unbatched input.
        """
        output, state = self._forward(input, hx, lengths)
        return output, cast(Tuple[Tensor, Tensor], state)


class GRU(_RNNBase):
    """A multi-layer GRU running rnnkit's kernels: a drop-in ``torch.nn.GRU``.

    The constructor, parameters (``weight_ih_l0``, ``weight_hh_l0``, ...), initialisation,
    ``state_dict`` and forward of ``torch.nn.GRU``. The module is a ``torch.nn.RNNBase`` but
    not a ``torch.nn.GRU`` instance (``torch.compile`` refuses to trace those). CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden state, H.
    num_layers : int, default 1
        The number of stacked layers, each reading the previous one's output.
    bias : bool, default True
        Whether the layers have the biases ``bias_ih_l[k]`` and ``bias_hh_l[k]``.
    batch_first : bool, default False
        Input and output as (B, T, feature) instead of (T, B, feature); the state keeps its
        (num_layers * D, B, H) layout either way.
    dropout : float, default 0.0
        The probability of dropout on the outputs of every layer but the last, in training
        mode.
    bidirectional : bool, default False
        Add a direction running from the last step to the first (then D = 2, else D = 1); the
        output holds both directions' hidden states side by side.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own dtype.
    proj_size : int, default 0
        Keyword only, accepted as 0 (an argument of ``torch.nn.RNNBase``); another value
        raises ``ValueError``, as torch's (projections are the LSTM's).
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer, a dropout outside [0, 1], a negative
        ``proj_size`` or a device other than the CPU.
    TypeError
        A size that is not an integer, or a flag that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import GRU
    >>> gru = GRU(10, 20, batch_first=True)
    >>> output, h_n = gru(torch.randn(3, 5, 10))  # (B, T, input_size)
    >>> tuple(output.shape), tuple(h_n.shape)
    ((3, 5, 20), (1, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, proj_size: int = 0,
                 backend: str = "auto") -> None:  # fmt: skip
        _RNNBase.__init__(self, "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                          bidirectional, proj_size, device, dtype, backend=backend)  # fmt: skip

    @overload
    def forward(self, input: Tensor, hx: Optional[Tensor] = None, *, lengths: _Lengths = None) -> Tuple[Tensor, Tensor]: ...
    @overload
    def forward(self, input: PackedSequence, hx: Optional[Tensor] = None, *,
                lengths: None = None) -> Tuple[PackedSequence, Tensor]: ...  # fmt: skip
    def forward(self, input: Union[Tensor, PackedSequence], hx: Optional[Tensor] = None, *,
                lengths: _Lengths = None) -> Tuple[Union[Tensor, PackedSequence], Tensor]:  # fmt: skip
        """Run the layers over a sequence.

        Parameters
        ----------
        input : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The input sequence: (T, B, input_size), or (B, T, input_size) when ``batch_first``;
            (T, input_size) for one unbatched sequence; or a ``PackedSequence``.
        hx : torch.Tensor, optional
            The initial hidden state, (num_layers * D, B, H), or (num_layers * D, H) for an
            unbatched input; None for zeros.
        lengths : torch.Tensor or sequence of int, optional
            Keyword only: the valid steps of each sequence of a padded input, shape (B,). An
            alternative to a ``PackedSequence`` that ``torch.compile`` can trace (it does not
            trace ``pack_padded_sequence``): the output is then zero past each sequence's
            length, and the state is the one after its last valid step.

        Returns
        -------
        output : torch.Tensor or torch.nn.utils.rnn.PackedSequence
            The last layer's hidden state at every step: (T, B, D * H), or (B, T, D * H) when
            ``batch_first``; (T, D * H) for an unbatched input; a ``PackedSequence`` for a
            ``PackedSequence`` input.
        h_n : torch.Tensor
            The final hidden state of every layer and direction, (num_layers * D, B, H), or
            (num_layers * D, H) for an unbatched input.
        """
        output, state = self._forward(input, hx, lengths)
        return output, cast(Tensor, state)


class _CellBase(_Packable, nn.RNNCellBase):
    """torch.nn.RNNCellBase itself (constructor, parameters, initialisation, extra_repr), with the
    forward running rnnkit's kernels; batched (B, I) or unbatched (I,) input, as torch."""

    def __init__(self, cell: str, gates: int, input_size: int, hidden_size: int, bias: bool = True,
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        _check_args(input_size, hidden_size, bias=bias)
        _check_device(device)
        nn.RNNCellBase.__init__(self, input_size, hidden_size, bias, gates, device, dtype)
        self.cell, self.backend = cell, backend

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.backend == "auto" else s + f", backend={self.backend!r}"

    # The public cells' forward (each with its own signature and documentation) calls this one.
    # hx: a tensor, or (LSTM) a tuple or list of two.
    def _forward(self, input: Tensor, hx: Any) -> _State:
        short = self._short_step(input, hx)
        if short is not None:
            return short
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
        h0: Tensor
        c0: Optional[Tensor]
        if hx is None:
            h0 = x.new_zeros(B, H)
            c0 = x.new_zeros(B, H) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        own = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        w = tuple(_as(t, dt) for t in own)
        args = (self.cell, x.unsqueeze(0).contiguous(), w, _as(h0, dt).contiguous(),
                None if c0 is None else _as(c0, dt).contiguous())  # fmt: skip
        pack = None  # a packed copy's, when there is nothing to differentiate
        if self._packs is not None and not (torch.is_grad_enabled() and any(
                t is not None and t.requires_grad for t in (x, h0, c0, *own))):  # fmt: skip
            pack = self._pack_for(0, self.cell, dt, own, w)
        if pack is None:
            _, h_n, c_n = recurrent(*args, backend=self.backend)
        else:
            _, h_n, c_n = _recurrent_eager(*args, None, False, self.backend, pack)
        out = [_as(t, out_dt) for t in ((h_n, cast(Tensor, c_n)) if lstm else (h_n,))]
        if unbatched:
            out = [t.squeeze(0) for t in out]
        return (out[0], out[1]) if lstm else out[0]

    def _short_step(self, input: Any, hx: Any) -> Optional[_State]:
        """A step in the common case, straight to functional: CPU tensors of the parameters' float
        dtype (exact torch.Tensor), no autocast, outside torch.compile. With nothing to
        differentiate, functional.forward (with a packed copy's packs); else one autograd
        Function, _CellCall. None otherwise (the general path then runs, with the same kernels
        and results). A decoder step is mostly the overhead of the call around it, and each
        Python operation costs more than it seems: the step's weights have just evicted the
        interpreter's data from L2. So this path is a short one: no tensor conversions or copies,
        no lists per direction, no group call."""
        params = self._parameters  # (nn.Module's attribute lookup costs ~1 us a name)
        own = (params.get("weight_ih"), params.get("weight_hh"), params.get("bias_ih"), params.get("bias_hh"))
        if own[0] is None or own[1] is None or (self.bias and (own[2] is None or own[3] is None)):
            return None  # (a parametrized weight, torch.nn.utils.parametrize: the general path)
        dt = own[1].dtype
        lstm = self.cell == "lstm"
        parts = _state_parts(hx, lstm)
        if parts is None:
            return None
        if type(input) is not Tensor or not input.is_cpu or input.dtype != dt or dt not in _DTYPES or _compiling():
            return None
        nd = input.dim()
        if nd not in (1, 2) or (dt == torch.float32 and lstm and torch.is_autocast_enabled("cpu")):
            return None
        grad = torch.is_grad_enabled()
        train = grad and input.requires_grad
        for t in parts:
            if type(t) is not Tensor or not t.is_cpu or t.dtype != dt or t.dim() != nd:
                return None  # (the general path converts, or raises naming what it got)
            train = train or (grad and t.requires_grad)
        for w in own:
            if w is not None:
                if not w.is_cpu:
                    return None
                train = train or (grad and w.requires_grad)
        if train:
            ws = own if own[2] is not None else own[:2]
            return cast(_State, _CellCall.apply(self.cell, self.backend, len(parts), input, *parts, *ws))  # type: ignore[no-untyped-call]
        weights: Any
        if self._packs is not None:
            weights = self._packs.get(0, self.cell, dt, own, own)
        else:  # (.numpy() refuses a tensor that requires grad, allowed here under no_grad)
            weights = tuple(None if w is None else w.detach().numpy() for w in own)
        x, state = _step_arrays(self.cell, input, parts)
        with _torch_threads():
            _, sn, _ = F.forward(self.cell, x, weights, state, training=False, backend=self.backend)
        return _step_outputs(lstm, nd, sn)


def _step_arrays(cell: str, input: Tensor, parts: Sequence[Tensor]) -> Tuple[NDArray[Any], Any]:
    """A cell step's input [B, I] (or unbatched (I,)) as functional's x [1, B, I], and its state's
    parts as functional's state (None when there are none), NumPy views."""
    x = input.detach().numpy()
    arrs = [t.detach().numpy() for t in parts]
    if input.dim() == 1:
        x, arrs = x[None, None], [a[None] for a in arrs]
    else:
        x = x[None]
    return x, None if not arrs else (tuple(arrs) if cell == "lstm" else arrs[0])


def _step_outputs(lstm: bool, nd: int, sn: Any) -> _State:
    """functional's final state as a cell's output tensors (unbatched when nd is 1)."""
    out = [torch.from_numpy(a[0] if nd == 1 else a) for a in (sn if lstm else (sn,))]
    return (out[0], out[1]) if lstm else out[0]


class _CellCall(torch.autograd.Function):
    """A cell's differentiable step as one Function over NumPy views: (cell, backend, n_state,
    input, the state's parts, W_ih, W_hh[, b_ih, b_hh]) -> h' (or (h', c') for the LSTM);
    n_state: how many parts the state has (0 for none: the kernels start from zeros). The same
    kernel calls as the general path's _Recurrent, so bitwise the same results."""

    @staticmethod
    def forward(ctx: Any, cell: str, backend: str, n_state: int, input: Tensor, *rest: Tensor) -> Any:
        parts, ws = rest[:n_state], rest[n_state:]
        x, state = _step_arrays(cell, input, parts)
        w = tuple(t.detach().numpy() for t in ws)
        with _torch_threads():
            _, sn, fctx = F.forward(cell, x, w if len(w) == 4 else (w[0], w[1], None, None), state,
                                    training=True, backend=backend)  # fmt: skip
        ctx.fctx, ctx.n_state, ctx.n_weights = fctx, n_state, len(ws)
        ctx.set_materialize_grads(False)
        # Through autograd's own saving, so torch's rules hold: an in-place change before backward,
        # or a second backward without retain_graph, raises (the kernels' cache holds views).
        ctx.save_for_backward(input, *rest)
        return _step_outputs(cell == "lstm", input.dim(), sn)

    @staticmethod
    @once_differentiable  # no second derivatives: create_graph=True then a loss on them raises
    def backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        input = ctx.saved_tensors[0]  # also checks the version counters and the retain_graph rule
        fctx = ctx.fctx
        p = fctx.problem
        nd = input.dim()
        g: List[Any] = [None if t is None else (t.detach().numpy()[None] if nd == 1 else t.detach().numpy())
                        for t in grads]  # fmt: skip
        # The step's output is its final state: the gradient comes as dstate_n, with dy zeros, as
        # the general path gives it (one step: y[0] is h_n).
        need = ctx.needs_input_grad
        with _torch_threads():
            dx, ds0, dw = F.backward(fctx, np.zeros((1, p.B, p.S), p.dtype), tuple(g) if p.is_lstm else g[0],
                                     input_grad=need[3])  # fmt: skip
        def out(a: Any) -> Tensor:
            return torch.from_numpy(a[0] if nd == 1 else a)

        dstate = [out(a) if need[4 + j] else None for j, a in enumerate((ds0 if p.is_lstm else (ds0,))[: ctx.n_state])]
        return (None, None, None, out(dx[0]) if need[3] else None, *dstate,
                *(torch.from_numpy(a) for a in dw[: ctx.n_weights]))


class RNNCell(_CellBase, nn.RNNCell):
    """An Elman RNN cell (tanh or ReLU) running rnnkit's kernels: a drop-in ``torch.nn.RNNCell``.

    One step, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``: the constructor, parameters
    (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), initialisation and forward of
    ``torch.nn.RNNCell``, of which it is an instance. CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden state, H.
    bias : bool, default True
        Whether the cell has the biases ``bias_ih`` and ``bias_hh``.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation ``act``.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own dtype.
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer, an unknown nonlinearity or a device other than
        the CPU.
    TypeError
        A size that is not an integer, or a ``bias`` that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import RNNCell
    >>> cell = RNNCell(10, 20)
    >>> h = torch.zeros(3, 20)
    >>> for x in torch.randn(6, 3, 10):  # six steps of a batch of 3
    ...     h = cell(x, h)
    >>> tuple(h.shape)
    (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: _Device = None, dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", 1, input_size, hidden_size, bias, device, dtype, backend=backend)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        """Run one step.

        Parameters
        ----------
        input : torch.Tensor
            The input, (B, input_size), or (input_size,) unbatched.
        hx : torch.Tensor, optional
            The hidden state, (B, H), or (H,) unbatched; None for zeros.

        Returns
        -------
        torch.Tensor
            The next hidden state, (B, H), or (H,) unbatched.
        """
        return cast(Tensor, self._forward(input, hx))


class LSTMCell(_CellBase, nn.LSTMCell):
    """An LSTM cell running rnnkit's kernels: a drop-in ``torch.nn.LSTMCell``.

    One step of the LSTM: the constructor, parameters (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``, gates i, f, g, o), initialisation and forward of
    ``torch.nn.LSTMCell``, of which it is an instance. CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden and cell states, H.
    bias : bool, default True
        Whether the cell has the biases ``bias_ih`` and ``bias_hh``.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own
        dtype, as does a float32 input under CPU autocast to a lower dtype.
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer or a device other than the CPU.
    TypeError
        A size that is not an integer, or a ``bias`` that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import LSTMCell
    >>> cell = LSTMCell(10, 20)
    >>> h, c = cell(torch.randn(3, 10))  # zero states to start from
    >>> h, c = cell(torch.randn(3, 10), (h, c))
    >>> tuple(h.shape), tuple(c.shape)
    ((3, 20), (3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: _Device = None,
                 dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        super().__init__("lstm", 4, input_size, hidden_size, bias, device, dtype, backend=backend)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        """Run one step.

        Parameters
        ----------
        input : torch.Tensor
            The input, (B, input_size), or (input_size,) unbatched.
        hx : tuple of torch.Tensor, optional
            ``(h, c)``, the hidden and cell states, each (B, H), or (H,) unbatched; None for
            zeros.

        Returns
        -------
        h : torch.Tensor
            The next hidden state, (B, H), or (H,) unbatched.
        c : torch.Tensor
            The next cell state, (B, H), or (H,) unbatched.
        """
        return cast(Tuple[Tensor, Tensor], self._forward(input, hx))


class GRUCell(_CellBase, nn.GRUCell):
    """A GRU cell running rnnkit's kernels: a drop-in ``torch.nn.GRUCell``.

    One step of the GRU: the constructor, parameters (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``, gates r, z, n), initialisation and forward of
    ``torch.nn.GRUCell``, of which it is an instance. CPU and CUDA tensors.

    Parameters
    ----------
    input_size : int
        The number of features of the input, I.
    hidden_size : int
        The number of features of the hidden state, H.
    bias : bool, default True
        Whether the cell has the biases ``bias_ih`` and ``bias_hh``.
    device : torch.device or str, optional
        The parameters' device: the CPU or a CUDA GPU (another device raises ``ValueError``).
    dtype : torch.dtype, optional
        The parameters' dtype (torch's default dtype if None). The kernels compute in float32
        or float64; float16 and bfloat16 inputs run in float32 and come back in their own dtype.
    backend : str, default "auto"
        Keyword only: the rnnkit backend the kernels run on, resolved at each call (``"auto"``
        picks the fastest usable one).

    Raises
    ------
    ValueError
        A size that is not a positive integer or a device other than the CPU.
    TypeError
        A size that is not an integer, or a ``bias`` that is not True or False.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import GRUCell
    >>> cell = GRUCell(10, 20)
    >>> h = cell(torch.randn(10))  # unbatched: (input_size,)
    >>> tuple(h.shape)
    (20,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: _Device = None,
                 dtype: Optional[torch.dtype] = None, *, backend: str = "auto") -> None:  # fmt: skip
        super().__init__("gru", 3, input_size, hidden_size, bias, device, dtype, backend=backend)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        """Run one step.

        Parameters
        ----------
        input : torch.Tensor
            The input, (B, input_size), or (input_size,) unbatched.
        hx : torch.Tensor, optional
            The hidden state, (B, H), or (H,) unbatched; None for zeros.

        Returns
        -------
        torch.Tensor
            The next hidden state, (B, H), or (H,) unbatched.
        """
        return cast(Tensor, self._forward(input, hx))
