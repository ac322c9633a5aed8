"""Data-parallel training with rnnkit.torch.LSTM under torch.distributed (gloo), 2 processes on this
machine, checked against single-process training on the same global batches.

    python examples/ddp_train.py

Across machines, start the same worker with torchrun and the usual rendezvous options, e.g. on each
of 2 hosts:  torchrun --nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d \
             --rdzv-endpoint=HOST0:29400 --rdzv-id=job1 your_train.py
where your_train.py calls torch.distributed.init_process_group("gloo") and wraps the model in
DistributedDataParallel exactly as rnnkit/demos/ddp.py's worker does.
"""

import os
import tempfile


from rnnkit.demos import ddp

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        parallel = ddp.run_parallel(os.path.join(d, "params.pt"))
    single = ddp.run_single()
    worst = max((parallel[k] - single[k]).abs().max().item() for k in single)
    print(f"2-process DDP against 1 process on the same global batches: max parameter difference {worst:.2e}")
