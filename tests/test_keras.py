"""rnnkit.keras against Keras 3 itself, on its torch backend: every converted layer computes what the
Keras layer computes (outputs and states), rnnkit's parameters written back make Keras compute
rnnkit's outputs, and everything the converter cannot honour raises an error naming the layer."""

import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported; no TensorFlow here

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import rnnkit  # noqa: E402
import rnnkit.keras as rk  # noqa: E402

L = keras.layers
B, T, I, H = 3, 5, 4, 6

# Keras's Variable.numpy() (inside get_weights) calls np.array on an object whose __array__ takes
# no copy keyword; NumPy 2 warns about that, and this suite turns warnings into errors.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:cell 'gru_reset_before' is implemented by the NumPy reference"),
]

RECURRENT = {
    "simple_tanh": lambda **kw: L.SimpleRNN(H, **kw),
    "simple_relu": lambda **kw: L.SimpleRNN(H, activation="relu", **kw),
    "lstm": lambda **kw: L.LSTM(H, **kw),
    "gru": lambda **kw: L.GRU(H, **kw),
    "gru_reset_before": lambda **kw: L.GRU(H, reset_after=False, **kw),  # rnnkit.GRU(linear_before_reset=False)
    # activations other than torch's: rnnkit's ONNX activations
    "simple_elu": lambda **kw: L.SimpleRNN(H, activation="elu", **kw),
    "lstm_acts": lambda **kw: L.LSTM(H, activation="softsign", recurrent_activation="hard_sigmoid", **kw),
    "gru_acts": lambda **kw: L.GRU(H, activation="relu", recurrent_activation="hard_sigmoid", **kw),
    "gru_reset_before_acts": lambda **kw: L.GRU(H, reset_after=False, activation="leaky_relu", **kw),
}
# the rnnkit layer of each (rnnkit.RNN/LSTM/GRU keyword arguments)
RNNKIT_KW = {
    "simple_tanh": dict(nonlinearity="tanh"), "simple_relu": dict(nonlinearity="relu"), "lstm": {}, "gru": {},
    "gru_reset_before": dict(linear_before_reset=False), "simple_elu": dict(activations=[("Elu", 1.0)]),
    "lstm_acts": dict(activations=[("HardSigmoid", 1 / 6, 0.5), "Softsign", "Softsign"]),
    "gru_acts": dict(activations=[("HardSigmoid", 1 / 6, 0.5), "Relu"]),
    "gru_reset_before_acts": dict(linear_before_reset=False, activations=["Sigmoid", ("LeakyRelu", 0.2)]),
}  # fmt: skip
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _x(dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(dtype)


def _randomize(layer, seed=1):
    """Random weights everywhere (Keras initialises the biases to zeros, or ones for the forget gate)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(w.dtype) for w in layer.get_weights()])


def _keras_out(layer, x):
    out = layer(x)
    return [_np(o) for o in out] if isinstance(out, (list, tuple)) else [_np(out)]


def _parts(state):
    return (state, None) if not isinstance(state, tuple) else state


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_recurrent_layer_matches_keras(kind, go_backwards, use_bias, return_sequences):
    k = RECURRENT[kind](return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, use_bias=use_bias)
    x = _x()
    k(x)
    _randomize(k)
    out, *states = _keras_out(k, x)
    layer = rk.from_keras(k).eval()
    assert isinstance(layer, rk.GoBackwards) == go_backwards
    inner = layer.layer if go_backwards else layer
    assert inner.batch_first and inner.bias == use_bias and (inner.input_size, inner.hidden_size) == (I, H)
    y, state = layer(x)
    h_n, c_n = _parts(state)
    np.testing.assert_allclose(y if return_sequences else y[:, -1], out, **TOL[np.float32])
    np.testing.assert_allclose(h_n[-1], out[:, -1] if return_sequences else out, **TOL[np.float32])
    np.testing.assert_allclose(h_n[0], states[0], **TOL[np.float32])
    if kind == "lstm":
        np.testing.assert_allclose(c_n[0], states[1], **TOL[np.float32])


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_float64(kind):
    k = RECURRENT[kind](return_sequences=True, dtype="float64")
    x = _x(np.float64)
    k(x)
    _randomize(k)
    (out,) = _keras_out(k, x)
    assert out.dtype == np.float64
    layer = rk.from_keras(k, dtype=np.float64, backend="numpy").eval()
    y, _ = layer(x)
    assert y.dtype == np.float64
    # Keras's own SimpleRNN (and GRU with reset_after=False) is float64 in name only on the torch
    # backend: keras.ops.matmul of two float64 tensors returns float32 there (Keras 3.15), so its
    # products are float32-accurate. (rnnkit's gru_reset_before is proven in float64 against finite
    # differences and ONNX's reference instead.)
    f32_only = kind.startswith("simple") or kind.startswith("gru_reset_before")
    np.testing.assert_allclose(y, out, **(TOL[np.float32] if f32_only else TOL[np.float64]))
    if kind.startswith("simple"):  # so the float64 check is Keras's formula, evaluated in float64
        kernel, recurrent, bias = k.get_weights()
        act = {"simple_tanh": np.tanh, "simple_relu": lambda z: np.maximum(z, 0),
               "simple_elu": lambda z: np.where(z > 0, z, np.expm1(z))}[kind]  # fmt: skip
        h, ref = np.zeros((B, H)), []
        for t in range(T):
            h = act(x[:, t] @ kernel + bias + h @ recurrent)
            ref.append(h)
        np.testing.assert_allclose(y, np.stack(ref, axis=1), **TOL[np.float64])


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_tanh"])
def test_bidirectional_matches_keras(kind, return_sequences):
    k = L.Bidirectional(RECURRENT[kind](return_sequences=return_sequences, return_state=True))
    x = _x()
    k(x)
    _randomize(k)
    out, *states = _keras_out(k, x)
    layer = rk.from_keras(k).eval()
    assert layer.bidirectional and layer.batch_first
    y, state = layer(x)
    h_n, c_n = _parts(state)
    final = np.concatenate([h_n[0], h_n[1]], axis=-1)  # Keras's return_sequences=False output
    np.testing.assert_allclose(y if return_sequences else final, out, **TOL[np.float32])
    if return_sequences:
        np.testing.assert_allclose(y[:, -1, :H], final[:, :H], **TOL[np.float32])
    want = [h_n[0], c_n[0], h_n[1], c_n[1]] if kind == "lstm" else [h_n[0], h_n[1]]
    for got, s in zip(want, states):
        np.testing.assert_allclose(got, s, **TOL[np.float32])


def test_bidirectional_float64_and_no_bias():
    k = L.Bidirectional(L.GRU(H, return_sequences=True, use_bias=False, dtype="float64"), dtype="float64")
    x = _x(np.float64)
    k(x)
    _randomize(k)
    (out,) = _keras_out(k, x)
    layer = rk.from_keras(k, dtype=np.float64).eval()
    assert not layer.bias
    np.testing.assert_allclose(layer(x)[0], out, **TOL[np.float64])


def _rnnkit_layer(kind, bidirectional=False, bias=True, seed=3):
    kw = dict(batch_first=True, bidirectional=bidirectional, bias=bias, seed=seed, **RNNKIT_KW[kind])
    cls = rnnkit.RNN if kind.startswith("simple") else rnnkit.LSTM if kind.startswith("lstm") else rnnkit.GRU
    return cls(I, H, **kw)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(RECURRENT))
def test_round_trip_to_keras(kind, go_backwards):
    layer = _rnnkit_layer(kind).eval()
    src = rk.GoBackwards(layer) if go_backwards else layer
    k = RECURRENT[kind](return_sequences=True, go_backwards=go_backwards)  # not built: to_keras builds it
    rk.to_keras(src, k)
    x = _x()
    np.testing.assert_allclose(_keras_out(k, x)[0], src(x)[0], **TOL[np.float32])
    back = rk.from_keras(k).eval()  # and back: the same outputs again
    np.testing.assert_allclose(back(x)[0], src(x)[0], **TOL[np.float32])


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "simple_relu", "lstm_acts", "simple_elu"])
def test_round_trip_bidirectional_and_bias(kind):
    x = _x()
    layer = _rnnkit_layer(kind, bidirectional=True).eval()
    k = L.Bidirectional(RECURRENT[kind](return_sequences=True))
    k(x)
    rk.to_keras(layer, k)
    np.testing.assert_allclose(_keras_out(k, x)[0], layer(x)[0], **TOL[np.float32])
    # an rnnkit layer without biases writes zeros into a Keras layer with them, or fits one without
    nob = _rnnkit_layer(kind, bias=False).eval()
    for use_bias in (True, False):
        k = RECURRENT[kind](return_sequences=True, use_bias=use_bias)
        rk.to_keras(nob, k)
        np.testing.assert_allclose(_keras_out(k, x)[0], nob(x)[0], **TOL[np.float32])


def test_keras_weights_round_trip_exactly():
    x = _x()
    for make in (lambda: L.LSTM(H), lambda: L.GRU(H), lambda: L.Bidirectional(L.GRU(H)), lambda: L.Dense(3)):
        k = make()
        k(x)
        _randomize(k)
        before = k.get_weights()
        rk.to_keras(rk.from_keras(k), k)
        for a, b in zip(before, k.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_dense_and_embedding():
    x = _x()
    d = L.Dense(3)
    d(x)
    _randomize(d)
    lin = rk.from_keras(d)
    assert isinstance(lin, rnnkit.Linear)
    np.testing.assert_allclose(lin(x), _keras_out(d, x)[0], **TOL[np.float32])
    d2 = L.Dense(3, use_bias=False)
    rk.to_keras(rnnkit.Linear(I, 3, bias=False, seed=0), d2)
    assert len(d2.get_weights()) == 1
    assert not rk.from_keras(d2).params.keys() - {"weight"}

    e = L.Embedding(10, 3)
    ids = np.array([[1, 2, 9], [0, 4, 4]])
    e(ids)
    emb = rk.from_keras(e)
    assert isinstance(emb, rnnkit.Embedding)
    np.testing.assert_array_equal(emb(ids), _keras_out(e, ids)[0])
    new = rnnkit.Embedding(10, 3, seed=1)
    rk.to_keras(new, e)
    np.testing.assert_array_equal(_keras_out(e, ids)[0], new(ids))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_sentiment_model_converts_layer_by_layer():
    """The sentiment model: Embedding(V, 8) -> LSTM(16) -> Dense(1, sigmoid), trained by Keras."""
    keras.utils.set_random_seed(0)
    V, N, S = 20, 64, 7
    rng = np.random.default_rng(0)
    ids = rng.integers(1, V, size=(N, S)).astype("int32")
    labels = (ids[:, :3].mean(axis=1) > V / 2).astype("float32")[:, None]  # a learnable toy rule
    model = keras.Sequential([keras.Input((S,), dtype="int32"), L.Embedding(V, 8), L.LSTM(16), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    w0 = [w.copy() for w in model.layers[1].get_weights()]
    model.fit(ids, labels, epochs=3, batch_size=16, verbose=0)
    assert not np.allclose(w0[0], model.layers[1].get_weights()[0])  # it did train
    want = _np(model(ids))

    emb, lstm, head = (rk.from_keras(layer, drop_activation=True) for layer in model.layers)
    lstm.eval()
    y, (h_n, c_n) = lstm(emb(ids))
    got = _sigmoid(head(h_n[-1]))
    assert got.shape == want.shape == (N, 1)
    np.testing.assert_allclose(got, want, **TOL[np.float32])
    np.testing.assert_allclose(_sigmoid(head(y[:, -1])), want, **TOL[np.float32])


def test_mask_zero_is_lengths():
    """Embedding(mask_zero=True) before a Keras LSTM: rnnkit's lengths give its final state."""
    V = 12
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0]], dtype="int32")
    e, k = L.Embedding(V, I, mask_zero=True), L.LSTM(H, return_state=True)
    out, h, c = (_np(t) for t in k(e(ids)))
    _randomize(k)
    out, h, c = (_np(t) for t in k(e(ids)))
    emb, lstm = rk.from_keras(e), rk.from_keras(k).eval()
    y, (h_n, c_n) = lstm(emb(ids), lengths=(ids != 0).sum(1))
    np.testing.assert_allclose(h_n[-1], out, **TOL[np.float32])
    np.testing.assert_allclose(c_n[-1], c, **TOL[np.float32])


