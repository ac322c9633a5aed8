"""rnnkit.torch on CUDA tensors (backend "cuda"): every module and cell against torch.nn on the same
GPU (cuDNN, TF32 off), outputs, states and every gradient, PackedSequence and lengths, float32 and
float64; results stay on the device and are bitwise equal run to run and on a side stream; the
errors for mixed devices and for torch.compile. Skips with the reason without a GPU (torch's CUDA
and rnnkit's cuda backend); run on a GPU by benchmarks/cuda_check.sh."""

import pytest

torch = pytest.importorskip("torch")
import rnnkit  # noqa: E402
import rnnkit.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402


def _why_not():
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (a CPU build, or no GPU)"
    missing = rnnkit.available_backends().missing
    if "cuda" in missing:
        return f"backend 'cuda' unavailable: {missing['cuda']}"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))

MODULES = {
    "rnn_tanh": (rt.RNN, torch.nn.RNN, {}),
    "rnn_relu": (rt.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rt.LSTM, torch.nn.LSTM, {}),
    "gru": (rt.GRU, torch.nn.GRU, {}),
}
CELLS = {"rnn_tanh": (rt.RNNCell, torch.nn.RNNCell), "lstm": (rt.LSTMCell, torch.nn.LSTMCell),
         "gru": (rt.GRUCell, torch.nn.GRUCell)}  # fmt: skip
CONFIGS = {
    "plain": dict(),
    "deep_bidirectional": dict(num_layers=2, bidirectional=True),
    "batch_first": dict(batch_first=True, num_layers=2),
    "no_bias": dict(bias=False),
}
# float32: cuDNN and rnnkit sum in different orders; over 7 steps and 2 layers the weight gradients
# of the tanh RNN differ by a few 1e-5 (float64 agrees to 1e-10).
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture(autouse=True)
def _exact_cudnn():
    """cuDNN's float32 RNNs use TF32 by default; the comparison wants IEEE float32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _pair(cell, dtype, I=6, H=5, **kw):
    ours_cls, ref_cls, extra = MODULES[cell]
    torch.manual_seed(0)
    ref = ref_cls(I, H, dtype=dtype, device="cuda", **extra, **kw)
    ours = ours_cls(I, H, dtype=dtype, device="cuda", **extra, **kw)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _loss_and_grads(mod, x, hx, lengths=None):
    x = x.detach().requires_grad_(True)
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, st = mod(inp, hx)
    data = out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out
    assert data.is_cuda
    weight = torch.linspace(-1, 1, data.numel(), dtype=data.dtype, device=data.device).reshape(data.shape)
    states = st if isinstance(st, tuple) else (st,)
    loss = (data * weight).sum() + sum((s * 0.5).sum() for s in states)
    loss.backward()
    grads = {n: p.grad for n, p in mod.named_parameters()}
    grads["x"] = x.grad
    for k, s in enumerate(states):
        assert s.is_cuda
        grads[f"state{k}"] = s.detach()
    grads["out"] = data.detach()
    return grads


def _compare(got, want, dtype):
    assert set(got) == set(want)
    for k in want:
        assert got[k].device == want[k].device, k
        torch.testing.assert_close(got[k], want[k], **TOL[dtype], msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("cell", list(MODULES))
def test_module_matches_cudnn(cell, cfg, dtype):
    kw = CONFIGS[cfg]
    ours, ref = _pair(cell, dtype, **kw)
    D, L = 2 if kw.get("bidirectional") else 1, kw.get("num_layers", 1)
    g = torch.Generator(device="cuda").manual_seed(1)
    shape = (4, 7, 6) if kw.get("batch_first") else (7, 4, 6)
    x = torch.randn(shape, generator=g, dtype=dtype, device="cuda")
    h0 = torch.randn(L * D, 4, 5, generator=g, dtype=dtype, device="cuda")
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0
    _compare(_loss_and_grads(ours, x, hx), _loss_and_grads(ref, x, hx), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(MODULES))
def test_packed_sequence_matches_cudnn(cell, dtype):
    ours, ref = _pair(cell, dtype, num_layers=2, bidirectional=True)
    x = torch.randn(9, 5, 6, dtype=dtype, device="cuda")
    lengths = torch.tensor([9, 3, 7, 1, 9])  # unsorted, on the host as torch wants them
    _compare(_loss_and_grads(ours, x, None, lengths), _loss_and_grads(ref, x, None, lengths), dtype)


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_matches_cudnn(cell):
    ours_cls, ref_cls = CELLS[cell]
    torch.manual_seed(0)
    ref = ref_cls(6, 5, dtype=torch.float64, device="cuda")
    ours = ours_cls(6, 5, dtype=torch.float64, device="cuda")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 6, dtype=torch.float64, device="cuda")
    results = []
    for mod in (ours, ref):
        xi = x.clone().requires_grad_(True)
        h = torch.zeros(4, 5, dtype=torch.float64, device="cuda")
        hx = (h, h.clone()) if cell == "lstm" else h
        loss = 0
        for _ in range(3):  # a decoder's loop of single steps
            hx = mod(xi, hx)
            loss = loss + (hx[0] if cell == "lstm" else hx).square().sum()
        loss.backward()
        results.append({"loss": loss.detach(), "x": xi.grad, **{n: p.grad for n, p in mod.named_parameters()}})
    _compare(*results, torch.float64)


def test_bitwise_run_to_run_and_on_a_side_stream():
    ours, _ = _pair("lstm", torch.float32, I=32, H=64, num_layers=2, bidirectional=True)
    x = torch.randn(20, 16, 32, device="cuda")
    first = _loss_and_grads(ours, x, None)
    ours.zero_grad()
    second = _loss_and_grads(ours, x, None)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    ours.zero_grad()
    with torch.cuda.stream(side):
        third = _loss_and_grads(ours, x, None)
    torch.cuda.current_stream().wait_stream(side)
    for k in first:
        assert torch.equal(first[k], second[k]), k
        assert torch.equal(first[k], third[k]), k


def test_mixed_devices_are_refused_by_name():
    lstm = rt.LSTM(6, 5)  # parameters on the CPU
    with pytest.raises(ValueError, match="W_ih|weight"):
        lstm(torch.randn(3, 2, 6, device="cuda"))
    gpu = rt.LSTM(6, 5, device="cuda")
    with pytest.raises(ValueError, match="h0|state"):
        gpu(torch.randn(3, 2, 6, device="cuda"), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))


def test_compile_on_cuda_says_so():
    gru = rt.GRU(6, 5, device="cuda")
    x = torch.randn(3, 2, 6, device="cuda")
    with pytest.raises(Exception, match="CPU tensors"):
        torch.compile(gru, fullgraph=True)(x)
