"""rnnkit against torch.nn.RNN/LSTM/GRU, side by side: one pytest-benchmark group per
(cell, mode, config), every backend and torch (same thread count) in it. Each case first checks
its output against torch's. Compare saved runs with benchmarks/report.py."""

from __future__ import annotations

import numpy as np
import pytest
from rnnkit.bench import CONFIGS, MODELS, Case, ModelCase, forward_flops, model_fn, peak_memory_mb, torch

import rnnkit

CELLS = ("rnn_tanh", "lstm", "gru")
MODES = ("inference", "training")
# cpp_packed: the C++ backend with the weights packed once (functional.pack), like the engines' sessions
IMPLS = ("torch", "torch_nomkldnn", "onnxruntime", "openvino", "cpp", "cpp_packed", "rnnkit_torch", "numba", "numpy")
_cases: dict = {}


def _case(cell, config, lengths=False):
    key = (cell, config, lengths)
    if key not in _cases:
        _cases[key] = Case(cell, *CONFIGS[config], lengths=lengths)
    return _cases[key]


def _reference_y(case, training):
    key = ("y", case.cell, case.T, case.B, case.I, case.H, case.lengths is not None)
    if key not in _cases:
        _cases[key] = case.torch_fn(training=False, packed=case.lengths is not None)().numpy()
    return _cases[key]


def _fn(case, impl, training):
    if impl in ("onnxruntime", "openvino"):
        if training:
            pytest.skip(f"{impl}'s recurrent operators are inference only")
        fn = getattr(case, f"{impl}_fn")()
        if fn is None:
            pytest.skip(f"onnx/{impl} are not installed (pip install 'rnnkit[bench]')")
        return fn
    if impl == "rnnkit_torch":  # rnnkit's kernels behind rnnkit.torch's autograd bridge
        if torch is None:
            pytest.skip("torch is not installed (pip install 'rnnkit[bench]')")
        return case.bridge_fn(training)
    if impl.startswith("torch"):
        if torch is None:
            pytest.skip("torch is not installed (pip install 'rnnkit[bench]')")
        if impl == "torch_nomkldnn" and case.cell != "lstm":
            pytest.skip("only torch's LSTM runs through oneDNN on the CPU")
        return case.torch_fn(training, mkldnn=impl == "torch")
    avail = rnnkit.available_backends()
    backend = "cpp" if impl == "cpp_packed" else impl
    if backend not in avail:
        pytest.skip(f"backend {backend!r} unavailable: {avail.missing.get(backend)}")
    return case.rnnkit_fn(backend, training, packed=impl == "cpp_packed")


def _extra(benchmark, machine_info, case, training, impl):
    flops = forward_flops(case.cell, case.T, case.B, case.I, case.H) * (3 if training else 1)
    benchmark.extra_info.update(machine_info)
    benchmark.extra_info.update(
        impl=impl, cell=case.cell, mode="training" if training else "inference",
        T=case.T, B=case.B, I=case.I, H=case.H, flops=flops,
    )  # fmt: skip
    return flops


def _record_gflops(benchmark, flops):
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.median > 0:
        benchmark.extra_info["gflops"] = flops / stats.stats.median / 1e9


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_speed(benchmark, machine_info, cell, mode, config, impl):
    if impl == "numpy" and config in ("L", "XL"):
        pytest.skip("the NumPy reference is timed at S and M only")
    training = mode == "training"
    case = _case(cell, config)
    fn = _fn(case, impl, training)
    if torch is not None:  # the output must match torch's before it is timed
        np.testing.assert_allclose(np.asarray(fn()), _reference_y(case, training), rtol=2e-3, atol=2e-4)
    fn()  # warm-up outside the timed region (compilation, first touch)
    benchmark.group = f"{cell}-{mode}-{config}"
    flops = _extra(benchmark, machine_info, case, training, impl)
    if training and config == "L" and impl in ("torch", "cpp", "numba") and not _smoke(benchmark):
        benchmark.extra_info["peak_mb"] = peak_memory_mb(cell, config, impl)
    benchmark(fn)
    _record_gflops(benchmark, flops)


