"""rnnkit.torch.LSTM as a drop-in for torch.nn.LSTM in an ordinary PyTorch training loop.

A model nn.Embedding -> rnnkit.torch.LSTM -> nn.Linear classifies variable-length token sequences
(the label is the first token's class, so the LSTM must carry it to each sequence's own end),
fed as a PackedSequence; torch.optim and loss.backward() work unchanged. At the end the LSTM's
state_dict loads into a plain torch.nn.LSTM, which gives the same outputs.

    python examples/torch_dropin.py           # a few seconds (most of it importing torch)
    python examples/torch_dropin.py --smoke
"""

import argparse

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.torch

V, CLASSES = 12, 3  # token ids 1..V-1 (0 is padding); label = first token % CLASSES


class Classifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=0)
        # Exactly torch.nn.LSTM's constructor; only the forward runs rnnkit's kernels.
        self.lstm = rnnkit.torch.LSTM(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, ids, lengths):
        # A PackedSequence holds only the valid steps; enforce_sorted=False: any order of lengths.
        packed = pack_padded_sequence(self.emb(ids), lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = self.lstm(packed)  # PackedSequence in, PackedSequence out, as torch.nn
        return self.head(h_n[-1])  # h_n [num_layers, B, H]: the state after each sequence's last step


def batch(n, g, max_len=15):
    """n padded sequences [n, max_len] with lengths in [2, max_len], and their labels."""
    lengths = torch.randint(2, max_len + 1, (n,), generator=g)
    ids = torch.randint(1, V, (n, max_len), generator=g)
    ids[torch.arange(max_len)[None, :] >= lengths[:, None]] = 0  # padding
    return ids, lengths, ids[:, 0] % CLASSES


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--smoke", action="store_true", help="a short run for the tests")
    args = ap.parse_args(argv)
    steps = 60 if args.smoke else args.steps

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)  # the LSTM's parameters are nn.Parameters
    for step in range(steps):
        ids, lengths, y = batch(32, g)
        loss = nn.functional.cross_entropy(model(ids, lengths), y)
        opt.zero_grad()
        loss.backward()  # autograd runs rnnkit's BPTT kernel for the LSTM
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    model.eval()
    ids, lengths, y = batch(500, g)
    with torch.no_grad():
        acc = (model(ids, lengths).argmax(1) == y).float().mean().item()
    print(f"held-out accuracy {acc:.3f} (chance {1 / CLASSES:.3f})")

    # The same weights in torch's own LSTM: the state_dict keys and layout are torch.nn's.
    ref = nn.LSTM(16, 32, batch_first=True)
    ref.load_state_dict(model.lstm.state_dict())
    with torch.no_grad():
        packed = pack_padded_sequence(model.emb(ids), lengths, batch_first=True, enforce_sorted=False)
        out_a, (h_a, c_a) = model.lstm(packed)
        out_b, (h_b, c_b) = ref(packed)
        ya, _ = pad_packed_sequence(out_a, batch_first=True)  # back to padded [B, T, H]
        yb, _ = pad_packed_sequence(out_b, batch_first=True)
    diff = max((ya - yb).abs().max().item(), (h_a - h_b).abs().max().item(), (c_a - c_b).abs().max().item())
    print(f"torch.nn.LSTM with the same state_dict: max output difference {diff:.2e}")
    return 0 if diff < 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
