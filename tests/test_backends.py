"""The single matrix every backend passes: forward outputs, final states and every gradient against
the NumPy reference computed in float64, for each cell, dtype and awkward case. "cuda" runs it too,
on the case's arrays as CuPy arrays (_helpers.Case, to_device), skipping with the reason where no GPU
is usable."""

import numpy as np
import pytest
from _helpers import GPU_BACKENDS, array_module, assert_close, make_case, to_device, to_host

from rnnkit import functional as F


@pytest.fixture
def backend(any_backend):
    """Every backend, the GPU one included (a host-only check skips it by name)."""
    return any_backend

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
    xp = array_module(backend)  # the views are made where the backend takes its arrays
    x_nc = xp.asfortranarray(xp.asarray(case.x))
    W_ih_nc = xp.ascontiguousarray(xp.repeat(xp.asarray(case.weights[0]), 2, axis=1))[:, ::2]
    assert not x_nc.flags.c_contiguous and not W_ih_nc.flags.c_contiguous
    rest, state = to_device((case.weights[1:], case.state), backend)
    y, _, ctx = F.forward(cell, x_nc, (W_ih_nc,) + rest, state, backend=backend)
    assert_close("y", to_host(y, backend), want["y"])
    dy_nc = xp.asfortranarray(xp.asarray(case.dy))
    dx, _, dw = to_host(F.backward(ctx, dy_nc, to_device(case.dstate_n, backend)), backend)
    assert_close("dx", dx, want["dx"])
    assert_close("dW_ih", dw[0], want["dW_ih"])


def test_backward_can_run_twice_on_one_ctx(backend, cell):
    case = make_case(cell, seed=4)
    _, _, ctx = case.forward(backend)
    a = case.backward(ctx, backend)
    b = case.backward(ctx, backend)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2][0], b[2][0])


def _flat_grads(result):
    """backward's (dx, dstate0, dweights) as a flat list (None kept)."""
    dx, ds0, dw = result
    return [dx, *(ds0 if isinstance(ds0, tuple) else (ds0,)), *dw]


@pytest.mark.parametrize("name", ["plain", "lengths_reverse", "T1", "B1", "B0", "H100", "no_bias", "wide_batch"])
def test_backward_without_input_grad_leaves_the_other_gradients_unchanged(backend, cell, dtype, name):
    case = make_case(cell, dtype=dtype, seed=7, **CASES[name])
    _, _, ctx = case.forward(backend)
    full = _flat_grads(case.backward(ctx, backend))
    part = _flat_grads(case.backward(ctx, backend, input_grad=False))
    assert full[0] is not None and part[0] is None
    for k, (a, b) in enumerate(zip(full[1:], part[1:])):
        assert (a is None) == (b is None), k
        if a is not None:
            np.testing.assert_array_equal(b, a, err_msg=f"gradient {k + 1}")


@pytest.mark.parametrize("lengths", [None, "spread"])
def test_dy_may_be_a_direction_s_columns_of_a_wider_array(backend, cell, dtype, lengths):
    # the NumPy layers and rnnkit.torch pass each direction's half of a bidirectional layer's
    # gradient as it is (the C++ backend reads its rows in place, the others get a copy)
    case = make_case(cell, T=6, B=5, I=4, H=7, dtype=dtype, lengths=lengths, seed=3)
    _, _, ctx = case.forward(backend)
    want = _flat_grads(case.backward(ctx, backend))
    xp = array_module(backend)
    wide = xp.asarray(np.concatenate([np.full_like(case.dy, np.nan), case.dy], axis=2))
    dy = wide[..., case.dy.shape[2]:]
    assert not dy.flags.c_contiguous
    got = _flat_grads(to_host(F.backward(ctx, dy, to_device(case.dstate_n, backend)), backend))
    for k, (a, b) in enumerate(zip(want, got)):
        if a is not None:
            np.testing.assert_array_equal(b, a, err_msg=f"gradient {k}")


