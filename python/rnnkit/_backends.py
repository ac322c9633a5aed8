"""Backend registry: name -> implementation module, with availability and the reason when missing.

Every backend module exposes ``<cell>_forward(p)`` and ``<cell>_backward(p, cache, dy, dh_n, dc_n)``
for cell in rnn_tanh, rnn_relu, lstm, gru, with the signatures of rnnkit.reference.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Dict, Iterable, Optional

# Preference order of "auto": the first one that imports is used.
_MODULES = {"cpp": "rnnkit._cpp", "numba": "rnnkit._numba", "numpy": "rnnkit.reference"}
_AUTO_ORDER = ("cpp", "numba", "numpy")
_loaded: Dict[str, ModuleType] = {}
_missing: Dict[str, str] = {}


def _load(name: str) -> Optional[ModuleType]:
    if name not in _loaded and name not in _missing:
        try:
            _loaded[name] = importlib.import_module(_MODULES[name])
        except Exception as exc:  # any failure to import means "not usable here, and why"
            _missing[name] = f"{type(exc).__name__}: {exc}"
    return _loaded.get(name)


class Backends(tuple[str, ...]):
    """The usable backend names, in "auto" preference order (a tuple of str).

    Attributes
    ----------
    missing : dict of str to str
        Each backend that is not usable here, mapped to why (the error its import raised).
    """

    missing: Dict[str, str]

    def __new__(cls, usable: Iterable[str], missing: Dict[str, str]) -> "Backends":
        self = super().__new__(cls, usable)
        self.missing = missing
        return self

    def __repr__(self) -> str:
        why = "".join(f"\n  {n}: {r}" for n, r in self.missing.items())
        return f"Backends({list(self)!r}, missing={{{why}{chr(10) if why else ''}}})"


def available_backends() -> Backends:
    """The backends usable here, and why any other is not.

    The backends are "cpp" (the compiled extension), "numba" (JIT-compiled kernels) and "numpy"
    (the NumPy reference, always usable); ``backend="auto"`` picks the first usable one in that
    order. All give the same results up to rounding.

    Returns
    -------
    Backends
        A tuple of the usable names, in "auto" preference order; its attribute ``missing`` maps
        each other backend to the reason it is not usable (the error its import raised).

    Examples
    --------
    >>> import rnnkit
    >>> b = rnnkit.available_backends()
    >>> "numpy" in b
    True
    >>> sorted(set(b) | set(b.missing))
    ['cpp', 'numba', 'numpy']
    """
    for name in _MODULES:
        _load(name)
    usable = [n for n in _AUTO_ORDER if n in _loaded]
    return Backends(usable, {n: _missing[n] for n in _MODULES if n in _missing})


def resolve(backend: str) -> str:
    """The concrete backend name for `backend` ("auto" picks the fastest usable one)."""
    if backend == "auto":
        for name in _AUTO_ORDER:
            if _load(name) is not None:
                return name
    if backend not in _MODULES:
        raise ValueError(f"backend must be 'auto' or one of {', '.join(map(repr, _MODULES))}; got {backend!r}")
    if _load(backend) is None:
        raise ValueError(f"backend {backend!r} is not available here: {_missing[backend]}")
    return backend


def get(name: str) -> Any:  # a backend module, whose functions are looked up by name
    """The implementation module of a resolved backend name."""
    return _load(name)
