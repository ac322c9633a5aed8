"""functional.pack: weights packed once (the C++ backend's panels kept in a WeightPack, rnnkit/pack.h)
give bitwise the results of plain weights, forward and backward, on every cell and backend, across
thread counts and concurrent callers."""

import dataclasses
import threading

import numpy as np
import pytest
from _helpers import make_case

import rnnkit
from rnnkit import functional as F

HAVE_CPP = "cpp" in rnnkit.available_backends()
needs_cpp = pytest.mark.skipif(not HAVE_CPP, reason="cpp backend not built")

# every packed layout: the plain cells, the GRU with the reset gate before the product (W_hn apart),
# the LSTM with peepholes, and with projections (W_hr)
FORMS = [("rnn_tanh", None), ("rnn_relu", None), ("lstm", None), ("gru", None), ("gru_reset_before", None),
         ("lstm_peephole", None), ("lstm", 3)]  # fmt: skip


@pytest.fixture
def threads():
    old = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(old)


def _same(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k} differs {what}")


@needs_cpp
@pytest.mark.parametrize("cell, proj", FORMS, ids=[f"{c}{'-proj' if p else ''}" for c, p in FORMS])
@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("rows", [(6, 24), (2, 5), (1, 7)], ids=["many_rows", "few_rows", "one_step"])
def test_packed_weights_are_bitwise_the_plain_ones(cell, proj, lengths, rows, dtype, threads):
    """(few rows: a backward of at most 16 rows of all steps takes its weight and input gradients
    in PyTorch's order, sequence.cpp's kFewRows; one step: a decoder's call)"""
    rnnkit.set_num_threads(1)  # (several threads may fall back to fewer: a layout each, counted below)
    T, B = rows
    case = make_case(cell, T=T, B=B, I=20, H=70, dtype=dtype, lengths=lengths, reverse=lengths is not None,
                     proj=proj, seed=3)  # fmt: skip
    plain = case.run("cpp")
    packed = dataclasses.replace(case, weights=F.pack(cell, case.weights))
    pk = packed.weights._rnnkit_pack
    assert pk.layouts == 0
    first = packed.run("cpp")  # fills the forward's and the backward's layouts
    assert pk.layouts == 2 and pk.nbytes > 0
    second = packed.run("cpp")  # reads them
    assert pk.layouts == 2
    _same(first, plain, "with a pack being filled")
    _same(second, plain, "with a filled pack")
    y, _, _ = packed.forward("cpp", training=False)  # inference reads the forward's layout
    np.testing.assert_array_equal(y, plain["y"])
    assert pk.layouts == 2
    rnnkit.set_num_threads(2)  # another thread count: a layout of its own, the same results (bitwise
    for _ in range(2):  # across thread counts, tests/test_threads.py)
        _same(packed.run("cpp"), plain, "on two threads")
    assert pk.layouts >= 2


@needs_cpp
@pytest.mark.parametrize("cell, proj", FORMS, ids=[f"{c}{'-proj' if p else ''}" for c, p in FORMS])
def test_a_pack_filled_by_a_few_rows_call_serves_many_rows(cell, proj, threads):
    """A backward of few rows does not read W_ih's packed rows, but a pack it fills gets them all
    the same: a later call of many rows with that pack is bitwise the plain weights' call."""
    rnnkit.set_num_threads(1)
    few = make_case(cell, T=1, B=2, I=20, H=70, proj=proj, seed=4)
    many = make_case(cell, T=6, B=24, I=20, H=70, proj=proj, seed=5)
    many = dataclasses.replace(many, weights=few.weights)
    packed = F.pack(cell, few.weights)
    _same(dataclasses.replace(few, weights=packed).run("cpp"), few.run("cpp"), "with few rows")
    assert packed._rnnkit_pack.layouts == 2
    _same(dataclasses.replace(many, weights=packed).run("cpp"), many.run("cpp"), "with many rows after few")
    assert packed._rnnkit_pack.layouts == 2


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_backend_takes_packed_weights(backend, cell):
    case = make_case(cell, T=4, B=3, I=5, H=6, lengths=[4, 0, 2])
    _same(dataclasses.replace(case, weights=F.pack(cell, case.weights)).run(backend), case.run(backend),
          f"on {backend}")  # fmt: skip


def test_pack_copies_and_freezes_the_weights():
    case = make_case("lstm", T=3, B=2, I=3, H=4, dtype=np.float32)
    want = case.run("numpy")
    w = F.pack("lstm", case.weights)
    assert isinstance(w, F.PackedWeights) and isinstance(w, tuple) and len(w) == 4
    assert all(not a.flags.writeable for a in w) and w[0] is not case.weights[0]
    case.weights[1][...] = 0  # a change of the original after packing does not reach the packed copy
    _same(dataclasses.replace(case, weights=w).run("numpy"), want, "after changing the original")
    with pytest.raises(ValueError, match="read-only"):
        w[0][0, 0] = 1.0
    assert repr(w) == "PackedWeights('lstm', shapes ((16, 3), (16, 4), (16,), (16,)))"


