"""Loads the OpenBLAS of the scipy-openblas32 wheel, the library the C++ backend links against and
the Numba backend calls, without a thread pool: both call it from their own threads, one call per
thread (its thread count is set to 1 as well, cpp/src/blas.cpp and _numba/blas.py).

Why at load time: OpenBLAS starts its worker threads when the library is loaded, one fewer than the
cores unless OPENBLAS_NUM_THREADS says otherwise, and a new worker spins for about 0.1 s waiting for
work before it sleeps. On a 2-core machine that spin took the second core for the first calls of
every process: a 2-thread call then waited for a thread that had no core (measured on a 2-vCPU
AMD EPYC: the streaming LSTM's first training calls 45 and 20 ms instead of 0.4, and the contention
backoff of sequence.cpp then ran the next calls on one thread). So the variable is 1 while the
library loads (it is read once, then), and restored after: it is the process's, and other copies of
OpenBLAS (NumPy's) were loaded before rnnkit or read their own.
"""

# Tested by tests/test_threads.py (no OpenBLAS thread of rnnkit's is started).

from __future__ import annotations

import os

_KEY = "OPENBLAS_NUM_THREADS"
_before = os.environ.get(_KEY)
os.environ[_KEY] = "1"
try:
    import scipy_openblas32  # noqa: E402  (loads libscipy_openblas globally)
finally:
    if _before is None:
        del os.environ[_KEY]
    else:
        os.environ[_KEY] = _before

dll = scipy_openblas32.dll
