"""The Numba kernels of the cells with ONNX's options (activations, clip, input_forget): the scalar
activations act / act_backprop by integer code, and sequence drivers of their own for every cell,
on the plain drivers' schedule, packed layout and helpers (sequence.py, gemm.py, blas.py). Imported
and compiled only when a problem with options arrives: the plain kernels stay as they are.

As in the C++ form passes (cpp/include/rnnkit/forms.h), the training cache's xg holds each gate's
pre-activation (after the biases and peepholes, before the clip), not its activation: the
derivative of an arbitrary activation, and of the clip, is taken at the pre-activation, and
backward recomputes the activations from it. The other cache arrays are the plain ones.
Checked against the NumPy reference (rnnkit/reference/_common.py: act, act_backprop, gate,
gate_backprop) by tests/test_cell_forms.py.
"""

# Tested by tests/test_cell_forms.py (the options tests, backend "numba"), tests/test_numba_kernels.py.

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .activations import sigmoid_inplace, tanh_inplace
from .gemm import step_product
from .sequence import _OPTS, _PARALLEL, GRU, LSTM, RNN_TANH, _copy, _copy_rows, _dh_block, _input_grads
from .sequence import _input_projection, _proj_out_block, _proj_weight_grad, _rb_input_grads
from .sequence import _rb_weight_grads, _weight_grads

# The drivers' cell codes: the RNN (any activation), the LSTM (peepholes where P is not empty), the
# GRU, and the GRU with the reset gate before the product.
RNN, RESET_BEFORE = RNN_TANH, 4
CELL_CODE = {"rnn_tanh": RNN, "rnn_relu": RNN, "lstm": LSTM, "lstm_peephole": LSTM, "gru": GRU,
             "gru_reset_before": RESET_BEFORE}  # fmt: skip
# act's codes, in the order of the C++ enum Act (rnnkit/problem.h)
ACT_CODE = {name: k for k, name in enumerate(("sigmoid", "tanh", "relu", "leakyrelu", "thresholdedrelu", "scaledtanh",
                                              "hardsigmoid", "elu", "softsign", "softplus", "affine"))}  # fmt: skip

# A form, the drivers' argument `form`: (codes int64[3], alpha [3], beta [3], clip, input_forget),
# one code and (alpha, beta) per position of the cell (ONNX's f, g, h); clip of the dtype, 0 for
# none; alpha, beta and clip of the problem's dtype, so float32 maths stays float32.


def form_of(p, dtype, defaults):
    """The form of problem p (defaults: the cell's own activation names, for p.acts == ())."""
    acts = p.acts or tuple((a, 0.0, 0.0) for a in defaults)
    codes, alpha, beta = np.zeros(3, np.int64), np.zeros(3, dtype), np.zeros(3, dtype)
    for k, (name, al, be) in enumerate(acts):
        codes[k], alpha[k], beta[k] = ACT_CODE[name], al, be
    return codes, alpha, beta, np.dtype(dtype).type(0.0 if p.clip is None else p.clip), bool(p.input_forget)


def _ft(a, v):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_ft)
def _ft_ov(a, v):
    """v as a's float type (a bare 1.0 would turn float32 arithmetic into float64)."""
    if a == types.float32:
        return lambda a, v: np.float32(v)
    return lambda a, v: np.float64(v)


@njit(**_OPTS)
def act(code, al, be, a):
    """Activation `code` (ACT_CODE) with parameters al, be at a (the reference's _common.act)."""
    one, zero = _ft(a, 1.0), _ft(a, 0.0)
    if code == 0:  # sigmoid
        return one / (one + math.exp(-a))
    if code == 1:
        return math.tanh(a)
    if code == 2:  # relu, keeping NaN as np.maximum does
        return a if a > zero or a != a else zero
    if code == 3:  # leakyrelu
        return a if a >= zero else al * a
    if code == 4:  # thresholdedrelu
        return a if a > al else zero
    if code == 5:  # scaledtanh
        return al * math.tanh(be * a)
    if code == 6:  # hardsigmoid
        v = al * a + be
        return zero if v < zero else (one if v > one else v)
    if code == 7:  # elu
        return a if a >= zero else al * math.expm1(a)
    if code == 8:  # softsign
        return a / (one + abs(a))
    if code == 9:  # softplus, log(1 + e^a) without overflow
        return a + math.log1p(math.exp(-a)) if a > zero else math.log1p(math.exp(a))
    return al * a + be  # affine


