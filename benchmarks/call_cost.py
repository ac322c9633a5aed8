"""The fixed cost of a call: functional.forward, the rnnkit.torch module and torch.nn, inference
(no_grad) on a tiny problem where the kernels take almost nothing, and on the streaming LSTM;
the same for one training step (forward, then the backward of y.sum(): functional.forward and
functional.backward with dy of ones, the module with autograd); then a decoder's cells at batch 1,
LSTMCell and GRUCell(128, 128): a no_grad step of the rnnkit.torch cell, of its packed() copy and
of torch.nn's, and ten teacher-forced training steps with their backward.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/call_cost.py [--calls N]
Prints, per case, the best of 5 rounds of N calls each, in microseconds a call (threads: 2, as the
suite; RNNKIT_BENCH_THREADS overrides). These VMs are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit.torch as rt
from rnnkit import functional as F
from rnnkit.bench import THREADS

CASES = {"tiny T1 B1 I4 H4": (1, 1, 4, 4), "stream T100 B1 I40 H128": (100, 1, 40, 128)}


def best_us(fn, calls, rounds=5):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def functional_step(x, w):
    y, _, ctx = F.forward("lstm", x, w, training=True)
    F.backward(ctx, np.ones_like(y))


def module_step(module, x):
    module.zero_grad(set_to_none=True)
    y, _ = module(x)
    y.sum().backward()


def teacher_forced(cell, x, steps=10):
    """A decoder's training step: `steps` cell steps from a zero state, a loss on every step's h,
    and its backward (parameter gradients included)."""
    cell.zero_grad(set_to_none=True)
    state, loss = None, 0
    for _ in range(steps):
        state = cell(x, state)
        loss = loss + (state[0] if isinstance(state, tuple) else state).sum()
    loss.backward()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per round for the tiny case (stream: /10)")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    print(f"LSTM, float32, inference under torch.no_grad, {THREADS} threads; us a call (best of 5 rounds)")
    training = []
    for name, (T, B, I, H) in CASES.items():
        torch.manual_seed(0)
        ours, ref = rt.LSTM(I, H), torch.nn.LSTM(I, H)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(T, B, I)
        w = tuple(p.detach().numpy() for p in (ours.weight_ih_l0, ours.weight_hh_l0, ours.bias_ih_l0, ours.bias_hh_l0))
        xn = x.numpy()
        n = args.calls if T == 1 else max(args.calls // 10, 20)
        with torch.no_grad():
            f = best_us(lambda xn=xn, w=w: F.forward("lstm", xn, w, training=False), n)
            m = best_us(lambda ours=ours, x=x: ours(x), n)
            t = best_us(lambda ref=ref, x=x: ref(x), n)
        print(f"{name:24} functional.forward {f:7.1f}   rnnkit.torch.LSTM {m:7.1f}   torch.nn.LSTM {t:7.1f}"
              f"   torch / rnnkit.torch {t / m:.2f}x")
        training.append((name, xn, w, x, ours, ref, n))
    for name, xn, w, x, ours, ref, n in training:
        f = best_us(lambda xn=xn, w=w: functional_step(xn, w), n)
        m = best_us(lambda ours=ours, x=x: module_step(ours, x), n)
        t = best_us(lambda ref=ref, x=x: module_step(ref, x), n)
        print(f"{name + ' train':24} functional f+b    {f:7.1f}   rnnkit.torch.LSTM {m:7.1f}   torch.nn.LSTM {t:7.1f}"
              f"   torch / rnnkit.torch {t / m:.2f}x")
    for ours_cls, ref_cls in ((rt.LSTMCell, torch.nn.LSTMCell), (rt.GRUCell, torch.nn.GRUCell)):
        cell_case(ours_cls, ref_cls, args.calls)


def cell_case(ours_cls, ref_cls, calls):
    """A decoder's cell at batch 1, H128: no_grad steps (rnnkit.torch, its packed() copy, torch.nn),
    then ten teacher-forced training steps with their backward."""
    torch.manual_seed(0)
    cell, ref_cell = ours_cls(128, 128), ref_cls(128, 128)
    ref_cell.load_state_dict(cell.state_dict())
    fast = cell.packed()
    x, h = torch.randn(1, 128), torch.zeros(1, 128)
    s = (h, h) if ours_cls is rt.LSTMCell else h
    name = ours_cls.__name__
    with torch.no_grad():
        m = best_us(lambda: cell(x, s), calls)
        p = best_us(lambda: fast(x, s), calls)
        t = best_us(lambda: ref_cell(x, s), calls)
    print(f"{name + ' step B1 H128':24} rnnkit.torch {m:7.1f}   packed() {p:7.1f}   torch.nn {t:7.1f}"
          f"   torch / rnnkit.torch {t / m:.2f}x")
    n = max(calls // 20, 10)
    m = best_us(lambda: teacher_forced(cell, x), n)
    t = best_us(lambda: teacher_forced(ref_cell, x), n)
    print(f"{name + ' 10 steps train':24} rnnkit.torch {m:7.1f}   torch.nn {t:7.1f}   torch / rnnkit.torch {t / m:.2f}x")

if __name__ == "__main__":
    main()
