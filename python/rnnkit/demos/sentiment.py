"""Sentiment of short texts, many-to-one with variable lengths, where word order decides the label.

A generated corpus: "the film was good", "the film was not good at all", "it was bad but not
awful", "it was awful but not bad" ... The label follows the last clause, with negation flipping
it, so the same bag of words can carry either label. An LSTM (or GRU) classifier reads the words
in order and reaches high held-out accuracy; a bag-of-words logistic regression on the same data
cannot. Both accuracies are printed.
"""

from __future__ import annotations

import numpy as np

from .. import GRU, LSTM, Embedding, Linear
from ..training import Adam, clip_grad_norm, softmax_cross_entropy

POS = ["good", "great", "nice", "fine", "excellent", "fun"]
NEG = ["bad", "awful", "terrible", "poor", "boring", "dull"]
SUBJ = ["the film", "the movie", "the plot", "it", "the acting", "the story"]
VERB = ["was", "is", "seemed", "felt"]
ADV = ["", "really", "quite", "very"]


def _adj(rng):
    pos = rng.random() < 0.5
    return (rng.choice(POS) if pos else rng.choice(NEG)), pos


def sentence(rng):
    """One generated sentence and its label (1 positive, 0 negative)."""
    subj, verb, adv = rng.choice(SUBJ), rng.choice(VERB), rng.choice(ADV)
    kind = rng.integers(4)
    a, pa = _adj(rng)
    if kind == 0:  # plain
        words, label = [subj, verb, adv, a], pa
    elif kind == 1:  # negated, optionally "at all"
        words, label = [subj, verb, "not", adv, a] + (["at all"] if rng.random() < 0.5 else []), not pa
    else:  # "A but (not) B": the second clause decides
        b, pb = _adj(rng)
        neg = kind == 3
        words, label = [subj, verb, a, "but", "not" if neg else "", b], (not pb) if neg else pb
    text = " ".join(w for w in words if w)
    return text, int(label)


def corpus(n, seed):
    rng = np.random.default_rng(seed)
    pairs = [sentence(rng) for _ in range(n)]
    return [t for t, _ in pairs], np.array([y for _, y in pairs])


def vocabulary(texts):
    words = sorted({w for t in texts for w in t.split()})
    return {w: i + 1 for i, w in enumerate(words)}  # 0 is padding / unknown


def encode(texts, vocab):
    toks = [[vocab.get(w, 0) for w in t.split()] for t in texts]
    T = max(len(t) for t in toks)
    ids = np.zeros((T, len(toks)), np.int64)  # time-major
    for b, t in enumerate(toks):
        ids[: len(t), b] = t
    return ids, np.array([len(t) for t in toks], np.int64)


class Classifier:
    """Embedding -> LSTM/GRU over the valid steps -> final state -> Linear -> 2 logits."""

    def __init__(self, vocab_size, cell="lstm", emb=16, hidden=32, seed=0, backend="auto"):
        self.emb = Embedding(vocab_size, emb, seed=seed)
        self.rnn = (LSTM if cell == "lstm" else GRU)(emb, hidden, backend=backend, seed=seed + 1)
        self.out = Linear(hidden, 2, seed=seed + 2)
        self.cell = cell
        self.modules = {"emb": self.emb, "rnn": self.rnn, "out": self.out}

    def params(self):
        return {f"{m}.{k}": v for m, mod in self.modules.items() for k, v in mod.params.items()}

    def grads(self):
        return {f"{m}.{k}": v for m, mod in self.modules.items() for k, v in mod.grads.items()}

    def logits(self, ids, lengths):
        self._steps = ids.shape[0]
        _, state = self.rnn(self.emb(ids), lengths=lengths)
        h_n = state[0] if self.cell == "lstm" else state
        return self.out(h_n[-1])

    def backward(self, dlogits):
        dh = self.out.backward(dlogits)[None]
        dstate = (dh, np.zeros_like(dh)) if self.cell == "lstm" else dh
        dy = np.zeros((self._steps, dh.shape[1], self.rnn.hidden_size), np.float32)  # many-to-one
        dx, _ = self.rnn.backward(dy, dstate)
        self.emb.backward(dx)

    def train(self, mode=True):
        for m in self.modules.values():
            m.train(mode)


def _batches(n, size, rng):
    idx = rng.permutation(n)
    return [idx[i : i + size] for i in range(0, n, size)]


def train_rnn(train_texts, y_train, vocab, cell="lstm", epochs=8, seed=0, backend="auto", log=print):
    ids, lengths = encode(train_texts, vocab)
    model = Classifier(len(vocab) + 1, cell=cell, seed=seed, backend=backend)
    opt = Adam(model.params(), lr=0.01)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        for b in _batches(len(y_train), 64, rng):
            for m in model.modules.values():
                m.zero_grad()
            L = int(lengths[b].max())
            loss, d = softmax_cross_entropy(model.logits(ids[:L, b], lengths[b]), y_train[b])
            model.backward(d)
            clip_grad_norm(model.grads(), 5.0)
            opt.step(model.grads())
            total += loss * len(b)
        if log:
            log(f"  {cell} epoch {epoch + 1}/{epochs}: loss {total / len(y_train):.4f}")
    return model


def accuracy_rnn(model, texts, y, vocab):
    model.train(False)
    ids, lengths = encode(texts, vocab)
    return float((model.logits(ids, lengths).argmax(axis=1) == y).mean())


def bag_of_words(texts, vocab):
    X = np.zeros((len(texts), len(vocab) + 1), np.float32)
    for i, t in enumerate(texts):
        for w in t.split():
            X[i, vocab.get(w, 0)] += 1
    return X


def train_bow(X, y, epochs=200, seed=0):
    """Logistic regression on word counts (the order-blind baseline)."""
    lin = Linear(X.shape[1], 2, seed=seed)
    opt = Adam(lin.params, lr=0.05)
    for _ in range(epochs):
        lin.zero_grad()
        _, d = softmax_cross_entropy(lin(X), y)
        lin.backward(d)
        opt.step(lin.grads)
    return lin


def main(n_train=2000, n_test=1000, cell="lstm", epochs=8, seed=0, backend="auto", log=print):
    train_texts, y_train = corpus(n_train, seed)
    test_texts, y_test = corpus(n_test, seed + 1000)
    vocab = vocabulary(train_texts)
    if log:
        log("examples: " + "; ".join(f"'{t}' -> {'pos' if y else 'neg'}" for t, y in zip(train_texts[:4], y_train[:4])))
    bow = train_bow(bag_of_words(train_texts, vocab), y_train, seed=seed)
    bow.eval()
    acc_bow = float((bow(bag_of_words(test_texts, vocab)).argmax(axis=1) == y_test).mean())
    model = train_rnn(train_texts, y_train, vocab, cell=cell, epochs=epochs, seed=seed, backend=backend, log=log)
    acc_rnn = accuracy_rnn(model, test_texts, y_test, vocab)
    if log:
        log(f"held-out accuracy: {cell.upper()} {acc_rnn:.3f}   bag-of-words baseline {acc_bow:.3f}")
    return acc_rnn, acc_bow
