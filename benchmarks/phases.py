"""Where a C++ call's time goes: the per-phase timers of the sequence drivers (rnnkit/profile.h) for
one LSTM case, in a process without torch.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/phases.py I H B T [--training]
      [--threads N] [--plain] [--calls N]
Prints the wall time a call and each phase in thread-microseconds a call (two threads in one phase
for 1 us add 2 us): setup (packing weights, permuting states), input (projection), step_gemm,
pointwise, wait (barriers), weight_grad, input_grad. The weights are packed once (functional.pack)
unless --plain.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import functional as F
from rnnkit._native import core


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("I", "H", "B", "T"):
        ap.add_argument(name, type=int)
    ap.add_argument("--training", action="store_true", help="forward + backward (default: inference)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain", action="store_true", help="plain weights, packed in every call")
    ap.add_argument("--calls", type=int, default=300)
    a = ap.parse_args(argv)
    rnnkit.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    f = np.float32
    x = rng.standard_normal((a.T, a.B, a.I)).astype(f)
    W = (0.1 * rng.standard_normal((4 * a.H, a.I)).astype(f), 0.1 * rng.standard_normal((4 * a.H, a.H)).astype(f),
         np.zeros(4 * a.H, f), np.zeros(4 * a.H, f))  # fmt: skip
    if not a.plain:
        W = F.pack("lstm", W)

    def call():
        y, _, ctx = F.forward("lstm", x, W, None, training=a.training, backend="cpp")
        if a.training:
            F.backward(ctx, y)

    for _ in range(20):
        call()
    core.profile(True)
    core.profile_reset()
    t0 = time.perf_counter()
    for _ in range(a.calls):
        call()
    wall = (time.perf_counter() - t0) / a.calls * 1e6
    core.profile(False)
    phases = "  ".join(f"{k} {v / a.calls * 1e6:.1f}" for k, v in core.profile_read().items() if v)
    print(f"LSTM T{a.T} B{a.B} I{a.I} H{a.H} {'training' if a.training else 'inference'}, {a.threads} threads, "
          f"{'plain' if a.plain else 'packed'} weights: {wall:.1f} us a call; thread-us a call: {phases}")  # fmt: skip


if __name__ == "__main__":
    main()
