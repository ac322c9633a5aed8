"""Backend "cpp": adapter from a validated Problem to the compiled kernels in rnnkit._core.

Allocates every output and workspace with NumPy (C++ never allocates Python objects), orders the
batch by length once for variable lengths (rnnkit/_plan.py), and keeps the training cache as a
named tuple.
"""

# Tested by tests/test_backends.py.

from __future__ import annotations

import sys
from typing import NamedTuple, Optional

import numpy as np

from . import _threads
from ._buffers import empty as _empty
from ._native import core as _core
from ._plan import Plan, plan, unpack
from ._validate import DEFAULT_ACTS

# (peepholes: P given; 4: the GRU with the reset gate before the product, Problem::reset_before)
_CELL_ID = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3, "lstm_peephole": 2, "gru_reset_before": 4}
_GRUS = ("gru", "gru_reset_before")
ONNX_OPTIONS = True  # activations, clip, input_forget: the form passes (cpp/src/pointwise_forms.cpp)
# Problem::Form's activation codes (rnnkit/problem.h, enum Act)
_ACT_CODE = {name: k for k, name in enumerate(("sigmoid", "tanh", "relu", "leakyrelu", "thresholdedrelu", "scaledtanh",
                                               "hardsigmoid", "elu", "softsign", "softplus", "affine"))}  # fmt: skip


def _form(p):
    """_core's form argument: None for torch's cell, else (codes, alphas, betas, clip, input_forget)."""
    if not p.options:
        return None
    acts = p.acts or tuple((a, 0.0, 0.0) for a in DEFAULT_ACTS[p.cell])
    return ([_ACT_CODE[a] for a, _, _ in acts], [al for _, al, _ in acts], [be for _, _, be in acts],
            0.0 if p.clip is None else p.clip, p.input_forget)  # fmt: skip


class CppCache(NamedTuple):
    """What backward reads: the plan; xg [N, G*H] activated gates (packed columns, RNN: h_t);
    xp [N, I] packed x (lengths only); h_prev [N, H] ([N, S] with projections); c_prev [N, H]
    (LSTM); hn [N, H] (GRU: W_hn h + b_hn; with the reset gate before the product: r * h_prev); m [N, H] (LSTM with projections: o * tanh(c_t))."""

    plan: Plan
    xg: np.ndarray
    xp: Optional[np.ndarray]
    h_prev: np.ndarray
    c_prev: Optional[np.ndarray]
    hn: Optional[np.ndarray]
    m: Optional[np.ndarray] = None


def cache_layout(cell, T, B, I, H, N, dense, S=None):  # noqa: E741
    """The shape of each of CppCache's arrays (its fields after plan, in order) for a training call
    of these sizes (N: packed rows; S: the LSTM's projection size, None without one); None where
    the field is None. The plan is rebuilt from the problem. Used where the cache travels as
    tensors (rnnkit.torch's registered ops)."""
    G = {"lstm": 4, "lstm_peephole": 4, "gru": 3, "gru_reset_before": 3}.get(cell, 1)
    return {"xg": (N, G * H), "xp": None if dense else (N, I), "h_prev": (N, S or H),
            "c_prev": (N, H) if cell in ("lstm", "lstm_peephole") else None, "hn": (N, H) if cell in _GRUS else None,
            "m": (N, H) if S else None}  # fmt: skip


def cache_restore(p, arrays):
    """The CppCache of a training forward of p from its arrays (as cache_layout lists them)."""
    return CppCache(plan(p), *arrays)


def _forward_call(p, y=None):
    """The arguments of one _core.forward call for p, and what to return from them. y: where to
    write the output, a [T, B, H] view whose rows may be strided (a direction's columns of a
    bidirectional layer's output); None allocates it."""
    pl = plan(p)
    T, B, I, H, G, dt, N, S = p.T, p.B, p.I, p.H, p.G, p.dtype, pl.N, p.S
    lstm, gru, proj = p.is_lstm, p.cell in _GRUS, p.W_hr is not None
    if y is None:
        y = _empty((T, B, S), dt) if pl.dense else np.zeros((T, B, S), dt)
    elif not pl.dense:
        y[...] = 0  # steps past a sequence's length are not written
    h_n = np.empty((B, S), dt)
    c_n = np.empty((B, H), dt) if lstm else None
    train = p.training
    xg = _empty((N, G * H), dt) if train else None  # inference: a workspace inside the call
    xp = None if pl.dense else _empty((N, I), dt)
    h_prev = _empty((N, S), dt) if train else None
    c_prev = _empty((N, H), dt) if train and lstm else None
    hn = _empty((N, H), dt) if train and gru else None
    m = _empty((N, H), dt) if train and proj else None
    call = (_CELL_ID[p.cell], y, h_n, c_n, xg, xp, h_prev, c_prev, hn, p.x, p.W_ih, p.W_hh, p.b_ih,
            p.b_hh, p.h0, p.c0, pl.perm, pl.batch_sizes, pl.offsets, p.reverse, train, pl.dense,
            _threads.call_cap(), m, p.W_hr, p.P, _form(p), p.pack)  # fmt: skip
    cache = CppCache(pl, xg, xp, h_prev, c_prev, hn, m) if train else None
    return call, (y, h_n, c_n, cache)


