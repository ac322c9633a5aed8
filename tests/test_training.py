"""The training toolkit against torch: cross-entropy (with padded steps masked), gradient clipping,
SGD with momentum, Adam, Linear and Embedding; truncated BPTT carries the state across chunks."""

import re

import numpy as np
import pytest
from _helpers import assert_close

import rnnkit
from rnnkit import training as tr

torch = pytest.importorskip("torch")


def test_cross_entropy_matches_torch_and_ignores_masked_steps():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 3, 7))
    targets = rng.integers(0, 7, (5, 3))
    mask = rng.random((5, 3)) > 0.3
    loss, d = tr.softmax_cross_entropy(logits, targets, mask)
    lt = torch.from_numpy(logits).requires_grad_()
    tt = torch.from_numpy(np.where(mask, targets, -100))
    ref = torch.nn.functional.cross_entropy(lt.reshape(-1, 7), tt.reshape(-1), ignore_index=-100)
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12
    assert_close("dlogits", d, lt.grad.numpy())
    assert not d[~mask].any()


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        tr.softmax_cross_entropy(np.zeros((2, 3)), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="targets must be integers"):
        tr.softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tr.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


def test_clipping_matches_torch():
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((3, 4)) * 10, "b": rng.standard_normal(5) * 10}
    ps = [torch.zeros(3, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)]
    for p, g in zip(ps, grads.values()):
        p.grad = torch.from_numpy(g.copy())
    total = tr.clip_grad_norm(grads, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(ps, 1.0)
    assert abs(total - ref.item()) < 1e-9
    for p, g in zip(ps, grads.values()):
        assert_close("clipped", g, p.grad.numpy())
    tr.clip_grad_value(grads, 0.01)
    assert max(np.abs(g).max() for g in grads.values()) <= 0.01
    with pytest.raises(ValueError, match=re.escape("max_norm must lie in (0, inf), got")):
        tr.clip_grad_norm(grads, 0)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_optimisers_match_torch_step_by_step(opt):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 3))
    params = {"w": w.copy()}
    wt = torch.from_numpy(w.copy()).requires_grad_()
    ours = tr.SGD(params, lr=0.1, momentum=0.9) if opt == "sgd" else tr.Adam(params, lr=0.05)
    ref = torch.optim.SGD([wt], lr=0.1, momentum=0.9) if opt == "sgd" else torch.optim.Adam([wt], lr=0.05)
    for step in range(5):
        g = rng.standard_normal((3, 3))
        ours.step({"w": g})
        wt.grad = torch.from_numpy(g)
        ref.step()
        assert_close(f"w after step {step}", params["w"], wt.detach().numpy())


def test_linear_and_embedding_match_torch():
    lin = rnnkit.Linear(4, 3, dtype=np.float64, seed=0)
    emb = rnnkit.Embedding(10, 4, dtype=np.float64, seed=0)
    tlin = torch.nn.Linear(4, 3, dtype=torch.float64)
    temb = torch.nn.Embedding(10, 4, dtype=torch.float64)
    lin.load_state_dict(tlin.state_dict())
    emb.load_state_dict(temb.state_dict())
    ids = np.array([[1, 2, 2], [9, 0, 1]])
    y = lin(emb(ids))
    yt = tlin(temb(torch.from_numpy(ids)))
    assert_close("y", y, yt.detach().numpy())
    dy = np.random.default_rng(3).standard_normal(y.shape)
    emb.backward(lin.backward(dy))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close("dW", lin.grads["weight"], tlin.weight.grad.numpy())
    assert_close("db", lin.grads["bias"], tlin.bias.grad.numpy())
    assert_close("dE", emb.grads["weight"], temb.weight.grad.numpy())
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\)"):
        emb(np.array([10]))


def test_truncated_bptt_carries_the_state(backend):
    """Chunked forward from each chunk's final state equals one forward over the whole sequence."""
    layer = rnnkit.LSTM(3, 4, dtype=np.float64, backend=backend, seed=0)
    x = np.random.default_rng(4).standard_normal((11, 2, 3))
    lengths = np.array([11, 6])
    y_full, (h_full, c_full) = layer(x, lengths=lengths)
    state, ys = None, []
    for start, stop, cl in tr.tbptt_chunks(11, 4, lengths):
        y, state = layer(x[start:stop], state, lengths=cl)
        layer.backward(np.ones_like(y))  # gradient stays inside the chunk
        ys.append(y)
    assert_close("y", np.concatenate(ys), y_full)
    assert_close("h_n", state[0], h_full)
    assert_close("c_n", state[1], c_full)


def _three_modules():
    emb = rnnkit.Embedding(10, 4, dtype=np.float64, seed=0)
    lstm = rnnkit.LSTM(4, 5, dtype=np.float64, seed=1)
    head = rnnkit.Linear(5, 3, dtype=np.float64, seed=2)
    return [emb, lstm, head]


