"""LSTM, forward and BPTT, as the textbook states them (PyTorch's gate order i, f, g, o).

The recurrence::

    [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t),   y_t = h_t

With projections (torch's proj_size; weight W_hr [S, H], S < H) the state h shrinks to S units:
h_t = W_hr (o * tanh(c_t)), and W_hh is [4H, S].
"""

# Tested by tests/test_reference_fd.py, tests/test_reference_torch.py, tests/test_reference_onnx.py.

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import bias, sigmoid, step_input, time_steps, valid


class LSTMCache(NamedTuple):
    """What lstm_backward reads, each [T,B,H] (gates [T,B,4H] after their nonlinearities).

    h_prev, c_prev: the state entering step t (h_prev [T,B,S] with a projection); gates: i, f,
    g, o; tanh_c: tanh(c_t).
    """

    h_prev: np.ndarray
    c_prev: np.ndarray
    gates: np.ndarray
    tanh_c: np.ndarray


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
        i = sigmoid(a[:, 0 * H : 1 * H])  # input gate
        f = sigmoid(a[:, 1 * H : 2 * H])  # forget gate
        g = np.tanh(a[:, 2 * H : 3 * H])  # candidate cell
        o = sigmoid(a[:, 3 * H : 4 * H])  # output gate
        c_t = f * c + i * g  # c_t = f * c_{t-1} + i * g
        h_t = o * np.tanh(c_t)  # h_t = o * tanh(c_t)
        if p.W_hr is not None:
            h_t = h_t @ p.W_hr.T  # h_t = W_hr (o * tanh(c_t)), the projection
        if cache is not None:
            cache.h_prev[t], cache.c_prev[t], cache.tanh_c[t] = h, c, np.tanh(c_t)
            cache.gates[t] = np.concatenate([i, f, g, o], axis=1)
        y[t] = np.where(m, h_t, 0)  # a padded step outputs zeros
        h, c = np.where(m, h_t, h), np.where(m, c_t, c)  # ... and leaves the state unchanged
    return y, h, c, cache


def lstm_backward(p, cache, dy, dh_n, dc_n, dh_norms=None):
    H = p.H
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    dW_hr = None if p.W_hr is None else np.zeros_like(p.W_hr)
    db = np.zeros(4 * H, p.dtype)
    dx = np.zeros_like(p.x)
    dh, dc = dh_n.copy(), dc_n.copy()
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        gates = cache.gates[t]
        i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
        tanh_c = cache.tanh_c[t]
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        dm = dh_t  # dL/d(o * tanh(c_t))
        if dW_hr is not None:  # h_t = W_hr (o * tanh(c_t))
            dW_hr += dh_t.T @ (o * tanh_c)
            dm = dh_t @ p.W_hr
        dc_t = np.where(m, dc, 0) + dm * o * (1 - tanh_c**2)  # o * tanh(c_t)
        di = dc_t * g  # c_t = f*c_{t-1} + i*g
        df = dc_t * cache.c_prev[t]
        dg = dc_t * i
        do = dm * tanh_c
        da = np.concatenate(  # through the nonlinearities: sigmoid' = s(1-s), tanh' = 1-g^2
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1
        )
        dW_ih += da.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += da.T @ cache.h_prev[t]
        db += da.sum(axis=0)
        dx[t] = da @ p.W_ih
        dh = da @ p.W_hh + np.where(m, 0, dh)  # to h_{t-1}; a padded step passes it through
        dc = dc_t * f + np.where(m, 0, dc)  # to c_{t-1}
    out = (dx, dh, dc, dW_ih, dW_hh, db, db.copy())
    return out if dW_hr is None else out + (dW_hr,)


# The LSTM with peepholes (ONNX's LSTM with input P; Gers & Schmidhuber): the input and forget
# gates also see c_{t-1}, the output gate sees c_t, each through a diagonal weight, p.P [3H] =
# (p_i, p_f, p_o)::
#
#     i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i * c_{t-1}),  f likewise with p_f
#     o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o * c_t)
#
# g, c_t and h_t as above.


def lstm_peephole_forward(p):
    H = p.H
    b = bias(p.b_ih, p) + bias(p.b_hh, p)
    p_i, p_f, p_o = p.P[:H], p.P[H : 2 * H], p.P[2 * H :]
    y = np.zeros((p.T, p.B, H), p.dtype)
    cache = None
    if p.training:
        cache = LSTMCache(np.zeros_like(y), np.zeros_like(y), np.zeros((p.T, p.B, 4 * H), p.dtype), np.zeros_like(y))
    h, c = p.h0, p.c0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = x_t @ p.W_ih.T + h @ p.W_hh.T + b  # all four gates' pre-activations
        i = sigmoid(a[:, 0 * H : 1 * H] + p_i * c)  # input gate, peeping at c_{t-1}
        f = sigmoid(a[:, 1 * H : 2 * H] + p_f * c)  # forget gate, peeping at c_{t-1}
        g = np.tanh(a[:, 2 * H : 3 * H])  # candidate cell
        c_t = f * c + i * g  # c_t = f * c_{t-1} + i * g
        o = sigmoid(a[:, 3 * H : 4 * H] + p_o * c_t)  # output gate, peeping at c_t
        h_t = o * np.tanh(c_t)  # h_t = o * tanh(c_t)
        if cache is not None:
            cache.h_prev[t], cache.c_prev[t], cache.tanh_c[t] = h, c, np.tanh(c_t)
            cache.gates[t] = np.concatenate([i, f, g, o], axis=1)
        y[t] = np.where(m, h_t, 0)  # a padded step outputs zeros
        h, c = np.where(m, h_t, h), np.where(m, c_t, c)  # ... and leaves the state unchanged
    return y, h, c, cache


def lstm_peephole_backward(p, cache, dy, dh_n, dc_n, dh_norms=None):
    H = p.H
    p_i, p_f, p_o = p.P[:H], p.P[H : 2 * H], p.P[2 * H :]
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db = np.zeros(4 * H, p.dtype)
    dP = np.zeros(3 * H, p.dtype)
    dx = np.zeros_like(p.x)
    dh, dc = dh_n.copy(), dc_n.copy()
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        gates = cache.gates[t]
        i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
        tanh_c, c_prev = cache.tanh_c[t], cache.c_prev[t]
        c_t = f * c_prev + i * g
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        dao = dh_t * tanh_c * o * (1 - o)  # h_t = o*tanh(c_t), through the sigmoid
        dc_t = np.where(m, dc, 0) + dh_t * o * (1 - tanh_c**2) + dao * p_o  # o peeps at c_t
        dai = dc_t * g * i * (1 - i)  # c_t = f*c_{t-1} + i*g, through the nonlinearities
        daf = dc_t * c_prev * f * (1 - f)
        dag = dc_t * i * (1 - g * g)
        da = np.concatenate([dai, daf, dag, dao], axis=1)
        dW_ih += da.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += da.T @ cache.h_prev[t]
        db += da.sum(axis=0)
        dP += np.concatenate([(dai * c_prev).sum(0), (daf * c_prev).sum(0), (dao * c_t).sum(0)])
        dx[t] = da @ p.W_ih
        dh = da @ p.W_hh + np.where(m, 0, dh)  # to h_{t-1}; a padded step passes it through
        dc = dc_t * f + dai * p_i + daf * p_f + np.where(m, 0, dc)  # to c_{t-1}
    return dx, dh, dc, dW_ih, dW_hh, db, db.copy(), dP