@needs_cpp
def test_a_pack_given_other_weights_starts_afresh():
    from rnnkit._native import core

    one = make_case("gru", T=5, B=4, I=3, H=20, dtype=np.float32, seed=1)
    two = make_case("gru", T=5, B=4, I=3, H=20, dtype=np.float32, seed=2)
    pk = core.WeightPack()
    for case in (one, two, one):  # the same store, other arrays each time: the pointers differ
        w = F.PackedWeights._wrap(case.weights, "gru", pk)
        _same(dataclasses.replace(case, weights=w).run("cpp"), case.run("cpp"), "after a change of weights")
    pk.clear()
    assert pk.layouts == 0 and pk.nbytes == 0


@needs_cpp
def test_concurrent_calls_share_one_pack(threads):
    rnnkit.set_num_threads(1)
    case = make_case("lstm", T=20, B=2, I=16, H=64, dtype=np.float32, seed=5)
    want = case.forward("cpp", training=False)[0]
    w = F.pack("lstm", case.weights)
    got, errors = [], []

    def work():
        try:
            for _ in range(50):
                got.append(F.forward("lstm", case.x, w, case.state, training=False, backend="cpp")[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors and len(got) == 200
    for y in got:
        np.testing.assert_array_equal(y, want)
    assert w._rnnkit_pack.layouts == 1


def test_pack_checks_the_weights():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cell must be one of"):
        F.pack("lsmt", (rng.standard_normal((16, 3)), rng.standard_normal((16, 4)), None, None))
    with pytest.raises(TypeError, match="weights must be a tuple"):
        F.pack("lstm", rng.standard_normal((16, 3)))
    with pytest.raises(ValueError, match="W_hh"):
        F.pack("lstm", (rng.standard_normal((16, 3)), rng.standard_normal((12, 4)), None, None))
    with pytest.raises(TypeError, match="W_ih must have dtype float32 or float64"):
        F.pack("gru", (np.zeros((12, 3), np.int32), np.zeros((12, 4)), None, None))


@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(5, 12, num_layers=2, bidirectional=True),
    lambda: rnnkit.GRU(5, 12, num_layers=2),
    lambda: rnnkit.RNN(5, 12, bidirectional=True, nonlinearity="relu"),
    lambda: rnnkit.LSTM(5, 12, proj_size=4),
], ids=["lstm-2-bi", "gru-2", "rnn-relu-bi", "lstm-proj"])  # fmt: skip
def test_packed_layers_are_bitwise_their_originals(backend, make):
    layer = make()
    layer.backend = backend
    x = np.random.default_rng(0).standard_normal((6, 3, 5)).astype(np.float32)
    lengths = [6, 2, 4]
    want = layer.eval()(x, lengths=lengths)
    fast = layer.packed()
    got = fast(x, lengths=lengths)
    def flat(out):
        y, state = out
        return [y, *(state if isinstance(state, tuple) else (state,))]

    for w, g in zip(flat(want), flat(got)):
        np.testing.assert_array_equal(g, w)
    assert fast(x, lengths=lengths)[0].tobytes() == want[0].tobytes()  # the second call reads the packs
    assert len(fast._packs) == layer.num_layers * layer.num_directions
    if backend == "cpp":
        assert all(w._rnnkit_pack.layouts == 1 for w in fast._packs.values())  # forward's, filled once


@pytest.mark.parametrize("cls", [rnnkit.LSTMCell, rnnkit.GRUCell, rnnkit.RNNCell])
def test_a_packed_cell_decodes_like_its_original(backend, cls):
    cell = cls(4, 16)
    cell.backend = backend
    fast = cell.packed()
    rng = np.random.default_rng(1)
    state = fast_state = None
    for _ in range(5):  # a decoder loop: one step at a time
        x = rng.standard_normal((2, 4)).astype(np.float32)
        state = cell.eval()(x, state)
        fast_state = fast(x, fast_state)
        for a, b in zip(state if isinstance(state, tuple) else (state,),
                        fast_state if isinstance(fast_state, tuple) else (fast_state,)):  # fmt: skip
            np.testing.assert_array_equal(b, a)
    assert list(fast._packs) == [None]
    if backend == "cpp":
        assert fast._packs[None]._rnnkit_pack.layouts == 1


def test_a_packed_copy_is_frozen_and_apart():
    cell = rnnkit.LSTMCell(3, 8)
    fast = cell.packed()
    x = np.ones((1, 3), np.float32)
    before = fast(x)
    assert not fast.training and all(not v.flags.writeable for v in fast.params.values())
    with pytest.raises(ValueError, match="packed inference copy"):
        fast.train()
    cell.params["weight_hh"][...] = 0  # the original trains on; the copy keeps its weights
    for a, b in zip(before, fast(x)):
        np.testing.assert_array_equal(a, b)
    cell.train()
    cell(x)
    assert len(cell._tape) == 1 and fast._tape == []
    layer = rnnkit.GRU(3, 8)
    assert layer.packed()._outputs is not layer._outputs
