"""Small helpers shared by the reference cells: the order of the time steps and the padding mask."""

from __future__ import annotations

import numpy as np

from .._validate import DEFAULT_ACTS


def time_steps(T: int, reverse: bool) -> range:
    """The order in which the cell visits the steps (the reverse direction runs from T-1 to 0)."""
    return range(T - 1, -1, -1) if reverse else range(T)


def valid(p, t: int) -> np.ndarray:
    """[B,1] bool: is step t inside sequence b (t < lengths[b])? All True without lengths."""
    if p.lengths is None:
        return np.ones((p.B, 1), dtype=bool)
    return (t < p.lengths)[:, None]


def bias(b, p) -> np.ndarray:
    """A missing bias is a zero bias."""
    return np.zeros(p.G * p.H, p.dtype) if b is None else b


def sigmoid(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-a) = inf for a << 0: sigmoid is then exactly 0
        return 1.0 / (1.0 + np.exp(-a))


def step_input(p, t: int, m: np.ndarray) -> np.ndarray:
    """x_t with the rows of padded sequences zeroed: a padded step's input is never read, so a NaN
    or inf there cannot reach any output or gradient (0 * NaN would)."""
    return p.x[t] if p.lengths is None else np.where(m, p.x[t], 0)


# The gate nonlinearities. Each cell has positions (ONNX's f, g, h): the RNN f (tanh, or relu for
# rnn_relu); the GRU f for r and z, g for n; the LSTM f for i, f and o, g for the candidate cell, h
# for the output h_t = o * h(c_t). The defaults are torch's; a problem may choose others from
# ONNX's list (p.acts: (name, alpha, beta) per position, () for the defaults; names lower case).


def _spec(p, k):
    return p.acts[k] if p.acts else (DEFAULT_ACTS[p.cell][k], 0.0, 0.0)


def act(p, k, a):
    """The activation of position k of the cell at pre-activation a."""
    name, al, be = _spec(p, k)
    with np.errstate(over="ignore"):
        if name == "sigmoid":
            return sigmoid(a)
        if name == "tanh":
            return np.tanh(a)
        if name == "relu":
            return np.maximum(a, 0)  # keeps NaN
        if name == "leakyrelu":
            return np.where(a >= 0, a, al * a)
        if name == "thresholdedrelu":
            return np.where(a > al, a, 0)
        if name == "scaledtanh":
            return al * np.tanh(be * a)
        if name == "hardsigmoid":
            return np.clip(al * a + be, 0, 1)
        if name == "elu":
            return np.where(a >= 0, a, al * np.expm1(np.minimum(a, 0)))
        if name == "softsign":
            return a / (1 + np.abs(a))
        if name == "softplus":
            return np.logaddexp(0, a)
        assert name == "affine", name
        return al * a + be


def act_backprop(p, k, a, d):
    """d * act'(a) for position k: the gradient d of the activation's output taken to its input.
    Piecewise ones select (as torch's relu does), so that a NaN gradient stops where the unit is off."""
    name, al, be = _spec(p, k)
    if name == "sigmoid":
        s = sigmoid(a)
        return d * s * (1 - s)
    if name == "tanh":
        t = np.tanh(a)
        return d * (1 - t * t)
    if name == "relu":
        return np.where(a > 0, d, 0)
    if name == "leakyrelu":
        return np.where(a >= 0, d, al * d)
    if name == "thresholdedrelu":
        return np.where(a > al, d, 0)
    if name == "scaledtanh":
        t = np.tanh(be * a)
        return d * (al * be) * (1 - t * t)
    if name == "hardsigmoid":
        v = al * a + be
        return np.where((v > 0) & (v < 1), al * d, 0)
    if name == "elu":
        return np.where(a >= 0, d, d * al * np.exp(np.minimum(a, 0)))
    if name == "softsign":
        q = 1 + np.abs(a)
        return d / (q * q)
    if name == "softplus":
        return d * sigmoid(a)
    assert name == "affine", name
    return al * d


def gate(p, k, a):
    """A gate: activation k of its pre-activation, clipped to [-clip, clip] first when the problem
    clips (ONNX's clip: every gate's input, after the biases and peepholes; not c_t)."""
    return act(p, k, a if p.clip is None else np.clip(a, -p.clip, p.clip))


def gate_backprop(p, k, a, d):
    """gate's d * d(gate)/da: past the clip bounds the gradient stops."""
    if p.clip is None:
        return act_backprop(p, k, a, d)
    return np.where(np.abs(a) <= p.clip, act_backprop(p, k, np.clip(a, -p.clip, p.clip), d), 0)
