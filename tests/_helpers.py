"""Shared test helpers: cells, the tolerance table, a seeded case factory, and a comparison that
names the array, the worst index and the max abs/rel error. (A module of its own, not conftest:
`pytest tests benchmarks` would otherwise see two modules named conftest.)"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import rnnkit
from rnnkit import functional as F

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3, "lstm_peephole": 4}
LSTMS = ("lstm", "lstm_peephole")
BACKENDS = ("numpy", "cpp", "numba")  # the host backends: NumPy arrays (the `backend` fixture)
GPU_BACKENDS = ("cuda",)  # GPU arrays only: a case runs there as CuPy arrays (to_device / to_host)
ALL_BACKENDS = BACKENDS + GPU_BACKENDS  # the `any_backend` fixture


def unusable(backend) -> Optional[str]:
    """Why a test cannot run `backend` here (not usable, or no CuPy for a GPU backend), or None."""
    avail = rnnkit.available_backends()
    if backend not in avail:
        return f"backend {backend!r} unavailable: {avail.missing.get(backend)}"
    if backend in GPU_BACKENDS:
        try:
            import cupy  # noqa: F401
        except ImportError as exc:
            return f"backend {backend!r} is usable, but its tests need CuPy for GPU arrays: {exc}"
    return None


def options_skipped(backend) -> Optional[str]:
    """Why the tests of ONNX's options skip `backend` by request, or None: RNNKIT_SKIP_NUMBA_OPTIONS=1
    skips numba's option drivers, whose first compile takes about a minute per dtype (.ci/packaging
    sets it for its two reinstalled test runs; the README stage of CI runs them)."""
    if backend == "numba" and os.environ.get("RNNKIT_SKIP_NUMBA_OPTIONS") == "1":
        return "numba's option drivers skipped (RNNKIT_SKIP_NUMBA_OPTIONS=1)"
    return None


def array_module(backend):
    """NumPy, or CuPy for a GPU backend: the library of the arrays a call on `backend` takes."""
    if backend in GPU_BACKENDS:
        import cupy

        return cupy
    return np


def to_device(v, backend):
    """A case's arrays (tuples and lists of them, None kept) where `backend` takes them: CuPy arrays
    for a GPU backend, unchanged for a host one. Lengths stay on the host (they may)."""
    if backend not in GPU_BACKENDS or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return type(v)(to_device(a, backend) for a in v)
    return array_module(backend).asarray(v)


def to_host(v, backend):
    """A call's results back as NumPy arrays; for a GPU backend each must be a CuPy array (CuPy in,
    CuPy out), so a result that came back through the host fails here."""
    if backend not in GPU_BACKENDS or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return type(v)(to_host(a, backend) for a in v)
    cp = array_module(backend)
    assert isinstance(v, cp.ndarray), f"backend {backend!r} returned a {type(v).__name__}, expected a CuPy array"
    return cp.asnumpy(v)

# rtol, and atol as a fraction of max(1, max|reference|). float32 results are compared with the
# reference computed in float64 (one truth for both dtypes).
TOL = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-9),
}


@dataclass
class Case:
    """Inputs of one forward/backward call, plus random incoming gradients (loss = sum(y*dy)+...)."""

    cell: str
    x: np.ndarray
    weights: tuple
    state: object
    lengths: Optional[np.ndarray]
    reverse: bool
    dy: np.ndarray
    dstate_n: object
    meta: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # functional.forward's activations, clip, input_forget

    def astype(self, dtype):
        def cv(a):
            if a is None:
                return None
            if isinstance(a, tuple):
                return tuple(cv(v) for v in a)
            return a.astype(dtype)

        return Case(self.cell, cv(self.x), cv(self.weights), cv(self.state), self.lengths,
                    self.reverse, cv(self.dy), cv(self.dstate_n), self.meta, self.options)  # fmt: skip

    def forward(self, backend="numpy", training=True):
        """(y, state_n, ctx) of the case on `backend`; on a GPU backend the inputs go there as CuPy
        arrays and y, state_n come back as NumPy arrays (ctx stays on the device: see backward)."""
        x, weights, state = to_device((self.x, self.weights, self.state), backend)
        y, state_n, ctx = F.forward(self.cell, x, weights, state, lengths=self.lengths, reverse=self.reverse,
                                    training=training, backend=backend, **self.options)  # fmt: skip
        return to_host(y, backend), to_host(state_n, backend), ctx

    def backward(self, ctx, backend="numpy", **kw):
        """(dx, dstate0, dweights) for the case's dy and dstate_n, with ctx from forward(backend);
        kw: backward's keywords."""
        dy, dstate_n = to_device((self.dy, self.dstate_n), backend)
        return to_host(F.backward(ctx, dy, dstate_n, **kw), backend)

    def run(self, backend="numpy"):
        """forward + backward; returns a dict name -> array of every output and gradient (NumPy
        arrays, also for a GPU backend)."""
        y, state_n, ctx = self.forward(backend)
        dx, dstate0, dw = self.backward(ctx, backend)
        out = {"y": y, "dx": dx}
        lstm = self.cell in LSTMS
        out.update(zip(("h_n", "c_n"), state_n if lstm else (state_n,)))
        out.update(zip(("dh0", "dc0"), dstate0 if lstm else (dstate0,)))
        fifth = "dP" if self.cell == "lstm_peephole" else "dW_hr"
        out.update((k, v) for k, v in zip(("dW_ih", "dW_hh", "db_ih", "db_hh", fifth), dw) if v is not None)
        return out


