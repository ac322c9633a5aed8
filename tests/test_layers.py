"""Layers and cells against torch.nn: outputs, final states, every parameter and input gradient,
for 1-3 layers, bidirectional, batch_first and lengths, on each host backend; state_dict round trips.
These layers hold NumPy parameters and take NumPy arrays, so "cuda" (GPU arrays only) is not one of
their backends: they refuse it by name (the GPU's layers are rnnkit.torch's, tests/test_torch_*.py)."""

import numpy as np
import pytest
from _helpers import BACKENDS, assert_close

import rnnkit

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

KINDS = {
    "rnn_tanh": (lambda **k: rnnkit.RNN(**k), lambda **k: torch.nn.RNN(**k)),
    "rnn_relu": (lambda **k: rnnkit.RNN(nonlinearity="relu", **k), lambda **k: torch.nn.RNN(nonlinearity="relu", **k)),
    "lstm": (rnnkit.LSTM, torch.nn.LSTM),
    "gru": (rnnkit.GRU, torch.nn.GRU),
}
CASES = {
    "one_layer": dict(num_layers=1),
    "three_layers": dict(num_layers=3),
    "bidirectional": dict(num_layers=2, bidirectional=True),
    "batch_first": dict(num_layers=1, batch_first=True, bidirectional=True),
    "lengths": dict(num_layers=2, bidirectional=True, lengths=[5, 2, 4]),
    "no_bias": dict(num_layers=2, bias=False),
}


def _pair(cell, backend, **kw):
    ours_cls, torch_cls = KINDS[cell]
    lengths = kw.pop("lengths", None)
    ours = ours_cls(input_size=4, hidden_size=3, dtype=np.float64, backend=backend, seed=1, **kw)
    ref = torch_cls(input_size=4, hidden_size=3, dtype=torch.float64, **kw)
    ours.load_state_dict(ref.state_dict())  # a torch state_dict loads unchanged
    return ours, ref, lengths


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_torch(backend, cell, name):
    ours, ref, lengths = _pair(cell, backend, **CASES[name])
    rng = np.random.default_rng(3)
    T, B = 5, 3
    bf = ours.batch_first
    x = rng.standard_normal((B, T, 4) if bf else (T, B, 4))
    LD = ours.num_layers * ours.num_directions
    h0 = rng.standard_normal((LD, B, 3))
    state = (h0, rng.standard_normal((LD, B, 3))) if cell == "lstm" else h0
    y, sn = ours(x, state, lengths=lengths)

    xt = torch.from_numpy(x).requires_grad_()
    st = tuple(torch.from_numpy(s).requires_grad_() for s in (state if cell == "lstm" else (state,)))
    inp = xt if lengths is None else pack_padded_sequence(xt, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
    yt, snt = ref(inp, st if cell == "lstm" else st[0])
    if lengths is not None:
        yt, _ = pad_packed_sequence(yt, batch_first=bf, total_length=T)
    assert_close("y", y, yt.detach().numpy())
    for a, b in zip(sn if cell == "lstm" else (sn,), snt if cell == "lstm" else (snt,)):
        assert_close("state_n", a, b.detach().numpy())

    dy = rng.standard_normal(y.shape)
    dsn = tuple(rng.standard_normal((LD, B, 3)) for _ in range(2 if cell == "lstm" else 1))
    dx, ds0 = ours.backward(dy, dsn if cell == "lstm" else dsn[0])
    loss = (yt * torch.from_numpy(dy)).sum()
    for s, d in zip(snt if cell == "lstm" else (snt,), dsn):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    assert_close("dx", dx, xt.grad.numpy())
    for a, b in zip(ds0 if cell == "lstm" else (ds0,), st):
        assert_close("dstate0", a, b.grad.numpy())
    for n, p in ref.named_parameters():
        assert_close(f"grad {n}", ours.grads[n], p.grad.numpy())


def test_state_dict_round_trip_into_torch(cell):
    ours, _, _ = _pair(cell, "numpy", num_layers=2, bidirectional=True)
    ref = KINDS[cell][1](input_size=4, hidden_size=3, num_layers=2, bidirectional=True, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 4))
    assert_close("y", ours.eval()(x)[0], ref(torch.from_numpy(x))[0].detach().numpy())