def test_the_cpp_backward_without_input_grad_skips_its_product():
    pytest.importorskip("rnnkit._core")
    from rnnkit._native import core

    case = make_case("lstm", T=20, B=16, I=64, H=32, dtype=np.float32, seed=1)
    _, _, ctx = case.forward("cpp")
    spent = {}
    for want in (True, False):
        core.profile(True)
        core.profile_reset()
        try:
            case.backward(ctx, "cpp", input_grad=want)
        finally:
            core.profile(False)
        spent[want] = core.profile_read()["input_grad"]
    # (the phase's timer still runs around the skipped loop: a few clock reads)
    assert spent[True] > 0 and spent[False] < 0.05 * spent[True], spent


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_return_states_is_the_state_after_every_step(backend, cell, reverse, training):
    """h_t (and c_t) after step t equals the final state of the sequence cut right after step t:
    x[:t+1] forward, x[t:] in reverse; padded steps keep the state (h0 before a reverse start)."""
    case = make_case(cell, T=6, B=4, lengths=[6, 3, 0, 5], reverse=reverse, seed=12)
    x, weights, state = to_device((case.x, case.weights, case.state), backend)
    y, state_n, ctx, states = F.forward(cell, x, weights, state, lengths=case.lengths,
                                        reverse=reverse, training=training, backend=backend,
                                        return_states=True)  # fmt: skip
    states = to_host(states, backend)
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


def _ulp_error(got, want, dtype):
    """|got - want| in units of the dtype's epsilon relative to |want|; below the smallest normal
    number, absolute (in units of that number)."""
    fi = np.finfo(dtype)
    got, want = got.astype(np.float64), want.astype(np.float64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(np.abs(want) >= fi.tiny, np.abs(got - want) / np.maximum(np.abs(want), fi.tiny) / fi.eps,
                       np.abs(got - want) / fi.tiny)  # fmt: skip
    return np.where(same, 0.0, np.nan_to_num(err, nan=np.inf, posinf=np.inf))


def _activation_of(backend, kind, x):
    """exp / sigmoid / tanh of x as the backend's kernels compute them (cpp: the active ISA)."""
    v = x.copy()
    if backend == "cpp":
        from rnnkit._native import core

        core.activation(("exp", "sigmoid", "tanh").index(kind), v)
        return v
    from numba import njit

    from rnnkit._numba import activations as A

    k, s = np.empty_like(v), np.empty_like(v)
    if kind == "exp":
        njit(lambda v, k: A.exp_inplace(v, k))(v, k)
    elif kind == "sigmoid":
        A.sigmoid_inplace(v, k)
    else:
        A.tanh_inplace(v, k, s)
    return v


@pytest.mark.parametrize("kind", ["exp", "sigmoid", "tanh"])
def test_activations_are_accurate_over_the_whole_range(backend, dtype, kind):
    """Relative error against NumPy in float64 on magnitudes 1e-30 .. 1e3 of both signs, plus 0,
    the saturation region, ±max, ±inf and NaN: tanh near 0 lost its relative accuracy (11% at
    1e-7, 0 below 1e-8), and the clamped exp kept sigmoid from reaching 0 and 1."""
    if backend == "numpy":
        pytest.skip("the reference is NumPy's own functions")
    if backend in GPU_BACKENDS:
        pytest.skip("the CUDA kernels' activations (cpp/cuda/cell.h) are checked through the cells, here and on "
                    "the host by tests/test_cuda_host.py")
    fi = np.finfo(dtype)
    mags = np.logspace(-30, 3, 4001)
    x = np.concatenate([mags, -mags, [0.0, 1e30, -1e30, np.inf, -np.inf, np.nan]]).astype(dtype)
    x = np.concatenate([x, np.array([fi.max, -fi.max], dtype)])
    with np.errstate(over="ignore"):
        x64 = x.astype(np.float64)
        want = {"exp": np.exp(x64), "sigmoid": 1 / (1 + np.exp(-x64)), "tanh": np.tanh(x64)}[kind]
        want = want.astype(dtype)  # the correctly rounded result in dtype (0 and inf where they saturate)
    if kind == "exp":  # exp saturates to inf from 88.3 (float32) / 709 (float64), a little before
        want[x > (88.3 if dtype == np.float32 else 709.0)] = np.inf  # the dtype's own overflow
    got = _activation_of(backend, kind, x)
    err = _ulp_error(got, want, dtype)
    worst = int(np.argmax(err))
    limit = {"exp": 4, "sigmoid": 4, "tanh": 4}[kind]
    assert err[worst] <= limit, (
        f"{kind}({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}: {err[worst]:.3g} ulp (limit {limit})"
    )
    assert np.isnan(got[np.isnan(x)]).all()


def test_saturated_gates_pass_no_gradient(backend, dtype):
    """A forget gate driven to exactly 0 (pre-activation -1e30) with huge cell states: with the old
    clamped exp, sigmoid stayed ~1e-38 above 0 and dW_hh came out 6.7e21 where the reference and
    torch give 0 contributions through that gate."""
    case = make_case("lstm", T=4, B=3, I=5, H=4, dtype=dtype, seed=5)
    W_ih, W_hh, b_ih, b_hh = case.weights
    b_ih = b_ih.copy()
    b_ih[4:8] = -1e30  # the forget gate, units 0..3
    h0, c0 = case.state
    case.weights = (W_ih, W_hh, b_ih, b_hh)
    case.state = (h0, np.full_like(c0, 1e30))
    got = case.run(backend)
    want = case.astype(np.float64).run("numpy")
    for k in want:
        assert np.isfinite(got[k]).all(), k
        assert_close(k, got[k], want[k], dtype)


def test_infinite_inputs_give_what_the_reference_gives(backend, cell):
    """±inf in x: the gates saturate; the gradients are NaN exactly where the reference's are
    (0 * inf in dW_ih), not ±inf."""
    case = make_case(cell, T=3, B=2, I=4, H=3, dtype=np.float64, seed=6)
    case.x = case.x.copy()
    case.x[1, 0, 2] = np.inf
    case.x[2, 1, 0] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        got = case.run(backend)
        want = case.run("numpy")
    for k in want:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=f"{k}: NaN pattern")
        fin = np.isfinite(want[k])
        np.testing.assert_array_equal(np.isinf(got[k]), np.isinf(want[k]), err_msg=f"{k}: inf pattern")
        assert_close(k, got[k][fin], want[k][fin], np.float64)


