"""Each bad input and the message it produces: the argument is named, with what was expected and given.
Runs on every backend (validation is shared, so the message must not depend on the backend); on
"cuda" with the arrays as CuPy arrays (lengths stay on the host), skipping with the reason where no
GPU is usable."""

import re

import numpy as np
import pytest
from _helpers import GPU_BACKENDS, make_case, to_device

import rnnkit
from rnnkit import functional as F

f32, f64 = np.float32, np.float64


@pytest.fixture
def backend(any_backend):
    """Every backend, the GPU one included."""
    return any_backend


def _lstm(T=4, B=3, I=5, H=2, dtype=f64):
    return make_case("lstm", T=T, B=B, I=I, H=H, dtype=dtype, seed=1)


def _call(case, backend="numpy", **over):
    kw = dict(cell=case.cell, x=case.x, weights=case.weights, state=case.state,
              lengths=case.lengths, reverse=False, training=True, backend=backend)  # fmt: skip
    kw.update(over)
    cell, x, weights, state = kw.pop("cell"), kw.pop("x"), kw.pop("weights"), kw.pop("state")
    x, weights, state = to_device((x, weights, state), backend)
    return F.forward(cell, x, weights, state, **kw)


W = _lstm().weights
BAD = {
    # name: (overrides, exception, fragments that must appear in the message)
    "unknown_cell": (dict(cell="lstmx"), ValueError, ["cell", "'lstmx'", "'gru'"]),
    "x_2d": (dict(x=np.zeros((4, 5))), ValueError, ["x must be 3-D", "(4, 5)"]),
    "x_int": (dict(x=np.zeros((4, 3, 5), np.int64)), TypeError, ["x", "float32 or float64", "int64"]),
    "x_f16": (dict(x=np.zeros((4, 3, 5), np.float16)), TypeError, ["x", "float16"]),
    "W_ih_wrong_I": (dict(weights=(W[0][:, :4],) + W[1:]), ValueError, ["W_ih", "(8, 5)", "(8, 4)"]),
    "W_hh_not_square": (dict(weights=(W[0], W[1][:7], W[2], W[3])), ValueError, ["W_hh", "(G*H, H)", "G=4", "(7, 2)"]),
    "W_hh_wrong_gates": (dict(weights=(W[0], np.zeros((6, 2)), W[2], W[3])), ValueError, ["W_hh", "G=4", "(6, 2)"]),
    "W_hh_1d": (dict(weights=(W[0], np.zeros(8), W[2], W[3])), ValueError, ["W_hh", "(8,)"]),
    "b_ih_wrong": (dict(weights=(W[0], W[1], W[2][:5], W[3])), ValueError, ["b_ih", "(8,)", "(5,)"]),
    "b_hh_2d": (dict(weights=W[:3] + (W[3][None],)), ValueError, ["b_hh", "(8,)", "(1, 8)"]),
    "weights_short": (dict(weights=W[:2]), TypeError, ["weights", "(W_ih, W_hh, b_ih, b_hh)", "length 2"]),
    "weights_missing_W": (dict(weights=(None,) + W[1:]), TypeError, ["W_ih and W_hh are required"]),
    "mixed_dtype": (dict(weights=(W[0].astype(f32),) + W[1:]), TypeError, ["W_ih", "float32", "float64", "share one dtype"]),
    "state_not_pair": (dict(state=np.zeros((3, 2))), TypeError, ["state", "(h0, c0)"]),
    "h0_wrong": (dict(state=(np.zeros((2, 2)), np.zeros((3, 2)))), ValueError, ["h0", "(B, H) = (3, 2)", "(2, 2)"]),
    "c0_dtype": (dict(state=(np.zeros((3, 2)), np.zeros((3, 2), f32))), TypeError, ["c0", "float32", "share one dtype"]),
    "lengths_float": (dict(lengths=np.array([1.0, 2.0, 3.0])), TypeError, ["lengths", "integer", "float64"]),
    "lengths_bool": (dict(lengths=np.array([True, False, True])), TypeError, ["lengths", "bool"]),
    "lengths_shape": (dict(lengths=np.array([1, 2])), ValueError, ["lengths", "(B,) = (3,)", "(2,)"]),
    "lengths_scalar": (dict(lengths=np.int64(2)), ValueError, ["lengths", "(B,) = (3,)", "()"]),
    "lengths_too_long": (dict(lengths=[1, 5, 2]), ValueError, ["0 <= lengths[b] <= T = 4", "lengths[1] = 5"]),
    "lengths_negative": (dict(lengths=[1, 2, -1]), ValueError, ["lengths[2] = -1"]),
    "reverse_not_bool": (dict(reverse="yes"), TypeError, ["reverse", "'yes'"]),
    "training_not_bool": (dict(training=None), TypeError, ["training", "None"]),
    "unknown_backend": (dict(backend="cuda9"), ValueError, ["backend", "'cuda9'", "'numpy'"]),
    "cell_not_a_string": (dict(cell=["lstm"]), ValueError, ["cell must be one of", "['lstm']"]),
    "x_masked": (dict(x=np.ma.masked_array(np.zeros((4, 3, 5)))), TypeError, ["x is a masked array", "lengths"]),
    "x_complex": (dict(x=np.zeros((4, 3, 5), np.complex128)), TypeError, ["x", "float32 or float64", "complex128"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_forward_input_raises_a_clear_error(backend, name):
    over, exc, fragments = BAD[name]
    if backend in GPU_BACKENDS and name == "x_masked":
        pytest.skip("a masked array is a NumPy (host) object")
    if name != "unknown_backend":
        over = dict(over, backend=backend)
    with pytest.raises(exc) as info:
        _call(_lstm(), **over)
    for frag in fragments:
        assert frag in str(info.value), f"message {str(info.value)!r} lacks {frag!r}"


def test_rnn_state_must_be_one_array(backend):
    case = make_case("gru", seed=0)
    x, weights, h0 = to_device((case.x, case.weights, case.state), backend)
    with pytest.raises(TypeError, match=r"state of cell 'gru' must be a single array h0.*tuple"):
        F.forward("gru", x, weights, (h0, h0), backend=backend)


def test_backward_without_training_ctx(backend):
    case = _lstm()
    y, _, ctx = _call(case, backend=backend, training=False)
    assert ctx is None
    with pytest.raises(ValueError, match="training=True"):
        F.backward(ctx, case.dy)
    with pytest.raises(TypeError, match="ctx must be the Context"):
        F.backward("ctx", case.dy)


@pytest.mark.parametrize(
    "dy, dstate, exc, fragments",
    [
        (np.zeros((4, 3, 3)), None, ValueError, ["dy", "(T, B, H) = (4, 3, 2)", "(4, 3, 3)"]),
        (np.zeros((4, 3, 2), f32), None, TypeError, ["dy", "float32", "float64"]),
        (np.zeros((4, 3, 2), np.int32), None, TypeError, ["dy", "int32"]),
        (np.zeros((4, 3, 2)), np.zeros((3, 2)), TypeError, ["dstate_n", "(dh_n, dc_n)"]),
        (np.zeros((4, 3, 2)), (np.zeros((3, 2)), np.zeros((3, 3))), ValueError, ["dc_n", "(3, 3)"]),
    ],
)
def test_bad_backward_input_raises_a_clear_error(backend, dy, dstate, exc, fragments):
    _, _, ctx = _call(_lstm(), backend=backend)
    dy, dstate = to_device((dy, dstate), backend)
    with pytest.raises(exc) as info:
        F.backward(ctx, dy, dstate)
    for frag in fragments:
        assert frag in str(info.value), f"message {str(info.value)!r} lacks {frag!r}"


@pytest.mark.parametrize("T,B", [(0, 3), (4, 0), (0, 0)])
def test_empty_inputs_give_empty_results(backend, cell, T, B):
    case = make_case(cell, T=T, B=B, I=3, H=4, seed=0)
    got = case.run(backend)
    assert got["y"].shape == (T, B, 4) and got["dx"].shape == (T, B, 3)
    assert got["dW_ih"].shape == case.weights[0].shape
    assert not got["dW_ih"].any()
    if T == 0:
        np.testing.assert_array_equal(got["h_n"], case.state[0] if cell == "lstm" else case.state)


def test_torch_tensor_is_refused_with_a_hint():
    torch = pytest.importorskip("torch")
    case = _lstm()
    with pytest.raises(TypeError, match="torch.Tensor.*NumPy"):
        F.forward("lstm", torch.from_numpy(case.x), case.weights)


def test_available_backends_lists_reasons():
    b = rnnkit.available_backends()
    assert "numpy" in b and b[-1] == "numpy"
    for name, why in b.missing.items():
        assert name not in b and why


def test_foreign_byte_order_is_converted_on_every_argument(backend, cell):
    """Big-endian arrays gave the C++ backend uninitialised memory (y up to 1e31) and numba a raw
    TypingError: every array argument is converted to native order once, like a strided one."""
    if backend in GPU_BACKENDS:
        pytest.skip("byte order is a host matter: GPU arrays are in native order")
    case = make_case(cell, T=4, B=3, I=5, H=4, dtype=f32, lengths=[4, 1, 3], seed=2)
    want = case.run(backend)

    def big(a):
        if a is None:
            return None
        if isinstance(a, tuple):
            return tuple(big(v) for v in a)
        return a.astype(a.dtype.newbyteorder(">"))

    swapped = type(case)(cell, big(case.x), big(case.weights), big(case.state), case.lengths,
                         case.reverse, big(case.dy), big(case.dstate_n))  # fmt: skip
    got = swapped.run(backend)
    for k in want:
        assert got[k].dtype.isnative, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_empty_lengths_list_for_an_empty_batch(backend):
    case = _lstm(B=0)
    y, _, _ = _call(case, backend, lengths=[])
    assert y.shape == (4, 0, 2)


def _core_args(monkeypatch, cell="lstm", training=True, lengths=None):
    """The exact arguments rnnkit._cpp hands to rnnkit._core.forward/backward for one call."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp backend not built")
    from rnnkit import _cpp

    real, seen = _cpp._core, {}

    class Recorder:
        def __getattr__(self, name):
            def call(*args):
                seen[name] = list(args)
                return getattr(real, name)(*args)

            return call

    monkeypatch.setattr(_cpp, "_core", Recorder())
    case = make_case(cell, T=4, B=3, I=5, H=6, dtype=f32, lengths=lengths, seed=3)
    y, _, ctx = case.forward("cpp", training=training)
    if training:
        F.backward(ctx, case.dy, case.dstate_n)
    return real, seen


# (function, argument position, replacement, message fragment)
_CORE_BAD = {
    "unknown_cell": ("forward", 0, 7, "cell must be 0 (rnn_tanh)"),
    "y_too_small": ("forward", 1, np.zeros((4, 3, 5), f32), "y must have shape (4, 3, 6), got (4, 3, 5)"),
    "y_float64": ("forward", 1, np.zeros((4, 3, 6), f64), "y must be a float32 array"),
    "y_strided": ("forward", 1, np.zeros((4, 3, 12), f32)[:, :, ::2], "y must have rows of H contiguous elements"),
    "y_rows_apart_unevenly": ("forward", 1, np.zeros((4, 4, 12), f32)[:, :3, :6], "y must have rows of H contiguous"),
    "y_read_only": ("forward", 1, np.lib.stride_tricks.as_strided(np.zeros((4, 3, 6), f32), writeable=False),
                    "y must be writeable"),
    "c_n_missing": ("forward", 3, None, "c_n is required here"),
    "xg_list": ("forward", 4, [[0.0]], "xg must be a float32 array (the dtype of x), got <class 'list'>"),
    "perm_out_of_range": ("forward", 16, np.array([0, 1, 5]), "perm must be a permutation"),
    "perm_int32": ("forward", 16, np.array([0, 1, 2], np.int32), "perm must be an int64 array"),
    "batch_sizes_growing": ("forward", 17, np.array([3, 2, 3, 1]), "batch_sizes must be non-increasing"),
    "offsets_wrong": ("forward", 18, np.array([0, 3, 6, 9, 99]), "offsets must be the running sums"),
    "dg_too_small": ("backward", 8, np.zeros((11, 24), f32), "dg must have shape (12, 24), got (11, 24)"),
    "h_prev_missing": ("backward", 15, None, "h_prev is required here"),
}


@pytest.mark.parametrize("name", list(_CORE_BAD))
def test_private_core_checks_every_buffer(monkeypatch, name):
    """rnnkit._core segfaulted on wrong-sized outputs and out-of-range plans, ran an unknown cell
    as a tanh RNN, and copied mismatched outputs into temporaries (results lost): now each is a
    ValueError naming the buffer."""
    core, seen = _core_args(monkeypatch)
    fn, pos, value, fragment = _CORE_BAD[name]
    args = list(seen[fn])
    args[pos] = value
    with pytest.raises(ValueError, match=re.escape(fragment)):
        getattr(core, fn)(*args)
    getattr(core, fn)(*seen[fn])  # the recorded call itself is fine


def _entry_point_calls():
    """(callable, exception, message fragment) for bad input to every public entry point other
    than functional.forward (the table above)."""
    from rnnkit import training as tr

    case = _lstm()
    lstm = rnnkit.LSTM(5, 2)
    lin = rnnkit.Linear(3, 2)
    emb = rnnkit.Embedding(4, 3)
    x = np.zeros((4, 3, 5), np.float32)
    return {
        "return_states_str": (lambda: _call(case, return_states="no"), TypeError, "return_states must be True or False"),
        "dh_norms_str": (lambda: F.backward(_call(case)[2], case.dy, dh_norms="yes"), TypeError, "dh_norms"),
        "lstm_backward_wide_dy": (lambda: (lstm(x), lstm.backward(np.zeros((4, 3, 3), np.float32))), ValueError,
                                  "dy must have the shape of the last forward's output (4, 3, 2), got (4, 3, 3)"),
        "linear_backward_wrong_dy": (lambda: (lin(np.zeros((5, 3), np.float32)), lin.backward(np.zeros((2, 5)))),
                                     ValueError, "dy must have the shape of the last forward's output (5, 2)"),
        "embedding_backward_wrong_dy": (lambda: (emb(np.array([1, 2])), emb.backward(np.zeros((3, 3)))), ValueError,
                                        "(2, 3), got (3, 3)"),
        "linear_int_dtype": (lambda: rnnkit.Linear(3, 2, dtype=np.int64), TypeError, "dtype must be float32 or float64, got int64"),
        "embedding_int_dtype": (lambda: rnnkit.Embedding(3, 2, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
        "cell_int_dtype": (lambda: rnnkit.GRUCell(3, 2, dtype=np.int64), TypeError, "dtype must be float32 or float64"),
        "layer_dropout_bool": (lambda: rnnkit.GRU(3, 2, dropout=True), ValueError, "dropout must be a number in [0, 1)"),
        "load_state_dict_str": (lambda: lin.load_state_dict({"weight": "abc", "bias": np.zeros(2)}), TypeError,
                                "load_state_dict: weight must be an array of numbers"),
        "cross_entropy_0d": (lambda: tr.softmax_cross_entropy(np.float32(1.0), 0), ValueError, "logits must be a float array"),
        "clip_norm_str": (lambda: tr.clip_grad_norm({"w": np.ones(2)}, "1"), TypeError, "max_norm must be a number, got str"),
        "clip_value_negative": (lambda: tr.clip_grad_value({"w": np.ones(2)}, -1), ValueError, "clip_value must lie in (0, inf)"),
        "sgd_negative_lr": (lambda: tr.SGD({}, lr=-0.1), ValueError, "lr must lie in [0, inf), got -0.1"),
        "sgd_missing_grad": (lambda: tr.SGD({"w": np.ones(2)}).step({}), KeyError, "no gradient for parameter 'w'"),
        "adam_beta_one": (lambda: tr.Adam({}, betas=(1.0, 0.999)), ValueError, "betas[0] must lie in [0, 1), got 1.0"),
        "adam_negative_eps": (lambda: tr.Adam({}, eps=-1e-8), ValueError, "eps must lie in (0, inf)"),
        "adam_missing_grad": (lambda: tr.Adam({"w": np.ones(2)}).step({"v": np.ones(2)}), KeyError, "'w'"),
        "tbptt_chunk_zero": (lambda: list(tr.tbptt_chunks(10, 0)), ValueError, "chunk must be >= 1, got 0"),
    }


_ENTRY = list(_entry_point_calls())


@pytest.mark.parametrize("name", _ENTRY)
def test_every_entry_point_names_bad_input(name):
    fn, exc, fragment = _entry_point_calls()[name]
    with pytest.raises(exc, match=re.escape(fragment)):
        fn()


@pytest.mark.parametrize("make, fit", [
    (lambda: rnnkit.LSTM(5, 2), lambda m: m(np.ones((4, 3, 5), np.float32))[0]),
    (lambda: rnnkit.Linear(5, 2), lambda m: m(np.ones((4, 5), np.float32))),
    (lambda: rnnkit.Embedding(5, 2), lambda m: m(np.array([1, 2, 1]))),
])  # fmt: skip
def test_layer_backward_twice_raises_unless_retained(make, fit):
    """layer.backward twice after one forward silently doubled layer.grads: like torch, a second
    backward raises unless the first asked to keep the graph."""
    m = make()
    y = fit(m)
    m.backward(np.ones_like(y), retain_graph=True)
    once = {k: v.copy() for k, v in m.grads.items()}
    m.backward(np.ones_like(y))
    for k in once:
        np.testing.assert_allclose(m.grads[k], 2 * once[k], rtol=1e-6)
    with pytest.raises(RuntimeError, match="backward was already called for the last forward"):
        m.backward(np.ones_like(y))
    y = fit(m)  # a new forward may be differentiated again
    m.backward(np.ones_like(y))


@pytest.mark.parametrize("args", [
    ["demo", "--hidden", "1000000000"],
    ["gradnorm", "--steps", "1000000000"],
    ["gradnorm", "-o", "."],
    ["bench", "--threads", "2147483648"],
    ["bench", "--json", "/nonexistent-dir/x.json"],
    ["bench", "--plot", "/nonexistent-dir/x.png"],
])  # fmt: skip
def test_command_refuses_bad_arguments_before_running(args, capsys):
    from rnnkit.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err, err


def test_demo_text_is_capped(tmp_path, capsys):
    from rnnkit.__main__ import main
    from rnnkit.demos import charlm

    big = tmp_path / "big.txt"
    big.write_text("a" * (charlm.MAX_TEXT + 1))
    assert main(["demo", "--text", str(big)]) == 1
    assert "longer than 10,000,000 characters" in capsys.readouterr().err


def _as_given(case, kind):
    """forward's arguments for `case`, in one of the forms users pass."""
    x, w, st = case.x, case.weights, case.state
    if kind == "list_weights":
        w = list(w)
    elif kind == "no_state":
        st = None
    elif kind == "half_state" and case.cell == "lstm":
        st = (st[0], None)
    elif kind == "strided_x":
        x = np.repeat(x, 2, axis=2)[:, :, ::2]
    elif kind == "numpy_bools":
        return x, w, st, np.bool_(True), np.bool_(False)
    return x, w, st, False, True


@pytest.mark.parametrize("bias", ["both", "none", "ih"])
@pytest.mark.parametrize("kind", ["plain", "list_weights", "no_state", "half_state", "strided_x", "numpy_bools"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_validation_path_gives_what_the_full_path_gives(cell, dtype, kind, bias):
    """_validate.problem answers common calls (exact contiguous arrays, no lengths) from a fast path
    that skips the full path's conversions and messages: the Problem must be the same, field by
    field, and anything unusual must be left to the full path."""
    from rnnkit import _validate as V

    case = make_case(cell, T=3, B=2, I=4, H=5, dtype=dtype, bias=bias, seed=1)
    x, w, st, reverse, training = _as_given(case, kind)
    fast = V._fast_problem(cell, x, w, st, None, reverse, training)
    full = V._checked_problem(cell, x, w, st, None, reverse, training)
    if kind in ("strided_x", "numpy_bools"):
        assert fast is None  # converted or normalised: the full path's job
        return
    assert fast is not None
    for f in full.__dataclass_fields__:
        a, b = getattr(fast, f), getattr(full, f)
        if isinstance(b, np.ndarray):
            assert type(a) is np.ndarray and a.dtype == b.dtype and a.flags.c_contiguous, f
            np.testing.assert_array_equal(a, b, err_msg=f)
        else:
            assert a == b and type(a) is type(b), f
    for bad in (dict(lengths=[3, 1]), dict(x=x.astype(x.dtype.newbyteorder(">")))):
        args = dict(cell=cell, x=x, weights=w, state=st, lengths=None, reverse=reverse, training=training) | bad
        assert V._fast_problem(**args) is None


def test_lstm_peephole_weights_are_checked():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 3))
    w = (rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), None, None)
    with pytest.raises(TypeError, match=r"weights must be a tuple \(W_ih, W_hh, b_ih, b_hh, P\) for cell 'lstm_peephole'"):
        F.forward("lstm_peephole", x, w)
    with pytest.raises(TypeError, match="P \\(the peephole weights\\) is required"):
        F.forward("lstm_peephole", x, (*w, None))
    with pytest.raises(ValueError, match=r"P must have shape \(3\*H,\) = \(6,\)"):
        F.forward("lstm_peephole", x, (*w, np.zeros(4)))
    with pytest.raises(ValueError, match=r"W_hr must have shape \(S, H\).*peepholes P are cell 'lstm_peephole'"):
        F.forward("lstm", x, (*w, np.zeros(6)))
    with pytest.raises(TypeError, match=r"weights must be a tuple \(W_ih, W_hh, b_ih, b_hh\) or \(W_ih, W_hh, b_ih, b_hh, W_hr\) for cell 'lstm'"):
        F.forward("lstm", x, (*w, None, None))


def test_a_cell_a_backend_does_not_implement_is_refused_by_name(monkeypatch):
    """A form a compiled backend lacks (every backend runs every form today, so one is taken away):
    an explicit backend names the cell and where it runs; auto falls back to the reference, with
    a warning once."""
    import warnings

    from rnnkit import _backends

    x = np.random.default_rng(0).standard_normal((2, 1, 3))
    gw = (np.ones((6, 3)), np.ones((6, 2)), None, None)
    fast = [b for b in ("cpp", "numba") if b in rnnkit.available_backends()]
    if not fast:
        pytest.skip("no compiled backend here")
    for b in fast:
        monkeypatch.delattr(_backends._load(b), "gru_reset_before_forward", raising=False)
    with pytest.raises(NotImplementedError, match=f"cell 'gru_reset_before' is not implemented by backend '{fast[0]}' "
                                                  r"yet; it runs on 'numpy' \(or backend='auto'\)"):
        F.forward("gru_reset_before", x, gw, backend=fast[0])
    monkeypatch.setattr(_backends, "_warned", set())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y, _, _ = F.forward("gru_reset_before", x, gw)
        F.forward("gru_reset_before", x, gw)
    assert [str(m.message) for m in w if "NumPy reference only" in str(m.message)] == [
        "cell 'gru_reset_before' is implemented by the NumPy reference only so far (backend 'numpy'): it runs far "
        "slower than the other cells"]
    np.testing.assert_array_equal(y, F.forward("gru_reset_before", x, gw, backend="numpy")[0])


def test_onnx_options_are_checked():
    """functional.forward's activations, clip and input_forget: each bad value names the argument,
    what was expected and what was given."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 3))
    lw = (rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), None, None)
    gw = (rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), None, None)
    cases = [
        (dict(activations="tanh"), TypeError, r"activations must be a list of 3 activation\(s\) for cell 'lstm' \(f \(i, f "
                                              r"and o\), g \(the candidate cell\), h \(the output\)\), got 'tanh'"),
        (dict(activations=["Sigmoid", "Tanh"]), ValueError, r"activations must have 3 entries for cell 'lstm'.*got 2"),
        (dict(activations=["Sigmoid", "Gelu", "Tanh"]), ValueError,
         r"activations\[1\]: unknown activation 'Gelu'; expected one of Sigmoid, Tanh, Relu, Softsign, Softplus"),
        (dict(activations=["Sigmoid", 3, "Tanh"]), TypeError,
         r"activations\[1\] must be an activation name or a tuple \(name, alpha\[, beta\]\), got 3"),
        (dict(activations=["Sigmoid", "ScaledTanh", "Tanh"]), ValueError,
         r"activations\[1\]: ScaledTanh needs alpha \(it has no default\)"),
        (dict(activations=[("Relu", 1.0), "Tanh", "Tanh"]), ValueError, r"activations\[0\]: Relu takes no parameters, got 1"),
        (dict(activations=[("Elu", 1.0, 2.0), "Tanh", "Tanh"]), ValueError, r"activations\[0\]: Elu takes at most 1 \(alpha\), got 2"),
        (dict(activations=[("LeakyRelu", float("nan")), "Tanh", "Tanh"]), ValueError,
         r"activations\[0\]: LeakyRelu's alpha must be a finite number, got nan"),
        (dict(clip=0), ValueError, r"clip must be a positive finite number \(the bound of every gate's input\) or None, got 0"),
        (dict(clip="1"), ValueError, r"clip must be a positive finite number .* got '1'"),
        (dict(input_forget=1), TypeError, r"input_forget must be True or False, got 1"),
    ]
    for kw, kind, msg in cases:
        with pytest.raises(kind, match=msg):
            F.forward("lstm", x, lw, **kw)
    with pytest.raises(ValueError, match=r"input_forget \(f = 1 - i\) is an option of the LSTM, not of cell 'gru'"):
        F.forward("gru", x, gw, input_forget=True)
    with pytest.raises(ValueError, match=r"activations must have 2 entries for cell 'gru' \(f \(r and z\), g \(n\)\), got 3"):
        F.forward("gru", x, gw, activations=["Sigmoid", "Tanh", "Tanh"])
