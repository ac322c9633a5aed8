"""The NumPy reference proven by central finite differences in float64, and by stepping.

Every gradient (x, h0, c0, W_ih, W_hh, b_ih, b_hh) of loss = sum(y*dy) + sum(h_n*dh_n) [+ sum(c_n*dc_n)]
is compared with (L(v+eps) - L(v-eps)) / 2eps, element by element.
"""

import zlib

import numpy as np
import pytest
from _helpers import assert_close, make_case

from rnnkit import functional as F

CASES = {
    "plain": dict(),
    "lengths": dict(lengths=[5, 2, 0, 4], B=4),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(lengths=[3, 5, 1, 0], B=4, reverse=True),
    "T1": dict(T=1),
    "B1": dict(B=1),
    "no_bias": dict(bias="none"),
    "only_b_ih": dict(bias="ih", lengths=[1, 4, 5]),
    "only_b_hh": dict(bias="hh", reverse=True),
    "zero_state": dict(state=False),
}


def _loss(case, x, weights, state):
    y, state_n, _ = F.forward(case.cell, x, weights, state, lengths=case.lengths,
                              reverse=case.reverse, training=False, backend="numpy")  # fmt: skip
    loss = np.sum(y * case.dy)
    if case.dstate_n is not None:
        parts = state_n if case.cell == "lstm" else (state_n,)
        dparts = case.dstate_n if case.cell == "lstm" else (case.dstate_n,)
        loss += sum(np.sum(s * d) for s, d in zip(parts, dparts))
    return loss


def _numeric_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_match_finite_differences(cell, name):
    case = make_case(cell, seed=zlib.crc32(name.encode()) % 1000, **CASES[name])
    got = case.run("numpy")
    x, (W_ih, W_hh, b_ih, b_hh), state = case.x, case.weights, case.state

    def f():
        return _loss(case, x, (W_ih, W_hh, b_ih, b_hh), state)

    inputs = {"dx": x, "dW_ih": W_ih, "dW_hh": W_hh, "db_ih": b_ih, "db_hh": b_hh}
    if state is not None:
        inputs.update(zip(("dh0", "dc0"), state if cell == "lstm" else (state,)))
    for gname, arr in inputs.items():
        if arr is None:
            assert gname not in got, f"{gname} must be None when its bias is None"
            continue
        assert_close(gname, got[gname], _numeric_grad(f, arr), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("lengths", [None, [4, 1, 0]])
@pytest.mark.parametrize("reverse", [False, True])
def test_stepping_one_step_at_a_time_equals_the_sequence(cell, lengths, reverse):
    """Calling the cell with T=1, carrying the state, gives the same y and final state."""
    case = make_case(cell, T=4, lengths=lengths, reverse=reverse)
    y, state_n, _ = case.forward("numpy")
    state = case.state
    steps = range(3, -1, -1) if reverse else range(4)
    for t in steps:
        active = None if lengths is None else (np.asarray(lengths) > t).astype(np.int64)
        y_t, state, _ = F.forward(cell, case.x[t : t + 1], case.weights, state, lengths=active,
                                  backend="numpy")  # fmt: skip
        assert_close(f"y[{t}]", y_t[0], y[t])
    for got, want in zip(state if cell == "lstm" else (state,), state_n if cell == "lstm" else (state_n,)):
        assert_close("state_n", got, want)


@pytest.mark.parametrize("name", list(CASES))
def test_gru_reset_before_gradients_match_finite_differences(name):
    """The GRU with the reset gate before the product (ONNX's linear_before_reset=0), which only
    the reference implements so far: the same proof."""
    test_gradients_match_finite_differences("gru_reset_before", name)


@pytest.mark.parametrize("name", ["plain", "lengths_reverse", "no_bias", "zero_state"])
def test_lstm_peephole_gradients_match_finite_differences(name):
    """The LSTM with peepholes (ONNX's input P; the reference only so far): every gradient,
    dP included, against central differences."""
    base = make_case("lstm", seed=zlib.crc32(name.encode()) % 1000, **CASES[name])
    P = np.random.default_rng(7).standard_normal(3 * base.weights[1].shape[1])
    weights = (*base.weights, P)
    state = base.state
    y, state_n, ctx = F.forward("lstm_peephole", base.x, weights, state, lengths=base.lengths, reverse=base.reverse,
                                backend="numpy")  # fmt: skip
    dx, (dh0, dc0), dws = F.backward(ctx, base.dy, base.dstate_n)

    def f():
        y, (h, c), _ = F.forward("lstm_peephole", base.x, weights, state, lengths=base.lengths,
                                 reverse=base.reverse, training=False, backend="numpy")  # fmt: skip
        loss = np.sum(y * base.dy)
        if base.dstate_n is not None:
            loss += np.sum(h * base.dstate_n[0]) + np.sum(c * base.dstate_n[1])
        return loss

    pairs = {"dx": (base.x, dx), "dW_ih": (weights[0], dws[0]), "dW_hh": (weights[1], dws[1]), "dP": (P, dws[4])}
    for k, b in (("db_ih", 2), ("db_hh", 3)):
        if weights[b] is not None:
            pairs[k] = (weights[b], dws[b])
        else:
            assert dws[b] is None
    if state is not None:
        pairs.update(dh0=(state[0], dh0), dc0=(state[1], dc0))
    for gname, (arr, got) in pairs.items():
        assert_close(gname, got, _numeric_grad(f, arr), rtol=1e-6, atol=1e-7)