@njit(**_OPTS)
def act_backprop(code, al, be, a, d):
    """d * act'(a) for activation `code` (the reference's _common.act_backprop): the piecewise ones
    select, so that a NaN gradient stops where a unit is off."""
    one, zero = _ft(a, 1.0), _ft(a, 0.0)
    if code == 0:
        s = one / (one + math.exp(-a))
        return d * s * (one - s)
    if code == 1:
        t = math.tanh(a)
        return d * (one - t * t)
    if code == 2:
        return d if a > zero else zero
    if code == 3:
        return d if a >= zero else al * d
    if code == 4:
        return d if a > al else zero
    if code == 5:
        t = math.tanh(be * a)
        return d * (al * be) * (one - t * t)
    if code == 6:
        v = al * a + be
        return al * d if v > zero and v < one else zero
    if code == 7:
        return d if a >= zero else d * al * math.exp(a)
    if code == 8:
        q = one + abs(a)
        return d / (q * q)
    if code == 9:
        return d / (one + math.exp(-a))
    return al * d



# ---- a gate over one block's units at once: the plain kernels' vectorised sigmoid and tanh where
# the form has them, act element by element otherwise ----


@njit(**_OPTS)
def _gate_inplace(form, k, clipped, v, w1, w2):
    """v <- the activation of position k at v, clipped to [-clip, clip] first when `clipped` and the
    form clips (a gate; the LSTM's h(c_t) is not clipped); w1, w2: scratch at least as long as v."""
    c = form[3]
    if clipped and c > 0:
        for j in range(v.shape[0]):
            x = v[j]
            v[j] = -c if x < -c else (c if x > c else x)  # NaN passes
    code, al, be = form[0][k], form[1][k], form[2][k]
    if code == 0:
        sigmoid_inplace(v, w1)
    elif code == 1:
        tanh_inplace(v, w1, w2)
    elif code == 5:  # scaledtanh
        for j in range(v.shape[0]):
            v[j] = be * v[j]
        tanh_inplace(v, w1, w2)
        for j in range(v.shape[0]):
            v[j] = al * v[j]
    else:
        for j in range(v.shape[0]):
            v[j] = act(code, al, be, v[j])


@njit(**_OPTS)
def _backprop_inplace(form, k, clipped, a, y, d):
    """d <- d * act'(a) for position k, y: its activation at a (from _gate_inplace, same clipped);
    with the clip, zero past the bounds (and at a NaN). Inside the bounds a is its clipped value."""
    c = form[3]
    clip = clipped and c > 0
    code, al, be = form[0][k], form[1][k], form[2][k]
    one = d.dtype.type(1)
    for j in range(d.shape[0]):
        x = a[j]
        if clip and not abs(x) <= c:
            d[j] = c - c
        elif code == 0:
            d[j] = d[j] * y[j] * (one - y[j])
        elif code == 1:
            d[j] = d[j] * (one - y[j] * y[j])
        else:
            d[j] = act_backprop(code, al, be, x, d[j])


@njit(**_OPTS)
def _gather(dst, src, H, u0, n, G):
    """dst[q*n + u] = src[q*H + u0 + u] for q < G: a block's gates of one row, gate-major."""
    for q in range(G):
        for u in range(n):
            dst[q * n + u] = src[q * H + u0 + u]


# ---- forward: one row of one step, units u0 .. u0+n-1 (n = len(out_row)); xr [G*H]: the row of xg
# (the input projection, all units; the pre-activations written back in training); ar [G*n]: this
# block's recurrent product, gate-major; bias as the plain drivers'; scr [5, G*max block] ----


@njit(**_OPTS)
def _rnn_row_forward(form, training, u0, xr, ar, bias, out_row, scr):
    n = out_row.shape[0]
    g = scr[0, :n]
    for u in range(n):
        g[u] = xr[u0 + u] + ar[u] + bias[u0 + u]
        if training:
            xr[u0 + u] = g[u]
    _gate_inplace(form, 0, True, g, scr[1], scr[2])  # h_t = f(W_ih x + W_hh h + b)
    _copy(out_row, g)


