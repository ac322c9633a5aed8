"""The `rnnkit` command (also `python -m rnnkit`): info, precompile, demo, hello, sentiment, bench,
gradnorm.
Bad arguments or unreadable files give a message and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys
import time


def _info(args) -> int:
    import platform

    import numpy as np

    import rnnkit

    backends = rnnkit.available_backends()
    print(f"rnnkit {rnnkit.__version__}  (python {platform.python_version()}, numpy {np.__version__})")
    print(f"backends: {', '.join(backends)}  (auto -> {backends[0]})")
    for name, why in backends.missing.items():
        print(f"  {name}: unavailable: {why}")
    print(f"threads: {rnnkit.get_num_threads()}")
    if "cpp" in backends:
        from rnnkit._native import core

        pool = "torch's OpenMP threads" if core.using_host_openmp() else "rnnkit's pool (fork-safe)"
        print(f"C++ kernel threads: {pool}")

        print(f"cpu features: {core.cpu_features()}")
        print(f"pointwise ISA: {core.isa()}")
        print(f"build: {core.build_info()}")
        print(f"blas: {core.blas_config()}")
    return 0


def _precompile(args) -> int:
    import rnnkit

    t0 = time.perf_counter()
    try:
        reports = rnnkit.precompile(args.cells, args.dtypes, options=not args.no_options,
                                    projections=not args.no_projections, processes=args.processes)  # fmt: skip
    except RuntimeError as exc:  # numba missing, or a worker failed (its output is in the message)
        print(f"rnnkit precompile: {exc}", file=sys.stderr)
        return 1
    for r in reports:
        state = "already compiled" if r["hits"] and not r["misses"] else "compiled"
        print(f"numba {r['group']:<12} {r['direction']:<8} {r['dtype']}: {state} in {r['seconds']:.1f} s")
    print(f"precompile done in {time.perf_counter() - t0:.1f} s")
    return 0


def _demo(args) -> int:
    from rnnkit.demos import charlm

    text = charlm.read_text(args.text) if args.text else None
    model, losses, times = charlm.train(text, epochs=args.epochs, hidden=args.hidden, backend=args.backend,
                                        verbose=args.verbose)  # fmt: skip
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {args.epochs} epochs "
          f"({sum(times):.1f} s, {min(times) * 1e3:.0f} ms per epoch at best); sample:\n")  # fmt: skip
    print(model.sample(args.sample, prime=(text or charlm.default_text())[:10]))
    if not args.no_compare:
        print("\ntime per epoch on each backend (same model and data, after a warm-up):")
        charlm.compare_backends(text, hidden=args.hidden)
    return 0


def _hello(args) -> int:
    from rnnkit.demos import hello

    return 0 if hello.main(steps=args.steps, backend=args.backend) == "ello" else 1


def _sentiment(args) -> int:
    from rnnkit.demos import sentiment

    sentiment.main(n_train=args.train, cell=args.cell, epochs=args.epochs, backend=args.backend)
    return 0


def _gradnorm(args) -> int:
    from rnnkit.demos import gradnorm

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("rnnkit gradnorm: the plot needs matplotlib (pip install matplotlib); printing only", file=sys.stderr)
        gradnorm.main(path=None, T=args.steps)
        return 1
    gradnorm.main(path=args.output, T=args.steps)
    return 0


def _bench(args) -> int:
    import json
    import math

    import rnnkit
    from rnnkit import bench

    rnnkit.set_num_threads(args.threads)
    if bench.torch is not None:
        bench.torch.set_num_threads(args.threads)
    else:
        print("rnnkit bench: torch is not installed (pip install 'rnnkit[bench]'): timing rnnkit's backends only")
    ceiling = bench.sgemm_gflops(args.threads)
    results = bench.run(full=args.full, only_cells=args.cells, only_configs=args.configs,
                        budget=args.budget, progress=not args.no_progress)  # fmt: skip
    print(f"machine: {bench.cpu_model()}; threads: {args.threads}; sgemm ceiling (same run): {ceiling:.0f} GFLOP/s")
    print(bench.table(results))
    if args.json:
        import datetime

        facts = {"sgemm_gflops": ceiling, "threads": args.threads, "cpu": bench.cpu_model(),
                 "command": " ".join(["rnnkit", *sys.argv[1:]]),
                 "date": datetime.date.today().isoformat(),
                 "torch": getattr(bench.torch, "__version__", None)}  # fmt: skip
        if "cpp" in rnnkit.available_backends():
            from rnnkit._native import core

            facts.update(isa=core.isa(), cpu_features=core.cpu_features(),
                         kernel_threads="torch's OpenMP" if core.using_host_openmp() else "rnnkit's pool")  # fmt: skip
        with open(args.json, "w") as f:
            json.dump({**facts, "results": results}, f, indent=1)
        print(f"figures written to {args.json}")
    if args.plot:
        bench.plot(results, args.plot, {"cpu": bench.cpu_model(), "threads": args.threads})  # noqa: E501
        print(f"plot written to {args.plot}")
    return 0 if results and not math.isnan(ceiling) else 1


def _int_in(low, high):
    """An argparse type: an integer in [low, high] (the bounds keep a typo from becoming a
    MemoryError minutes later)."""

    def parse(value):
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {n}")
        return n

    return parse


def _output_path(value, suffix=None):
    """A file path that can be written: its folder exists and it is not a folder itself; checked
    before a long run rather than after it. With suffix, a missing one is added (what matplotlib
    would do silently) so the path printed is the path written."""
    import os

    if os.path.isdir(value):
        raise argparse.ArgumentTypeError(f"{value!r} is a directory, not a file")
    if suffix and not os.path.splitext(value)[1]:
        value += suffix
    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {value!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(value) and not os.access(value, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {value!r}: permission denied")
    return value


def _png(value):
    return _output_path(value, ".png")


def parser() -> argparse.ArgumentParser:
    """The `rnnkit` command line: one subcommand per tool, every option with its help text."""
    from rnnkit._validate import GATES

    parser = argparse.ArgumentParser(prog="rnnkit", description="Fast recurrent cells: RNN, LSTM, GRU.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    backend = dict(default="auto", choices=["auto", "cpp", "numba", "numpy"], help="backend (default auto)")

    p = sub.add_parser("info", help="version, backends (and why any is missing), threads, CPU, build")
    p.set_defaults(func=_info)

    p = sub.add_parser("precompile", help="compile the numba backend's kernels now, on every core (cached on disk)")
    p.add_argument("--cells", nargs="+", choices=list(GATES), help="only these cells (default all)")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], help="only these dtypes (default both)")
    p.add_argument("--no-options", action="store_true", help="not the kernels of ONNX's options (the longest)")
    p.add_argument("--no-projections", action="store_true", help="not the LSTM with projections (proj_size)")
    p.add_argument("--processes", type=_int_in(1, 4096), help="worker processes at a time (default: the cores)")
    p.set_defaults(func=_precompile)

    p = sub.add_parser("demo", help="train a character LSTM on a text, sample from it, time each backend")
    p.add_argument("--text", metavar="FILE", help="train on this UTF-8 text (default: the Zen of Python)")
    p.add_argument("--epochs", type=_int_in(1, 100_000), default=150, help="passes over the text (default 150)")
    p.add_argument("--hidden", type=_int_in(1, 4096), default=128, help="LSTM hidden size (default 128)")
    p.add_argument("--sample", type=_int_in(1, 1_000_000), default=300, help="characters to sample")
    p.add_argument("--backend", **backend)
    p.add_argument("--verbose", "-v", action="store_true", help="print the loss and time of every epoch")
    p.add_argument("--no-compare", action="store_true", help="skip timing an epoch on each backend")
    p.set_defaults(func=_demo)

    p = sub.add_parser("hello", help='the textbook "hello" character model, step by step')
    p.add_argument("--steps", type=_int_in(1, 1_000_000), default=300, help="training steps (default 300)")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_hello)

    p = sub.add_parser("sentiment", help="word order decides: LSTM/GRU against a bag-of-words baseline")
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm", help="recurrent cell (default lstm)")
    p.add_argument("--train", type=_int_in(1, 1_000_000), default=2000, help="training sentences (default 2000)")
    p.add_argument("--epochs", type=_int_in(1, 100_000), default=8, help="passes over the sentences (default 8)")
    p.add_argument("--backend", **backend)
    p.set_defaults(func=_sentiment)

    p = sub.add_parser("bench", help="rnnkit against torch.nn: a table of medians, speed-ups and GFLOP/s")
    p.add_argument("--full", action="store_true", help="every size, the T and B sweeps (several minutes)")
    p.add_argument("--threads", type=_int_in(1, 4096), default=2, help="threads of rnnkit and torch (default 2)")
    p.add_argument("--plot", metavar="PNG", type=_png, help="draw the speed-ups (and sweeps) here (needs matplotlib)")
    p.add_argument("--json", metavar="FILE", type=_output_path, help="save the figures here")
    p.add_argument("--cells", nargs="+", choices=["rnn_tanh", "lstm", "gru"], help="only these cells")
    p.add_argument("--configs", nargs="+", choices=["S", "M", "L", "XL", "bi2", "deep2000", "stream", "lstmp"],
                   help="only these sizes and whole models (rnnkit.bench.MODELS, LSTM)")
    p.add_argument("--budget", type=float, default=0.5, help="seconds of timing per case (default 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_bench)

    p = sub.add_parser("gradnorm", help="plot ||dL/dh_t|| over 100 steps for RNN, LSTM and GRU")
    p.add_argument("--output", "-o", type=_png, default="gradnorm.png", metavar="PNG",
                   help="where to draw the plot (default gradnorm.png)")  # fmt: skip
    p.add_argument("--steps", type=_int_in(2, 100_000), default=100, help="sequence length (default 100)")
    p.set_defaults(func=_gradnorm)

    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if not getattr(args, "func", None):
        parser().print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"rnnkit {args.command}: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"rnnkit {args.command}: out of memory; try smaller sizes", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
