"""The CUDA backend without a GPU: its sequence drivers (cpp/cuda/sequence.h) and per-element cell
maths (cpp/cuda/cell.h, the functions the kernels run) compiled for the host by the C++ compiler into
a test-only shared library (cpp/cuda/host/harness.cpp), driven through the backend's own adapter
(rnnkit/_cuda.py) on NumPy buffers, and checked against the NumPy reference on the backend matrix's
cases. This proves layout, indexing, gate order, the packed variable-length schedule, reverse and the
maths; what stays for a GPU is cuBLAS and the launches (benchmarks/cuda_check.sh)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _helpers import CELLS, assert_close, make_case
from test_backends import CASES

from rnnkit import _cuda, _validate
from rnnkit.functional import _backward_result

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "cpp/cuda/host/harness.cpp", ROOT / "cpp/cuda/sequence.h", ROOT / "cpp/cuda/cell.h",
           ROOT / "cpp/cuda/block.h"]


class HostKernels:
    """The harness library with the extension's calling convention (see _cuda._Runtime)."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        for name in ("rnnkit_cuda_forward_pointers", "rnnkit_cuda_backward_pointers", "rnnkit_cuda_sizes"):
            getattr(lib, name).restype = ctypes.c_char_p
        self.FORWARD_POINTERS = lib.rnnkit_cuda_forward_pointers().decode()
        self.BACKWARD_POINTERS = lib.rnnkit_cuda_backward_pointers().decode()
        self.SIZES = lib.rnnkit_cuda_sizes().decode()
        self._lib = lib

    def _call(self, fn, f64, ptrs, sizes, batch_sizes, offsets):
        addrs = (ctypes.c_uint64 * len(ptrs))(*ptrs)
        sizes = np.ascontiguousarray(sizes, np.int64)
        bs, off = np.ascontiguousarray(batch_sizes, np.int64), np.ascontiguousarray(offsets, np.int64)
        err = ctypes.create_string_buffer(512)
        p64 = ctypes.POINTER(ctypes.c_int64)
        rc = fn(ctypes.c_int(int(f64)), addrs, sizes.ctypes.data_as(p64), bs.ctypes.data_as(p64),
                off.ctypes.data_as(p64), err, ctypes.c_int(len(err)))  # fmt: skip
        if rc:
            raise RuntimeError(err.value.decode())

    def set_block(self, on: bool) -> None:
        """Small dense calls through the one-block path (cpp/cuda/block.h), as on a GPU, or not."""
        self._lib.rnnkit_cuda_host_set_block(ctypes.c_int(int(on)))

    def block_calls(self) -> int:
        return int(self._lib.rnnkit_cuda_host_block_calls())

    def forward(self, f64, ptrs, sizes, batch_sizes, offsets, stream):
        self._call(self._lib.rnnkit_cuda_host_forward, f64, ptrs, sizes, batch_sizes, offsets)

    def backward(self, f64, ptrs, sizes, batch_sizes, offsets, stream):
        self._call(self._lib.rnnkit_cuda_host_backward, f64, ptrs, sizes, batch_sizes, offsets)


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """The harness, built once per session (a few seconds)."""
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the CUDA host harness")
    if not all(s.exists() for s in SOURCES):
        pytest.skip("the CUDA sources are not in this checkout")
    digest = hashlib.sha256(b"".join(s.read_bytes() for s in SOURCES)).hexdigest()[:16]
    lib = tmp_path_factory.mktemp("cuda_host") / f"harness_{digest}.so"
    cmd = [cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", str(SOURCES[0]), "-o", str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}{r.stderr}"
    return HostKernels(lib)


@pytest.fixture(params=["steps", "block"])
def host(request, host_kernels):
    """The host runtime on NumPy arrays, each test both ways: the step loop of the drivers, and the
    one-block path that small dense calls take on a GPU (cpp/cuda/block.h)."""
    host_kernels.set_block(request.param == "block")
    yield _cuda._Runtime(host_kernels, np)
    host_kernels.set_block(False)


def test_host_block_path_is_taken_for_small_dense_calls_only(host_kernels):
    rt = _cuda._Runtime(host_kernels, np)
    host_kernels.set_block(True)
    try:
        before = host_kernels.block_calls()
        run_host(make_case("lstm", T=4, B=3, H=5, dtype=np.float32, seed=1), rt)  # forward + backward
        assert host_kernels.block_calls() == before + 2
        run_host(make_case("gru", T=4, B=3, H=5, dtype=np.float32, lengths="spread", seed=1), rt)
        run_host(make_case("gru", T=4, B=3, H=300, dtype=np.float32, seed=1), rt)  # W_hh past the limit
        assert host_kernels.block_calls() == before + 2
    finally:
        host_kernels.set_block(False)


def run_host(case, rt, training=True):
    """forward (+ backward) of a case on the host runtime: the dict of Case.run."""
    p = _validate.problem(case.cell, case.x, case.weights, case.state, case.lengths, case.reverse, training)
    y, h_n, c_n, cache = _cuda._forward(p, rt)
    out = {"y": y, "h_n": h_n}
    if case.cell == "lstm":
        out["c_n"] = c_n
    if not training:
        assert cache is None
        return out
    dy, dh_n, dc_n = _validate.grads(p, case.dy, case.dstate_n)
    dx, dstate0, dw = _backward_result(p, _cuda._backward(p, cache, dy, dh_n, dc_n, rt))
    out["dx"] = dx
    out.update(zip(("dh0", "dc0"), dstate0 if case.cell == "lstm" else (dstate0,)))
    out.update((k, v) for k, v in zip(("dW_ih", "dW_hh", "db_ih", "db_hh"), dw) if v is not None)
    return out


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_host_drivers_match_reference(host, cell, dtype, name):
    case = make_case(cell, dtype=dtype, seed=7, **CASES[name])
    want = case.astype(np.float64).run("numpy")
    got = run_host(case, host)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == dtype, f"{k}: dtype {got[k].dtype}, expected {dtype}"
        assert_close(k, got[k], want[k], dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_host_inference_matches_training_and_is_deterministic(host, cell):
    case = make_case(cell, T=7, B=5, H=6, dtype=np.float32, lengths="spread", reverse=True, seed=11)
    train, again = run_host(case, host), run_host(case, host)
    infer = run_host(case, host, training=False)
    for k in infer:
        np.testing.assert_array_equal(infer[k], train[k], err_msg=k)
    for k in train:
        np.testing.assert_array_equal(again[k], train[k], err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_host_cache_holds_what_the_kernels_document(host, cell):
    """The training cache, unpacked, against the reference's: h_prev and c_prev as they are; xg holds
    the activated gates (RNN: h_t); hn the GRU's W_hn h + b_hn."""
    case = make_case(cell, T=6, B=4, H=5, dtype=np.float64, lengths=[6, 2, 0, 4], seed=3)
    p = _validate.problem(case.cell, case.x, case.weights, case.state, case.lengths, False, True)
    from rnnkit import reference
    from rnnkit._plan import unpack

    ref = getattr(reference, f"{cell}_forward")(p)[3]
    cache = _cuda._forward(p, host)[3]
    pl, T, B, H = cache.plan, p.T, p.B, p.H
    valid = (np.arange(T)[:, None] < case.lengths[None, :])[..., None]
    np.testing.assert_allclose(unpack(pl, cache.h_prev, T, B), np.where(valid, ref.h_prev, 0), rtol=1e-12)
    a = ref.a
    if cell == "lstm":
        np.testing.assert_allclose(unpack(pl, cache.c_prev, T, B), np.where(valid, ref.c_prev, 0), rtol=1e-12)
        s = 1 / (1 + np.exp(-a))
        want = np.concatenate([s[..., : 2 * H], np.tanh(a[..., 2 * H : 3 * H]), s[..., 3 * H :]], axis=-1)
    elif cell == "gru":
        np.testing.assert_allclose(unpack(pl, cache.hn, T, B), np.where(valid, ref.hn, 0), rtol=1e-12)
        want = np.concatenate([1 / (1 + np.exp(-a[..., : 2 * H])), np.tanh(a[..., 2 * H :])], axis=-1)
    else:
        want = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0)
    np.testing.assert_allclose(unpack(pl, cache.xg, T, B), np.where(valid, want, 0), rtol=1e-12, atol=1e-15)


def test_host_pointer_names_match_the_adapter(host):
    """The adapter builds the address lists by the kernels' own names; it refuses one they lack."""
    k = host.kernels
    assert k.SIZES == "cell,T,B,I,H,reverse,training,dense"
    assert {"y", "h_n", "xg", "x", "W_ih", "perm", "src"} <= set(k.FORWARD_POINTERS.split(","))
    assert {"dx", "dW_hh", "dgh", "dgi", "dy", "perm", "src"} <= set(k.BACKWARD_POINTERS.split(","))
    with pytest.raises(RuntimeError, match="do not take.*'bogus'"):
        host.pointers(host.fwd_names, {"bogus": None})


def test_host_binding_checks_reach_python(host):
    """check_args (shared with the device binding) turns an adapter slip into an error, not a crash."""
    names = host.fwd_names
    sizes = np.array([9, 1, 1, 1, 1, 0, 0, 1], np.int64)  # cell id 9
    bs, off = np.ones(1, np.int64), np.array([0, 1], np.int64)
    with pytest.raises(RuntimeError, match="unknown cell id"):
        host.kernels.forward(False, [0] * len(names), sizes, bs, off, 0)
