"""The functional core: one recurrent layer, one direction, any cell, any backend.

    y, state_n, ctx = forward(cell, x, (W_ih, W_hh, b_ih, b_hh), state, lengths=, reverse=, training=)
    dx, dstate0, dweights = backward(ctx, dy, dstate_n)

Validation happens once (rnnkit._validate), then the chosen backend runs on the normalised Problem.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _backends, _validate
from ._validate import Problem

__all__ = ["Context", "forward", "backward"]


@dataclass(frozen=True)
class Context:
    """What `backward` needs from a training-mode `forward`: the Problem (inputs and weights, as
    validated), the backend that ran it and that backend's cache of per-step activations."""

    problem: Problem
    backend: str
    cache: Any


def forward(
    cell: str,
    x,
    weights,
    state=None,
    *,
    lengths=None,
    reverse: bool = False,
    training: bool = True,
    backend: str = "auto",
    return_states: bool = False,
):
    """Run a recurrent cell over a sequence.

    Parameters
    ----------
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}
    x : ndarray [T, B, I], float32 or float64 (time-major)
    weights : tuple (W_ih [G*H, I], W_hh [G*H, H], b_ih [G*H] or None, b_hh [G*H] or None)
        PyTorch's layout and gate order (G = 1 RNN, 4 LSTM i,f,g,o, 3 GRU r,z,n).
    state : h0 [B, H], or (h0, c0) for "lstm"; None (or a None part) means zeros.
    lengths : int array [B], optional
        Valid steps per sequence, 0 <= lengths[b] <= T. Steps t >= lengths[b] keep the state and
        output zeros; the reverse direction starts at each sequence's last valid step.
    reverse : bool
        Run from the last step to the first.
    training : bool
        Keep what `backward` needs; with False, ctx is None and nothing per step is kept.
    backend : {"auto", "cpp", "numba", "numpy"}
    return_states : bool
        Also return every step's state (which torch.nn does not offer): h_t, and for "lstm" c_t,
        each [T, B, H], the state after step t (a padded step keeps the state it had: the final
        one, or in the reverse direction h0/c0 before the sequence starts).

    Returns
    -------
    y : ndarray [T, B, H]
    state_n : h_n [B, H], or (h_n, c_n) for "lstm": the state after each sequence's last valid step
    ctx : Context or None
    states : h_all [T, B, H], or (h_all, c_all) for "lstm"; only with return_states=True
    """
    name = _backends.resolve(backend)
    p = _validate.problem(cell, x, weights, state, lengths, reverse, training)
    return_states = _validate.flag("return_states", return_states)
    run = p
    if return_states and p.is_lstm and not p.training:  # c_t comes from the training cache
        run = dataclasses.replace(p, training=True)
    impl = _backends.get(name)
    y, h_n, c_n, cache = getattr(impl, f"{p.cell}_forward")(run)
    _, state_n, ctx = _forward_result(p, name, (y, h_n, c_n, cache))
    if not return_states:
        return y, state_n, ctx
    return y, state_n, ctx, _all_states(p, impl, cache, y, h_n, c_n)


def _forward_group(calls, backend: str = "auto", y_out=None):
    """forward for several independent calls at once: each of `calls` a dict of forward's
    arguments (cell, x, weights, state, lengths, reverse, training). The C++ backend runs them
    concurrently (one core per direction of a bidirectional layer when a step is too small to
    split); the others one after another. Returns forward's (y, state_n, ctx) for each call,
    exactly what separate forward calls give.

    y_out: optional [T, B, k*H] array of x's dtype receiving the k outputs side by side (a
    bidirectional layer's y); each call's y is then its view y_out[..., j*H:(j+1)*H]. The C++
    backend writes there directly; the others' outputs are copied in."""
    name = _backends.resolve(backend)
    ps = [_validate.problem(c["cell"], c["x"], c["weights"], c.get("state"), c.get("lengths"),
                            c.get("reverse", False), c.get("training", True)) for c in calls]  # fmt: skip
    impl = _backends.get(name)
    views = None
    if y_out is not None:
        views = [y_out[..., j * p.H : (j + 1) * p.H] for j, p in enumerate(ps)]
    group = getattr(impl, "forward_group", None)
    if group is not None:
        outs = group(ps, views)
    else:
        outs = [getattr(impl, f"{p.cell}_forward")(p) for p in ps]
        if views is not None:
            for v, out in zip(views, outs):
                v[...] = out[0]
            outs = [(v, *out[1:]) for v, out in zip(views, outs)]
    return [_forward_result(p, name, out) for p, out in zip(ps, outs)]


def _forward_result(p: Problem, name: str, out):
    """A backend's (y, h_n, c_n, cache) as forward returns it: (y, state_n, ctx)."""
    y, h_n, c_n, cache = out
    return y, ((h_n, c_n) if p.is_lstm else h_n), (Context(p, name, cache) if p.training else None)


