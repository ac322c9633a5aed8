"""Shared by the benchmark files: inputs for a (cell, config), a torch module with the same weights,
and the callables that are timed."""

from __future__ import annotations

import os
import platform

import numpy as np

from rnnkit import functional as F

# (T, B, I, H)
CONFIGS = {
    "S": (32, 1, 64, 64),
    "M": (64, 16, 256, 256),
    "L": (64, 64, 512, 512),
    "XL": (32, 128, 1024, 1024),
}
SMOKE_CONFIGS = ("S", "M")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
THREADS = int(os.environ.get("RNNKIT_BENCH_THREADS", "2"))


def forward_flops(cell, T, B, I, H):  # noqa: E741
    """FLOPs of a forward pass: 2*T*B*G*H*(I+H) (the products; pointwise work not counted)."""
    return 2 * T * B * GATES[cell] * H * (I + H)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

try:
    import torch
except ImportError:  # torch is optional: its cases are skipped
    torch = None


def spread_lengths(T, B, seed=0):
    """Lengths spread evenly from T/8 to T, shuffled."""
    lengths = np.linspace(max(T // 8, 1), T, B).round().astype(np.int64)
    return np.random.default_rng(seed).permutation(lengths)


class Case:
    """Inputs of one benchmark: x [T,B,I] float32, PyTorch-initialised weights, dy."""

    def __init__(self, cell, T, B, I, H, lengths=False, seed=0):  # noqa: E741
        self.cell, self.T, self.B, self.I, self.H = cell, T, B, I, H
        rng = np.random.default_rng(seed)
        G = {"rnn_tanh": 1, "lstm": 4, "gru": 3}[cell]
        k = 1 / np.sqrt(H)  # torch.nn's default initialisation
        self.weights = tuple(rng.uniform(-k, k, s).astype(np.float32) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)])
        self.x = rng.standard_normal((T, B, I), dtype=np.float32)
        self.dy = rng.standard_normal((T, B, H), dtype=np.float32)
        self.lengths = spread_lengths(T, B, seed) if lengths else None
        self.valid_steps = int(self.lengths.sum()) if lengths else T * B

    # --- rnnkit -------------------------------------------------------------------------------
    def rnnkit_fn(self, backend, training):
        cell, x, w, lengths, dy = self.cell, self.x, self.weights, self.lengths, self.dy
        if not training:
            return lambda: F.forward(cell, x, w, lengths=lengths, training=False, backend=backend)[0]

        def step():
            y, _, ctx = F.forward(cell, x, w, lengths=lengths, backend=backend)
            F.backward(ctx, dy)
            return y

        return step

    # --- torch --------------------------------------------------------------------------------
    def torch_module(self):
        mod = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[self.cell](self.I, self.H)
        with torch.no_grad():
            for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), self.weights):
                getattr(mod, name).copy_(torch.from_numpy(w))
        return mod

    def bridge_fn(self, training):
        """rnnkit's kernels through rnnkit.torch (the autograd bridge), on the same inputs."""
        import rnnkit.torch as rt

        mod = {"rnn_tanh": rt.RNN, "lstm": rt.LSTM, "gru": rt.GRU}[self.cell](self.I, self.H)
        with torch.no_grad():
            for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), self.weights):
                getattr(mod, name).copy_(torch.from_numpy(w))
        x = torch.from_numpy(self.x).requires_grad_(training)
        dy = torch.from_numpy(self.dy)

        def call():
            if not training:
                with torch.inference_mode():
                    return mod(x)[0]
            mod.zero_grad(set_to_none=True)
            x.grad = None
            y = mod(x)[0]
            y.backward(dy)
            return y.detach()

        return call

    def torch_fn(self, training, packed=False, mkldnn=True):
        """torch.nn on the padded batch (packed=False) or on a PackedSequence of the same lengths."""
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        mod = self.torch_module()
        x = torch.from_numpy(self.x).requires_grad_(training)
        dy = torch.from_numpy(self.dy)
        lengths = torch.from_numpy(self.lengths) if packed else None
        T = self.T

        def run():
            inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
            out, _ = mod(inp)
            if packed:
                out, _ = pad_packed_sequence(out, total_length=T)
            return out

        def call():
            if not training:
                with torch.inference_mode():
                    return run()
            mod.zero_grad(set_to_none=True)
            x.grad = None
            y = run()
            y.backward(dy)
            return y.detach()

        if mkldnn:
            return call

        def call_without_onednn():
            # torch.backends.mkldnn.flags() also sets TF32 flags and warns about Intel GPUs
            prev = torch._C._get_mkldnn_enabled()
            torch._C._set_mkldnn_enabled(False)
            try:
                return call()
            finally:
                torch._C._set_mkldnn_enabled(prev)

        return call_without_onednn
