"""The thread setting: one knob for every backend, and results that do not depend on it.
Problems here are big enough (B*G*H*H per step) for the C++ kernels to really use two threads."""

import numpy as np
import pytest
from _helpers import assert_close, make_case

import rnnkit


@pytest.fixture
def threads():
    old = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(old)


@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_two_threads_match_one_bitwise(backend, cell, threads, lengths, reverse):
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
