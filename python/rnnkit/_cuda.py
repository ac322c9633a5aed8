"""Backend "cuda": adapter from a validated Problem on a GPU to the kernels of rnnkit._cuda_core.

The same shape as _cpp.py: every output and workspace is allocated here, with the caller's array
library on the caller's device (CuPy), and the kernels run on its current stream; the batch is
ordered by length once for variable lengths (rnnkit/_plan.py, on the host: the lengths are small);
the training cache is a named tuple. The extension takes raw device addresses, in the order it
names itself (FORWARD_POINTERS, BACKWARD_POINTERS), so nothing here depends on a field order.

Importing this module never fails for want of CUDA; `unusable()` says why the backend cannot run
here, the reason first: "not built" (no rnnkit._cuda_core: the build found no nvcc or no cuBLAS,
or RNNKIT_CUDA=OFF), "not loadable", "no CUDA driver" or "no device"; _backends reports it in
available_backends().missing["cuda"]. CuPy is imported only when a call runs. The same code drives the host harness of the CUDA
drivers (tests/test_cuda_host.py: NumPy arrays, host addresses), through _Runtime.
"""

# Tested by tests/test_cuda.py (import, reasons, errors) and tests/test_cuda_host.py (this adapter
# and the drivers on the CPU, against the NumPy reference); on a GPU by benchmarks/cuda_check.sh.

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, NamedTuple, Optional

import numpy as np

from ._plan import Plan, packed_rows, plan, unpack

_EXTENSION = f"{__package__}._cuda_core"
# The cell ids of the kernels (cpp/cuda/cell.h, CellId; those of _cpp._CELL_ID)
_CELL_ID = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
ONNX_OPTIONS = False  # torch's cells only, so far


def _load_extension(name: str = _EXTENSION):
    """The compiled module with a device to run on, or ImportError whose message is the reason."""
    if importlib.util.find_spec(name) is None:
        raise ImportError(
            "not built: rnnkit was installed without its CUDA extension (the build needs nvcc and cuBLAS, "
            "from the CUDA toolkit or the nvidia-cublas wheel; RNNKIT_CUDA=ON makes a missing one fail "
            "the build, RNNKIT_CUDA=OFF skips it)"
        )
    try:
        ext = importlib.import_module(name)
    except ImportError as exc:  # e.g. libcublas.so.13 not found at run time
        raise ImportError(f"not loadable: {exc}") from exc
    count, why = ext.device_count()
    if why:
        raise ImportError(f"no CUDA driver: {why}")
    if count == 0:
        raise ImportError("no device: the CUDA driver sees no GPU")
    return ext


class _Runtime:
    """Where a call runs: the kernels (the extension, or the host harness) and the array library
    (CuPy, or NumPy for the harness), with the address of an array and the current stream."""

    def __init__(self, kernels: Any, xp: Any, stream: int = 0) -> None:
        self.kernels, self.xp, self._stream = kernels, xp, stream
        self.fwd_names = kernels.FORWARD_POINTERS.split(",")
        self.bwd_names = kernels.BACKWARD_POINTERS.split(",")
        if kernels.SIZES != "cell,T,B,I,H,reverse,training,dense":
            raise RuntimeError(f"rnnkit CUDA kernels take sizes {kernels.SIZES!r}: the adapter is out of step")

    def stream(self) -> int:
        return self._stream

    @staticmethod
    def address(a: Any) -> int:
        """The array's address; 0 for None and for an empty array (CuPy gives empty arrays no
        memory, so the host harness sees the same null addresses as the GPU)."""
        if a is None or a.size == 0:
            return 0
        if isinstance(a, np.ndarray):
            return int(a.ctypes.data)
        return int(a.data.ptr)  # CuPy

    def device(self, host: np.ndarray) -> Any:
        """A small host array (the plan's int64 indices) in the call's memory."""
        return self.xp.asarray(host)

    def pointers(self, names, arrays: dict) -> list:
        unknown = set(arrays) - set(names)
        if unknown:
            raise RuntimeError(f"rnnkit CUDA adapter: arguments the kernels do not take: {sorted(unknown)}")
        return [self.address(arrays.get(n)) for n in names]


class _CupyRuntime(_Runtime):
    def stream(self) -> int:
        return int(self.xp.cuda.get_current_stream().ptr)


_ext: Any = None
_why: Optional[str] = None
_cupy: Any = None


def unusable() -> Optional[str]:
    """Why the backend cannot run here (checked once), or None."""
    global _ext, _why
    if _ext is None and _why is None:
        try:
            _ext = _load_extension()
        except ImportError as exc:
            _why = str(exc)
    return _why


def _runtime(p) -> _Runtime:
    """The runtime of a device problem (its arrays are CuPy arrays, see _validate)."""
    global _cupy
    why = unusable()
    if why:
        raise RuntimeError(f"backend 'cuda' is not usable here: {why}")
    if _cupy is None:
        import cupy

        _cupy = cupy
    return _CupyRuntime(_ext, _cupy)


