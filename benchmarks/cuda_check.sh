#!/usr/bin/env bash
# The device check of backend "cuda": the one script a machine with a GPU runs (no network there:
# torch built for CUDA 13, CuPy, nvidia-cublas, pybind11 and scikit-build-core preinstalled; the
# wheels it lacks, scipy-openblas32 and tbb/tcmlib for Python 3.12, travel in .whl/ when present:
#   echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all: \
#     --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .whl \
#     scipy-openblas32 tbb tcmlib      then run it with .whl carried).
# 1. build and install rnnkit with RNNKIT_CUDA=ON (a missing nvcc or cuBLAS fails it), all cores;
# 2. the CUDA tests: test_cuda*.py and every cuda case of the backend matrix (test_backends,
#    test_errors, test_threads) against the NumPy reference, bitwise repeats, streams, errors, the
#    host harness; failures are reported, and the benchmark still runs;
# 3. cuda against torch+cuDNN (torch.nn.RNN/LSTM/GRU on the same device), float32, CUDA-event
#    timing, inference and training (forward + backward), each output checked against torch first.
# Within 8 minutes; each stage has its own timeout. The logs go to $OUT (the device tool's folder
# that comes back) or /tmp. Usage: bash benchmarks/cuda_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-/tmp}
stage() { echo "[cuda_check] $* (${SECONDS}s)"; }
export PATH="$PATH:/usr/local/cuda/bin" PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"

