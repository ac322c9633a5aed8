"""rnnkit.precompile / `rnnkit precompile`: the numba kernels compiled by worker processes into the disk
cache, so that a later process's first calls load them; the cache's saves safe between processes."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import rnnkit
from rnnkit import _backends

pytestmark = pytest.mark.skipif("numba" not in rnnkit.available_backends(), reason="numba backend not available")

# A process's first calls through the public API, other sizes and arguments than the workers' own
# calls (h0 given, a missing bias, B = 1, blocks over several threads); prints the plain drivers'
# cache statistics in that process.
FIRST_CALLS = r"""
import json, numpy as np
import rnnkit
from rnnkit import functional as F
import rnnkit._numba as nb
rng = np.random.default_rng(1)
for dt in (np.float32,):
    for cell, G in (("gru", 3), ("rnn_relu", 1), ("lstm", 4)):
        # the last: an LSTM step split in two blocks on two threads (the parallel drivers)
        for T, B, I, H, lengths in ((7, 4, 5, 32, None), (6, 3, 2, 16, [6, 2, 4]), (4, 1, 3, 8, None),
                                    (3, 8, 5, 64, None)):
            W = (rng.standard_normal((G * H, I)).astype(dt), rng.standard_normal((G * H, H)).astype(dt), None,
                 rng.standard_normal(G * H).astype(dt))
            x = rng.standard_normal((T, B, I)).astype(dt)
            h0 = rng.standard_normal((B, H)).astype(dt)
            state = (h0, h0.copy()) if cell == "lstm" else h0
            for reverse in (False, True):
                y, _, ctx = F.forward(cell, x, W, state, lengths=lengths, reverse=reverse, backend="numba")
                F.backward(ctx, np.ones_like(y))
                F.forward(cell, x, W, state, lengths=lengths, reverse=reverse, training=False, backend="numba")
stats = {d: {"hits": sum(getattr(nb, d).stats.cache_hits.values()),
             "misses": sum(getattr(nb, d).stats.cache_misses.values())}
         for d in ("sequence_forward", "sequence_backward", "sequence_forward_serial", "sequence_backward_serial")}
