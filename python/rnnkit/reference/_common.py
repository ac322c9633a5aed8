"""Small helpers shared by the reference cells: the order of the time steps and the padding mask."""

from __future__ import annotations

import numpy as np


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