@pytest.fixture
def blas_limit(backend, monkeypatch):
    """Sets the largest M or K of one BLAS call of the backend to a small number."""

    def set_limit(n):
        if backend == "cpp":
            from rnnkit._native import core

            core.set_blas_limit(n)
        elif backend == "numba":
            from rnnkit._numba import blas

            monkeypatch.setattr(blas, "LIMIT", n)

    yield set_limit
    if backend == "cpp":
        from rnnkit._native import core

        core.set_blas_limit(0)


@pytest.mark.parametrize("lengths", [None, "spread"])
def test_products_are_cut_to_the_blas_int_limit(backend, cell, blas_limit, lengths):
    """The BLAS takes 32-bit sizes: the input projection (M = sum of lengths) and the weight
    gradients (K = sum of lengths) past 2^31 were handed over truncated. With the limit set to 37
    the same cutting runs on a small problem (big_input: the input projection goes to the BLAS)."""
    if backend == "numpy":
        pytest.skip("the reference calls no BLAS of rnnkit's")
    if backend in GPU_BACKENDS:
        pytest.skip("cuBLAS takes 64-bit sizes (the *gemm_64 calls): nothing is cut")
    case = make_case(cell, T=8, B=64, I=260, H=8, dtype=np.float64, lengths=lengths, seed=9)
    whole = case.run(backend)
    blas_limit(37)
    cut = case.run(backend)
    want = case.run("numpy")
    for k in want:
        assert_close(k, cut[k], want[k], np.float64)
        assert_close(k, cut[k], whole[k], np.float64)


def test_results_do_not_depend_on_the_calling_thread(backend, cell):
    """The same call from the main thread, from a worker thread, and from four threads at once gives
    bitwise the same results (numba differed by 1.8e-7 in a worker thread: SciPy's BLAS thread
    setting, process-wide, was set and restored per call)."""
    from concurrent.futures import ThreadPoolExecutor

    case = make_case(cell, T=6, B=40, I=300, H=64, dtype=np.float32, lengths="spread", seed=10)
    serial = case.run(backend)
    with ThreadPoolExecutor(1) as ex:
        other = ex.submit(case.run, backend).result()
    with ThreadPoolExecutor(4) as ex:
        many = list(ex.map(lambda _: case.run(backend), range(8)))
    for got in [other] + many:
        for k in serial:
            np.testing.assert_array_equal(got[k], serial[k], err_msg=k)
