"""rnnkit.torch: drop-in torch.nn modules running rnnkit's kernels through autograd.
Against torch.nn with the same state_dict (outputs, states, every gradient; PackedSequence in and
out), gradcheck in float64, identical training curves, clear errors for other devices, and
`import rnnkit` leaving torch alone."""

import copy
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnnkit  # noqa: E402
import rnnkit.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

PAIRS = {
    "rnn_tanh": (rt.RNN, torch.nn.RNN, {}),
    "rnn_relu": (rt.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rt.LSTM, torch.nn.LSTM, {}),
    "gru": (rt.GRU, torch.nn.GRU, {}),
}
CONFIGS = {
    "plain": dict(),
    "deep_bidirectional": dict(num_layers=2, bidirectional=True),
    "batch_first": dict(batch_first=True, num_layers=2),
    "no_bias": dict(bias=False),
}


def _make(cell, backend="auto", dtype=torch.float64, **kw):
    ours_cls, ref_cls, extra = PAIRS[cell]
    torch.manual_seed(0)
    ref = ref_cls(4, 3, dtype=dtype, **extra, **kw)
    ours = ours_cls(4, 3, dtype=dtype, backend=backend, **extra, **kw)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _run(mod, x, hx):
    out, st = mod(x, hx)
    data = out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out
    loss = (data * torch.linspace(-1, 1, data.numel(), dtype=data.dtype).reshape(data.shape)).sum()
    for s in st if isinstance(st, tuple) else (st,):
        loss = loss + (s * 0.5).sum()
    loss.backward()
    return data.detach(), [s.detach() for s in (st if isinstance(st, tuple) else (st,))]


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_module_matches_torch(backend, cell, cfg):
    kw = CONFIGS[cfg]
    ours, ref = _make(cell, backend, **kw)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    shape = (3, 5, 4) if kw.get("batch_first") else (5, 3, 4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    h0 = torch.randn(L * D, 3, 3, generator=g, dtype=torch.float64)
    hx = (h0, torch.randn(L * D, 3, 3, generator=g, dtype=torch.float64)) if cell == "lstm" else h0
    xs = [x.clone().requires_grad_() for _ in range(2)]
    a = _run(ours, xs[0], hx)
    b = _run(ref, xs[1], hx)
    torch.testing.assert_close(a[0], b[0])
    for s, t in zip(a[1], b[1]):
        torch.testing.assert_close(s, t)
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=f"grad of {n}")


def test_packed_sequence_in_and_out(backend, cell):
    ours, ref = _make(cell, backend, num_layers=2, bidirectional=True)
    x = torch.randn(6, 4, 4, dtype=torch.float64)
    lengths = torch.tensor([3, 6, 1, 4])
    xs = [x.clone().requires_grad_() for _ in range(2)]
    a = _run(ours, pack_padded_sequence(xs[0], lengths, enforce_sorted=False), None)
    b = _run(ref, pack_padded_sequence(xs[1], lengths, enforce_sorted=False), None)
    torch.testing.assert_close(a[0], b[0])  # the packed data, in torch's order
    for s, t in zip(a[1], b[1]):
        torch.testing.assert_close(s, t)
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    out, _ = ours(pack_padded_sequence(x, lengths, enforce_sorted=False))
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True)], ids=["one", "deep_bi"])
def test_gradcheck(cell, kw):
    ours, _ = _make(cell, "auto", **kw)
    names = [n for n, _ in ours.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    x = torch.randn(4, 3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])

    def fn(x, *ps):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, st = torch.func.functional_call(ours, dict(zip(names, ps)), (packed,))
        h = st[0] if isinstance(st, tuple) else st
        return out.data, h

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def test_training_curves_match_torch():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(5, 8, num_layers=2)
    head_ref = torch.nn.Linear(8, 3)
    ours = rt.LSTM(5, 8, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    head = torch.nn.Linear(8, 3)
    head.load_state_dict(head_ref.state_dict())
    g = torch.Generator().manual_seed(2)
    data = [(torch.randn(7, 4, 5, generator=g), torch.randint(0, 3, (7, 4), generator=g)) for _ in range(15)]
    curves = []
    for lstm, lin in ((ref, head_ref), (ours, head)):
        opt = torch.optim.Adam(list(lstm.parameters()) + list(lin.parameters()), lr=0.01)
        losses = []
        for x, y in data:
            opt.zero_grad()
            out, _ = lstm(x)
            loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, 3), y.reshape(-1))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(np.array(losses))
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
    assert curves[0][-1] < curves[0][0]