def test_go_backwards_backward_matches_torch_autograd():
    """GoBackwards.backward: the gradient of Keras's go_backwards output, by torch's autograd."""
    import torch

    k = L.LSTM(H, return_sequences=True, go_backwards=True)
    x = _x()
    k(x)
    _randomize(k)
    xt = torch.tensor(x, requires_grad=True)
    dy = np.random.default_rng(5).standard_normal((B, T, H)).astype(np.float32)
    (k(xt) * torch.from_numpy(dy)).sum().backward()
    layer = rk.from_keras(k)
    layer.train()
    layer(x)
    dx, _ = layer.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[np.float32])
    assert set(layer.grads) == set(layer.params) == set(layer.layer.params)


def _built(layer, shape=(B, T, I)):
    layer.build(shape)
    return layer


def test_from_keras_errors():
    assert not rk.from_keras(_built(L.GRU(H, reset_after=False, name="g"))).linear_before_reset
    with pytest.raises(NotImplementedError, match=r"SimpleRNN layer 's': activation 'gelu' is not implemented"):
        rk.from_keras(_built(L.SimpleRNN(H, activation="gelu", name="s")))
    with pytest.raises(NotImplementedError, match=r"LSTM layer 'l': activation 'selu' is not implemented by rnnkit.LSTM"):
        rk.from_keras(_built(L.LSTM(H, activation="selu", name="l")))
    with pytest.raises(NotImplementedError, match=r"GRU layer 'g2': recurrent_activation 'silu' is not implemented"):
        rk.from_keras(_built(L.GRU(H, recurrent_activation="swish", name="g2")))
    # ONNX's activations convert; to_keras checks the rnnkit layer runs the Keras layer's
    assert rk.from_keras(_built(L.SimpleRNN(H, activation="sigmoid"))).activations == ["Sigmoid"]
    with pytest.raises(ValueError, match=r"to_keras: LSTM layer 'l3' has activations \[.*HardSigmoid.*the rnnkit layer runs its cell"):
        rk.to_keras(rnnkit.LSTM(I, H, batch_first=True), L.LSTM(H, recurrent_activation="hard_sigmoid", name="l3"))
    with pytest.raises(ValueError, match=r"to_keras: LSTM layer 'l4' has no clip or input_forget"):
        rk.to_keras(rnnkit.LSTM(I, H, batch_first=True, clip=1.0), L.LSTM(H, name="l4"))
    with pytest.raises(NotImplementedError, match=r"Bidirectional layer 'bi': merge_mode 'sum' is not implemented"):
        rk.from_keras(_built(L.Bidirectional(L.LSTM(H), merge_mode="sum", name="bi")))
    bi = L.Bidirectional(L.LSTM(H, go_backwards=True), backward_layer=L.LSTM(H), name="bi2")
    with pytest.raises(NotImplementedError, match=r"LSTM layer 'forward_lstm.*' \(in Bidirectional layer 'bi2'\): go_backwards=True"):
        rk.from_keras(_built(bi))
    bi = L.Bidirectional(L.LSTM(H), backward_layer=L.LSTM(H + 1, go_backwards=True), name="bi3")
    with pytest.raises(NotImplementedError, match=r"Bidirectional layer 'bi3': forward_layer and backward_layer differ"):
        rk.from_keras(_built(bi))
    with pytest.raises(TypeError, match=r"Conv1D layer 'c' has no rnnkit equivalent"):
        rk.from_keras(_built(L.Conv1D(2, 3, name="c")))
    with pytest.raises(ValueError, match=r"LSTM layer 'unbuilt' is not built"):
        rk.from_keras(L.LSTM(H, name="unbuilt"))
    with pytest.raises(ValueError, match=r"Dense layer 'd': activation 'sigmoid' .* drop_activation=True"):
        rk.from_keras(_built(L.Dense(1, activation="sigmoid", name="d"), (B, I)))
    with pytest.raises(NotImplementedError, match=r"Embedding layer 'e': lora_rank=2 is not implemented"):
        rk.from_keras(_built(L.Embedding(10, 3, lora_rank=2, name="e"), (B,)))
    with pytest.raises(TypeError, match="expected a Keras layer"):
        rk.from_keras(object())


