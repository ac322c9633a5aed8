"""rnnkit's registered PyTorch operators (rnnkit/torch/_ops.py) and what they make possible:
torch.library.opcheck on both ops, torch.compile(fullgraph=True) of models holding rnnkit's
modules (eager, aot_eager and inductor backends; outputs and gradients against eager mode),
torch.export round trips, padded input with lengths= (the traceable alternative to a
PackedSequence), and `import rnnkit.torch` not pulling in torch's compiler."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnnkit  # noqa: E402
import rnnkit.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
MODULES = {"rnn_tanh": rt.RNN, "lstm": rt.LSTM, "gru": rt.GRU}


def _op_args(cell, backend, D, lengths, bias=True, T=5, B=3, I=4, H=6, training=True, seed=0, states=True,  # noqa: E741
             proj=None):  # fmt: skip
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=g).requires_grad_(training)

    S = proj or H
    params = []
    for _ in range(D):
        params += [r(G[cell] * H, I), r(G[cell] * H, S)] + ([r(G[cell] * H), r(G[cell] * H)] if bias else [])
        params += [r(S, H)] if proj else []  # W_hr last
    h0 = [r(B, S) for _ in range(D)] if states else []  # [] means zeros
    c0 = [r(B, H) for _ in range(D)] if cell == "lstm" and states else []
    lens = None if lengths is None else torch.tensor(lengths, dtype=torch.int64)
    return (cell, backend, r(T, B, I), params, h0, c0, lens, [False, True][:D], bias, training)


PROJ = "projections"  # an LSTM with proj_size 2 (bias, initial states)
CASES = [  # (cell, backend, directions, lengths, bias)
    *[(c, "cpp", D, lens, True) for c in ("rnn_tanh", "lstm", "gru") for D in (1, 2) for lens in (None, [5, 2, 0])],
    ("lstm", "cpp", 2, [5, 2, 3], "no initial state"),
    ("lstm", "cpp", 1, None, False),
    ("lstm", "numba", 2, [5, 2, 3], True),
    ("gru", "numba", 1, None, True),
    ("lstm", "numpy", 2, [5, 2, 3], True),
    ("rnn_relu", "numpy", 1, None, False),
    ("lstm", "cpp", 2, [5, 2, 0], PROJ),
    ("lstm", "numba", 1, [5, 2, 3], PROJ),
    ("lstm", "numpy", 1, None, PROJ),
]


def _case_args(cell, backend, D, lengths, bias, **kw):
    """_op_args for one CASES row (bias may name a variant instead)."""
    proj = 2 if bias == PROJ else None
    return _op_args(cell, backend, D, lengths, bias is True or bias == PROJ, states=bias != "no initial state",
                    proj=proj, **kw)  # fmt: skip


def _need(backend):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} unavailable")


@pytest.mark.parametrize("cell, backend, D, lengths, bias", CASES)
def test_opcheck_forward(cell, backend, D, lengths, bias):
    """Schema, fake tensors (shapes and dtypes from the inputs alone, a data-dependent row count
    with lengths), the autograd registration and AOT dispatch, static and dynamic shapes."""
    _need(backend)
    args = _case_args(cell, backend, D, lengths, bias)
    torch.library.opcheck(torch.ops.rnnkit.layer_forward.default, args)


@pytest.mark.parametrize("cell, backend, D, lengths, bias", CASES[:4] + CASES[-7:])
def test_opcheck_backward(cell, backend, D, lengths, bias):
    _need(backend)
    args = _case_args(cell, backend, D, lengths, bias, training=False)
    cell, backend, x, params, h0, c0, lens, reverses, bias, _ = args
    y, h_n, c_n, cache = torch.ops.rnnkit.layer_forward(cell, backend, x, params, h0, c0, lens, reverses, bias, True)
    dy = torch.randn_like(y)
    bargs = (cell, backend, x, params, h0, c0, lens, reverses, bias, cache, dy,
             [torch.randn_like(h) for h in h_n], [torch.randn_like(c) for c in c_n])  # fmt: skip
    torch.library.opcheck(torch.ops.rnnkit.layer_backward.default, bargs)


@pytest.mark.parametrize("proj", [None, 2])
def test_op_gradients_match_gradcheck(proj):
    """The registered autograd formula against finite differences (float64, lengths, both
    directions; with and without projections)."""
    cell, backend, x, params, h0, c0, lens, reverses, bias, _ = _op_args("lstm", rnnkit.available_backends()[0], 2,
                                                                         [4, 2, 3], T=4, H=3, proj=proj)  # fmt: skip

    def f(x, *flat):
        n = len(params)
        y, h_n, c_n, _ = torch.ops.rnnkit.layer_forward(cell, backend, x, list(flat[:n]), list(flat[n : n + 2]),
                                                        list(flat[n + 2 :]), lens, reverses, bias, True)  # fmt: skip
        return y, *h_n, *c_n

    assert torch.autograd.gradcheck(f, (x, *params, *h0, *c0))


class _Model(torch.nn.Module):
    """Linear -> recurrent module -> Linear, the shape of a typical tagger."""

    def __init__(self, cell, **kw):
        super().__init__()
        D = 2 if kw.get("bidirectional") else 1
        self.inp = torch.nn.Linear(5, 8)
        self.rnn = MODULES[cell](8, 6, **kw)
        self.out = torch.nn.Linear((kw.get("proj_size") or 6) * D, 3)

    def forward(self, x, lengths=None):
        y, state = self.rnn(torch.tanh(self.inp(x)), lengths=lengths)
        h = state[0] if isinstance(state, tuple) else state
        return self.out(y).sum(0) + h.sum(0).sum(-1, keepdim=True)


@pytest.fixture(autouse=True)
def _fresh_compiler():
    """Each test compiles anew: the models share one forward, whose compiled variants would
    otherwise pile up to dynamo's recompile limit."""
    yield
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()


