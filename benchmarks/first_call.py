"""A first numba call in a fresh environment: the seconds of the first LSTM forward (training) and
backward of one dtype, compiling included. Run it with an empty cache, as a new user has:

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/first_call.py [T B I H] [--dtype float64]

The default T8 B2 I5 H7 is a single-block call (the serial drivers); T8 B8 I5 H64 splits each step
over two threads (the parallel drivers, which a fresh cache runs as the serial ones until a worker
has compiled them: precompile.parallel_ready). The first training forward starts a worker compiling
the backward meanwhile (RNNKIT_NUMBA_WORKERS=0 turns the workers off).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("size", type=int, nargs="*", default=[8, 2, 5, 7], help="T B I H")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)
    T, B, I, H = args.size  # noqa: E741
    t0 = time.perf_counter()
    from rnnkit import functional as F

    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    dt = np.dtype(args.dtype)
    w = tuple(rng.standard_normal(s).astype(dt) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)])
    x = rng.standard_normal((T, B, I)).astype(dt)
    y, _, ctx = F.forward("lstm", x, w, backend="numba")
    t2 = time.perf_counter()
    F.backward(ctx, np.ones_like(y))
    t3 = time.perf_counter()
    print(f"LSTM T{T} B{B} I{I} H{H} {dt.name}: import {t1 - t0:.1f} s, first forward {t2 - t1:.1f} s, "
          f"first backward {t3 - t2:.1f} s, both {t3 - t1:.1f} s")


if __name__ == "__main__":
    main()
