"""The one thread setting of rnnkit: set_num_threads(n) / get_num_threads().

Default: the RNNKIT_NUM_THREADS environment variable, else the cores this process may run on.
Applies to every backend that runs threads (cpp; numba when it runs in parallel).
"""

from __future__ import annotations

import os

from . import _validate

_appliers = []  # callables of the loaded backends, each taking the new count


def _default() -> int:
    env = os.environ.get("RNNKIT_NUM_THREADS")
    if env:
        try:
            return _validate.positive_int("RNNKIT_NUM_THREADS", int(env))
        except (TypeError, ValueError):
            raise ValueError(f"RNNKIT_NUM_THREADS must be a positive integer, got {env!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return os.cpu_count() or 1


_num_threads = _default()


def set_num_threads(n: int) -> None:
    """Use n threads (>= 1) in rnnkit's kernels from now on."""
    global _num_threads
    _num_threads = _validate.positive_int("n", n)
    for apply in _appliers:
        apply(_num_threads)


def get_num_threads() -> int:
    """Threads rnnkit's kernels use."""
    return _num_threads


def register(apply) -> None:
    """A backend's hook, called now and on every change of the setting."""
    _appliers.append(apply)
    apply(_num_threads)