class LSTM:
    """A stand-in duck-typed as a Keras LSTM, with weights of the wrong shapes."""

    name = "bad"

    def __init__(self, weights, use_bias=True):
        self._weights, self._use_bias = weights, use_bias

    def get_config(self):
        return {"units": H, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": self._use_bias}

    def get_weights(self):
        return self._weights


def test_wrong_weight_shapes_name_the_layer_and_the_array():
    good = [np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)]
    assert rk.from_keras(LSTM(good)).input_size == I  # the duck type converts
    with pytest.raises(ValueError, match=r"LSTM layer 'bad': kernel must have shape \(I, 24\), got \(4, 20\)"):
        rk.from_keras(LSTM([np.zeros((I, 20)), good[1], good[2]]))
    with pytest.raises(ValueError, match=r"LSTM layer 'bad': recurrent_kernel must have shape \(6, 24\), got \(5, 24\)"):
        rk.from_keras(LSTM([good[0], np.zeros((5, 4 * H)), good[2]]))
    with pytest.raises(ValueError, match=r"LSTM layer 'bad': bias must have shape \(24,\), got \(2, 24\)"):
        rk.from_keras(LSTM([good[0], good[1], np.zeros((2, 4 * H))]))
    with pytest.raises(ValueError, match=r"LSTM layer 'bad' has 3 weight arrays, expected 2 \(kernel, recurrent_kernel\)"):
        rk.from_keras(LSTM(good, use_bias=False))
    k = _built(L.GRU(H, name="g"))
    with pytest.raises(ValueError, match=r"to_keras: GRU layer 'g': kernel must have shape \(4, 18\), the rnnkit layer gives \(3, 18\)"):
        rk.to_keras(rnnkit.GRU(3, H), k)


