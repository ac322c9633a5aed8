"""The one thread setting of rnnkit: ``set_num_threads(n)`` / ``get_num_threads()``.

Default: the RNNKIT_NUM_THREADS environment variable, else the cores this process may run on.
Applies to every backend that runs threads (cpp; numba when it runs in parallel).
"""

from __future__ import annotations

import os
import threading
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
    """Set the number of threads rnnkit's kernels use from now on.

    The setting applies to every backend that runs threads (cpp; numba when it runs in
    parallel). Its default is the environment variable ``RNNKIT_NUM_THREADS`` if set, else the
    number of cores this process may run on.

    Parameters
    ----------
    n : int
        The number of threads, in [1, 4096].

    Raises
    ------
    TypeError
        ``n`` is not an integer (a bool is refused too).
    ValueError
        ``n`` is outside [1, 4096].

    See Also
    --------
    get_num_threads

    Examples
    --------
    >>> import rnnkit
    >>> before = rnnkit.get_num_threads()
    >>> rnnkit.set_num_threads(1)
    >>> rnnkit.get_num_threads()
    1
    >>> rnnkit.set_num_threads(before)
    """
    global _num_threads
    _num_threads = _validate.num_threads("n", n)
    for apply in _appliers:
        apply(_num_threads)


def get_num_threads() -> int:
    """The number of threads rnnkit's kernels use.

    Returns
    -------
    int
        The value of the last `set_num_threads`, else ``RNNKIT_NUM_THREADS``, else the number of
        cores this process may run on.

    See Also
    --------
    set_num_threads
    """
    return _num_threads


def register(apply: Callable[[int], None]) -> None:
    """A backend's hook, called now and on every change of the setting."""
    _appliers.append(apply)
    apply(_num_threads)


# A cap on the threads of the calls one Python thread makes inside `limit` (0: none). rnnkit.torch
# sets it to torch's intra-op setting, so torch.set_num_threads governs rnnkit's modules as it
# governs torch.nn's; the process-wide setting above is untouched.
class _Local(threading.local):
    cap = 0  # every Python thread starts without a cap (a class default: no AttributeError per call)


_local = _Local()


def call_cap() -> int:
    """The cap of the calling Python thread's kernel calls: 0 (none) outside `limit`."""
    return _local.cap


def call_threads() -> int:
    """The most threads a kernel call made now, from this Python thread, may use."""
    cap = call_cap()
    return min(cap, _num_threads) if cap else _num_threads


class limit:
    """Kernel calls of this Python thread inside the block use at most n threads (nested limits
    take the smaller). A class rather than a generator: it wraps every rnnkit.torch call, and
    a decoder step is a few tens of microseconds."""

    __slots__ = ("_n", "_before")

    def __init__(self, n: int) -> None:
        self._n = _validate.num_threads("n", n)

    def __enter__(self) -> None:
        before = self._before = call_cap()
        _local.cap = min(self._n, before) if before else self._n

    def __exit__(self, *exc: object) -> None:
        _local.cap = self._before


def use_torch_openmp() -> bool:
    """Run the C++ kernels' threads on torch's own OpenMP runtime (its libgomp, already loaded),
    instead of rnnkit's pool: inside torch the two pools otherwise compete for the same cores, torch's
    threads spinning for milliseconds after every parallel torch op while rnnkit's wait for a
    core. A forked child goes back to rnnkit's pool (libgomp does not survive fork). Off with
    ``RNNKIT_TORCH_OPENMP=0``. Returns whether the kernels now run there."""
    if os.environ.get("RNNKIT_TORCH_OPENMP", "1").strip() == "0":
        return False
    import glob
    import importlib.util

    from . import _backends

    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None or "cpp" not in _backends.available_backends():
        return False
    from . import _core as core  # loaded by the cpp backend above

    # torch's wheels bundle libgomp in torch/lib; other builds load the system's (by its soname)
    libs = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "lib", "libgomp*.so*")))
    return any(core.use_host_openmp(lib) for lib in [*libs, "libgomp.so.1"])
