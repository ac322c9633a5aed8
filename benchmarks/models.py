"""Whole models through rnnkit.torch against torch.nn, the shapes of issue 11's targets, in one
process (torch imported), interleaved; medians of at least 5 calls and --budget seconds each.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/models.py [--only bi2,stream]
      bi2: 2-layer bidirectional LSTM, input 293, hidden 128, batch 32, 60 steps
      deep2000: 2-layer LSTM 256/256, batch 8, 2000 steps;  stream: LSTM 40/128, batch 1, 100 steps
Threads: 2 for both (RNNKIT_BENCH_THREADS). A first step towards the suite's models group.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
import rnnkit.torch as rt
from rnnkit.bench import THREADS

MODELS = {"bi2": (293, 128, 2, True, 32, 60), "deep2000": (256, 256, 2, False, 8, 2000),
          "stream": (40, 128, 1, False, 1, 100)}  # fmt: skip


def _median_ms(fn, budget):
    fn()
    ts, t0 = [], time.perf_counter()
    while len(ts) < 5 or time.perf_counter() - t0 < budget:
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(MODELS))
    ap.add_argument("--budget", type=float, default=1.5)
    a = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    rnnkit.set_num_threads(THREADS)
    for name in a.only.split(","):
        I, H, L, bi, B, T = MODELS[name]  # noqa: E741
        torch.manual_seed(0)
        ref = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bi)
        ours = rt.LSTM(I, H, num_layers=L, bidirectional=bi)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I)
        for mode in ("inference", "training"):
            res = {}
            for impl, mod in (("torch", ref), ("rnnkit", ours)):
                if mode == "inference":

                    def fn(mod=mod):
                        with torch.no_grad():
                            mod(x)
                else:

                    def fn(mod=mod):
                        mod.zero_grad()
                        y, _ = mod(x)
                        y.sum().backward()

                res[impl] = _median_ms(fn, a.budget)
            print(
                f"{name} {mode}: torch.nn {res['torch']:.2f} ms, rnnkit.torch {res['rnnkit']:.2f} ms, "
                f"ratio {res['torch'] / res['rnnkit']:.2f}x (threads {THREADS})",
                flush=True,
            )


if __name__ == "__main__":
    main()
