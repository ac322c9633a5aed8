"""Backend "cuda": the extension imports or says why not (not built / not loadable / no CUDA driver /
no device), "auto" never picks it for NumPy arrays, and GPU arrays (faked here by objects with
__cuda_array_interface__ and a CUDA __dlpack_device__) are refused clearly by the host backends,
mixed with host arrays, or spread over two devices. The tests that need a GPU (CuPy arrays against
the reference) skip with the reason where there is none; benchmarks/cuda_check.sh runs them on one."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import types

import numpy as np
import pytest
from _helpers import CELLS, assert_close, make_case
from test_backends import CASES

import rnnkit
from rnnkit import _backends, _cuda, _validate
from rnnkit import functional as F

REASONS = ("not built", "not loadable", "no CUDA driver", "no device")


class FakeGpuArray:
    """Just enough of a CuPy array to be seen as one: shape, dtype, __cuda_array_interface__ and
    __dlpack_device__ (kind 2: CUDA)."""

    def __init__(self, shape, dtype=np.float32, device=0, kind=2, dlpack=True):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self._dev = (kind, device)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False),
                                         "version": 3}  # fmt: skip
        if not dlpack:
            self.__class__ = _CaiOnly

    def __dlpack_device__(self):
        return self._dev


class _CaiOnly:
    """An object with __cuda_array_interface__ only (no DLPack)."""


def _gpu(a, **kw):
    return FakeGpuArray(np.shape(a), getattr(a, "dtype", np.float32), **kw)


def _case(cell="lstm", **kw):
    return make_case(cell, T=4, B=3, I=2, H=3, dtype=np.float32, seed=1, **kw)


# --- the extension and the reasons ------------------------------------------------------------


def test_cuda_backend_is_listed_or_says_why():
    b = rnnkit.available_backends()
    assert "cuda" in b or "cuda" in b.missing
    if "cuda" in b.missing:
        assert b.missing["cuda"].startswith(REASONS), b.missing["cuda"]
    assert b[-1] == "numpy"


def test_the_extension_imports_or_is_absent_cleanly():
    try:
        import rnnkit._cuda_core as ext
    except ImportError as exc:  # not built here, or its libraries are missing
        assert rnnkit.available_backends().missing["cuda"].startswith(("not built", "not loadable")), exc
        pytest.skip(f"rnnkit._cuda_core is not importable here: {exc}")
    count, why = ext.device_count()  # never raises, even without a driver
    assert isinstance(count, int) and isinstance(why, str)
    assert ext.SIZES == "cell,T,B,I,H,reverse,training,dense"
    assert "archs=" in ext.build_info() and "cublas=" in ext.build_info()
    if why:
        assert rnnkit.available_backends().missing["cuda"] == f"no CUDA driver: {why}"


def _fake_extension(monkeypatch, count, why):
    name = "rnnkit_test_fake_cuda_core"
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    mod.device_count = lambda: (count, why)
    monkeypatch.setitem(sys.modules, name, mod)
    return name


@pytest.mark.parametrize(
    "count, why, reason",
    [(0, "CUDA driver version is insufficient for CUDA runtime version", "no CUDA driver: CUDA driver version"),
     (0, "", "no device: the CUDA driver sees no GPU"), (1, "", None)],
)  # fmt: skip
def test_each_reason(monkeypatch, count, why, reason):
    name = _fake_extension(monkeypatch, count, why)
    if reason is None:
        assert _cuda._load_extension(name) is sys.modules[name]
    else:
        with pytest.raises(ImportError, match=reason):
            _cuda._load_extension(name)


def test_not_built_reason():
    with pytest.raises(ImportError, match="^not built: rnnkit was installed without its CUDA extension"):
        _cuda._load_extension("rnnkit._no_such_extension")


def test_rnnkit_info_shows_the_cuda_line():
    r = subprocess.run([sys.executable, "-m", "rnnkit", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    b = rnnkit.available_backends()
    if "cuda" in b.missing:
        assert f"cuda: unavailable: {b.missing['cuda']}" in r.stdout


def test_import_rnnkit_never_fails_for_cuda():
    """A broken extension (here: one that raises on import) leaves rnnkit importable and 'cuda' missing."""
    code = (
        "import sys, types, importlib.machinery\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'rnnkit._cuda_core':\n"
        "            return importlib.machinery.ModuleSpec(name, self)\n"
        "    def create_module(self, spec):\n"
        "        raise ImportError('libcublas.so.13: cannot open shared object file')\n"
        "    def exec_module(self, m): pass\n"
        "sys.meta_path.insert(0, Finder())\n"
        "import rnnkit\n"
        "print(rnnkit.available_backends().missing['cuda'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("not loadable: libcublas.so.13"), r.stdout


def test_auto_never_picks_cuda_for_numpy_arrays(monkeypatch):
    """Even where the backend is usable, NumPy arrays stay on the host backends."""
    monkeypatch.setitem(_backends._loaded, "cuda", _cuda)
    monkeypatch.delitem(_backends._missing, "cuda", raising=False)
    for cell in CELLS:
        assert _backends.resolve("auto", cell) != "cuda"
    case = _case()
    y, _, _ = F.forward(case.cell, case.x, case.weights, case.state, backend="auto")
    assert type(y) is np.ndarray


# --- GPU arrays: the errors -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_gpu_array_with_a_host_backend(backend):
    case = _case()
    with pytest.raises(ValueError, match=rf"x is on cuda:0, but backend '{backend}' runs on the host"):
        F.forward(case.cell, _gpu(case.x), [_gpu(w) for w in case.weights], None, backend=backend)


@pytest.mark.parametrize(
    "where, message",
    [("W_hh", "W_hh is on cuda:0 but x is on the host"), ("h0", "h0 is on cuda:0 but x is on the host"),
     ("c0", "c0 is on cuda:0 but x is on the host"), ("b_ih", "b_ih is on cuda:0 but x is on the host")],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["auto", "cpp", "cuda"])
def test_one_gpu_array_among_host_arrays(where, message, backend):
    case = _case()
    W = list(case.weights)
    h0, c0 = case.state
    names = {"W_hh": 1, "b_ih": 2}
    if where in names:
        W[names[where]] = _gpu(W[names[where]])
    elif where == "h0":
        h0 = _gpu(h0)
    else:
        c0 = _gpu(c0)
    with pytest.raises(ValueError, match=message):
        F.forward("lstm", case.x, tuple(W), (h0, c0), backend=backend)


def test_host_array_among_gpu_arrays():
    case = _case("gru")
    W = [_gpu(w) for w in case.weights]
    W[0] = case.weights[0]
    with pytest.raises(ValueError, match="W_ih is on the host but x is on cuda:0"):
        F.forward("gru", _gpu(case.x), W, _gpu(case.state))


def test_arrays_on_two_devices():
    case = _case("rnn_tanh")
    with pytest.raises(ValueError, match="h0 is on cuda:1 but x is on cuda:0"):
        F.forward("rnn_tanh", _gpu(case.x), [_gpu(w) for w in case.weights], _gpu(case.state, device=1))


def test_lengths_on_a_gpu_with_host_arrays():
    case = _case("gru")
    with pytest.raises(ValueError, match="lengths is on cuda:0 but x is on the host"):
        F.forward("gru", case.x, case.weights, case.state, lengths=FakeGpuArray((3,), np.int64))


def test_cuda_backend_with_numpy_arrays():
    case = _case()
    for lengths in (None, [4, 1, 2]):  # the fast path and the full one
        with pytest.raises(ValueError, match="backend 'cuda' runs on GPU arrays .* but x is on the host"):
            F.forward(case.cell, case.x, case.weights, case.state, lengths=lengths, backend="cuda")


def test_array_with_the_cuda_interface_only():
    case = _case("rnn_relu")
    with pytest.raises(ValueError, match="x is on cuda, but backend 'numba' runs on the host"):
        F.forward("rnn_relu", _gpu(case.x, dlpack=False), [_gpu(w, dlpack=False) for w in case.weights],
                  backend="numba")  # fmt: skip


def test_array_on_another_kind_of_device():
    case = _case("rnn_relu")
    with pytest.raises(ValueError, match="x is on metal:0: rnnkit runs on the host or on CUDA devices only"):
        F.forward("rnn_relu", _gpu(case.x, kind=8), [_gpu(w, kind=8) for w in case.weights])


def test_gpu_gradient_for_a_host_forward():
    case = _case()
    _, _, ctx = F.forward(case.cell, case.x, case.weights, case.state)
    with pytest.raises(ValueError, match="dy is on cuda:0 but the forward pass ran on the host"):
        F.backward(ctx, _gpu(case.dy), case.dstate_n)
    with pytest.raises(ValueError, match="dc_n is on cuda:0 but the forward pass ran on the host"):
        F.backward(ctx, case.dy, (case.dstate_n[0], _gpu(case.dstate_n[1])))


def test_gpu_arrays_without_cupy():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here")
    case = _case()
    with pytest.raises(ImportError, match=r"x is on cuda:0: rnnkit takes GPU arrays through CuPy.*rnnkit\[cuda\]"):
        F.forward(case.cell, _gpu(case.x), [_gpu(w) for w in case.weights], [_gpu(s) for s in case.state])
    # None parts (zeros) and host lengths are not "on the host" arrays: the same CuPy message
    W = [_gpu(case.weights[0]), _gpu(case.weights[1]), None, None]
    with pytest.raises(ImportError, match="through CuPy"):
        F.forward(case.cell, _gpu(case.x), W, (_gpu(case.state[0]), None), lengths=[4, 1, 2])


def test_device_of():
    assert _validate.device_of(np.zeros(2)) is None
    assert _validate.device_of([1.0, 2.0]) is None and _validate.device_of(None) is None
    assert _validate.device_of(FakeGpuArray((2,), device=3)) == "cuda:3"
    assert _validate.device_of(FakeGpuArray((2,), kind=13)) == "cuda:0"  # managed memory
    assert _validate.device_of(FakeGpuArray((2,), kind=3)) is None  # pinned host memory
    torch = pytest.importorskip("torch")
    assert _validate.device_of(torch.zeros(2)) is None  # a CPU tensor: the host path (and its message)


# --- on a GPU ---------------------------------------------------------------------------------


@pytest.fixture
def gpu():
    b = rnnkit.available_backends()
    if "cuda" not in b:
        pytest.skip(f"backend 'cuda' unavailable: {b.missing.get('cuda')}")
    return pytest.importorskip("cupy", reason="CuPy is needed for GPU arrays")


def _to(cp, v):
    if v is None:
        return None
    if isinstance(v, tuple):
        return tuple(_to(cp, a) for a in v)
    return cp.asarray(v)


def _run_gpu(cp, case, backend="cuda", training=True):
    x, W, s = _to(cp, case.x), _to(cp, case.weights), _to(cp, case.state)
    y, state_n, ctx = F.forward(case.cell, x, W, s, lengths=case.lengths, reverse=case.reverse,
                                training=training, backend=backend)  # fmt: skip
    out = {"y": y}
    lstm = case.cell == "lstm"
    out.update(zip(("h_n", "c_n"), state_n if lstm else (state_n,)))
    if training:
        dx, dstate0, dw = F.backward(ctx, _to(cp, case.dy), _to(cp, case.dstate_n))
        out["dx"] = dx
        out.update(zip(("dh0", "dc0"), dstate0 if lstm else (dstate0,)))
        out.update((k, v) for k, v in zip(("dW_ih", "dW_hh", "db_ih", "db_hh"), dw) if v is not None)
    return out


@pytest.fixture(params=["block", "steps"])
def path(request, gpu):
    """Both schedules of a call: small dense calls in one thread block (cpp/cuda/block.h, the
    default), and the step loop (one GEMM and one pointwise launch per step) that the rest take."""
    import rnnkit._cuda_core as ext

    ext.set_block_path(request.param == "block")
    yield request.param
    ext.set_block_path(True)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gpu_matches_reference(gpu, path, cell, dtype, name):
    case = make_case(cell, dtype=dtype, seed=7, **CASES[name])
    want = case.astype(np.float64).run("numpy")
    got = _run_gpu(gpu, case, backend="auto")  # auto: GPU arrays go to cuda
    assert set(got) == set(want)
    for k in want:
        assert isinstance(got[k], gpu.ndarray), f"{k}: {type(got[k])}, expected a CuPy array"
        assert_close(k, gpu.asnumpy(got[k]), want[k], dtype)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B, H", [(1, 64), (5, 32), (64, 16), (9, 130)])
def test_gpu_block_path_sizes_match_reference(gpu, path, cell, B, H):
    """The one-block path at the sizes it is for (W_hh in shared memory, batch chunks of 8, threads
    fewer than the gate rows), against the reference; (9, 130) takes the step loop (too large)."""
    case = make_case(cell, T=6, B=B, I=7, H=H, dtype=np.float32, seed=4)
    want = case.astype(np.float64).run("numpy")
    got = _run_gpu(gpu, case)
    for k in want:
        assert_close(k, gpu.asnumpy(got[k]), want[k], np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_gpu_inference_matches_training_and_runs_are_bitwise_equal(gpu, cell):
    case = make_case(cell, T=12, B=9, I=20, H=33, dtype=np.float32, lengths="spread", seed=5)
    first, second = _run_gpu(gpu, case), _run_gpu(gpu, case)
    infer = _run_gpu(gpu, case, training=False)
    for k in first:
        np.testing.assert_array_equal(gpu.asnumpy(first[k]), gpu.asnumpy(second[k]), err_msg=k)
    for k in infer:
        np.testing.assert_array_equal(gpu.asnumpy(infer[k]), gpu.asnumpy(first[k]), err_msg=k)


def test_gpu_runs_on_the_current_stream(gpu):
    case = make_case("lstm", T=20, B=16, I=32, H=64, dtype=np.float32, seed=2)
    want = _run_gpu(gpu, case)
    with gpu.cuda.Stream(non_blocking=True):
        got = _run_gpu(gpu, case)
        got = {k: gpu.asnumpy(v) for k, v in got.items()}
    for k in want:
        np.testing.assert_array_equal(got[k], gpu.asnumpy(want[k]), err_msg=k)
