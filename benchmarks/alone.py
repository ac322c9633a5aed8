"""Time one implementation of one case alone in this process (no other thread pool has run here):
the check on a ratio that the in-process suite may have skewed.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/alone.py M lstm numba training
      (CONFIG: S|M|L|XL, or a whole model of rnnkit.bench.MODELS (bi2|deep2000|stream|lstmp, cell lstm);
      CELL: rnn_tanh|lstm|gru; IMPL: cpp|cpp_packed|numba|torch|rnnkit_torch|onnxruntime|openvino
      (cpp_packed: weights packed once by functional.pack, as the engines' sessions prepack them);
      MODE: inference|training; onnxruntime and openvino: inference, CONFIG S|M|L|XL)
      A model on cpp/numba runs the NumPy layers (rnnkit.LSTM): torch is never imported then, nor
      for onnxruntime and openvino (each compiles the case's ONNX graph).
Pairs, each side in its own process:  farm-bench, or --pair IMPL2 (runs IMPL and IMPL2 alternately,
each a fresh `python benchmarks/alone.py` process, --rounds times, and prints IMPL2 time / IMPL time).
Prints the median (and the minimum) in ms over at least 5 calls and about --budget seconds;
threads: RNNKIT_BENCH_THREADS.
"""

from __future__ import annotations

import argparse
import sys

if len(sys.argv) > 3 and sys.argv[3] in ("cpp", "cpp_packed", "numba", "onnxruntime", "openvino"):
    sys.modules["torch"] = None  # rnnkit alone: torch's import fails, rnnkit.bench runs without it

import rnnkit  # noqa: E402
from rnnkit.bench import CONFIGS, MODELS, THREADS, Case, ModelCase, model_fn, time_call  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", choices=[*CONFIGS, *MODELS])
    ap.add_argument("cell", choices=["rnn_tanh", "lstm", "gru"])
    impls = ["cpp", "cpp_packed", "numba", "torch", "rnnkit_torch", "onnxruntime", "openvino"]
    ap.add_argument("impl", choices=impls)
    ap.add_argument("mode", choices=["inference", "training"])
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--pair", choices=impls, help="the other side of a pair, each in its own process")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    training = a.mode == "training"
    if a.pair:
        return _pair(a)
    engine = a.impl in ("onnxruntime", "openvino")
    if engine and (training or a.config in MODELS):
        ap.error(f"{a.impl} runs the single-layer cases (S|M|L|XL) in inference only")
    rnnkit.set_num_threads(THREADS)
    if a.impl in ("torch", "rnnkit_torch"):
        import torch

        torch.set_num_threads(THREADS)
    if a.config in MODELS:
        if a.impl == "cpp_packed":
            ap.error("cpp_packed times the single-layer cases (S|M|L|XL)")
        if a.cell != "lstm":
            ap.error(f"the whole models are LSTMs: {a.config} needs cell lstm")
        fn = model_fn(ModelCase(a.config), a.impl, training)
    elif a.impl == "rnnkit_torch":
        fn = Case(a.cell, *CONFIGS[a.config]).bridge_fn(training)
    else:
        case = Case(a.cell, *CONFIGS[a.config])
        if engine:
            fn = getattr(case, f"{a.impl}_fn")()
            if fn is None:
                ap.error(f"onnx/{a.impl} are not installed (pip install 'rnnkit[bench]')")
        else:
            fn = case.torch_fn(training) if a.impl == "torch" else case.rnnkit_fn(
                "cpp" if a.impl == "cpp_packed" else a.impl, training, packed=a.impl == "cpp_packed")
    times: list = []
    ms = time_call(fn, min_repeats=5, budget=a.budget, times=times) * 1e3
    print(f"{a.config} {a.cell} {a.mode} {a.impl} threads={THREADS}: {ms:.3f} ms (min {min(times) * 1e3:.3f})")


def _pair(a):
    """IMPL and --pair alternately, each call of this script a fresh process; the medians and the
    ratio (pair time / impl time) per round, then the median ratio."""
    import statistics
    import subprocess

    ratios = []
    for r in range(a.rounds):
        ms = {}
        for impl in (a.impl, a.pair):
            out = subprocess.run([sys.executable, __file__, a.config, a.cell, impl, a.mode, "--budget", str(a.budget)],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            ms[impl] = float(out.split(": ")[1].split(" ms")[0])
        ratios.append(ms[a.pair] / ms[a.impl])
        print(f"round {r}: {a.impl} {ms[a.impl]:.3f} ms, {a.pair} {ms[a.pair]:.3f} ms, {a.pair}/{a.impl} {ratios[-1]:.2f}x")
    print(f"{a.config} {a.cell} {a.mode} threads={THREADS}: {a.pair} time / {a.impl} time, median of {a.rounds} "
          f"rounds: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
