"""Every script of examples/ runs with --smoke in a fresh interpreter, exits 0 and prints the
result it teaches (an accuracy, a finite-difference error, equal weights ...) within bounds.
About 20 s in all on 2 cores with the C++ backend built (most of it the torch scripts importing
torch); without it the first run of a numba kernel adds its one-time compile."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _below(limit):
    return lambda v: float(v) < limit


def _above(limit):
    return lambda v: float(v) > limit


# script, needs torch, a regex whose group 1 is the number checked, the check on it
CASES = [
    ("hello.py", False, r"predicted next characters: (\w+)", lambda v: v == "ello"),
    ("char_lm.py", False, r"final loss ([\d.]+)", _below(2.5)),
    ("functional_api.py", False, r"max relative error against finite differences: ([\d.e+-]+)", _below(1e-5)),
    ("sentiment.py", False, r"held-out accuracy \(GRU, 1000 sentences\): ([\d.]+)", _above(0.9)),
    ("gradnorm.py", False, r"global gradient norm [\d.e+]+ -> ([\d.]+)", lambda v: abs(float(v) - 1.0) < 1e-3),
    ("torch_dropin.py", True, r"max output difference ([\d.e+-]+)", _below(1e-5)),
    ("ddp_train.py", True, r"max difference between ranks ([\d.e+-]+)", lambda v: float(v) == 0.0),
]


@pytest.mark.parametrize("script, needs_torch, pattern, check", CASES, ids=[c[0] for c in CASES])
def test_example_smoke(script, needs_torch, pattern, check):
    if needs_torch:
        torch = pytest.importorskip("torch")
        if script == "ddp_train.py" and not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
            pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    env = dict(os.environ, PYTHONWARNINGS="ignore")  # keep the output to what the script prints
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--smoke"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=EXAMPLES.parent)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} --smoke exited with {proc.returncode}:\n{out[-3000:]}"
    m = re.search(pattern, proc.stdout)
    assert m, f"{script} --smoke printed no line matching {pattern!r}:\n{proc.stdout[-3000:]}"
    assert check(m.group(1)), f"{script} --smoke: {m.group(0)!r} is out of bounds"


def test_examples_use_public_api_only():
    """The examples teach the public API: no private module, no demos/CLI/bench internals."""
    for path in sorted(EXAMPLES.glob("*.py")):
        src = path.read_text(encoding="utf-8")
        for bad in ("rnnkit.__main__", "rnnkit.demos", "rnnkit.bench", "rnnkit._"):
            assert bad not in src, f"{path.name} uses {bad}"
        assert re.search(r"^from rnnkit\.?\w* import .*\b_\w", src, re.M) is None, f"{path.name} imports a private name"
        assert 'if __name__ == "__main__":' in src and "--smoke" in src, path.name