def _grads(model, out):
    model.zero_grad()
    out.square().sum().backward()
    return [p.grad.clone() for p in model.parameters()]


# torch's inductor itself warns (torch.jit.script_method is deprecated) while compiling.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
@pytest.mark.parametrize("cell, kw, lengths", [
    ("lstm", {}, None),
    ("lstm", dict(num_layers=2, bidirectional=True), [7, 3, 5, 1]),
    ("gru", dict(num_layers=2, dropout=0.0), None),
    ("rnn_tanh", dict(bidirectional=True, bias=False), [2, 7, 7, 4]),
    ("lstm", dict(num_layers=2, bidirectional=True, proj_size=3), [7, 3, 5, 1]),
])  # fmt: skip
def test_fullgraph_compile_matches_eager(backend, cell, kw, lengths):
    """torch.compile(fullgraph=True) compiles a model holding rnnkit's module (no graph break),
    in training (outputs and every parameter's gradient) and in inference, as eager gives them."""
    torch.manual_seed(0)
    model = _Model(cell, **kw)
    x = torch.randn(7, 4, 5)
    lens = None if lengths is None else torch.tensor(lengths)
    want = model(x, lens)
    want_g = _grads(model, want)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    got = compiled(x, lens)
    got_g = _grads(model, got)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, lens), want.detach(), rtol=1e-5, atol=1e-6)


def test_fullgraph_compile_of_a_cell_loop():
    """A decoder built from a single-step cell, unrolled by the compiler."""

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = rt.LSTMCell(5, 6)

        def forward(self, x):
            h = c = x.new_zeros(x.shape[1], 6)
            for t in range(x.shape[0]):
                h, c = self.cell(x[t], (h, c))
            return h

    torch.manual_seed(0)
    model, x = Decoder(), torch.randn(4, 3, 5)
    want = model(x)
    want_g = _grads(model, want)
    got = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(got, want)
    for a, b in zip(_grads(model, got), want_g):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]])
@pytest.mark.parametrize("proj_size", [0, 4])
def test_export_round_trip(lengths, proj_size):
    torch.manual_seed(0)
    model = _Model("lstm", num_layers=2, bidirectional=True, proj_size=proj_size)
    x = torch.randn(7, 4, 5)
    args = (x,) if lengths is None else (x, torch.tensor(lengths))
    ep = torch.export.export(model, args)
    names = {n.target.name() for n in ep.graph.nodes if n.op == "call_function" and hasattr(n.target, "name")}
    assert "rnnkit::layer_forward" in names, names
    torch.testing.assert_close(ep.module()(*args), model(*args))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lengths_keyword_matches_packed_sequence(cell):
    """forward(x, lengths=) gives the padded output and states of a PackedSequence input."""
    torch.manual_seed(0)
    m = MODULES[cell](5, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    lens = [7, 3, 5, 1]
    y, s = m(x, lengths=lens)
    yp, sp = m(pack_padded_sequence(x, torch.tensor(lens), enforce_sorted=False))
    yp, _ = pad_packed_sequence(yp, total_length=7)
    torch.testing.assert_close(y, yp)
    for a, b in zip(s if cell == "lstm" else (s,), sp if cell == "lstm" else (sp,)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="lengths is for a padded input"):
        m(pack_padded_sequence(x, torch.tensor(lens), enforce_sorted=False), lengths=lens)
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[8, 1, 1, 1])


