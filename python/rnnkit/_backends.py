"""Backend registry: name -> implementation module, with availability and the reason when missing.

Every backend module exposes ``<cell>_forward(p)`` and ``<cell>_backward(p, cache, dy, dh_n, dc_n)``
for cell in rnn_tanh, rnn_relu, lstm, gru (the NumPy reference also gru_reset_before and
lstm_peephole, the C++ and Numba backends also lstm_peephole), with the signatures of rnnkit.reference.
A module may also define ``unusable()``: the reason it cannot run here (its import succeeded), or None
("cuda": not built, no CUDA driver, no device).
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

# Preference order of "auto": the first one that imports is used.
_MODULES = {"cpp": "rnnkit._cpp", "numba": "rnnkit._numba", "cuda": "rnnkit._cuda", "numpy": "rnnkit.reference"}
_AUTO_ORDER = ("cpp", "numba", "numpy")  # for host (NumPy) arrays; GPU arrays go to "cuda"
_LISTED = ("cpp", "numba", "cuda", "numpy")  # available_backends(): "numpy" last, always there
_loaded: Dict[str, ModuleType] = {}
_missing: Dict[str, str] = {}


def _load(name: str) -> Optional[ModuleType]:
    if name not in _loaded and name not in _missing:
        try:
            module = importlib.import_module(_MODULES[name])
        except Exception as exc:  # any failure to import means "not usable here, and why"
            _missing[name] = f"{type(exc).__name__}: {exc}"
        else:
            why = module.unusable() if hasattr(module, "unusable") else None
            if why:
                _missing[name] = why
            else:
                _loaded[name] = module
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
    order for NumPy arrays. "cuda" (the CUDA extension, for GPU arrays: CuPy) is usable only where
    rnnkit was built with it and a GPU is present; ``backend="auto"`` picks it for GPU arrays, and
    never for NumPy arrays. All give the same results up to rounding.

    Returns
    -------
    Backends
        A tuple of the usable names, in "auto" preference order ("cuda" before "numpy", which is
        last); its attribute ``missing`` maps each other backend to the reason it is not usable
        (the error its import raised; for "cuda": not built, no CUDA driver or no device).

    Examples
    --------
    >>> import rnnkit
    >>> b = rnnkit.available_backends()
    >>> "numpy" in b
    True
    >>> sorted(set(b) | set(b.missing))
    ['cpp', 'cuda', 'numba', 'numpy']
    """
    for name in _MODULES:
        _load(name)
    usable = [n for n in _LISTED if n in _loaded]
    return Backends(usable, {n: _missing[n] for n in _MODULES if n in _missing})


def _implements(name: str, cell: Optional[str], options: bool = False) -> bool:
    """Whether backend `name` runs `cell` (with options: ONNX's options of a cell, activations,
    clip or input_forget, which a backend declares by ONNX_OPTIONS = True)."""
    module = _load(name)
    return (module is not None and (cell is None or hasattr(module, f"{cell}_forward"))
            and (not options or getattr(module, "ONNX_OPTIONS", False)))  # fmt: skip


def resolve(backend: str, cell: Optional[str] = None, options: bool = False, device: Optional[str] = None) -> str:
    """The concrete backend name for `backend` ("auto" picks the fastest usable one that
    implements `cell`, when given, with ONNX's options when `options`; a cell only the NumPy
    reference implements says so, once). device: where the call's arrays are ("cuda:0"; None for
    the host): "auto" then means "cuda" (_validate has refused a host backend already). The
    answers are remembered (a backend's availability does not change within a process), so a
    call pays one dict lookup."""
    key = (backend, cell, options, device)
    name = _resolved.get(key)
    if name is None:
        name = _resolved[key] = _resolve(backend, cell, options, device)
    return name


_resolved: Dict[Tuple[str, Optional[str], bool, Optional[str]], str] = {}


