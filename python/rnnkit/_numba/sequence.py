"""The Numba sequence drivers: the same schedule as the C++ backend, written once for all cells
(cell codes below), compiled per dtype and cached on disk (_cache.py).

Forward: the input projection of every step (blas.gemm, in npan panels); then per
step, each thread takes one block of hidden units (bounds[b]:bounds[b+1], every gate of those
units): its share of the recurrent product (gemm.nt_product over its rows of Wblk, the W_hh rows
of the block packed together once per call) and the fused pointwise pass for its units. One
parallel region (prange over blocks) per step; with one block it runs on the calling thread.
Backward: per step (in reverse) the pointwise pass by unit blocks, then dL/dh_{t-1} = dgates @
W_hh split by output columns (a second region); every step's dgates is kept, and dW_ih, dW_hh,
dx and the biases are formed at the end as large products (blas.gemm, in npan panels).

Shapes: see rnnkit/_plan.py for the sorted, packed layout; G*H columns in PyTorch's gate order.
Constants are typed from the arrays (one = dtype(1)): a bare 1 would make float32 maths float64.
"""

# Tested by tests/test_backends.py (backend "numba").

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

from ._cache import CACHE
from .activations import FASTMATH, sigmoid_inplace, tanh_inplace
from .blas import gemm
from .gemm import step_product

RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3

# The large products (input projection, weight and input gradients) are cut into npan panels, each
# one single-threaded BLAS call (blas.py) run by one of Numba's threads. npan is set by the adapter
# from the problem's size alone, so the results do not depend on the thread count.