_on_host_checked = False


def _host_threads() -> None:
    """Once torch is in the process (imported before or after rnnkit), the kernels' threads are
    torch's own OpenMP threads (see _threads.use_torch_openmp); a dict lookup per call until then."""
    global _on_host_checked
    if not _on_host_checked and "torch" in sys.modules:
        _on_host_checked = True
        _threads.use_torch_openmp()


def _forward(p):
    _host_threads()
    call, out = _forward_call(p)
    _core.forward(*call)
    return out


def _concurrent(ps) -> bool:
    """Whether independent calls gain from running side by side: only when their steps are too
    small to be split over all the threads (otherwise one after another is as fast, and their
    workspaces are reused instead of faulted in together)."""
    n = _threads.call_threads()
    return sum(_core.threads_for(_CELL_ID[p.cell], p.B, p.H, n) for p in ps) <= n


def forward_group(ps, ys=None):
    """Several independent forward calls (the directions of a layer): side by side where that is
    a gain (see _concurrent), else one after another. ys: each call's output view, or None."""
    _host_threads()
    calls = [_forward_call(p, y) for p, y in zip(ps, ys or [None] * len(ps))]
    if len(calls) == 1 or not _concurrent(ps):
        for c, _ in calls:
            _core.forward(*c)
    else:
        _core.forward_group([c for c, _ in calls])
    return [out for _, out in calls]


def _backward_call(p, cache: CppCache, dy, dh_n, dc_n, need_dx=True):
    pl = cache.plan
    T, B, I, H, G, dt, N = p.T, p.B, p.I, p.H, p.G, p.dtype, pl.N
    lstm, gru, proj = p.is_lstm, p.cell in _GRUS, p.W_hr is not None
    dx = None if not need_dx else _empty((T, B, I), dt) if pl.dense else np.zeros((T, B, I), dt)
    dh0 = np.empty((B, p.S), dt)
    dc0 = np.empty((B, H), dt) if lstm else None
    dW_ih, dW_hh = _empty(p.W_ih.shape, dt), _empty(p.W_hh.shape, dt)
    db_ih, db_hh = np.empty(G * H, dt), np.empty(G * H, dt)
    dg = None  # a workspace the C++ driver keeps between calls (fresh pages fault in every call)
    dn = _empty((N, H), dt) if gru else None
    dW_hr = np.empty(p.W_hr.shape, dt) if proj else None
    dP = None if p.P is None else np.empty(p.P.shape, dt)
    call = (_CELL_ID[p.cell], dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dg, dn, p.x, p.W_ih, p.W_hh,
            cache.xg, cache.xp, cache.h_prev, cache.c_prev, cache.hn, dy, dh_n, dc_n, pl.perm,
            pl.batch_sizes, pl.offsets, p.reverse, pl.dense, _threads.call_cap(), dW_hr, cache.m,
            p.W_hr, dP, p.P, _form(p), p.pack)  # fmt: skip
    out = (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh)
    fifth = dW_hr if dW_hr is not None else dP  # the fifth weight's gradient, if any
    return call, (out if fifth is None else out + (fifth,))


def _backward(p, cache: CppCache, dy, dh_n, dc_n, need_dx=True):
    _host_threads()
    call, out = _backward_call(p, cache, dy, dh_n, dc_n, need_dx)
    _core.backward(*call)
    return out


backward_skips_dx = True  # need_dx=False: dx None, its GEMM skipped (functional.backward's input_grad)
backward_reads_dy_rows = True  # dy may be a direction's columns of a wider array (_validate.grads)


def backward_group(items, need_dx=True):
    """Several independent backward calls; items: (p, cache, dy, dh_n, dc_n) each."""
    _host_threads()
    if len(items) == 1 or not _concurrent([it[0] for it in items]):
        return [_backward(*it, need_dx) for it in items]
    calls = [_backward_call(*it, need_dx) for it in items]
    _core.backward_group([c for c, _ in calls])
    return [out for _, out in calls]


rnn_tanh_forward = rnn_relu_forward = lstm_forward = gru_forward = _forward
rnn_tanh_backward = rnn_relu_backward = lstm_backward = gru_backward = _backward
lstm_peephole_forward = gru_reset_before_forward = _forward
lstm_peephole_backward = gru_reset_before_backward = _backward


def entering_cell_state(p, cache):
    """LSTM: c entering each step, [T, B, H] (valid steps; others zero)."""
    return unpack(cache.plan, cache.c_prev, p.T, p.B)
