"""ONNX's options of the cells in the NumPy reference: activations other than the cell's own, clip
and input_forget (functional.forward's ``activations``, ``clip``, ``input_forget``).

Proven three ways: every gradient against central finite differences in float64; the forward
against onnxruntime, which implements these attributes (ONNX's reference evaluator ignores them),
through a hand-built node and through rnnkit.onnx.Backend; and the identities that tie them to the
plain cells (the cell's own activations are the plain cell, an RNN with Relu is rnn_relu, a clip no
pre-activation reaches changes nothing, input_forget leaves the forget gate's weights without
gradient).
"""

import zlib

import numpy as np
import pytest
from _helpers import LSTMS, assert_close, make_case

from rnnkit import _backends
from rnnkit import functional as F

pytestmark = pytest.mark.filterwarnings("ignore:cell .* with activations, clip or input_forget:RuntimeWarning")

# (cell, id, options): every ONNX activation appears in some position, each option alone and together.
FORMS = [
    ("rnn_tanh", "softplus", dict(activations=["Softplus"])),
    ("rnn_tanh", "leakyrelu_clip", dict(activations=[("LeakyRelu", 0.1)], clip=0.6)),
    ("rnn_tanh", "scaledtanh", dict(activations=[("ScaledTanh", 1.5, 0.7)])),
    ("rnn_relu", "affine", dict(activations=[("Affine", 0.6, 0.2)])),
    ("lstm", "acts", dict(activations=["HardSigmoid", "Softsign", "Softplus"])),
    ("lstm", "clip", dict(clip=0.5)),
    ("lstm", "input_forget", dict(input_forget=True)),
    ("lstm", "all", dict(activations=[("HardSigmoid", 0.3, 0.45), ("Elu", 0.7), ("Affine", 0.8, 0.1)], clip=0.7,
                         input_forget=True)),  # fmt: skip
    ("lstm_peephole", "clip_input_forget", dict(clip=0.6, input_forget=True)),
    ("lstm_peephole", "acts", dict(activations=["Sigmoid", ("ScaledTanh", 1.2, 0.9), "Relu"])),
    ("gru", "acts_clip", dict(activations=["Softsign", ("ThresholdedRelu", 0.2)], clip=0.6)),
    ("gru", "elu", dict(activations=["Sigmoid", "Elu"])),
    ("gru_reset_before", "acts_clip", dict(activations=[("HardSigmoid", 0.25, 0.5), "Softplus"], clip=0.7)),
]
IDS = [f"{c}-{i}" for c, i, _ in FORMS]
VARIANTS = {"plain": dict(), "lengths_reverse": dict(lengths=[4, 1, 0, 3], B=4, reverse=True)}


def _case(cell, options, variant, dtype=np.float64, **kw):
    seed = zlib.crc32(f"{cell}{options}{variant}".encode()) % 1000
    return make_case(cell, dtype=dtype, seed=seed, scale=0.9, options=options,
                     **{"T": 4, "B": 3, "I": 3, "H": 3, **VARIANTS[variant], **kw})  # fmt: skip


def _loss(case, x, weights, state):
    y, state_n, _ = F.forward(case.cell, x, weights, state, lengths=case.lengths, reverse=case.reverse,
                              training=False, backend="numpy", **case.options)  # fmt: skip
    lstm = case.cell in LSTMS
    return np.sum(y * case.dy) + sum(np.sum(s * d) for s, d in zip(state_n if lstm else (state_n,),
                                                                     case.dstate_n if lstm else (case.dstate_n,)))


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


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(("cell", "fid", "options"), FORMS, ids=IDS)
def test_gradients_match_finite_differences(cell, fid, options, variant):
    case = _case(cell, options, variant)
    got = case.run("numpy")
    _, _, ctx = case.forward("numpy")
    if "clip" in options:  # the data reach past the bound, so clipping (and its zero gradient) is exercised
        assert np.mean(np.abs(ctx.cache.a) > options["clip"]) > 0.05
    x, weights, state = case.x, case.weights, case.state
    names = ["dW_ih", "dW_hh", "db_ih", "db_hh"] + (["dP"] if cell == "lstm_peephole" else [])
    inputs = {"dx": x, **dict(zip(names, weights))}
    inputs.update(zip(("dh0", "dc0"), state if cell in LSTMS else (state,)))
    for gname, arr in inputs.items():
        assert_close(gname, got[gname], _numeric_grad(lambda: _loss(case, x, weights, state), arr),
                     rtol=1e-6, atol=1e-7)  # fmt: skip