print(json.dumps(dict(stats, threads=rnnkit.get_num_threads())))
"""


def test_precompile_then_a_new_process_loads_every_first_call():
    out = subprocess.run([sys.executable, "-m", "rnnkit", "precompile", "--cells", "lstm", "gru", "rnn_relu",
                          "--dtypes", "float32", "--no-options", "--no-projections"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("numba plain") and "forward  float32" in line for line in lines), lines
    assert any(line.startswith("numba plain") and "backward float32" in line for line in lines), lines
    assert lines[-1].startswith("precompile done in"), lines
    t0 = time.perf_counter()
    first = subprocess.run([sys.executable, "-c", FIRST_CALLS], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout.strip().splitlines()[-1])
    threads = stats.pop("threads")
    called = {d for d, s in stats.items() if s != {"hits": 0, "misses": 0}}
    want = {"sequence_forward_serial", "sequence_backward_serial"}
    if threads >= 2:
        want |= {"sequence_forward", "sequence_backward"}
    assert called == want, stats
    for driver in called:
        # a miss: a call whose argument types the workers' calls did not produce, compiled here
        assert stats[driver] == {"hits": 1, "misses": 0}, (driver, stats[driver], f"{seconds:.1f} s")


def test_precompile_reports_each_kernel_and_dtype(monkeypatch):
    from rnnkit._numba import precompile as jobs

    started = []

    class FakeProc:
        def __init__(self, cmd, stdout, stderr, text, env):
            job = json.loads(cmd[-1])
            started.append(job)
            stdout.write("a warning\n" + json.dumps(dict(job, seconds=0.0, cached=True, hits=1, misses=0)) + "\n")
            self.returncode = 0

        def poll(self):
            return self.returncode

    monkeypatch.setattr(jobs.subprocess, "Popen", FakeProc)
    reports = rnnkit.precompile(["lstm_peephole", "gru_reset_before"], ["float64", "float32"], options=False,
                                processes=2)  # fmt: skip
    want = {(g, d, t) for g in ("peephole", "reset_before") for d in ("forward", "backward")
            for t in ("float32", "float64")}  # fmt: skip
    assert {(r["group"], r["direction"], r["dtype"]) for r in reports} == want
    assert len(reports) == len(started) == 8
    # every cell with options adds the option drivers (longest first), the LSTM its projections
    groups = jobs.groups_for(["lstm"], options=True, projections=True)
    assert groups == ["plain", "serial", "proj", "forms", "forms_proj"]
    order = [j["group"] for j in jobs.jobs_for(["lstm"], ["float32"], True, True)]
    assert order[:2] == ["forms", "forms"], order


def test_a_failing_worker_names_its_job_and_output(monkeypatch):
    from rnnkit._numba import precompile as jobs

    monkeypatch.setattr(jobs, "jobs_for", lambda *a: [{"group": "no-such-group", "direction": "forward",
                                                       "dtype": "float32"}])  # fmt: skip
    with pytest.raises(RuntimeError, match=r"no-such-group.*failed \(exit 1\)(.|\n)*KeyError"):
        rnnkit.precompile(["lstm"], ["float32"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cells=["lsmt"]), r"cells: expected names among rnn_tanh, .*; got 'lsmt'"),
        (dict(dtypes=["float16"]), r"dtypes: expected float32 or float64; got 'float16'"),
        (dict(dtypes=["nonsense"]), r"dtypes: expected float32 or float64; got 'nonsense'"),
        (dict(processes=0), r"processes: expected a positive int or None; got 0"),
        (dict(processes=2.0), r"processes: expected a positive int or None; got 2.0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnkit.precompile(**kwargs)


def test_without_numba_says_why(monkeypatch):
    monkeypatch.setattr(_backends, "_load", lambda name: None)
    monkeypatch.setitem(_backends._missing, "numba", "ModuleNotFoundError: No module named 'numba'")
    with pytest.raises(RuntimeError, match="numba backend is not available here: ModuleNotFoundError"):
        rnnkit.precompile(["lstm"])
    out = subprocess.run([sys.executable, "-m", "rnnkit", "precompile", "--cells", "lsmt"], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 2 and "invalid choice: 'lsmt'" in out.stderr


def test_concurrent_saves_of_one_function_keep_every_signature(tmp_path, monkeypatch):
    """Two savers (threads here, processes in practice) of different signatures of one function,
    overlapping between reading the index and writing it: with Numba's own save both pick the same
    data file and one entry is lost, or points at the other's code."""
    from numba.core import caching

    from rnnkit._numba import _cache

    monkeypatch.setattr(_cache, "_DIR", str(tmp_path))
    files = [caching.IndexDataCacheFile(str(tmp_path), "kernel-1", "stamp") for _ in range(2)]
    read = caching.IndexDataCacheFile._load_index

    def slow_read(self):
        index = read(self)
        time.sleep(0.2)  # the other saver reads the same index meanwhile
        return index

    monkeypatch.setattr(caching.IndexDataCacheFile, "_load_index", slow_read)
    savers = [threading.Thread(target=f.save, args=(f"sig{k}", f"code of sig{k}")) for k, f in enumerate(files)]
    for s in savers:
        s.start()
    for s in savers:
        s.join()
    monkeypatch.setattr(caching.IndexDataCacheFile, "_load_index", read)
    reader = caching.IndexDataCacheFile(str(tmp_path), "kernel-1", "stamp")
    assert [reader.load(f"sig{k}") for k in range(2)] == ["code of sig0", "code of sig1"]
    assert sorted(os.listdir(tmp_path)) == ["kernel-1.1.nbc", "kernel-1.2.nbc", "kernel-1.nbi", "rnnkit-cache.lock"]