def _backward_group(items):
    """backward for several (ctx, dy, dstate_n) at once (concurrently on the C++ backend); returns
    backward's (dx, dstate0, dweights) for each, exactly what separate backward calls give."""
    ctxs = []
    for ctx, dy, dstate_n in items:
        _check_ctx(ctx)
        ctxs.append((ctx, *_validate.grads(ctx.problem, dy, dstate_n)))
    names = {ctx.backend for ctx, *_ in ctxs}
    impl = _backends.get(names.pop()) if len(names) == 1 else None
    group = getattr(impl, "backward_group", None)
    if group is not None and len(ctxs) > 1:
        outs = group([(ctx.problem, ctx.cache, dy, dh, dc) for ctx, dy, dh, dc in ctxs])
    else:
        outs = [getattr(_backends.get(ctx.backend), f"{ctx.problem.cell}_backward")(ctx.problem, ctx.cache, dy, dh, dc)
                for ctx, dy, dh, dc in ctxs]  # fmt: skip
    return [_backward_result(ctx.problem, out) for (ctx, *_), out in zip(ctxs, outs)]


def _check_ctx(ctx):
    if ctx is None:
        raise ValueError(
            "backward needs the ctx of forward(..., training=True); got None "
            "(forward with training=False keeps nothing to differentiate)"
        )
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be the Context returned by forward, got {type(ctx).__name__}")


def _backward_result(p: Problem, out):
    dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh = out
    dweights = (dW_ih, dW_hh, None if p.b_ih is None else db_ih, None if p.b_hh is None else db_hh)
    return dx, ((dh0, dc0) if p.is_lstm else dh0), dweights


def _all_states(p: Problem, impl, cache, y, h_n, c_n):
    """The state after every step, [T, B, H] (see forward's return_states)."""
    t = np.arange(p.T)[:, None]
    L = np.full(p.B, p.T) if p.lengths is None else p.lengths
    valid = (t < L[None, :])[..., None]  # [T, B, 1]
    before = p.reverse  # a padded step in the reverse direction comes before the sequence starts
    h_all = np.where(valid, y, (p.h0 if before else h_n)[None])
    if not p.is_lstm:
        return h_all
    c_in = impl.entering_cell_state(p, cache)  # [T, B, H]: c entering each valid step
    # After step t comes the step processed next (t+1, or t-1 in reverse) if it is valid, else the end.
    nxt = np.roll(c_in, 1 if p.reverse else -1, axis=0)
    last = (t == 0) if p.reverse else (t + 1 >= L[None, :])
    c_all = np.where(valid, np.where(last[..., None], c_n[None], nxt), (p.c0 if before else c_n)[None])
    return h_all, c_all


def backward(ctx: Optional[Context], dy, dstate_n=None, *, dh_norms: bool = False):
    """Backpropagation through time for a training-mode `forward`.

    backward may run any number of times on one ctx: it returns fresh gradients and accumulates
    nothing. The ctx holds references to the arrays given to forward (x, the weights, the initial
    state), not copies: they must not be changed in place before backward, or the gradients come
    out of the changed values.

    Parameters
    ----------
    ctx : Context returned by forward(..., training=True)
    dy : ndarray [T, B, H], gradient of the loss with respect to y
    dstate_n : dh_n [B, H], or (dh_n, dc_n) for "lstm"; None (or a None part) means zeros.

    Returns
    -------
    dx : ndarray [T, B, I]
    dstate0 : dh0, or (dh0, dc0) for "lstm" (the gradient with respect to the initial state)
    dweights : (dW_ih, dW_hh, db_ih, db_hh), None where the forward's bias was None.
        Each step's gradient is summed into the shared weights (BPTT).
    norms : ndarray [T, B], only with dh_norms=True
        ||dL/dh_t|| for every step and sequence (zero past a sequence's length): where gradients
        vanish or explode. Computed by the NumPy reference (re-running the forward when ctx came
        from another backend), so it costs nothing when off.
    """
    _check_ctx(ctx)
    p = ctx.problem
    dy, dh_n, dc_n = _validate.grads(p, dy, dstate_n)
    dh_norms = _validate.flag("dh_norms", dh_norms)
    norms = None
    if dh_norms:
        ref = _backends.get("numpy")
        cache = ctx.cache if ctx.backend == "numpy" else getattr(ref, f"{p.cell}_forward")(p)[3]
        norms = np.zeros((p.T, p.B), p.dtype)
        out = getattr(ref, f"{p.cell}_backward")(p, cache, dy, dh_n, dc_n, dh_norms=norms)
    else:
        out = getattr(_backends.get(ctx.backend), f"{p.cell}_backward")(p, ctx.cache, dy, dh_n, dc_n)
    result = _backward_result(p, out)
    return result + (norms,) if dh_norms else result
