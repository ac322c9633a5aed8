"""The per-step product of the Numba backend: out[i, j] (+)= sum_k X[i, k] W[j, k].

Why not np.dot: inside @njit it calls SciPy's OpenBLAS, which packs both operands and wakes its
own thread pool on every call; for one step's small product (B rows) that overhead is most of the
time, and the pool fights the Numba threads that split the step. This kernel runs on the calling
thread and reads W as it is stored (the rows of W_hh are the gate units), so a thread computes
its own unit block with no packing. Large products (input projection, weight gradients) still
go to the BLAS through np.dot.

Shape of the kernel: 6 rows x 2 columns of accumulators, the reduction over k innermost, so LLVM
vectorises it along k (fastmath reassoc, for this module only) and keeps the 12 sums in
registers; k is split in panels of KC and W in panels of NC rows so both operands stay in cache.
Check: tests/test_numba_kernels.py.
"""
from __future__ import annotations
import numpy as np
from numba import njit

_FM = {"contract", "reassoc"}  # reassociation lets LLVM vectorise the k reductions
KC = 256  # k panel: 6 rows of X and 2 of W stay in L1
NC = 96  # W rows per panel: NC x KC elements stay in L2


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _tile(X, W, out, i, r, j, c, k0, k1, acc):
    """Rows i..i+r-1 (r <= 6), columns j..j+c-1 (c <= 2), k in [k0, k1); rows and columns past the
    tile repeat its last one (same cost as a full tile, only valid entries stored)."""
    i1 = i + min(1, r - 1)
    i2 = i + min(2, r - 1)
    i3 = i + min(3, r - 1)
    i4 = i + min(4, r - 1)
    i5 = i + min(5, r - 1)
    j1 = j + min(1, c - 1)
    z = X.dtype.type(0)
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = z
    for k in range(np.uint64(k0), np.uint64(k1)):  # unsigned: no wraparound select, so loads stay contiguous
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
    if acc:
        s00 += out[i, j]; s01 += out[i, j1]; s10 += out[i1, j]; s11 += out[i1, j1]
        s20 += out[i2, j]; s21 += out[i2, j1]; s30 += out[i3, j]; s31 += out[i3, j1]
        s40 += out[i4, j]; s41 += out[i4, j1]; s50 += out[i5, j]; s51 += out[i5, j1]
    # store from the last row/column back, so a repeated index ends with its true value
    out[i5, j1] = s51; out[i5, j] = s50; out[i4, j1] = s41; out[i4, j] = s40
    out[i3, j1] = s31; out[i3, j] = s30; out[i2, j1] = s21; out[i2, j] = s20
    out[i1, j1] = s11; out[i1, j] = s10; out[i, j1] = s01; out[i, j] = s00


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _row(X, W, out, i, j, c, k0, k1, acc):
    """One row, columns j..j+c-1 (c <= 2)."""
    j1 = j + min(1, c - 1)
    z = X.dtype.type(0)
    s0 = s1 = z
    for k in range(np.uint64(k0), np.uint64(k1)):  # unsigned: no wraparound select, so loads stay contiguous
        x = X[i, k]
        s0 += x * W[j, k]
        s1 += x * W[j1, k]
    out[i, j] = (out[i, j] if acc else z) + s0
    if c == 2:
        out[i, j1] = (out[i, j1] if acc else z) + s1


@njit(cache=True, fastmath=_FM, error_model="numpy")
def nt_product(X, W, out, accumulate):
    """out[:M, :N] = (out if accumulate else 0) + X @ W.T; X [M, K], W [N, K] (C-contiguous)."""
    M, K = X.shape
    N = W.shape[0]
    if K == 0 and not accumulate:
        out[:M, :N] = 0
    for k0 in range(0, K, KC):
        k1 = min(K, k0 + KC)
        acc = accumulate or k0 > 0
        for n0 in range(0, N, NC):
            n1 = min(N, n0 + NC)
            i = 0
            while M - i >= 3:
                r = min(6, M - i)
                for j in range(n0, n1, 2):
                    _tile(X, W, out, i, r, j, min(2, n1 - j), k0, k1, acc)
                i += r
            for ii in range(i, M):
                for j in range(n0, n1, 2):
                    _row(X, W, out, ii, j, min(2, n1 - j), k0, k1, acc)