def _smoke(benchmark):
    return bool(getattr(benchmark, "disabled", False))


SWEEP_IMPLS = ("torch", "cpp", "numba")


SWEEPS = [("T", t) for t in (16, 64, 256, 1024)] + [("B", b) for b in (1, 4, 16, 64, 256)]


@pytest.mark.parametrize("impl", SWEEP_IMPLS)
@pytest.mark.parametrize("axis, value", SWEEPS, ids=[f"{a}{v}" for a, v in SWEEPS])
def test_sweep(benchmark, machine_info, axis, value, impl):
    """How cost grows with the sequence length T or the batch B (LSTM inference, M otherwise)."""
    size = dict(zip("TBIH", CONFIGS["M"]), **{axis: value})
    case = Case("lstm", *(size[k] for k in "TBIH"))
    fn = _fn(case, impl, False)
    if torch is not None:
        np.testing.assert_allclose(np.asarray(fn()), _reference_y(case, False), rtol=2e-3, atol=2e-4)
    fn()
    benchmark.group = f"sweep{axis}-lstm-inference-{axis}{value}"
    flops = _extra(benchmark, machine_info, case, False, impl)
    benchmark(fn)
    _record_gflops(benchmark, flops)


LENGTH_IMPLS = ("torch_packed", "torch_padded", "cpp", "numba")


@pytest.mark.parametrize("impl", LENGTH_IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_speed_lengths(benchmark, machine_info, cell, mode, impl):
    """Variable lengths (M, spread from T/8 to T): rnnkit with `lengths` against torch with a
    PackedSequence, and torch on the padded batch (which computes every padded step)."""
    training = mode == "training"
    case = _case(cell, "M", lengths=True)
    if impl.startswith("torch"):
        if torch is None:
            pytest.skip("torch is not installed")
        fn = case.torch_fn(training, packed=impl == "torch_packed")
    else:
        fn = _fn(case, impl, training)
    if torch is not None and impl != "torch_padded":
        np.testing.assert_allclose(np.asarray(fn()), _reference_y(case, training), rtol=2e-3, atol=2e-4)
    fn()
    benchmark.group = f"lengths-{cell}-{mode}-M"
    flops = _extra(benchmark, machine_info, case, training, impl)
    benchmark.extra_info["valid_steps"] = case.valid_steps
    benchmark(fn)
    _record_gflops(benchmark, flops * case.valid_steps / (case.T * case.B))


MODEL_IMPLS = ("torch", "rnnkit_torch", "cpp", "numba")


@pytest.mark.parametrize("impl", MODEL_IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", list(MODELS))
def test_models(benchmark, machine_info, model, mode, impl):
    """Whole LSTM models (rnnkit.bench.MODELS): torch.nn.LSTM against rnnkit.torch.LSTM and the
    NumPy layers on each backend, same weights; inference, and one training step (forward and
    backward, parameter gradients included)."""
    training = mode == "training"
    if impl in ("torch", "rnnkit_torch") and torch is None:
        pytest.skip("torch is not installed (pip install 'rnnkit[bench]')")
    if impl not in ("torch", "rnnkit_torch") and impl not in rnnkit.available_backends():
        pytest.skip(f"backend {impl!r} unavailable")
    case = ModelCase(model)
    fn = model_fn(case, impl, training)
    if torch is not None:
        key = ("model", model)
        if key not in _cases:
            _cases[key] = np.asarray(model_fn(case, "torch", False)())
        np.testing.assert_allclose(np.asarray(fn()), _cases[key], rtol=2e-3, atol=2e-4)
    fn()
    benchmark.group = f"model-{mode}-{model}"
    benchmark.extra_info.update(machine_info)
    benchmark.extra_info.update(impl=impl, cell="lstm", mode=mode, T=case.T, B=case.B, I=case.I, H=case.H)
    benchmark(fn)
    _record_gflops(benchmark, case.flops(training))
