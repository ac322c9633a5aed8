"""A character language model: Embedding -> rnnkit.LSTM -> Linear, trained by truncated BPTT.

The text (a few lines built in, or --text FILE) is cut into parallel streams; each chunk of steps
starts from the state the previous chunk ended in (carried forward, not differentiated through),
which is truncated backpropagation through time. Then the model writes text, one character at a
time.

    python examples/char_lm.py                 # about a second
    python examples/char_lm.py --text FILE --epochs 30
    python examples/char_lm.py --smoke         # a fraction of a second
"""

import argparse
import time

import numpy as np

import rnnkit
from rnnkit.training import Adam, clip_grad_norm, softmax, softmax_cross_entropy, tbptt_chunks

TEXT = """\
Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex.
Complex is better than complicated. Flat is better than nested. Sparse is better than dense.
Readability counts. Special cases aren't special enough to break the rules. Although practicality
beats purity. Errors should never pass silently. Unless explicitly silenced.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", help="a UTF-8 text file to learn (default: a few built-in lines)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8, help="parallel streams")
    ap.add_argument("--chunk", type=int, default=32, help="steps per truncated-BPTT chunk")
    ap.add_argument("--smoke", action="store_true", help="a short run for the tests")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epochs, args.hidden = 15, 64
    text = open(args.text, encoding="utf-8").read() if args.text else TEXT

    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    V = len(chars)
    # The text as `batch` parallel streams, time-major: inputs X [steps, batch], targets Y = X shifted by one.
    data = np.array([index[c] for c in text])
    steps = (len(data) - 1) // args.batch
    X = data[: steps * args.batch].reshape(args.batch, steps).T
    Y = data[1 : steps * args.batch + 1].reshape(args.batch, steps).T

    emb = rnnkit.Embedding(V, 32, seed=0)  # ids [T, B] -> vectors [T, B, 32] (torch.nn.Embedding)
    lstm = rnnkit.LSTM(32, args.hidden, seed=1)  # torch.nn.LSTM's arguments; time-major by default
    head = rnnkit.Linear(args.hidden, V, seed=2)  # h_t -> one logit per character
    modules = [emb, lstm, head]
    # Adam over the three modules: step() updates each one's .params in place from its .grads.
    opt = Adam(modules, lr=0.01)

    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        state, total = None, 0.0  # None: zero initial state, at the start of every epoch
        # tbptt_chunks(T, chunk) yields (start, stop, lengths clipped to the chunk: None here).
        for start, stop, _ in tbptt_chunks(X.shape[0], args.chunk):
            opt.zero_grad()  # gradients accumulate in .grads: clear them for every chunk
            # Forward from the previous chunk's final state (h_n, c_n): the state is carried, but
            # backward stops at the chunk's first step (it returns dL/dstate0, which we drop).
            h, state = lstm(emb(X[start:stop]), state)  # h [steps, B, H]; state ([1, B, H], [1, B, H])
            loss, dlogits = softmax_cross_entropy(head(h), Y[start:stop])  # mean loss, dL/dlogits
            dx, _ = lstm.backward(head.backward(dlogits))  # BPTT inside the chunk; dx = dL/d(embeddings)
            emb.backward(dx)  # scatter-adds into emb.grads["weight"]
            clip_grad_norm(modules, 5.0)  # in place: the global norm of all gradients at most 5
            opt.step()
            total += loss * (stop - start)
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {total / X.shape[0]:.3f}  ({time.perf_counter() - t0:.1f} s)")

    # Sampling: one character per call, carrying the state; eval() keeps nothing for backward.
    for mod in modules:
        mod.eval()
    rng = np.random.default_rng(0)
    out, state, cur = "B", None, index["B"] if "B" in index else 0
    for _ in range(120 if not args.smoke else 40):
        h, state = lstm(emb(np.array([[cur]])), state)  # a [T=1, B=1] input
        p = softmax(head(h[0, 0]).astype(np.float64) / 0.7)  # temperature 0.7: a little sharper
        cur = int(rng.choice(V, p=p / p.sum()))
        out += chars[cur]
    print(f"final loss {total / X.shape[0]:.3f}")
    print("sample: " + out.replace("\n", " "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