def _resolve(backend: str, cell: Optional[str], options: bool, device: Optional[str]) -> str:
    what = f"cell {cell!r}" + (" with activations, clip or input_forget" if options else "")
    if device is not None and backend == "auto":
        backend = "cuda"
        if _load(backend) is None:
            raise ValueError(f"the arrays are on {device}, and backend 'cuda' is not available here: {_missing[backend]}")
    if backend == "auto":
        for name in _AUTO_ORDER:
            if _implements(name, cell, options):
                if (name == "numpy" and cell is not None and what not in _warned
                        and any(_load(n) is not None for n in _AUTO_ORDER if n != "numpy")):  # fmt: skip
                    _warned.add(what)
                    warnings.warn(f"{what} is implemented by the NumPy reference only so far (backend "
                                  f"'numpy'): it runs far slower than the other cells", RuntimeWarning, stacklevel=3)
                return name
    if backend not in _MODULES:
        raise ValueError(f"backend must be 'auto' or one of {', '.join(map(repr, _MODULES))}; got {backend!r}")
    if _load(backend) is None:
        raise ValueError(f"backend {backend!r} is not available here: {_missing[backend]}")
    if not _implements(backend, cell, options):
        have = [n for n in _MODULES if _implements(n, cell, options)]
        raise NotImplementedError(
            f"{what} is not implemented by backend {backend!r} yet; it runs on "
            f"{', '.join(map(repr, have))} (or backend='auto')"
        )
    return backend


_warned: Set[str] = set()


def get(name: str) -> Any:  # a backend module, whose functions are looked up by name
    """The implementation module of a resolved backend name."""
    return _load(name)


def precompile(
    cells: Optional[Iterable[str]] = None,
    dtypes: Optional[Iterable[Any]] = None,
    *,
    options: bool = True,
    projections: bool = True,
    processes: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """Compile the numba backend's kernels now, on every core, instead of at their first call.

    A first call of the numba backend compiles its kernel, forward or backward, per dtype: 12-35 s
    on one core. This compiles each of them in a worker process of its own, ``processes`` at a time,
    into Numba's disk cache, from which every later process loads them in under a second (on a
    2-vCPU EPYC with a fresh cache, the plain kernels in float32, which every cell's first forward
    and backward need: 27 s at the first calls, 17 s here; the first calls after it 0.8 s). The
    other backends compile nothing at run time.

    Parameters
    ----------
    cells : iterable of str, optional
        The cells to prepare (default: all six of `rnnkit.functional.forward`).
    dtypes : iterable of dtype-like, optional
        float32 and/or float64 (default both).
    options : bool
        Also the kernels of ONNX's options (activations, clip, input_forget): the longest to
        compile (about a minute per dtype).
    projections : bool
        Also the LSTM with projections (``proj_size``), if "lstm" is among the cells.
    processes : int, optional
        Worker processes at a time (default: the cores this process may use).

    Returns
    -------
    list of dict
        One report per kernel and dtype: its group, direction, dtype, seconds, and the kernel's
        cache hits and misses in its worker (hits: it was already compiled).

    Raises
    ------
    ValueError
        For an unknown cell or a dtype other than float32/float64, naming it.
    RuntimeError
        When the numba backend is not available here (with the reason), or a worker failed (with
        the end of its output).

    Examples
    --------
    >>> reports = rnnkit.precompile(["lstm"], ["float32"], options=False)  # doctest: +SKIP
    """
    import numpy as np

    from ._validate import GATES

    cells = list(GATES) if cells is None else list(cells)
    for cell in cells:
        if cell not in GATES:
            raise ValueError(f"precompile: cells: expected names among {', '.join(GATES)}; got {cell!r}")
    names = []
    for dt in ("float32", "float64") if dtypes is None else dtypes:
        try:
            name = np.dtype(dt).name
        except TypeError:
            name = repr(dt)
        if name not in ("float32", "float64"):
            raise ValueError(f"precompile: dtypes: expected float32 or float64; got {dt!r}")
        names.append(name)
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise ValueError(f"precompile: processes: expected a positive int or None; got {processes!r}")
    if _load("numba") is None:
        raise RuntimeError(f"precompile: the numba backend is not available here: {_missing['numba']}")
    from ._numba import precompile as jobs

    return jobs.run(cells, list(dict.fromkeys(names)), options, projections, processes)
