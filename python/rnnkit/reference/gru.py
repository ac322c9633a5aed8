"""GRU, forward and BPTT, with PyTorch's formula and gate order r, z, n.

The recurrence::

    r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1},   y_t = h_t

(sigmoid and tanh may be others of ONNX's activations, and the pre-activations clipped: see
_common.gate.)
"""

# Tested by tests/test_reference_fd.py, tests/test_reference_torch.py, tests/test_reference_onnx.py.

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import bias, gate, gate_backprop, step_input, time_steps, valid


class GRUCache(NamedTuple):
    """What gru_backward reads. h_prev [T,B,H]; a [T,B,3H]: the pre-activations of r, z, n;
    hn [T,B,H]: W_hn h + b_hn (gru_reset_before: r * h_{t-1})."""

    h_prev: np.ndarray
    a: np.ndarray
    hn: np.ndarray


def gru_forward(p):
    H = p.H
    b_ih, b_hh = bias(p.b_ih, p), bias(p.b_hh, p)
    y = np.zeros((p.T, p.B, H), p.dtype)
    cache = None
    if p.training:
        cache = GRUCache(np.zeros_like(y), np.zeros((p.T, p.B, 3 * H), p.dtype), np.zeros_like(y))
    h = p.h0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        ai = x_t @ p.W_ih.T + b_ih  # input part of the three gates
        ah = h @ p.W_hh.T + b_hh  # recurrent part, kept apart: r multiplies its n block
        a = ai + ah  # pre-activations of r and z (and, below, of n)
        r = gate(p, 0, a[:, :H])  # reset gate
        z = gate(p, 0, a[:, H : 2 * H])  # update gate
        hn = ah[:, 2 * H :]
        a[:, 2 * H :] = ai[:, 2 * H :] + r * hn
        n = gate(p, 1, a[:, 2 * H :])  # candidate state
        h_t = (1 - z) * n + z * h  # h_t = (1 - z) * n + z * h_{t-1}
        if cache is not None:
            cache.h_prev[t], cache.a[t], cache.hn[t] = h, a, hn
        y[t] = np.where(m, h_t, 0)  # a padded step outputs zeros
        h = np.where(m, h_t, h)  # ... and leaves the state unchanged
    return y, h, None, cache


def gru_backward(p, cache, dy, dh_n, dc_n=None, dh_norms=None):
    H = p.H
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(3 * H, p.dtype), np.zeros(3 * H, p.dtype)
    dx = np.zeros_like(p.x)
    dh = dh_n.copy()
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = cache.a[t]
        r, z, n = gate(p, 0, a[:, :H]), gate(p, 0, a[:, H : 2 * H]), gate(p, 1, a[:, 2 * H :])
        h_prev = cache.h_prev[t]
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        dn = gate_backprop(p, 1, a[:, 2 * H :], dh_t * (1 - z))  # h_t = (1-z)*n + z*h_{t-1}, then tanh'
        dz = gate_backprop(p, 0, a[:, H : 2 * H], dh_t * (h_prev - n))
        dr = gate_backprop(p, 0, a[:, :H], dn * cache.hn[t])  # n = tanh(.. + r * hn)
        dai = np.concatenate([dr, dz, dn], axis=1)  # gradient of the input part of the gates
        dah = np.concatenate([dr, dz, dn * r], axis=1)  # ... and of the recurrent part
        dW_ih += dai.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh += dah.T @ h_prev
        db_ih += dai.sum(axis=0)
        db_hh += dah.sum(axis=0)
        dx[t] = dai @ p.W_ih
        dh = dah @ p.W_hh + dh_t * z + np.where(m, 0, dh)  # to h_{t-1}
    return dx, dh, None, dW_ih, dW_hh, db_ih, db_hh


# The GRU of the original paper, ONNX's default (linear_before_reset=0) and Keras's
# GRU(reset_after=False): the reset gate multiplies h_{t-1} before the recurrent product of n::
#
#     n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)
#
# r, z and h_t as above; same weights, shapes and gate order (r, z, n).


def gru_reset_before_forward(p):
    H = p.H
    b_ih, b_hh = bias(p.b_ih, p), bias(p.b_hh, p)
    W_hrz, W_hn = p.W_hh[: 2 * H], p.W_hh[2 * H :]
    y = np.zeros((p.T, p.B, H), p.dtype)
    cache = None
    if p.training:  # hn holds r * h_{t-1}, the operand of W_hn
        cache = GRUCache(np.zeros_like(y), np.zeros((p.T, p.B, 3 * H), p.dtype), np.zeros_like(y))
    h = p.h0
    for t in time_steps(p.T, p.reverse):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = x_t @ p.W_ih.T + b_ih  # input part of the three gates
        a[:, : 2 * H] += h @ W_hrz.T + b_hh[: 2 * H]  # recurrent part of r and z
        r = gate(p, 0, a[:, :H])  # reset gate
        z = gate(p, 0, a[:, H : 2 * H])  # update gate
        rh = r * h  # reset before the product
        a[:, 2 * H :] += rh @ W_hn.T + b_hh[2 * H :]
        n = gate(p, 1, a[:, 2 * H :])  # candidate state
        h_t = (1 - z) * n + z * h  # h_t = (1 - z) * n + z * h_{t-1}
        if cache is not None:
            cache.h_prev[t], cache.a[t], cache.hn[t] = h, a, rh
        y[t] = np.where(m, h_t, 0)  # a padded step outputs zeros
        h = np.where(m, h_t, h)  # ... and leaves the state unchanged
    return y, h, None, cache


def gru_reset_before_backward(p, cache, dy, dh_n, dc_n=None, dh_norms=None):
    H = p.H
    W_hrz, W_hn = p.W_hh[: 2 * H], p.W_hh[2 * H :]
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(3 * H, p.dtype), np.zeros(3 * H, p.dtype)
    dx = np.zeros_like(p.x)
    dh = dh_n.copy()
    for t in reversed(time_steps(p.T, p.reverse)):
        m = valid(p, t)
        x_t = step_input(p, t, m)
        a = cache.a[t]
        r, z, n = gate(p, 0, a[:, :H]), gate(p, 0, a[:, H : 2 * H]), gate(p, 1, a[:, 2 * H :])
        h_prev, rh = cache.h_prev[t], cache.hn[t]
        dh_t = np.where(m, dy[t] + dh, 0)  # dL/dh_t from the output and from step t+1
        if dh_norms is not None:
            dh_norms[t] = np.sqrt(np.sum(dh_t * dh_t, axis=1))
        dn = gate_backprop(p, 1, a[:, 2 * H :], dh_t * (1 - z))  # h_t = (1-z)*n + z*h_{t-1}, then tanh'
        dz = gate_backprop(p, 0, a[:, H : 2 * H], dh_t * (h_prev - n))
        drh = dn @ W_hn  # n = tanh(.. + W_hn (r * h_{t-1}) ..)
        dr = gate_backprop(p, 0, a[:, :H], drh * h_prev)
        dai = np.concatenate([dr, dz, dn], axis=1)  # gradient of the pre-activations
        dW_ih += dai.T @ x_t  # BPTT: every step adds its share to the shared weights
        dW_hh[: 2 * H] += dai[:, : 2 * H].T @ h_prev
        dW_hh[2 * H :] += dn.T @ rh
        db_ih += dai.sum(axis=0)
        db_hh += dai.sum(axis=0)
        dx[t] = dai @ p.W_ih
        dh = dai[:, : 2 * H] @ W_hrz + drh * r + dh_t * z + np.where(m, 0, dh)  # to h_{t-1}
    return dx, dh, None, dW_ih, dW_hh, db_ih, db_hh