stage "machine"
nvidia-smi -L || true
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps .whl/*.whl 2>&1 | grep -v "WARNING: Running pip as" || true
fi
python3 - <<'PY'
import sys
print("python", sys.version.split()[0])
for name in ("torch", "cupy", "numpy", "scipy_openblas32", "numba", "pybind11", "scikit_build_core"):
    try:
        m = __import__(name)
        print(name, getattr(m, "__version__", "?"))
    except ImportError as exc:
        print(name, "MISSING:", exc)
import torch
print("torch cuda:", torch.cuda.is_available(), torch.version.cuda, "cudnn", torch.backends.cudnn.version())
PY

stage "build (RNNKIT_CUDA=ON)"
if ! RNNKIT_CUDA=ON RNNKIT_CPP=ON RNNKIT_WERROR=ON timeout 300 \
    python3 -m pip install -v --no-build-isolation --no-deps --force-reinstall . >"$LOGS/build.log" 2>&1; then
  grep -E "error|Error|FAILED" "$LOGS/build.log" | head -40
  tail -40 "$LOGS/build.log"
  stage "build failed"
  exit 1
fi
grep -E "rnnkit: |Build files" "$LOGS/build.log" | head
python3 -m rnnkit info
python3 -c "import rnnkit, sys; b = rnnkit.available_backends(); print(b); sys.exit('cuda' not in b)" || exit 1

stage "tests"
timeout 200 python3 -m pytest tests/test_cuda.py tests/test_cuda_host.py tests/test_backends.py tests/test_errors.py \
  tests/test_threads.py tests/test_torch_cuda.py -k cuda -q -p no:cacheprovider -ra --maxfail=40 --junitxml="$LOGS/tests.xml" 2>&1 \
  | tee "$LOGS/tests.log" | grep -v -E "^(SKIPPED|PASSED)" | tail -150
stage "tests rc=${PIPESTATUS[0]}"

stage "benchmark: cuda vs torch+cuDNN"
timeout 240 python3 - <<'PY' 2>&1 | tee "$LOGS/bench.log"
import cupy as cp
import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rnnkit import functional as F

CONFIGS = {"S": (32, 1, 64, 64), "M": (64, 16, 256, 256), "L": (64, 64, 512, 512), "XL": (32, 128, 1024, 1024)}
MODULES = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
dev = torch.device("cuda")


def tf32(on):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = on


def timed(fn, repeats=20):
    """Median of `repeats` in ms, by CUDA events on the current stream, after two warm-up calls."""
    fn(), fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def weights(m):
    return tuple(cp.asarray(p.detach()) for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0))


def pair(cell, m, x, mode, lengths=None):
    """(torch's call, rnnkit's call) of one case; the cuDNN module m holds the weights."""
    W, xc = weights(m), cp.asarray(x)
    lens = None if lengths is None else lengths.numpy()
    packed = (lambda t: t) if lengths is None else (lambda t: pack_padded_sequence(t, lengths, enforce_sorted=False))
    if mode == "infer":
        def ours():
            F.forward(cell, xc, W, lengths=lens, training=False)

        def theirs():
            with torch.no_grad():
                m(packed(x))
        return theirs, ours
    xg = x.clone().requires_grad_(True)
    dy = torch.randn(x.shape[0], x.shape[1], m.hidden_size, device=dev)
    dyc = cp.asarray(dy)

    def ours():
        _, _, ctx = F.forward(cell, xc, W, lengths=lens, training=True)
        F.backward(ctx, dyc)

    def theirs():
        out = m(packed(xg))[0]
        (out.data if lengths is not None else out).sum().backward()
    return theirs, ours


print("float32; torch = cuDNN through torch.nn, IEEE float32 (TF32 off, the maths rnnkit does); "
      "torch-tf32 = cuDNN's default (TF32 tensor cores); medians of 20 CUDA-event timings", flush=True)
print(f"{'cell':9} {'cfg':6} {'mode':5} {'torch ms':>9} {'tf32 ms':>8} {'cuda ms':>8} {'vs torch':>8} {'vs tf32':>8}  max|y-torch|")
for cell, make in MODULES.items():
    for cfg, (T, B, I, H) in list(CONFIGS.items()) + [("M-lens", (64, 16, 256, 256))]:
        torch.manual_seed(0)
        m = make(I, H).to(dev)
        x = torch.randn(T, B, I, device=dev)
        lengths = None
        if cfg == "M-lens":  # lengths T/8..T, as the CPU suite's variable-length case
            lengths = torch.linspace(T // 8, T, B).round().to(torch.int64)
        tf32(False)
        with torch.no_grad():
            out = m(x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False))[0]
            if lengths is not None:
                out = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
        y = F.forward(cell, cp.asarray(x), weights(m), lengths=None if lengths is None else lengths.numpy(), training=False)[0]
        err = float(cp.abs(y - cp.asarray(out)).max())
        for mode in ("infer", "train"):
            theirs, ours = pair(cell, m, x, mode, lengths)
            tf32(False)
            tt = timed(theirs)
            tf32(True)
            t32 = timed(theirs)
            tf32(False)
            tr = timed(ours)
            print(f"{cell:9} {cfg:6} {mode:5} {tt:9.3f} {t32:8.3f} {tr:8.3f} {tt / tr:7.2f}x {t32 / tr:7.2f}x  {err:.1e}", flush=True)

# The one-block path (cpp/cuda/block.h) against the step loop it replaces, on the cases that take it.
import time

import rnnkit._cuda_core as ext

print("\n== one-block path vs step loop (rnnkit cuda, float32, ms); host = wall time per call, 200 calls")
for cell, make in MODULES.items():
    for cfg, (T, B, I, H) in (("S", CONFIGS["S"]), ("S-B16", (32, 16, 64, 64)), ("T100", (100, 1, 40, 128))):
        torch.manual_seed(0)
        m = make(I, H).to(dev)
        x = torch.randn(T, B, I, device=dev)
        row = []
        for on in (True, False):
            ext.set_block_path(on)
            for mode in ("infer", "train"):
                row.append(timed(pair(cell, m, x, mode)[1]))
            ours = pair(cell, m, x, "infer")[1]
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(200):
                ours()
            torch.cuda.synchronize()
            row.append((time.perf_counter() - t0) / 200 * 1e3)
        ext.set_block_path(True)
        print(f"{cell:9} {cfg:6} block: infer {row[0]:.3f} train {row[1]:.3f} host {row[2]:.3f} | "
              f"steps: infer {row[3]:.3f} train {row[4]:.3f} host {row[5]:.3f}", flush=True)

# The per-step product alone: cuBLAS through rnnkit's shapes (torch.mm: cuBLAS/cuBLASLt as torch
# calls it) at M, where the profile showed a split-K kernel with a memset for the RNN's 16x256x256.
print("\n== per-step product h W^T alone (torch.mm, float32, TF32 off), us")
for rows, GH, H in ((16, 256, 256), (16, 1024, 256), (16, 768, 256), (1, 256, 64)):
    h, W = torch.randn(rows, H, device=dev), torch.randn(GH, H, device=dev)
    out = torch.empty(rows, GH, device=dev)
    print(f"{rows}x{GH}x{H}: {timed(lambda: torch.mm(h, W.t(), out=out), 200) * 1e3:.1f}")

# The host side of a small call: where the Python time goes (cProfile, 300 calls of lstm S inference).
import cProfile
import pstats

m = torch.nn.LSTM(64, 64).to(dev)
xs, Ws = cp.asarray(torch.randn(32, 1, 64, device=dev)), weights(m)
prof_ = cProfile.Profile()
prof_.enable()
for _ in range(300):
    F.forward("lstm", xs, Ws, training=False)
prof_.disable()
torch.cuda.synchronize()
print("\n== host profile: lstm S inference, 300 calls (tottime)")
pstats.Stats(prof_).sort_stats("tottime").print_stats(18)

# Where the time goes: rnnkit's kernels (CUPTI through torch.profiler) against the wall time of a call.
from torch.profiler import ProfilerActivity, profile

for cell, cfg in (("lstm", "S"), ("rnn_tanh", "M"), ("lstm", "XL")):
    T, B, I, H = CONFIGS[cfg]
    m = MODULES[cell](I, H).to(dev)
    x = cp.asarray(torch.randn(T, B, I, device=dev))
    W = weights(m)
    for _ in range(3):
        F.forward(cell, x, W, training=False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            F.forward(cell, x, W, training=False)
        torch.cuda.synchronize()
    print(f"\n== profile: {cell} {cfg} inference, 5 calls")
    try:
        print(prof.key_averages().table(sort_by="device_time_total", row_limit=12, max_name_column_width=60))
    except Exception:  # older torch: the CUDA column's name
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))
PY
stage "done"
