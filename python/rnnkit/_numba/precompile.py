"""The Numba kernels compiled ahead of their first call, by worker processes in parallel.

A first call compiles its driver for 12-35 s on one core (forward or backward, per dtype; measured
on a 2-vCPU EPYC, fresh cache: the plain drivers 14 s forward + 12 s backward in float32, the
option drivers of forms.py 28 s + 35 s), and everything a driver calls is linked into it and
optimised there, so splitting the code finer does not shorten it (tried: Numba-level inlining made
it longer). The parallel regions do cost: the plain drivers have a serial variant each
(sequence._serial), which single-block calls run and which compiles in about 60% of the time
(in a fresh cache the calls split over threads run it too until workers have compiled the
parallel ones: parallel_ready); each variant is a group of its own here, so a first call
compiles only the one it runs. What also
shortens the wait is doing it on every core at once: each (driver, dtype) is a job of its own, run in a worker
process, as many at a time as there are cores, longest first; each saves its driver to the disk
cache (_cache.py), from which every later process loads it in well under a second.

A job compiles exactly the signatures real calls produce: it runs the public API
(functional.forward / backward, backend "numba") on tiny problems covering the driver's paths
(every cell of the group, dense and with lengths, both directions, training and inference), with
its own driver replaced by one that compiles for the arguments it is given without running, and
every other driver by one that does nothing (the outputs are then garbage; nothing reads them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._validate import GATES

# group -> (its cells, (forward driver, backward driver)) as attributes of rnnkit._numba (plain
# names) or of rnnkit._numba.forms ("forms." names). The option drivers serve every cell.
GROUPS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, str]]] = {
    "plain": (("rnn_tanh", "rnn_relu", "lstm", "gru"), ("sequence_forward", "sequence_backward")),
    "serial": (("rnn_tanh", "rnn_relu", "lstm", "gru"), ("sequence_forward_serial", "sequence_backward_serial")),
    "proj": (("lstm",), ("lstm_proj_forward", "lstm_proj_backward")),
    "peephole": (("lstm_peephole",), ("_peephole_forward_kernel", "_peephole_backward_kernel")),
    "reset_before": (("gru_reset_before",), ("_reset_before_forward_kernel", "_reset_before_backward_kernel")),
    "forms": (("rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "gru", "gru_reset_before"),
              ("forms.forms_forward", "forms.forms_backward")),
    "forms_proj": (("lstm",), ("forms.forms_lstm_proj_forward", "forms.forms_lstm_proj_backward")),
}  # fmt: skip
DTYPES = ("float32", "float64")
# Seconds of a fresh compile per job (measured as above, float32; float64 alike): the longest run first.
_COST = {"plain": (14, 12), "serial": (9, 8), "proj": (14, 13), "peephole": (12, 11), "reset_before": (13, 13), "forms": (28, 35),
         "forms_proj": (20, 22)}  # fmt: skip


def groups_for(cells: Sequence[str], options: bool, projections: bool) -> List[str]:
    """The driver groups the calls on these cells need (options: with ONNX's options too;
    projections: the LSTM with torch's proj_size too)."""
    need = {"plain", "serial"} if set(cells) & {"rnn_tanh", "rnn_relu", "lstm", "gru"} else set()
    if "lstm" in cells and projections:
        need.add("proj")
    if "lstm_peephole" in cells:
        need.add("peephole")
    if "gru_reset_before" in cells:
        need.add("reset_before")
    if options:
        need.add("forms")
        if "lstm" in cells and projections:
            need.add("forms_proj")
    return [g for g in GROUPS if g in need]


def jobs_for(cells: Sequence[str], dtypes: Sequence[str], options: bool, projections: bool) -> List[dict]:
    """One job per (group, direction, dtype), the longest first."""
    jobs = [{"group": g, "direction": d, "dtype": dt} for g in groups_for(cells, options, projections)
            for d in ("forward", "backward") for dt in dtypes]  # fmt: skip
    return sorted(jobs, key=lambda j: -_COST[j["group"]][j["direction"] == "backward"])


def _tour(group: str, dtype: str) -> None:
    """Calls of the public API covering the drivers of one group in one dtype."""
    from .. import functional as F

    cells = GROUPS[group][0]
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    T, B, I, H, S = 3, 3, 2, 8, 4  # noqa: E741

    def arr(*shape):
        return rng.standard_normal(shape).astype(dt)

    for cell in cells:
        G = GATES[cell]
        proj = group in ("proj", "forms_proj")
        W = [arr(G * H, I), arr(G * H, S if proj else H), arr(G * H), arr(G * H)]
        if cell == "lstm_peephole":
            W.append(arr(3 * H))
        if proj:
            W.append(arr(S, H))
        opts = {"clip": 1.0} if group.startswith("forms") else {}
        for lengths in (None, [3, 1, 2]):
            for reverse in (False, True):
                for training in (True, False):
                    y, _, ctx = F.forward(cell, arr(T, B, I), tuple(W), None, lengths=lengths, reverse=reverse,
                                          training=training, backend="numba", **opts)  # fmt: skip
                    if training:
                        F.backward(ctx, np.ones_like(y))


def run_job(job: dict) -> dict:
    """Compiles the driver of one job (see the module's doc) in this process, into the disk cache;
    returns the job with its seconds and the driver's cache hits and misses."""
    from .. import _numba as nb
    from ._cache import CACHE

    forms = nb._forms() if job["group"].startswith("forms") else None
    own = GROUPS[job["group"]][1][job["direction"] == "backward"]
    names = [n for g in GROUPS.values() for n in g[1] if forms is not None or not n.startswith("forms.")]
    saved = {}

    def place(name):
        return (forms, name[6:]) if name.startswith("forms.") else (nb, name)

    def noop(*args):
        return None

    def compile_only(disp):
        def call(*args):
            disp.compile(tuple(disp.typeof_pyval(a) for a in args))

        return call

    t0 = time.perf_counter()
    # the tour's tiny problems are single-block calls, which go to a driver's serial variant: a
    # job for the parallel one compiles that one for the arguments they reach the serial one with
    reach = {own, own + "_serial"}
    for name in names:
        mod, attr = place(name)
        saved[name] = getattr(mod, attr)
    for name in names:
        mod, attr = place(name)
        setattr(mod, attr, compile_only(saved[own]) if name in reach else noop)
    try:
        _tour(job["group"], job["dtype"])
    finally:
        for name, disp in saved.items():
            mod, attr = place(name)
            setattr(mod, attr, disp)
    disp = saved[own]
    return dict(job, seconds=round(time.perf_counter() - t0, 2), cached=CACHE,
                hits=sum(disp.stats.cache_hits.values()), misses=sum(disp.stats.cache_misses.values()))


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def workers_allowed() -> bool:
    """Whether a first call may start a worker (see start_backward): not inside a worker, not
    where RNNKIT_NUMBA_WORKERS=0, not in a frozen application (sys.executable is not Python there),
    and only with two cores or more to run it on."""
    if os.environ.get("RNNKIT_NUMBA_WORKERS", "1") == "0" or getattr(sys, "frozen", False) or not sys.executable:
        return False
    return _cores() >= 2


def _start(job: dict, stdout) -> subprocess.Popen:
    env = dict(os.environ, RNNKIT_NUMBA_WORKERS="0")  # a worker's own calls start no workers
    return subprocess.Popen([sys.executable, "-m", "rnnkit._numba.precompile", json.dumps(job)], stdout=stdout,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip


def compiled_for(disp, dtype) -> bool:
    """Whether the kernel disp has code for arrays of dtype, in this process or in the disk cache
    (for this CPU; any signature of that dtype: a first call's own signature is not known before
    its arguments are built)."""
    from numba import from_dtype, types

    want = from_dtype(np.dtype(dtype))

    def has(sig) -> bool:
        return any(isinstance(t, types.Array) and t.dtype == want for t in sig)

    overloads = getattr(disp, "overloads", None)
    if overloads is None:  # not a Numba dispatcher (a wrapper put in its place): nothing to start
        return True
    if any(has(sig) for sig in overloads):
        return True
    try:  # Numba's index: {(signature, the codegen's magic tuple, code hashes): data file}
        index = disp._cache._cache_file._load_index()
        magic = disp.targetctx.codegen().magic_tuple()
    except Exception:  # no cache (NullCache), or another Numba's layout: as if not compiled
        return False
    return any(k[1] == magic and has(k[0]) for k in index)


# (group, dtype) -> the worker compiling that group's backward kernel, started by a first training
# forward (None: none is, or it is done)
_background: Dict[Tuple[str, str], Optional[subprocess.Popen]] = {}


def start_backward(group: str, forward_kernel, dtype) -> None:
    """Before the first training forward of a group in a dtype: when its forward kernel has no code
    for the dtype yet (a fresh install: it is about to compile for some 14 s), the backward kernel
    is compiled meanwhile by a worker process (run_job), on another core, into the disk cache; the
    first backward then waits for it (wait_backward) and loads it, instead of compiling for as long
    again. Once per (group, dtype) and process; see workers_allowed."""
    key = (group, np.dtype(dtype).name)
    if key in _background:
        return
    _background[key] = None
    if workers_allowed() and not compiled_for(forward_kernel, dtype):
        job = {"group": group, "direction": "backward", "dtype": key[1]}
        _background[key] = _start(job, subprocess.DEVNULL)


def wait_backward(group: str, dtype) -> None:
    """Before a backward call: waits for the worker compiling its kernel, if one is running."""
    key = (group, np.dtype(dtype).name)
    proc = _background.get(key)
    if proc is not None:
        proc.wait()
        _background[key] = None


# dtype -> True once the plain group's parallel drivers may run (they have code, or no worker may
# compile them), else the state of their compile in the background: the jobs still to start and
# the worker running one (see parallel_ready)
_parallel: Dict[str, object] = {}


def parallel_ready(dtype) -> bool:
    """Whether a call whose steps split over threads may run the plain group's parallel drivers
    (sequence_forward / sequence_backward) in this dtype now, rather than their serial variants:
    the same blocks one after another, bitwise the same results, on one thread.

    In a fresh cache the parallel drivers compile for ~15 s (forward) and ~12 s (backward) on
    their first call, ~5 s longer than the serial variants (2-vCPU EPYC Zen 3: its parallel
    regions; the serial driver's callees are shared and cached). So when one of them has no code
    for the dtype and a worker may compile it (workers_allowed), the calls run the serial
    variants, and worker processes compile the parallel drivers into the disk cache, forward then
    backward, one at a time, from the second call on, each started when no first-call worker
    (start_backward) is running (the first call compiles a serial driver itself meanwhile); the
    first call that finds both done switches to them (loaded from the cache). Otherwise True: a
    call compiles what it runs, as without workers."""
    name = np.dtype(dtype).name
    state = _parallel.get(name)
    if state is True:
        return True
    if state is None:
        from .. import _numba as nb

        todo = [d for d, disp in (("forward", nb.sequence_forward), ("backward", nb.sequence_backward))
                if not compiled_for(disp, name)]  # fmt: skip
        if not todo or not workers_allowed():
            _parallel[name] = True
            return True
        _parallel[name] = {"todo": todo, "proc": None}
        return False  # (this first call compiles a serial driver now, and its backward's worker starts)
    assert isinstance(state, dict)
    proc = state["proc"]
    if proc is not None:
        if proc.poll() is None:
            return False
        state["proc"] = None
        if proc.returncode != 0:  # (a failed worker: the calls compile it themselves)
            state["todo"] = []
    if state["todo"]:
        if any(p is not None and p.poll() is None for p in _background.values()):
            return False  # a first call's worker has the other core
        job = {"group": "plain", "direction": state["todo"].pop(0), "dtype": name}
        state["proc"] = _start(job, subprocess.DEVNULL)
        return False
    _parallel[name] = True
    return True


def run(cells: Optional[Sequence[str]] = None, dtypes: Optional[Sequence[str]] = None, options: bool = True,
        projections: bool = True, processes: Optional[int] = None) -> List[dict]:  # fmt: skip
    """Runs jobs_for(...) in worker processes, `processes` at a time (default: the cores this
    process may use); returns each job's report (run_job's), in the order they finished. A job that
    fails raises RuntimeError naming it, with the end of its output."""
    from ._cache import CACHE

    if not CACHE:
        raise RuntimeError("precompile: the numba backend has no writable cache directory (see the warning at "
                           "import); set NUMBA_CACHE_DIR to a writable path")  # fmt: skip
    jobs = jobs_for(cells or tuple(GATES), dtypes or DTYPES, options, projections)
    processes = max(1, min(processes or _cores(), len(jobs)))
    pending, running, done = list(jobs), [], []
    try:
        while pending or running:
            while pending and len(running) < processes:
                job = pending.pop(0)
                out = tempfile.TemporaryFile("w+")
                running.append((job, _start(job, out), out))
            finished = [r for r in running if r[1].poll() is not None]
            if not finished:
                time.sleep(0.05)
            for job, proc, out in finished:
                running.remove((job, proc, out))
                out.seek(0)
                lines = out.read().strip().splitlines()
                out.close()
                if proc.returncode != 0 or not lines:
                    tail = "\n".join(lines[-15:])
                    raise RuntimeError(f"precompile: the job {job} failed (exit {proc.returncode}):\n{tail}")
                done.append(json.loads(lines[-1]))
    finally:
        for _, proc, out in running:  # after a failure or an interrupt
            proc.kill()
            proc.wait()
            out.close()
    return done


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # the report is the last line of the output
    print(json.dumps(run_job(json.loads(sys.argv[1]))))
