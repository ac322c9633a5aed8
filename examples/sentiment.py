"""Many-to-one classification of variable-length sentences where word order decides the label.

Each generated sentence holds filler words, one adjective and one "not", which negates only the
adjective right after it: "the film was not good today" is negative, "the film was good not
today" positive. Both have the same bag of words, so a model blind to order stays at chance; a
GRU (or LSTM) reading the words in order, classifying from its final hidden state (the state
after each sentence's own last word, with lengths=), learns it.

    python examples/sentiment.py [--cell lstm]    # a few seconds
    python examples/sentiment.py --smoke
"""

import argparse

import numpy as np

import rnnkit
from rnnkit.training import Adam, clip_grad_norm, softmax_cross_entropy

POS, NEG = ["good", "great", "fun"], ["bad", "dull", "awful"]
FILLER = ["the", "film", "was", "really", "today", "and", "it", "so"]
WORDS = ["<pad>", "not", *POS, *NEG, *FILLER]  # id 0 is padding
ID = {w: i for i, w in enumerate(WORDS)}


def sentences(n, rng, max_len=12):
    """Padded ids [T, n] (time-major), lengths [n] and labels [n] (1 positive, 0 negative)."""
    ids, lengths, labels = np.zeros((max_len, n), np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for b in range(n):
        pos = rng.random() < 0.5
        negated = rng.random() < 0.5
        adj = rng.choice(POS if pos else NEG)
        core = ["not", adj] if negated else [adj, "not"]  # same words, order decides
        words = [*rng.choice(FILLER, rng.integers(0, 5)), *core, *rng.choice(FILLER, rng.integers(0, 5))]
        ids[: len(words), b] = [ID[w] for w in words]
        lengths[b], labels[b] = len(words), int(pos != negated)
    return ids, lengths, labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    ap.add_argument("--steps", type=int, default=400, help="training batches of 64")
    ap.add_argument("--smoke", action="store_true", help="a short run for the tests")
    args = ap.parse_args(argv)
    steps = 150 if args.smoke else args.steps
    rng = np.random.default_rng(0)

    emb = rnnkit.Embedding(len(WORDS), 16, seed=0)  # ids [T, B] -> [T, B, 16]
    rnn = (rnnkit.GRU if args.cell == "gru" else rnnkit.LSTM)(16, 32, seed=1)  # torch.nn's arguments
    head = rnnkit.Linear(32, 2, seed=2)  # final hidden state -> 2 logits
    modules = [emb, rnn, head]
    opt = Adam(modules, lr=0.01)  # updates every module's .params from its .grads

    def logits(ids, lengths):
        # With lengths=, padded steps leave the state alone: state_n is the state after each
        # sentence's own last word, [num_layers, B, H] (the LSTM's is the pair (h_n, c_n)).
        y, state_n = rnn(emb(ids), lengths=lengths)
        h_n = state_n[0] if args.cell == "lstm" else state_n
        return head(h_n[-1])  # logits [B, 2]

    for step in range(steps):
        ids, lengths, labels = sentences(64, rng)
        T = int(lengths.max())
        ids = ids[:T]  # no all-padding steps: the cost follows the longest sentence
        opt.zero_grad()
        out = logits(ids, lengths)
        loss, dlogits = softmax_cross_entropy(out, labels)
        dh = head.backward(dlogits)[None]  # dL/dh_n [1, B, H]
        # Many-to-one: the loss sees no per-step output, so dy is None (zeros) and the gradient
        # enters through the final state (the LSTM's dc_n is None too: zeros).
        dstate_n = (dh, None) if args.cell == "lstm" else dh
        dx, _ = rnn.backward(None, dstate_n)
        emb.backward(dx)
        clip_grad_norm(modules, 5.0)  # in place, over the three modules' gradients together
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss:.4f}")

    for mod in modules:
        mod.eval()  # inference: nothing kept for backward
    ids, lengths, labels = sentences(1000, rng)
    acc = float((logits(ids, lengths).argmax(axis=1) == labels).mean())
    print(f"held-out accuracy ({args.cell.upper()}, 1000 sentences): {acc:.3f}  (order-blind models: 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