def test_to_keras_errors():
    lstm = rnnkit.LSTM(I, H, batch_first=True, seed=0)
    with pytest.raises(TypeError, match=r"to_keras: GRU layer 'g' takes an rnnkit.GRU, got LSTM"):
        rk.to_keras(lstm, L.GRU(H, name="g"))
    with pytest.raises(ValueError, match=r"to_keras: LSTM layer 'l' has units=7, the rnnkit layer hidden_size=6"):
        rk.to_keras(lstm, L.LSTM(7, name="l"))
    with pytest.raises(ValueError, match=r"LSTM layer 'l' has go_backwards=True; wrap the rnnkit layer in rnnkit.keras.GoBackwards"):
        rk.to_keras(lstm, L.LSTM(H, go_backwards=True, name="l"))
    with pytest.raises(ValueError, match=r"LSTM layer 'l' has go_backwards=False"):
        rk.to_keras(rk.GoBackwards(lstm), L.LSTM(H, name="l"))
    with pytest.raises(ValueError, match=r"LSTM layer 'l' has no projection, the rnnkit.LSTM has proj_size=2"):
        rk.to_keras(rnnkit.LSTM(I, H, proj_size=2), L.LSTM(H, name="l"))
    with pytest.raises(ValueError, match=r"LSTM layer 'l' holds one layer, the rnnkit layer has num_layers=2"):
        rk.to_keras(rnnkit.LSTM(I, H, num_layers=2), L.LSTM(H, name="l"))
    with pytest.raises(ValueError, match=r"Bidirectional layer 'bi' takes a bidirectional=True rnnkit layer, got bidirectional=False"):
        rk.to_keras(lstm, L.Bidirectional(L.LSTM(H), name="bi"))
    with pytest.raises(ValueError, match=r"SimpleRNN layer 's' has activation 'tanh', the rnnkit.RNN runs 'relu'"):
        rk.to_keras(rnnkit.RNN(I, H, nonlinearity="relu"), L.SimpleRNN(H, name="s"))
    with pytest.raises(ValueError, match=r"LSTM layer 'l' has use_bias=False, but the rnnkit layer's biases are not zero"):
        rk.to_keras(lstm, L.LSTM(H, use_bias=False, name="l"))
    with pytest.raises(ValueError, match=r"GRU layer 'g' has reset_after=False, the rnnkit.GRU is of the other form"):
        rk.to_keras(rnnkit.GRU(I, H), L.GRU(H, reset_after=False, name="g"))
    with pytest.raises(TypeError, match=r"to_keras: Dense layer 'd' takes an rnnkit.Linear, got LSTM"):
        rk.to_keras(lstm, L.Dense(3, name="d"))
    with pytest.raises(TypeError, match=r"to_keras: Embedding layer 'e' takes an rnnkit.Embedding, got Linear"):
        rk.to_keras(rnnkit.Linear(3, 3), L.Embedding(3, 3, name="e"))
    with pytest.raises(TypeError, match=r"to_keras: Conv1D layer 'c' has no rnnkit equivalent"):
        rk.to_keras(lstm, L.Conv1D(2, 3, name="c"))
    with pytest.raises(ValueError, match="GoBackwards takes a unidirectional layer"):
        rk.GoBackwards(rnnkit.LSTM(I, H, bidirectional=True))
    with pytest.raises(TypeError, match="GoBackwards takes an rnnkit.RNN, LSTM or GRU, got Linear"):
        rk.GoBackwards(rnnkit.Linear(3, 3))
