"""The thread setting: one knob for every backend, and results that do not depend on it.
Problems here are big enough (B*G*H*H per step) for the C++ kernels to really use two threads."""

import importlib.util

import numpy as np
import pytest
from _helpers import array_module, assert_close, make_case, to_device, to_host

import rnnkit


@pytest.fixture
def threads():
    old = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(old)


@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_two_threads_match_one_bitwise(any_backend, cell, threads, lengths, reverse):
    """Bitwise the same results for 1 and 2 threads (cuda: the setting does not reach the GPU, and its
    results are bitwise the same run to run)."""
    backend = any_backend
    case = make_case(cell, T=6, B=40, I=30, H=100, dtype=np.float32, lengths=lengths, reverse=reverse, seed=8,
                     scale=0.15)
    rnnkit.set_num_threads(1)
    one = case.run(backend)
    rnnkit.set_num_threads(2)
    two = case.run(backend)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=f"{k} differs between 1 and 2 threads")
    want = case.astype(np.float64).run("numpy")
    for k in want:
        assert_close(k, two[k], want[k], np.float32)


def test_set_num_threads_validates(threads):
    rnnkit.set_num_threads(3)
    assert rnnkit.get_num_threads() == 3
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        rnnkit.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer, got float"):
        rnnkit.set_num_threads(1.5)
    assert rnnkit.get_num_threads() == 3


def test_cpp_applies_the_setting(threads):
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    from rnnkit._native import core

    rnnkit.set_num_threads(2)
    assert core.get_num_threads() == 2
    rnnkit.set_num_threads(1)
    assert core.get_num_threads() == 1


# A script run in a subprocess: one threaded call in the parent, then the same call in children
# started by fork (the multiprocessing default on Linux, and DataLoader's). With GNU OpenMP's pool
# the children hung (cpp) or were killed (numba); a hang shows here as the timeout.
_FORK_SCRIPT = """
import multiprocessing as mp, sys
import numpy as np
import rnnkit
from rnnkit import functional as F

backend = sys.argv[1]
if "torch_openmp" in sys.argv[2:]:  # the kernels' threads are torch's libgomp threads in the parent
    import torch, rnnkit.torch
    torch.set_num_threads(2)
    from rnnkit._native import core
    assert core.using_host_openmp(), "rnnkit.torch did not hand the kernels to torch's OpenMP"
rng = np.random.default_rng(0)
x = rng.standard_normal((20, 8, 32)).astype(np.float32)
W = (0.1 * rng.standard_normal((256, 32)).astype(np.float32),
     0.1 * rng.standard_normal((256, 64)).astype(np.float32), None, None)
rnnkit.set_num_threads(2)
import os
parent = os.getpid()

def work(_):
    y, _, ctx = F.forward("lstm", x, W, backend=backend)
    dx = F.backward(ctx, np.ones_like(y))[0]
    if backend == "cpp" and os.getpid() != parent:  # libgomp's threads did not come along
        from rnnkit._native import core
        assert not core.using_host_openmp(), "a forked child ran on the host's OpenMP threads"
    return float(y.sum()), float(dx.sum())

want = work(0)
if backend == "cpp" and "torch_openmp" not in sys.argv[2:]:
    from rnnkit._native import core
    assert core.pool_threads() >= 1, "the parent call did not use the pool"
with mp.get_context("fork").Pool(2) as pool:
    got = pool.map_async(work, range(4)).get(timeout=60)
assert got == [want] * 4, (got, want)
if "dataloader" in sys.argv[2:]:
    import torch
    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            return torch.tensor(work(i))
    out = list(torch.utils.data.DataLoader(Data(), batch_size=2, num_workers=2))
    assert torch.cat(out).tolist() == [list(want)] * 4, out
print("ok")
"""


def _run_script(script, *args, timeout=240):
    import subprocess
    import sys

    try:
        r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                           timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hung: no result after {timeout} s (stderr: {e.stderr!r})")
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


_NO_BLAS_POOL_SCRIPT = r"""
import os, sys
want = sys.argv[1]
if want == "unset":
    os.environ.pop("OPENBLAS_NUM_THREADS", None)
else:
    os.environ["OPENBLAS_NUM_THREADS"] = want
import numpy as np  # (its own OpenBLAS starts its threads here, before rnnkit)
before = set(os.listdir("/proc/self/task"))
from rnnkit._native import core
new = set(os.listdir("/proc/self/task")) - before
assert not new, f"loading rnnkit's BLAS started threads {new}"
assert os.environ.get("OPENBLAS_NUM_THREADS", "unset") == want, os.environ.get("OPENBLAS_NUM_THREADS")
print("ok")
"""