def test_the_cells_own_activations_and_an_unreached_clip_are_the_plain_cell():
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "gru", "gru_reset_before"):
        own = {"rnn_tanh": ["Tanh"], "rnn_relu": ["RELU"], "gru": ["Sigmoid", "Tanh"],
               "gru_reset_before": ["sigmoid", "tanh"]}.get(cell, ["Sigmoid", "Tanh", "Tanh"])  # fmt: skip
        plain = make_case(cell, T=5, B=3, H=4, seed=1).run("numpy")
        for options in (dict(activations=own), dict(clip=1e6)):
            case = make_case(cell, T=5, B=3, H=4, seed=1, options=options)
            _, _, ctx = case.forward("numpy")
            assert ctx.problem.options == ("clip" in options), (cell, options)  # the own activations: plain
            for k, v in case.run("numpy").items():
                np.testing.assert_array_equal(v, plain[k], err_msg=f"{cell} {options} {k}")
    relu = make_case("rnn_tanh", seed=2, options=dict(activations=["Relu"]))
    _, _, ctx = relu.forward("numpy")
    assert ctx.problem.cell == "rnn_relu" and not ctx.problem.options
    np.testing.assert_array_equal(relu.run("numpy")["y"], make_case("rnn_relu", seed=2).run("numpy")["y"])


def test_input_forget_leaves_the_forget_gate_without_effect_or_gradient():
    case = make_case("lstm", T=5, B=3, H=4, seed=3, options=dict(input_forget=True))
    got = case.run("numpy")
    H = 4
    for k in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert np.all(got[k][H : 2 * H] == 0), k
    W_ih, W_hh, b_ih, b_hh = case.weights
    other = [a.copy() for a in case.weights]
    for a in other:
        a[H : 2 * H] = 7.0  # the forget gate's own weights: no effect
    y, _, _ = F.forward("lstm", case.x, tuple(other), case.state, input_forget=True, backend="numpy")
    np.testing.assert_array_equal(y, got["y"])


# ---- against onnxruntime ----

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

ONNX_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _kind(cell):
    return "lstm" if cell in LSTMS else "gru" if cell.startswith("gru") else "rnn"


def _onnx_attrs(cell, options, D):
    """ONNX attributes for functional.forward's options (activations repeated per direction)."""
    from rnnkit._validate import DEFAULT_ACTS

    attrs = {}
    acts = options.get("activations") or ([] if cell != "rnn_relu" else ["Relu"])
    if acts or "clip" in options:
        acts = acts or list(DEFAULT_ACTS[cell])
        names, alphas, betas = [], [], []
        for a in acts * D:
            a = (a,) if isinstance(a, str) else a
            names.append(a[0])
            alphas += list(a[1:2])
            betas += list(a[2:3])
        attrs["activations"] = names
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    if "clip" in options:
        attrs["clip"] = options["clip"]
    if options.get("input_forget"):
        attrs["input_forget"] = 1
    if cell.startswith("gru"):
        attrs["linear_before_reset"] = int(cell == "gru")
    return attrs