FIRST_TRAINING_CALL = r"""
import json, numpy as np
from rnnkit import functional as F
import rnnkit._numba as nb
from rnnkit._numba import precompile as pc
f = np.float32
rng = np.random.default_rng(0)
x = rng.standard_normal((5, 3, 4)).astype(f)
W = (rng.standard_normal((32, 4)).astype(f), rng.standard_normal((32, 8)).astype(f), None, None)
y, _, ctx = F.forward("lstm", x, W, None, backend="numba")
worker = pc._background.get(("serial", "float32")) is not None  # a single-block call: the serial variant
F.backward(ctx, np.ones_like(y))
print(json.dumps({"worker": worker, "hits": sum(nb.sequence_backward_serial.stats.cache_hits.values()),
                  "misses": sum(nb.sequence_backward_serial.stats.cache_misses.values())}))
"""


def test_a_first_training_forward_has_its_backward_compiled_meanwhile(tmp_path):
    """In a fresh cache the first training forward starts a worker compiling the backward's kernel
    while it compiles its own (2-vCPU EPYC: 15.6 s + 1.4 s for the first LSTM forward + backward,
    27 s without); the backward then loads it from the cache instead of compiling."""
    from rnnkit._numba import precompile as jobs

    if not jobs.workers_allowed():
        pytest.skip("a worker needs two cores (or RNNKIT_NUMBA_WORKERS is 0)")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", FIRST_TRAINING_CALL], capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"worker": True, "hits": 1, "misses": 0}


def test_no_worker_when_compiled_or_turned_off(monkeypatch):
    import numpy as np

    import rnnkit._numba as nb
    from rnnkit import functional as F
    from rnnkit._numba import precompile as jobs

    x = np.zeros((2, 1, 3), np.float32)
    W = (np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32), None, None)
    F.backward(F.forward("lstm", x, W, None, backend="numba")[2], np.zeros((2, 1, 2), np.float32))
    assert jobs.compiled_for(nb.sequence_forward_serial, np.float32)
    started = []
    monkeypatch.setattr(jobs, "_start", lambda job, stdout: started.append(job))
    monkeypatch.setattr(jobs, "_background", {})
    jobs.start_backward("serial", nb.sequence_forward_serial, np.float32)  # compiled here already: no worker
    assert started == [] and jobs._background == {("serial", "float32"): None}
    monkeypatch.setattr(jobs, "_background", {})
    monkeypatch.setattr(jobs, "compiled_for", lambda disp, dtype: False)
    monkeypatch.setenv("RNNKIT_NUMBA_WORKERS", "0")
    jobs.start_backward("serial", nb.sequence_forward_serial, np.float32)
    assert started == [] and not jobs.workers_allowed()
    monkeypatch.setenv("RNNKIT_NUMBA_WORKERS", "1")
    monkeypatch.setattr(jobs, "_background", {})
    if jobs.workers_allowed():  # two cores: the first call would start one, once
        jobs.start_backward("serial", nb.sequence_forward_serial, np.float32)
        jobs.start_backward("serial", nb.sequence_forward_serial, np.float32)
        assert started == [{"group": "serial", "direction": "backward", "dtype": "float32"}]


class _Proc:
    """A worker process as parallel_ready sees it: running until finish(code)."""

    def __init__(self):
        self.returncode = None

    def poll(self):
        return self.returncode

    def finish(self, code=0):
        self.returncode = code


