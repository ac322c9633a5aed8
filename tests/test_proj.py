"""The LSTM with projections (torch's proj_size: h_t = W_hr (o * tanh(c_t)), S < H units) on every
backend: the reference against finite differences and torch.nn.LSTM, every backend against the
reference over the matrix of awkward cases, inference against training, threads 1 against 2."""

import numpy as np
import pytest
from _helpers import BACKENDS, assert_close, make_case
from test_backends import CASES

import rnnkit
from rnnkit import functional as F

# H1 leaves no room for a projection (S < H); every other case of the matrix, with S about H/2.
PROJ_CASES = {k: v for k, v in CASES.items() if k != "H1"}


def _proj_case(dtype=np.float64, H=3, **kw):
    return make_case("lstm", dtype=dtype, H=H, proj=max(1, H // 2), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(PROJ_CASES))
def test_backend_matches_reference(backend, dtype, name):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    case = _proj_case(dtype=dtype, seed=7, **PROJ_CASES[name])
    want = case.astype(np.float64).run("numpy")
    got = case.run(backend)
    assert set(got) == set(want) and "dW_hr" in got
    S = case.weights[4].shape[0]
    assert got["y"].shape[2] == S and got["h_n"].shape[1] == S
    for k in want:
        assert got[k].dtype == dtype, f"{k}: dtype {got[k].dtype}, expected {dtype}"
        assert_close(k, got[k], want[k], dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_inference_matches_training(backend, lengths, reverse):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    case = _proj_case(np.float32, T=7, B=5, H=12, lengths=lengths, reverse=reverse, seed=11)
    y_t, (h_t, c_t), ctx = case.forward(backend, training=True)
    y_i, (h_i, c_i), none = case.forward(backend, training=False)
    assert none is None and ctx is not None
    for a, b in ((y_i, y_t), (h_i, h_t), (c_i, c_t)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@pytest.mark.parametrize("lengths", [None, "spread"])
def test_threads_give_bitwise_the_same(backend, lengths):
    """Large enough that a step is split over two threads (units for the gates, columns of h for
    the projection); the results must not depend on it."""
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    case = _proj_case(np.float32, T=6, B=24, I=16, H=256, lengths=lengths, reverse=True, seed=2)
    before = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        one = case.run(backend)
        rnnkit.set_num_threads(2)
        two = case.run(backend)
    finally:
        rnnkit.set_num_threads(before)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_reference_matches_finite_differences():
    case = _proj_case(np.float64, T=4, B=2, I=3, H=5, lengths=[4, 2], seed=3)
    got = case.run("numpy")

    def loss(c):
        y, (h, cc), _ = c.forward("numpy", training=False)
        dh, dc = c.dstate_n
        return float(np.sum(y * c.dy) + np.sum(h * dh) + np.sum(cc * dc))

    eps = 1e-6
    for name, a in zip(("dW_ih", "dW_hh", "db_ih", "db_hh", "dW_hr"), case.weights):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss(case)
            a[idx] = old - eps
            down = loss(case)
            a[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(got[name], num, rtol=1e-6, atol=1e-8, err_msg=name)
    for name, a in (("dx", case.x), ("dh0", case.state[0]), ("dc0", case.state[1])):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss(case)
            a[idx] = old - eps
            down = loss(case)
            a[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(got[name], num, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_torch_lstm_with_proj_size(backend):
    torch = pytest.importorskip("torch")
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    torch.manual_seed(0)
    T, B, I, H, S = 7, 3, 5, 8, 3
    m = torch.nn.LSTM(I, H, proj_size=S).double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, B, S, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)
    y, (hn, cn) = m(x, (h0, c0))
    ws = [m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0, m.weight_hr_l0]
    W = tuple(w.detach().numpy() for w in ws)
    yr, (hr, cr), ctx = F.forward("lstm", x.detach().numpy(), W, (h0[0].detach().numpy(), c0[0].detach().numpy()),
                                  backend=backend)  # fmt: skip
    for a, b in ((yr, y), (hr, hn[0]), (cr, cn[0])):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy, dh, dc = torch.randn_like(y), torch.randn_like(hn), torch.randn_like(cn)
    torch.autograd.backward([y, hn, cn], [dy, dh, dc])
    dx, (dh0, dc0), dw = F.backward(ctx, dy.numpy(), (dh[0].numpy(), dc[0].numpy()))
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0, h0.grad[0].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dc0, c0.grad[0].numpy(), rtol=1e-10, atol=1e-12)
    for g, w in zip(dw, ws):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_return_states_with_projections():
    case = _proj_case(np.float64, T=6, B=4, H=6, lengths="spread", seed=4)
    y, (h, c), _, (h_all, c_all) = F.forward("lstm", case.x, case.weights, case.state, lengths=case.lengths,
                                             training=False, backend="numpy", return_states=True)  # fmt: skip
    assert h_all.shape == (6, 4, 3) and c_all.shape == (6, 4, 6)
    last = case.lengths - 1
    for b in range(4):
        if last[b] >= 0:
            np.testing.assert_array_equal(h_all[last[b], b], h[b])
            np.testing.assert_array_equal(c_all[last[b], b], c[b])


@pytest.mark.parametrize(
    "weights, state, message",
    [
        ("S_equals_H", None, r"W_hr must have shape \(S, H\) with 1 <= S < H"),
        ("W_hh_square", None, r"W_hh must have shape \(4\*H, S\) with H=6, S=3 \(from W_hr\) = \(24, 3\), got \(24, 6\)"),
        ("ok", "h0_H_wide", r"h0 must have shape \(B, S\) with S the projection size = \(2, 3\), got \(2, 6\)"),
        ("gru", None, r"weights must be a tuple \(W_ih, W_hh, b_ih, b_hh\) for cell 'gru'"),
    ],
)
def test_errors_name_the_projection(weights, state, message):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 5))
    W_ih, W_hh, W_hr = rng.standard_normal((24, 5)), rng.standard_normal((24, 3)), rng.standard_normal((3, 6))
    cell = "lstm"
    if weights == "S_equals_H":
        w = (W_ih, rng.standard_normal((24, 6)), None, None, rng.standard_normal((6, 6)))
    elif weights == "W_hh_square":
        w = (W_ih, rng.standard_normal((24, 6)), None, None, W_hr)
    elif weights == "gru":
        cell, w = "gru", (rng.standard_normal((18, 5)), rng.standard_normal((18, 6)), None, None, W_hr)
    else:
        w = (W_ih, W_hh, None, None, W_hr)
    st = (rng.standard_normal((2, 6)), rng.standard_normal((2, 6))) if state == "h0_H_wide" else None
    with pytest.raises((ValueError, TypeError), match=message):
        F.forward(cell, x, w, st)


def test_backward_checks_gradient_widths():
    case = _proj_case(np.float64, T=3, B=2, H=6)
    _, _, ctx = case.forward("numpy")
    with pytest.raises(ValueError, match=r"dy must have shape \(T, B, S\) = \(3, 2, 3\)"):
        F.backward(ctx, np.zeros((3, 2, 6)))
    with pytest.raises(ValueError, match=r"dh_n must have shape \(B, S\) with S the projection size = \(2, 3\)"):
        F.backward(ctx, case.dy, (np.zeros((2, 6)), None))
