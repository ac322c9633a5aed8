#!/usr/bin/env bash
# The device check of backend "cuda": the one script a machine with a GPU runs (no network there:
# torch built for CUDA 13, CuPy, nvidia-cublas, pybind11 and scikit-build-core preinstalled).
# 1. build and install rnnkit with RNNKIT_CUDA=ON (a missing nvcc or cuBLAS fails it);
# 2. the CUDA tests: the GPU matrix against the NumPy reference, bitwise repeat, streams, errors,
#    and the host harness;
# 3. cuda against torch+cuDNN (torch.nn.RNN/LSTM/GRU on the same device), float32, CUDA-event
#    timing, inference and training (forward + backward), each output checked against torch first.
# Within 8 minutes; each stage has its own timeout. Usage: bash benchmarks/cuda_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
stage() { echo "[cuda_check] $* (${SECONDS}s)"; }

stage "machine"
nvidia-smi -L || true
python - <<'PY'
import sys
print("python", sys.version.split()[0])
for name in ("torch", "cupy", "numpy", "scipy_openblas32", "pybind11", "scikit_build_core"):
    try:
        m = __import__(name)
        print(name, getattr(m, "__version__", "?"))
    except ImportError as exc:
        print(name, "MISSING:", exc)
import torch
print("torch cuda:", torch.cuda.is_available(), torch.version.cuda, "cudnn", torch.backends.cudnn.version())
PY

stage "build (RNNKIT_CUDA=ON)"
RNNKIT_CUDA=ON RNNKIT_CPP=ON RNNKIT_WERROR=ON timeout 300 \
  python -m pip install --no-build-isolation --no-deps --force-reinstall -q . 2>&1 | grep -v "WARNING: Running pip as" || true
python -m rnnkit info
python -c "import rnnkit, sys; b = rnnkit.available_backends(); print(b); sys.exit('cuda' not in b)"

stage "tests"
timeout 240 python -m pytest tests/test_cuda.py tests/test_cuda_host.py -q -p no:cacheprovider -x -ra

stage "benchmark: cuda vs torch+cuDNN"
timeout 150 python - <<'PY'
import cupy as cp
import torch

from rnnkit import functional as F

CONFIGS = {"S": (32, 1, 64, 64), "M": (64, 16, 256, 256), "L": (64, 64, 512, 512), "XL": (32, 128, 1024, 1024)}
MODULES = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
dev = torch.device("cuda")


def timed(fn, repeats=20):
    """Best of `repeats` in ms, by CUDA events on the current stream, after a warm-up call."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


def pair(cell, m, x, mode):
    """(torch's call, rnnkit's call) of one case; the cuDNN module m holds the weights."""
    W = tuple(cp.asarray(p.detach()) for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0))
    xc = cp.asarray(x)
    if mode == "infer":
        def ours():
            F.forward(cell, xc, W, training=False)

        def theirs():
            with torch.no_grad():
                m(x)
        return theirs, ours
    xg = x.clone().requires_grad_(True)
    dy = torch.randn(x.shape[0], x.shape[1], m.hidden_size, device=dev)
    dyc = cp.asarray(dy)

    def ours():
        _, _, ctx = F.forward(cell, xc, W, training=True)
        F.backward(ctx, dyc)

    def theirs():
        m(xg)[0].backward(dy)
    return theirs, ours


print(f"{'cell':9} {'cfg':3} {'mode':5} {'torch ms':>9} {'cuda ms':>9} {'speed-up':>8}  max|y - torch|")
for cell, make in MODULES.items():
    for cfg, (T, B, I, H) in CONFIGS.items():
        torch.manual_seed(0)
        m = make(I, H).to(dev)
        x = torch.randn(T, B, I, device=dev)
        W = tuple(cp.asarray(p.detach()) for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0))
        with torch.no_grad():
            y_ref = m(x)[0]
        y = F.forward(cell, cp.asarray(x), W, training=False)[0]
        err = float(cp.abs(y - cp.asarray(y_ref)).max())
        for mode in ("infer", "train"):
            theirs, ours = pair(cell, m, x, mode)
            tt, tr = timed(theirs), timed(ours)
            print(f"{cell:9} {cfg:3} {mode:5} {tt:9.3f} {tr:9.3f} {tt / tr:7.2f}x  {err:.1e}", flush=True)
PY
stage "done"
