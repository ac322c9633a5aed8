"""Weights packed once (functional.pack) against plain weights, C++ backend, float32 LSTM, in a
process without torch: inference calls, and forward + backward training steps.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/packed.py [--threads N]
Prints per case the median of 7 rounds (5 for training), plain and packed alternated in each round,
in microseconds a call; then a decoder step of LSTMCell / GRUCell(128, 128), batch 1, eval mode,
against its module.packed() copy (7 rounds of 2000 steps). These VMs are noisy: compare within one run.
With --torch (torch imported): rnnkit.torch's modules under torch.inference_mode against their
packed() copies instead: an LSTMCell(128, 128) decoder step, the streaming LSTM (40 -> 128, B1,
T100) and the 2-layer bidirectional LSTM (293 -> 128, B32, T60) of rnnkit.bench.MODELS.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import functional as F

# name: (I, H, B, T)
CASES = {"cell T1 B1 I128 H128": (128, 128, 1, 1), "S T32 B1 I64 H64": (64, 64, 1, 32),
         "stream T100 B1 I40 H128": (40, 128, 1, 100), "M T64 B16 I256 H256": (256, 256, 16, 64)}  # fmt: skip


def median(v):
    return sorted(v)[len(v) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="rnnkit's threads (default 2)")
    ap.add_argument("--torch", action="store_true", help="rnnkit.torch's modules against their packed() copies")
    args = ap.parse_args(argv)
    rnnkit.set_num_threads(args.threads)
    if args.torch:
        return torch_modules(args.threads)
    rng = np.random.default_rng(0)
    f = np.float32
    print(f"LSTM float32, cpp backend, {args.threads} threads; us a call, median; plain / packed")
    for name, (I, H, B, T) in CASES.items():  # noqa: E741
        x = rng.standard_normal((T, B, I)).astype(f)
        W = (0.1 * rng.standard_normal((4 * H, I)).astype(f), 0.1 * rng.standard_normal((4 * H, H)).astype(f),
             np.zeros(4 * H, f), np.zeros(4 * H, f))  # fmt: skip
        Wp = F.pack("lstm", W)
        n = max(20, int(2e5 // (T * B * H)))

        def infer(w, x=x):
            F.forward("lstm", x, w, None, training=False, backend="cpp")

        def step(w, x=x):
            y, _, ctx = F.forward("lstm", x, w, None, training=True, backend="cpp")
            F.backward(ctx, y)

        out = []
        for fn, rounds, calls in ((infer, 7, n), (step, 5, max(5, n // 3))):
            times = {"plain": [], "packed": []}
            for _ in range(rounds):
                for key, w in (("plain", W), ("packed", Wp)):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        fn(w)
                    times[key].append((time.perf_counter() - t0) / calls * 1e6)
            a, b = median(times["plain"]), median(times["packed"])
            out.append(f"{a:9.1f} / {b:9.1f} ({a / b:.2f}x)")
        print(f"{name:24s} inference {out[0]}   training step {out[1]}")
    # a decoder: the NumPy cells one step at a time, eval mode, against their packed() copies
    xs = rng.standard_normal((1, 128)).astype(f)
    for cls in (rnnkit.LSTMCell, rnnkit.GRUCell):
        cell = cls(128, 128).eval()
        fast = cell.packed()
        times = {"plain": [], "packed": []}
        for _ in range(7):
            for key, m in (("plain", cell), ("packed", fast)):
                state = None
                t0 = time.perf_counter()
                for _ in range(2000):
                    state = m(xs, state)
                times[key].append((time.perf_counter() - t0) / 2000 * 1e6)
        a, b = median(times["plain"]), median(times["packed"])
        print(f"{cls.__name__ + '(128, 128) B1 step':24s} module.packed(): {a:9.1f} / {b:9.1f} ({a / b:.2f}x)")


def torch_modules(threads):
    import torch

    import rnnkit.torch as rt

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"rnnkit.torch, float32, {threads} threads, torch.inference_mode; us a call, median of 7 rounds; "
          "module / module.packed()")  # fmt: skip
    cell = rt.LSTMCell(128, 128)
    xs = torch.randn(1, 128)

    def decoder(m, steps=1000):
        state = None
        for _ in range(steps):
            state = m(xs, state)

    cases = [("LSTMCell(128, 128) B1 step", cell, decoder, 1000),
             ("stream T100 B1 I40 H128", rt.LSTM(40, 128), torch.randn(100, 1, 40), 1),
             ("bi2 T60 B32 I293 H128", rt.LSTM(293, 128, num_layers=2, bidirectional=True), torch.randn(60, 32, 293), 1)]  # fmt: skip
    for name, m, arg, per in cases:
        m.eval()
        fast = m.packed()
        call = arg if callable(arg) else (lambda mod, x=arg: mod(x))
        calls = 3 if name.startswith("LSTMCell") else (200 if name.startswith("stream") else 20)
        times = {"plain": [], "packed": []}
        with torch.inference_mode():
            for mod in (m, fast):
                call(mod)
            for _ in range(7):
                for key, mod in (("plain", m), ("packed", fast)):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        call(mod)
                    times[key].append((time.perf_counter() - t0) / (calls * per) * 1e6)
        a, b = median(times["plain"]), median(times["packed"])
        print(f"{name:28s} {a:9.1f} / {b:9.1f} ({a / b:.2f}x)")


if __name__ == "__main__":
    main()