def test_cells_match_torch(cell):
    pairs = {"rnn_tanh": (rt.RNNCell, torch.nn.RNNCell), "rnn_relu": None, "lstm": (rt.LSTMCell, torch.nn.LSTMCell),
             "gru": (rt.GRUCell, torch.nn.GRUCell)}  # fmt: skip
    if pairs[cell] is None:
        pytest.skip("covered by rnn_tanh")
    ours, ref = pairs[cell][0](4, 3, dtype=torch.float64), pairs[cell][1](4, 3, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    xs = [torch.randn(2, 4, dtype=torch.float64) for _ in range(3)]
    outs = []
    for mod in (ours, ref):
        h = None
        total = 0
        for x in xs:
            h = mod(x, h)
            total = total + (h[0] if cell == "lstm" else h).sum()
        total.backward()
        outs.append((h[0] if cell == "lstm" else h).detach())
    torch.testing.assert_close(outs[0], outs[1])
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_other_devices_and_dtypes_are_refused():
    lstm = rt.LSTM(4, 3)
    with pytest.raises(ValueError, match="device meta.*the CPU and on CUDA GPUs"):
        lstm(torch.empty(2, 1, 4, device="meta"))
    with pytest.raises(TypeError, match="input must be float32 or float64, got torch.int32"):
        lstm(torch.zeros(2, 1, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="3-D .* or 2-D .*, got 4-D"):
        lstm(torch.zeros(2, 1, 1, 4))
    with pytest.raises(ValueError, match="device meta: rnnkit's kernels run on the CPU and on CUDA GPUs"):
        rt.GRU(4, 3, device="meta")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_modules_are_torch_modules(cell):
    """A drop-in: a torch.nn.RNNBase (not a torch.nn.LSTM itself, which torch.compile refuses to
    trace), with its all_weights, flatten_parameters (a no-op on the CPU), extra_repr and
    proj_size=0; the cells are instances of torch's cells."""
    ours_cls, ref_cls, _ = PAIRS[cell]
    m = ours_cls(4, 3, num_layers=2, bidirectional=True, proj_size=0)
    assert isinstance(m, torch.nn.RNNBase) and not isinstance(m, ref_cls)
    ref = ref_cls(4, 3, num_layers=2, bidirectional=True)
    assert [[tuple(w.shape) for w in ws] for ws in m.all_weights] == [[tuple(w.shape) for w in ws] for ws in ref.all_weights]
    m.flatten_parameters()
    assert repr(m) == repr(ref)
    assert "backend='numpy'" in repr(ours_cls(4, 3, backend="numpy"))
    cell_cls = {"rnn_tanh": (rt.RNNCell, torch.nn.RNNCell), "lstm": (rt.LSTMCell, torch.nn.LSTMCell),
                "gru": (rt.GRUCell, torch.nn.GRUCell)}[cell]  # fmt: skip
    assert isinstance(cell_cls[0](4, 3), cell_cls[1])


def test_proj_size_arguments_are_checked_as_torch_checks_them():
    with pytest.raises(ValueError, match="proj_size must be smaller than hidden_size = 3, got 3"):
        rt.LSTM(4, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size must be >= 0, got -1"):
        rt.LSTM(4, 3, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size must be an integer, got float"):
        rt.LSTM(4, 3, proj_size=1.5)
    for cls in (rt.RNN, rt.GRU):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            cls(4, 3, proj_size=2)
    m = rt.LSTM(4, 6, proj_size=2)
    with pytest.raises(ValueError, match=r"h0 must have shape \(num_layers \* num_directions, B, proj_size\) = \(1, 3, 2\)"):
        m(torch.randn(5, 3, 4), (torch.zeros(1, 3, 6), torch.zeros(1, 3, 6)))


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True, batch_first=True), dict(bias=False),
                                dict(num_layers=3, bidirectional=True)])
def test_proj_size_matches_torch_lstm(backend, kw):
    """torch.nn.LSTM(proj_size=P) and rnnkit.torch.LSTM(proj_size=P) with the same state_dict:
    same outputs, states and every gradient; padded and packed input; the NumPy layer too."""
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} unavailable")
    torch.manual_seed(0)
    ref = torch.nn.LSTM(5, 7, proj_size=3, dtype=torch.float64, **kw)
    ours = rt.LSTM(5, 7, proj_size=3, dtype=torch.float64, backend=backend, **kw)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict())
    bf = kw.get("batch_first", False)
    x = torch.randn(4, 6, 5, dtype=torch.float64) if bf else torch.randn(6, 4, 5, dtype=torch.float64)
    LD = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    hx = (torch.randn(LD, 4, 3, dtype=torch.float64), torch.randn(LD, 4, 7, dtype=torch.float64))
    outs = []
    for m in (ref, ours):
        m.zero_grad()
        xi = x.clone().requires_grad_()
        y, (h, c) = m(xi, hx)
        (y.square().sum() + h.sum() + 2 * c.sum()).backward()
        outs.append((y, h, c, xi.grad, [p.grad for p in m.parameters()]))
    (y0, h0, c0, dx0, g0), (y1, h1, c1, dx1, g1) = outs
    assert y1.shape[-1] == 3 * (2 if kw.get("bidirectional") else 1) and h1.shape[-1] == 3 and c1.shape[-1] == 7
    for a, b in [(y1, y0), (h1, h0), (c1, c0), (dx1, dx0), *zip(g1, g0)]:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    lens = torch.tensor([6, 2, 5, 1])
    packed = pack_padded_sequence(x, lens, batch_first=bf, enforce_sorted=False)
    (p0, (ph0, pc0)), (p1, (ph1, pc1)) = ref(packed), ours(packed)
    torch.testing.assert_close(p1.data, p0.data, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ph1, ph0, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pc1, pc0, rtol=1e-10, atol=1e-12)
    layer = rnnkit.LSTM(5, 7, proj_size=3, dtype=np.float64, backend=backend, **kw)
    layer.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    yl, (hl, cl) = layer(x.numpy(), tuple(s.numpy() for s in hx))
    np.testing.assert_allclose(yl, y0.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hl, h0.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_unbatched_input_as_torch(cell):
    ours, ref = _make(cell, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(5, 4, dtype=torch.float64)
    D = 4  # num_layers * directions
    hx = torch.randn(D, 3, dtype=torch.float64)
    hx = (hx, torch.randn(D, 3, dtype=torch.float64)) if cell == "lstm" else hx
    for args in ((x,), (x, hx)):
        (y, s), (yr, sr) = ours(*args), ref(*args)
        torch.testing.assert_close(y, yr)
        for a, b in zip(s if cell == "lstm" else (s,), sr if cell == "lstm" else (sr,)):
            torch.testing.assert_close(a, b)
    c_ours, c_ref = {"rnn_tanh": (rt.RNNCell, torch.nn.RNNCell), "lstm": (rt.LSTMCell, torch.nn.LSTMCell),
                     "gru": (rt.GRUCell, torch.nn.GRUCell)}[cell]  # fmt: skip
    torch.manual_seed(0)
    cr = c_ref(4, 3, dtype=torch.float64)
    co = c_ours(4, 3, dtype=torch.float64)
    co.load_state_dict(cr.state_dict())
    got, want = co(x[0]), cr(x[0])
    for a, b in zip(got if cell == "lstm" else (got,), want if cell == "lstm" else (want,)):
        assert a.shape == (3,)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_half_precision_runs_in_float32_and_returns_its_dtype(cell, dtype):
    """float16/bfloat16 modules and inputs: computed in float32, returned (and differentiated)
    in their own dtype; as torch within that dtype's rounding."""
    ours, ref = _make(cell, dtype=torch.float32, num_layers=2)
    ours, ref = ours.to(dtype), ref.to(dtype)
    x = torch.randn(6, 2, 4).to(dtype).requires_grad_()
    y, s = ours(x)
    assert y.dtype == dtype and (s[0] if cell == "lstm" else s).dtype == dtype
    want = ref(x.detach().float().to(dtype))[0] if dtype == torch.bfloat16 else ref.float()(x.detach().float())[0]
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(y.float(), want.float(), rtol=tol, atol=tol)
    y.float().sum().backward()
    assert x.grad.dtype == dtype and ours.weight_hh_l0.grad.dtype == dtype


def test_cpu_autocast_lstm_returns_the_autocast_dtype():
    """Under CPU autocast to bfloat16 torch.nn.LSTM returns bfloat16 and GRU float32: so do ours."""
    x = torch.randn(5, 2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for ours, ref in (_make("lstm", dtype=torch.float32), _make("gru", dtype=torch.float32)):
            y = ours(x)[0]
            try:
                yr = ref(x)[0]
            except RuntimeError as e:
                # torch's own bfloat16 LSTM is oneDNN's, which has none on a CPU without AVX-512
                # (seen on an AVX2 EPYC); autocast's rule (LSTM in bfloat16) then gives the dtype
                if "primitive descriptor" not in str(e):
                    raise
                with torch.autocast("cpu", enabled=False):
                    yr = ref(x)[0].to(torch.bfloat16)
            assert y.dtype == yr.dtype, (y.dtype, yr.dtype)
            torch.testing.assert_close(y.float(), yr.float(), rtol=3e-2, atol=3e-2)


def test_torch_compile_graph_breaks_cleanly():
    gru = rt.GRU(4, 3)
    x = torch.randn(5, 2, 4)
    want = gru(x)[0]
    got = torch.compile(gru, backend="eager")(x)[0]
    torch.testing.assert_close(got, want)


def test_import_rnnkit_leaves_torch_alone():
    code = "import sys, rnnkit; rnnkit.functional; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_distributed_data_parallel_matches_single_process(tmp_path):
    """2 gloo processes on loopback, each half of every global batch, against one process."""
    from rnnkit.demos import ddp

    parallel = ddp.run_parallel(str(tmp_path / "params.pt"), timeout=180)
    single = ddp.run_single()
    for k in single:
        torch.testing.assert_close(parallel[k], single[k], rtol=1e-4, atol=1e-5, msg=k)


def _lstm_and_input(backend="auto"):
    torch.manual_seed(0)
    m = rt.LSTM(4, 3, backend=backend).double()
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    return m, x


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_inplace_change_before_backward_raises_as_in_torch(backend):
    """Changing a weight in place between forward and backward: torch.nn raises; rnnkit.torch
    silently computed the gradients from the changed weights."""
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} unavailable")
    m, x = _lstm_and_input(backend)
    y, _ = m(x)
    with torch.no_grad():
        m.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_second_backward_without_retain_graph_raises():
    m, x = _lstm_and_input()
    y, _ = m(x)
    loss = y.sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    m2, x2 = _lstm_and_input()
    y2, _ = m2(x2)
    y2.sum().backward(retain_graph=True)
    g = m2.weight_ih_l0.grad.clone()
    y2.sum().backward()
    torch.testing.assert_close(m2.weight_ih_l0.grad, 2 * g)


def test_double_backward_is_refused_not_silently_wrong():
    """create_graph=True then a loss on the gradient silently dropped the second-order term
    (|dL/dW_hh| 3.44 against torch's 11.14): second derivatives are refused."""
    m, x = _lstm_and_input()
    y, _ = m(x)
    (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        gx.sum().backward()


@pytest.mark.parametrize("make, exc, fragment", [
    (lambda: rt.LSTM(5, 0), ValueError, "hidden_size must be >= 1, got 0"),
    (lambda: rt.LSTM(5, -1), ValueError, "hidden_size must be >= 1, got -1"),
    (lambda: rt.GRU(5, 3, num_layers=0), ValueError, "num_layers must be >= 1, got 0"),
    (lambda: rt.RNN(5, 3, dropout=2), ValueError, "dropout must be a number in [0, 1], got 2"),
    (lambda: rt.LSTM(5.5, 3), TypeError, "input_size must be an integer, got float"),
    (lambda: rt.LSTM(5, 3, bidirectional="yes"), TypeError, "bidirectional must be True or False"),
    (lambda: rt.RNNCell(5, 3, nonlinearity="sigmoid"), ValueError, "nonlinearity must be 'tanh' or 'relu'"),
    (lambda: rt.GRUCell(5, 0), ValueError, "hidden_size must be >= 1"),
    (lambda: rt.LSTM(5, 3)(np.zeros((2, 1, 5), np.float32)), TypeError,
     "input must be a torch.Tensor or a PackedSequence, got ndarray"),
    (lambda: rt.LSTMCell(5, 3)(np.zeros((1, 5), np.float32)), TypeError,
     "input must be a torch.Tensor, got ndarray (rnnkit.RNN/LSTM/GRU are the NumPy layers)"),
])  # fmt: skip
def test_module_arguments_are_checked(make, exc, fragment):
    import re

    with pytest.raises(exc, match=re.escape(fragment)):
        make()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_inference_buffers_are_never_handed_out_twice(bidirectional):
    """Without autograd the inner layers write into buffers the module keeps (rnnkit/_buffers.py):
    a returned output must stay as it was through later calls and match the autograd path and
    torch.nn; torch.save of the module (pickle) and deepcopy still work."""
    import copy
    import io

    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 5, num_layers=3, bidirectional=bidirectional)
    ours = rt.LSTM(4, 5, num_layers=3, bidirectional=bidirectional)
    ours.load_state_dict(ref.state_dict())
    xs = [torch.randn(6, 2, 4) for _ in range(3)]
    with torch.no_grad():
        first = ours(xs[0])[0]
        kept = first.clone()
        later = [ours(x)[0] for x in xs[1:]]
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    for x, y in zip(xs[1:], later):
        torch.testing.assert_close(y, ref(x)[0].detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y, ours(x)[0].detach(), rtol=0, atol=0)  # autograd path, fresh buffers
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    for clone in (torch.load(buf, weights_only=False), copy.deepcopy(ours)):
        with torch.no_grad():
            torch.testing.assert_close(clone(xs[0])[0], kept, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_signatures_and_docstrings_are_their_own(name):
    """Each module's constructor lists torch.nn's parameters first, in torch's order (rnnkit's own
    extras after them), its forward takes (input, hx) as torch's, and the class and its forward
    carry rnnkit's numpydoc docstrings, not torch's."""
    import inspect
    import typing

    ours, ref = getattr(rt, name), getattr(torch.nn, name)

    def names(fn):
        return [p for p in inspect.signature(fn).parameters if p != "self"]

    # torch.nn.RNN/LSTM/GRU take (*args, **kwargs); their documented signature is an overload
    ref_init = next((o for o in typing.get_overloads(ref.__init__) if "input_size" in names(o)), ref.__init__)
    ref_names = names(ref_init)
    assert "input_size" in ref_names
    mine = names(ours.__init__)
    assert mine[: len(ref_names)] == ref_names, (mine, ref_names)
    extra = inspect.signature(ours.__init__).parameters
    for p in mine[len(ref_names) :]:
        assert extra[p].kind is inspect.Parameter.KEYWORD_ONLY, p
    assert extra["backend"].default == "auto"
    assert names(ours.forward)[:2] == ["input", "hx"] == names(ref.forward)[:2]
    for obj, theirs in ((ours, ref), (ours.forward, ref.forward)):
        doc = obj.__doc__
        assert doc and doc != theirs.__doc__, obj
        assert "Parameters\n" in inspect.cleandoc(doc), obj
    assert "forward" in vars(ours) and "__init__" in vars(ours)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_no_grad_calls_skip_autograd_and_match_it(cell, monkeypatch):
    """Under no_grad (or with nothing requiring grad) the modules call the kernels without
    autograd's Function (and without a zeros tensor for a missing state): the same outputs,
    bitwise, as the autograd path; with grad the Function runs."""
    ours_cls, _, extra = PAIRS[cell]
    torch.manual_seed(0)
    m = ours_cls(4, 3, num_layers=2, bidirectional=True, **extra)
    x = torch.randn(5, 2, 4)
    out, st = m(x)  # parameters require grad: autograd's path
    assert out.grad_fn is not None
    calls = []
    for fn in (rt._Recurrent, rt._ModuleCall):  # (a layer's Function, the whole module's)
        monkeypatch.setattr(fn, "apply", lambda *a, real=fn.apply: calls.append(1) or real(*a))
    with torch.no_grad():
        out2, st2 = m(x)
    assert not calls and out2.grad_fn is None and not out2.requires_grad
    assert torch.equal(out.detach(), out2)
    for a, b in zip(st if isinstance(st, tuple) else (st,), st2 if isinstance(st2, tuple) else (st2,)):
        assert torch.equal(a.detach(), b)
    m(x)[0].sum().backward()
    assert calls, "a call with grad must go through autograd"


PACKED_CASES = {
    "lstm_deep_bi": (rt.LSTM, dict(num_layers=2, bidirectional=True)),
    "gru_batch_first": (rt.GRU, dict(batch_first=True)),
    "rnn_relu_no_bias": (rt.RNN, dict(nonlinearity="relu", bias=False)),
    "lstm_proj": (rt.LSTM, dict(proj_size=2, num_layers=2)),
}


@pytest.mark.parametrize("case", list(PACKED_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_copy_is_bitwise_its_module_and_packs_once(backend, case, dtype, monkeypatch):
    """module.packed(): an eval copy whose weights are functional.pack'ed once per (layer,
    direction) at its first call: outputs and states bitwise those of the module in eval mode
    (lengths too), on every backend; an in-place change of the copy's own parameters packs again,
    the original's later changes do not reach it."""
    from rnnkit import functional as F

    cls, kw = PACKED_CASES[case]
    torch.manual_seed(0)
    m = cls(4, 3, dtype=dtype, backend=backend, **kw).eval()
    fast = m.packed()
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    made = []
    real_pack = F.pack
    monkeypatch.setattr(F, "pack", lambda *a: made.append(a[0]) or real_pack(*a))
    g = torch.Generator().manual_seed(1)
    x = torch.randn((3, 5, 4) if kw.get("batch_first") else (5, 3, 4), generator=g, dtype=dtype)
    with torch.no_grad():
        for lengths in (None, [5, 2, 4]):
            for _ in range(3):
                want, got = m(x, lengths=lengths), fast(x, lengths=lengths)
                assert torch.equal(want[0], got[0])
                for a, b in zip(*(s if isinstance(s, tuple) else (s,) for s in (want[1], got[1]))):
                    assert torch.equal(a, b)
    L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    assert len(made) == L * D, made  # once per (layer, direction), not per call
    with torch.no_grad():
        fast.weight_hh_l0.mul_(0.5)  # the copy's own change: packed again, and followed
        m.weight_hh_l0.mul_(0.5)
        assert torch.equal(fast(x)[0], m(x)[0]) and len(made) == L * D + 1
        m.weight_ih_l0.add_(1.0)  # the original's: not the copy's
        assert not torch.equal(fast(x)[0], m(x)[0]) and len(made) == L * D + 1


@pytest.mark.parametrize("cls", [rt.RNNCell, rt.LSTMCell, rt.GRUCell])
def test_packed_cell_over_a_decoder_loop(backend, cls):
    torch.manual_seed(0)
    cell = cls(4, 3, dtype=torch.float64, backend=backend)
    fast = cell.packed()
    x = torch.randn(6, 2, 4, dtype=torch.float64)
    lstm = cls is rt.LSTMCell
    s = s2 = (torch.zeros(2, 3, dtype=torch.float64),) * 2 if lstm else torch.zeros(2, 3, dtype=torch.float64)
    with torch.no_grad():
        for t in range(6):
            s, s2 = cell(x[t], s), fast(x[t], s2)
            for a, b in zip(s if lstm else (s,), s2 if lstm else (s2,)):
                assert torch.equal(a, b)
    assert len(fast._packs.packs) == 1


def _count_general(monkeypatch):
    """A list that grows by one at each call of rnnkit.torch._apply (the general path)."""
    general = []
    real_apply = rt._apply
    monkeypatch.setattr(rt, "_apply", lambda *a, **k: general.append(1) or real_apply(*a, **k))
    return general


def _short_and_general(monkeypatch, m, attr):
    """(general, both): general as _count_general; both(*args) returns (the general path's
    result, the short path's) of m(*args), the general one with m's short path (its method attr)
    switched off, and asserts that the short one did not go through _apply."""
    general = _count_general(monkeypatch)
    short = getattr(m, attr)

    def both(*args):
        monkeypatch.setattr(m, attr, lambda *a: None)
        want = m(*args)
        monkeypatch.setattr(m, attr, short)
        n = len(general)
        got = m(*args)
        assert len(general) == n, "the short path must not go through _apply"
        return want, got

    return general, both


@pytest.mark.parametrize("cell", list(PAIRS))
def test_parametrized_weights_match_torch(cell):
    """A weight under torch.nn.utils.parametrize (weight_norm here) is not in the module's
    _parameters: the short paths step aside and the general path runs it, as torch.nn does, in
    training (gradients reach the parametrization's originals) and in inference; cells too."""
    from torch.nn.utils import parametrizations

    ours, ref = _make(cell, num_layers=2)
    for m in (ours, ref):
        parametrizations.weight_norm(m, "weight_hh_l0")
    x = torch.randn(5, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for m in (ours, ref):
        y, _ = m(x)
        (y * y).sum().backward()
        with torch.no_grad():
            grads.append((y, m(x)[0], *(p.grad for p in m.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    if cell == "lstm":
        c, rc = rt.LSTMCell(4, 3, dtype=torch.float64), torch.nn.LSTMCell(4, 3, dtype=torch.float64)
        rc.load_state_dict(c.state_dict())
        out = []
        for m in (c, rc):
            parametrizations.weight_norm(m, "weight_hh")
            h, _ = m(x[0])
            h.sum().backward()
            out.append((h, m.parametrizations.weight_hh.original1.grad))
        for a, b in zip(*out):
            torch.testing.assert_close(a, b)


SHORT_CASES = {
    "lstm_deep_bi": (rt.LSTM, dict(num_layers=2, bidirectional=True)),
    "lstm_proj_batch_first": (rt.LSTM, dict(proj_size=2, num_layers=2, batch_first=True)),
    "gru_three_layers": (rt.GRU, dict(num_layers=3)),
    "rnn_relu_no_bias_bi": (rt.RNN, dict(nonlinearity="relu", bias=False, bidirectional=True)),
}


@pytest.mark.parametrize("case", list(SHORT_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_module_inference_short_path_is_bitwise_the_general_one(backend, case, dtype, packed, monkeypatch):
    """A module's common inference call (a dense CPU tensor of its dtype, nothing to
    differentiate) runs each layer's directions straight through functional's group call, without
    _apply: batched and unbatched, with and without hx, plain and packed, bitwise the general
    path's outputs and states (the same kernels), twice in a row (the kept inner buffers). Lengths,
    a PackedSequence, an hx of another dtype or an input requiring grad run the general path."""
    cls, kw = SHORT_CASES[case]
    torch.manual_seed(0)
    m = cls(4, 3, dtype=dtype, backend=backend, **kw).eval()
    if packed:
        m = m.packed()
    L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    lstm, S = cls is rt.LSTM, kw.get("proj_size") or 3
    g = torch.Generator().manual_seed(3)
    x = torch.randn((2, 5, 4) if kw.get("batch_first") else (5, 2, 4), generator=g, dtype=dtype)
    h, c = torch.randn(L * D, 2, S, generator=g, dtype=dtype), torch.randn(L * D, 2, 3, generator=g, dtype=dtype)
    general, both = _short_and_general(monkeypatch, m, "_short_call")

    def same(a, b):
        for u, v in zip(torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)):
            assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)

    with torch.no_grad():
        for hx in (None, (h, c) if lstm else h):
            for _ in range(2):
                same(*both(x, hx))
            x1 = x[0] if kw.get("batch_first") else x[:, 0]  # unbatched: (T, I)
            hx1 = None if hx is None else (h[:, 0], c[:, 0]) if lstm else h[:, 0]
            same(*both(x1, hx1))
        n = len(general)
        m(x, lengths=[5, 3])
        other = torch.float64 if dtype == torch.float32 else torch.float32
        m(x, (h.to(other), c.to(other)) if lstm else h.to(other))
        assert len(general) == n + 2 * L
        with pytest.raises(ValueError, match="h0 must have shape"):
            m(x, (h[:1], c[:1]) if lstm else h[:1])


@pytest.mark.parametrize("case", list(SHORT_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_module_training_short_path_is_bitwise_the_general_one(backend, case, dtype, monkeypatch):
    """A module's common differentiable call (a dense CPU tensor of its dtype, no dropout to
    apply) is one autograd Function for every layer and direction (_ModuleCall), without _apply:
    its outputs and every gradient (input, parameters, initial state) are bitwise the general
    path's, batched and unbatched, with hx None or requiring grad, for losses on the output only,
    on the final state only, or both; the input changed in place before backward raises, as
    does a second backward without retain_graph."""
    cls, kw = SHORT_CASES[case]
    torch.manual_seed(0)
    m = cls(4, 3, dtype=dtype, backend=backend, **kw)
    L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    lstm, S = cls is rt.LSTM, kw.get("proj_size") or 3
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn((2, 5, 4) if kw.get("batch_first") else (5, 2, 4), generator=g, dtype=dtype)
    h0, c0 = torch.randn(L * D, 2, S, generator=g, dtype=dtype), torch.randn(L * D, 2, 3, generator=g, dtype=dtype)
    general = _count_general(monkeypatch)
    short = m._short_call

    def run(x, hx, loss, take_short):
        monkeypatch.setattr(m, "_short_call", short if take_short else (lambda *a: None))
        m.zero_grad()
        leaves = [t.detach().requires_grad_() for t in (x, *(() if hx is None else hx if lstm else (hx,)))]
        state = None if hx is None else ((leaves[1], leaves[2]) if lstm else leaves[1])
        n = len(general)
        y, sn = m(leaves[0], state)
        assert (len(general) == n) == take_short, "the short path must not go through _apply"
        parts = sn if lstm else (sn,)
        total = sum(p.sum() * (k + 2) for k, p in enumerate(parts))
        wy = (torch.arange(y.numel(), dtype=dtype) % 7 - 3).reshape(y.shape)  # (a dy that is not all ones)
        out = {"y": (y * wy).sum(), "state": total}
        (out["y"] + out["state"] if loss == "both" else out[loss]).backward()
        return [y, *parts, *(t.grad for t in leaves), *(p.grad for p in m.parameters())]

    for hx in (None, (h0, c0) if lstm else h0):
        for x, state in ((x0, hx), (x0[0] if kw.get("batch_first") else x0[:, 0],
                                     None if hx is None else (h0[:, 0], c0[:, 0]) if lstm else h0[:, 0])):
            for loss in ("both", "y", "state"):
                want, got = run(x, state, loss, False), run(x, state, loss, True)
                assert len(want) == len(got)
                for u, v in zip(want, got):
                    assert u is not None and v is not None
                    assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)
    x = x0.clone().requires_grad_()
    y, _ = m(x)
    with torch.no_grad():
        x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    y, _ = m(x0.clone().requires_grad_())
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


@pytest.mark.parametrize("case", [*SHORT_CASES, "lstm_cell", "gru_cell"])
@pytest.mark.parametrize("path", ["short", "general"])
def test_an_input_without_grad_leaves_the_parameter_gradients_unchanged(backend, case, path, monkeypatch):
    """An input that needs no gradient (data, as in most models' first layer): the first layer's
    dx is not computed (functional.backward's input_grad=False), every parameter's and the
    initial state's gradients are bitwise those of the same call with an input that needs one."""
    cls, kw = SHORT_CASES.get(case) or ({"lstm_cell": rt.LSTMCell, "gru_cell": rt.GRUCell}[case], {})
    torch.manual_seed(0)
    m = cls(4, 3, backend=backend, **kw)
    cell = case.endswith("_cell")
    if path == "general":  # (the short paths switched off)
        monkeypatch.setattr(m, "_short_step" if cell else "_short_call", lambda *a: None)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn((2, 4) if cell else (2, 5, 4) if kw.get("batch_first") else (5, 2, 4), generator=g)
    L, D = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    h0 = torch.randn((2, 3) if cell else (L * D, 2, kw.get("proj_size") or 3), generator=g)
    c0 = torch.randn((2, 3) if cell else (L * D, 2, 3), generator=g)
    lstm = cls in (rt.LSTM, rt.LSTMCell)

    def grads(x_needs):
        m.zero_grad()
        x = x0.clone().requires_grad_(x_needs)
        h = h0.clone().requires_grad_()
        out = m(x, (h, c0) if lstm else h)
        first = out[0] if isinstance(out, tuple) else out
        wy = (torch.arange(first.numel()) % 7 - 3).reshape(first.shape)
        (first * wy).sum().backward()
        assert (x.grad is not None) == x_needs
        return [h.grad, *(p.grad for p in m.parameters())]

    want, got = grads(True), grads(False)
    for u, v in zip(want, got):
        assert torch.equal(u, v)


@pytest.mark.parametrize("cls", [rt.RNNCell, rt.LSTMCell, rt.GRUCell])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_cell_inference_short_path_is_bitwise_the_general_one(backend, cls, dtype, packed, monkeypatch):
    """A cell's common call with nothing to differentiate (CPU tensors of its dtype) goes
    straight to functional.forward (with a packed copy's packs), without _apply; batched and
    unbatched, a missing state, a tuple or a list: bitwise the general path's results. Anything
    else (a state of another dtype) runs the general path, with the same results and errors."""
    torch.manual_seed(0)
    cell = cls(4, 3, dtype=dtype, backend=backend).eval()
    m = cell.packed() if packed else cell
    lstm = cls is rt.LSTMCell
    g = torch.Generator().manual_seed(2)
    x, h, c = (torch.randn(n, generator=g, dtype=dtype) for n in ((2, 4), (2, 3), (2, 3)))
    states = [None, (h, c), [h, c]] if lstm else [None, h]
    general, both = _short_and_general(monkeypatch, m, "_short_step")

    def same(a, b):
        for u, v in zip(a if lstm else (a,), b if lstm else (b,)):
            assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)

    with torch.no_grad():
        for s in states:
            same(*both(x, s))
            s1 = None if s is None else type(s)(t[0] for t in s) if lstm else s[0]
            same(*both(x[0], s1))  # unbatched
        # a state of the other dtype: the general path converts it, as the module does
        other = torch.float64 if dtype == torch.float32 else torch.float32
        s2 = (h.to(other), c.to(other)) if lstm else h.to(other)
        n = len(general)
        same(cell(x, s2), m(x, s2))
        assert len(general) == n + 2
        with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(2, 3\), got \(3, 3\)"):
            m(x, (torch.zeros(3, 3, dtype=dtype),) * 2 if lstm else torch.zeros(3, 3, dtype=dtype))
    xg = x.clone().requires_grad_(True)
    out = m(xg, states[1])  # something to differentiate: autograd's path
    (out[0] if lstm else out).sum().backward()
    assert xg.grad is not None


@pytest.mark.parametrize("cls", [rt.RNNCell, rt.LSTMCell, rt.GRUCell])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_training_short_path_is_bitwise_the_general_one(backend, cls, dtype, bias, monkeypatch):
    """A cell's differentiable step (CPU tensors of its dtype) is one autograd Function,
    _CellCall, without _apply: over three teacher-forced steps, the states and every gradient
    (inputs, initial state, parameters) are bitwise the general path's, batched and unbatched,
    with the first state None or requiring grad, for a loss on h only or on (h, c); an input
    changed in place before backward raises."""
    torch.manual_seed(0)
    m = cls(4, 3, bias=bias, dtype=dtype, backend=backend)
    lstm = cls is rt.LSTMCell
    g = torch.Generator().manual_seed(5)
    xs0 = torch.randn(3, 2, 4, generator=g, dtype=dtype)
    h0, c0 = torch.randn(2, 3, generator=g, dtype=dtype), torch.randn(2, 3, generator=g, dtype=dtype)
    general = _count_general(monkeypatch)
    short = m._short_step

    def run(unbatched, with_state, on_c, take_short):
        monkeypatch.setattr(m, "_short_step", short if take_short else (lambda *a: None))
        m.zero_grad()
        xs = (xs0[:, 0] if unbatched else xs0).detach().requires_grad_()  # unbatched: steps of (I,)
        leaves = [(t[0] if unbatched else t).detach().requires_grad_() for t in (h0, c0)] if with_state else []
        s = None if not with_state else (tuple(leaves) if lstm else leaves[0])
        n, loss, outs = len(general), 0, []
        for t in range(3):
            s = m(xs[t], s)
            parts = s if lstm else (s,)
            outs += parts
            w = (torch.arange(parts[0].numel(), dtype=dtype) % 5 - 2).reshape(parts[0].shape)
            loss = loss + (parts[0] * w).sum() + (parts[1].sum() * 3 if lstm and on_c else 0)
        assert (len(general) == n) == take_short, "the short path must not go through _apply"
        loss.backward()
        return [*outs, xs.grad, *(t.grad for t in leaves if lstm or t is leaves[0]), *(p.grad for p in m.parameters())]

    for unbatched in (False, True):
        for with_state in (False, True):
            for on_c in (False, True) if lstm else (False,):
                want, got = run(unbatched, with_state, on_c, False), run(unbatched, with_state, on_c, True)
                assert len(want) == len(got)
                for u, v in zip(want, got):
                    assert u is not None and v is not None
                    assert u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)
    x = xs0[0].clone().requires_grad_()
    out = m(x)
    with torch.no_grad():
        x.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out[0] if lstm else out).sum().backward()


def test_packed_copy_refuses_training_and_takes_input_gradients():
    m = rt.GRU(4, 3, num_layers=2)
    fast = m.packed()
    with pytest.raises(RuntimeError, match="packed inference copy"):
        fast.train()
    with pytest.raises(RuntimeError, match="packed inference copy"):
        torch.nn.Sequential(fast).train()
    m.eval()
    x = torch.randn(5, 2, 4, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    m(x)[0].sum().backward()
    fast(x2)[0].sum().backward()  # the plain path: gradients reach the input, not the frozen weights
    assert torch.equal(x.grad, x2.grad) and all(p.grad is None for p in fast.parameters())
    assert fast._packs.packs == {}  # (that call had something to differentiate: nothing packed)
    with torch.no_grad():
        fast(x)
    again = copy.deepcopy(fast)  # a copy of a packed copy packs afresh
    assert len(fast._packs.packs) == 2 and again._packs.packs == {}
    assert torch.equal(again(x)[0], fast(x)[0])
