"""Time one implementation of one case alone in this process (no other thread pool has run here):
the check on a ratio that the in-process suite may have skewed.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/alone.py M lstm numba training
      (CONFIG: S|M|L|XL; CELL: rnn_tanh|lstm|gru; IMPL: cpp|numba|torch; MODE: inference|training)
Prints the median in ms over at least 5 calls and about --budget seconds; threads: RNNKIT_BENCH_THREADS.
"""

from __future__ import annotations

import argparse

import rnnkit
from rnnkit.bench import CONFIGS, THREADS, Case, time_call


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", choices=list(CONFIGS))
    ap.add_argument("cell", choices=["rnn_tanh", "lstm", "gru"])
    ap.add_argument("impl", choices=["cpp", "numba", "torch"])
    ap.add_argument("mode", choices=["inference", "training"])
    ap.add_argument("--budget", type=float, default=1.0)
    a = ap.parse_args(argv)
    training = a.mode == "training"
    rnnkit.set_num_threads(THREADS)
    case = Case(a.cell, *CONFIGS[a.config])
    if a.impl == "torch":
        import torch

        torch.set_num_threads(THREADS)
        fn = case.torch_fn(training)
    else:
        fn = case.rnnkit_fn(a.impl, training)
    ms = time_call(fn, min_repeats=5, budget=a.budget) * 1e3
    print(f"{a.config} {a.cell} {a.mode} {a.impl} threads={THREADS}: {ms:.3f} ms")


if __name__ == "__main__":
    main()
