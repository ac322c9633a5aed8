"""rnnkit's recurrent layer as registered PyTorch operators (torch.library, namespace "rnnkit"), for
torch.compile(fullgraph=True) and torch.export, which cannot look inside an autograd.Function
that calls NumPy.

    rnnkit::layer_forward(cell, backend, x, params, h0, c0, lengths, reverses, bias, training)
        -> (y [T, B, D*H], h_n [D x (B, H)], c_n [D x (B, H)] (LSTM; else []), cache [...])
    rnnkit::layer_backward(cell, backend, x, params, h0, c0, lengths, reverses, bias, cache, dy,
                           dh_n, dc_n) -> (dx, dparams, dh0, dc0)

h0, c0: one [B, H] tensor per direction, or empty lists for zeros (c0 is [] for cells other than
the LSTM). One layer, its D = len(reverses) directions in one call (side by side where the C++ backend finds
that faster), exactly functional.forward/backward per direction. params: per direction W_ih,
W_hh, then b_ih, b_hh when bias, then W_hr for an LSTM with projections (h, y and their
gradients are then S = W_hr.shape[0] wide, c stays H wide). The training cache of each direction travels as tensors, in the
order and shapes of the backend's cache_layout (a field that is None, or a view of x, is an empty
tensor), so that autograd saves it like any activation; backward rebuilds the backend's cache from
it (cache_restore). Fake implementations give every output's shape from the inputs alone: with
lengths, the packed row count N = sum(lengths) is a data-dependent size.
"""

# Check: tests/test_torch_ops.py (torch.library.opcheck, compile, export).

from __future__ import annotations

from typing import Any, Optional, Sequence, overload

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from .. import _backends, _threads, _validate
from .. import functional as F



def torch_threads() -> Any:
    """Around every kernel call from rnnkit.torch: at most torch's intra-op threads
    (``torch.set_num_threads``), as torch.nn's modules use."""
    return _threads.limit(max(1, torch.get_num_threads()))

@overload
def _np(t: Tensor) -> NDArray[Any]: ...
@overload
def _np(t: None) -> None: ...
def _np(t: Optional[Tensor]) -> Optional[NDArray[Any]]:
    return None if t is None else t.detach().numpy()


def _per_direction(params: Sequence[Tensor], D: int, bias: bool) -> tuple[int, bool]:
    """(tensors per direction in params, whether they end with W_hr: an LSTM with projections)."""
    k = len(params) // D
    return k, k > (4 if bias else 2)


def _sizes(cell: str, params: Sequence[Tensor]) -> tuple[int, int, Optional[int]]:
    """(H, S, proj): the cell's units, the width of h and y, and S for an LSTM with projections
    (else None); from the first direction's W_ih [G*H, I] and W_hh [G*H, S]."""
    G = _validate.GATES[cell]
    H, S = params[0].shape[0] // G, params[1].shape[1]
    return H, S, (S if S != H else None)


