"""The LSTM with projections (torch's proj_size: weights (W_ih, W_hh, b_ih, b_hh, W_hr), W_hr [S, H],
h and y S wide) in the numba backend: every output and gradient, dW_hr included, against the NumPy
reference computed in float64; inference against training; 1 against 2 threads, bitwise; the
training cache's layout and restore."""

import numpy as np
import pytest
from _helpers import assert_close

import rnnkit
from rnnkit import functional as F

pytestmark = pytest.mark.skipif("numba" not in rnnkit.available_backends(),
                                reason="numba backend unavailable")

OUTPUTS = ("y", "h_n", "c_n", "dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh", "dW_hr")


class ProjCase:
    """A seeded random LSTM-with-projection problem and the incoming gradients of one backward."""

    def __init__(self, T=5, B=3, I=4, H=6, S=3, dtype=np.float64, *, lengths=None, reverse=False,
                 bias="both", state=True, seed=0, scale=None):  # fmt: skip
        rng = np.random.default_rng(seed)
        scale = min(0.5, 1 / np.sqrt(H)) if scale is None else scale

        def r(*shape):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        self.weights = (r(4 * H, I), r(4 * H, S), r(4 * H) if bias in ("both", "ih") else None,
                        r(4 * H) if bias in ("both", "hh") else None, r(S, H))  # fmt: skip
        if lengths == "spread":
            lengths = rng.permutation(np.linspace(max(T // 4, 0), T, B).round().astype(np.int64))
        self.lengths = None if lengths is None else np.asarray(lengths, np.int64)
        self.x, self.reverse = r(T, B, I), reverse
        self.state = (r(B, S), r(B, H)) if state else None
        self.dy, self.dstate_n = r(T, B, S), ((r(B, S), r(B, H)) if state else None)

    def astype(self, dtype):
        c = object.__new__(ProjCase)
        cv = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        c.weights = tuple(cv(w) for w in self.weights)
        c.lengths, c.reverse, c.x, c.dy = self.lengths, self.reverse, cv(self.x), cv(self.dy)
        c.state = None if self.state is None else tuple(cv(a) for a in self.state)
        c.dstate_n = None if self.dstate_n is None else tuple(cv(a) for a in self.dstate_n)
        return c

    def forward(self, backend, training=True, **kw):
        return F.forward("lstm", self.x, self.weights, self.state, lengths=self.lengths, reverse=self.reverse,
                         training=training, backend=backend, **kw)  # fmt: skip

    def run(self, backend):
        """forward + backward: name -> array (biases' gradients only where the bias is given)."""
        y, (h_n, c_n), ctx = self.forward(backend)
        dx, (dh0, dc0), dw = F.backward(ctx, self.dy, self.dstate_n)
        assert len(dw) == 5, "the weight gradients of an LSTM with projections end with dW_hr"
        vals = (y, h_n, c_n, dx, dh0, dc0, *dw)
        return {k: v for k, v in zip(OUTPUTS, vals) if v is not None}


CASES = {
    "plain": dict(),
    "lengths": dict(T=9, B=6, lengths="spread"),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(T=9, B=6, lengths="spread", reverse=True),
    "zero_lengths": dict(B=3, lengths=[0, 0, 0]),
    "some_zero_lengths": dict(T=6, B=4, lengths=[6, 0, 3, 0], reverse=True),
    "T1": dict(T=1, lengths=[1, 0, 1]),
    "T1_dense": dict(T=1),
    "B1": dict(B=1),
    "B0": dict(B=0),
    "T0": dict(T=0),
    "S1": dict(H=2, S=1, lengths=[5, 2, 4]),
    "H40_S17": dict(H=40, S=17, I=5, B=5, T=7),
    "H40_S17_lengths_reverse": dict(H=40, S=17, I=5, B=5, T=7, lengths="spread", reverse=True),
    "no_bias": dict(bias="none"),
    "only_b_hh": dict(bias="hh", lengths=[3, 5, 1]),
    "zero_state": dict(state=False, lengths=[5, 2, 4]),
    "I0": dict(I=0, lengths=[5, 0, 2]),
    "wide_batch": dict(B=37, T=4, H=9, S=5, I=2, lengths="spread"),
}


def _check_against_reference(case, dtype):
    want = case.astype(np.float64).run("numpy")
    got = case.run("numba")
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == dtype, f"{k}: dtype {got[k].dtype}, expected {dtype}"
        assert_close(k, got[k], want[k], dtype)
    return got


@pytest.mark.parametrize("name", list(CASES))
def test_numba_projection_matches_reference(dtype, name):
    case = ProjCase(dtype=dtype, seed=7, **CASES[name])
    got = _check_against_reference(case, dtype)
    kw = CASES[name]
    T, B, H, S = kw.get("T", 5), kw.get("B", 3), kw.get("H", 6), kw.get("S", 3)
    assert got["y"].shape == (T, B, S) and got["h_n"].shape == (B, S) and got["c_n"].shape == (B, H)
    assert got["dh0"].shape == (B, S) and got["dW_hh"].shape == (4 * H, S)
    assert got["dW_hr"].shape == (S, H)


def test_projection_is_applied_and_differentiated():
    """Guards against a kernel that ignores W_hr: scaling W_hr changes y, and dW_hr is not zero."""
    case = ProjCase(T=4, B=3, H=8, S=3, seed=3)
    got = case.run("numba")
    assert np.abs(got["dW_hr"]).max() > 1e-3
    W = list(case.weights)
    W[4] = 2 * W[4]
    y2, _, _ = F.forward("lstm", case.x, tuple(W), case.state, backend="numba", training=False)
    assert np.abs(y2 - got["y"]).max() > 1e-3


@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_numba_projection_inference_matches_training(dtype, lengths, reverse):
    case = ProjCase(T=7, B=5, H=20, S=7, dtype=dtype, lengths=lengths, reverse=reverse, seed=11)
    y_t, s_t, ctx = case.forward("numba", training=True)
    y_i, s_i, none = case.forward("numba", training=False)
    assert none is None and ctx is not None
    np.testing.assert_array_equal(y_i, y_t)
    for a, b in zip(s_i, s_t):
        np.testing.assert_array_equal(a, b)


def test_numba_projection_backward_twice_and_return_states():
    case = ProjCase(T=6, B=4, H=10, S=4, lengths=[6, 3, 0, 5], reverse=True, seed=12)
    _, _, ctx, states = case.forward("numba", return_states=True)
    _, _, _, want = case.forward("numpy", return_states=True)
    for name, a, b in zip(("h", "c"), states, want):
        assert_close(name, a, b)
    a, b = F.backward(ctx, case.dy, case.dstate_n), F.backward(ctx, case.dy, case.dstate_n)
    np.testing.assert_array_equal(a[0], b[0])
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)


@pytest.fixture
def threads():
    old = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(old)


def _two_blocks(B, H, S):
    import numba

    from rnnkit import _numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    bounds, sbounds = _numba._proj_blocks(B, H, S)
    assert len(bounds) == len(sbounds) == 3, "the step must be split over the two threads"


@pytest.mark.parametrize("lengths", [None, "spread"])
@pytest.mark.parametrize("reverse", [False, True])
def test_numba_projection_two_threads_match_one_bitwise(threads, lengths, reverse):
    case = ProjCase(T=6, B=40, I=30, H=100, S=37, dtype=np.float32, lengths=lengths, reverse=reverse, seed=8,
                    scale=0.15)  # fmt: skip
    rnnkit.set_num_threads(1)
    one = case.run("numba")
    rnnkit.set_num_threads(2)
    _two_blocks(40, 100, 37)
    two = case.run("numba")
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=f"{k}: 1 and 2 threads differ")
    want = case.astype(np.float64).run("numpy")
    for k in want:
        assert_close(k, two[k], want[k], np.float32)


@pytest.mark.parametrize("name", ["H40_S17", "H40_S17_lengths_reverse", "T1", "wide_batch"])
def test_numba_projection_split_steps_match_reference(threads, monkeypatch, name):
    """Small steps split over two threads anyway (uneven unit and column blocks, empty ones)."""
    from rnnkit import _numba

    monkeypatch.setattr(_numba, "MIN_STEP_WORK_PER_THREAD", 1)
    rnnkit.set_num_threads(2)
    kw = dict(CASES[name])
    if name == "T1":
        kw.update(H=16, S=5)  # two unit blocks of 8, the first column block empty
    if name == "wide_batch":
        kw.update(H=24, S=9)  # B=37: steps of more and fewer than 6 rows
    _two_blocks(kw.get("B", 3), kw["H"], kw["S"])
    case = ProjCase(dtype=np.float64, seed=5, **kw)
    got = _check_against_reference(case, np.float64)
    rnnkit.set_num_threads(1)
    one = case.run("numba")
    for k in one:
        np.testing.assert_array_equal(one[k], got[k], err_msg=f"{k}: 1 and 2 threads differ")


def test_plain_lstm_with_w_hr_none_is_the_plain_lstm():
    rng = np.random.default_rng(1)
    H, I = 6, 4
    W = (rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H)) * 0.4,
         rng.standard_normal(4 * H), None)  # fmt: skip
    x = rng.standard_normal((5, 3, I))
    y4, (h4, c4), _ = F.forward("lstm", x, W, backend="numba")
    y5, (h5, c5), _ = F.forward("lstm", x, W + (None,), backend="numba")
    for a, b in ((y4, y5), (h4, h5), (c4, c5)):
        np.testing.assert_array_equal(a, b)
    assert y4.shape == (5, 3, H)


