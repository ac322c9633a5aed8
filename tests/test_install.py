"""An install without the C++ extension (no compiler at build time, or RNNKIT_CPP=OFF) still imports,
runs on numba/numpy, and says why the cpp backend is missing. Simulated here by a copy of the package
without rnnkit._core; CI also installs it for real with CXX=/bin/false (.ci/packaging)."""

import os
import shutil
import subprocess
import sys

import rnnkit

PROBE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
import numpy as np
import rnnkit
assert rnnkit.__file__.startswith(sys.argv[1]), rnnkit.__file__
b = rnnkit.available_backends()
print("usable:", ",".join(b))
print("why:", b.missing["cpp"])
x = np.ones((3, 2, 4), np.float32)
w = (np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32))
y, h, _ = rnnkit.functional.forward("rnn_tanh", x, w, backend="numpy")
print("y:", float(y[-1, 0, 0]))
"""


def test_without_the_extension_the_cpp_backend_says_why(tmp_path):
    src = os.path.dirname(rnnkit.__file__)
    dst = tmp_path / "rnnkit"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", PROBE, str(dst)], env=env, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usable: " in r.stdout and "cpp" not in r.stdout.split("usable: ")[1].split("\n")[0]
    assert "installed without its C++ extension" in r.stdout and "RNNKIT_CPP=OFF" in r.stdout
    assert "y: 0.999" in r.stdout  # tanh(4) = 0.99933
