"""ONNX's cell options through the layers and cells (rnnkit.RNN/LSTM/GRU(activations=, clip=,
input_forget=), LSTMCell(peepholes=)): each direction of each layer is the functional call with
those options (which tests/test_reference_forms.py proves against finite differences and
onnxruntime), forward and backward, on every backend that runs the options; the errors."""

import numpy as np
import pytest
from _helpers import options_skipped

import rnnkit
from rnnkit import _backends
from rnnkit import functional as F

LAYERS = [
    (rnnkit.LSTM, "lstm", dict(num_layers=2, bidirectional=True, clip=1.5, input_forget=True,
                               activations=["HardSigmoid", ("LeakyRelu", 0.3), "Softsign",
                                            "Sigmoid", ("ScaledTanh", 1.1, 0.7), "Tanh"])),  # fmt: skip
    (rnnkit.LSTM, "lstm_peephole", dict(peepholes=True, activations=["Sigmoid", "Softplus", "Tanh"], clip=2.0)),
    (rnnkit.GRU, "gru", dict(bidirectional=True, activations=[("HardSigmoid", 0.3, 0.4), "Elu"])),
    (rnnkit.GRU, "gru_reset_before", dict(num_layers=2, linear_before_reset=False, clip=0.8)),
    (rnnkit.RNN, "rnn_tanh", dict(bidirectional=True, activations=["Softsign", ("Affine", 0.5, 0.1)])),
]
IDS = ["lstm_bidir_2layers", "lstm_peephole", "gru_bidir", "gru_reset_before_clip", "rnn_bidir"]


def _backends_with_options():
    return [b for b in ("numpy", "cpp", "numba") if b in rnnkit.available_backends()
            and _backends._implements(b, None, options=True)]  # fmt: skip


def _composed(layer, x, lengths, dy):
    """The layer's y, h_n and parameter gradients from functional calls, layer by layer and
    direction by direction, with each direction's options (the NumPy reference)."""
    H = layer.hidden_size
    lstm = layer._lstm
    inp, ctxs, hs = x, [], []
    for li in range(layer.num_layers):
        outs = []
        for d, sfx in enumerate(layer._suffixes(li)):
            cell, kw = layer._forms[d]
            y, sn, ctx = F.forward(cell, inp, layer._weights(sfx), lengths=lengths, reverse=d == 1, backend="numpy", **kw)
            outs.append(y)
            ctxs.append((li, d, sfx, ctx))
            hs.append(sn[0] if lstm else sn)
        inp = np.concatenate(outs, axis=2)
    grads, dout = {}, dy
    for li in range(layer.num_layers - 1, -1, -1):
        dinp = 0
        for lj, d, sfx, ctx in ctxs:
            if lj != li:
                continue
            dx, _, dws = F.backward(ctx, np.ascontiguousarray(dout[..., d * H : (d + 1) * H]))
            dinp = dinp + dx
            for n, g in zip(layer._names(sfx), dws):
                if g is not None:
                    grads[n] = g
        dout = dinp
    return inp, np.stack(hs), grads, dout


