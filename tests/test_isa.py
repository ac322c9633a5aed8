"""Every pointwise table the CPU can run gives the reference's results: the matrix of
test_backends.py is re-run in a subprocess with RNNKIT_CPU_ISA capping the ISA (scalar, avx2,
avx512); an ISA this CPU lacks is skipped, saying so."""

import importlib.util
import os
import subprocess
import sys

import pytest

import rnnkit


def _cpu_has(isa):
    from rnnkit._native import core

    feats = set(core.cpu_features().split(","))
    return {"scalar": True, "avx2": {"avx2", "fma"} <= feats, "avx512": {"avx512f", "avx512dq", "avx512vl", "avx512bw"} <= feats}[isa]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_backend_matrix_under_each_isa(isa):
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    if not _cpu_has(isa):
        pytest.skip(f"this CPU has no {isa}")
    env = dict(os.environ, RNNKIT_CPU_ISA=isa)
    code = f"from rnnkit._native import core; assert core.isa() == {isa!r}, core.isa()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    here = os.path.dirname(__file__)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         os.path.join(here, "test_backends.py"), os.path.join(here, "test_threads.py"), "-k", "cpp"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_unknown_isa_is_refused():
    if importlib.util.find_spec("rnnkit._core") is None:
        pytest.skip("rnnkit was installed without its C++ extension")
    env = dict(os.environ, RNNKIT_CPU_ISA="sse9")
    r = subprocess.run([sys.executable, "-c", "import rnnkit; print(rnnkit.available_backends().missing['cpp'])"],
                       env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "RNNKIT_CPU_ISA must be one of scalar, avx2, avx512" in r.stdout