@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_numba_projection_cache_layout_and_restore(lengths):
    from rnnkit import _numba

    T, B, I, H, S = 4, 3, 2, 5, 2
    case = ProjCase(T=T, B=B, I=I, H=H, S=S, lengths=lengths, seed=2)
    _, _, ctx = case.forward("numba")
    N = T * B if lengths is None else sum(lengths)
    layout = _numba.cache_layout("lstm", T, B, I, H, N, lengths is None, S=S)
    assert list(layout) == [f for f in type(ctx.cache)._fields if f != "plan"]
    assert layout["h_prev"] == (N, S) and layout["m"] == (N, H)
    arrays = []
    for f, shape in layout.items():
        a = getattr(ctx.cache, f)
        if isinstance(shape, tuple):
            assert a.shape == shape, f
            arrays.append(a)
        else:
            arrays.append(None)
    restored = F.Context(ctx.problem, "numba", _numba.cache_restore(ctx.problem, arrays))
    a, b = F.backward(restored, case.dy, case.dstate_n), F.backward(ctx, case.dy, case.dstate_n)
    np.testing.assert_array_equal(a[0], b[0])
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)
    # without a projection the layout is as before, plus m: None
    plain = _numba.cache_layout("lstm", T, B, I, H, N, lengths is None)
    assert plain["h_prev"] == (N, H) and plain["m"] is None
    assert list(_numba.cache_layout("lstm", 0, B, I, H, 0, True, S=S)) == list(layout)
