"""rnnkit.torch.LSTM inside torch.nn.parallel.DistributedDataParallel: 2 processes, CPU, gloo.

Each process (rank) trains the same model on its own batches; DDP averages the gradients across
ranks during backward, so every rank takes the same optimiser step and the weights stay
identical, which the script checks at the end. rnnkit.torch's modules are ordinary nn.Modules
with nn.Parameters, so DDP needs nothing special for them.

    python examples/ddp_train.py            # a few seconds (mostly two processes importing torch)
    python examples/ddp_train.py --smoke

Across machines, start the worker with torchrun instead of mp.spawn (torchrun sets RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT; call init_process_group("gloo") without them).
"""

import argparse
import datetime
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import rnnkit
import rnnkit.torch


class Classifier(nn.Module):
    """Is the sum of a sequence's first feature positive? (an LSTM must add it up over time)"""

    def __init__(self):
        super().__init__()
        self.lstm = rnnkit.torch.LSTM(4, 16)  # a drop-in for nn.LSTM
        self.head = nn.Linear(16, 2)

    def forward(self, x):  # x [T, B, 4]
        out, _ = self.lstm(x)
        return self.head(out[-1])


def worker(rank, world_size, steps):
    """One process; mp.spawn passes its rank first. MASTER_ADDR/PORT come from the environment."""
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=60))
    try:
        torch.set_num_threads(1)  # one core per process
        rnnkit.set_num_threads(1)  # the same for rnnkit's own thread pool
        torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
        model = DDP(Classifier())  # wraps the module: its backward all-reduces the gradients
        opt = torch.optim.Adam(model.parameters(), lr=0.01)  # each rank its own, same steps
        g = torch.Generator().manual_seed(100 + rank)  # but different data on every rank
        for step in range(steps):
            x = torch.randn(10, 16, 4, generator=g)
            y = (x[:, :, 0].sum(0) > 0).long()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()  # rnnkit's BPTT kernels, then gloo's all-reduce of every gradient
            opt.step()
            if rank == 0 and (step % 20 == 0 or step == steps - 1):
                print(f"step {step:3d}  rank-0 loss {loss.item():.4f}", flush=True)
        # Every rank's flattened weights, gathered on every rank, compared with rank 0's.
        flat = torch.cat([p.detach().reshape(-1) for p in model.module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world_size)]
        dist.all_gather(gathered, flat)
        diff = max((t - gathered[0]).abs().max().item() for t in gathered)
        if rank == 0:
            print(f"{world_size} ranks, {flat.numel()} weights each: max difference between ranks {diff:.1e}", flush=True)
        if diff != 0:
            raise RuntimeError(f"rank {rank}: the weights differ across ranks by {diff}")
        dist.barrier()  # both ranks done before either tears down its gloo connections
    finally:
        dist.destroy_process_group()
    # A rank that succeeded leaves without the interpreter's teardown: gloo's threads may still be
    # joinable while it runs, and std::terminate ("terminate called without an active exception",
    # pytorch/pytorch#190489) then kills the rank after its work is done (once in 13 runs here).
    sys.stdout.flush()
    os._exit(0)


def free_port():
    """A TCP port nobody listens on right now (the OS picks it), for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--smoke", action="store_true", help="a short run for the tests")
    args = ap.parse_args(argv)
    steps = 10 if args.smoke else args.steps
    os.environ["MASTER_ADDR"] = "127.0.0.1"  # loopback only: both processes on this machine
    os.environ["MASTER_PORT"] = str(free_port())  # the spawned processes inherit the environment
    # Start 2 fresh interpreters ("spawn"), each running worker(rank, 2, steps); this waits for
    # both and raises if either fails.
    mp.spawn(worker, args=(2, steps), nprocs=2, join=True)
    print("DDP run finished: both ranks hold identical weights")
    return 0


if __name__ == "__main__":  # required: spawned processes import this file as a module
    raise SystemExit(main())
