"""Loads the compiled module rnnkit._core, after scipy_openblas32 (which puts the OpenBLAS that
_core links against into the process, for layouts where the extension's RPATH does not reach it),
and applies the thread setting. Importing this raises ImportError when the extension is missing."""

from __future__ import annotations

import importlib.util
import os

from . import _openblas  # noqa: F401  (loads libscipy_openblas globally, without its thread pool)

if importlib.util.find_spec(f"{__package__}._core") is None:
    raise ImportError(
        "rnnkit was installed without its C++ extension (the C++ build found no working compiler, "
        "or RNNKIT_CPP=OFF was set); install a C++ compiler and reinstall rnnkit "
        "(pip install --force-reinstall --no-deps .) to get the 'cpp' backend"
    )
from . import _core as core  # noqa: E402

_ISAS = ("scalar", "avx2", "avx512")
if os.environ.get("RNNKIT_CPU_ISA", "") not in ("",) + _ISAS:
    raise ImportError(
        f"RNNKIT_CPU_ISA must be one of {', '.join(_ISAS)} (or unset); got {os.environ['RNNKIT_CPU_ISA']!r}"
    )

from . import _threads  # noqa: E402

_threads.register(core.set_num_threads)
