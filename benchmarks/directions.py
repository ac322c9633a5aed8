"""Bidirectional layers: both directions side by side (one core each) against one after the other
(each split over all threads), in one process, interleaved; prints the best median of two rounds.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/directions.py
The choice between the two is rnnkit._cpp._concurrent; this script overrides it to time both.
"""

from __future__ import annotations

import time

import numpy as np

import rnnkit
from rnnkit import _cpp

SHAPES = [(32, 1, 64, 64), (100, 1, 40, 128), (60, 4, 64, 128), (60, 32, 293, 128)]  # T, B, I, H


def _median_us(fn, n=200):
    for _ in range(10):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e6


def main():
    rnnkit.set_num_threads(2)
    chosen = _cpp._concurrent
    for T, B, I, H in SHAPES:  # noqa: E741
        m = rnnkit.LSTM(I, H, bidirectional=True, seed=0).eval()
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
        res = {}
        for label, rule in (
            ("side by side", lambda ps: True),
            ("one after another", lambda ps: False),
        ) * 2:
            _cpp._concurrent = rule
            res.setdefault(label, []).append(
                _median_us(lambda: m(x), n=200 if T * B < 1000 else 30)
            )
        _cpp._concurrent = chosen
        pick = (
            "side by side"
            if chosen([rnnkit._validate.problem("lstm", x, m._weights("_l0"))] * 2)
            else "one after another"
        )
        print(
            f"T={T} B={B} I={I} H={H}: "
            + ", ".join(f"{k} {min(v):.0f} us" for k, v in res.items())
            + f"; rnnkit picks {pick}"
        )


if __name__ == "__main__":
    main()
