"""`rnnkit bench` and the benchmark reporting: they run from an install, print the table, write the
JSON and the plot; the saved real run in docs/ reads back. (Speed itself is measured in benchmarks/,
never asserted here.)"""

import json
import os
import subprocess
import sys

import pytest

from rnnkit import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_table_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    results = bench.run(only_cells=["gru"], only_configs=["S"], progress=False, budget=0.02)
    impls = {r["impl"] for r in results}
    assert {"cpp", "numba"} & impls
    assert all(r["median"] > 0 and r["gflops"] > 0 for r in results)
    text = bench.table(results)
    assert "gru-inference-S" in text and "gru-training-S" in text
    for engine in bench.ENGINES:  # inference engines: the dense inference cases only, against cpp
        if engine in bench.available_impls():
            assert {r["mode"] for r in results if r["impl"] == engine} == {"inference"}, engine
            assert f"{engine}/cpp" in text.splitlines()[0]
    bench.plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_cli_bench_writes_json(tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "-m", "rnnkit", "bench", "--cells", "rnn_tanh", "--configs", "S",
                        "--budget", "0.02", "--no-progress", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["sgemm_gflops"] > 0 and data["results"]
    assert "sgemm ceiling (same run)" in r.stdout


def test_saved_run_reads_back():
    results, info = bench.from_pytest_json(os.path.join(ROOT, "docs", "bench-2core-avx2.json"))
    assert info["threads"] == 2 and info["sgemm_gflops"] > 0
    assert "lstm-training-XL" in bench.table(results)


def test_peak_memory_is_measured():
    mb = bench.peak_memory_mb("gru", "S", "cpp")
    if mb is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert 0 <= mb < 500


def test_run_times_the_whole_models():
    """The models group: torch.nn, rnnkit.torch and the NumPy layers on each backend, one row per
    (mode, model), only the models asked for; sizes filter them out."""
    results = bench.run(only_configs=["stream"], progress=False, budget=0.01)
    groups = bench.grouped(results)
    assert set(groups) == {"model-inference-stream", "model-training-stream"}
    for g in groups.values():
        assert {"cpp", "numba"} & set(g)
        if bench.torch is not None:
            assert {"torch", "rnnkit_torch"} <= set(g)
        assert all(r["median"] > 0 and r["gflops"] > 0 for r in g.values())
    assert "model-training-stream" in bench.table(results)
    assert not any(r["group"].startswith("model-") for r in bench.run(only_configs=["S"], only_cells=["gru"],
                                                                       progress=False, budget=0.01))
