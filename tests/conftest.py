"""Fixtures of the test suite: cell, dtype, backend (the host backends) and any_backend (those and
"cuda"); an unbuilt backend is skipped with its reason, or fails where RNNKIT_REQUIRE_BACKENDS lists
it, as in CI. The closing report of the largest errors seen against torch and ONNX. Helpers live in
_helpers.py."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _helpers import ALL_BACKENDS, BACKENDS, CELLS, LARGEST_ERRORS, unusable


@pytest.fixture(params=CELLS)
def cell(request):
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def _usable_or_skip(name):
    why = unusable(name)
    if why:
        # CI lists the backends it builds: there a missing one is a failure, not a skip.
        if name in os.environ.get("RNNKIT_REQUIRE_BACKENDS", "").split(","):
            pytest.fail(why)
        pytest.skip(why)
    return name


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A host backend (NumPy arrays)."""
    return _usable_or_skip(request.param)


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request):
    """A host backend or a GPU one ("cuda": the case's arrays go there as CuPy arrays, see
    _helpers.Case and to_device); a test module whose checks hold on every backend overrides its
    `backend` fixture with this one."""
    return _usable_or_skip(request.param)


def pytest_terminal_summary(terminalreporter):
    _onnx_summary(terminalreporter)
    if not LARGEST_ERRORS:
        return
    terminalreporter.section("largest error against outside references (max|got-want| / max(1,max|want|))")
    for (ref, cell, dt), (name, e) in sorted(LARGEST_ERRORS.items()):
        terminalreporter.write_line(f"{ref:>6} {cell:>9} {dt:>8}: {e:.3e} ({name})")


@pytest.fixture(autouse=True)
def _backend_choice_unremembered():
    """_backends.resolve remembers its answers; a test that monkeypatches what a backend offers
    must not leave its answer behind for the next test (nor find one from before)."""
    from rnnkit import _backends

    _backends._resolved.clear()
    yield
    _backends._resolved.clear()


# ---- the count of ONNX's own backend node cases (RNN/LSTM/GRU) that passed, printed at the end ----
_onnx_cases = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if "test_onnx_backend_suite.py::test_onnx_backend_case" in report.nodeid and report.when == "call":
        _onnx_cases[report.outcome] = _onnx_cases.get(report.outcome, 0) + 1
    elif "test_onnx_backend_suite.py::test_onnx_backend_case" in report.nodeid and report.skipped:
        _onnx_cases["skipped"] += 1


def _onnx_summary(terminalreporter):
    if any(_onnx_cases.values()):
        terminalreporter.write_line(
            "ONNX's backend node cases for RNN/LSTM/GRU through rnnkit.onnx.Backend: "
            + ", ".join(f"{n} {k}" for k, n in _onnx_cases.items())
        )
