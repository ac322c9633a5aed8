"""The build switches RNNKIT_CPP and RNNKIT_CUDA together: pyproject.toml's overrides read by
scikit-build-core's own override code for each environment (does CMake run, does a failed build fall back
to an install without CMake), and CMake's option block refusing RNNKIT_CUDA=ON with RNNKIT_CPP=OFF
(a scratch configure, about 1 s). ON is strict, AUTO never fails an install that works without CUDA."""

import copy
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _settings(env, retry):
    """(CMake runs, a failed build is retried without CMake, the failure message) for this environment."""
    overrides = pytest.importorskip("scikit_build_core.settings.skbuild_overrides")
    import tomllib  # Python 3.11+; the build tooling runs there

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        skb = copy.deepcopy(tomllib.load(f)["tool"]["scikit-build"])
    matched, _ = overrides.process_overrides(skb, state="wheel", retry=retry, env=env)
    return skb.get("wheel", {}).get("cmake", True), "failed" in matched, skb.get("messages", {}).get("after-failure", "")


# env -> (CMake runs, a failed build falls back to an install without CMake)
CASES = [
    ({}, True, True),
    ({"RNNKIT_CPP": "OFF"}, False, None),
    ({"RNNKIT_CPP": "ON"}, True, False),
    ({"RNNKIT_CUDA": "AUTO"}, True, True),
    ({"RNNKIT_CUDA": "OFF"}, True, True),
    ({"RNNKIT_CPP": "OFF", "RNNKIT_CUDA": "AUTO"}, False, None),
    ({"RNNKIT_CUDA": "ON"}, True, False),
    ({"RNNKIT_CUDA": "on"}, True, False),
    ({"RNNKIT_CPP": "ON", "RNNKIT_CUDA": "ON"}, True, False),
    ({"RNNKIT_CPP": "OFF", "RNNKIT_CUDA": "ON"}, True, False),  # CMake runs, to refuse the pair by name
]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="reads pyproject.toml with tomllib")
@pytest.mark.parametrize("env,cmake_runs,falls_back", CASES, ids=[str(c[0]) for c in CASES])
def test_overrides(env, cmake_runs, falls_back):
    runs, _, message = _settings(env, retry=False)
    assert runs is cmake_runs, env
    if falls_back is not None:
        retried_runs, retried, _ = _settings(env, retry=True)
        assert retried is falls_back, env
        assert retried_runs is not falls_back, env
    if env.get("RNNKIT_CUDA", "").upper() == "ON":
        assert "RNNKIT_CUDA=ON" in message and "never falls back" in message


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake on PATH")
@pytest.mark.parametrize("cpp", ["OFF", "0"])
def test_cmake_refuses_cuda_on_without_the_cpp_build(tmp_path, cpp):
    pybind11 = pytest.importorskip("pybind11")
    r = subprocess.run(
        ["cmake", "-S", ROOT, "-B", str(tmp_path), "-DSKBUILD_PROJECT_VERSION=0.0.0",
         f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
         "-DRNNKIT_CUDA=ON", f"-DRNNKIT_CPP={cpp}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0
    err = " ".join(r.stderr.split())
    assert f"RNNKIT_CUDA=ON with RNNKIT_CPP={cpp}" in err, r.stderr[-2000:]
    assert "Unset RNNKIT_CPP" in err and "RNNKIT_CUDA=AUTO or OFF" in err