def test_import_leaves_the_compiler_alone():
    """`import rnnkit.torch` costs no more than `import torch`: torch._dynamo stays unimported."""
    code = "import sys, rnnkit.torch; print('torch._dynamo' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_layout_and_restore_agree_with_each_backend():
    """Each backend's cache_layout lists its cache's fields with their shapes (what the fake
    implementation promises), and cache_restore rebuilds a cache backward accepts."""
    from rnnkit import _backends
    from rnnkit import functional as F

    rng = np.random.default_rng(0)
    for name in rnnkit.available_backends():
        impl = _backends.get(name)
        for cell in ("rnn_tanh", "lstm", "gru"):
            for lengths in (None, [4, 1, 3]):
                x = rng.standard_normal((4, 3, 2))
                W = (rng.standard_normal((G[cell] * 5, 2)), rng.standard_normal((G[cell] * 5, 5)), None, None)
                y, _, ctx = F.forward(cell, x, W, lengths=lengths, backend=name)
                N = 12 if lengths is None else 8
                layout = impl.cache_layout(cell, 4, 3, 2, 5, N, lengths is None)
                assert list(layout) == [f for f in type(ctx.cache)._fields if f != "plan"], (name, cell)
                arrays = []
                for f, shape in layout.items():
                    a = getattr(ctx.cache, f)
                    if isinstance(shape, tuple):
                        assert a.shape == shape, (name, cell, f)
                        arrays.append(a)
                    else:
                        arrays.append(None)
                restored = F.Context(ctx.problem, name, impl.cache_restore(ctx.problem, arrays))
                dy = rng.standard_normal(y.shape)
                for a, b in zip(F.backward(restored, dy)[0:1], F.backward(ctx, dy)[0:1]):
                    np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
@pytest.mark.parametrize("cell, kw", [
    ("lstm", dict(num_layers=2, bidirectional=True)),
    ("gru", dict(bidirectional=True)),
    ("rnn_tanh", dict(num_layers=2, bias=False)),
])  # fmt: skip
@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]])
def test_onnx_export_runs_in_onnxruntime(tmp_path, cell, kw, lengths):
    """rnnkit.torch.export_onnx writes standard ONNX RNN/LSTM/GRU nodes (one per layer, both
    directions in it, lengths as sequence_lens) and onnxruntime's outputs match rnnkit's."""
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _Model(cell, **kw).eval()
    x = torch.randn(7, 4, 5)
    args = (x,) if lengths is None else (x, torch.tensor(lengths))
    path = tmp_path / "model.onnx"
    rt.export_onnx(model, args, str(path))
    nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
    want_op = {"lstm": "LSTM", "gru": "GRU"}.get(cell, "RNN")
    assert nodes.count(want_op) == kw.get("num_layers", 1), nodes
    assert not {"SequenceAt", "SequenceConstruct"} & set(nodes), nodes
    sess = ort.InferenceSession(str(path))
    got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})
    with torch.no_grad():
        want = model(*args)
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_export_refuses_training_mode():
    pytest.importorskip("onnxscript")
    from rnnkit.torch._onnx import _layer_forward

    with pytest.raises(ValueError, match="inference only"):
        _layer_forward("lstm", "auto", None, [None, torch.empty(4, 2)], [], [], None, [False], True, True)


def test_onnx_export_refuses_projections(tmp_path):
    pytest.importorskip("onnxscript")
    model = rt.LSTM(5, 6, proj_size=2).eval()
    with pytest.raises(NotImplementedError, match="model: an LSTM with projections"):
        rt.export_onnx(model, (torch.randn(4, 2, 5),), tmp_path / "p.onnx")
