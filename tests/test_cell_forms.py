"""The cell forms beyond torch's (ONNX's and Keras's): the LSTM with peepholes ("lstm_peephole") and
the GRU with the reset gate before the recurrent product ("gru_reset_before"), each on
every backend that implements it, over the same matrix of awkward cases as tests/test_backends.py,
against the NumPy reference (which tests/test_reference_onnx.py proves against ONNX); inference
against training; threads 1 against 2."""

import numpy as np
import pytest
from _helpers import BACKENDS, assert_close, make_case, options_skipped
from test_backends import CASES

import rnnkit
from rnnkit import _backends

FORMS = ("lstm_peephole", "gru_reset_before")


def _need(backend, cell):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    if not _backends._implements(backend, cell):
        pytest.skip(f"{backend} does not implement {cell} yet")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CASES))
def test_backend_matches_reference(backend, cell, dtype, name):
    _need(backend, cell)
    case = make_case(cell, dtype=dtype, seed=7, **CASES[name])
    want = case.astype(np.float64).run("numpy")
    got = case.run(backend)
    assert set(got) == set(want) and ("dP" in got) == (cell == "lstm_peephole")
    for k in want:
        assert got[k].dtype == dtype, f"{k}: dtype {got[k].dtype}, expected {dtype}"
        assert_close(k, got[k], want[k], dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", FORMS)
@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_inference_matches_training(backend, cell, lengths, reverse):
    _need(backend, cell)
    case = make_case(cell, T=7, B=5, H=12, dtype=np.float32, lengths=lengths, reverse=reverse, seed=11)
    y_t, s_t, ctx = case.forward(backend, training=True)
    y_i, s_i, none = case.forward(backend, training=False)
    assert none is None and ctx is not None
    for a, b in ((y_i, y_t), *zip(s_i, s_t)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@pytest.mark.parametrize("cell", FORMS)
@pytest.mark.parametrize("lengths", [None, "spread"])
def test_threads_give_bitwise_the_same(backend, cell, lengths):
    """Large enough that a step is split over two threads; the results must not depend on it."""
    _need(backend, cell)
    case = make_case(cell, T=6, B=24, I=16, H=256, dtype=np.float32, lengths=lengths, reverse=True, seed=2)
    before = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        one = case.run(backend)
        rnnkit.set_num_threads(2)
        two = case.run(backend)
    finally:
        rnnkit.set_num_threads(before)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_compiled_backends_implement_the_forms():
    """Where the C++ backend is built it runs every form itself (auto picks it, no warning)."""
    if "cpp" not in rnnkit.available_backends():
        pytest.skip("cpp not built")
    for cell in FORMS:
        assert _backends.resolve("auto", cell) == "cpp"


# ---- ONNX's options (activations, clip, input_forget) on the backends that run them ----

from test_reference_forms import FORMS as OPTION_FORMS  # noqa: E402
from test_reference_forms import IDS as OPTION_IDS  # noqa: E402

OPTION_CASES = {"plain": dict(), "lengths_reverse": dict(lengths="spread", reverse=True, B=5),
                "wide": dict(T=4, B=3, I=5, H=37)}  # fmt: skip


def _need_options(backend):
    if backend not in rnnkit.available_backends():
        pytest.skip(f"{backend} not available")
    if not _backends._implements(backend, None, options=True):
        pytest.skip(f"{backend} does not run ONNX's options yet")
    why = options_skipped(backend)
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(OPTION_CASES))
@pytest.mark.parametrize(("cell", "fid", "options"), OPTION_FORMS, ids=OPTION_IDS)
def test_options_match_reference(backend, dtype, name, cell, fid, options):
    _need_options(backend)
    case = make_case(cell, dtype=dtype, seed=17, scale=0.9, options=options, **{"T": 5, "H": 6, **OPTION_CASES[name]})
    want = case.astype(np.float64).run("numpy")
    got = case.run(backend)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == dtype, k
        assert_close(k, got[k], want[k], dtype)


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@pytest.mark.parametrize(("cell", "fid", "options"), OPTION_FORMS, ids=OPTION_IDS)
def test_options_inference_matches_training_and_threads_agree(backend, cell, fid, options):
    _need_options(backend)
    case = make_case(cell, T=5, B=24, I=8, H=64, dtype=np.float32, lengths="spread", reverse=True, seed=4,
                     scale=0.5, options=options)  # fmt: skip
    y_t, s_t, _ = case.forward(backend, training=True)
    y_i, s_i, _ = case.forward(backend, training=False)
    for a, b in ((y_i, y_t), *zip(s_i if cell in ("lstm", "lstm_peephole") else (s_i,),
                                  s_t if cell in ("lstm", "lstm_peephole") else (s_t,))):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    before = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        one = case.run(backend)
        rnnkit.set_num_threads(2)
        two = case.run(backend)
    finally:
        rnnkit.set_num_threads(before)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)