def test_dropout_is_seeded_and_off_in_eval():
    a = rnnkit.GRU(4, 3, num_layers=2, dropout=0.5, seed=7, dtype=np.float64)
    b = rnnkit.GRU(4, 3, num_layers=2, dropout=0.5, seed=7, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((6, 2, 4))
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    a.eval()
    y1, y2 = a(x)[0], a(x)[0]
    np.testing.assert_array_equal(y1, y2)
    c = rnnkit.GRU(4, 3, num_layers=2, dropout=0.0, seed=7, dtype=np.float64).eval()
    np.testing.assert_array_equal(y1, c(x)[0])


def test_dropout_gradient_matches_finite_differences():
    """The dropout mask of the forward is the one backward uses."""
    layer = rnnkit.LSTM(3, 2, num_layers=2, dropout=0.3, seed=2, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    rng_before = layer._rng.bit_generator.state  # replayed so every call draws the same mask
    y, _ = layer(x)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx, _ = layer.backward(dy)
    eps, num = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        vals = []
        for sgn in (1, -1):
            xx = x.copy()
            xx[idx] += sgn * eps
            layer._rng.bit_generator.state = rng_before
            vals.append(np.sum(layer(xx)[0] * dy))
        num[idx] = (vals[0] - vals[1]) / (2 * eps)
    assert_close("dx", dx, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_cells_match_torch_step_by_step(backend, kind):
    cls = {"rnn_tanh": (rnnkit.RNNCell, torch.nn.RNNCell), "lstm": (rnnkit.LSTMCell, torch.nn.LSTMCell),
           "gru": (rnnkit.GRUCell, torch.nn.GRUCell)}[kind]  # fmt: skip
    ours = cls[0](4, 3, dtype=np.float64, backend=backend, seed=0)
    ref = cls[1](4, 3, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((2, 4)) for _ in range(3)]
    state, tstate = None, None
    outs, touts, txs = [], [], []
    for x in xs:  # a decoder-style loop
        state = ours(x, state)
        xt = torch.from_numpy(x).requires_grad_()
        txs.append(xt)
        tstate = ref(xt, tstate)
        outs.append(state)
        touts.append(tstate)
    h = (lambda s: s[0]) if kind == "lstm" else (lambda s: s)
    assert_close("h", h(state), h(tstate).detach().numpy())
    # loss = sum of every step's h; backward step by step, in reverse
    sum(h(s).sum() for s in touts).backward()
    dstate = None
    for i in range(len(xs) - 1, -1, -1):
        dh = np.ones((2, 3)) + (0 if dstate is None else (dstate[0] if kind == "lstm" else dstate))
        ds = (dh, np.zeros((2, 3)) if dstate is None else dstate[1]) if kind == "lstm" else dh
        dx, dstate = ours.backward(ds)
        assert_close(f"dx[{i}]", dx, txs[i].grad.numpy())
    for n, p in ref.named_parameters():
        assert_close(f"grad {n}", ours.grads[n], p.grad.numpy())


def test_layer_returns_every_steps_state(backend):
    """return_states: the last step of h_all/c_all is h_n/c_n for full-length sequences, and each
    layer's h_t is that layer's output where the sequence is running."""
    lstm = rnnkit.LSTM(4, 3, num_layers=2, bidirectional=True, dtype=np.float64, backend=backend, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    y, (h_n, c_n), (h_all, c_all) = lstm(x, return_states=True)
    assert h_all.shape == c_all.shape == (5, 4, 2, 3)
    assert_close("h_all[-1] fwd", h_all[-1, 2], h_n[2])  # layer 1, forward direction
    assert_close("c_all[0] rev", c_all[0, 3], c_n[3])  # layer 1, reverse direction ends at t=0
    assert_close("h_all = y", h_all[:, 2], y[..., :3])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_inference_buffers_are_never_handed_out_twice(backend, bidirectional):
    """In inference a multi-layer module reuses its inner layers' output buffers across calls: the
    arrays a call returns must stay as they were through later calls, results must not depend on
    the reuse, and concurrent calls into one module (which then allocate afresh) must agree."""
    from concurrent.futures import ThreadPoolExecutor

    m = rnnkit.LSTM(4, 5, num_layers=3, bidirectional=bidirectional, backend=backend, seed=3).eval()
    xs = [np.random.default_rng(s).standard_normal((6, 2, 4)).astype(np.float32) for s in range(4)]
    first = m(xs[0])
    kept = (first[0].copy(), first[1][0].copy(), first[1][1].copy())
    others = [m(x) for x in xs[1:]]
    again = m(xs[0])
    for got, want in zip((first[0], *first[1]), kept):
        np.testing.assert_array_equal(got, want)  # not overwritten by the later calls
    np.testing.assert_array_equal(again[0], kept[0])
    train_y = m.train()(xs[1])[0]
    np.testing.assert_array_equal(train_y, others[0][0])  # training mode keeps no buffers
    m.eval()
    with ThreadPoolExecutor(4) as ex:
        many = list(ex.map(lambda i: m(xs[i % 4])[0], range(16)))
    for i, y in enumerate(many):
        np.testing.assert_array_equal(y, (first if i % 4 == 0 else others[i % 4 - 1])[0])


def test_layers_pickle_and_deepcopy():
    import copy
    import pickle

    m = rnnkit.GRU(3, 4, num_layers=2, seed=0).eval()
    x = np.ones((5, 2, 3), np.float32)
    y = m(x)[0]
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        np.testing.assert_array_equal(clone(x)[0], y)
        assert clone._outputs._lock is not m._outputs._lock


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_many_to_one_backward_takes_only_the_final_state_gradient(cell):
    """backward(None, dstate_n): dy is zeros, as a classifier reading h_n needs; both None is an error."""
    cls = rnnkit.LSTM if cell == "lstm" else rnnkit.GRU
    layer = cls(3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    lengths = np.array([5, 3])
    y, state = layer(x, lengths=lengths)
    dh_n = np.random.default_rng(1).standard_normal((2, 2, 4))
    dstate = (dh_n, None) if cell == "lstm" else dh_n
    dx, _ = layer.backward(None, dstate, retain_graph=True)
    grads = {n: g.copy() for n, g in layer.grads.items()}
    layer.zero_grad()
    dx_ref, _ = layer.backward(np.zeros_like(y), dstate)
    assert np.abs(dx).max() > 0
    np.testing.assert_array_equal(dx, dx_ref)
    for n, g in layer.grads.items():
        np.testing.assert_array_equal(grads[n], g, err_msg=n)
    layer(x)
    with pytest.raises(ValueError, match="backward needs dy or dstate_n"):
        layer.backward(None)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_backward_without_input_grad_returns_no_dx_and_the_same_gradients(backend, bidirectional):
    """backward(..., input_grad=False), for a model reading data: dx None, the parameters' and
    the initial state's gradients bitwise those of a backward that computes dx."""
    layer = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, dtype=np.float32, seed=0, backend=backend)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    y, _ = layer(x, lengths=np.array([5, 3]))
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx, ds0 = layer.backward(dy, retain_graph=True)
    grads = {n: g.copy() for n, g in layer.grads.items()}
    layer.zero_grad()
    none, ds0_b = layer.backward(dy, input_grad=False)
    assert dx is not None and np.abs(dx).max() > 0 and none is None
    for a, b in zip(ds0, ds0_b):
        np.testing.assert_array_equal(a, b)
    for n, g in layer.grads.items():
        np.testing.assert_array_equal(grads[n], g, err_msg=n)


def test_gru_with_the_reset_before_the_product_steps_like_its_layer():
    """linear_before_reset=False (ONNX's default GRU): the cell stepped over a sequence gives the
    layer's outputs, and every backend's layer gives the reference's."""
    layer = rnnkit.GRU(3, 4, linear_before_reset=False, dtype=np.float64, seed=0, backend="numpy")
    cell = rnnkit.GRUCell(3, 4, linear_before_reset=False, dtype=np.float64, seed=1)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, h_n = layer(x)
    h = np.zeros((2, 4))
    for t in range(5):
        h = cell(x[t], h)
        np.testing.assert_allclose(h, y[t], rtol=1e-12, atol=1e-14)
    torch_form = rnnkit.GRU(3, 4, dtype=np.float64, seed=0)
    assert np.abs(torch_form(x)[0] - y).max() > 1e-3  # a different cell, same parameters
    for backend in (b for b in rnnkit.available_backends() if b in BACKENDS):  # host arrays: not "cuda"
        fast = rnnkit.GRU(3, 4, linear_before_reset=False, dtype=np.float64, seed=0, backend=backend)
        np.testing.assert_allclose(fast(x)[0], y, rtol=1e-12, atol=1e-14, err_msg=backend)
    with pytest.raises(TypeError, match="linear_before_reset must be True or False"):
        rnnkit.GRU(3, 4, linear_before_reset=0)


@pytest.mark.filterwarnings("ignore:cell 'lstm_peephole' is implemented by the NumPy reference")
def test_lstm_with_peepholes_is_the_functional_cell_with_named_weights():
    """rnnkit.LSTM(peepholes=True): weight_peephole_l{k} (3H,) per direction, the functional
    lstm_peephole cell's outputs and gradients (that cell is proven against finite differences)."""
    from rnnkit import functional as F

    layer = rnnkit.LSTM(3, 4, bidirectional=True, peepholes=True, dtype=np.float64, seed=0)
    assert layer.params["weight_peephole_l0_reverse"].shape == (12,)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3))
    y, (h_n, c_n) = layer(x, lengths=[5, 3])
    dy = rng.standard_normal(y.shape)
    dx, _ = layer.backward(dy)
    for d, sfx in enumerate(["_l0", "_l0_reverse"]):
        w = tuple(layer.params[n] for n in layer._names(sfx))
        yd, (hd, cd), ctx = F.forward("lstm_peephole", x, w, lengths=[5, 3], reverse=d == 1, backend="numpy")
        np.testing.assert_allclose(y[..., d * 4 : (d + 1) * 4], yd, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[d], hd, rtol=1e-12, atol=1e-14)
        _, _, dws = F.backward(ctx, np.ascontiguousarray(dy[..., d * 4 : (d + 1) * 4]))
        np.testing.assert_allclose(layer.grads[f"weight_peephole{sfx}"], dws[4], rtol=1e-12, atol=1e-14)
    plain = rnnkit.LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=0)
    assert not any("peephole" in n for n in plain.params)
    with pytest.raises(TypeError, match="peepholes must be True or False"):
        rnnkit.LSTM(3, 4, peepholes="yes")


@pytest.mark.parametrize("kind", ["layer", "cell"])
def test_numpy_layers_refuse_backend_cuda_by_name(kind):
    """backend="cuda" takes GPU arrays only; a NumPy layer or cell given it says so, whether or not
    the backend is usable here (the check is where the arrays are, before the backend is looked up)."""
    m = (rnnkit.LSTM(4, 3, seed=0, backend="cuda") if kind == "layer"
         else rnnkit.LSTMCell(4, 3, seed=0, backend="cuda"))  # fmt: skip
    x = np.zeros((5, 2, 4) if kind == "layer" else (2, 4), np.float32)
    with pytest.raises(ValueError, match=r"backend 'cuda' runs on GPU arrays .*but x is on the host"):
        m(x)
