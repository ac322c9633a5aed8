"""The one thread setting of rnnkit: set_num_threads(n) / get_num_threads().

Default: the RNNKIT_NUM_THREADS environment variable, else the cores this process may run on.
Applies to every backend that runs threads (cpp; numba when it runs in parallel).
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, List

from . import _validate

_appliers: List[Callable[[int], None]] = []  # callables of the loaded backends, each taking the new count


def _default() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        cores = os.cpu_count() or 1
    cores = min(cores, _validate.MAX_THREADS)
    env = os.environ.get("RNNKIT_NUM_THREADS", "").strip()
    if env:
        # A bad value must not break `import rnnkit` (and with it every command): warn, use the cores.
        try:
            return _validate.num_threads("RNNKIT_NUM_THREADS", int(env))
        except (TypeError, ValueError):
            warnings.warn(
                f"RNNKIT_NUM_THREADS must be an integer in [1, {_validate.MAX_THREADS}], got "
                f"{env!r}; using {cores} (the cores this process may use)",
                RuntimeWarning,
                stacklevel=2,
            )
    return cores


_num_threads = _default()


def set_num_threads(n: int) -> None:
    """Use n threads (an int in [1, 4096]) in rnnkit's kernels from now on."""
    global _num_threads
    _num_threads = _validate.num_threads("n", n)
    for apply in _appliers:
        apply(_num_threads)


def get_num_threads() -> int:
    """Threads rnnkit's kernels use."""
    return _num_threads


def register(apply: Callable[[int], None]) -> None:
    """A backend's hook, called now and on every change of the setting."""
    _appliers.append(apply)
    apply(_num_threads)
