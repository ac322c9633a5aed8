"""Buffers a multi-layer module keeps for its inner layers' outputs in inference, and `empty`, the
allocation of every large per-call array (outputs, caches, gradients).

In inference the output of every layer but the last is read only by the next layer of the same
call, so a module can write it into the same buffer on every call instead of a fresh array whose
pages fault in anew each time (a 2 MB output per layer in a 2-layer bidirectional LSTM). The last
layer's output, which the caller receives, is always new. A call that finds another thread inside
the same module's forward allocates its own (a non-blocking lock). Pickling and deepcopy drop the
buffers. Used by rnnkit.layers and rnnkit.torch.
"""

# Tested by tests/test_layers.py, tests/test_torch_modules.py.

from __future__ import annotations

import threading
from typing import Any, Dict, Sequence

import numpy as np


# Arrays from this many bytes up come from the C++ extension's recycling pool (_core.pooled): their
# memory is kept when they are freed, so that a training loop does not fault every call's pages in
# afresh; a fresh multi-MB np.empty is a fresh mmap whenever glibc's heap was trimmed, which it is
# or not from one process to the next (measured: a bidirectional LSTM's training step 1.8k minor
# faults and 28 ms, or none and 25 ms). Smaller ones cost more to pool than to allocate.
_POOLED_BYTES = 256 * 1024
_pooled: Any = None  # _core.pooled once looked up; False without the C++ extension


def empty(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """np.empty(shape, dtype), from the recycling pool when large (see _POOLED_BYTES)."""
    global _pooled
    dtype = np.dtype(dtype)
    n = dtype.itemsize
    for d in shape:
        n *= d
    if n < _POOLED_BYTES:
        return np.empty(shape, dtype)
    if _pooled is None:
        try:
            from ._native import core

            _pooled = core.pooled
        except ImportError:
            _pooled = False
    if _pooled is False:
        return np.empty(shape, dtype)
    return _pooled(n).view(dtype).reshape(shape)


class InnerOutputs:
    def __init__(self) -> None:
        self._bufs: Dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> Dict[str, Any]:
        return {}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__()

    def call(self, reuse: bool) -> "_Call":
        """Around one forward (a with block): yields whether this call may reuse the buffers
        (reuse asked for and no other thread inside)."""
        return _Call(self._lock, bool(reuse))

    def get(self, layer: int, shape: Sequence[int], dtype: Any, held: bool, last: bool) -> np.ndarray:
        """The output array of `layer`: the kept buffer (held, an inner layer) or a new one."""
        if not held or last:
            return empty(shape, dtype)
        buf = self._bufs.get(layer)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._bufs[layer] = np.empty(shape, dtype)
        return buf


class _Call:
    """InnerOutputs.call's context: a class, not a generator (it wraps every layer call)."""

    __slots__ = ("_lock", "_reuse", "_held")

    def __init__(self, lock: Any, reuse: bool) -> None:
        self._lock, self._reuse = lock, reuse

    def __enter__(self) -> bool:
        self._held = self._reuse and self._lock.acquire(blocking=False)
        return self._held

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._lock.release()


def stack_states(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """np.stack(arrays), the final states of a module's (layer, direction) calls, without its
    ~4 us of checks for the common single array (then a view of it)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
