"""Where the Numba kernels' compiled code is cached, and when it is stale.

Numba keys a cached function on its own source file only, so a change in a file it calls
(activations.py, gemm.py) left sequence.py's cached drivers running the old code. Here every
kernel of this package is keyed on one stamp: rnnkit's version and the contents of every source
file of this package. The cache goes to the first writable place among NUMBA_CACHE_DIR, the
package's __pycache__, the user's cache directory and a temporary directory; where none is
writable (a read-only install and HOME), the kernels are compiled in every process, with a warning,
instead of failing to import. CACHE is the value every @njit here passes as cache=.
"""

# Tested by tests/test_numba_kernels.py.

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
import warnings

from numba.core import caching, config

from .._version import __version__

_HERE = os.path.dirname(os.path.abspath(__file__))


def package_stamp(directory: str = _HERE) -> str:
    """sha256 of rnnkit's version and the name and contents of every .py file in directory."""
    h = hashlib.sha256(__version__.encode())
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            h.update(name.encode())
            with open(os.path.join(directory, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


_STAMP = package_stamp()


def _cache_dirs():
    subpath = caching._CacheLocator.get_suitable_cache_subpath(os.path.join(_HERE, "x.py"))
    if config.CACHE_DIR:
        yield os.path.join(config.CACHE_DIR, subpath)
    yield os.path.join(_HERE, "__pycache__")
    try:
        from numba.misc.appdirs import AppDirs

        yield os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, subpath)
    except Exception:  # pragma: no cover - no user cache directory on this platform
        pass
    yield os.path.join(tempfile.gettempdir(), f"rnnkit-numba-{os.getuid() if hasattr(os, 'getuid') else 0}",
                       subpath)  # fmt: skip


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


_DIR = next((d for d in _cache_dirs() if _writable(d)), None)
CACHE = _DIR is not None
if not CACHE:
    warnings.warn(
        "rnnkit's numba backend found no writable directory for its compiled code (tried "
        "NUMBA_CACHE_DIR, the package's __pycache__, the user cache and the temporary directory): "
        "the kernels are compiled again in every process. Set NUMBA_CACHE_DIR to a writable path.",
        RuntimeWarning,
        stacklevel=2,
    )


class RnnkitLocator(caching._CacheLocator):
    """Numba's cache locator for this package's files: _DIR, and the package-wide stamp."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file  # named in Numba's own warnings
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self):
        return _DIR

    def get_source_stamp(self):
        return _STAMP

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if not CACHE or os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None
        return cls(py_func, py_file)


_impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # the name before numba 0.61
if RnnkitLocator not in _impl._locator_classes:
    _impl._locator_classes.insert(0, RnnkitLocator)


# Saving an entry is load index -> pick a data file name -> write the index -> write the data, with
# nothing between processes: two processes compiling the same function at once (precompile's
# workers, DDP ranks, pytest-xdist) both read the same index, pick the same file name for different
# signatures, and the index kept may point at the other signature's code. Here saves into this
# package's cache take a lock (a file in the cache directory) and write the data before the index,
# so a reader that sees an entry finds its data. Where fcntl is missing (Windows), Numba's own save.
try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None  # type: ignore[assignment]

_numba_save = caching.IndexDataCacheFile.save


def _locked_save(self, key, data):
    if fcntl is None or _DIR is None or os.path.abspath(self._cache_path) != os.path.abspath(_DIR):
        return _numba_save(self, key, data)
    with open(os.path.join(_DIR, "rnnkit-cache.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            used = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in used)
        self._save_data(name, data)
        overloads[key] = name
        self._save_index(overloads)


if getattr(caching.IndexDataCacheFile.save, "__name__", "") != "_locked_save":
    caching.IndexDataCacheFile.save = _locked_save