@njit(**_OPTS)
def _lstm_row_forward(form, training, H, u0, xr, ar, bias, P, c_row, c_prev_row, out_row, scr):
    """The LSTM (peepholes where P [3H] is not empty): c_row updated, out_row <- o * h(c_t) (h_t,
    or the projection's input); c_prev_row filled in training."""
    n = out_row.shape[0]
    one = out_row.dtype.type(1)
    peep = P.shape[0] > 0
    g, w1, w2, tc = scr[0, : 4 * n], scr[1], scr[2], scr[3, :n]
    for q in range(4):
        for u in range(n):
            g[q * n + u] = xr[q * H + u0 + u] + ar[q * n + u] + bias[q * H + u0 + u]
    if peep:  # i and f peep at c_{t-1}
        for u in range(n):
            g[u] += P[u0 + u] * c_row[u]
            g[n + u] += P[H + u0 + u] * c_row[u]
    if training:
        for q in range(3):
            for u in range(n):
                xr[q * H + u0 + u] = g[q * n + u]
    _gate_inplace(form, 0, True, g[:n], w1, w2)  # i
    if form[4]:  # input_forget: f = 1 - i
        for u in range(n):
            g[n + u] = one - g[u]
    else:
        _gate_inplace(form, 0, True, g[n : 2 * n], w1, w2)  # f
    _gate_inplace(form, 1, True, g[2 * n : 3 * n], w1, w2)  # g
    for u in range(n):
        cp = c_row[u]
        cn = g[n + u] * cp + g[u] * g[2 * n + u]  # c_t = f * c_{t-1} + i * g
        if training:
            c_prev_row[u] = cp
        c_row[u] = cn
        tc[u] = cn
        if peep:
            g[3 * n + u] += P[2 * H + u0 + u] * cn  # o peeps at c_t
        if training:
            xr[3 * H + u0 + u] = g[3 * n + u]
    _gate_inplace(form, 0, True, g[3 * n :], w1, w2)  # o
    _gate_inplace(form, 2, False, tc, w1, w2)  # h(c_t): c_t is not clipped
    for u in range(n):
        out_row[u] = g[3 * n + u] * tc[u]  # o * h(c_t)


@njit(**_OPTS)
def _gru_row_forward(form, training, H, u0, xr, ar, bias, b_hn, h_prev_row, hn_row, out_row, scr):
    """The GRU: hn_row <- W_hn h + b_hn in training."""
    n = out_row.shape[0]
    one = out_row.dtype.type(1)
    g, w1, w2, hn = scr[0, : 3 * n], scr[1], scr[2], scr[3, :n]
    for q in range(2):
        for u in range(n):
            g[q * n + u] = xr[q * H + u0 + u] + ar[q * n + u] + bias[q * H + u0 + u]
            if training:
                xr[q * H + u0 + u] = g[q * n + u]
    _gate_inplace(form, 0, True, g[: 2 * n], w1, w2)  # r, z
    for u in range(n):
        j = u0 + u
        hn[u] = ar[2 * n + u] + b_hn[j]
        g[2 * n + u] = xr[2 * H + j] + bias[2 * H + j] + g[u] * hn[u]  # n = g(W_in x + b_in + r * (W_hn h + b_hn))
        if training:
            xr[2 * H + j] = g[2 * n + u]
    _gate_inplace(form, 1, True, g[2 * n :], w1, w2)
    for u in range(n):
        z = g[n + u]
        out_row[u] = (one - z) * g[2 * n + u] + z * h_prev_row[u]
    if training:
        _copy(hn_row, hn)


@njit(**_OPTS)
def _route(i, rows_next, u0, u1, row, hnext, h_n, perm):
    """Row i's h_t (units u0:u1) to the next step's state, or to h_n where its sequence ends."""
    if i < rows_next:
        _copy(hnext[i, u0:u1], row)
    else:
        _copy(h_n[perm[i], u0:u1], row)


