"""The NumPy reference against ONNX's own reference implementation of the RNN, LSTM and GRU operators
(onnx.reference.ReferenceEvaluator), forward outputs and final states, float32 and float64.

ONNX orders gates differently (LSTM i,o,f,c; GRU z,r,h) and keeps two biases side by side; the GRU
with linear_before_reset=1 is PyTorch's formula. ONNX's reference ignores sequence_lens and has no
Relu for RNN, so variable lengths are checked by running each sequence alone, cut to its length,
through ONNX, and rnn_relu is left to the torch and finite-difference tests.
"""

import numpy as np
import pytest
from _helpers import assert_close, make_case, max_errors, record_errors

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

# Rows of our (PyTorch-order) gate blocks, in ONNX's order.
ONNX_ORDER = {"rnn_tanh": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "gru_reset_before": [1, 0, 2]}
OP = {"rnn_tanh": "RNN", "lstm": "LSTM", "gru": "GRU", "gru_reset_before": "GRU"}


def _reorder(w, cell):
    H = w.shape[0] // len(ONNX_ORDER[cell])
    return np.concatenate([w[g * H : (g + 1) * H] for g in ONNX_ORDER[cell]], axis=0)


def onnx_run(cell, x, weights, state, reverse):
    """y [T,B,H] and the final state(s) from ONNX's reference evaluator."""
    T, B, _ = x.shape
    W_ih, W_hh, b_ih, b_hh = weights
    H = W_hh.shape[1]
    elem = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    zeros = np.zeros(W_hh.shape[0], x.dtype)
    B_cat = np.concatenate([_reorder(zeros if b_ih is None else b_ih, cell),
                            _reorder(zeros if b_hh is None else b_hh, cell)])  # fmt: skip
    feeds = {"X": x, "W": _reorder(W_ih, cell)[None], "R": _reorder(W_hh, cell)[None], "B": B_cat[None]}
    h0, c0 = state if cell == "lstm" else (state, None)
    feeds["initial_h"] = h0[None]
    names = ["X", "W", "R", "B", "", "initial_h"]
    outs = ["Y", "Y_h"]
    if cell == "lstm":
        feeds["initial_c"] = c0[None]
        names.append("initial_c")
        outs.append("Y_c")
    attrs = dict(hidden_size=H, direction="reverse" if reverse else "forward")
    if cell in ("gru", "gru_reset_before"):
        attrs["linear_before_reset"] = int(cell == "gru")
    node = helper.make_node(OP[cell], names, outs, **attrs)
    ins = [helper.make_tensor_value_info(n, elem, None) for n in names if n]
    outv = [helper.make_tensor_value_info(n, elem, None) for n in outs]
    model = helper.make_model(helper.make_graph([node], "g", ins, outv))
    res = ReferenceEvaluator(model).run(None, feeds)
    y = res[0][:, 0]
    return y, [r[0] for r in res[1:]]


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("bias", ["both", "none"])
def test_reference_forward_matches_onnx(cell, dtype, reverse, bias):
    case = make_case(cell, T=6, B=3, I=5, H=4, dtype=dtype, reverse=reverse, bias=bias, seed=3)
    y, state_n, _ = case.forward("numpy", training=False)
    y_o, st_o = onnx_run(cell, case.x, case.weights, case.state, reverse)
    got = {"y": y, "h_n": state_n[0] if cell == "lstm" else state_n}
    want = {"y": y_o, "h_n": st_o[0]}
    if cell == "lstm":
        got["c_n"], want["c_n"] = state_n[1], st_o[1]
    for k in want:
        assert_close(k, got[k], want[k])
    record_errors("onnx", cell, dtype, max_errors(got, {k: v.astype(np.float64) for k, v in want.items()}))


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_reference_lengths_match_onnx_per_sequence(cell, dtype, reverse):
    """Each sequence of a padded batch equals ONNX run on that sequence alone, cut to its length."""
    lengths = [6, 3, 1, 5]
    case = make_case(cell, T=6, B=4, I=3, H=5, dtype=dtype, lengths=lengths, reverse=reverse, seed=4)
    y, state_n, _ = case.forward("numpy", training=False)
    parts = state_n if cell == "lstm" else (state_n,)
    s0 = case.state if cell == "lstm" else (case.state,)
    for b, L in enumerate(lengths):
        one = tuple(s[b : b + 1] for s in s0)
        y_o, st_o = onnx_run(cell, case.x[:L, b : b + 1], case.weights, one if cell == "lstm" else one[0], reverse)
        assert_close(f"y[:, {b}]", y[:L, b], y_o[:, 0])
        assert np.all(y[L:, b] == 0), f"y[{L}:, {b}] must be zeros past the sequence's length"
        for name, got, want in zip(("h_n", "c_n"), parts, st_o):
            assert_close(f"{name}[{b}]", got[b], want[0])


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_lstm_peephole_matches_onnx(dtype, reverse):
    """The LSTM with peepholes against ONNX's LSTM with input P (ONNX orders P as p_i, p_o, p_f)."""
    case = make_case("lstm", T=6, B=3, I=5, H=4, dtype=dtype, reverse=reverse, seed=5)
    H = 4
    P = np.random.default_rng(6).standard_normal(3 * H).astype(dtype)
    from rnnkit import functional as F

    y, (h_n, c_n), _ = F.forward("lstm_peephole", case.x, (*case.weights, P), case.state, reverse=reverse,
                                 training=False, backend="numpy")  # fmt: skip
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    W_ih, W_hh, b_ih, b_hh = case.weights
    feeds = {"X": case.x, "W": _reorder(W_ih, "lstm")[None], "R": _reorder(W_hh, "lstm")[None],
             "B": np.concatenate([_reorder(b_ih, "lstm"), _reorder(b_hh, "lstm")])[None],
             "initial_h": case.state[0][None], "initial_c": case.state[1][None],
             "P": np.concatenate([P[:H], P[2 * H :], P[H : 2 * H]])[None]}  # fmt: skip
    names = ["X", "W", "R", "B", "", "initial_h", "initial_c", "P"]
    node = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], hidden_size=H,
                            direction="reverse" if reverse else "forward")  # fmt: skip
    ins = [helper.make_tensor_value_info(n, elem, None) for n in names if n]
    outs = [helper.make_tensor_value_info(n, elem, None) for n in ("Y", "Y_h", "Y_c")]
    res = ReferenceEvaluator(helper.make_model(helper.make_graph([node], "g", ins, outs))).run(None, feeds)
    assert_close("y", y, res[0][:, 0])
    assert_close("h_n", h_n, res[1][0])
    assert_close("c_n", c_n, res[2][0])