def _onnx_model(cell, case, direction):
    """One ONNX node for the case (its weights in both directions of a bidirectional node) and its feeds."""
    kind = _kind(cell)
    order = ONNX_ORDER[kind]
    W_ih, W_hh, b_ih, b_hh = case.weights[:4]
    H = W_hh.shape[1]

    def re(w):
        return np.concatenate([w[g * H : (g + 1) * H] for g in order], axis=0)

    D = 2 if direction == "bidirectional" else 1
    rep = lambda a: np.stack([a] * D)  # noqa: E731 - both directions share the weights here
    feeds = {"X": case.x, "W": rep(re(W_ih)), "R": rep(re(W_hh)), "B": rep(np.concatenate([re(b_ih), re(b_hh)]))}
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    feeds["sequence_lens"] = (np.full(case.x.shape[1], case.x.shape[0]) if case.lengths is None
                              else case.lengths).astype(np.int32)  # fmt: skip
    h0 = case.state[0] if kind == "lstm" else case.state
    feeds["initial_h"] = rep(h0)
    outs = ["Y", "Y_h"]
    if kind == "lstm":
        names.append("initial_c")
        feeds["initial_c"] = rep(case.state[1])
        outs.append("Y_c")
        if cell == "lstm_peephole":
            P = case.weights[4]
            names.append("P")
            feeds["P"] = rep(np.concatenate([P[:H], P[2 * H :], P[H : 2 * H]]))  # ONNX: p_i, p_o, p_f
    elem = TensorProto.FLOAT if case.x.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node(OP[kind], names, outs, hidden_size=H, direction=direction,
                            **_onnx_attrs(cell, case.options, D))  # fmt: skip
    ins = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem, feeds[n].shape)
           for n in names]  # fmt: skip
    T, B, _ = case.x.shape
    shapes = {"Y": [T, D, B, H], "Y_h": [D, B, H], "Y_c": [D, B, H]}
    outv = [helper.make_tensor_value_info(n, elem, shapes[n]) for n in outs]
    model = helper.make_model(helper.make_graph([node], "g", ins, outv), opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model, [feeds[n] for n in names]


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize(("cell", "fid", "options"), FORMS, ids=IDS)
def test_forward_matches_onnxruntime(cell, fid, options, direction):
    """float32 (onnxruntime's kernels), with sequence_lens; the reference in float64."""
    case = _case(cell, options, "plain", dtype=np.float32, lengths=[4, 2, 3], reverse=direction == "reverse")
    model, feeds = _onnx_model(cell, case, direction)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, dict(zip([i.name for i in model.graph.input], feeds)))
    y, state_n, _ = case.astype(np.float64).forward("numpy", training=False)
    parts = state_n if cell in LSTMS else (state_n,)
    assert_close("y", y, want[0][:, 0], np.float32)
    for name, got, w in zip(("h_n", "c_n"), parts, want[1:]):
        assert_close(name, got, w[0], np.float32)


@pytest.mark.parametrize(("cell", "fid", "options"), FORMS, ids=IDS)
def test_onnx_backend_runs_the_node_as_onnxruntime(cell, fid, options):
    """rnnkit.onnx.Backend reads the attributes (activation_alpha/_beta consumed in order, both
    directions of a bidirectional node) and gives onnxruntime's outputs."""
    import rnnkit.onnx as ro

    case = _case(cell, options, "plain", dtype=np.float32, lengths=[4, 1, 3])
    model, feeds = _onnx_model(cell, case, "bidirectional")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, dict(zip([i.name for i in model.graph.input], feeds)))
    got = ro.Backend.run_model(model, feeds)
    for name, g, w in zip(("Y", "Y_h", "Y_c"), got, want):
        assert_close(name, g, w, np.float32)


def test_a_backend_without_the_options_is_refused_by_name(monkeypatch):
    """A compiled backend that does not run the options (one is taken away here: both run them)
    names what it lacks; auto then runs the reference, warning once."""
    import warnings

    import rnnkit

    case = make_case("lstm", dtype=np.float32, options=dict(clip=0.5))
    fast = [b for b in ("cpp", "numba") if b in rnnkit.available_backends()]
    if not fast:
        pytest.skip("no compiled backend here")
    for b in fast:
        monkeypatch.delattr(_backends._load(b), "ONNX_OPTIONS", raising=False)
    with pytest.raises(NotImplementedError, match=f"cell 'lstm' with activations, clip or input_forget is not "
                                                  f"implemented by backend '{fast[0]}' yet; it runs on 'numpy'"):
        case.forward(fast[0])
    monkeypatch.setattr(_backends, "_warned", set())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _, _, ctx = case.forward("auto")
        case.forward("auto")
    assert ctx.backend == "numpy"
    assert sum("with activations, clip or input_forget is implemented by the NumPy reference" in str(m.message)
               for m in w) == 1  # fmt: skip