@pytest.mark.parametrize("backend", ["numpy", "cpp", "numba"])
@pytest.mark.parametrize(("cls", "cell", "kw"), LAYERS, ids=IDS)
def test_layer_with_options_is_the_functional_cell_per_direction(backend, cls, cell, kw):
    if backend not in _backends_with_options():
        pytest.skip(f"{backend} does not run ONNX's options here")
    if options_skipped(backend):
        pytest.skip(options_skipped(backend))
    layer = cls(3, 4, dtype=np.float64, seed=0, backend=backend, **kw)
    assert layer._forms[0][0] == cell
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 3))
    lengths = [5, 2, 4]
    y, state_n = layer(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dx, _ = layer.backward(dy)
    y_ref, h_ref, grads, dx_ref = _composed(layer, x, lengths, dy)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(state_n[0] if layer._lstm else state_n, h_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    assert set(grads) == set(layer.grads)
    for n, g in grads.items():
        np.testing.assert_allclose(layer.grads[n], g, **tol, err_msg=n)
    # the options change the outputs (the same parameters without them give another y)
    plain = {k: v for k, v in kw.items() if k not in ("activations", "clip", "input_forget")}
    assert np.abs(cls(3, 4, dtype=np.float64, seed=0, **plain)(x, lengths=lengths)[0] - y).max() > 1e-3


def test_layer_options_per_direction_and_attributes():
    m = rnnkit.RNN(3, 4, bidirectional=True, activations=["Tanh", "Relu"])
    assert [c for c, _ in m._forms] == ["rnn_tanh", "rnn_relu"]  # torch's cells: the fast path
    assert all(kw == dict(activations=None, clip=None, input_forget=False) for _, kw in m._forms)
    both = rnnkit.GRU(3, 4, bidirectional=True, activations=["HardSigmoid", "Softsign"], clip=3)
    assert both._forms[0] == both._forms[1] and both.clip == 3.0 and both.activations == ["HardSigmoid", "Softsign"]
    assert both._forms[0][1]["activations"] == [("HardSigmoid", 0.2, 0.5), "Softsign"]  # ONNX's defaults filled in
    default = rnnkit.LSTM(3, 4, activations=["Sigmoid", "Tanh", "Tanh"])  # the LSTM's own: no options
    assert default._forms == [("lstm", dict(activations=None, clip=None, input_forget=False))]


def test_layer_option_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"activations must have 3 entries for cell 'lstm' .*got 2"):
        rnnkit.LSTM(3, 4, activations=["Sigmoid", "Tanh"])
    with pytest.raises(ValueError, match=r"activations must have 2 entries for cell 'gru' .*or 4 for a bidirectional"):
        rnnkit.GRU(3, 4, bidirectional=True, activations=["Sigmoid", "Tanh", "Tanh"])
    with pytest.raises(ValueError, match=r"activations\[1\]: unknown activation 'Gelu'"):
        rnnkit.LSTM(3, 4, activations=["Sigmoid", "Gelu", "Tanh"])
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        rnnkit.GRU(3, 4, clip=-1.0)
    with pytest.raises(ValueError, match="input_forget .* is an option of the LSTM, not of cell 'gru'"):
        rnnkit.GRU(3, 4, input_forget=True)
    with pytest.raises(ValueError, match="give nonlinearity or activations, not both"):
        rnnkit.RNN(3, 4, nonlinearity="relu", activations=["Tanh"])
    with pytest.raises(ValueError, match="give nonlinearity or activations, not both"):
        rnnkit.RNNCell(3, 4, nonlinearity="relu", activations=["Tanh"])
    with pytest.raises(TypeError, match="peepholes must be True or False"):
        rnnkit.LSTMCell(3, 4, peepholes=1)


@pytest.mark.parametrize("backend", ["numpy", "cpp", "numba"])
def test_cells_with_peepholes_and_options_step_like_their_layer(backend):
    """LSTMCell(peepholes=True, clip=, activations=) stepped over a sequence gives the layer's
    outputs, and its backward the layer's gradients; GRUCell and RNNCell with options likewise."""
    if backend not in _backends_with_options():
        pytest.skip(f"{backend} does not run ONNX's options here")
    if options_skipped(backend):
        pytest.skip(options_skipped(backend))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 3))
    for cell_cls, layer_cls, kw in (
        (rnnkit.LSTMCell, rnnkit.LSTM, dict(peepholes=True, clip=1.2, activations=["HardSigmoid", "Softsign", "Tanh"])),
        (rnnkit.LSTMCell, rnnkit.LSTM, dict(input_forget=True)),
        (rnnkit.GRUCell, rnnkit.GRU, dict(linear_before_reset=False, activations=["Sigmoid", "Elu"])),
        (rnnkit.RNNCell, rnnkit.RNN, dict(activations=[("LeakyRelu", 0.1)])),
    ):
        layer = layer_cls(3, 4, dtype=np.float64, seed=0, backend=backend, **kw)
        cell = cell_cls(3, 4, dtype=np.float64, seed=1, backend=backend, **kw)
        cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
        y, _ = layer(x)
        dy = rng.standard_normal(y.shape)
        layer.backward(dy)
        lstm = layer._lstm
        s = None
        for t in range(4):
            s = cell(x[t], s)
            np.testing.assert_allclose(s[0] if lstm else s, y[t], rtol=1e-12, atol=1e-14)
        ds = (np.zeros((2, 4)), np.zeros((2, 4))) if lstm else np.zeros((2, 4))
        for t in range(3, -1, -1):
            if lstm:
                ds = (ds[0] + dy[t], ds[1])
            else:
                ds = ds + dy[t]
            _, ds = cell.backward(ds)
        for n, g in cell.grads.items():
            np.testing.assert_allclose(g, layer.grads[n + "_l0"], rtol=1e-10, atol=1e-12, err_msg=f"{cell_cls.__name__} {n}")
