"""Vanilla (Elman) RNN, forward and BPTT, written as the textbook states them.

The recurrence::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu,   y_t = h_t

(act may be another of ONNX's activations, and the pre-activation clipped: see _common.gate.)
"""

# Tested by tests/test_reference_fd.py (finite differences), tests/test_reference_torch.py,
# tests/test_reference_onnx.py.

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import bias, gate, gate_backprop, step_input, time_steps, valid


class RNNCache(NamedTuple):
    """What rnn_backward reads. h_prev [T,B,H]: state entering step t; a [T,B,H]: the
    pre-activation W_ih x_t + W_hh h_{t-1} + b."""

    h_prev: np.ndarray
    a: np.ndarray


def rnn_forward(p):
    b = bias(p.b_ih, p) + bias(p.b_hh, p)
    y = np.zeros((p.T, p.B, p.H), p.dtype)
    cache = RNNCache(np.zeros_like(y), np.zeros_like(y)) if p.training else None
    h = p.h0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = x_t @ p.W_ih.T + h @ p.W_hh.T + b
        h_t = gate(p, 0, a)  # h_t = act(W_ih x_t + W_hh h_{t-1} + b)
        if cache is not None:
            cache.h_prev[t], cache.a[t] = h, a
        y[t] = np.where(m, h_t, 0)  # y_t = h_t; a padded step outputs zeros
        h = np.where(m, h_t, h)  # ... and leaves the state unchanged
    return y, h, None, cache


def rnn_backward(p, cache, dy, dh_n, dc_n=None, dh_norms=None):
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
        # through act: tanh' = 1 - h^2; relu' = [a > 0], selecting (as torch does) rather than
        # multiplying, so that a NaN gradient does not pass where the unit is off
        da = gate_backprop(p, 0, cache.a[t], dh_t)
        dW_ih += da.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += da.T @ cache.h_prev[t]
        db += da.sum(axis=0)
        dx[t] = da @ p.W_ih
        dh = da @ p.W_hh + np.where(m, 0, dh)  # to h_{t-1}; a padded step passes dh through
    return dx, dh, None, dW_ih, dW_hh, db, db.copy()


# rnn_tanh and rnn_relu differ only in their default activation (_common.DEFAULT_ACTS).
rnn_tanh_forward = rnn_relu_forward = rnn_forward
rnn_tanh_backward = rnn_relu_backward = rnn_backward
