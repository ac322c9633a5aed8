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
    """O(T + B) work (a sort of the lengths and a histogram), read-only arrays."""
    T, B = p.T, p.B
    if p.lengths is None:
        return _dense(T, B)
    perm = np.argsort(-p.lengths, kind="stable").astype(np.int64)
    # batch_sizes[t] = #{b : lengths[b] > t} = B - #{b : lengths[b] <= t}
    batch_sizes = B - np.cumsum(np.bincount(p.lengths, minlength=T + 1)[:T])
    offsets = np.zeros(T + 1, np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    arrays = (perm, batch_sizes.astype(np.int64), offsets)
    for a in arrays:
        a.flags.writeable = False
    return Plan(*arrays, False)


def packed_rows(pl: Plan, B: int) -> np.ndarray:
    """[N] int64: the row of a [T*B, ...] array (time-major) that each packed row comes from."""
    t = np.repeat(np.arange(len(pl.batch_sizes), dtype=np.int64), pl.batch_sizes)
    i = np.arange(pl.N, dtype=np.int64) - pl.offsets[t]
    return t * B + pl.perm[i]


def unpack(pl: Plan, packed: np.ndarray, T: int, B: int) -> np.ndarray:
    """[N, H] packed rows -> [T, B, H] (rows past a sequence's length are zero)."""
    out = np.zeros((T, B, packed.shape[1]), packed.dtype)
    out.reshape(T * B, -1)[packed_rows(pl, B)] = packed
    return out
