"""rnnkit.functional: one recurrent layer, one direction, as two plain functions.

    y, state_n, ctx = forward(cell, x, (W_ih, W_hh, b_ih, b_hh), state, lengths=, reverse=, training=)
    dx, dstate0, (dW_ih, dW_hh, db_ih, db_hh) = backward(ctx, dy, dstate_n)

For each cell ("rnn_tanh", "lstm", "gru") this runs forward with an explicit initial state,
per-sequence lengths and reverse=True, then backward, and checks the gradients of one weight,
one input and one initial-state entry against central finite differences in float64.

    python examples/functional_api.py [--backend numpy]    # well under a second
    python examples/functional_api.py --smoke
"""

import argparse
import functools

import numpy as np

from rnnkit import available_backends, functional as F

GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}  # rows per hidden unit: LSTM i,f,g,o; GRU r,z,n


def loss_of(cell, x, w, state, lengths, R, S, backend):
    """A scalar loss of forward's outputs: sum(y * R) + sum(h_n * S) (+ sum(c_n) for the LSTM)."""
    y, state_n, _ = F.forward(cell, x, w, state, lengths=lengths, reverse=True, training=False, backend=backend)
    h_n, c_n = state_n if cell == "lstm" else (state_n, None)
    return float((y * R).sum() + (h_n * S).sum() + (0.0 if c_n is None else c_n.sum()))


def central_difference(f, a, idx, eps=1e-6):
    """(f(a + eps) - f(a - eps)) / 2 eps at one entry of the array a (changed in place, then restored)."""
    old = a[idx]
    a[idx] = old + eps
    up = f()
    a[idx] = old - eps
    down = f()
    a[idx] = old
    return (up - down) / (2 * eps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto", choices=["auto", *available_backends()])
    ap.add_argument("--smoke", action="store_true", help="smaller sizes, for the tests")
    args = ap.parse_args(argv)
    T, B, I, H = (6, 3, 4, 5) if args.smoke else (20, 8, 16, 32)
    rng = np.random.default_rng(0)
    worst = 0.0
    for cell, G in GATES.items():
        # Weights in PyTorch's layout: W_ih [G*H, I], W_hh [G*H, H], biases [G*H] (None: no bias).
        w = tuple(rng.uniform(-0.5, 0.5, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)])
        x = rng.standard_normal((T, B, I))  # time-major [T, B, I]; float64 throughout
        h0 = rng.standard_normal((B, H)) * 0.5
        state = (h0, rng.standard_normal((B, H)) * 0.5) if cell == "lstm" else h0  # LSTM: (h0, c0)
        lengths = np.array([T, T // 2, 1, *rng.integers(1, T + 1, B - 3)])  # valid steps of each sequence

        # training=True keeps what backward needs in ctx. reverse=True: each sequence runs from its
        # own last valid step (lengths[b] - 1) back to step 0, as torch's backward direction does.
        y, state_n, ctx = F.forward(cell, x, w, state, lengths=lengths, reverse=True, training=True,
                                    backend=args.backend)
        assert not y[lengths[1]:, 1].any()  # steps past a sequence's length output zeros
        # A loss L = sum(y * R) + sum(h_n * S) (+ sum(c_n)): its gradients with respect to y and the
        # final state are R and S (and ones), which is what backward takes.
        R, S = rng.standard_normal(y.shape), rng.standard_normal((B, H))
        dstate_n = (S, np.ones((B, H))) if cell == "lstm" else S
        dx, dstate0, (dW_ih, dW_hh, db_ih, db_hh) = F.backward(ctx, R, dstate_n)  # BPTT
        dh0 = dstate0[0] if cell == "lstm" else dstate0  # the LSTM's is (dh0, dc0)

        # The same three gradients by central differences of the loss (forward only). ctx refers to x,
        # w and the state without copying them: change them in place only after backward, as here.
        f = functools.partial(loss_of, cell, x, w, state, lengths, R, S, args.backend)

        checks = [("W_hh[1,2]", w[1], (1, 2), dW_hh), ("x[0,1,0]", x, (0, 1, 0), dx), ("h0[2,3]", h0, (2, 3), dh0)]
        for name, a, idx, grad in checks:
            num = central_difference(f, a, idx)
            err = abs(num - grad[idx]) / max(abs(num), abs(grad[idx]), 1e-12)
            worst = max(worst, err)
            print(f"{cell:8s} dL/d{name:10s} backward {grad[idx]: .8f}  finite difference {num: .8f}  rel. error {err:.1e}")

        # training=False: nothing kept per step, ctx is None (inference).
        assert F.forward(cell, x, w, state, lengths=lengths, training=False, backend=args.backend)[2] is None
    print(f"max relative error against finite differences: {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
