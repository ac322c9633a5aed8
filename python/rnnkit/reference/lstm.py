"""LSTM, forward and BPTT, as the textbook states them (PyTorch's gate order i, f, g, o).

The recurrence::

    [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t),   y_t = h_t

With projections (torch's proj_size; weight W_hr [S, H], S < H) the state h shrinks to S units:
h_t = W_hr (o * tanh(c_t)), and W_hh is [4H, S].

With peepholes (cell "lstm_peephole", ONNX's LSTM with input P; Gers & Schmidhuber) the input
and forget gates also see c_{t-1}, the output gate sees c_t, each through a diagonal weight,
p.P [3H] = (p_i, p_f, p_o)::

    i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i * c_{t-1}),  f likewise with p_f
    o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o * c_t)

ONNX's other options: input_forget couples the forget gate to the input gate, f = 1 - i (f's own
weights then have no effect); sigmoid and the two tanh (ONNX's f, g, h) may be others of ONNX's
activations, and the gates' pre-activations clipped (see _common.gate; c_t itself is not clipped).
"""

# Tested by tests/test_reference_fd.py, tests/test_reference_torch.py, tests/test_reference_onnx.py.

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import act, act_backprop, bias, gate, gate_backprop, step_input, time_steps, valid


class LSTMCache(NamedTuple):
    """What lstm_backward reads, each [T,B,H] (a [T,B,4H]).

    h_prev, c_prev: the state entering step t (h_prev [T,B,S] with a projection); a: the
    pre-activations of i, f, g, o (with the peephole terms); c: c_t.
    """

    h_prev: np.ndarray
    c_prev: np.ndarray
    a: np.ndarray
    c: np.ndarray


def _gates(p, a):
    """i, f, g from the pre-activations (f = 1 - i with input_forget)."""
    H = p.H
    i = gate(p, 0, a[:, :H])  # input gate
    f = 1 - i if p.input_forget else gate(p, 0, a[:, H : 2 * H])  # forget gate
    g = gate(p, 1, a[:, 2 * H : 3 * H])  # candidate cell
    return i, f, g


def lstm_forward(p):
    H, S = p.H, p.S
    b = bias(p.b_ih, p) + bias(p.b_hh, p)
    y = np.zeros((p.T, p.B, S), p.dtype)
    cache = None
    if p.training:
        cache = LSTMCache(np.zeros_like(y), np.zeros((p.T, p.B, H), p.dtype), np.zeros((p.T, p.B, 4 * H), p.dtype),
                          np.zeros((p.T, p.B, H), p.dtype))  # fmt: skip
    h, c = p.h0, p.c0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = x_t @ p.W_ih.T + h @ p.W_hh.T + b  # all four gates' pre-activations
        if p.P is not None:  # i and f peep at c_{t-1}
            a[:, :H] += p.P[:H] * c
            a[:, H : 2 * H] += p.P[H : 2 * H] * c
        i, f, g = _gates(p, a)
        c_t = f * c + i * g  # c_t = f * c_{t-1} + i * g
        if p.P is not None:  # o peeps at c_t
            a[:, 3 * H :] += p.P[2 * H :] * c_t
        o = gate(p, 0, a[:, 3 * H :])  # output gate
        h_t = o * act(p, 2, c_t)  # h_t = o * tanh(c_t)
        if p.W_hr is not None:
            h_t = h_t @ p.W_hr.T  # h_t = W_hr (o * tanh(c_t)), the projection
        if cache is not None:
            cache.h_prev[t], cache.c_prev[t], cache.a[t], cache.c[t] = h, c, a, c_t
        y[t] = np.where(m, h_t, 0)  # a padded step outputs zeros
        h, c = np.where(m, h_t, h), np.where(m, c_t, c)  # ... and leaves the state unchanged
    return y, h, c, cache


def lstm_backward(p, cache, dy, dh_n, dc_n, dh_norms=None):
    H = p.H
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    dW_hr = None if p.W_hr is None else np.zeros_like(p.W_hr)
    dP = None if p.P is None else np.zeros(3 * H, p.dtype)
    db = np.zeros(4 * H, p.dtype)
    dx = np.zeros_like(p.x)
    dh, dc = dh_n.copy(), dc_n.copy()
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a, c_prev, c_t = cache.a[t], cache.c_prev[t], cache.c[t]
        i, f, g = _gates(p, a)
        o = gate(p, 0, a[:, 3 * H :])
        hc = act(p, 2, c_t)  # tanh(c_t)
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        dm = dh_t  # dL/d(o * tanh(c_t))
        if dW_hr is not None:  # h_t = W_hr (o * tanh(c_t))
            dW_hr += dh_t.T @ (o * hc)
            dm = dh_t @ p.W_hr
        dao = gate_backprop(p, 0, a[:, 3 * H :], dm * hc)  # through the output gate's sigmoid
        dc_t = np.where(m, dc, 0) + act_backprop(p, 2, c_t, dm * o)  # o * tanh(c_t)
        if p.P is not None:
            dc_t = dc_t + dao * p.P[2 * H :]  # o peeps at c_t
        # c_t = f*c_{t-1} + i*g, through the nonlinearities (sigmoid' = s(1-s), tanh' = 1-g^2);
        # with input_forget f = 1 - i, so i also gets f's share, negated
        dai = gate_backprop(p, 0, a[:, :H], dc_t * (g - c_prev) if p.input_forget else dc_t * g)
        daf = np.zeros_like(dai) if p.input_forget else gate_backprop(p, 0, a[:, H : 2 * H], dc_t * c_prev)
        dag = gate_backprop(p, 1, a[:, 2 * H : 3 * H], dc_t * i)
        da = np.concatenate([dai, daf, dag, dao], axis=1)
        dW_ih += da.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += da.T @ cache.h_prev[t]
        db += da.sum(axis=0)
        dx[t] = da @ p.W_ih
        dh = da @ p.W_hh + np.where(m, 0, dh)  # to h_{t-1}; a padded step passes it through
        dc_prev = dc_t * f
        if dP is not None:  # i and f peep at c_{t-1}
            dP += np.concatenate([(dai * c_prev).sum(0), (daf * c_prev).sum(0), (dao * c_t).sum(0)])
            dc_prev = dc_prev + dai * p.P[:H] + daf * p.P[H : 2 * H]
        dc = dc_prev + np.where(m, 0, dc)  # to c_{t-1}
    out = (dx, dh, dc, dW_ih, dW_hh, db, db.copy())
    fifth = dW_hr if dW_hr is not None else dP
    return out if fifth is None else out + (fifth,)


# The LSTM with peepholes is the same pair (P given).
lstm_peephole_forward, lstm_peephole_backward = lstm_forward, lstm_backward
