"""Time one implementation of one case alone in this process (no other thread pool has run here):
the check on a ratio that the in-process suite may have skewed.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/alone.py M lstm numba training
      (CONFIG: S|M|L|XL, or a whole model of rnnkit.bench.MODELS (bi2|deep2000|stream|lstmp, cell lstm);
      CELL: rnn_tanh|lstm|gru; IMPL: cpp|numba|torch|rnnkit_torch; MODE: inference|training)
      A model on cpp/numba runs the NumPy layers (rnnkit.LSTM): torch is never imported then.
Prints the median (and the minimum) in ms over at least 5 calls and about --budget seconds;
threads: RNNKIT_BENCH_THREADS.
"""

from __future__ import annotations

import argparse
import sys

if len(sys.argv) > 3 and sys.argv[3] in ("cpp", "numba"):
    sys.modules["torch"] = None  # rnnkit alone: torch's import fails, rnnkit.bench runs without it

import rnnkit  # noqa: E402
from rnnkit.bench import CONFIGS, MODELS, THREADS, Case, ModelCase, model_fn, time_call  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", choices=[*CONFIGS, *MODELS])
    ap.add_argument("cell", choices=["rnn_tanh", "lstm", "gru"])
    ap.add_argument("impl", choices=["cpp", "numba", "torch", "rnnkit_torch"])
    ap.add_argument("mode", choices=["inference", "training"])
    ap.add_argument("--budget", type=float, default=1.0)
    a = ap.parse_args(argv)
    training = a.mode == "training"
    rnnkit.set_num_threads(THREADS)
    if a.impl in ("torch", "rnnkit_torch"):
        import torch

        torch.set_num_threads(THREADS)
    if a.config in MODELS:
        if a.cell != "lstm":
            ap.error(f"the whole models are LSTMs: {a.config} needs cell lstm")
        fn = model_fn(ModelCase(a.config), a.impl, training)
    elif a.impl == "rnnkit_torch":
        fn = Case(a.cell, *CONFIGS[a.config]).bridge_fn(training)
    else:
        case = Case(a.cell, *CONFIGS[a.config])
        fn = case.torch_fn(training) if a.impl == "torch" else case.rnnkit_fn(a.impl, training)
    times: list = []
    ms = time_call(fn, min_repeats=5, budget=a.budget, times=times) * 1e3
    print(f"{a.config} {a.cell} {a.mode} {a.impl} threads={THREADS}: {ms:.3f} ms (min {min(times) * 1e3:.3f})")


if __name__ == "__main__":
    main()