@njit(**_OPTS)
def _forward_block(cell, form, training, b, bounds, t, rows, o, rows_next, hcur, hnext, Wblk, WblkT, xg, bias,
                   b_hn, P, c, c_prev, hn, y, h_n, h0s, perm, rh, acc, scr):  # fmt: skip
    """Block b of one step: its rows of the recurrent product and its units' pass (RESET_BEFORE:
    the first part, the r and z gates and r * h_{t-1} into rh; _rb_out_block does the rest)."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = h0s.shape[1]
    G = Wblk.shape[0] // H  # RESET_BEFORE: 2 (the r and z rows)
    ab, sb = acc[b], scr[b]
    step_product(hcur, Wblk, WblkT, G * u0, ab, 0, G * n, False)
    for i in range(rows):
        if cell == RESET_BEFORE:
            xr, g = xg[o + i], sb[0, : 2 * n]
            for q in range(2):
                for u in range(n):
                    g[q * n + u] = xr[q * H + u0 + u] + ab[i, q * n + u] + bias[q * H + u0 + u]
                    xr[q * H + u0 + u] = g[q * n + u]  # the second part reads z's
            _gate_inplace(form, 0, True, g[:n], sb[1], sb[2])  # r
            for u in range(n):
                rh[i, u0 + u] = g[u] * hcur[i, u0 + u]  # the reset before the product
            continue
        y_row = y[t, perm[i], u0:u1]
        if cell == LSTM:
            _lstm_row_forward(form, training, H, u0, xg[o + i], ab[i, : 4 * n], bias, P, c[i, u0:u1],
                              c_prev[o + i, u0:u1] if training else c_prev[0, :n], y_row, sb)  # fmt: skip
        elif cell == GRU:
            _gru_row_forward(form, training, H, u0, xg[o + i], ab[i, : 3 * n], bias, b_hn, hcur[i, u0:u1],
                             hn[o + i, u0:u1] if training else hn[0, :n], y_row, sb)  # fmt: skip
        else:
            _rnn_row_forward(form, training, u0, xg[o + i], ab[i, :n], bias, y_row, sb)
        _route(i, rows_next, u0, u1, y_row, hnext, h_n, perm)
    if cell != RESET_BEFORE:
        for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
            _copy(hnext[i, u0:u1], h0s[i, u0:u1])


@njit(**_OPTS)
def _rb_out_block(form, training, b, bounds, t, rows, o, rows_next, hcur, hnext, rh, Whn, WhnT, xg, bias, b_hn,
                  y, h_n, h0s, perm, acc, scr):  # fmt: skip
    """RESET_BEFORE, units bounds[b]:bounds[b+1] of one step once every r * h_{t-1} is known:
    (r * h_{t-1}) W_hn^T, n and h_t, routed (training: n's pre-activation into xg)."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = hcur.shape[1]
    one = y.dtype.type(1)
    ab, sb = acc[b], scr[b]
    g, z, w1, w2 = sb[0, :n], sb[3, :n], sb[1], sb[2]
    step_product(rh, Whn, WhnT, u0, ab, 0, n, False)
    for i in range(rows):
        xr = xg[o + i]
        for u in range(n):
            j = u0 + u
            g[u] = (xr[2 * H + j] + bias[2 * H + j]) + (ab[i, u] + b_hn[j])
            z[u] = xr[H + j]
            if training:
                xr[2 * H + j] = g[u]
        _gate_inplace(form, 0, True, z, w1, w2)
        _gate_inplace(form, 1, True, g, w1, w2)  # n = g(W_in x + b_in + W_hn (r * h) + b_hn)
        y_row = y[t, perm[i], u0:u1]
        for u in range(n):
            y_row[u] = (one - z[u]) * g[u] + z[u] * hcur[i, u0 + u]
        _route(i, rows_next, u0, u1, y_row, hnext, h_n, perm)
    for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
        _copy(hnext[i, u0:u1], h0s[i, u0:u1])


@njit(parallel=_PARALLEL, **_OPTS)
def forms_forward(cell, npan, form, X, Wih, Wblk, Whn, bounds, bias, b_hn, P, h0s, c, perm, bs, off, reverse,
                  training, y, h_n, xg, h_prev, c_prev, hn, hbuf, rhbuf, acc, scr, limit):  # fmt: skip
    """Every cell (CELL_CODE) with a form: fills y [T,B,H] (padded rows untouched), h_n [B,H]
    (pre-filled with h0), c [B,H] (LSTM; sorted, in place), xg [N,G*H] (training: the
    pre-activations); in training h_prev [N,H], c_prev [N,H] (LSTM), hn [N,H] (GRU: W_hn h + b_hn;
    RESET_BEFORE: r * h_{t-1}). Wblk: W_hh's rows grouped by unit block ([G*H, H]; RESET_BEFORE:
    its r and z rows, [2H, H]); Whn [H,H]: W_hh's n rows (RESET_BEFORE, else [1,1]); P [3H] the
    peepholes or [0]; bias: b_ih + b_hh (GRUs: b_hh's r and z part), b_hn: b_hh's n part (GRUs);
    hbuf [2,B,H], rhbuf [B,H] scratch (inference); acc [nblk, B, G*max block]; scr [nblk, 5, G*max
    block]. Each step is one parallel region over the unit blocks, RESET_BEFORE's two."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    rb = cell == RESET_BEFORE
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
        rh = hn[o : o + rows] if training and rb else rhbuf[:rows]
        if nblk == 1:
            _forward_block(cell, form, training, np.int64(0), bounds, t, rows, o, rows_next, hcur, hnext, Wblk,
                           WblkT, xg, bias, b_hn, P, c, c_prev, hn, y, h_n, h0s, perm, rh, acc, scr)  # fmt: skip
            if rb:
                _rb_out_block(form, training, np.int64(0), bounds, t, rows, o, rows_next, hcur, hnext, rh, Whn,
                              WhnT, xg, bias, b_hn, y, h_n, h0s, perm, acc, scr)  # fmt: skip
        else:
            for b in prange(nblk):
                _forward_block(cell, form, training, np.int64(b), bounds, t, rows, o, rows_next, hcur, hnext,
                               Wblk, WblkT, xg, bias, b_hn, P, c, c_prev, hn, y, h_n, h0s, perm, rh, acc,
                               scr)  # fmt: skip
            if rb:
                for b in prange(nblk):
                    _rb_out_block(form, training, np.int64(b), bounds, t, rows, o, rows_next, hcur, hnext, rh,
                                  Whn, WhnT, xg, bias, b_hn, y, h_n, h0s, perm, acc, scr)  # fmt: skip


# ---- backward: one row of one step, units u0 .. u0+n-1; g [G*H]: the row's pre-activations;
# dg_row [G*H]: the gradients of the pre-activations (the block's entries written) ----


@njit(**_OPTS)
def _lstm_row_backward(form, H, u0, g, c_prev_row, P, dy_row, dh_row, dc_row, dg_row, dP, scr):
    """From dL/dh_t = dy_row + dh_row (with a projection: dL/d(o * h(c_t))) and dL/dc_t in dc_row:
    dg_row, dL/dc_{t-1} into dc_row, and with peepholes the row's share of dP added."""
    n = dy_row.shape[0]
    one = dy_row.dtype.type(1)
    peep, inf = P.shape[0] > 0, form[4]
    v, w1, w2 = scr[0, : 4 * n], scr[1], scr[2]  # the activated gates
    cn, hc, dht, dct, t = scr[3, :n], scr[3, n : 2 * n], scr[3, 2 * n : 3 * n], scr[3, 3 * n :], scr[4, :n]
    _gather(v, g, H, u0, n, 4)
    _gate_inplace(form, 0, True, v[:n], w1, w2)
    if inf:
        for u in range(n):
            v[n + u] = one - v[u]
    else:
        _gate_inplace(form, 0, True, v[n : 2 * n], w1, w2)
    _gate_inplace(form, 1, True, v[2 * n : 3 * n], w1, w2)
    _gate_inplace(form, 0, True, v[3 * n :], w1, w2)
    for u in range(n):
        cn[u] = v[n + u] * c_prev_row[u] + v[u] * v[2 * n + u]  # c_t, recomputed
        hc[u] = cn[u]
    _gate_inplace(form, 2, False, hc, w1, w2)  # h(c_t)
    a_i, a_f, a_g, a_o = g[u0 : u0 + n], g[H + u0 : H + u0 + n], g[2 * H + u0 : 2 * H + u0 + n], g[3 * H + u0 : 3 * H + u0 + n]
    d_i, d_f = dg_row[u0 : u0 + n], dg_row[H + u0 : H + u0 + n]
    d_g, d_o = dg_row[2 * H + u0 : 2 * H + u0 + n], dg_row[3 * H + u0 : 3 * H + u0 + n]
    for u in range(n):
        dht[u] = dy_row[u] + dh_row[u]
        d_o[u] = dht[u] * hc[u]
        t[u] = dht[u] * v[3 * n + u]
    _backprop_inplace(form, 0, True, a_o, v[3 * n :], d_o)  # h_t = o * h(c_t)
    _backprop_inplace(form, 2, False, cn, hc, t)
    for u in range(n):
        dct[u] = dc_row[u] + t[u]
        if peep:
            dct[u] += d_o[u] * P[2 * H + u0 + u]  # o peeps at c_t
        # c_t = f * c_{t-1} + i * g; with input_forget f = 1 - i: i also gets f's share, negated
        d_i[u] = dct[u] * (v[2 * n + u] - c_prev_row[u]) if inf else dct[u] * v[2 * n + u]
        d_f[u] = one - one if inf else dct[u] * c_prev_row[u]
        d_g[u] = dct[u] * v[u]
    _backprop_inplace(form, 0, True, a_i, v[:n], d_i)
    if not inf:
        _backprop_inplace(form, 0, True, a_f, v[n : 2 * n], d_f)
    _backprop_inplace(form, 1, True, a_g, v[2 * n : 3 * n], d_g)
    for u in range(n):
        dcp = dct[u] * v[n + u]
        if peep:  # i and f peep at c_{t-1}
            j = u0 + u
            cp = c_prev_row[u]
            dcp += d_i[u] * P[j] + d_f[u] * P[H + j]
            dP[j] += d_i[u] * cp
            dP[H + j] += d_f[u] * cp
            dP[2 * H + j] += d_o[u] * cn[u]
        dc_row[u] = dcp


@njit(**_OPTS)
def _backward_block(cell, form, b, bounds, t, rows, o, prows, po, xg, h_prev, c_prev, hn, P, dy, dh, dc, perm, dg,
                    dn, dP, Whh, WhhT, scr):  # fmt: skip
    """Block b of one backward step: the pass of its units for every running row (GRUs: dn, and
    dh <- dL/dh_t * z, the direct path; the products add the rest). RESET_BEFORE: first the step
    done before's dh += [dr dz] W_hrz (prows rows of dg from po, the block's columns), then dn and
    dz; _rb_back_second does dr once every dn of the step is known."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    if cell == RESET_BEFORE:
        _dh_block(np.int64(GRU), b, bounds, prows, po, dg, WhhT, Whh, dh)
    H = dh.shape[1]
    one = dh.dtype.type(1)
    sb = scr[b]
    w1, w2, dht = sb[1], sb[2], sb[3, :n]
    for i in range(rows):
        g, dgr, dyr = xg[o + i], dg[o + i], dy[t, perm[i]]
        if cell == LSTM:
            _lstm_row_backward(form, H, u0, g, c_prev[o + i, u0:u1], P, dyr[u0:u1], dh[i, u0:u1], dc[i, u0:u1],
                               dgr, dP, sb)  # fmt: skip
            continue
        for u in range(n):
            dht[u] = dyr[u0 + u] + dh[i, u0 + u]  # dL/dh_t
        if cell == RNN:
            v, d = sb[0, :n], dgr[u0:u1]
            _copy(v, g[u0:u1])
            _gate_inplace(form, 0, True, v, w1, w2)
            _copy(d, dht)
            _backprop_inplace(form, 0, True, g[u0:u1], v, d)
        else:  # the GRUs: dn and dz (dr too for the GRU)
            rb = cell == RESET_BEFORE
            v = sb[0, : 3 * n]  # r, z, n
            _gather(v, g, H, u0, n, 3)
            _gate_inplace(form, 0, True, v[: 2 * n], w1, w2)
            _gate_inplace(form, 1, True, v[2 * n :], w1, w2)
            dnr = dn[o + i, u0:u1]
            d_z = dgr[H + u0 : H + u1]
            for u in range(n):
                z, nv = v[n + u], v[2 * n + u]
                dnr[u] = dht[u] * (one - z)  # h_t = (1 - z) * n + z * h_{t-1}
                d_z[u] = dht[u] * (h_prev[o + i, u0 + u] - nv)
                dh[i, u0 + u] = dht[u] * z
            _backprop_inplace(form, 1, True, g[2 * H + u0 : 2 * H + u1], v[2 * n :], dnr)
            _backprop_inplace(form, 0, True, g[H + u0 : H + u1], v[n : 2 * n], d_z)
            if not rb:
                d_r = dgr[u0:u1]
                for u in range(n):
                    d_r[u] = dnr[u] * hn[o + i, u0 + u]  # n = g(.. + r * (W_hn h + b_hn))
                    dgr[2 * H + u0 + u] = dnr[u] * v[u]  # the recurrent side; the input side is dn
                _backprop_inplace(form, 0, True, g[u0:u1], v[:n], d_r)


@njit(**_OPTS)
def _rb_back_second(form, b, bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, drz, dh, scr):
    """RESET_BEFORE, units bounds[b]:bounds[b+1] (every dn of the step known): d(rh) = dn W_hn,
    then dr from d(rh) * h_{t-1}, and dh += d(rh) * r."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    step_product(dn[o : o + rows], WhnT, Whn, u0, drh, u0, n, False)
    sb = scr[b]
    r = sb[0, :n]
    for i in range(rows):
        a_r, d_r = xg[o + i, u0:u1], drz[o + i, u0:u1]
        _copy(r, a_r)
        _gate_inplace(form, 0, True, r, sb[1], sb[2])
        for u in range(n):
            d = drh[i, u0 + u]
            d_r[u] = d * h_prev[o + i, u0 + u]
            dh[i, u0 + u] += d * r[u]
        _backprop_inplace(form, 0, True, a_r, r, d_r)


@njit(**_OPTS)
def _form_weight_grads(cell, p, npan, dg, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit):
    """Panel p of the weight and bias gradients (RESET_BEFORE: of 2*npan, its two parts)."""
    if cell == RESET_BEFORE:
        _rb_weight_grads(p, npan, dg, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit)
    else:
        _weight_grads(np.int64(GRU) if cell == GRU else np.int64(LSTM), p, npan, dg, dn, h_prev, X, dW_hh, dW_ih,
                      db_hh, db_ih, limit)  # fmt: skip


@njit(**_OPTS)
def _form_input_grads(cell, p, npan, dg, dn, Wih, dX, limit):
    """Panel p of dx (RESET_BEFORE: from dr, dz and dn)."""
    if cell == RESET_BEFORE:
        _rb_input_grads(p, npan, dg, dn, Wih, dX, limit)
    else:
        _input_grads(np.int64(GRU) if cell == GRU else np.int64(LSTM), p, npan, dg, dn, Wih, dX, limit)


@njit(parallel=_PARALLEL, **_OPTS)
def forms_backward(cell, npan, form, X, Wih, Whh, WhhT, Whn, WhnT, bounds, xg, h_prev, c_prev, hn, P, dy, dh, dc,
                   perm, bs, off, reverse, dg, dn, drh, dW_ih, dW_hh, db_ih, db_hh, dP, dX, scr, limit):  # fmt: skip
    """Every cell with a form: dh, dc [B,H] (sorted rows; dc: LSTM) hold dL/dh_n, dL/dc_n on entry
    and dL/dh0, dL/dc0 on exit; fills dg [N,G*H] (RESET_BEFORE: [N,2H], dr and dz), dn [N,H] (GRUs),
    the weight and bias gradients, dP [3H] (peepholes; zeroed here, else [0]) and dX [N,I] (packed).
    xg: the forward's pre-activations. Whh, WhhT = W_hh and its transpose (RESET_BEFORE: its r and z
    rows); Whn, WhnT: W_hh's n rows and transpose (RESET_BEFORE, else [1,1]); drh [B,H], scr
    [nblk, 5, G*max block] scratch. Per step two parallel regions, the pointwise pass by unit
    blocks, then dL/dh_{t-1} by column blocks (RESET_BEFORE: dr, whose [dr dz] W_hrz the next
    step's first region adds; one more region after the last step adds its own)."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    rb = cell == RESET_BEFORE
    plain = np.int64(GRU) if cell == GRU else np.int64(LSTM)  # _dh_block's cell: GRU adds to dh
    for j in range(dP.shape[0]):
        dP[j] = 0
    prows, po = np.int64(0), np.int64(0)  # RESET_BEFORE: the step done before, none yet
    for s in range(T - 1, -2 if rb else -1, -1):
        if s >= 0:
            t = T - 1 - s if reverse else s
            rows, o = bs[t], off[t]
        else:  # RESET_BEFORE's last region: the first step's [dr dz] W_hrz only
            t, rows, o = np.int64(0), np.int64(0), np.int64(0)
        if nblk == 1:
            _backward_block(cell, form, np.int64(0), bounds, t, rows, o, prows, po, xg, h_prev, c_prev, hn, P, dy,
                            dh, dc, perm, dg, dn, dP, Whh, WhhT, scr)  # fmt: skip
            if rb:
                _rb_back_second(form, np.int64(0), bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, dg, dh, scr)
            else:
                _dh_block(plain, np.int64(0), bounds, rows, o, dg, WhhT, Whh, dh)
        else:
            for b in prange(nblk):
                _backward_block(cell, form, np.int64(b), bounds, t, rows, o, prows, po, xg, h_prev, c_prev, hn, P,
                                dy, dh, dc, perm, dg, dn, dP, Whh, WhhT, scr)  # fmt: skip
            if s >= 0:
                for b in prange(nblk):
                    if rb:
                        _rb_back_second(form, np.int64(b), bounds, rows, o, xg, h_prev, dn, Whn, WhnT, drh, dg, dh,
                                        scr)  # fmt: skip
                    else:
                        _dh_block(plain, np.int64(b), bounds, rows, o, dg, WhhT, Whh, dh)
        prows, po = rows, o
    # Weight, bias and input gradients: every step's share at once, in panels.
    nw = 2 * npan if rb else npan
    if nblk == 1:
        for p in range(nw):
            _form_weight_grads(cell, np.int64(p), npan, dg, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit)
        for p in range(npan):
            _form_input_grads(cell, np.int64(p), npan, dg, dn, Wih, dX, limit)
    else:
        for p in prange(nw):
            _form_weight_grads(cell, np.int64(p), npan, dg, dn, h_prev, hn, X, dW_hh, dW_ih, db_hh, db_ih, limit)
        for p in prange(npan):
            _form_input_grads(cell, np.int64(p), npan, dg, dn, Wih, dX, limit)


# ---- the LSTM with projections (W_hr [S, H]) and a form: sequence.py's lstm_proj_* schedule, with
# the form's LSTM rows above and the plain drivers' projection helpers ----


@njit(**_OPTS)
def _proj_gates_block(form, training, b, bounds, rows, o, hcur, Wblk, WblkT, xg, bias, P, c, c_prev, m, acc, scr):
    """Units bounds[b]:bounds[b+1] of one step: h_{t-1} W_hh^T, then m_t = o * h(c_t) into m[:rows]."""
    u0, u1 = bounds[b], bounds[b + 1]
    n = u1 - u0
    if n == 0:
        return
    H = c.shape[1]
    ab = acc[b]
    step_product(hcur, Wblk, WblkT, 4 * u0, ab, 0, 4 * n, False)
    for i in range(rows):
        _lstm_row_forward(form, training, H, u0, xg[o + i], ab[i, : 4 * n], bias, P, c[i, u0:u1],
                          c_prev[o + i, u0:u1] if training else c_prev[0, :n], m[i, u0:u1], scr[b])  # fmt: skip


@njit(parallel=_PARALLEL, **_OPTS)
def forms_lstm_proj_forward(npan, form, X, Wih, Wblk, Whr, WhrT, bounds, sbounds, bias, h0s, c, perm, bs, off,
                            reverse, training, y, h_n, xg, h_prev, c_prev, m, hbuf, mbuf, hstep, acc, scr,
                            limit):  # fmt: skip
    """The LSTM with projections and a form: the arguments of sequence.lstm_proj_forward, and
    form; xg holds the pre-activations; scr [nblk, 5, 4*max block]."""
    T = bs.shape[0]
    nblk = bounds.shape[0] - 1
    WblkT = np.ascontiguousarray(Wblk.T) if bs.min() <= 2 else Wblk[:1, :1].copy()
    P = np.zeros(0, c.dtype)
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
            _proj_gates_block(form, training, np.int64(0), bounds, rows, o, hcur, Wblk, WblkT, xg, bias, P, c, c_prev,
                              mcur, acc, scr)  # fmt: skip
            _proj_out_block(np.int64(0), sbounds, t, rows, rows_next, mcur, Whr, WhrT, hstep, hnext, y, h_n, h0s,
                            perm)  # fmt: skip
        else:
            for b in prange(nblk):
                _proj_gates_block(form, training, np.int64(b), bounds, rows, o, hcur, Wblk, WblkT, xg, bias, P, c,
                                  c_prev, mcur, acc, scr)  # fmt: skip
            for b in prange(nblk):
                _proj_out_block(np.int64(b), sbounds, t, rows, rows_next, mcur, Whr, WhrT, hstep, hnext, y, h_n, h0s,
                                perm)  # fmt: skip


@njit(**_OPTS)
def _proj_backward_block(form, b, bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow, dc, dg, P, scr):
    """Units bounds[b]:bounds[b+1] of one backward step: dm = dL/dh_t W_hr, then the form's LSTM row
    with dm as the gradient of o * h(c_t)."""
    u0, u1 = bounds[b], bounds[b + 1]
    if u1 == u0:
        return
    H = dc.shape[1]
    step_product(dH[o : o + rows], WhrT, Whr, u0, dm, u0, u1 - u0, False)
    for i in range(rows):
        _lstm_row_backward(form, H, u0, xg[o + i], c_prev[o + i, u0:u1], P, dm[i, u0:u1], zrow[u0:u1],
                           dc[i, u0:u1], dg[o + i], P, scr[b])  # fmt: skip


@njit(parallel=_PARALLEL, **_OPTS)
def forms_lstm_proj_backward(npan, form, X, Wih, Whh, WhhT, Whr, WhrT, bounds, sbounds, xg, h_prev, c_prev, m, dy,
                             dh, dc, perm, bs, off, reverse, dg, dH, dm, dW_ih, dW_hh, dW_hr, db_ih, db_hh, dX, scr,
                             limit):  # fmt: skip
    """The LSTM with projections and a form: the arguments of sequence.lstm_proj_backward, and
    form; xg holds the forward's pre-activations; scr [nblk, 5, 4*max block]."""
    T = bs.shape[0]
    S, H = dh.shape[1], dc.shape[1]
    nblk = bounds.shape[0] - 1
    zrow = np.zeros(H, dc.dtype)
    dummy = np.empty((1, H), dc.dtype)
    P = np.zeros(0, dc.dtype)
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        for i in range(rows):  # dL/dh_t = dy_t + dL/dh_t from step t+1
            for j in range(S):
                dH[o + i, j] = dy[t, perm[i], j] + dh[i, j]
        if nblk == 1:
            _proj_backward_block(form, np.int64(0), bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow, dc, dg, P,
                                 scr)  # fmt: skip
            _dh_block(np.int64(LSTM), np.int64(0), sbounds, rows, o, dg, WhhT, Whh, dh)
        else:
            for b in prange(nblk):
                _proj_backward_block(form, np.int64(b), bounds, rows, o, xg, c_prev, dH, WhrT, Whr, dm, zrow, dc, dg,
                                     P, scr)  # fmt: skip
            for b in prange(nblk):
                _dh_block(np.int64(LSTM), np.int64(b), sbounds, rows, o, dg, WhhT, Whh, dh)
    if nblk == 1:
        for p in range(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh, db_ih, limit)
            _proj_weight_grad(np.int64(p), npan, dH, m, dW_hr, limit)
        for p in range(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)
    else:
        for p in prange(npan):
            _weight_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, h_prev, X, dW_hh, dW_ih, db_hh, db_ih, limit)
            _proj_weight_grad(np.int64(p), npan, dH, m, dW_hr, limit)
        for p in prange(npan):
            _input_grads(np.int64(LSTM), np.int64(p), npan, dg, dummy, Wih, dX, limit)
