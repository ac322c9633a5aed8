"""Backend "numba": adapter from a validated Problem to the Numba kernels in sequence.py.

Same contract and packed layout as the C++ backend (rnnkit/_plan.py); outputs allocated here.
Here the hidden units are split into blocks, one per thread (_blocks), and W_hh's rows are
grouped by block (_packed_whh) so that each thread's share of a step's product is contiguous.
Importing raises ImportError when numba or scipy-openblas32 (the BLAS of blas.py) is missing.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import NamedTuple, Optional

import numba
import numpy as np

from .. import _threads
from .._plan import Plan, packed_rows, plan, unpack
from .._validate import DEFAULT_ACTS
from . import blas
from . import precompile as _warm
from .sequence import (GRU, LSTM, RNN_RELU, RNN_TANH, sequence_backward, sequence_backward_serial, sequence_forward,
                       sequence_forward_serial)
from .sequence import lstm_proj_backward, lstm_proj_forward  # the LSTM with projections
from .sequence import lstm_peephole_backward as _peephole_backward_kernel
from .sequence import lstm_peephole_forward as _peephole_forward_kernel
from .sequence import gru_reset_before_backward as _reset_before_backward_kernel
from .sequence import gru_reset_before_forward as _reset_before_forward_kernel


def _choose_threading_layer():
    """Numba's threading layer: "forksafe" (TBB where the tbb package is installed, else
    workqueue), never GNU OpenMP, whose thread pool does not survive fork(): a child forked after
    a parallel call (multiprocessing's and DataLoader's default on Linux) was killed. A layer the
    user chose (NUMBA_THREADING_LAYER, or numba.config before importing rnnkit), or one already
    running in this process, is left alone."""
    from numba.np.ufunc import parallel

    if os.environ.get("NUMBA_THREADING_LAYER") or parallel._is_initialized:
        return
    if str(numba.config.THREADING_LAYER).lower() == "default":
        numba.config.THREADING_LAYER = "forksafe"


_choose_threading_layer()


def _layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return None


# workqueue refuses (aborts on) concurrent parallel regions: rnnkit's own calls then take turns.
_serial = threading.Lock()
_forked_from_gnu_omp = False


def _after_fork_in_child():
    global _forked_from_gnu_omp, _serial
    _serial = threading.Lock()
    if _layer() == "omp":
        from numba.np.ufunc import omppool

        _forked_from_gnu_omp = getattr(omppool, "openmp_vendor", "") == "GNU"


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def _kernel_call():
    """Around every kernel call: turns taken under workqueue, and a clear error in a child forked
    from a process whose GNU OpenMP pool is running."""
    if _forked_from_gnu_omp:
        raise RuntimeError(
            "the numba backend cannot run in this process: it was forked from a process that had "
            "started Numba's GNU OpenMP threading layer, which does not survive fork(). Start "
            "worker processes with multiprocessing's 'spawn' (or 'forkserver') method, or let "
            "rnnkit choose the layer (do not set NUMBA_THREADING_LAYER=omp; `pip install tbb`)"
        )
    cap = _threads.call_cap()  # rnnkit.torch: torch's thread setting (numba's own is per Python thread)
    before = numba.get_num_threads()
    if cap and cap < before:
        numba.set_num_threads(cap)
    try:
        with _serial if _layer() in (None, "workqueue") else nullcontext():
            yield
    finally:
        if cap and cap < before:
            numba.set_num_threads(before)


_CELL = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}
ONNX_OPTIONS = True  # activations, clip, input_forget: the drivers of forms.py (see _forward_form)


class NumbaCache(NamedTuple):
    """What backward reads: the plan; X [N, I] packed x; xg [N, G*H] activated gates (RNN: h_t);
    h_prev [N, H] ([N, S] with a projection); c_prev [N, H] (LSTM, with or without peepholes);
    hn [N, H] (GRU: W_hn h + b_hn; gru_reset_before: r * h_{t-1}); m [N, H] (LSTM with a
    projection: o * tanh(c_t), the projection's input)."""

    plan: Plan
    X: np.ndarray
    xg: np.ndarray
    h_prev: np.ndarray
    c_prev: Optional[np.ndarray]
    hn: Optional[np.ndarray]
    m: Optional[np.ndarray] = None


def cache_layout(cell, T, B, I, H, N, dense, S=None):  # noqa: E741
    """The shape of each of NumbaCache's arrays (its fields after plan, in order) for a training
    call of these sizes (S: the LSTM's projection size, None without one); None where the field is
    None; "x" for X without lengths, a view of x. The plan is rebuilt from the problem (see
    rnnkit._cpp.cache_layout)."""
    G = {"lstm": 4, "lstm_peephole": 4, "gru": 3, "gru_reset_before": 3}.get(cell, 1)
    if not (T and B):
        return dict.fromkeys(("X", "xg", "h_prev", "c_prev", "hn", "m"))
    proj = S is not None and cell == "lstm"
    return {"X": "x" if dense else (N, I), "xg": (N, G * H), "h_prev": (N, S if proj else H),
            "c_prev": (N, H) if cell in ("lstm", "lstm_peephole") else None,
            "hn": (N, H) if cell in ("gru", "gru_reset_before") else None, "m": (N, H) if proj else None}  # fmt: skip


def cache_restore(p, arrays):
    """The NumbaCache of a training forward of p from its arrays (as cache_layout lists them,
    X absent when it is a view of x)."""
    pl = plan(p)
    X, *rest = arrays
    if X is None and p.T and p.B:
        X = _packed_x(p, pl)
    return NumbaCache(pl, X, *rest)


def _ro(a):
    """A read-only view: the kernels see every input array as read-only, so that one compiled
    signature serves writeable arrays, read-only ones and memmaps alike (each flag combination was a
    new type, compiled again for a minute)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _packed_x(p, pl):
    """x as [N, I] packed rows (read-only; a view of x without lengths)."""
    if pl.dense:
        return _ro(p.x.reshape(p.T * p.B, p.I))
    return _ro(p.x.reshape(p.T * p.B, p.I)[packed_rows(pl, p.B)])


# A step is split over threads only when each thread gets at least this many multiply-adds of the
# recurrent product: below it, waking the threads (~4 us per parallel region) costs more than it saves.
MIN_STEP_WORK_PER_THREAD = 1 << 16


def _blocks(B, H, G):
    """Unit bounds [nblk+1] of the blocks a step is split into: one per thread, multiples of 8 units
    (whole vectors in the pointwise loops); a single block for small steps."""
    n = min(_threads.call_threads(), numba.config.NUMBA_NUM_THREADS, max(1, H // 8),
            max(1, B * G * H * H // MIN_STEP_WORK_PER_THREAD))  # fmt: skip
    return _bounds(H, n)


@lru_cache(maxsize=64)
def _bounds(H, n):
    bounds = np.array([min(H, round(b * H / n / 8) * 8) for b in range(n)] + [H], np.int64)
    bounds.flags.writeable = False
    return bounds


@lru_cache(maxsize=64)
def _block_order(H, G, n):
    """Row order of W_hh grouped by unit block: block b owns rows G*u0 .. G*u1, gate-major inside."""
    bounds = _bounds(H, n)
    order = np.concatenate([np.arange(q * H + u0, q * H + u1)
                            for u0, u1 in zip(bounds[:-1], bounds[1:]) for q in range(G)])  # fmt: skip
    order.flags.writeable = False
    return order


def _packed_whh(W_hh, bounds, H, G):
    """W_hh's rows grouped by the unit blocks of bounds."""
    return W_hh[_block_order(H, G, len(bounds) - 1)]


def _scratch(bounds, rows, G, dt):
    """[nblk, rows, G*max block]: per block, `rows` rows as wide as the block's gates (forward: the
    block's product, B rows; both passes: 4 rows of pointwise scratch)."""
    b = bounds.tolist()
    return np.empty((len(b) - 1, rows, G * max(b1 - b0 for b0, b1 in zip(b, b[1:]))), dt)


# Large products are cut into PANELS panels (one per thread at a time) from this many multiply-adds
# on; smaller ones are one BLAS call. Chosen by size only: results do not depend on the threads.
MIN_PANELLED_WORK = 1 << 21
PANELS = 4


def _panels(N, G, H, K):
    return PANELS if N * G * H * K >= MIN_PANELLED_WORK else 1


def _folded_biases(p):
    """(bias [G*H], b_hn [H]) as the drivers add them: b_ih + b_hh over every gate, zeros for a
    missing one; the GRUs take b_hh of r and z only, its n part apart as b_hn (the reset gate
    scales it)."""
    G, H, dt = p.G, p.H, p.dtype
    bias, b_hn = np.zeros(G * H, dt), np.zeros(H, dt)
    if p.b_ih is not None:
        bias += p.b_ih
    if p.b_hh is not None:
        grus = p.cell in ("gru", "gru_reset_before")
        k = (2 if grus else G) * H
        bias[:k] += p.b_hh[:k]
        if grus:
            b_hn[:] = p.b_hh[2 * H :]
    return bias, b_hn


def _plain(bounds, parallel, serial, dt):
    """The plain driver for steps split into these blocks, and its precompile group: the serial
    variant (sequence._serial) for a single block, else the one with parallel regions, once it
    may run (precompile.parallel_ready: in a fresh cache the serial one runs the blocks one after
    another while a worker compiles it)."""
    if len(bounds) > 2 and _warm.parallel_ready(dt):
        return ("plain", parallel)
    return ("serial", serial)


def _forward(p):
    if p.options:
        return _forward_form(p)
    if getattr(p, "W_hr", None) is not None:
        return _forward_proj(p)
    pl = plan(p)
    T, B, H, G, dt, N = p.T, p.B, p.H, p.G, p.dtype, pl.N
    lstm, gru, train = p.cell == "lstm", p.cell == "gru", p.training
    y = np.zeros((T, B, H), dt)
    h_n = p.h0.copy()  # sequences of length 0 keep their state
    c = p.c0[pl.perm] if lstm else np.zeros((1, H), dt)
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias, b_hn = _folded_biases(p)
        xg = np.empty((N, G * H), dt)
        h_prev = np.empty((N, H) if train else (1, H), dt)
        c_prev = np.empty((N, H) if train and lstm else (1, H), dt)
        hn = np.empty((N, H) if train and gru else (1, H), dt)
        bounds = _blocks(B, H, G)
        acc, scr = _scratch(bounds, B, G, dt), _scratch(bounds, 4, G, dt)
        group, driver = _plain(bounds, sequence_forward, sequence_forward_serial, dt)
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward(group, driver, dt)
        with _kernel_call():
            driver(_CELL[p.cell], _panels(N, G, H, p.I), X, _ro(p.W_ih),
                   _ro(_packed_whh(p.W_hh, bounds, H, G)), bounds, bias, b_hn, p.h0[pl.perm],
                   c, pl.perm, pl.batch_sizes, pl.offsets, p.reverse, train, y, h_n, xg,
                   h_prev, c_prev, hn, np.empty((2, B, H), dt), acc, scr, blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, c_prev if lstm else None, hn if gru else None)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None)
    c_n = None
    if lstm:
        c_n = p.c0.copy()
        c_n[pl.perm] = c
    return y, h_n, c_n, cache