# nogil: a call releases the GIL like the C++ backend, so other Python threads run meanwhile.
_OPTS = dict(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy")
# Only the explicit prange loops run in parallel: array expressions stay plain loops.
_PARALLEL = dict(prange=True, numpy=False, reduction=False, setitem=False, stencil=False,
                 fusion=False, comprehension=False)  # fmt: skip


@njit(**_OPTS)
def _copy(dst, src):
    """dst[:] = src as a plain loop: Numba's slice assignment checks for overlap and may allocate a
    temporary, which per row of a step cost more than the step's pointwise pass."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(**_OPTS)
def _copy_rows(dst, src):
    """dst[:, :] = src as plain loops (an array assignment makes Numba compile its broadcast-error
    path, several seconds of the first call)."""
    for i in range(dst.shape[0]):
        _copy(dst[i], src[i])


@njit(**_OPTS)
def _pointwise_forward(cell, training, H, u0, xg_row, a_row, bias, b_hn, h_prev_row, c_row,
                       c_prev_row, hn_row, y_row, scr):  # fmt: skip
    """One row of one step, units u0 .. u0+n-1 (n = len(y_row)). xg_row [G*H]: the input
    projection (all units); a_row [G*n]: this block's recurrent projection, gate-major. Writes
    y_row <- h_t, updates c_row (LSTM); in training the activated gates replace this block's
    entries of xg_row (RNN: h_t), and c_prev_row (LSTM) / hn_row (GRU) are filled."""
    n = y_row.shape[0]
    G = a_row.shape[0] // n
    one = y_row.dtype.type(1)
    g = scr[0, : G * n]
    k, s = scr[1], scr[2]
    for q in range(G if cell != GRU else 2):
        for u in range(n):
            g[q * n + u] = xg_row[q * H + u0 + u] + a_row[q * n + u] + bias[q * H + u0 + u]
    if cell == GRU:
        sigmoid_inplace(g[: 2 * n], k)  # r, z
        hn = scr[3, :n]
        for u in range(n):
            hn[u] = a_row[2 * n + u] + b_hn[u0 + u]
            g[2 * n + u] = xg_row[2 * H + u0 + u] + bias[2 * H + u0 + u] + g[u] * hn[u]
        tanh_inplace(g[2 * n :], k, s)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        for u in range(n):
            z = g[n + u]
            y_row[u] = (one - z) * g[2 * n + u] + z * h_prev_row[u]
        if training:
            _copy(hn_row, hn)
    elif cell == LSTM:
        sigmoid_inplace(g[: 2 * n], k)  # i, f
        tanh_inplace(g[2 * n : 3 * n], k, s)  # g
        sigmoid_inplace(g[3 * n :], k)  # o
        tc = scr[3, :n]
        for u in range(n):
            cp = c_row[u]
            cn = g[n + u] * cp + g[u] * g[2 * n + u]  # c_t = f * c_{t-1} + i * g
            if training:
                c_prev_row[u] = cp
            c_row[u] = cn
            tc[u] = cn
        tanh_inplace(tc, k, s)
        for u in range(n):
            y_row[u] = g[3 * n + u] * tc[u]  # h_t = o * tanh(c_t)
    elif cell == RNN_TANH:
        tanh_inplace(g, k, s)
        _copy(y_row, g)
    else:
        for u in range(n):
            y_row[u] = one - one if g[u] < 0 else g[u]  # relu keeps NaN
        _copy(g, y_row)
    if training:
        for q in range(G):
            for u in range(n):
                xg_row[q * H + u0 + u] = g[q * n + u]  # activated gates for backward


@njit(**_OPTS)
def _forward_block(cell, training, b, bounds, t, rows, o, rows_next, hcur, hnext, Wblk, WblkT, xg,
                   bias, b_hn, c, c_prev, hn, y, h_n, h0s, perm, acc, scr):  # fmt: skip
    """Block b of one step: its rows of the recurrent product, then its units' pointwise pass."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = h0s.shape[1]
    G = xg.shape[1] // H
    ab = acc[b]
    # ab[:rows, :G*n] = h_{t-1} W_block^T
    step_product(hcur, Wblk, WblkT, G * u0, ab, 0, G * n, False)
    for i in range(rows):
        y_row = y[t, perm[i], u0:u1]
        _pointwise_forward(cell, training, H, u0, xg[o + i], ab[i, : G * n], bias, b_hn,
                           hcur[i, u0:u1], c[i, u0:u1] if cell == LSTM else c[0, :n],
                           c_prev[o + i, u0:u1] if training and cell == LSTM else c_prev[0, :n],
                           hn[o + i, u0:u1] if training and cell == GRU else hn[0, :n], y_row,
                           scr[b])  # fmt: skip
        if i < rows_next:
            _copy(hnext[i, u0:u1], y_row)
        else:
            _copy(h_n[perm[i], u0:u1], y_row)  # the sequence ends here
    for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
        _copy(hnext[i, u0:u1], h0s[i, u0:u1])


@njit(**_OPTS)
def _panel(n, p, npan):
    """Rows (or columns) of panel p of npan over n."""
    return (n * p) // npan, (n * (p + 1)) // npan


@njit(**_OPTS)
def _input_projection(p, npan, X, Wih, xg, limit):
    """Panel p of xg = X @ W_ih^T (rows)."""
    n0, n1 = _panel(X.shape[0], p, npan)
    if n1 > n0:
        gemm(False, True, X[n0:n1], Wih, xg[n0:n1], 0, limit)


@njit(parallel=_PARALLEL, **_OPTS)
def sequence_forward(cell, npan, X, Wih, Wblk, bounds, bias, b_hn, h0s, c, perm, bs, off, reverse,
                     training, y, h_n, xg, h_prev, c_prev, hn, hbuf, acc, scr, limit):  # fmt: skip
    """Fills y [T,B,H] (padded rows untouched), h_n [B,H] (pre-filled with h0), c [B,H] (sorted,
    in place), xg [N,G*H]; in training also h_prev, c_prev (LSTM), hn (GRU) [N,H].
    Wblk [G*H, H]: W_hh's rows grouped by unit block; acc [nblk, B, G*max block]; scr [nblk, 4, *];
    limit: the largest M or K of one BLAS call (blas.LIMIT)."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    # the transpose is read only by steps of one or two rows
    WblkT = np.ascontiguousarray(Wblk.T) if bs.min() <= 2 else Wblk[:1, :1].copy()
    # Block and panel indices are passed as int64 everywhere (prange's own index is unsigned, a
    # literal 0 is its own type): each callee then compiles once instead of three times.
    if X.shape[1] == 0:
        for n in range(xg.shape[0]):
            for j in range(xg.shape[1]):
                xg[n, j] = 0
    else:  # the input projection of every step at once
        for p in prange(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    t0 = T - 1 if reverse else 0
    if training:
        _copy_rows(h_prev[off[t0] : off[t0] + bs[t0]], h0s[: bs[t0]])
    else:
        _copy_rows(hbuf[0], h0s)
        _copy_rows(hbuf[1], h0s)
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        last = s == T - 1
        tn = t if last else (t - 1 if reverse else t + 1)
        rows_next = 0 if last else bs[tn]
        hcur = h_prev[o : o + rows] if training else hbuf[s % 2, :rows]
        hnext = h_prev[off[tn] : off[tn] + bs[tn]] if training else hbuf[(s + 1) % 2]
        for b in prange(nblk):
            _forward_block(cell, training, np.int64(b), bounds, t, rows, o, rows_next, hcur, hnext, Wblk,
                           WblkT, xg, bias, b_hn, c, c_prev, hn, y, h_n, h0s, perm, acc, scr)  # fmt: skip


@njit(**_OPTS)
def _pointwise_backward(cell, H, u0, g, h_prev_row, c_prev_row, hn_row, dy_row, dh_row, dc_row,
                        dg_row, dn_row, scr):  # fmt: skip
    """One row of one step, units u0 .. u0+n-1: gradients of the pre-activations (dg_row, the
    block's entries of [G*H]) from dL/dh (and dL/dc) leaving the step; g: activated gates [G*H]."""
    n = dy_row.shape[0]
    one = dy_row.dtype.type(1)
    if cell == LSTM:
        tc = scr[0, :n]
        for u in range(n):
            tc[u] = g[H + u0 + u] * c_prev_row[u] + g[u0 + u] * g[2 * H + u0 + u]
        tanh_inplace(tc, scr[1], scr[2])  # tanh(c_t), recomputed rather than stored
        for u in range(n):
            j = u0 + u
            ig, fg, gg, og = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
            dht = dy_row[u] + dh_row[u]
            dct = dc_row[u] + dht * og * (one - tc[u] * tc[u])
            dg_row[j] = dct * gg * ig * (one - ig)
            dg_row[H + j] = dct * c_prev_row[u] * fg * (one - fg)
            dg_row[2 * H + j] = dct * ig * (one - gg * gg)
            dg_row[3 * H + j] = dht * tc[u] * og * (one - og)
            dc_row[u] = dct * fg
    elif cell == GRU:
        for u in range(n):
            j = u0 + u
            r, z, nn = g[j], g[H + j], g[2 * H + j]
            dht = dy_row[u] + dh_row[u]
            dnv = dht * (one - z) * (one - nn * nn)
            dg_row[j] = dnv * hn_row[u] * r * (one - r)
            dg_row[H + j] = dht * (h_prev_row[u] - nn) * z * (one - z)
            dg_row[2 * H + j] = dnv * r  # recurrent side; the input side is dn
            dn_row[u] = dnv
            dh_row[u] = dht * z  # direct path to h_{t-1}; the product adds the rest
    else:
        for u in range(n):
            h = g[u0 + u]
            d = dy_row[u] + dh_row[u]
            if cell == RNN_TANH:
                dg_row[u0 + u] = d * (one - h * h)
            else:
                dg_row[u0 + u] = d if h > 0 else one - one


@njit(**_OPTS)
def _backward_block(cell, b, bounds, t, rows, o, xg, h_prev, c_prev, hn, dy, dh, dc, perm, dg, dn,
                    scr):  # fmt: skip
    """Block b of one backward step: the pointwise pass of its units for every running row."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    H = dh.shape[1]
    for i in range(rows):
        _pointwise_backward(cell, H, u0, xg[o + i], h_prev[o + i, u0:u1],
                            c_prev[o + i, u0:u1] if cell == LSTM else c_prev[0, :n],
                            hn[o + i, u0:u1] if cell == GRU else hn[0, :n], dy[t, perm[i], u0:u1],
                            dh[i, u0:u1], dc[i, u0:u1] if cell == LSTM else dc[0, :n], dg[o + i],
                            dn[o + i, u0:u1] if cell == GRU else dn[0, :n], scr[b])  # fmt: skip


@njit(**_OPTS)
def _dh_block(cell, b, bounds, rows, o, dg, WhhT, Whh, dh):
    """Columns bounds[b]:bounds[b+1] of dL/dh_{t-1} = dgates @ W_hh (GRU: added to the direct path;
    rows past their sequence's end keep their dh)."""
    u0, u1 = bounds[b], bounds[b + 1]
    if u1 > u0:
        step_product(dg[o : o + rows], WhhT, Whh, u0, dh, u0, u1 - u0, cell == GRU)


@njit(**_OPTS)
def _column_sums(A, out):
    """out[j] = sum_n A[n, j], in row order (deterministic)."""
    for j in range(out.shape[0]):
        out[j] = 0
    for n in range(A.shape[0]):
        for j in range(out.shape[0]):
            out[j] += A[n, j]


@njit(**_OPTS)
def _weight_grads(cell, p, npan, dg, dn, h_prev, X, dW_hh, dW_ih, db_hh, db_ih, limit):
    """Rows j0:j1 (panel p of G*H) of dW_hh = dg^T h_prev, dW_ih = dg^T x and the biases. GRU: the
    input side of the n gate takes dn where the recurrent side takes dg = dn * r."""
    j0, j1 = _panel(dg.shape[1], p, npan)
    if j1 == j0:
        return
    H = h_prev.shape[1]
    dgp = dg[:, j0:j1]
    gemm(True, False, dgp, h_prev, dW_hh[j0:j1], 0, limit)
    _column_sums(dgp, db_hh[j0:j1])
    if cell == GRU and j1 > 2 * H:
        dgi = np.ascontiguousarray(dgp)
        for j in range(max(j0, 2 * H), j1):
            for n in range(dgi.shape[0]):
                dgi[n, j - j0] = dn[n, j - 2 * H]
        _column_sums(dgi, db_ih[j0:j1])
        if X.shape[1] > 0:
            gemm(True, False, dgi, X, dW_ih[j0:j1], 0, limit)
    else:
        _copy(db_ih[j0:j1], db_hh[j0:j1])
        if X.shape[1] > 0:
            gemm(True, False, dgp, X, dW_ih[j0:j1], 0, limit)


@njit(**_OPTS)
def _input_grads(cell, p, npan, dg, dn, Wih, dX, limit):
    """Rows n0:n1 (panel p) of dx = dg W_ih, with dn on the n gate's input side (GRU)."""
    n0, n1 = _panel(dg.shape[0], p, npan)
    if n1 == n0 or Wih.shape[1] == 0:
        return
    if cell == GRU:
        H = dn.shape[1]
        _copy_rows(dg[n0:n1, 2 * H :], dn[n0:n1])
    gemm(False, False, dg[n0:n1], Wih, dX[n0:n1], 0, limit)


@njit(parallel=_PARALLEL, **_OPTS)
def sequence_backward(cell, npan, X, Wih, Whh, WhhT, bounds, xg, h_prev, c_prev, hn, dy, dh, dc,
                      perm, bs, off, reverse, dg, dn, dW_ih, dW_hh, db_ih, db_hh, dX,
                      scr, limit):  # fmt: skip
    """dh, dc [B,H] (sorted rows) hold dL/dh_n, dL/dc_n on entry and dL/dh0, dL/dc0 on exit;
    fills dg [N,G*H], dn [N,H] (GRU), the weight and bias gradients and dX [N,I] (packed).
    WhhT [H, G*H]: W_hh transposed (contiguous)."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        for b in prange(nblk):
            _backward_block(cell, np.int64(b), bounds, t, rows, o, xg, h_prev, c_prev, hn, dy, dh, dc,
                            perm, dg, dn, scr)  # fmt: skip
        for b in prange(nblk):
            _dh_block(cell, np.int64(b), bounds, rows, o, dg, WhhT, Whh, dh)
    # Weight, bias and input gradients: every step's share at once, in panels.
    for p in prange(npan):
        _weight_grads(cell, np.int64(p), npan, dg, dn, h_prev, X, dW_hh, dW_ih, db_hh, db_ih, limit)
    for p in prange(npan):
        _input_grads(cell, np.int64(p), npan, dg, dn, Wih, dX, limit)


def _serial(driver):
    """The same driver compiled without parallel regions (its prange loops run as plain loops on the
    calling thread): the one for calls whose steps are a single block (bounds of two entries), where
    the parallel one's regions would only wake the threads. A dispatcher of its own under its own
    name, so each has its own entries in the disk cache (Numba's cache key does not hold the
    parallel flag). A first call compiles only the variant it runs, and the parallel regions are
    what make the first call long (fresh cache, an LSTM training forward, float32, 2-vCPU EPYC,
    two runs each: 20.4-21.5 s with them, 11.9-12.7 s without)."""
    f = driver.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    g.__qualname__, g.__doc__, g.__module__ = f.__qualname__ + "_serial", f.__doc__, f.__module__
    return njit(**_OPTS)(g)


sequence_forward_serial = _serial(sequence_forward)
sequence_backward_serial = _serial(sequence_backward)


# The LSTM with projections (torch's proj_size; W_hr [S, H], S < H): h_t = m_t W_hr^T with
# m_t = o * tanh(c_t) [B, H], so h (and y) is S wide and W_hh is [4H, S]. Drivers of their own, so
# that the ones above (and their compiled code) stay as they are; same packed layout and helpers.
# Per step, forward: the gate product and pointwise pass by unit blocks (bounds over H, writing
# m_t), then the projection by column blocks (sbounds over S), two parallel regions. Backward: dL/dh_t
# = dy_t + dh (S wide, kept per row in dH), then by unit blocks dm = dL/dh_t W_hr and the plain
# LSTM's pointwise pass with dm as its dL/dh, then dL/dh_{t-1} = dgates W_hh by column blocks.
# dW_hr = dH^T M (every step's m, kept in training) joins the large products at the end. Every
# output element is computed the same way whatever the blocks (step_product, elementwise passes),
# so the results do not depend on the thread count.


@njit(**_OPTS)
def _proj_gates_block(training, b, bounds, rows, o, hcur, Wblk, WblkT, xg, bias, c, c_prev, dummy,
                      m, acc, scr):  # fmt: skip
    """Units bounds[b]:bounds[b+1] of one step: their rows of h_{t-1} W_hh^T, then the pointwise
    pass writing m_t = o * tanh(c_t) to m[:rows] and updating c (and, in training, xg and c_prev)."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = c.shape[1]
    ab = acc[b]
    step_product(hcur, Wblk, WblkT, 4 * u0, ab, 0, 4 * n, False)
    for i in range(rows):
        _pointwise_forward(np.int64(LSTM), training, H, u0, xg[o + i], ab[i, : 4 * n], bias, bias,
                           dummy[0, :n], c[i, u0:u1], c_prev[o + i, u0:u1] if training else c_prev[0, :n],
                           dummy[0, :n], m[i, u0:u1], scr[b])  # fmt: skip


@njit(**_OPTS)
def _proj_out_block(b, sbounds, t, rows, rows_next, mcur, Whr, WhrT, hstep, hnext, y, h_n, h0s, perm):
    """Columns sbounds[b]:sbounds[b+1] of h_t = m_t W_hr^T, routed to y, to the next step's state
    and to h_n for the rows whose sequence ends here."""
    s0, s1 = sbounds[b], sbounds[b + 1]
    if s1 == s0:
        return
    step_product(mcur, Whr, WhrT, s0, hstep, s0, s1 - s0, False)
    for i in range(rows):
        row = hstep[i, s0:s1]
        _copy(y[t, perm[i], s0:s1], row)
        if i < rows_next:
            _copy(hnext[i, s0:s1], row)
        else:
            _copy(h_n[perm[i], s0:s1], row)  # the sequence ends here
    for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
        _copy(hnext[i, s0:s1], h0s[i, s0:s1])


@njit(parallel=_PARALLEL, **_OPTS)
def lstm_proj_forward(npan, X, Wih, Wblk, Whr, WhrT, bounds, sbounds, bias, h0s, c, perm, bs, off,
                      reverse, training, y, h_n, xg, h_prev, c_prev, m, hbuf, mbuf, hstep, acc, scr,
                      limit):  # fmt: skip
    """The LSTM with projections: fills y [T,B,S] (padded rows untouched), h_n [B,S] (pre-filled
    with h0), c [B,H] (sorted, in place), xg [N,4H]; in training also h_prev [N,S], c_prev [N,H] and
    m [N,H] (o * tanh(c_t)). Wblk [4H, S]: W_hh's rows grouped by the unit blocks of bounds (over
    H); sbounds: the column blocks of the projection (over S), as many; Whr [S,H], WhrT = Whr^T;
    hbuf [2,B,S], mbuf [B,H], hstep [B,S] scratch; acc [nblk, B, 4*max block]; scr [nblk, 4, *]."""
    T = bs.shape[0]
    H = c.shape[1]
    nblk = bounds.shape[0] - 1
    WblkT = np.ascontiguousarray(Wblk.T) if bs.min() <= 2 else Wblk[:1, :1].copy()
    dummy = np.empty((1, H), c.dtype)
    if X.shape[1] == 0:
        for n in range(xg.shape[0]):
            for j in range(xg.shape[1]):
                xg[n, j] = 0
    elif nblk == 1:
        for p in range(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    else:
        for p in prange(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    t0 = T - 1 if reverse else 0
    if training:
        _copy_rows(h_prev[off[t0] : off[t0] + bs[t0]], h0s[: bs[t0]])
    else:
        _copy_rows(hbuf[0], h0s)
        _copy_rows(hbuf[1], h0s)
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        last = s == T - 1
        tn = t if last else (t - 1 if reverse else t + 1)
        rows_next = 0 if last else bs[tn]
        hcur = h_prev[o : o + rows] if training else hbuf[s % 2, :rows]
        hnext = h_prev[off[tn] : off[tn] + bs[tn]] if training else hbuf[(s + 1) % 2]
        mcur = m[o : o + rows] if training else mbuf[:rows]
        if nblk == 1:
            _proj_gates_block(training, np.int64(0), bounds, rows, o, hcur, Wblk, WblkT, xg, bias, c,
                              c_prev, dummy, mcur, acc, scr)  # fmt: skip
            _proj_out_block(np.int64(0), sbounds, t, rows, rows_next, mcur, Whr, WhrT, hstep, hnext, y,
                            h_n, h0s, perm)  # fmt: skip
        else:
            for b in prange(nblk):
                _proj_gates_block(training, np.int64(b), bounds, rows, o, hcur, Wblk, WblkT, xg, bias,
                                  c, c_prev, dummy, mcur, acc, scr)  # fmt: skip
            for b in prange(nblk):
                _proj_out_block(np.int64(b), sbounds, t, rows, rows_next, mcur, Whr, WhrT, hstep, hnext,
                                y, h_n, h0s, perm)  # fmt: skip


@njit(**_OPTS)
def _proj_backward_block(b, bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow, dummy, dc, dg, scr):
    """Units bounds[b]:bounds[b+1] of one backward step: dm = dL/dh_t W_hr for them, then the LSTM's
    pointwise pass with dm as the gradient of o * tanh(c_t)."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = dc.shape[1]
    step_product(dH[o : o + rows], WhrT, Whr, u0, dm, u0, n, False)
    for i in range(rows):
        _pointwise_backward(np.int64(LSTM), H, u0, xg[o + i], zrow[u0:u1], c_prev[o + i, u0:u1],
                            dummy[0, :n], dm[i, u0:u1], zrow[u0:u1], dc[i, u0:u1], dg[o + i],
                            dummy[0, :n], scr[b])  # fmt: skip


@njit(**_OPTS)
def _proj_weight_grad(p, npan, dH, m, dW_hr, limit):
    """Rows s0:s1 (panel p of S) of dW_hr = dH^T m over every packed row."""
    s0, s1 = _panel(dH.shape[1], p, npan)
    if s1 > s0:
        gemm(True, False, dH[:, s0:s1], m, dW_hr[s0:s1], 0, limit)


@njit(parallel=_PARALLEL, **_OPTS)
def lstm_proj_backward(npan, X, Wih, Whh, WhhT, Whr, WhrT, bounds, sbounds, xg, h_prev, c_prev, m, dy,
                       dh, dc, perm, bs, off, reverse, dg, dH, dm, dW_ih, dW_hh, dW_hr, db_ih, db_hh,
                       dX, scr, limit):  # fmt: skip
    """The LSTM with projections: dh [B,S], dc [B,H] (sorted rows) hold dL/dh_n, dL/dc_n on entry
    and dL/dh0, dL/dc0 on exit; fills dg [N,4H], dH [N,S] (dL/dh_t of every step), the weight and
    bias gradients and dX [N,I] (packed). WhhT [S,4H], WhrT [H,S]: the transposes (contiguous);
    dm [B,H] scratch; bounds (over H) and sbounds (over S) as in lstm_proj_forward."""
    T = bs.shape[0]
    S, H = dh.shape[1], dc.shape[1]
    nblk = bounds.shape[0] - 1
    zrow = np.zeros(H, dc.dtype)
    dummy = np.empty((1, H), dc.dtype)
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        for i in range(rows):  # dL/dh_t = dy_t + dL/dh_t from step t+1
            for j in range(S):
                dH[o + i, j] = dy[t, perm[i], j] + dh[i, j]
        if nblk == 1:
            _proj_backward_block(np.int64(0), bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow,
                                 dummy, dc, dg, scr)  # fmt: skip
            _dh_block(np.int64(LSTM), np.int64(0), sbounds, rows, o, dg, WhhT, Whh, dh)
        else:
            for b in prange(nblk):
                _proj_backward_block(np.int64(b), bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow,
                                     dummy, dc, dg, scr)  # fmt: skip
            for b in prange(nblk):
                _dh_block(np.int64(LSTM), np.int64(b), sbounds, rows, o, dg, WhhT, Whh, dh)
    if nblk == 1:
        for p in range(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh,
                          db_ih, limit)  # fmt: skip
            _proj_weight_grad(np.int64(p), npan, dH, m, dW_hr, limit)
        for p in range(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)
    else:
        for p in prange(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh,
                          db_ih, limit)  # fmt: skip
            _proj_weight_grad(np.int64(p), npan, dH, m, dW_hr, limit)
        for p in prange(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)


# The LSTM with peepholes (cell "lstm_peephole"; P [3H] = (p_i, p_f, p_o)): i and f see c_{t-1},
# o sees c_t, each through a diagonal weight. Drivers of their own, as for the projections, so that
# the plain kernels (and their compiled code) stay as they are; the same schedule, packed layout,
# cache (xg: activated gates, h_prev, c_prev) and helpers, with pointwise passes of their own.
# Backward recomputes c_t = f * c_{t-1} + i * g from the saved gates (dP's output part and tanh(c_t))
# and adds each row's share of dP = (sum dai c_{t-1}, sum daf c_{t-1}, sum dao c_t) inside its unit
# block: a unit's sum runs over the steps (in backward order) and the rows (in order) whatever the
# blocks, so the results do not depend on the thread count.


@njit(**_OPTS)
def _peep_pointwise_forward(training, H, u0, xg_row, a_row, bias, P, c_row, c_prev_row, y_row, scr):
    """One row of one step, units u0 .. u0+n-1 (n = len(y_row)), as _pointwise_forward's LSTM with
    the peepholes: i, f = sigmoid(. + p_{i,f} c_{t-1}), o = sigmoid(. + p_o c_t)."""
    n = y_row.shape[0]
    g = scr[0, : 4 * n]
    k, s = scr[1], scr[2]
    tc = scr[3, :n]
    for q in range(4):
        for u in range(n):
            g[q * n + u] = xg_row[q * H + u0 + u] + a_row[q * n + u] + bias[q * H + u0 + u]
    for u in range(n):
        cp = c_row[u]
        g[u] += P[u0 + u] * cp  # i peeps at c_{t-1}
        g[n + u] += P[H + u0 + u] * cp  # f peeps at c_{t-1}
    sigmoid_inplace(g[: 2 * n], k)  # i, f
    tanh_inplace(g[2 * n : 3 * n], k, s)  # g
    for u in range(n):
        cp = c_row[u]
        cn = g[n + u] * cp + g[u] * g[2 * n + u]  # c_t = f * c_{t-1} + i * g
        if training:
            c_prev_row[u] = cp
        c_row[u] = cn
        tc[u] = cn
        g[3 * n + u] += P[2 * H + u0 + u] * cn  # o peeps at c_t
    sigmoid_inplace(g[3 * n :], k)  # o
    tanh_inplace(tc, k, s)
    for u in range(n):
        y_row[u] = g[3 * n + u] * tc[u]  # h_t = o * tanh(c_t)
    if training:
        for q in range(4):
            for u in range(n):
                xg_row[q * H + u0 + u] = g[q * n + u]  # activated gates for backward


@njit(**_OPTS)
def _peep_forward_block(training, b, bounds, t, rows, o, rows_next, hcur, hnext, Wblk, WblkT, xg, bias, P,
                        c, c_prev, y, h_n, h0s, perm, acc, scr):  # fmt: skip
    """Block b of one step: its rows of the recurrent product, then its units' pointwise pass."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = h0s.shape[1]
    ab = acc[b]
    step_product(hcur, Wblk, WblkT, 4 * u0, ab, 0, 4 * n, False)
    for i in range(rows):
        y_row = y[t, perm[i], u0:u1]
        _peep_pointwise_forward(training, H, u0, xg[o + i], ab[i, : 4 * n], bias, P, c[i, u0:u1],
                                c_prev[o + i, u0:u1] if training else c_prev[0, :n], y_row, scr[b])  # fmt: skip
        if i < rows_next:
            _copy(hnext[i, u0:u1], y_row)
        else:
            _copy(h_n[perm[i], u0:u1], y_row)  # the sequence ends here
    for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
        _copy(hnext[i, u0:u1], h0s[i, u0:u1])


@njit(parallel=_PARALLEL, **_OPTS)
def lstm_peephole_forward(npan, X, Wih, Wblk, bounds, bias, P, h0s, c, perm, bs, off, reverse, training,
                          y, h_n, xg, h_prev, c_prev, hbuf, acc, scr, limit):  # fmt: skip
    """The LSTM with peepholes (P [3H]): fills y [T,B,H] (padded rows untouched), h_n [B,H]
    (pre-filled with h0), c [B,H] (sorted, in place), xg [N,4H]; in training also h_prev and
    c_prev [N,H]. The other arguments as sequence_forward's."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    WblkT = np.ascontiguousarray(Wblk.T) if bs.min() <= 2 else Wblk[:1, :1].copy()
    if X.shape[1] == 0:
        for n in range(xg.shape[0]):
            for j in range(xg.shape[1]):
                xg[n, j] = 0
    elif nblk == 1:
        for p in range(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    else:
        for p in prange(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    t0 = T - 1 if reverse else 0
    if training:
        _copy_rows(h_prev[off[t0] : off[t0] + bs[t0]], h0s[: bs[t0]])
    else:
        _copy_rows(hbuf[0], h0s)
        _copy_rows(hbuf[1], h0s)
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        last = s == T - 1
        tn = t if last else (t - 1 if reverse else t + 1)
        rows_next = 0 if last else bs[tn]
        hcur = h_prev[o : o + rows] if training else hbuf[s % 2, :rows]
        hnext = h_prev[off[tn] : off[tn] + bs[tn]] if training else hbuf[(s + 1) % 2]
        if nblk == 1:
            _peep_forward_block(training, np.int64(0), bounds, t, rows, o, rows_next, hcur, hnext, Wblk, WblkT,
                                xg, bias, P, c, c_prev, y, h_n, h0s, perm, acc, scr)  # fmt: skip
        else:
            for b in prange(nblk):
                _peep_forward_block(training, np.int64(b), bounds, t, rows, o, rows_next, hcur, hnext, Wblk,
                                    WblkT, xg, bias, P, c, c_prev, y, h_n, h0s, perm, acc, scr)  # fmt: skip


@njit(**_OPTS)
def _peep_pointwise_backward(H, u0, g, c_prev_row, dy_row, dh_row, dc_row, dg_row, P, dP, scr):
    """One row of one backward step, units u0 .. u0+n-1: the gates' pre-activation gradients
    (dg_row, the block's entries of [4H]) from dL/dh and dL/dc leaving the step, dL/dc_{t-1} into
    dc_row, and the row's share of dP (its entries u0+u, H+u0+u, 2H+u0+u) added."""
    n = dy_row.shape[0]
    one = dy_row.dtype.type(1)
    tc, ct = scr[0, :n], scr[3, :n]
    for u in range(n):
        cn = g[H + u0 + u] * c_prev_row[u] + g[u0 + u] * g[2 * H + u0 + u]  # c_t, recomputed
        ct[u] = cn
        tc[u] = cn
    tanh_inplace(tc, scr[1], scr[2])
    for u in range(n):
        j = u0 + u
        ig, fg, gg, og = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
        cp = c_prev_row[u]
        dht = dy_row[u] + dh_row[u]
        dao = dht * tc[u] * og * (one - og)  # h_t = o * tanh(c_t), through the sigmoid
        dct = dc_row[u] + dht * og * (one - tc[u] * tc[u]) + dao * P[2 * H + j]  # o peeps at c_t
        dai = dct * gg * ig * (one - ig)
        daf = dct * cp * fg * (one - fg)
        dg_row[j] = dai
        dg_row[H + j] = daf
        dg_row[2 * H + j] = dct * ig * (one - gg * gg)
        dg_row[3 * H + j] = dao
        dc_row[u] = dct * fg + dai * P[j] + daf * P[H + j]  # to c_{t-1}, the peepholes too
        dP[j] += dai * cp
        dP[H + j] += daf * cp
        dP[2 * H + j] += dao * ct[u]


@njit(**_OPTS)
def _peep_backward_block(b, bounds, t, rows, o, xg, c_prev, P, dy, dh, dc, perm, dg, dP, scr):
    """Block b of one backward step: the pointwise pass of its units for every running row."""
    u0, u1 = bounds[b], bounds[b + 1]
    if u1 == u0:
        return
    H = dh.shape[1]
    for i in range(rows):
        _peep_pointwise_backward(H, u0, xg[o + i], c_prev[o + i, u0:u1], dy[t, perm[i], u0:u1], dh[i, u0:u1],
                                 dc[i, u0:u1], dg[o + i], P, dP, scr[b])  # fmt: skip


@njit(parallel=_PARALLEL, **_OPTS)
def lstm_peephole_backward(npan, X, Wih, Whh, WhhT, bounds, xg, h_prev, c_prev, P, dy, dh, dc, perm, bs,
                           off, reverse, dg, dW_ih, dW_hh, db_ih, db_hh, dP, dX, scr, limit):  # fmt: skip
    """The LSTM with peepholes: dh, dc [B,H] (sorted rows) hold dL/dh_n, dL/dc_n on entry and
    dL/dh0, dL/dc0 on exit; fills dg [N,4H], the weight and bias gradients, dP [3H] (zeroed here)
    and dX [N,I] (packed). The other arguments as sequence_backward's."""
    T = bs.shape[0]
    H = WhhT.shape[0]
    nblk = bounds.shape[0] - 1
    dummy = np.empty((1, H), dc.dtype)
    for j in range(dP.shape[0]):
        dP[j] = 0
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        if nblk == 1:
            _peep_backward_block(np.int64(0), bounds, t, rows, o, xg, c_prev, P, dy, dh, dc, perm, dg, dP, scr)
            _dh_block(np.int64(LSTM), np.int64(0), bounds, rows, o, dg, WhhT, Whh, dh)
        else:
            for b in prange(nblk):
                _peep_backward_block(np.int64(b), bounds, t, rows, o, xg, c_prev, P, dy, dh, dc, perm, dg, dP,
                                     scr)  # fmt: skip
            for b in prange(nblk):
                _dh_block(np.int64(LSTM), np.int64(b), bounds, rows, o, dg, WhhT, Whh, dh)
    if nblk == 1:
        for p in range(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh, db_ih,
                          limit)  # fmt: skip
        for p in range(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)
    else:
        for p in prange(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh, db_ih,
                          limit)  # fmt: skip
        for p in prange(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)


# The GRU with the reset gate before the recurrent product (cell "gru_reset_before"; ONNX's
# linear_before_reset=0, Keras's reset_after=False): n = tanh(W_in x + b_in + W_hn (r * h_{t-1}) + b_hn).
# Drivers of their own, as for the peepholes, so that the plain kernels stay as they are; the same
# packed layout and helpers. The W_hn product needs this step's r, so a forward step is two parallel
# regions: (1) per unit block, its rows of the r/z product (Wblk: W_hh[:2H] grouped by block) and
# their pass, r and z into xg, r * h_{t-1} into rh (the training cache's hn); (2) after the barrier,
# per unit block, its rows of (r * h) W_hn^T and the n pass, h_t. Backward per step: (A) per unit
# block dn and dz from dL/dh_t, and dL/dh_t * z into dh; (B) after a barrier d(rh) = dn W_hn for the
# block's units, dr = d(rh) * h_{t-1} * r(1-r), dh += d(rh) * r; (C) after another barrier dh +=
# [dr dz] W_hrz by column block. C of one step and A of the step before touch only the block's own
# columns of dh, so they share a region: two regions per step, as the plain kernels. drz [N,2H] and
# dn [N,H] are kept apart (contiguous rows for the per-step products); at the end dW_hh[:2H] =
# drz^T h_prev, dW_hh[2H:] = dn^T (r * h_prev), dW_ih, dx and the biases from both. Every output
# element is computed the same way whatever the blocks, so the results do not depend on the threads.


@njit(**_OPTS)
def _rb_gates_block(b, bounds, rows, o, hcur, Wblk, WblkT, xg, bias, rh, acc, scr):
    """Units bounds[b]:bounds[b+1] of one step: their rows of h_{t-1} W_hrz^T, r and z (into xg's
    r and z entries) and r * h_{t-1} (into rh [rows, H])."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = hcur.shape[1]
    ab = acc[b]
    step_product(hcur, Wblk, WblkT, 2 * u0, ab, 0, 2 * n, False)
    g = scr[b, 0, : 2 * n]
    k = scr[b, 1]
    for i in range(rows):
        xr = xg[o + i]
        for q in range(2):
            for u in range(n):
                g[q * n + u] = xr[q * H + u0 + u] + ab[i, q * n + u] + bias[q * H + u0 + u]
        sigmoid_inplace(g, k)  # r, z
        for u in range(n):
            r = g[u]
            xr[u0 + u] = r
            xr[H + u0 + u] = g[n + u]
            rh[i, u0 + u] = r * hcur[i, u0 + u]  # the reset before the product


@njit(**_OPTS)
def _rb_out_block(training, b, bounds, t, rows, o, rows_next, hcur, hnext, rh, Whn, WhnT, xg, bias, b_hn,
                  y, h_n, h0s, perm, acc, scr):  # fmt: skip
    """Units bounds[b]:bounds[b+1] of one step: their rows of (r * h_{t-1}) W_hn^T, n and h_t, routed to
    y, to the next step's state and to h_n for the rows whose sequence ends here (training: n into xg)."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = hcur.shape[1]
    one = y.dtype.type(1)
    ab = acc[b]
    step_product(rh, Whn, WhnT, u0, ab, 0, n, False)
    g = scr[b, 0, :n]
    k, s = scr[b, 1], scr[b, 2]
    for i in range(rows):
        xr = xg[o + i]
        for u in range(n):
            j = u0 + u
            g[u] = (xr[2 * H + j] + bias[2 * H + j]) + (ab[i, u] + b_hn[j])
        tanh_inplace(g, k, s)  # n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
        y_row = y[t, perm[i], u0:u1]
        for u in range(n):
            z = xr[H + u0 + u]
            y_row[u] = (one - z) * g[u] + z * hcur[i, u0 + u]
        if training:
            for u in range(n):
                xr[2 * H + u0 + u] = g[u]
        if i < rows_next:
            _copy(hnext[i, u0:u1], y_row)
        else:
            _copy(h_n[perm[i], u0:u1], y_row)  # the sequence ends here
    for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
        _copy(hnext[i, u0:u1], h0s[i, u0:u1])


@njit(parallel=_PARALLEL, **_OPTS)
def gru_reset_before_forward(npan, X, Wih, Wblk, Whn, bounds, bias, b_hn, h0s, perm, bs, off, reverse,
                             training, y, h_n, xg, h_prev, hn, hbuf, rhbuf, acc, scr, limit):  # fmt: skip
    """The GRU with the reset gate before the product: fills y [T,B,H] (padded rows untouched), h_n
    [B,H] (pre-filled with h0), xg [N,3H] (training: the activated r, z, n); in training also
    h_prev and hn [N,H] (r * h_{t-1}). Wblk [2H, H]: W_hh's r and z rows grouped by unit block
    (G = 2); Whn [H, H]: W_hh's n rows; bias: b_ih (+ b_hh for r and z), b_hn: b_hh's n part;
    hbuf [2,B,H], rhbuf [B,H] scratch (inference); acc [nblk, B, 2*max block]; scr [nblk, 4, *]."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    small = bs.min() <= 2  # the transposes are read only by steps of one or two rows
    WblkT = np.ascontiguousarray(Wblk.T) if small else Wblk[:1, :1].copy()
    WhnT = np.ascontiguousarray(Whn.T) if small else Whn[:1, :1].copy()
    if X.shape[1] == 0:
        for n in range(xg.shape[0]):
            for j in range(xg.shape[1]):
                xg[n, j] = 0
    elif nblk == 1:
        for p in range(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    else:
        for p in prange(npan):
            _input_projection(np.int64(p), npan, X, Wih, xg, limit)
    t0 = T - 1 if reverse else 0
    if training:
        _copy_rows(h_prev[off[t0] : off[t0] + bs[t0]], h0s[: bs[t0]])
    else:
        _copy_rows(hbuf[0], h0s)
        _copy_rows(hbuf[1], h0s)
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        last = s == T - 1
        tn = t if last else (t - 1 if reverse else t + 1)
        rows_next = 0 if last else bs[tn]
        hcur = h_prev[o : o + rows] if training else hbuf[s % 2, :rows]
        hnext = h_prev[off[tn] : off[tn] + bs[tn]] if training else hbuf[(s + 1) % 2]
        rh = hn[o : o + rows] if training else rhbuf[:rows]
        if nblk == 1:
            _rb_gates_block(np.int64(0), bounds, rows, o, hcur, Wblk, WblkT, xg, bias, rh, acc, scr)
            _rb_out_block(training, np.int64(0), bounds, t, rows, o, rows_next, hcur, hnext, rh, Whn, WhnT,
                          xg, bias, b_hn, y, h_n, h0s, perm, acc, scr)  # fmt: skip
        else:
            for b in prange(nblk):
                _rb_gates_block(np.int64(b), bounds, rows, o, hcur, Wblk, WblkT, xg, bias, rh, acc, scr)
            for b in prange(nblk):
                _rb_out_block(training, np.int64(b), bounds, t, rows, o, rows_next, hcur, hnext, rh, Whn,
                              WhnT, xg, bias, b_hn, y, h_n, h0s, perm, acc, scr)  # fmt: skip


@njit(**_OPTS)
def _rb_back_first(b, bounds, t, rows, o, prows, po, xg, h_prev, dy, dh, perm, drz, dn, Wrz, WrzT):
    """Units bounds[b]:bounds[b+1]: phase C of the step done before (prows rows of drz from po:
    dh += [dr dz] W_hrz, the block's columns), then phase A of this one: dn, dz, and dh <- dL/dh_t * z."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    _dh_block(np.int64(GRU), b, bounds, prows, po, drz, WrzT, Wrz, dh)
    H = dh.shape[1]
    one = dh.dtype.type(1)
    for i in range(rows):
        xr = xg[o + i]
        dyr = dy[t, perm[i]]
        for u in range(n):
            j = u0 + u
            z, nn = xr[H + j], xr[2 * H + j]
            dht = dyr[j] + dh[i, j]
            dn[o + i, j] = dht * (one - z) * (one - nn * nn)
            drz[o + i, H + j] = dht * (h_prev[o + i, j] - nn) * z * (one - z)
            dh[i, j] = dht * z  # direct path to h_{t-1}; the products add the rest


@njit(**_OPTS)
def _rb_back_second(b, bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, drz, dh):
    """Units bounds[b]:bounds[b+1] of one backward step (every dn of it known): d(rh) = dn W_hn, then
    dr = d(rh) * h_{t-1} * r(1-r) and dh += d(rh) * r."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    step_product(dn[o : o + rows], WhnT, Whn, u0, drh, u0, n, False)
    one = dh.dtype.type(1)
    for i in range(rows):
        xr = xg[o + i]
        for u in range(n):
            j = u0 + u
            r, d = xr[j], drh[i, j]
            drz[o + i, j] = d * h_prev[o + i, j] * r * (one - r)
            dh[i, j] += d * r


@njit(**_OPTS)
def _rb_weight_grads(p, npan, drz, dn, h_prev, rh, X, dW_hh, dW_ih, db_hh, db_ih, limit):
    """Panel p of 2*npan: p < npan the r/z rows (dW_hh[:2H] = drz^T h_prev, their dW_ih and biases),
    the others the n rows (dW_hh[2H:] = dn^T (r * h_prev), their dW_ih and biases)."""
    H = dn.shape[1]
    if p < npan:
        _weight_grads(np.int64(LSTM), p, npan, drz, dn, h_prev, X, dW_hh[: 2 * H], dW_ih[: 2 * H],
                      db_hh[: 2 * H], db_ih[: 2 * H], limit)  # fmt: skip
    else:
        _weight_grads(np.int64(LSTM), p - npan, npan, dn, dn, rh, X, dW_hh[2 * H :], dW_ih[2 * H :],
                      db_hh[2 * H :], db_ih[2 * H :], limit)  # fmt: skip


@njit(**_OPTS)
def _rb_input_grads(p, npan, drz, dn, Wih, dX, limit):
    """Rows of panel p of dx = drz W_ih[:2H] + dn W_ih[2H:]."""
    H = dn.shape[1]
    _input_grads(np.int64(LSTM), p, npan, drz, dn, Wih[: 2 * H], dX, limit)
    n0, n1 = _panel(dn.shape[0], p, npan)
    if n1 > n0 and Wih.shape[1] > 0:
        gemm(False, False, dn[n0:n1], Wih[2 * H :], dX[n0:n1], 1, limit)


@njit(parallel=_PARALLEL, **_OPTS)
def gru_reset_before_backward(npan, X, Wih, Wrz, WrzT, Whn, WhnT, bounds, xg, h_prev, hn, dy, dh, perm, bs,
                              off, reverse, drz, dn, drh, dW_ih, dW_hh, db_ih, db_hh, dX, limit):  # fmt: skip
    """The GRU with the reset gate before the product: dh [B,H] (sorted rows) holds dL/dh_n on entry
    and dL/dh0 on exit; fills drz [N,2H] (dr, dz), dn [N,H], the weight and bias gradients and dX
    [N,I] (packed). xg: the activated r, z, n; hn: r * h_{t-1}. Wrz [2H,H], Whn [H,H]: W_hh's r/z
    and n rows, WrzT, WhnT their transposes (contiguous); drh [B,H] scratch."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    prows, po = np.int64(0), np.int64(0)  # the step done before: none yet
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        if nblk == 1:
            _rb_back_first(np.int64(0), bounds, t, rows, o, prows, po, xg, h_prev, dy, dh, perm, drz, dn, Wrz,
                           WrzT)  # fmt: skip
            _rb_back_second(np.int64(0), bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, drz, dh)
        else:
            for b in prange(nblk):
                _rb_back_first(np.int64(b), bounds, t, rows, o, prows, po, xg, h_prev, dy, dh, perm, drz, dn,
                               Wrz, WrzT)  # fmt: skip
            for b in prange(nblk):
                _rb_back_second(np.int64(b), bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, drz, dh)
        prows, po = rows, o
    if nblk == 1:  # phase C of the last step: dL/dh0
        _dh_block(np.int64(GRU), np.int64(0), bounds, prows, po, drz, WrzT, Wrz, dh)
        for p in range(2 * npan):
            _rb_weight_grads(np.int64(p), npan, drz, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit)
        for p in range(npan):
            _rb_input_grads(np.int64(p), npan, drz, dn, Wih, dX, limit)
    else:
        for b in prange(nblk):
            _dh_block(np.int64(GRU), np.int64(b), bounds, prows, po, drz, WrzT, Wrz, dh)
        for p in prange(2 * npan):
            _rb_weight_grads(np.int64(p), npan, drz, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit)
        for p in prange(npan):
            _rb_input_grads(np.int64(p), npan, drz, dn, Wih, dX, limit)