def make_case(cell, T=5, B=3, I=4, H=3, dtype=np.float64, *, lengths=None, reverse=False,
              bias="both", state=True, seed=0, scale=None, proj=None, options=None) -> Case:  # fmt: skip
    """A seeded random case. lengths: None, "spread" (from 0/1 up to T, one sequence of length T),
    or an explicit list. bias: "both", "none", "ih", "hh". proj: an LSTM with projections of this
    size S < H (a fifth weight W_hr [S, H]; h, y and their gradients S wide). options:
    functional.forward's ONNX options (activations, clip, input_forget)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    # Like torch's init (~1/sqrt(H)): larger recurrent weights make the recurrence chaotic, and
    # float32 rounding then grows with every step, whatever the implementation.
    scale = min(0.5, 1 / np.sqrt(H)) if scale is None else scale

    def r(*shape):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    S = H if proj is None else proj
    weights = (r(G * H, I), r(G * H, S), r(G * H) if bias in ("both", "ih") else None,
               r(G * H) if bias in ("both", "hh") else None)  # fmt: skip
    if proj is not None:
        assert cell == "lstm" and 1 <= proj < H
        weights += (r(S, H),)
    if cell == "lstm_peephole":
        weights += (r(3 * H),)  # p_i, p_f, p_o
    if lengths == "spread":
        lengths = np.linspace(max(T // 4, 0), T, B).round().astype(np.int64) if B else np.zeros(0, np.int64)
        lengths = rng.permutation(lengths)
    elif lengths is not None:
        lengths = np.asarray(lengths, np.int64)
    st = dst = None
    if state:
        st = (r(B, S), r(B, H)) if cell in LSTMS else r(B, H)
        dst = (r(B, S), r(B, H)) if cell in LSTMS else r(B, H)
    return Case(cell, r(T, B, I), weights, st, lengths, reverse, r(T, B, S), dst, options=dict(options or {}))


def assert_close(name, got, want, dtype=None, rtol=None, atol=None):
    """Compare one array with its reference; a failure names the array, worst index and errors."""
    dtype = np.dtype(dtype if dtype is not None else got.dtype)
    r0, a0 = TOL[dtype]
    rtol = r0 if rtol is None else rtol
    want = np.asarray(want, np.float64)
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if got.size == 0:
        return
    atol = (a0 if atol is None else atol) * max(1.0, float(np.nanmax(np.abs(want))))
    g = got.astype(np.float64)
    err = np.abs(g - want)
    bad = ~(err <= atol + rtol * np.abs(want))
    bad &= ~(np.isnan(g) & np.isnan(want))
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, err, -1)), err.shape)
        rel = err / np.maximum(np.abs(want), 1e-300)
        raise AssertionError(
            f"{name}: {bad.sum()} of {err.size} elements off; worst at {tuple(map(int, idx))}: "
            f"got {g[idx]!r}, expected {want[idx]!r}; max abs err {np.nanmax(err):.3e}, "
            f"max rel err {np.nanmax(rel):.3e} (rtol {rtol:g}, atol {atol:.3e})"
        )


def max_errors(got: dict, want: dict) -> dict:
    """name -> max abs error scaled by max(1, max|want|) (for reporting largest errors)."""
    out = {}
    for k, w in want.items():
        if w.size:
            out[k] = float(np.max(np.abs(got[k].astype(np.float64) - w)) / max(1.0, np.max(np.abs(w))))
    return out


# Largest error seen against each outside reference, per (reference, cell, dtype); printed at the end.
LARGEST_ERRORS: dict = {}


def record_errors(reference, cell, dtype, errors: dict):
    key = (reference, cell, np.dtype(dtype).name)
    for name, e in errors.items():
        if e > LARGEST_ERRORS.get(key, ("", -1.0))[1]:
            LARGEST_ERRORS[key] = (name, e)