def _directions(cell: str, x: Tensor, params: Sequence[Tensor], h0: Sequence[Tensor], c0: Sequence[Tensor],
                lengths: Optional[Tensor], reverses: Sequence[bool], bias: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Per direction forward's keyword arguments (NumPy views of the tensors)."""
    k, proj = _per_direction(params, len(reverses), bias)
    lens = None if lengths is None else _np(lengths).astype(np.int64, copy=False)
    out: list[dict[str, Any]] = []
    for d, reverse in enumerate(reverses):
        mine = [_np(t) for t in params[k * d : k * d + k]]
        w: list[Optional[NDArray[Any]]] = list(mine[:4]) if bias else [*mine[:2], None, None]
        if proj:
            w.append(mine[-1])
        h, c = (_np(h0[d]) if h0 else None), (_np(c0[d]) if c0 else None)  # none given: zeros
        state = (h, c) if cell == "lstm" else h
        out.append(dict(cell=cell, x=_np(x), weights=tuple(w), state=state, lengths=lens, reverse=bool(reverse)))
    return out


def _layout(name: str, cell: str, x: Tensor, H: int, N: Any, dense: bool, S: Optional[int] = None) -> dict[str, Any]:
    T, B, I = x.shape  # noqa: E741
    impl = _backends.get(name)
    if S is None:  # (the common case: every backend's cache_layout takes these)
        return dict(impl.cache_layout(cell, T, B, I, H, N, dense))
    return dict(impl.cache_layout(cell, T, B, I, H, N, dense, S=S))


def _own(a: NDArray[Any], inputs: Sequence[Optional[NDArray[Any]]]) -> Tensor:
    """a as a tensor, copied if it shares memory with an input (an operator's outputs may not)."""
    if any(i is not None and np.may_share_memory(a, i) for i in inputs):
        a = a.copy()
    elif not a.flags.writeable:  # a read-only view the backend made of its own array
        a = a.view()
        try:
            a.flags.writeable = True
        except ValueError:
            a = a.copy()
    return torch.from_numpy(a)


@torch.library.custom_op("rnnkit::layer_forward", mutates_args=())
def layer_forward(cell: str, backend: str, x: Tensor, params: Sequence[Tensor], h0: Sequence[Tensor],
                  c0: Sequence[Tensor], lengths: Optional[Tensor], reverses: Sequence[bool], bias: bool,
                  training: bool) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:  # fmt: skip
    name = _backends.resolve(backend)
    calls = _directions(cell, x, params, h0, c0, lengths, reverses, bias)
    for c in calls:
        c["training"] = training
    H, S, proj = _sizes(cell, params)
    T, B, _ = x.shape
    y_out = np.empty((T, B, len(calls) * S), _np(x).dtype) if len(calls) > 1 else None
    with torch_threads():
        runs = F._forward_group(calls, name, y_out=y_out)
    inputs: list[Optional[NDArray[Any]]] = [_np(x), *(_np(t) for t in (*h0, *c0))]
    y = torch.from_numpy(y_out) if y_out is not None else _own(runs[0][0], inputs)
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    cache: list[Tensor] = []
    for _, sn, ctx in runs:
        hn, cn = sn if isinstance(sn, tuple) else (sn, None)  # (h_n, c_n) for the LSTM
        h_n.append(_own(hn, inputs))
        if cn is not None:
            c_n.append(_own(cn, inputs))
        if training:
            assert ctx is not None  # a training-mode forward returns its context
            p = ctx.problem
            layout = _layout(name, cell, x, H, int(p.T * p.B if p.lengths is None else p.lengths.sum()), p.lengths is None,
                             proj)  # fmt: skip
            for field, shape in layout.items():
                a = getattr(ctx.cache, field)
                cache.append(x.new_empty(0) if not isinstance(shape, tuple) else _own(a, inputs))
    return y, h_n, c_n, cache


@layer_forward.register_fake
def _(cell: str, backend: str, x: Tensor, params: Sequence[Tensor], h0: Sequence[Tensor], c0: Sequence[Tensor],
      lengths: Optional[Tensor], reverses: Sequence[bool], bias: bool,
      training: bool) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:  # fmt: skip
    T, B, _ = x.shape
    (H, S, proj), D = _sizes(cell, params), len(reverses)
    h_n = [x.new_empty((B, S)) for _ in range(D)]
    c_n = [x.new_empty((B, H)) for _ in range(D)] if cell == "lstm" else []
    cache: list[Tensor] = []
    if training:
        name = _backends.resolve(backend)
        layout = _layout(name, cell, x, H, T * B, True, proj)
        if lengths is not None:  # packed rows: N = sum(lengths), known only from the data
            layout = _layout(name, cell, x, H, -1, False, proj)
            if any(isinstance(s, tuple) and -1 in s for s in layout.values()):
                layout = _layout(name, cell, x, H, torch.library.get_ctx().new_dynamic_size(), False, proj)
        for _ in range(D):
            cache += [x.new_empty(s if isinstance(s, tuple) else (0,)) for s in layout.values()]
    return x.new_empty((T, B, D * S)), h_n, c_n, cache


@torch.library.custom_op("rnnkit::layer_backward", mutates_args=())
def layer_backward(cell: str, backend: str, x: Tensor, params: Sequence[Tensor], h0: Sequence[Tensor],
                   c0: Sequence[Tensor], lengths: Optional[Tensor], reverses: Sequence[bool], bias: bool,
                   cache: Sequence[Tensor], dy: Tensor, dh_n: Sequence[Tensor],
                   dc_n: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:  # fmt: skip
    name = _backends.resolve(backend)
    impl = _backends.get(name)
    H, S, proj = _sizes(cell, params)
    dya = _np(dy)
    items: list[tuple[F.Context, NDArray[Any], Any]] = []
    for d, c in enumerate(_directions(cell, x, params, h0, c0, lengths, reverses, bias)):
        p = _validate.problem(c["cell"], c["x"], c["weights"], c["state"], c["lengths"], c["reverse"], True)
        layout = _layout(name, cell, x, H, 0, p.lengths is None, proj)
        mine = cache[d * len(layout) : (d + 1) * len(layout)]
        arrays = [_np(t) if isinstance(s, tuple) else None for t, s in zip(mine, layout.values())]
        ctx = F.Context(p, name, impl.cache_restore(p, arrays))
        dyd = np.ascontiguousarray(dya[..., d * S : (d + 1) * S])
        ds: Any = (_np(dh_n[d]), _np(dc_n[d])) if cell == "lstm" else _np(dh_n[d])
        items.append((ctx, dyd, ds))
    dparams: list[Tensor] = []
    dh0: list[Tensor] = []
    dc0: list[Tensor] = []
    with torch_threads():
        outs = F._backward_group(items)
    dx: Optional[NDArray[Any]] = F._summed_dx(outs)
    for _, ds0, dw in outs:
        dparams += [torch.from_numpy(a) for a in (*dw[: 4 if bias else 2], *dw[4:])]  # (and dW_hr)
        dh, dc = ds0 if cell == "lstm" else (ds0, None)
        if h0:
            dh0.append(torch.from_numpy(dh))
        if c0:
            dc0.append(torch.from_numpy(dc))
    assert dx is not None  # at least one direction
    return torch.from_numpy(dx), dparams, dh0, dc0


@layer_backward.register_fake
def _(cell: str, backend: str, x: Tensor, params: Sequence[Tensor], h0: Sequence[Tensor], c0: Sequence[Tensor],
      lengths: Optional[Tensor], reverses: Sequence[bool], bias: bool, cache: Sequence[Tensor], dy: Tensor,
      dh_n: Sequence[Tensor], dc_n: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:  # fmt: skip
    return (torch.empty_like(x), [torch.empty_like(t) for t in params], [torch.empty_like(t) for t in h0],
            [torch.empty_like(t) for t in c0])  # fmt: skip


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
    cell, backend, x, params, h0, c0, lengths, reverses, bias, training = inputs
    ctx.meta = (cell, backend, tuple(reverses), bias, training, len(params), len(h0), len(c0), lengths is not None)
    ctx.save_for_backward(x, *params, *h0, *c0, *([lengths] if lengths is not None else []), *output[3])


def _state_grads(grads: Optional[Sequence[Optional[Tensor]]], n: int, x: Tensor, H: int) -> list[Tensor]:
    """The n incoming [B, H] state gradients (H: their width), zeros for those autograd left as None."""
    gs: list[Optional[Tensor]] = list(grads) if grads is not None else [None] * n
    return [x.new_zeros((x.shape[1], H)) if g is None else g.contiguous() for g in gs]


def _backward(ctx: Any, dy: Optional[Tensor], dh_n: Optional[Sequence[Optional[Tensor]]],
              dc_n: Optional[Sequence[Optional[Tensor]]], _dcache: Any) -> tuple[Any, ...]:  # fmt: skip
    cell, backend, reverses, bias, training, n_p, n_h, n_c, has_lengths = ctx.meta
    if not training:
        raise RuntimeError("rnnkit::layer_forward ran with training=False: nothing was kept for backward")
    saved = list(ctx.saved_tensors)
    x, saved = saved[0], saved[1:]
    params, saved = saved[:n_p], saved[n_p:]
    h0, saved = saved[:n_h], saved[n_h:]
    c0, saved = saved[:n_c], saved[n_c:]
    lengths, cache = (saved[0], saved[1:]) if has_lengths else (None, saved)
    (H, S, _), D = _sizes(cell, params), len(reverses)
    dy = x.new_zeros((x.shape[0], x.shape[1], D * S)) if dy is None else dy.contiguous()
    dhs = _state_grads(dh_n, D, x, S)
    dcs = _state_grads(dc_n, D, x, H) if cell == "lstm" else []
    dx, dparams, dh0, dc0 = layer_backward(cell, backend, x, params, h0, c0, lengths, list(reverses), bias, cache,
                                           dy, dhs, dcs)  # fmt: skip
    return None, None, dx, dparams, dh0, dc0, None, None, None, None


layer_forward.register_autograd(_backward, setup_context=_setup_context)
