"""The NumPy reference against torch.nn.RNN/LSTM/GRU loaded with the same weights: forward outputs,
final states and every gradient, float32 and float64, with variable lengths (pack_padded_sequence,
enforce_sorted=False) and the reverse direction (the second half of a bidirectional torch layer)."""

import numpy as np
import pytest
from _helpers import assert_close, make_case, max_errors, record_errors

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

CASES = {
    "plain": dict(),
    "lengths": dict(lengths=[5, 2, 1, 4], B=4),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(lengths=[3, 5, 1, 4], B=4, reverse=True),
    "no_bias": dict(bias="none", T=7, H=5),
    "longer": dict(T=12, B=6, I=7, H=9, lengths="spread"),
}


def torch_run(case):
    """Run `case` through torch.nn; returns the same dict as Case.run (float64 arrays)."""
    cell = case.cell
    T, B, I = case.x.shape
    H = case.weights[1].shape[1]
    tdtype = torch.float32 if case.x.dtype == np.float32 else torch.float64
    bias = case.weights[2] is not None
    kw = dict(bias=bias, bidirectional=case.reverse, dtype=tdtype)
    if cell.startswith("rnn"):
        mod = torch.nn.RNN(I, H, nonlinearity=cell[4:], **kw)
    else:
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H, **kw)
    sfx = "_l0_reverse" if case.reverse else "_l0"
    with torch.no_grad():
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), case.weights):
            if w is not None:
                getattr(mod, name + sfx).copy_(torch.from_numpy(w))
    D = 2 if case.reverse else 1
    d = D - 1  # index of our direction in torch's (D, B, H) states

    def lift(a):  # our (B,H) state -> torch's (D,B,H); the unused forward direction gets zeros
        s = torch.zeros(D, B, H, dtype=tdtype)
        s[d] = torch.from_numpy(a)
        return s.requires_grad_()

    x = torch.from_numpy(case.x).requires_grad_()
    parts = case.state if cell == "lstm" else (case.state,)
    st = [lift(a) for a in parts]
    inp = x if case.lengths is None else pack_padded_sequence(x, torch.from_numpy(case.lengths), enforce_sorted=False)
    out, st_n = mod(inp, tuple(st) if cell == "lstm" else st[0])
    if case.lengths is not None:
        out, _ = pad_packed_sequence(out, total_length=T)
    y = out[..., d * H :]
    st_n = st_n if cell == "lstm" else (st_n,)
    dparts = case.dstate_n if cell == "lstm" else (case.dstate_n,)
    loss = (y * torch.from_numpy(case.dy)).sum()
    loss = loss + sum((s[d] * torch.from_numpy(g)).sum() for s, g in zip(st_n, dparts))
    loss.backward()
    res = {"y": y, "dx": x.grad}
    res.update(zip(("h_n", "c_n"), (s[d] for s in st_n)))
    res.update(zip(("dh0", "dc0"), (s.grad[d] for s in st)))
    for ours, name in zip(("dW_ih", "dW_hh", "db_ih", "db_hh"), ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
        p = getattr(mod, name + sfx, None)
        if p is not None:
            res[ours] = p.grad
    return {k: v.detach().double().numpy() for k, v in res.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_torch(cell, dtype, name):
    case = make_case(cell, dtype=dtype, seed=len(name), **CASES[name])
    got = case.run("numpy")
    want = torch_run(case)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == dtype, f"{k} came back as {got[k].dtype}"
        assert_close(k, got[k], want[k])
    record_errors("torch", cell, dtype, max_errors(got, want))
