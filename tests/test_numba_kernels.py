"""The Numba backend's own kernels, below the functional contract that test_backends.py checks:
the per-step product against NumPy on every path (tiles with their clamped edges, the one- and
two-row axpy form, offsets, accumulation, K panels), exp/sigmoid/tanh (accuracy, NaN with any
payload, infinities), and the parallel paths forced on small problems (unit blocks, BLAS panels)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rnnkit
from _helpers import assert_close, make_case

pytestmark = pytest.mark.skipif(
    "numba" not in rnnkit.available_backends(), reason="numba backend unavailable"
)


@pytest.fixture(scope="module")
def nb():
    from rnnkit import _numba
    from rnnkit._numba import activations, gemm

    return _numba, gemm, activations


# M rows: 1-2 take the axpy form, 3+ the 6x2 tiles (7, 16: a partial last tile); n odd: a clamped
# column; K 1300 > KC: two k panels; n 100 > NC: several W panels.
@pytest.mark.parametrize("M,K,n", [(1, 7, 5), (2, 64, 33), (3, 5, 1), (5, 40, 9), (7, 300, 17), (16, 1300, 100),
                                   (6, 0, 4), (1, 0, 3)])  # fmt: skip
@pytest.mark.parametrize("accumulate", [False, True])
def test_step_product_matches_numpy(nb, dtype, M, K, n, accumulate):
    _, gemm, _ = nb
    rng = np.random.default_rng(M * 1000 + K)
    w0, o0 = 3, 2  # W rows w0..w0+n, out columns o0..o0+n; the rest must stay untouched
    X = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((w0 + n + 4, K)).astype(dtype)
    out = rng.standard_normal((M + 1, o0 + n + 3)).astype(dtype)
    before = out.copy()
    gemm.step_product(X, W, np.ascontiguousarray(W.T), w0, out, o0, n, accumulate)
    want = before.copy()
    prod = X.astype(np.float64) @ W[w0 : w0 + n].astype(np.float64).T
    want[:M, o0 : o0 + n] = prod + (before[:M, o0 : o0 + n] if accumulate else 0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(1, np.sqrt(K)))
    outside = np.ones(out.shape, bool)
    outside[:M, o0 : o0 + n] = False
    np.testing.assert_array_equal(out[outside], before[outside])


def test_exp_accuracy_and_special_values(nb, dtype):
    _, _, act = nb
    x = np.concatenate([np.linspace(-80, 80, 20001), [0.0, -0.0, 1e-30, -1e-30]]).astype(dtype)
    v, k = x.copy(), np.empty_like(x)
    _call_exp(act, v, k)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(v - want) / want
    assert rel.max() < (4e-7 if dtype == np.float32 else 1e-15), rel.max()
    # NaN with any payload stays NaN; -inf -> ~0, +inf -> huge (clamped), never NaN
    ibits = np.uint32 if dtype == np.float32 else np.uint64
    quiet = np.array([np.nan], dtype).view(ibits)[0]
    sign = ibits(1) << ibits(8 * dtype.itemsize - 1)
    # payloads in the low bits: a careless 2^k step through the exponent bits turns them into numbers
    nans = np.array([quiet, quiet | sign, quiet | ibits(1), quiet | ibits(0x1FF), quiet | sign | ibits(0x155)],
                    ibits).view(dtype)  # fmt: skip
    assert np.isnan(nans).all()
    v = np.concatenate([nans, np.array([-np.inf, np.inf], dtype)])
    k = np.empty_like(v)
    _call_exp(act, v, k)
    assert np.isnan(v[: len(nans)]).all(), v
    assert 0 <= v[-2] < 1e-30 and v[-1] > 1e30


def _call_exp(act, v, k):
    from numba import njit

    @njit
    def run(v, k):
        act.exp_inplace(v, k)

    run(v, k)


def test_sigmoid_tanh(nb, dtype):
    _, _, act = nb
    x = np.concatenate([np.linspace(-30, 30, 6001), [np.nan, np.inf, -np.inf]]).astype(dtype)
    s, k = x.copy(), np.empty_like(x)
    act.sigmoid_inplace(s, k)
    t, sc = x.copy(), np.empty_like(x)
    act.tanh_inplace(t, k, sc)
    x64 = x.astype(np.float64)
    tol = 3e-7 if dtype == np.float32 else 1e-15
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(s[:-3], 1 / (1 + np.exp(-x64[:-3])), rtol=tol, atol=tol)
    np.testing.assert_allclose(t[:-3], np.tanh(x64[:-3]), rtol=tol, atol=tol)
    assert np.isnan(s[-3]) and np.isnan(t[-3])
    assert s[-2] == 1 and s[-1] < 1e-30 and t[-2] == 1 and t[-1] == -1


@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_forced_blocks_and_panels(nb, monkeypatch, cell, lengths, reverse):
    """Small problems split into unit blocks and BLAS panels anyway: same results as one block and
    one product (bitwise for the blocks: they do not change what a unit sums), and right."""
    _numba, _, _ = nb
    case = make_case(
        cell, T=7, B=9, I=11, H=40, dtype=np.float32, lengths=lengths, reverse=reverse, seed=3
    )
    old = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        one = case.run("numba")
        rnnkit.set_num_threads(2)
        monkeypatch.setattr(_numba, "MIN_STEP_WORK_PER_THREAD", 1)
        import numba

        assert len(_numba._blocks(9, 40, 4)) - 1 == min(2, numba.config.NUMBA_NUM_THREADS)
        blocks = case.run("numba")
        monkeypatch.setattr(_numba, "MIN_PANELLED_WORK", 1)
        panels = case.run("numba")
    finally:
        rnnkit.set_num_threads(old)
    want = case.astype(np.float64).run("numpy")
    for k in one:
        np.testing.assert_array_equal(
            one[k], blocks[k], err_msg=f"{k}: unit blocks changed the result"
        )
        assert_close(k, panels[k], want[k], np.float32)


def test_read_only_inputs_use_the_same_compiled_code(nb):
    """A read-only x or weight (writeable=False, a read-only memmap, np.frombuffer) was a new Numba
    type and compiled again for a minute: the adapter hands the kernels read-only views of every
    input, so one signature serves all."""
    _numba, _, _ = nb
    from rnnkit._numba import sequence

    case = make_case("lstm", T=3, B=2, I=4, H=5, dtype=np.float32, seed=3)
    case.run("numba")
    before = (len(sequence.sequence_forward_serial.signatures), len(sequence.sequence_backward_serial.signatures))

    def ro(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    case.x = ro(case.x)
    case.weights = tuple(ro(w) for w in case.weights)
    case.dy = ro(case.dy)
    got = case.run("numba")
    after = (len(sequence.sequence_forward_serial.signatures), len(sequence.sequence_backward_serial.signatures))
    assert after == before
    want = case.astype(np.float64).run("numpy")
    for k in want:
        assert_close(k, got[k], want[k], np.float32)


def test_kernels_release_the_gil(nb):
    from rnnkit._numba import sequence

    for f in (sequence.sequence_forward, sequence.sequence_backward, sequence.sequence_forward_serial,
              sequence.sequence_backward_serial):
        assert f.targetoptions.get("nogil") is True, f


def test_cache_is_keyed_on_every_source_file_of_the_package(nb, tmp_path):
    """Numba keyed each function on its own file: a change in activations.py left sequence.py's
    cached drivers running the old activations. Every kernel is now keyed on one stamp of all the
    package's files."""
    import shutil

    from rnnkit._numba import _cache, sequence

    if _cache.CACHE:
        assert sequence.sequence_forward._cache._impl.locator.get_source_stamp() == _cache._STAMP
    for name in os.listdir(_cache._HERE):
        if name.endswith(".py"):
            shutil.copy(os.path.join(_cache._HERE, name), tmp_path / name)
    assert _cache.package_stamp(str(tmp_path)) == _cache._STAMP
    with open(tmp_path / "activations.py", "a") as f:
        f.write("\n# changed\n")
    assert _cache.package_stamp(str(tmp_path)) != _cache._STAMP


def test_unwritable_cache_falls_back_to_compiling(tmp_path):
    """With no writable directory anywhere (a read-only install and HOME), the backend imports and
    warns instead of failing with Numba's 'cannot cache function ... no locator'."""
    import subprocess
    import sys

    code = (
        "import tempfile, warnings\n"
        "def refuse(*a, **k): raise OSError('read-only')\n"
        "tempfile.TemporaryFile = refuse\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from rnnkit._numba import _cache, sequence\n"
        "assert _cache.CACHE is False\n"
        "assert any('no writable directory' in str(x.message) for x in w), [str(x.message) for x in w]\n"
        "import rnnkit; assert 'numba' in rnnkit.available_backends()\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