def test_parallel_drivers_compile_in_a_worker_while_the_serial_ones_run(monkeypatch):
    """In a fresh cache a call whose steps split over threads runs the serial variants while
    workers compile the parallel drivers, forward then backward, one at a time and only when no
    first-call worker holds the other core; once both are done the calls switch (and stay)."""
    import numpy as np

    import rnnkit._numba as nb
    from rnnkit._numba import precompile as jobs

    started = []

    def start(job, stdout):
        started.append(job)
        return _Proc()

    monkeypatch.setattr(jobs, "_start", start)
    monkeypatch.setattr(jobs, "_parallel", {})
    first_call_worker = _Proc()
    monkeypatch.setattr(jobs, "_background", {("serial", "float32"): first_call_worker})
    monkeypatch.setattr(jobs, "workers_allowed", lambda: True)
    monkeypatch.setattr(jobs, "compiled_for", lambda disp, dtype: disp not in (nb.sequence_forward, nb.sequence_backward))
    assert not jobs.parallel_ready(np.float32) and started == []  # the first call: it compiles, its worker starts
    assert not jobs.parallel_ready(np.float32) and started == []  # the first call's worker has the other core
    first_call_worker.finish()
    assert not jobs.parallel_ready(np.float32)
    assert started == [{"group": "plain", "direction": "forward", "dtype": "float32"}]
    assert not jobs.parallel_ready(np.float32) and len(started) == 1  # one at a time
    jobs._parallel["float32"]["proc"].finish()
    assert not jobs.parallel_ready(np.float32)
    assert started[1] == {"group": "plain", "direction": "backward", "dtype": "float32"}
    jobs._parallel["float32"]["proc"].finish()
    assert jobs.parallel_ready(np.float32) and jobs.parallel_ready(np.float32) and len(started) == 2
    # a failed worker: the calls compile the parallel drivers themselves
    assert not jobs.parallel_ready(np.float64) and not jobs.parallel_ready(np.float64)
    assert started[2]["dtype"] == "float64"
    jobs._parallel["float64"]["proc"].finish(1)
    assert jobs.parallel_ready(np.float64) and len(started) == 3
    # compiled already, or no workers: ready at once, nothing started
    monkeypatch.setattr(jobs, "_parallel", {})
    monkeypatch.setattr(jobs, "compiled_for", lambda disp, dtype: True)
    assert jobs.parallel_ready(np.float32)
    monkeypatch.setattr(jobs, "compiled_for", lambda disp, dtype: False)
    monkeypatch.setattr(jobs, "workers_allowed", lambda: False)
    assert jobs.parallel_ready(np.float64) and len(started) == 3


def _leaves(obj):
    if obj is None:
        return []
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _leaves(o)]
    return [obj]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_serial_variants_over_several_blocks_are_bitwise_the_parallel_drivers(dtype, monkeypatch):
    """What a call runs while the parallel drivers compile: the serial variants over the same
    blocks give bitwise their results, forward and backward, every plain cell, lengths, reverse."""
    import numpy as np

    import rnnkit._numba as nb
    from rnnkit import functional as F
    from rnnkit._numba import precompile as jobs

    old = rnnkit.get_num_threads()
    rnnkit.set_num_threads(2)
    try:
        if len(nb._blocks(32, 64, 1)) < 3:
            pytest.skip("one thread here: every step is a single block")
        ran = []
        for name in ("sequence_forward", "sequence_backward", "sequence_forward_serial", "sequence_backward_serial"):
            real = getattr(nb, name)
            monkeypatch.setattr(nb, name, lambda *a, _real=real, _name=name: ran.append(_name) or _real(*a))
        rng = np.random.default_rng(4)
        dt = np.dtype(dtype)
        T, B, I, H = 5, 32, 6, 64  # noqa: E741 (two blocks a step for every cell)
        for cell, G in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1)):
            W = tuple(0.1 * rng.standard_normal(s).astype(dt) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)])
            x = rng.standard_normal((T, B, I)).astype(dt)
            for lengths, reverse in ((None, False), ([5, 2, 4, 5, 1, 3, 5, 2] * 4, True)):
                outs = {}
                for ready in (True, False):
                    monkeypatch.setattr(jobs, "parallel_ready", lambda dtype, _r=ready: _r)
                    ran.clear()
                    y, sn, ctx = F.forward(cell, x, W, None, lengths=lengths, reverse=reverse, backend="numba")
                    grads = F.backward(ctx, np.cos(y), None)
                    want = ["sequence_forward", "sequence_backward"]
                    assert ran == (want if ready else [n + "_serial" for n in want])
                    outs[ready] = _leaves((y, sn, grads))
                for a, b in zip(outs[True], outs[False]):
                    assert a.dtype == b.dtype and np.array_equal(a, b), cell
    finally:
        rnnkit.set_num_threads(old)
