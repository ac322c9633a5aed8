"""The training toolkit around the layers: softmax cross-entropy, gradient clipping (the threshold
cure for exploding gradients), SGD with momentum and Adam over parameter/gradient dicts, and
truncated BPTT over a long sequence. Check: tests/test_training.py.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

__all__ = ["softmax", "softmax_cross_entropy", "clip_grad_norm", "clip_grad_value", "SGD", "Adam", "tbptt_chunks"]


def _number(name, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """A real number in the given range, or an error naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = v != v or (low is not None and (v <= low if low_open else v < low))
    bad = bad or (high is not None and (v >= high if high_open else v > high))
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")
    return v


def _grad_for(grads, name):
    if name not in grads:
        raise KeyError(f"step: no gradient for parameter {name!r} (grads has {sorted(grads)})")
    return grads[name]


def softmax(logits, axis=-1):
    """softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z) (shifted: no overflow)."""
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits, targets, mask=None):
    """Mean cross-entropy of softmax(logits) against integer targets, and its gradient.

    logits [..., K]; targets [...] integers in [0, K); mask [...] (optional, bool or 0/1): entries
    with mask 0 (padded steps) neither count in the mean nor get a gradient.
    Returns (loss, dlogits) with dlogits = (softmax - onehot) * mask / count.
    """
    z = np.asarray(logits)
    t = np.asarray(targets)
    if z.ndim == 0 or z.dtype.kind != "f":
        raise ValueError(f"logits must be a float array [..., K] (classes last), got shape {z.shape}, dtype {z.dtype}")
    if z.shape[:-1] != t.shape:
        raise ValueError(f"targets must have shape {z.shape[:-1]} (logits without the class axis), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets must be integers, got dtype {t.dtype}")
    K = z.shape[-1]
    m = np.ones(t.shape, z.dtype) if mask is None else np.asarray(mask).astype(z.dtype)
    if m.shape != t.shape:
        raise ValueError(f"mask must have shape {t.shape}, got {m.shape}")
    tt = np.where(m > 0, t, 0)
    if tt.size and (tt.min() < 0 or tt.max() >= K):
        raise ValueError(f"targets must lie in [0, {K})")
    count = max(float(m.sum()), 1.0)
    p = softmax(z)
    logp = np.log(np.take_along_axis(p, tt[..., None], axis=-1)[..., 0] + np.finfo(z.dtype).tiny)
    loss = float(-(logp * m).sum() / count)
    d = p.copy()
    np.put_along_axis(d, tt[..., None], np.take_along_axis(d, tt[..., None], axis=-1) - 1, axis=-1)
    return loss, (d * (m / count)[..., None]).astype(z.dtype)


def _all_grads(grads) -> Iterable[np.ndarray]:
    if isinstance(grads, dict):
        return list(grads.values())
    out = []
    for g in grads:
        out.extend(_all_grads(g) if isinstance(g, dict) else [g])
    return out


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most max_norm.
    grads: a dict name -> array, or a list of such dicts. Returns the norm before clipping."""
    max_norm = _number("max_norm", max_norm, 0, low_open=True)
    gs = _all_grads(grads)
    total = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gs)))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in gs:
            g *= scale
    return total


def clip_grad_value(grads, clip_value: float) -> None:
    """Clip every gradient element in place to [-clip_value, clip_value]."""
    clip_value = _number("clip_value", clip_value, 0, low_open=True)
    for g in _all_grads(grads):
        np.clip(g, -clip_value, clip_value, out=g)


class SGD:
    """params[n] -= lr * (momentum buffer) over dicts name -> array (torch.optim.SGD's update)."""

    def __init__(self, params: Dict[str, np.ndarray], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0):  # fmt: skip
        self.params, self.lr = params, _number("lr", lr, 0)
        self.momentum = _number("momentum", momentum, 0, 1, high_open=True)
        self.weight_decay = _number("weight_decay", weight_decay, 0)
        self._buf: Dict[str, np.ndarray] = {}

    def step(self, grads: Dict[str, np.ndarray]) -> None:
        for n, p in self.params.items():
            g = _grad_for(grads, n)
            g = g + self.weight_decay * p if self.weight_decay else g
            if self.momentum:
                b = self._buf.get(n)
                b = g.copy() if b is None else b * self.momentum + g
                self._buf[n] = b
                g = b
            p -= self.lr * g


class Adam:
    """Adam (torch.optim.Adam's update, bias-corrected) over dicts name -> array."""

    def __init__(self, params: Dict[str, np.ndarray], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8):  # fmt: skip
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = _number("betas[0]", betas[0], 0, 1, high_open=True)
        b2 = _number("betas[1]", betas[1], 0, 1, high_open=True)
        self.params, self.lr, self.betas = params, _number("lr", lr, 0), (b1, b2)
        self.eps = _number("eps", eps, 0, low_open=True)
        self.t = 0
        self._m = {n: np.zeros_like(p) for n, p in params.items()}
        self._v = {n: np.zeros_like(p) for n, p in params.items()}

    def step(self, grads: Dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for n, p in self.params.items():
            g = _grad_for(grads, n)
            self._m[n] = b1 * self._m[n] + (1 - b1) * g
            self._v[n] = b2 * self._v[n] + (1 - b2) * g * g
            m_hat = self._m[n] / (1 - b1**self.t)
            v_hat = self._v[n] / (1 - b2**self.t)
            p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)


def tbptt_chunks(T: int, chunk: int, lengths: Optional[np.ndarray] = None):
    """Truncated BPTT: the (start, stop, chunk_lengths) of consecutive chunks of a T-step sequence.
    Run each chunk forward from the previous chunk's final state (detached: no gradient flows
    back across chunks), backward within the chunk. chunk_lengths clips `lengths` to the chunk."""
    from ._validate import positive_int

    positive_int("chunk", chunk)
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        cl = None if lengths is None else np.clip(np.asarray(lengths) - start, 0, stop - start).astype(np.int64)
        yield start, stop, cl
