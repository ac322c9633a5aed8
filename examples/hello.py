"""The classic character model: learn "hello" one character at a time.

Vocabulary {h, e, l, o}, one-hot inputs, a vanilla tanh RNN with 3 hidden units, a Linear head,
softmax cross-entropy, backpropagation through time, SGD with momentum. Fed "hell", the trained
model predicts each next character: "ello".

    python examples/hello.py            # 300 steps, well under a second
    python examples/hello.py --smoke    # fewer steps, for the tests
"""

import argparse

import numpy as np

import rnnkit
from rnnkit.training import SGD, softmax, softmax_cross_entropy

VOCAB = "helo"  # index 0 = 'h', 1 = 'e', 2 = 'l', 3 = 'o'


def one_hot(text):
    """The characters of text as one-hot vectors, time-major [T, B=1, I=4] (rnnkit's layout)."""
    x = np.zeros((len(text), 1, len(VOCAB)))
    for t, ch in enumerate(text):
        x[t, 0, VOCAB.index(ch)] = 1.0
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    ap.add_argument("--hidden", type=int, default=3, help="tanh units (default 3)")
    ap.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (default 0.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a short run for the tests")
    args = ap.parse_args(argv)
    steps = 150 if args.smoke else args.steps

    # A one-layer Elman RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), torch.nn.RNN's
    # arguments and parameter names; float64 so that nothing is lost to rounding in a tiny model.
    rnn = rnnkit.RNN(len(VOCAB), args.hidden, nonlinearity="tanh", dtype=np.float64, seed=args.seed)
    # The output layer y_t = W_hy h_t + b_y: one logit per character of the vocabulary.
    head = rnnkit.Linear(args.hidden, len(VOCAB), dtype=np.float64, seed=args.seed + 1)

    x = one_hot("hell")  # inputs  h e l l
    targets = np.array([[VOCAB.index(c)] for c in "ello"])  # targets e l l o, integers [T, B]

    # torch.optim.SGD's update over both layers: the optimiser updates each module's .params in
    # place and reads the gradients from its .grads.
    opt = SGD([rnn, head], lr=args.lr, momentum=0.9)

    for step in range(steps):
        opt.zero_grad()  # .grads accumulate across backward calls, as in torch: clear them first
        h, h_n = rnn(x)  # h: every step's hidden state [T, B, H]; h_n: the final one [1, B, H]
        logits = head(h)  # [T, B, 4]
        # Mean cross-entropy of softmax(logits) against the targets, and dL/dlogits in one call.
        loss, dlogits = softmax_cross_entropy(logits, targets)
        dh = head.backward(dlogits)  # dL/dh for every step; head.grads gets dL/dW_hy, dL/db_y
        rnn.backward(dh)  # BPTT: walks the steps in reverse, summing each step's share into rnn.grads
        opt.step()  # p -= lr * (momentum buffer), for every parameter of both layers
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss:.4f}")

    # Inference: eval() keeps nothing for backward.
    rnn.eval()
    head.eval()
    h, _ = rnn(one_hot("hell"))
    p = softmax(head(h))[:, 0, :]  # [T, 4] probabilities of the next character after each step
    print("\n        " + "  ".join(f"{c:>5}" for c in VOCAB))
    for t, ch in enumerate("hell"):
        print(f"'{ch}' -> " + "  ".join(f"{v:5.3f}" for v in p[t]) + f"   next: '{VOCAB[p[t].argmax()]}'")
    pred = "".join(VOCAB[i] for i in p.argmax(axis=1))
    print(f"predicted next characters: {pred} (expected ello)")
    return 0 if pred == "ello" else 1


if __name__ == "__main__":
    raise SystemExit(main())
