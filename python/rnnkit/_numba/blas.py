"""The large products of the Numba kernels: the OpenBLAS of the scipy-openblas32 wheel (the library
the C++ backend links against), called from compiled code through ctypes.

Why not np.dot: inside @njit it calls SciPy's OpenBLAS, whose thread count is process-wide state;
holding it at one thread per call (so that Numba's threads could run one panel each) raced between
Python threads, and from a second thread the BLAS ran multi-threaded and the results differed
bitwise. This copy of OpenBLAS belongs to rnnkit alone and is set to one thread once, at import.
The routines are declared to Numba as external functions, looked up by name in the library loaded
into LLVM's symbol table: unlike ctypes function pointers, such calls can be cached on disk.
The BLAS takes 32-bit sizes: products with more than `limit` rows or reduction length are cut into
pieces (the reduction accumulating after its first piece), as in cpp/src/blas.cpp.
"""

# Tested by tests/test_numba_kernels.py (pieces forced by a small limit), tests/test_backends.py.

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types

from .._openblas import dll as _dll
from ._cache import CACHE

_dll.scipy_openblas_set_num_threads(1)
llvm.load_library_permanently(_dll._name)

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
LIMIT = 2**31 - 1  # the BLAS's int


def _routine(name, ft):
    # pointers passed as intp (the same registers as a pointer in every 64-bit calling convention)
    i, p = types.intc, types.intp
    return types.ExternalFunction(name, types.void(i, i, i, i, i, i, ft, p, i, p, i, ft, p, i))


_sgemm = _routine("scipy_cblas_sgemm", types.float32)
_dgemm = _routine("scipy_cblas_dgemm", types.float64)


@njit(cache=CACHE, nogil=True)
def gemm(ta, tb, A, B, C, beta, limit):
    """C = op(A) @ op(B) + beta * C (beta 0: C overwritten), op = transpose where ta / tb. Each
    operand is 2-D with contiguous rows (any row stride): A stored [K, M] when ta, else [M, K]; B
    stored [N, K] when tb, else [K, N]; C [M, N]."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0:
        for i in range(M):
            for j in range(N):
                C[i, j] = C[i, j] * beta if beta != 0 else C.dtype.type(0)
        return
    sz = C.itemsize
    lda, ldb, ldc = A.strides[0] // sz, B.strides[0] // sz, C.strides[0] // sz
    a, b, c = A.ctypes.data, B.ctypes.data, C.ctypes.data
    one = C.dtype.type(1)
    for m0 in range(0, M, limit):
        m = min(limit, M - m0)
        for k0 in range(0, K, limit):
            k = min(limit, K - k0)
            pa = a + sz * ((k0 * lda + m0) if ta else (m0 * lda + k0))
            pb = b + sz * (k0 if tb else k0 * ldb)
            bt = C.dtype.type(beta) if k0 == 0 else one
            if sz == 4:
                _sgemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, N, k,
                       np.float32(1), pa, lda, pb, ldb, np.float32(bt), c + sz * m0 * ldc, ldc)  # fmt: skip
            else:
                _dgemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, N, k,
                       1.0, pa, lda, pb, ldb, np.float64(bt), c + sz * m0 * ldc, ldc)  # fmt: skip
