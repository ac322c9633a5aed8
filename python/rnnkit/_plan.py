"""The batch ordered by length, shared by the compiled backends (cpp, numba).

At time t the first batch_sizes[t] rows of the sorted order are the sequences still running (in
both directions); their per-step data is "packed" at rows offsets[t] .. offsets[t] + batch_sizes[t]
of an [N, ...] array, N the sum of the lengths. Without lengths the order is the identity and the
packed layout is the ordinary [T, B, ...] one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Plan(NamedTuple):
    perm: np.ndarray  # [B] int64: row i of the sorted order is batch entry perm[i]
    batch_sizes: np.ndarray  # [T] int64
    offsets: np.ndarray  # [T+1] int64; offsets[T] = N
    dense: bool  # no lengths

    @property
    def N(self) -> int:
        return int(self.offsets[-1])


_dense_plans: dict = {}


def _dense(T: int, B: int) -> Plan:
    """The plan without lengths, built once per (T, B) (read-only arrays, shared)."""
    key = (T, B)
    pl = _dense_plans.get(key)
    if pl is None:
        arrays = (np.arange(B, dtype=np.int64), np.full(T, B, np.int64), np.arange(T + 1, dtype=np.int64) * B)
        for a in arrays:
            a.flags.writeable = False
        pl = Plan(*arrays, True)
        if len(_dense_plans) > 64:
            _dense_plans.clear()
        _dense_plans[key] = pl
    return pl


def plan(p) -> Plan:
    T, B = p.T, p.B
    if p.lengths is None:
        return _dense(T, B)
    perm = np.argsort(-p.lengths, kind="stable").astype(np.int64)
    batch_sizes = (p.lengths[None, :] > np.arange(T)[:, None]).sum(axis=1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)]).astype(np.int64)
    return Plan(perm, batch_sizes, offsets, False)


def unpack(pl: Plan, packed: np.ndarray, T: int, B: int) -> np.ndarray:
    """[N, H] packed rows -> [T, B, H] (rows past a sequence's length are zero)."""
    out = np.zeros((T, B, packed.shape[1]), packed.dtype)
    for t in range(T):
        o, n = pl.offsets[t], pl.batch_sizes[t]
        out[t, pl.perm[:n]] = packed[o : o + n]
    return out
