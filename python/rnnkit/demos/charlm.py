"""A character language model: an LSTM trained by truncated BPTT on a text (by default the Zen of
Python, which ships with the standard library), then sampled. Reports the loss and the time of
every epoch; `compare_backends` times one epoch on each backend.
"""

from __future__ import annotations

import codecs
import time

import numpy as np

from .. import LSTM, Embedding, Linear
from ..training import Adam, clip_grad_norm, softmax, softmax_cross_entropy, tbptt_chunks


def default_text() -> str:
    """The Zen of Python, read from the standard library's `this` module without importing it
    (importing it prints the text)."""
    import ast
    import importlib.util

    with open(importlib.util.find_spec("this").origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    s = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "s")
    return codecs.decode(s, "rot13")


MAX_TEXT = 10_000_000  # characters: a demo reads a text, not a device or a disk image


def read_text(path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TEXT + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read text file {path!r}: {exc}") from None
    if len(text) > MAX_TEXT:
        raise ValueError(f"text file {path!r} is longer than {MAX_TEXT:,} characters; cut it")
    if len(text) < 100:
        raise ValueError(f"text file {path!r} is too short ({len(text)} characters; at least 100)")
    return text


class CharLM:
    def __init__(self, chars, hidden=128, emb=32, seed=0, backend="auto"):
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}
        V = len(chars)
        self.emb = Embedding(V, emb, seed=seed)
        self.rnn = LSTM(emb, hidden, backend=backend, seed=seed + 1)
        self.out = Linear(hidden, V, seed=seed + 2)
        self.modules = {"emb": self.emb, "rnn": self.rnn, "out": self.out}

    def params(self):
        return {f"{m}.{k}": v for m, mod in self.modules.items() for k, v in mod.params.items()}

    def grads(self):
        return {f"{m}.{k}": v for m, mod in self.modules.items() for k, v in mod.grads.items()}

    def train_mode(self, mode):
        for m in self.modules.values():
            m.train(mode)

    def sample(self, n, prime="", temperature=0.8, seed=0):
        rng = np.random.default_rng(seed)
        self.train_mode(False)
        state, out = None, prime
        rnn = self.rnn.packed()  # one step per character: weights packed once for all of them
        ids = [self.index.get(c, 0) for c in (prime or self.chars[0])]
        for i in ids[:-1]:
            _, state = rnn(self.emb(np.array([[i]])), state)
        cur = ids[-1]
        for _ in range(n):
            h, state = rnn(self.emb(np.array([[cur]])), state)
            p = softmax(self.out(h[0, 0]).astype(np.float64) / temperature)
            cur = int(rng.choice(len(p), p=p / p.sum()))
            out += self.chars[cur]
        self.train_mode(True)
        return out


def batchify(text, index, batch):
    """The text as `batch` parallel streams: [steps, batch] ids (time-major)."""
    data = np.array([index[c] for c in text], np.int64)
    steps = (len(data) - 1) // batch
    x = data[: steps * batch].reshape(batch, steps).T
    y = data[1 : steps * batch + 1].reshape(batch, steps).T
    return x, y


def train(text=None, epochs=10, hidden=128, batch=16, chunk=32, lr=0.01, seed=0, backend="auto",
          progress=True, log=print, verbose=False):  # fmt: skip
    """Train a CharLM; returns (model, loss per epoch, seconds per epoch). One progress bar counts the
    epochs (the loss in its postfix); `verbose` also logs a line per epoch."""
    text = default_text() if text is None else text
    chars = sorted(set(text))
    model = CharLM(chars, hidden=hidden, seed=seed, backend=backend)
    opt = Adam(model.params(), lr=lr)
    X, Y = batchify(text, model.index, batch)
    times, losses = [], []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=epochs, desc="training", unit="epoch", leave=False)
        except ImportError:
            bar = None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        state, total, count = None, 0.0, 0
        for start, stop, _ in tbptt_chunks(X.shape[0], chunk):
            for m in model.modules.values():
                m.zero_grad()
            h, state = model.rnn(model.emb(X[start:stop]), state)  # state carried, not differentiated
            loss, d = softmax_cross_entropy(model.out(h), Y[start:stop])
            dx, _ = model.rnn.backward(model.out.backward(d))
            model.emb.backward(dx)
            clip_grad_norm(model.grads(), 5.0)
            opt.step(model.grads())
            total, count = total + loss * (stop - start), count + (stop - start)
        times.append(time.perf_counter() - t0)
        losses.append(total / count)
        if bar is not None:
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            bar.update(1)
        if log and verbose:
            msg = f"epoch {epoch + 1:3d}/{epochs}: loss {losses[-1]:.3f}  ({times[-1] * 1e3:.0f} ms)"
            (bar.write if bar is not None else log)(msg)
    if bar is not None:
        bar.close()
    return model, losses, times


def compare_backends(text=None, backends=("cpp", "numba", "numpy"), log=print, epochs=3, **kw):
    """Seconds per epoch on each usable backend (same model, same data): the fastest of `epochs`
    epochs, each backend warmed up first by one short untimed run, so that the Numba kernels' compile
    (once per machine, then loaded from its cache) stays out of the comparison."""
    from .. import available_backends

    out = {}
    warm_text = (text or default_text())[:400]
    for b in backends:
        if b not in available_backends():
            continue
        if log and b == "numba":
            log("  numba: warming up (its first use on a machine compiles the kernels, about 30 s; "
                "later runs load them from the cache)")
        train(warm_text, epochs=1, backend=b, progress=False, log=None, **kw)
        _, _, times = train(text, epochs=epochs, backend=b, progress=False, log=None, **kw)
        out[b] = min(times)
        if log:
            log(f"  {b:6s} {out[b] * 1e3:8.1f} ms per epoch")
    return out
