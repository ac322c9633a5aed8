"""Data-parallel training of an rnnkit.torch.LSTM with torch.distributed's DistributedDataParallel
(gloo backend): each process trains on its share of every global batch; DDP averages the
gradients. `run_single` trains the same model on the whole global batch in one process, so the
two can be compared.
"""

# Used by tests/test_torch_modules.py (DDP against one process).

from __future__ import annotations

import os
import sys


def _model(seed):
    import torch

    from ..torch import LSTM

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(6, 16, num_layers=2)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[-1])

    torch.manual_seed(seed)
    return Classifier()


def _data(steps, global_batch, seed):
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    return [(torch.randn(9, global_batch, 6, generator=g), torch.randint(0, 3, (global_batch,), generator=g)) for _ in range(steps)]


def _loss(model, x, y):
    import torch

    return torch.nn.functional.cross_entropy(model(x), y)


def run_single(steps=5, global_batch=8, seed=0):
    """Final parameters after training on every global batch in one process."""
    import torch

    model = _model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in _data(steps, global_batch, seed):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank, world_size, port, steps, global_batch, seed, out_path):
    """One process of the data-parallel run; rank 0 saves the final parameters to out_path."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import rnnkit

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        rnnkit.set_num_threads(1)  # two processes on two cores
        torch.set_num_threads(1)
        model = DDP(_model(seed))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        share = global_batch // world_size
        for x, y in _data(steps, global_batch, seed):
            xs, ys = x[:, rank * share : (rank + 1) * share], y[rank * share : (rank + 1) * share]
            opt.zero_grad()
            _loss(model, xs, ys).backward()  # through DDP's forward: its hooks average the gradients
            opt.step()
        if rank == 0:
            torch.save({k: v.detach().clone() for k, v in model.module.state_dict().items()}, out_path)
        # Both ranks done before either tears down its gloo pairs: a rank destroying the group while
        # the other still held its connection aborted once in CI ("terminate called without an
        # active exception", SIGABRT in rank 1).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # The work is done and saved: leave without the interpreter's teardown, where a worker aborted
    # now and then in CI ("terminate called without an active exception", SIGABRT, after a barrier
    # and destroy_process_group), failing a run whose results were already written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_parallel(out_path, world_size=2, steps=5, global_batch=8, seed=0, timeout=120):
    """Spawn world_size processes on this machine (loopback only); returns rank 0's parameters."""
    import torch
    import torch.multiprocessing as mp

    ctx = mp.start_processes(worker, args=(world_size, free_port(), steps, global_batch, seed, out_path),
                             nprocs=world_size, join=False, start_method="spawn")  # fmt: skip
    import time

    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"data-parallel run did not finish in {timeout} s")
    return torch.load(out_path)
