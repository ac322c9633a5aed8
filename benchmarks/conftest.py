"""Benchmark configuration: sizes, thread settings and machine facts recorded with every result.

Run:  pytest benchmarks --benchmark-json=out.json   (then python benchmarks/report.py out.json)
Smoke (CI): pytest benchmarks --benchmark-disable   -> every case runs once, S and M sizes only.
Threads: RNNKIT_BENCH_THREADS (default 2) for rnnkit and torch alike.
"""

from __future__ import annotations

import pytest

import rnnkit
from rnnkit import bench
from rnnkit.bench import THREADS, cpu_model

def smoke(config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def pytest_collection_modifyitems(config, items):
    """In smoke mode keep only the S and M sizes and the small models (each case then runs once)."""
    if not smoke(config):
        return
    big = [f"-{c}]" for c in ("L", "XL")] + [f"-{c}-" for c in ("L", "XL")] + ["[deep2000-"]
    keep = [it for it in items if not any(b in it.name for b in big)]
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
    """The machine's float32 GEMM speed with the same threads, measured in this run (the ceiling)."""
    return float("nan") if smoke(request.config) else bench.sgemm_gflops(THREADS)


@pytest.fixture
def machine_info(sgemm_gflops):
    info = {"cpu": cpu_model(), "threads": THREADS, "sgemm_gflops": sgemm_gflops}
    if "cpp" in rnnkit.available_backends():
        from rnnkit._native import core

        info["isa"] = core.isa()
    return info
