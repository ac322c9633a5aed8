"""Turn a saved benchmark run (pytest benchmarks --benchmark-json=FILE) into the table and plot that
`rnnkit bench` prints: median per implementation, speed-up over torch (same run), GFLOP/s, the
machine's sgemm GFLOP/s measured in the same run, and training peak memory where recorded.

    python benchmarks/report.py FILE.json [--plot speedups.png] [--markdown] [--compact] [--summary]

FILE.json may also be what `rnnkit bench --json FILE` writes.
"""

from __future__ import annotations

import argparse
import math
import sys

from rnnkit import bench


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--plot", metavar="PNG")
    ap.add_argument("--summary", action="store_true", help="only the README's one-screen table")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--compact", action="store_true", help="torch, cpp and numba columns only")
    args = ap.parse_args(argv)
    results, info = bench.from_pytest_json(args.json)
    if args.summary:
        print(bench.summary(results))
        return 0
    sg = info.get("sgemm_gflops")
    line = f"machine: {info.get('cpu', '?')}; threads: {info.get('threads')}; pointwise ISA: {info.get('isa')}"
    if sg and not math.isnan(sg):
        line += f"; sgemm ceiling (same run): {sg:.0f} GFLOP/s"
    print(line)
    print(bench.table(results, args.markdown, args.compact))
    mem = [r for r in results if r.get("peak_mb")]
    if mem:
        print("\ntraining peak memory (one forward + backward, fresh process):")
        for r in mem:
            print(f"  {r['group']:24s} {r['impl']:8s} {r['peak_mb']:8.1f} MiB")
    if args.plot:
        bench.plot(results, args.plot, info)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
