"""The single matrix every backend passes: forward outputs, final states and every gradient against
the NumPy reference computed in float64, for each cell, dtype and awkward case."""

import numpy as np
import pytest
from _helpers import assert_close, make_case

from rnnkit import functional as F

CASES = {
    "plain": dict(),
    "lengths": dict(T=9, B=6, lengths="spread"),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(T=9, B=6, lengths="spread", reverse=True),
    "zero_lengths": dict(B=3, lengths=[0, 0, 0]),
    "B1": dict(B=1),
    "T1": dict(T=1, lengths=[1, 0, 1]),
    "B0": dict(B=0),
    "T0": dict(T=0),
    "H1": dict(H=1),
    "H17": dict(H=17, I=5, B=5, lengths="spread", reverse=True),
    "H100": dict(H=100, I=33, B=7, T=6, lengths="spread"),
    "no_bias": dict(bias="none"),
    "only_b_hh": dict(bias="hh", lengths=[3, 5, 1]),
    "zero_state": dict(state=False),
    "wide_batch": dict(B=37, T=4, H=9, I=2, lengths="spread"),
    "I0": dict(I=0, lengths=[5, 0, 2]),
    # T*B*I above the C++ backend's limit for its own kernel: the input projection goes to BLAS
    "big_input": dict(T=8, B=64, I=260, H=8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_backend_matches_reference(backend, cell, dtype, name):
    case = make_case(cell, dtype=dtype, seed=7, **CASES[name])
    want = case.astype(np.float64).run("numpy")
    got = case.run(backend)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == dtype, f"{k}: dtype {got[k].dtype}, expected {dtype}"
        assert_close(k, got[k], want[k], dtype)


@pytest.mark.parametrize("lengths", [None, "spread"])
def test_inference_matches_training_and_keeps_nothing(backend, cell, dtype, lengths):
    case = make_case(cell, T=7, B=5, H=6, dtype=dtype, lengths=lengths, seed=11)
    y_t, s_t, ctx = case.forward(backend, training=True)
    y_i, s_i, none = case.forward(backend, training=False)
    assert none is None and ctx is not None
    np.testing.assert_array_equal(y_i, y_t)
    for a, b in zip(s_i if cell == "lstm" else (s_i,), s_t if cell == "lstm" else (s_t,)):
        np.testing.assert_array_equal(a, b)


def test_results_are_identical_run_to_run(backend, cell):
    case = make_case(cell, T=12, B=9, I=20, H=33, dtype=np.float32, lengths="spread", seed=5)
    first, second = case.run(backend), case.run(backend)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k], err_msg=k)


def test_nan_propagates_without_crashing(backend, cell, dtype):
    case = make_case(cell, T=4, B=3, dtype=dtype, seed=2)
    case.x[1, 0, 0] = np.nan
    got = case.run(backend)
    assert np.isnan(got["y"][1:, 0]).all(), "NaN in x[1, 0] must reach y[t>=1, 0]"
    assert np.isfinite(got["y"][:, 1:]).all(), "other sequences stay finite"
    assert np.isnan(got["dW_ih"]).any()


def test_non_contiguous_inputs_are_accepted(backend, cell):
    case = make_case(cell, T=5, B=4, I=6, H=5, seed=9)
    want = case.run("numpy")
    x_nc = np.asfortranarray(case.x)
    W_ih_nc = np.ascontiguousarray(np.repeat(case.weights[0], 2, axis=1))[:, ::2]
    assert not x_nc.flags.c_contiguous and not W_ih_nc.flags.c_contiguous
    y, _, ctx = F.forward(cell, x_nc, (W_ih_nc,) + case.weights[1:], case.state, backend=backend)
    assert_close("y", y, want["y"])
    dx, _, dw = F.backward(ctx, np.asfortranarray(case.dy), case.dstate_n)
    assert_close("dx", dx, want["dx"])
    assert_close("dW_ih", dw[0], want["dW_ih"])


def test_backward_can_run_twice_on_one_ctx(backend, cell):
    case = make_case(cell, seed=4)
    _, _, ctx = case.forward(backend)
    a = F.backward(ctx, case.dy, case.dstate_n)
    b = F.backward(ctx, case.dy, case.dstate_n)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2][0], b[2][0])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_return_states_is_the_state_after_every_step(backend, cell, reverse, training):
    """h_t (and c_t) after step t equals the final state of the sequence cut right after step t:
    x[:t+1] forward, x[t:] in reverse; padded steps keep the state (h0 before a reverse start)."""
    case = make_case(cell, T=6, B=4, lengths=[6, 3, 0, 5], reverse=reverse, seed=12)
    y, state_n, ctx, states = F.forward(cell, case.x, case.weights, case.state, lengths=case.lengths,
                                        reverse=reverse, training=training, backend=backend,
                                        return_states=True)  # fmt: skip
    assert (ctx is not None) == training
    L = case.lengths
    for t in range(6):
        if reverse:
            _, want, _ = F.forward(cell, case.x[t:], case.weights, case.state, lengths=np.maximum(L - t, 0),
                                   reverse=True, backend="numpy")  # fmt: skip
        else:
            _, want, _ = F.forward(cell, case.x[: t + 1], case.weights, case.state, lengths=np.minimum(L, t + 1),
                                   backend="numpy")  # fmt: skip
        for name, got, ref in zip(("h", "c"), states if cell == "lstm" else (states,),
                                  want if cell == "lstm" else (want,)):  # fmt: skip
            assert_close(f"{name}[{t}]", got[t], ref)
