"""Vanishing and exploding gradients in a vanilla tanh RNN, and clipping as the cure for the latter.

The loss looks at the last step only, L = sum(r * h_{T-1}), so the gradient reaching step t has
travelled back T-1-t steps, multiplied each step by the Jacobian diag(1 - h_t^2) W_hh. With small
recurrent weights (gain 0.5) it shrinks geometrically: early steps get no learning signal. With
large ones (gain 2.5) it grows geometrically, and clip_grad_norm scales the weight gradients
back to a threshold.

    python examples/gradnorm.py [--steps 100]    # well under a second
    python examples/gradnorm.py --smoke
"""

import argparse

import numpy as np

from rnnkit import functional as F
from rnnkit.training import clip_grad_norm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="sequence length T")
    ap.add_argument("--max-norm", type=float, default=1.0, help="clipping threshold")
    ap.add_argument("--smoke", action="store_true", help="a shorter sequence, for the tests")
    args = ap.parse_args(argv)
    T, B, I, H = (40 if args.smoke else args.steps), 8, 4, 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))  # float64 [T, B, I]
    W_ih = rng.standard_normal((H, I)) * 0.1
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))  # orthogonal: every singular value is 1
    r = rng.standard_normal((B, H))

    shown = [T - 1, 3 * T // 4, T // 2, T // 4, 0]
    print("||dL/dh_t|| (mean over the batch) at t = " + "  ".join(f"{t:>9d}" for t in shown))
    grads = {}
    for name, gain in (("small W_hh", 0.5), ("large W_hh", 2.5)):
        w = (W_ih, gain * Q, None, None)  # (W_ih, W_hh, b_ih, b_hh); None: no bias
        y, h_n, ctx = F.forward("rnn_tanh", x, w)  # training=True by default: ctx for backward
        dy = np.zeros_like(y)  # dL/dy_t for every step: zero ...
        dy[-1] = r  # ... except at the last step
        # dh_norms=True also returns ||dL/dh_t|| [T, B] for every step, as BPTT passes through it.
        dx, dh0, (dW_ih, dW_hh, _, _), norms = F.backward(ctx, dy, dh_norms=True)
        n = norms.mean(axis=1)
        print(f"  {name} (gain {gain}):" + " " * 17 + "  ".join(f"{n[t]:9.2e}" for t in shown))
        grads[name] = {"weight_ih": dW_ih, "weight_hh": dW_hh}
    ratio = grads["large W_hh"]["weight_hh"].std() / grads["small W_hh"]["weight_hh"].std()
    print(f"dL/dW_hh is {ratio:.1e} times larger with the large weights")

    # The cure for exploding gradients: scale all gradients together (in place) so that their
    # global L2 norm is at most max_norm. The direction is kept; only the length changes.
    g = grads["large W_hh"]
    before = clip_grad_norm(g, args.max_norm)  # returns the norm before clipping
    after = float(np.sqrt(sum((a**2).sum() for a in g.values())))
    print(f"clip_grad_norm(max_norm={args.max_norm}): global gradient norm {before:.3e} -> {after:.6f}")
    return 0 if abs(after - args.max_norm) < 1e-3 * args.max_norm else 1


if __name__ == "__main__":
    raise SystemExit(main())
