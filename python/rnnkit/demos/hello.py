"""The character model of "hello", as the textbook walks through it.

Vocabulary {h, e, l, o}, one-hot inputs, a tanh RNN with 3 hidden units, y_t = W_hy h_t, softmax and
cross-entropy; trained by BPTT on "hell" -> "ello" until, fed "hell", it predicts each next
character and finally "o". Prints each step's softmax probabilities.
"""

from __future__ import annotations

import numpy as np

from .. import RNN, Linear
from ..training import SGD, softmax, softmax_cross_entropy

VOCAB = "helo"


def one_hot(text):
    x = np.zeros((len(text), 1, len(VOCAB)), np.float64)  # [T, B=1, I]
    for t, ch in enumerate(text):
        x[t, 0, VOCAB.index(ch)] = 1.0
    return x


def train(steps=300, lr=0.5, hidden=3, seed=0, backend="auto", log=print):
    """Returns (rnn, out, losses): the trained model and the loss every step."""
    rnn = RNN(len(VOCAB), hidden, dtype=np.float64, backend=backend, seed=seed)
    out = Linear(hidden, len(VOCAB), dtype=np.float64, seed=seed + 1)
    x = one_hot("hell")
    targets = np.array([[VOCAB.index(c)] for c in "ello"])  # [T, B]
    params = {**{f"rnn.{k}": v for k, v in rnn.params.items()}, **{f"out.{k}": v for k, v in out.params.items()}}
    opt = SGD(params, lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        rnn.zero_grad(), out.zero_grad()
        h, _ = rnn(x)  # h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)
        logits = out(h)  # y_t = W_hy h_t + b_y
        loss, dlogits = softmax_cross_entropy(logits, targets)
        rnn.backward(out.backward(dlogits))  # BPTT: each step's gradient summed into the weights
        grads = {**{f"rnn.{k}": v for k, v in rnn.grads.items()}, **{f"out.{k}": v for k, v in out.grads.items()}}
        opt.step(grads)
        losses.append(loss)
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"step {step:4d}  loss {loss:.4f}")
    return rnn, out, losses


def predict(rnn, out, text="hell"):
    """Softmax probabilities [T, 4] after each character of text, and the predicted characters."""
    rnn.eval(), out.eval()
    h, _ = rnn(one_hot(text))
    p = softmax(out(h))[:, 0, :]
    return p, "".join(VOCAB[i] for i in p.argmax(axis=1))


def main(steps=300, seed=0, backend="auto"):
    rnn, out, losses = train(steps=steps, seed=seed, backend=backend)
    p, pred = predict(rnn, out)
    print("\ninput  " + "  ".join(f"{c:>5}" for c in VOCAB))
    for t, ch in enumerate("hell"):
        print(f"'{ch}' -> " + "  ".join(f"{v:5.3f}" for v in p[t]) + f"   predicts '{pred[t]}'")
    print(f"\nfed 'hell', the model predicts '{pred}' (expected 'ello'): next character '{pred[-1]}'")
    return pred