def _torch_twins(mods):
    twins = []
    for m in mods:
        twins.append({n: torch.from_numpy(v.copy()).requires_grad_() for n, v in m.params.items()})
    return twins


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_optimisers_over_several_modules_match_torch_param_groups(opt):
    """A list of modules and per-group options (the first module's lr differs), step() reading
    each module's .grads: the same update as torch.optim with the same parameter groups."""
    rng = np.random.default_rng(3)
    mods = _three_modules()
    twins = _torch_twins(mods)
    groups = [{"params": mods[0], "lr": 0.2}, mods[1], mods[2]]
    tgroups = [{"params": list(twins[0].values()), "lr": 0.2}] + [{"params": list(t.values())} for t in twins[1:]]
    if opt == "sgd":
        ours, ref = tr.SGD(groups, lr=0.05, momentum=0.9), torch.optim.SGD(tgroups, lr=0.05, momentum=0.9)
    else:
        ours, ref = tr.Adam(groups, lr=0.01), torch.optim.Adam(tgroups, lr=0.01)
    assert [g["lr"] for g in ours.param_groups] == ([0.2, 0.05, 0.05] if opt == "sgd" else [0.2, 0.01, 0.01])
    for step in range(4):
        for m, t in zip(mods, twins):
            for n in m.params:
                g = rng.standard_normal(m.params[n].shape)
                m.grads[n][...] = g
                t[n].grad = torch.from_numpy(g.copy())
        ours.step()
        ref.step()
        for m, t in zip(mods, twins):
            for n in m.params:
                assert_close(f"{n} after step {step}", m.params[n], t[n].detach().numpy())
    ours.zero_grad()
    assert not any(g.any() for m in mods for g in m.grads.values())


def test_optimiser_pairs_groups_and_learning_rate_schedule():
    w, dw = np.ones(3), np.full(3, 2.0)
    v, dv = np.ones(2), np.full(2, 4.0)
    opt = tr.SGD([({"w": w}, {"w": dw}), {"params": {"v": v}, "grads": {"v": dv}, "lr": 0.5}], lr=0.1)
    opt.step()
    assert_close("w", w, np.full(3, 1 - 0.1 * 2))
    assert_close("v", v, np.full(2, 1 - 0.5 * 4))
    for g in opt.param_groups:  # a schedule written through param_groups
        g["lr"] *= 0.5
    opt.step()
    assert_close("w", w, np.full(3, 0.8 - 0.05 * 2))
    assert_close("v", v, np.full(2, -1 - 0.25 * 4))
    # plain dicts as groups take their gradients in step(), one dict per group
    a, b = np.zeros(2), np.zeros(2)
    opt = tr.Adam([{"a": a}, {"b": b}], lr=0.1)
    opt.step([{"a": np.ones(2)}, {"b": -np.ones(2)}])
    assert (a < 0).all() and (b > 0).all()


def test_clipping_over_several_modules_is_one_global_norm():
    rng = np.random.default_rng(4)
    mods = _three_modules()
    for m in mods:
        for g in m.grads.values():
            g[...] = rng.standard_normal(g.shape) * 10
    merged = {f"{i}.{n}": g.copy() for i, m in enumerate(mods) for n, g in m.grads.items()}
    total = tr.clip_grad_norm(mods, 1.0)
    assert abs(total - tr.clip_grad_norm(merged, 1.0)) < 1e-9
    for i, m in enumerate(mods):
        for n, g in m.grads.items():
            assert_close(f"clipped {n}", g, merged[f"{i}.{n}"])
    assert abs(tr.clip_grad_norm(mods, 1.0) - 1.0) < 1e-5


def test_optimiser_errors_name_the_problem():
    emb = rnnkit.Embedding(3, 2, seed=0)
    with pytest.raises(ValueError, match="step\\(\\) needs the gradients"):
        tr.SGD({"w": np.ones(2)}).step()
    with pytest.raises(ValueError, match="appears in more than one parameter group"):
        tr.Adam([emb, {"params": emb}])
    with pytest.raises(ValueError, match=re.escape("params[0] has unknown keys ['momentun']")):
        tr.SGD([{"params": emb, "momentun": 0.9}])
    with pytest.raises(ValueError, match=re.escape("lr (group 0) must lie in [0, inf), got -1")):
        tr.SGD([{"params": emb, "lr": -1}])
    with pytest.raises(TypeError, match="params\\[1\\] must be a module"):
        tr.Adam([emb, 3])
    with pytest.raises(ValueError, match="a list of 2 dicts, one per parameter group"):
        tr.SGD([{"a": np.ones(1)}, {"b": np.ones(1)}]).step({"a": np.ones(1)})
    with pytest.raises(ValueError, match="the gradient of 'a' has shape \\(2,\\), the parameter \\(1,\\)"):
        tr.SGD({"a": np.ones(1)}).step({"a": np.ones(2)})
    with pytest.raises(ValueError, match="empty list"):
        tr.Adam([])