@pytest.mark.parametrize("setting", ["unset", "4"])
def test_rnnkit_s_openblas_starts_no_thread_pool(setting):
    """The OpenBLAS both compiled backends call is loaded with one thread (rnnkit/_openblas.py): its
    workers, which spin for ~0.1 s after the library loads, would take the second core from the
    first 2-thread calls. The process's OPENBLAS_NUM_THREADS is left as it was."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import os

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc/self/task")
    _run_script(_NO_BLAS_POOL_SCRIPT, setting)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_forked_children_run_after_a_threaded_call(backend):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} unavailable")
    _run_script(_FORK_SCRIPT, backend)


def test_dataloader_workers_run_rnnkit():
    pytest.importorskip("torch")
    _run_script(_FORK_SCRIPT, rnnkit.available_backends()[0], "dataloader")


def test_forked_children_run_after_kernels_ran_on_torchs_openmp():
    """Inside torch the C++ kernels run on torch's libgomp threads (rnnkit._threads.use_torch_openmp),
    which do not survive fork: children (multiprocessing's fork pool, DataLoader workers) go back
    to rnnkit's own pool, give the parent's results and do not hang."""
    pytest.importorskip("torch")
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    _run_script(_FORK_SCRIPT, "cpp", "torch_openmp", "dataloader")


@pytest.mark.parametrize("bad, exc, fragment", [
    (2**31, ValueError, "n must be <= 4096, got 2147483648"),
    (True, TypeError, "n must be an integer, got bool True"),
    ("2", TypeError, "n must be an integer, got str"),
])  # fmt: skip
def test_set_num_threads_refuses_what_it_cannot_honour(threads, bad, exc, fragment):
    rnnkit.set_num_threads(2)
    with pytest.raises(exc, match=fragment):
        rnnkit.set_num_threads(bad)
    assert rnnkit.get_num_threads() == 2
    # a refused setting leaves the C++ backend usable wherever it is installed
    assert "cpp" in rnnkit.available_backends() or importlib.util.find_spec("rnnkit._core") is None


@pytest.mark.parametrize("env", ["abc", "0", "-3", "2147483648", "1.5"])
def test_bad_env_thread_count_warns_and_import_still_works(env):
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True, text=True,
                       env={**os.environ, "RNNKIT_NUM_THREADS": env}, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"RNNKIT_NUM_THREADS must be an integer in [1, 4096], got {env!r}" in r.stderr
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", "import rnnkit; print(rnnkit.get_num_threads())"],
                       capture_output=True, text=True, env={**os.environ, "RNNKIT_NUM_THREADS": env},
                       timeout=120)  # fmt: skip
    assert r.returncode == 0 and int(r.stdout) >= 1, r.stderr


_GNU_OMP_CHILD = """
import multiprocessing as mp, sys
import numpy as np
import numba
from rnnkit import functional as F
import rnnkit

rng = np.random.default_rng(0)
x = rng.standard_normal((20, 8, 32)).astype(np.float32)
W = (0.1 * rng.standard_normal((256, 32)).astype(np.float32),
     0.1 * rng.standard_normal((256, 64)).astype(np.float32), None, None)
rnnkit.set_num_threads(2)
F.forward("lstm", x, W, backend="numba")
assert numba.threading_layer() == "omp", numba.threading_layer()

def child(_):
    try:
        F.forward("lstm", x, W, backend="numba")
    except RuntimeError as e:
        return str(e)
    return "ran"

with mp.get_context("fork").Pool(1) as pool:
    msg = pool.map_async(child, [0]).get(timeout=60)[0]
assert "forked from a process that had started Numba's GNU OpenMP" in msg and "spawn" in msg, msg
print("ok")
"""


def test_numba_under_gnu_openmp_says_why_a_forked_child_cannot_run():
    """Where the user forces Numba's GNU OpenMP layer, a forked child gets a clear error naming
    the cause and the fix, instead of being killed by libgomp."""
    import os
    import subprocess
    import sys

    if "numba" not in rnnkit.available_backends():
        pytest.skip("numba unavailable")
    from numba.np.ufunc import parallel

    try:
        from numba.np.ufunc import omppool
    except ImportError:
        pytest.skip("Numba has no OpenMP layer here")
    if getattr(omppool, "openmp_vendor", "") != "GNU":
        pytest.skip("Numba's OpenMP here is not GNU's")
    del parallel
    r = subprocess.run([sys.executable, "-c", _GNU_OMP_CHILD], capture_output=True, text=True, timeout=240,
                       env={**os.environ, "NUMBA_THREADING_LAYER": "omp"})  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


@pytest.mark.parametrize("joined", [False, True])
@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_grouped_directions_equal_separate_calls_bitwise(any_backend, cell, threads, lengths, nthreads, joined):
    """F._forward_group / _backward_group (both directions of a layer in one call, concurrently on
    the C++ backend) give bitwise what separate calls give, for every thread count; joined: both
    write into one [T, B, 2H] output (the C++ kernels at a row stride of 2H), which starts as NaN so
    that an element left unwritten (or a padded step not zeroed) shows. cuda: one call after the
    other, on CuPy arrays, y_out a CuPy array."""
    from rnnkit import functional as F

    backend, xp = any_backend, array_module(any_backend)

    fwd = make_case(cell, T=7, B=9, I=6, H=20, dtype=np.float32, lengths=lengths, seed=11)
    rev = make_case(cell, T=7, B=9, I=6, H=20, dtype=np.float32, lengths=lengths, reverse=True, seed=12)
    rev.x, rev.lengths = fwd.x, fwd.lengths
    rnnkit.set_num_threads(1)
    want = [c.run(backend) for c in (fwd, rev)]
    rnnkit.set_num_threads(nthreads)
    y_out = xp.full((7, 9, 40), np.nan, np.float32) if joined else None
    dev = [to_device((c.x, c.weights, c.state, c.dy, c.dstate_n), backend) for c in (fwd, rev)]
    runs = F._forward_group([dict(cell=cell, x=x, weights=w, state=s, lengths=c.lengths, reverse=c.reverse)
                             for (x, w, s, _, _), c in zip(dev, (fwd, rev))], backend, y_out=y_out)  # fmt: skip
    if joined:
        np.testing.assert_array_equal(to_host(y_out, backend), np.concatenate([w["y"] for w in want], axis=2))
        assert all(xp.shares_memory(y, y_out) for y, _, _ in runs)
    outs = F._backward_group([(ctx, dy, ds) for (_, _, ctx), (_, _, _, dy, ds) in zip(runs, dev)])
    runs, outs = to_host([r[:2] for r in runs], backend), to_host(outs, backend)
    for (y, sn), (dx, ds0, dw), w in zip(runs, outs, want):
        got = {"y": y, "dx": dx}
        got.update(zip(("h_n", "c_n"), sn if cell == "lstm" else (sn,)))
        got.update(zip(("dh0", "dc0"), ds0 if cell == "lstm" else (ds0,)))
        got.update(zip(("dW_ih", "dW_hh", "db_ih", "db_hh"), dw))
        for k in w:
            np.testing.assert_array_equal(got[k], w[k], err_msg=k)


def test_phase_profile_accounts_for_the_call(threads):
    """The C++ drivers' phase timers (rnnkit/profile.h): off by default and then nothing is
    counted; on, a training call charges every phase it runs, and the phases' thread-time adds up
    to about the call's wall time times the threads it used."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import time

    from rnnkit._native import core

    rnnkit.set_num_threads(1)
    case = make_case("lstm", T=40, B=16, I=64, H=64, dtype=np.float32, seed=2)
    core.profile_reset()
    case.run("cpp")
    assert not any(core.profile_read().values()), "counted while off"
    core.profile(True)
    try:
        t0 = time.perf_counter()
        case.run("cpp")
        wall = time.perf_counter() - t0
        got = core.profile_read()
    finally:
        core.profile(False)
        core.profile_reset()
    assert set(got) == {"setup", "input", "step_gemm", "pointwise", "wait", "weight_grad", "input_grad"}
    for phase in ("setup", "input", "step_gemm", "pointwise", "weight_grad", "input_grad"):
        assert got[phase] > 0, phase
    assert sum(got.values()) <= wall  # one thread: the phases lie inside the call


def test_large_outputs_are_recycled_never_shared():
    """rnnkit._core.pooled: the C++ backend's large arrays (training cache, outputs, gradients)
    come from a pool that takes a block back when its array is freed. A live array's memory is
    never handed out again; a freed one is reused by the next request of its size; a result kept
    by the caller stays as it was through later calls."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import gc

    from rnnkit import functional as F
    from rnnkit._native import core

    n = (1 << 20) + 3 * 4096 + 64  # a size no other test asks for: its blocks are these ones
    gc.collect()
    a, b = core.pooled(n), core.pooled(n)
    assert a.shape == (n,) and a.dtype == np.uint8 and a.flags.writeable
    assert not np.shares_memory(a, b)
    before = core.pool_bytes()
    st = core.pool_stats()
    if st["idle"] + st["live"] + n > st["bound"]:
        pytest.skip("the pool is full of other tests' blocks")
    addr = a.ctypes.data
    del a
    assert core.pool_bytes() == before + n
    c = core.pooled(n)
    assert c.ctypes.data == addr and core.pool_bytes() == before
    del b, c

    case = make_case("lstm", T=40, B=16, I=64, H=128, dtype=np.float32, seed=4)
    y1, _, ctx1 = F.forward("lstm", case.x, case.weights, case.state, backend="cpp")
    assert y1.nbytes >= 256 * 1024 and y1.base is not None  # from the pool
    kept = y1.copy()
    dx1 = F.backward(ctx1, case.dy, case.dstate_n)[0]
    for _ in range(3):
        y2, _, ctx2 = F.forward("lstm", case.x * 2, case.weights, case.state, backend="cpp")
        dx2 = F.backward(ctx2, case.dy, case.dstate_n)[0]
        assert not np.shares_memory(y1, y2) and not np.shares_memory(dx1, dx2)
        del y2, ctx2, dx2
    np.testing.assert_array_equal(y1, kept)


def test_pool_keeps_a_working_set_past_its_floor():
    """The pool keeps idle + in-use bytes within max(pool_limit(), the most ever in use at once):
    a working set larger than the 128 MiB floor (one training step of a long 2-layer LSTM) is
    reused whole on the next step instead of unmapped and faulted in again, and a request the
    idle blocks cannot serve evicts idle blocks so the bound holds (the pool never raises a
    program's peak above what it needed)."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import gc

    from rnnkit._native import core

    gc.collect()
    n = 3 * (core.pool_limit() // 5) + 4096 * 7 + 64  # 3 of them exceed the floor
    blocks = [core.pooled(n) for _ in range(3)]  # untouched: no page is faulted in
    addrs = sorted(b.ctypes.data for b in blocks)
    st = core.pool_stats()
    assert st["live"] >= 3 * n and st["peak_live"] >= 3 * n and st["bound"] >= 3 * n > core.pool_limit()
    del blocks
    st = core.pool_stats()
    assert st["idle"] >= 3 * n and st["idle"] + st["live"] <= st["bound"]  # all three kept
    again = [core.pooled(n) for _ in range(3)]
    assert sorted(b.ctypes.data for b in again) == addrs  # the next step gets the same blocks
    del again
    other = core.pooled(2 * n)  # no idle block of this size: idle ones are freed to make room
    st = core.pool_stats()
    assert st["idle"] + st["live"] <= st["bound"]
    if st["bound"] < 5 * n:  # not raised past both by another test's peak: some were evicted
        assert st["idle"] < 3 * n
    del other
    st = core.pool_stats()
    assert st["idle"] + st["live"] <= st["bound"]


def test_training_steps_fault_no_pages():
    """Repeated training steps whose backward workspace (dgates, [N, 4H]) is larger than what a
    thread keeps (64 MiB) take it from the recycling pool: after the first steps no call faults
    pages in (before: one fresh 72 MB mapping a backward, 17.6k minor faults a step)."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import resource

    from rnnkit import functional as F

    T, B, I, H = 2200, 32, 8, 64  # N * 4H * 4 bytes = 72 MB
    case = make_case("lstm", T=T, B=B, I=I, H=H, dtype=np.float32, seed=5)

    def step():
        y, _, ctx = F.forward("lstm", case.x, case.weights, case.state, backend="cpp")
        F.backward(ctx, case.dy, case.dstate_n)

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 2000, faults  # a 72 MB buffer faulted in afresh is 17.6k


# Both threads pinned to one CPU: every barrier of a call with small steps waits for a thread that
# is not running (as beside another spinning thread pool, or under a CPU quota).
_CONTENDED_SCRIPT = r"""
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
import numpy as np
import rnnkit
from rnnkit import functional as F
from rnnkit._native import core

def run(T, B, H, threads):
    rnnkit.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, 40), dtype=np.float32)
    W = (rng.standard_normal((4 * H, 40), dtype=np.float32) * 0.1,
         rng.standard_normal((4 * H, H), dtype=np.float32) * 0.1,
         rng.standard_normal(4 * H, dtype=np.float32), rng.standard_normal(4 * H, dtype=np.float32))
    y, (h, c), ctx = F.forward("lstm", x, W, training=True, backend="cpp")
    dx, (dh0, dc0), dw = F.backward(ctx, np.ones_like(y))
    return [y, h, c, dx, dh0, dc0, *dw]

want = run(50, 1, 128, 1)  # B1 H128: 64 Ki multiply-adds per step, marginal on two threads
assert core.contention() == {"contended": 0, "demoted": 0, "left_us": 0}, core.contention()
for _ in range(12):
    for a, b in zip(run(50, 1, 128, 2), want):
        np.testing.assert_array_equal(a, b)
c = core.contention()
assert c["contended"] >= 1 and c["demoted"] >= 1, c
# Larger steps back off too while contended (half the threads), with the same results.
big = run(4, 4, 256, 1)
for _ in range(3):
    for a, b in zip(run(4, 4, 256, 2), big):
        np.testing.assert_array_equal(a, b)
print("ok")
"""


def test_small_steps_back_off_to_one_thread_when_contended():
    """A call whose steps are only marginally worth two threads (rnnkit/sequence.cpp, Contention)
    and whose barrier waits outlast the spin makes the next calls run on fewer threads, with the
    same results bitwise (larger steps too)."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import os

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity")
    _run_script(_CONTENDED_SCRIPT)


_LARGE_STEPS_SCRIPT = r"""
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
import numpy as np
import rnnkit
from rnnkit import functional as F
from rnnkit._native import core

rnnkit.set_num_threads(2)
rng = np.random.default_rng(0)
H = 256  # B16 H256: 4 Mi multiply-adds per step, far from marginal
x = rng.standard_normal((16, 16, 64), dtype=np.float32)
W = (rng.standard_normal((4 * H, 64), dtype=np.float32) * 0.1, rng.standard_normal((4 * H, H), dtype=np.float32) * 0.1,
     None, None)
want = F.forward("lstm", x, W, training=False, backend="cpp")[0]
# the first call of its size faults in fresh workspace: its waits are not evidence
assert core.contention()["contended"] == 0, core.contention()
y = F.forward("lstm", x, W, training=False, backend="cpp")[0]
# both threads on one CPU: each step's waiter sleeps longer than it worked, the call is contended
assert core.contention()["contended"] == 1, core.contention()
np.testing.assert_array_equal(y, want)
print("ok")
"""


def test_large_steps_count_only_waits_longer_than_the_work():
    """A barrier wait that sleeps counts against two threads (rnnkit/sequence.cpp, Contention) only
    when it outlasts the waiter's own work since its previous wait: an uneven split of long steps
    (one vCPU slower than the other) is not contention, a thread descheduled for longer than a step
    is. Timed with two threads busy for fixed times per step, then on a real call."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import os

    from rnnkit._native import core

    if len(os.sched_getaffinity(0)) >= 2:
        uneven = core.barrier_waits(5000, 5500, 10)  # the waiter works 5 ms, waits 0.5 ms
        assert uneven["phases"] == 10 and uneven["slept"] >= 5 and uneven["slept_longer"] <= 2, uneven
        slow = core.barrier_waits(300, 3000, 10)  # the waiter works 0.3 ms, waits 2.7 ms
        assert slow["slept_longer"] >= 5, slow
    if hasattr(os, "sched_setaffinity"):
        _run_script(_LARGE_STEPS_SCRIPT)


def test_thread_limit_is_per_python_thread_and_nests():
    from rnnkit import _threads

    n = rnnkit.get_num_threads()
    assert _threads.call_threads() == n and _threads.call_cap() == 0
    seen = {}
    with _threads.limit(3):
        assert _threads.call_cap() == 3 and _threads.call_threads() == min(3, n)
        with _threads.limit(5):  # nested: the smaller cap stays
            assert _threads.call_cap() == 3
        with _threads.limit(1):
            assert _threads.call_threads() == 1
            t = __import__("threading").Thread(target=lambda: seen.update(other=_threads.call_cap()))
            t.start()
            t.join()
        assert _threads.call_cap() == 3
    assert _threads.call_cap() == 0 and seen == {"other": 0}  # another Python thread is not capped
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        with _threads.limit(0):
            pass


@pytest.mark.parametrize("torch_threads", [1, 2])
def test_torch_modules_follow_torch_set_num_threads(backend, monkeypatch, torch_threads):
    """rnnkit.torch's kernels run on at most torch.get_num_threads() threads, like torch.nn's: the
    cap reaches the C++ call (its last argument) and numba's thread count inside the call, in the
    forward and the backward; results do not change with it."""
    torch = pytest.importorskip("torch")
    if backend == "numpy":
        pytest.skip("the reference runs no threads of its own")
    import rnnkit.torch as rt

    seen = []
    if backend == "cpp":
        from rnnkit import _cpp

        real = _cpp._core

        class Recorder:
            def __getattr__(self, name):
                fn = getattr(real, name)
                if name not in ("forward", "backward", "forward_group", "backward_group"):
                    return fn

                at = 22 if name.startswith("forward") else 26  # threads, in _core's argument order

                def call(*args):
                    caps = [c[at] for c in args[0]] if name.endswith("group") else [args[at]]
                    seen.extend((name, cap) for cap in caps)
                    return fn(*args)

                return call

        monkeypatch.setattr(_cpp, "_core", Recorder())
    else:
        import numba

        from rnnkit import _numba

        for name in ("sequence_forward", "sequence_backward", "sequence_forward_serial", "sequence_backward_serial"):
            real_fn = getattr(_numba, name)

            def call(*args, _real=real_fn, _name=name):
                seen.append((_name, numba.get_num_threads()))
                return _real(*args)

            monkeypatch.setattr(_numba, name, call)
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        lstm = rt.LSTM(8, 64, backend=backend).double()
        x = torch.randn(5, 3, 8, dtype=torch.float64, requires_grad=True)
        y, _ = lstm(x)
        y.sum().backward()
    finally:
        torch.set_num_threads(before)
    assert {cap for _, cap in seen} == {min(torch_threads, rnnkit.get_num_threads())}, seen
    assert {"backward" if "backward" in n else "forward" for n, _ in seen} == {"forward", "backward"}, seen
    ref = torch.nn.LSTM(8, 64).double()
    ref.load_state_dict(lstm.state_dict())
    assert_close("y", y.detach().numpy(), ref(x)[0].detach().numpy())


def test_kernels_on_torchs_openmp_threads_give_the_pools_results_bitwise():
    """In a process that imported torch the threaded C++ calls run on torch's OpenMP threads (from
    ``import rnnkit.torch``, or the first call after ``import torch``); their results equal those of
    rnnkit's own pool bitwise (the split of the work is the same), and RNNKIT_TORCH_OPENMP=0 keeps
    rnnkit's pool."""
    pytest.importorskip("torch")
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    import os
    import subprocess
    import sys

    from rnnkit import _threads
    from rnnkit._native import core

    importlib.import_module("rnnkit.torch")
    assert core.using_host_openmp()
    case = make_case("lstm", T=6, B=40, I=30, H=100, dtype=np.float32, lengths="spread", seed=8, scale=0.15)
    old = rnnkit.get_num_threads()
    rnnkit.set_num_threads(2)
    try:
        on_torch = case.run("cpp")
        assert core.use_host_openmp(None) is False and not core.using_host_openmp()
        on_pool = case.run("cpp")
    finally:
        _threads.use_torch_openmp()
        rnnkit.set_num_threads(old)
    assert core.using_host_openmp()
    for k in on_pool:
        np.testing.assert_array_equal(on_torch[k], on_pool[k], err_msg=k)
    script = "import rnnkit.torch\nfrom rnnkit._native import core\nassert not core.using_host_openmp()\nprint('ok')"
    env = dict(os.environ, RNNKIT_TORCH_OPENMP="0")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    # the NumPy API too, in a process that imported torch (after rnnkit): from its next call on
    script = ("import numpy as np, rnnkit\nfrom rnnkit import functional as F\nfrom rnnkit._native import core\n"
              "x = np.zeros((2, 40, 30), np.float32); W = (np.zeros((400, 30), np.float32), np.zeros((400, 100), np.float32), None, None)\n"
              "F.forward('lstm', x, W, backend='cpp'); assert not core.using_host_openmp()\n"
              "import torch\nF.forward('lstm', x, W, backend='cpp'); assert core.using_host_openmp()\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