def _backward(p, cache: NumbaCache, dy, dh_n, dc_n):
    if p.options:
        return _backward_form(p, cache, dy, dh_n, dc_n)
    if getattr(p, "W_hr", None) is not None:
        return _backward_proj(p, cache, dy, dh_n, dc_n)
    pl = cache.plan
    T, B, I, H, G, dt, N = p.T, p.B, p.I, p.H, p.G, p.dtype, pl.N
    lstm, gru = p.cell == "lstm", p.cell == "gru"
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(G * H, dt), np.zeros(G * H, dt)
    dx = np.zeros((T, B, I), dt)
    if not (T and B):
        return dx, dh_n.copy(), (dc_n.copy() if lstm else None), dW_ih, dW_hh, db_ih, db_hh
    dh = dh_n[pl.perm]
    dc = dc_n[pl.perm] if lstm else np.zeros((1, H), dt)
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    dummy = np.empty((1, H), dt)
    bounds = _blocks(B, H, G)
    group, driver = _plain(bounds, sequence_backward, sequence_backward_serial, dt)
    _warm.wait_backward(group, dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        driver(_CELL[p.cell], _panels(N, G, H, H + I), cache.X, _ro(p.W_ih), _ro(p.W_hh),
               _ro(np.ascontiguousarray(p.W_hh.T)), bounds, cache.xg, cache.h_prev,
               cache.c_prev if lstm else dummy, cache.hn if gru else dummy, _ro(dy), dh, dc,
               pl.perm, pl.batch_sizes, pl.offsets, p.reverse, np.empty((N, G * H), dt),
               np.empty((N, H) if gru else (1, H), dt), dW_ih, dW_hh, db_ih, db_hh, dX,
               _scratch(bounds, 4, G, dt), blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0 = np.empty_like(dh)
    dh0[pl.perm] = dh
    dc0 = None
    if lstm:
        dc0 = np.empty_like(dc)
        dc0[pl.perm] = dc
    return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh


def _proj_blocks(B, H, S):
    """_blocks for the LSTM with projections (the step's product is B*4H*S): unit bounds over H,
    and as many column bounds over S (the projection's and dL/dh_{t-1}'s share per block)."""
    n = min(_threads.call_threads(), numba.config.NUMBA_NUM_THREADS, max(1, H // 8),
            max(1, B * 4 * H * S // MIN_STEP_WORK_PER_THREAD))  # fmt: skip
    return _bounds(H, n), _bounds(S, n)


def _forward_proj(p):
    """The LSTM with projections (p.W_hr [S, H]): y [T,B,S], h_n [B,S], c_n [B,H]."""
    pl = plan(p)
    T, B, H, S, dt, N = p.T, p.B, p.H, p.S, p.dtype, pl.N
    train = p.training
    y = np.zeros((T, B, S), dt)
    h_n = p.h0.copy()  # sequences of length 0 keep their state
    c = p.c0[pl.perm]
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias = _folded_biases(p)[0]
        xg = np.empty((N, 4 * H), dt)
        h_prev = np.empty((N, S) if train else (1, S), dt)
        c_prev = np.empty((N, H) if train else (1, H), dt)
        m = np.empty((N, H) if train else (1, H), dt)
        bounds, sbounds = _proj_blocks(B, H, S)
        acc, scr = _scratch(bounds, B, 4, dt), _scratch(bounds, 4, 4, dt)
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward("proj", lstm_proj_forward, dt)
        with _kernel_call():
            lstm_proj_forward(_panels(N, 4, H, p.I), X, _ro(p.W_ih), _ro(_packed_whh(p.W_hh, bounds, H, 4)),
                              _ro(p.W_hr), _ro(np.ascontiguousarray(p.W_hr.T)), bounds, sbounds, bias,
                              p.h0[pl.perm], c, pl.perm, pl.batch_sizes, pl.offsets, p.reverse, train, y,
                              h_n, xg, h_prev, c_prev, m, np.empty((2, B, S), dt), np.empty((B, H), dt),
                              np.empty((B, S), dt), acc, scr, blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, c_prev, None, m)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None, None)
    c_n = p.c0.copy()
    c_n[pl.perm] = c
    return y, h_n, c_n, cache


def _backward_proj(p, cache: NumbaCache, dy, dh_n, dc_n):
    """The LSTM with projections: the plain LSTM's 7 gradients, then dW_hr [S, H]."""
    pl = cache.plan
    T, B, I, H, S, dt, N = p.T, p.B, p.I, p.H, p.S, p.dtype, pl.N
    dW_ih, dW_hh, dW_hr = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh), np.zeros_like(p.W_hr)
    db_ih, db_hh = np.zeros(4 * H, dt), np.zeros(4 * H, dt)
    dx = np.zeros((T, B, I), dt)
    if not (T and B):
        return dx, dh_n.copy(), dc_n.copy(), dW_ih, dW_hh, db_ih, db_hh, dW_hr
    dh, dc = dh_n[pl.perm], dc_n[pl.perm]
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    bounds, sbounds = _proj_blocks(B, H, S)
    _warm.wait_backward("proj", dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        lstm_proj_backward(_panels(N, 4, H, S + I), cache.X, _ro(p.W_ih), _ro(p.W_hh),
                           _ro(np.ascontiguousarray(p.W_hh.T)), _ro(p.W_hr), _ro(np.ascontiguousarray(p.W_hr.T)),
                           bounds, sbounds, cache.xg, cache.h_prev, cache.c_prev, cache.m, _ro(dy), dh, dc,
                           pl.perm, pl.batch_sizes, pl.offsets, p.reverse, np.empty((N, 4 * H), dt),
                           np.empty((N, S), dt), np.empty((B, H), dt), dW_ih, dW_hh, dW_hr, db_ih, db_hh, dX,
                           _scratch(bounds, 4, 4, dt), blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0, dc0 = np.empty_like(dh), np.empty_like(dc)
    dh0[pl.perm] = dh
    dc0[pl.perm] = dc
    return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr


def _forward_peephole(p):
    """The LSTM with peepholes (p.P [3H] = p_i, p_f, p_o): y [T,B,H], h_n, c_n [B,H]; its cache is
    the plain LSTM's (X, xg, h_prev, c_prev)."""
    if p.options:
        return _forward_form(p)
    pl = plan(p)
    T, B, H, dt, N = p.T, p.B, p.H, p.dtype, pl.N
    train = p.training
    y = np.zeros((T, B, H), dt)
    h_n = p.h0.copy()  # sequences of length 0 keep their state
    c = p.c0[pl.perm]
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias = _folded_biases(p)[0]
        xg = np.empty((N, 4 * H), dt)
        h_prev = np.empty((N, H) if train else (1, H), dt)
        c_prev = np.empty((N, H) if train else (1, H), dt)
        bounds = _blocks(B, H, 4)
        acc, scr = _scratch(bounds, B, 4, dt), _scratch(bounds, 4, 4, dt)
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward("peephole", _peephole_forward_kernel, dt)
        with _kernel_call():
            _peephole_forward_kernel(_panels(N, 4, H, p.I), X, _ro(p.W_ih), _ro(_packed_whh(p.W_hh, bounds, H, 4)),
                                     bounds, bias, _ro(p.P), p.h0[pl.perm], c, pl.perm, pl.batch_sizes, pl.offsets,
                                     p.reverse, train, y, h_n, xg, h_prev, c_prev, np.empty((2, B, H), dt), acc,
                                     scr, blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, c_prev, None)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None)
    c_n = p.c0.copy()
    c_n[pl.perm] = c
    return y, h_n, c_n, cache


def _backward_peephole(p, cache: NumbaCache, dy, dh_n, dc_n):
    """The LSTM with peepholes: the plain LSTM's 7 gradients, then dP [3H]."""
    if p.options:
        return _backward_form(p, cache, dy, dh_n, dc_n)
    pl = cache.plan
    T, B, I, H, dt, N = p.T, p.B, p.I, p.H, p.dtype, pl.N
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh, dP = np.zeros(4 * H, dt), np.zeros(4 * H, dt), np.zeros(3 * H, dt)
    dx = np.zeros((T, B, I), dt)
    if not (T and B):
        return dx, dh_n.copy(), dc_n.copy(), dW_ih, dW_hh, db_ih, db_hh, dP
    dh, dc = dh_n[pl.perm], dc_n[pl.perm]
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    bounds = _blocks(B, H, 4)
    _warm.wait_backward("peephole", dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        _peephole_backward_kernel(_panels(N, 4, H, H + I), cache.X, _ro(p.W_ih), _ro(p.W_hh),
                                  _ro(np.ascontiguousarray(p.W_hh.T)), bounds, cache.xg, cache.h_prev, cache.c_prev,
                                  _ro(p.P), _ro(dy), dh, dc, pl.perm, pl.batch_sizes, pl.offsets, p.reverse,
                                  np.empty((N, 4 * H), dt), dW_ih, dW_hh, db_ih, db_hh, dP, dX,
                                  _scratch(bounds, 4, 4, dt), blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0, dc0 = np.empty_like(dh), np.empty_like(dc)
    dh0[pl.perm] = dh
    dc0[pl.perm] = dc
    return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dP


def _forward_reset_before(p):
    """The GRU with the reset gate before the product (cell "gru_reset_before"): y [T,B,H], h_n
    [B,H]; its cache is the GRU's fields (X, xg: activated r, z, n, h_prev, hn: r * h_{t-1})."""
    if p.options:
        return _forward_form(p)
    pl = plan(p)
    T, B, H, dt, N = p.T, p.B, p.H, p.dtype, pl.N
    train = p.training
    y = np.zeros((T, B, H), dt)
    h_n = p.h0.copy()  # sequences of length 0 keep their state
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias, b_hn = _folded_biases(p)
        xg = np.empty((N, 3 * H), dt)
        h_prev = np.empty((N, H) if train else (1, H), dt)
        hn = np.empty((N, H) if train else (1, H), dt)
        bounds = _blocks(B, H, 3)
        acc, scr = _scratch(bounds, B, 2, dt), _scratch(bounds, 4, 2, dt)
        Wblk = _ro(_packed_whh(np.ascontiguousarray(p.W_hh[: 2 * H]), bounds, H, 2))
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward("reset_before", _reset_before_forward_kernel, dt)
        with _kernel_call():
            _reset_before_forward_kernel(_panels(N, 3, H, p.I), X, _ro(p.W_ih), Wblk,
                                         _ro(np.ascontiguousarray(p.W_hh[2 * H :])), bounds, bias, b_hn,
                                         p.h0[pl.perm], pl.perm, pl.batch_sizes, pl.offsets, p.reverse, train, y,
                                         h_n, xg, h_prev, hn, np.empty((2, B, H), dt), np.empty((B, H), dt), acc,
                                         scr, blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, None, hn)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None)
    return y, h_n, None, cache


def _backward_reset_before(p, cache: NumbaCache, dy, dh_n, dc_n):
    """The GRU with the reset gate before the product: the plain GRU's 7 gradients."""
    if p.options:
        return _backward_form(p, cache, dy, dh_n, dc_n)
    pl = cache.plan
    T, B, I, H, dt, N = p.T, p.B, p.I, p.H, p.dtype, pl.N
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(3 * H, dt), np.zeros(3 * H, dt)
    dx = np.zeros((T, B, I), dt)
    if not (T and B):
        return dx, dh_n.copy(), None, dW_ih, dW_hh, db_ih, db_hh
    dh = dh_n[pl.perm]
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    bounds = _blocks(B, H, 3)
    W_rz, W_hn = p.W_hh[: 2 * H], p.W_hh[2 * H :]
    _warm.wait_backward("reset_before", dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        _reset_before_backward_kernel(_panels(N, 3, H, H + I), cache.X, _ro(p.W_ih), _ro(np.ascontiguousarray(W_rz)),
                                      _ro(np.ascontiguousarray(W_rz.T)), _ro(np.ascontiguousarray(W_hn)),
                                      _ro(np.ascontiguousarray(W_hn.T)), bounds, cache.xg, cache.h_prev, cache.hn,
                                      _ro(dy), dh, pl.perm, pl.batch_sizes, pl.offsets, p.reverse,
                                      np.empty((N, 2 * H), dt), np.empty((N, H), dt), np.empty((B, H), dt), dW_ih,
                                      dW_hh, db_ih, db_hh, dX, blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0 = np.empty_like(dh)
    dh0[pl.perm] = dh
    return dx, dh0, None, dW_ih, dW_hh, db_ih, db_hh


# ONNX's options (activations, clip, input_forget; p.options): every cell through the drivers of
# forms.py, imported (and so compiled) only when such a problem arrives. Same cache as the plain
# cells (NumbaCache, cache_layout) except that xg holds the gates' pre-activations.


def _forms():
    from . import forms

    return forms


def _forward_form(p):
    if p.W_hr is not None:
        return _forward_form_proj(p)
    forms = _forms()
    pl = plan(p)
    T, B, H, G, dt, N = p.T, p.B, p.H, p.G, p.dtype, pl.N
    lstm, grus, rb, train = p.is_lstm, p.cell in ("gru", "gru_reset_before"), p.cell == "gru_reset_before", p.training
    y = np.zeros((T, B, H), dt)
    h_n = p.h0.copy()  # sequences of length 0 keep their state
    c = p.c0[pl.perm] if lstm else np.zeros((1, H), dt)
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias, b_hn = _folded_biases(p)
        xg = np.empty((N, G * H), dt)
        h_prev = np.empty((N, H) if train else (1, H), dt)
        c_prev = np.empty((N, H) if train and lstm else (1, H), dt)
        hn = np.empty((N, H) if train and grus else (1, H), dt)
        bounds = _blocks(B, H, G)
        Wblk = _packed_whh(np.ascontiguousarray(p.W_hh[: 2 * H]), bounds, H, 2) if rb else _packed_whh(p.W_hh, bounds, H, G)
        Whn = np.ascontiguousarray(p.W_hh[2 * H :]) if rb else np.zeros((1, 1), dt)
        P = p.P if p.P is not None else np.zeros(0, dt)
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward("forms", forms.forms_forward, dt)
        with _kernel_call():
            forms.forms_forward(forms.CELL_CODE[p.cell], _panels(N, G, H, p.I), _form_of(p), X, _ro(p.W_ih),
                                _ro(Wblk), _ro(Whn), bounds, bias, b_hn, _ro(P), p.h0[pl.perm], c, pl.perm,
                                pl.batch_sizes, pl.offsets, p.reverse, train, y, h_n, xg, h_prev, c_prev, hn,
                                np.empty((2, B, H), dt), np.empty((B, H), dt), _scratch(bounds, B, G, dt),
                                _scratch(bounds, 5, G, dt), blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, c_prev if lstm else None, hn if grus else None)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None)
    c_n = None
    if lstm:
        c_n = p.c0.copy()
        c_n[pl.perm] = c
    return y, h_n, c_n, cache


def _backward_form(p, cache: NumbaCache, dy, dh_n, dc_n):
    if p.W_hr is not None:
        return _backward_form_proj(p, cache, dy, dh_n, dc_n)
    forms = _forms()
    pl = cache.plan
    T, B, I, H, G, dt, N = p.T, p.B, p.I, p.H, p.G, p.dtype, pl.N
    lstm, grus, rb = p.is_lstm, p.cell in ("gru", "gru_reset_before"), p.cell == "gru_reset_before"
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(G * H, dt), np.zeros(G * H, dt)
    dP = np.zeros(3 * H if p.P is not None else 0, dt)
    dx = np.zeros((T, B, I), dt)
    fifth = (dP,) if p.P is not None else ()
    if not (T and B):
        return (dx, dh_n.copy(), (dc_n.copy() if lstm else None), dW_ih, dW_hh, db_ih, db_hh, *fifth)
    dh = dh_n[pl.perm]
    dc = dc_n[pl.perm] if lstm else np.zeros((1, H), dt)
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    dummy = np.empty((1, H), dt)
    bounds = _blocks(B, H, G)
    Whh = p.W_hh[: 2 * H] if rb else p.W_hh
    Whn = p.W_hh[2 * H :] if rb else np.zeros((1, 1), dt)
    P = p.P if p.P is not None else np.zeros(0, dt)
    _warm.wait_backward("forms", dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        forms.forms_backward(forms.CELL_CODE[p.cell], _panels(N, G, H, H + I), _form_of(p), cache.X, _ro(p.W_ih),
                             _ro(np.ascontiguousarray(Whh)), _ro(np.ascontiguousarray(Whh.T)),
                             _ro(np.ascontiguousarray(Whn)), _ro(np.ascontiguousarray(Whn.T)), bounds,
                             cache.xg, cache.h_prev, cache.c_prev if lstm else dummy, cache.hn if grus else dummy,
                             _ro(P), _ro(dy), dh, dc, pl.perm, pl.batch_sizes, pl.offsets, p.reverse,
                             np.empty((N, 2 * H if rb else G * H), dt), np.empty((N, H) if grus else (1, H), dt),
                             np.empty((B, H), dt), dW_ih, dW_hh, db_ih, db_hh, dP, dX, _scratch(bounds, 5, G, dt),
                             blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0 = np.empty_like(dh)
    dh0[pl.perm] = dh
    dc0 = None
    if lstm:
        dc0 = np.empty_like(dc)
        dc0[pl.perm] = dc
    return (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, *fifth)


def _forward_form_proj(p):
    """The LSTM with projections and ONNX's options: as _forward_proj."""
    forms = _forms()
    pl = plan(p)
    T, B, H, S, dt, N = p.T, p.B, p.H, p.S, p.dtype, pl.N
    train = p.training
    y = np.zeros((T, B, S), dt)
    h_n = p.h0.copy()
    c = p.c0[pl.perm]
    cache = None
    if T and B:
        X = _packed_x(p, pl)
        bias = _folded_biases(p)[0]
        xg = np.empty((N, 4 * H), dt)
        h_prev = np.empty((N, S) if train else (1, S), dt)
        c_prev = np.empty((N, H) if train else (1, H), dt)
        m = np.empty((N, H) if train else (1, H), dt)
        bounds, sbounds = _proj_blocks(B, H, S)
        if train:  # a first training forward: its backward compiles meanwhile in a worker
            _warm.start_backward("forms_proj", forms.forms_lstm_proj_forward, dt)
        with _kernel_call():
            forms.forms_lstm_proj_forward(_panels(N, 4, H, p.I), _form_of(p), X, _ro(p.W_ih),
                                          _ro(_packed_whh(p.W_hh, bounds, H, 4)), _ro(p.W_hr),
                                          _ro(np.ascontiguousarray(p.W_hr.T)), bounds, sbounds, bias, p.h0[pl.perm],
                                          c, pl.perm, pl.batch_sizes, pl.offsets, p.reverse, train, y, h_n, xg,
                                          h_prev, c_prev, m, np.empty((2, B, S), dt), np.empty((B, H), dt),
                                          np.empty((B, S), dt), _scratch(bounds, B, 4, dt), _scratch(bounds, 5, 4, dt),
                                          blas.LIMIT)  # fmt: skip
        if train:
            cache = NumbaCache(pl, X, xg, h_prev, c_prev, None, m)
    elif train:
        cache = NumbaCache(pl, None, None, None, None, None, None)
    c_n = p.c0.copy()
    c_n[pl.perm] = c
    return y, h_n, c_n, cache


def _backward_form_proj(p, cache: NumbaCache, dy, dh_n, dc_n):
    """The LSTM with projections and ONNX's options: as _backward_proj."""
    forms = _forms()
    pl = cache.plan
    T, B, I, H, S, dt, N = p.T, p.B, p.I, p.H, p.S, p.dtype, pl.N
    dW_ih, dW_hh, dW_hr = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh), np.zeros_like(p.W_hr)
    db_ih, db_hh = np.zeros(4 * H, dt), np.zeros(4 * H, dt)
    dx = np.zeros((T, B, I), dt)
    if not (T and B):
        return dx, dh_n.copy(), dc_n.copy(), dW_ih, dW_hh, db_ih, db_hh, dW_hr
    dh, dc = dh_n[pl.perm], dc_n[pl.perm]
    dX = dx.reshape(T * B, I) if pl.dense else np.empty((N, I), dt)
    bounds, sbounds = _proj_blocks(B, H, S)
    _warm.wait_backward("forms_proj", dt)  # its kernel, if a worker is compiling it
    with _kernel_call():
        forms.forms_lstm_proj_backward(_panels(N, 4, H, S + I), _form_of(p), cache.X, _ro(p.W_ih), _ro(p.W_hh),
                                       _ro(np.ascontiguousarray(p.W_hh.T)), _ro(p.W_hr),
                                       _ro(np.ascontiguousarray(p.W_hr.T)), bounds, sbounds, cache.xg, cache.h_prev,
                                       cache.c_prev, cache.m, _ro(dy), dh, dc, pl.perm, pl.batch_sizes, pl.offsets,
                                       p.reverse, np.empty((N, 4 * H), dt), np.empty((N, S), dt),
                                       np.empty((B, H), dt), dW_ih, dW_hh, dW_hr, db_ih, db_hh, dX,
                                       _scratch(bounds, 5, 4, dt), blas.LIMIT)  # fmt: skip
    if not pl.dense:
        dx.reshape(T * B, I)[packed_rows(pl, B)] = dX
    dh0, dc0 = np.empty_like(dh), np.empty_like(dc)
    dh0[pl.perm] = dh
    dc0[pl.perm] = dc
    return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr


def _form_of(p):
    return _forms().form_of(p, p.dtype, DEFAULT_ACTS[p.cell])


def _apply_threads(n):
    """Numba's threads run the step blocks and the product panels."""
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


_threads.register(_apply_threads)

rnn_tanh_forward = rnn_relu_forward = lstm_forward = gru_forward = _forward
rnn_tanh_backward = rnn_relu_backward = lstm_backward = gru_backward = _backward
lstm_peephole_forward, lstm_peephole_backward = _forward_peephole, _backward_peephole
gru_reset_before_forward, gru_reset_before_backward = _forward_reset_before, _backward_reset_before


def entering_cell_state(p, cache):
    """LSTM: c entering each step, [T, B, H] (valid steps; others zero)."""
    return unpack(cache.plan, cache.c_prev, p.T, p.B)
