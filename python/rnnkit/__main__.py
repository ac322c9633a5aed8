"""The `rnnkit` command (also `python -m rnnkit`). Subcommands: info."""

from __future__ import annotations

import argparse
import sys


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

        print(f"cpu features: {core.cpu_features()}")
        print(f"pointwise ISA: {core.isa()}")
        print(f"build: {core.build_info()}")
        print(f"blas: {core.blas_config()}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Fast recurrent cells: RNN, LSTM, GRU.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="version, backends (and why any is missing), threads, CPU, build")
    p.set_defaults(func=_info)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
