"""The Numba sequence drivers: the same schedule as the C++ backend (one input-projection product,
then per step one recurrent product and one fused pointwise pass; backward keeps every step's
gate gradients and forms the weight gradients as large products at the end), written once for
all cells (cell codes below) and compiled per dtype, cached on disk (cache=True).

Products go through np.dot, i.e. SciPy's BLAS, for every product (one BLAS, one thread pool).
Shapes: see rnnkit/_plan.py for the sorted, packed layout; G*H columns in PyTorch's gate order.
Check: tests/test_backends.py (backend "numba").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import FASTMATH, sigmoid_inplace, tanh_inplace

RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3


@njit(cache=True, fastmath=FASTMATH)
def _step_forward(cell, training, H, xg_row, acc_row, bias, b_hn, h_prev_row, c_row, c_prev_row,
                  hn_row, y_row, scr):  # fmt: skip
    """One row of one step: gates from the two projections, state update, y_row <- h_t."""
    G = xg_row.shape[0] // H
    g = scr[0, : G * H]
    k, s = scr[1], scr[2]
    if cell == GRU:
        for j in range(2 * H):
            g[j] = xg_row[j] + acc_row[j] + bias[j]
        sigmoid_inplace(g[: 2 * H], k)  # r, z
        for u in range(H):
            hn = acc_row[2 * H + u] + b_hn[u]
            scr[3, u] = hn
            g[2 * H + u] = xg_row[2 * H + u] + bias[2 * H + u] + g[u] * hn
        tanh_inplace(g[2 * H :], k, s)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        for u in range(H):
            z = g[H + u]
            y_row[u] = (1 - z) * g[2 * H + u] + z * h_prev_row[u]
        if training:
            hn_row[:] = scr[3, :H]
    else:
        for j in range(G * H):
            g[j] = xg_row[j] + acc_row[j] + bias[j]
        if cell == LSTM:
            sigmoid_inplace(g[: 2 * H], k)  # i, f
            tanh_inplace(g[2 * H : 3 * H], k, s)  # g
            sigmoid_inplace(g[3 * H :], k)  # o
            tc = scr[3, :H]
            for u in range(H):
                cp = c_row[u]
                cn = g[H + u] * cp + g[u] * g[2 * H + u]  # c_t = f * c_{t-1} + i * g
                if training:
                    c_prev_row[u] = cp
                c_row[u] = cn
                tc[u] = cn
            tanh_inplace(tc, k, s)
            for u in range(H):
                y_row[u] = g[3 * H + u] * tc[u]  # h_t = o * tanh(c_t)
        elif cell == RNN_TANH:
            tanh_inplace(g, k, s)
            y_row[:] = g
        else:
            for u in range(H):
                y_row[u] = 0 if g[u] < 0 else g[u]  # relu keeps NaN
            g[:] = y_row
    if training:
        xg_row[:] = g  # activated gates (RNN: h_t) for backward


@njit(cache=True, fastmath=FASTMATH)
def sequence_forward(cell, X, WihT, WhhT, bias, b_hn, h0s, c, perm, bs, off, reverse, training,
                     y, h_n, xg, h_prev, c_prev, hn, hbuf, acc, scr):  # fmt: skip
    """Fills y [T,B,H] (padded rows untouched), h_n [B,H] (pre-filled with h0), c [B,H] (sorted,
    in place), xg [N,G*H]; in training also h_prev, c_prev (LSTM), hn (GRU) [N,H]."""
    T = bs.shape[0]
    H = h0s.shape[1]
    if X.shape[1] > 0:
        np.dot(X, WihT, xg)  # input projection of every step at once
    else:
        xg[:] = 0
    t0 = T - 1 if reverse else 0
    if training:
        h_prev[off[t0] : off[t0] + bs[t0]] = h0s[: bs[t0]]
    else:
        hbuf[0] = h0s
        hbuf[1] = h0s
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        last = s == T - 1
        tn = t if last else (t - 1 if reverse else t + 1)
        rows_next = 0 if last else bs[tn]
        hcur = h_prev[o : o + rows] if training else hbuf[s % 2, :rows]
        hnext = h_prev[off[tn] : off[tn] + bs[tn]] if training else hbuf[(s + 1) % 2]
        a = acc[:rows]
        np.dot(hcur, WhhT, a)  # recurrent projection
        for i in range(rows):
            y_row = y[t, perm[i]]
            _step_forward(cell, training, H, xg[o + i], a[i], bias, b_hn, hcur[i], c[i],
                          c_prev[o + i] if training and cell == LSTM else c_prev[0],
                          hn[o + i] if training and cell == GRU else hn[0], y_row, scr)  # fmt: skip
            if i < rows_next:
                hnext[i] = y_row
            else:
                h_n[perm[i]] = y_row  # the sequence ends here
        for i in range(rows, rows_next):  # reverse with lengths: sequences starting next step
            hnext[i] = h0s[i]


@njit(cache=True, fastmath=FASTMATH)
def _step_backward(cell, H, g, h_prev_row, c_prev_row, hn_row, dy_row, dh_row, dc_row, dg_row,
                   dn_row, scr):  # fmt: skip
    """One row of one step: gradients of the pre-activations from dL/dh (and dL/dc) leaving it."""
    if cell == LSTM:
        tc = scr[0, :H]
        for u in range(H):
            tc[u] = g[H + u] * c_prev_row[u] + g[u] * g[2 * H + u]
        tanh_inplace(tc, scr[1], scr[2])  # tanh(c_t), recomputed rather than stored
        for u in range(H):
            ig, fg, gg, og = g[u], g[H + u], g[2 * H + u], g[3 * H + u]
            dht = dy_row[u] + dh_row[u]
            dct = dc_row[u] + dht * og * (1 - tc[u] * tc[u])
            dg_row[u] = dct * gg * ig * (1 - ig)
            dg_row[H + u] = dct * c_prev_row[u] * fg * (1 - fg)
            dg_row[2 * H + u] = dct * ig * (1 - gg * gg)
            dg_row[3 * H + u] = dht * tc[u] * og * (1 - og)
            dc_row[u] = dct * fg
    elif cell == GRU:
        for u in range(H):
            r, z, n = g[u], g[H + u], g[2 * H + u]
            dht = dy_row[u] + dh_row[u]
            dnv = dht * (1 - z) * (1 - n * n)
            dg_row[u] = dnv * hn_row[u] * r * (1 - r)
            dg_row[H + u] = dht * (h_prev_row[u] - n) * z * (1 - z)
            dg_row[2 * H + u] = dnv * r  # recurrent side; the input side is dn
            dn_row[u] = dnv
            dh_row[u] = dht * z  # direct path to h_{t-1}; the product adds the rest
    else:
        for u in range(H):
            h = g[u]
            d = dy_row[u] + dh_row[u]
            if cell == RNN_TANH:
                dg_row[u] = d * (1 - h * h)
            else:
                dg_row[u] = d if h > 0 else 0


@njit(cache=True, fastmath=FASTMATH)
def sequence_backward(cell, X, Wih, Whh, xg, h_prev, c_prev, hn, dy, dh, dc, perm, bs, off,
                      reverse, dg, dn, dW_ih, dW_hh, db_ih, db_hh, dX, tmp, scr):  # fmt: skip
    """dh, dc [B,H] (sorted rows) hold dL/dh_n, dL/dc_n on entry and dL/dh0, dL/dc0 on exit;
    fills dg [N,G*H], dn [N,H] (GRU), the weight and bias gradients and dX [N,I] (packed)."""
    T = bs.shape[0]
    H = Whh.shape[1]
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rows, o = bs[t], off[t]
        for i in range(rows):
            _step_backward(cell, H, xg[o + i], h_prev[o + i],
                           c_prev[o + i] if cell == LSTM else c_prev[0],
                           hn[o + i] if cell == GRU else hn[0], dy[t, perm[i]], dh[i], dc[i],
                           dg[o + i], dn[o + i] if cell == GRU else dn[0], scr)  # fmt: skip
        d = tmp[:rows]
        np.dot(dg[o : o + rows], Whh, d)  # dh_{t-1} = dgates @ W_hh (rows past their end keep dh)
        if cell == GRU:
            dh[:rows] += d
        else:
            dh[:rows] = d
    # Weight and bias gradients: every step's share at once.
    dW_hh[:] = np.dot(dg.T, h_prev)
    db_hh[:] = dg.sum(axis=0)
    if cell == GRU:
        dg[:, 2 * H :] = dn  # the input side of the n gate: dn, not dn * r
    db_ih[:] = dg.sum(axis=0)
    if X.shape[1] > 0:
        dW_ih[:] = np.dot(dg.T, X)
        np.dot(dg, Wih, dX)
    else:
        dW_ih[:] = 0
