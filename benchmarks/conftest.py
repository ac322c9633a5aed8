"""Benchmark configuration: sizes, thread settings and machine facts recorded with every result.

Run:  pytest benchmarks --benchmark-json=out.json   (then python benchmarks/report.py out.json)
Smoke (CI): pytest benchmarks --benchmark-disable   -> every case runs once, S and M sizes only.
Threads: RNNKIT_BENCH_THREADS (default 2) for rnnkit and torch alike.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import rnnkit
from _cases import THREADS, cpu_model

def smoke(config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def pytest_collection_modifyitems(config, items):
    """In smoke mode keep only the S and M sizes (each case then runs once)."""
    if not smoke(config):
        return
    keep = [it for it in items if not any(f"-{c}]" in it.name or f"-{c}-" in it.name for c in ("L", "XL"))]
    config.hook.pytest_deselected(items=[it for it in items if it not in keep])
    items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def fixed_threads():
    rnnkit.set_num_threads(THREADS)
    try:
        import torch

        torch.set_num_threads(THREADS)
    except ImportError:
        pass
    yield


@pytest.fixture(scope="session")
def sgemm_gflops(request):
    """The machine's float32 GEMM speed (GFLOP/s) with the same threads, measured in this run:
    the ceiling rnnkit's forward is compared with. NumPy's BLAS, 4096 x 1024 @ 1024 x 4096."""
    if smoke(request.config):
        return float("nan")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 4096), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=THREADS):
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * 4096 * 1024 * 4096 / best / 1e9


@pytest.fixture
def machine_info(sgemm_gflops):
    info = {"cpu": cpu_model(), "threads": THREADS, "sgemm_gflops": sgemm_gflops}
    if "cpp" in rnnkit.available_backends():
        from rnnkit._native import core

        info["isa"] = core.isa()
    return info
