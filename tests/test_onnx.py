"""rnnkit.onnx: the NumPy layers written as ONNX RNN/LSTM/GRU nodes (onnxruntime runs them and
agrees), read back (the same layers), and run through rnnkit's onnx.backend."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import rnnkit  # noqa: E402
import rnnkit.onnx as ro  # noqa: E402

CASES = [
    (rnnkit.LSTM, dict(num_layers=2, bidirectional=True)),
    (rnnkit.GRU, dict(bidirectional=True)),
    (rnnkit.RNN, dict(nonlinearity="relu", bias=False)),
    (rnnkit.LSTM, dict(batch_first=True)),
    (rnnkit.GRU, dict(num_layers=2, bidirectional=True, linear_before_reset=False)),  # ONNX's default GRU
    (rnnkit.LSTM, dict(num_layers=2, bidirectional=True, peepholes=True)),  # ONNX's input P
    # ONNX's options (alphas and betas exact in float32: ONNX stores them as floats)
    (rnnkit.LSTM, dict(num_layers=2, bidirectional=True, clip=1.5, input_forget=True,
                       activations=[("HardSigmoid", 0.25, 0.5), ("LeakyRelu", 0.25), "Softsign",
                                    "Sigmoid", ("ScaledTanh", 1.25, 0.75), "Tanh"])),  # per direction
    (rnnkit.LSTM, dict(peepholes=True, activations=["Sigmoid", "Softplus", ("Affine", 0.5, 0.125)])),
    (rnnkit.GRU, dict(bidirectional=True, linear_before_reset=False, clip=2.0,
                      activations=[("HardSigmoid", 0.375, 0.5), ("Elu", 0.5)])),  # fmt: skip
    (rnnkit.GRU, dict(num_layers=2, activations=["Sigmoid", ("ThresholdedRelu", 0.25)])),
    (rnnkit.RNN, dict(bidirectional=True, activations=["Tanh", "Relu"])),  # a different cell per direction
    (rnnkit.RNN, dict(num_layers=2, activations=["Softsign"], clip=0.75)),
]


@pytest.mark.filterwarnings("ignore:cell '.*' is implemented by the NumPy reference")
@pytest.mark.parametrize("cls, kw", CASES)
@pytest.mark.parametrize("lengths", [None, [6, 2, 4]])
def test_export_runs_in_onnxruntime_and_loads_back(tmp_path, cls, kw, lengths):
    m = cls(4, 5, seed=0, **kw).eval()
    x = np.random.default_rng(1).standard_normal((6, 3, 4)).astype(np.float32)
    if kw.get("batch_first"):
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    want = m.forward(x, lengths=lengths)
    path = tmp_path / "m.onnx"
    ro.export(m, path, lengths=lengths is not None)
    sess = ort.InferenceSession(str(path))
    feeds = {"x": x} if lengths is None else {"x": x, "lengths": np.array(lengths, np.int32)}
    got = sess.run(None, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    states = want[1] if isinstance(want[1], tuple) else (want[1],)
    for g, w in zip(got[1:], states):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    [back] = ro.load(path)
    assert type(back) is cls and back.num_layers == m.num_layers and back.bidirectional == m.bidirectional
    assert getattr(back, "linear_before_reset", None) == getattr(m, "linear_before_reset", None)
    assert getattr(back, "peepholes", None) == getattr(m, "peepholes", None)
    assert back._forms == m._forms  # the cell and ONNX's options of each direction
    assert (back.clip, back.input_forget) == (m.clip, m.input_forget)
    if back.batch_first == m.batch_first:
        np.testing.assert_array_equal(back.forward(x, lengths=lengths)[0], want[0])
    else:  # export's Transpose nodes around a batch-first layer: load reads a time-major one
        got_tm = back.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), lengths=lengths)[0]
        np.testing.assert_array_equal(got_tm.transpose(1, 0, 2), want[0])
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v, err_msg=k)
    with pytest.raises(NotImplementedError, match="RNN, LSTM and GRU nodes only"):
        ro.Backend.prepare(onnx.load(str(path)))  # the Transpose/Reshape between the layers


def test_backend_runs_a_single_lstm_node_as_onnxruntime():
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    H, I = 3, 2  # noqa: E741
    W, R, B = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4 * H, I), (2, 4 * H, H), (2, 8 * H)))
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=H, direction="bidirectional")
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    graph = helper.make_graph([node], "g", [vi("X", [5, 2, I]), vi("W", W.shape), vi("R", R.shape), vi("B", B.shape)],
                              [vi("Y", [5, 2, 2, H]), vi("Y_h", [2, 2, H]), vi("Y_c", [2, 2, H])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((5, 2, I)).astype(np.float32)
    got = ro.Backend.run_model(model, [x, W, R, B])
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"X": x, "W": W, "R": R, "B": B})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_unsupported_forms_name_the_attribute():
    from onnx import helper

    rng = np.random.default_rng(0)
    W, R = rng.standard_normal((1, 9, 2)), rng.standard_normal((1, 9, 3))
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=3)  # linear_before_reset=0
    assert ro._Node(node, {"W": W, "R": R}.get).cell == "gru_reset_before"
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=3, linear_before_reset=2)
    with pytest.raises(ValueError, match="linear_before_reset must be 0 or 1, got 2"):
        ro._Node(node, {"W": W, "R": R}.get)
    lw = {"W": rng.standard_normal((1, 12, 2)), "R": rng.standard_normal((1, 12, 3))}.get
    bad = [(dict(clip=-1.0), ValueError, "attribute clip must be a positive number, got -1.0"),
           (dict(input_forget=2), ValueError, "attribute input_forget must be 0 or 1"),
           (dict(activations=["Sigmoid", "Tanh"]), ValueError, "attribute activations has 2 entries, expected 3"),
           (dict(activations=["Sigmoid", "Gelu", "Tanh"]), NotImplementedError, "activation 'Gelu' is not one of"),
           (dict(activations=["Sigmoid", "ScaledTanh", "Tanh"]), ValueError, "activation ScaledTanh needs activation_alpha")]
    for attrs, kind, msg in bad:
        with pytest.raises(kind, match=f"LSTM node 'l': {msg}"):
            ro._Node(helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=3, name="l", **attrs), lw)
    node = ro._Node(helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=3, clip=1.5, input_forget=1,
                                     activations=["HardSigmoid", "ScaledTanh", "Elu"], activation_alpha=[0.25, 2.0, 0.5],
                                     activation_beta=[0.375, 0.625]), lw)  # fmt: skip
    assert node.options == [dict(activations=[("hardsigmoid", 0.25, 0.375), ("scaledtanh", 2.0, 0.625), ("elu", 0.5)],
                                 clip=1.5, input_forget=True)]  # fmt: skip


def test_export_refuses_projections(tmp_path):
    """ONNX's LSTM operator has no projection weight: a clear error, not a wrong file."""
    with pytest.raises(NotImplementedError, match=r"LSTM\(proj_size=2\): an LSTM with projections has no ONNX form"):
        rnnkit.onnx.export(rnnkit.LSTM(3, 5, proj_size=2), tmp_path / "p.onnx")