class CudaCache(NamedTuple):
    """What backward reads: the plan (host) with perm [B] (None when dense) and src [N] in device memory; xg [N, G*H]
    activated gates (RNN: h_t); xp [N, I] packed x (lengths only); h_prev [N, H]; c_prev [N, H]
    (LSTM); hn [N, H] (GRU: W_hn h + b_hn)."""

    plan: Plan
    perm: Any
    src: Any
    xg: Any
    xp: Any
    h_prev: Any
    c_prev: Any
    hn: Any


def _sizes(p, pl: Plan, training: bool):
    return np.array([_CELL_ID[p.cell], p.T, p.B, p.I, p.H, p.reverse, training, pl.dense], np.int64)


def _check(p) -> None:
    if p.W_hr is not None:
        raise NotImplementedError("the LSTM with projections (W_hr) is not implemented by backend 'cuda' yet")


def _forward(p, rt: Optional[_Runtime] = None):
    _check(p)
    rt = rt or _runtime(p)
    xp, dt = rt.xp, p.dtype
    pl = plan(p)
    T, B, I, H, G, N = p.T, p.B, p.I, p.H, p.G, pl.N
    lstm, gru, train = p.cell == "lstm", p.cell == "gru", p.training
    perm = None if pl.dense else rt.device(pl.perm)  # dense: the identity (no host-to-device copy)
    src = None if pl.dense else rt.device(packed_rows(pl, B))
    zeros = np.zeros(G * H, dt)
    arrays = dict(
        y=(xp.empty if pl.dense else xp.zeros)((T, B, H), dt),  # padded steps are not written
        h_n=xp.empty((B, H), dt), c_n=xp.empty((B, H), dt) if lstm else None,
        xg=xp.empty((N, G * H), dt), xp=None if pl.dense else xp.empty((N, I), dt),
        h_prev=xp.empty((N, H), dt) if train else None,
        c_prev=xp.empty((N, H), dt) if train and lstm else None,
        hn=xp.empty((N, H), dt) if train and gru else None,
        hs=xp.empty((B, H), dt), cs=xp.empty((B, H), dt) if lstm else None, acc=xp.empty((B, G * H), dt),
        x=p.x, W_ih=p.W_ih, W_hh=p.W_hh,
        b_ih=rt.device(zeros) if p.b_ih is None else p.b_ih, b_hh=rt.device(zeros) if p.b_hh is None else p.b_hh,
        h0=p.h0, c0=p.c0, perm=perm, src=src,
    )  # fmt: skip
    rt.kernels.forward(dt == np.float64, rt.pointers(rt.fwd_names, arrays), _sizes(p, pl, train),
                       pl.batch_sizes, pl.offsets, rt.stream())  # fmt: skip
    a = arrays
    cache = CudaCache(pl, perm, src, a["xg"], a["xp"], a["h_prev"], a["c_prev"], a["hn"]) if train else None
    return a["y"], a["h_n"], a["c_n"], cache


def _backward(p, cache: CudaCache, dy, dh_n, dc_n, rt: Optional[_Runtime] = None):
    _check(p)
    rt = rt or _runtime(p)
    xp, dt = rt.xp, p.dtype
    pl = cache.plan
    T, B, I, H, G, N = p.T, p.B, p.I, p.H, p.G, pl.N
    lstm, gru = p.cell == "lstm", p.cell == "gru"
    arrays = dict(
        dx=(xp.empty if pl.dense else xp.zeros)((T, B, I), dt),
        dh0=xp.empty((B, H), dt), dc0=xp.empty((B, H), dt) if lstm else None,
        dW_ih=xp.empty((G * H, I), dt), dW_hh=xp.empty((G * H, H), dt),
        db_ih=xp.empty(G * H, dt), db_hh=xp.empty(G * H, dt),
        dgh=xp.empty((N, G * H), dt), dgi=xp.empty((N, G * H), dt) if gru else None,
        dxp=None if pl.dense else xp.empty((N, I), dt),
        dhs=xp.empty((B, H), dt), dcs=xp.empty((B, H), dt) if lstm else None,
        x=p.x, xp=cache.xp, W_ih=p.W_ih, W_hh=p.W_hh, xg=cache.xg, h_prev=cache.h_prev, c_prev=cache.c_prev,
        hn=cache.hn, dy=dy, dh_n=dh_n, dc_n=dc_n, perm=cache.perm, src=cache.src,
    )  # fmt: skip
    rt.kernels.backward(dt == np.float64, rt.pointers(rt.bwd_names, arrays), _sizes(p, pl, True),
                        pl.batch_sizes, pl.offsets, rt.stream())  # fmt: skip
    a = arrays
    return a["dx"], a["dh0"], a["dc0"], a["dW_ih"], a["dW_hh"], a["db_ih"], a["db_hh"]


rnn_tanh_forward = rnn_relu_forward = lstm_forward = gru_forward = _forward
rnn_tanh_backward = rnn_relu_backward = lstm_backward = gru_backward = _backward


def entering_cell_state(p, cache):
    """LSTM: c entering each step, [T, B, H] (valid steps; others zero), on the host."""
    c_prev = cache.c_prev
    host = c_prev if isinstance(c_prev, np.ndarray) else c_prev.get()
    return unpack(cache.plan, host, p.T, p.B)
