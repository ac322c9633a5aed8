"""The per-step product of the Numba backend: out[i, o0+q] (+)= sum_k X[i, k] W[w0+q, k], q < n.

Why not np.dot: inside @njit it calls SciPy's OpenBLAS, which packs both operands and wakes its
own thread pool on every call; for one step's small product (B rows) that overhead is most of the
time, and the pool fights the Numba threads that split the step. This kernel runs on the calling
thread and reads W as it is stored (the rows of W_hh are the gate units), so a thread computes
its own unit block with no packing. Large products (input projection, weight gradients) still
go to the BLAS (blas.py).

Shape of the kernel: 6 rows x 2 columns of accumulators, the reduction over k innermost, so LLVM
vectorises it along k (fastmath reassoc, for this module only) and keeps the 12 sums in
registers; k is split in panels of KC and W in panels of NC rows so both operands stay in cache.
Indices into the k loops are unsigned: with signed ones Numba's negative-index wraparound hides
that the loads are contiguous and LLVM gathers element by element (6x slower).
For one or two rows (batch 1, the last steps of short sequences) the dot form wastes most of a
tile; those use the transposed weights Wt = W^T and run along the columns (axpy form).
"""

# Tested by tests/test_numba_kernels.py.

from __future__ import annotations

import numpy as np
from numba import njit

from ._cache import CACHE

_FM = {"contract", "reassoc"}  # reassociation lets LLVM vectorise the k reductions
KC = 1024  # k panel: 6 rows of X (24 KiB in float32) stay in L1
NC = 48  # W rows per panel: NC x KC elements stay in L2


@njit(cache=CACHE, fastmath=_FM, error_model="numpy")
def _tile(X, W, out, i, r, j, c, d, k0, k1, acc):
    """Rows i..i+r-1 (r <= 6) and W rows j..j+c-1 (c <= 2), stored to out's columns j+d..; k in
    [k0, k1). Rows and columns past the tile repeat its last one (same cost as a full tile; the
    repeats compute and store the same values)."""
    i1 = i + min(1, r - 1)
    i2 = i + min(2, r - 1)
    i3 = i + min(3, r - 1)
    i4 = i + min(4, r - 1)
    i5 = i + min(5, r - 1)
    j1 = j + min(1, c - 1)
    z = X.dtype.type(0)
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = z
    for k in range(np.uint64(k0), np.uint64(k1)):
        w0 = W[j, k]
        w1 = W[j1, k]
        x = X[i, k]
        s00 += x * w0
        s01 += x * w1
        x = X[i1, k]
        s10 += x * w0
        s11 += x * w1
        x = X[i2, k]
        s20 += x * w0
        s21 += x * w1
        x = X[i3, k]
        s30 += x * w0
        s31 += x * w1
        x = X[i4, k]
        s40 += x * w0
        s41 += x * w1
        x = X[i5, k]
        s50 += x * w0
        s51 += x * w1
    oj, oj1 = j + d, j1 + d
    if acc:
        s00 += out[i, oj]
        s01 += out[i, oj1]
        s10 += out[i1, oj]
        s11 += out[i1, oj1]
        s20 += out[i2, oj]
        s21 += out[i2, oj1]
        s30 += out[i3, oj]
        s31 += out[i3, oj1]
        s40 += out[i4, oj]
        s41 += out[i4, oj1]
        s50 += out[i5, oj]
        s51 += out[i5, oj1]
    out[i, oj] = s00
    out[i, oj1] = s01
    out[i1, oj] = s10
    out[i1, oj1] = s11
    out[i2, oj] = s20
    out[i2, oj1] = s21
    out[i3, oj] = s30
    out[i3, oj1] = s31
    out[i4, oj] = s40
    out[i4, oj1] = s41
    out[i5, oj] = s50
    out[i5, oj1] = s51


@njit(cache=CACHE, fastmath=_FM, error_model="numpy")
def _axpy_rows(X, Wt, w0, out, o0, n, accumulate):
    """out[i, o0+q] (+)= sum_k X[i, k] Wt[k, w0+q] row by row, along q (four k at a time, so out is
    loaded and stored once per four multiply-adds)."""
    M, K = X.shape
    z = X.dtype.type(0)
    uw, uo, un = np.uint64(w0), np.uint64(o0), np.uint64(n)
    k4 = K - K % 4
    for i in range(M):
        if not accumulate:
            for q in range(un):
                out[i, uo + q] = z
        for k in range(0, k4, 4):
            x0, x1, x2, x3 = X[i, k], X[i, k + 1], X[i, k + 2], X[i, k + 3]
            for q in range(un):
                c = uw + q
                out[i, uo + q] += (
                    x0 * Wt[k, c] + x1 * Wt[k + 1, c] + x2 * Wt[k + 2, c] + x3 * Wt[k + 3, c]
                )
        for k in range(k4, K):
            x = X[i, k]
            for q in range(un):
                out[i, uo + q] += x * Wt[k, uw + q]


@njit(cache=CACHE, fastmath=_FM, error_model="numpy")
def step_product(X, W, Wt, w0, out, o0, n, accumulate):
    """out[i, o0+q] = (out[i, o0+q] if accumulate else 0) + sum_k X[i, k] W[w0+q, k] for i < M, q < n.
    X [M, K], W [>= w0+n, K], Wt = W^T (read only when M <= 2), all C-contiguous."""
    M, K = X.shape
    if M <= 2:
        _axpy_rows(X, Wt, w0, out, o0, n, accumulate)
        return
    if K == 0 and not accumulate:
        out[:M, o0 : o0 + n] = 0
    d = o0 - w0
    for k0 in range(0, K, KC):
        k1 = min(K, k0 + KC)
        acc = accumulate or k0 > 0
        for n0 in range(w0, w0 + n, NC):
            n1 = min(w0 + n, n0 + NC)
            for i in range(0, M, 6):
                r = min(6, M - i)
                for j in range(n0, n1, 2):
                    _tile(X, W, out, i, r, j, min(2, n1 - j), d, k0, k1, acc)
