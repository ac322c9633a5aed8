"""Vanilla (Elman) RNN, forward and BPTT, written as the textbook states them.

The recurrence::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu,   y_t = h_t
"""

# Tested by tests/test_reference_fd.py (finite differences), tests/test_reference_torch.py,
# tests/test_reference_onnx.py.

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import bias, step_input, time_steps, valid


class RNNCache(NamedTuple):
    """What rnn_backward reads. h_prev [T,B,H]: state entering step t; h [T,B,H]: act(a_t)."""

    h_prev: np.ndarray
    h: np.ndarray


def rnn_forward(p, relu=False):
    act = (lambda a: np.maximum(a, 0)) if relu else np.tanh
    b = bias(p.b_ih, p) + bias(p.b_hh, p)
    y = np.zeros((p.T, p.B, p.H), p.dtype)
    cache = RNNCache(np.zeros_like(y), np.zeros_like(y)) if p.training else None
    h = p.h0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        h_t = act(x_t @ p.W_ih.T + h @ p.W_hh.T + b)  # h_t = act(W_ih x_t + W_hh h_{t-1} + b)
        if cache is not None:
            cache.h_prev[t], cache.h[t] = h, h_t
        y[t] = np.where(m, h_t, 0)  # y_t = h_t; a padded step outputs zeros
        h = np.where(m, h_t, h)  # ... and leaves the state unchanged
    return y, h, None, cache


def rnn_backward(p, cache, dy, dh_n, dc_n=None, relu=False, dh_norms=None):
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db = np.zeros(p.G * p.H, p.dtype)
    dx = np.zeros_like(p.x)
    dh = dh_n.copy()  # dL/dh for the state leaving the current step
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t: from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        h_t = cache.h[t]
        # through act: tanh' = 1 - h^2; relu' = [h > 0], selecting (as torch does) rather than
        # multiplying, so that a NaN gradient does not pass where the unit is off
        da = np.where(h_t > 0, dh_t, 0) if relu else dh_t * (1 - h_t * h_t)
        dW_ih += da.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += da.T @ cache.h_prev[t]
        db += da.sum(axis=0)
        dx[t] = da @ p.W_ih
        dh = da @ p.W_hh + np.where(m, 0, dh)  # to h_{t-1}; a padded step passes dh through
    return dx, dh, None, dW_ih, dW_hh, db, db.copy()


def rnn_tanh_forward(p):
    return rnn_forward(p, relu=False)


def rnn_tanh_backward(p, cache, dy, dh_n, dc_n=None, dh_norms=None):
    return rnn_backward(p, cache, dy, dh_n, relu=False, dh_norms=dh_norms)


def rnn_relu_forward(p):
    return rnn_forward(p, relu=True)


def rnn_relu_backward(p, cache, dy, dh_n, dc_n=None, dh_norms=None):
    return rnn_backward(p, cache, dy, dh_n, relu=True, dh_norms=dh_norms)
