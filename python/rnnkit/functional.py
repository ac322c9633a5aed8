"""The functional core: one recurrent layer, one direction, any cell, any backend.

Two functions carry every recurrent computation of rnnkit::

    y, state_n, ctx = forward(cell, x, (W_ih, W_hh, b_ih, b_hh), state, lengths=lengths)
    dx, dstate0, dweights = backward(ctx, dy, dstate_n)

The arguments are validated once, then the chosen backend runs on the normalised problem.
"""

# Validation: rnnkit/_validate.py; the backends: rnnkit/_backends.py.

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, List, Literal, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _backends, _validate
from ._validate import Problem

__all__ = ["Context", "PackedWeights", "forward", "backward", "pack"]

#: An array of float32 or float64.
Array = NDArray[Any]
#: What ``forward`` takes as the initial state: h0, or (h0, c0) for the LSTM; None means zeros.
StateLike = Union[ArrayLike, Tuple[Optional[ArrayLike], Optional[ArrayLike]], None]
#: A state as rnnkit returns it: h, or (h, c) for the LSTM.
State = Union[Array, Tuple[Array, Array]]
#: (W_ih, W_hh, b_ih, b_hh); the biases may be None.
Weights = Sequence[Optional[ArrayLike]]
#: The gradients of the weights: (dW_ih, dW_hh, db_ih, db_hh), None where a bias was None.
WeightGrads = Tuple[Array, Array, Optional[Array], Optional[Array]]
ForwardResult = Tuple[Array, State, Optional["Context"]]
ForwardStatesResult = Tuple[Array, State, Optional["Context"], State]
BackwardResult = Tuple[Array, State, WeightGrads]
BackwardNormsResult = Tuple[Array, State, WeightGrads, Array]
# with input_grad=False: dx None
BackwardAnyResult = Tuple[Optional[Array], State, WeightGrads]
BackwardAnyNormsResult = Tuple[Optional[Array], State, WeightGrads, Array]


@dataclass(frozen=True)
class Context:
    """What `backward` needs from a training-mode `forward`.

    It holds the validated problem (inputs and weights), the name of the backend that ran it and
    that backend's cache of per-step activations. Create it with ``forward(..., training=True)``
    only; its contents are not part of the public interface.
    """

    problem: Problem
    backend: str
    cache: Any


@overload
def forward(
    cell: str,
    x: ArrayLike,
    weights: Weights,
    state: StateLike = None,
    *,
    lengths: Optional[ArrayLike] = None,
    reverse: bool = False,
    training: bool = True,
    backend: str = "auto",
    return_states: Literal[False] = False,
    activations: Optional[Sequence[Any]] = None,
    clip: Optional[float] = None,
    input_forget: bool = False,
) -> ForwardResult: ...


@overload
def forward(
    cell: str,
    x: ArrayLike,
    weights: Weights,
    state: StateLike = None,
    *,
    lengths: Optional[ArrayLike] = None,
    reverse: bool = False,
    training: bool = True,
    backend: str = "auto",
    return_states: Literal[True],
    activations: Optional[Sequence[Any]] = None,
    clip: Optional[float] = None,
    input_forget: bool = False,
) -> ForwardStatesResult: ...


@overload
def forward(
    cell: str,
    x: ArrayLike,
    weights: Weights,
    state: StateLike = None,
    *,
    lengths: Optional[ArrayLike] = None,
    reverse: bool = False,
    training: bool = True,
    backend: str = "auto",
    return_states: bool,
    activations: Optional[Sequence[Any]] = None,
    clip: Optional[float] = None,
    input_forget: bool = False,
) -> Union[ForwardResult, ForwardStatesResult]: ...


def forward(
    cell: str,
    x: ArrayLike,
    weights: Weights,
    state: StateLike = None,
    *,
    lengths: Optional[ArrayLike] = None,
    reverse: bool = False,
    training: bool = True,
    backend: str = "auto",
    return_states: bool = False,
    activations: Optional[Sequence[Any]] = None,
    clip: Optional[float] = None,
    input_forget: bool = False,
) -> Union[ForwardResult, ForwardStatesResult]:
    """Run a recurrent cell over a sequence (one layer, one direction).

    Shape letters: ``T`` steps, ``B`` batch, ``I`` input size, ``H`` hidden size, ``G`` gates
    (1 for the RNN, 4 for the LSTM, 3 for the GRU).

    Parameters
    ----------
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before", "lstm_peephole"}
        The recurrent cell: an Elman RNN with tanh or ReLU, an LSTM or a GRU (torch's). Two
        more forms: "gru_reset_before", the GRU with the reset gate before the recurrent
        product, ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`` (ONNX's default GRU, Keras's
        ``reset_after=False``; same weights; on the NumPy reference only so far), and
        "lstm_peephole", the LSTM whose input and forget gates also see ``c_(t-1)`` and whose
        output gate sees ``c_t`` through diagonal weights (ONNX's LSTM with input P; the C++
        and Numba backends and the reference run it).
    x : ndarray, shape (T, B, I)
        The input sequence, time-major, float32 or float64. Every other array of the call must
        have the same dtype.
    weights : tuple of ndarray
        ``(W_ih, W_hh, b_ih, b_hh)`` with shapes (G*H, I), (G*H, H), (G*H,) and (G*H,), in
        PyTorch's layout and gate order (LSTM: i, f, g, o; GRU: r, z, n). ``b_ih`` and ``b_hh``
        may be None (no bias). "lstm_peephole" takes a fifth array, ``P`` of shape (3*H,): the
        peephole weights ``(p_i, p_f, p_o)``, and `backward` returns its gradient fifth.
        "lstm" may take a fifth array ``W_hr`` of shape (S, H) with ``S < H``: the LSTM with
        projections (torch's ``proj_size = S``), ``h_t = W_hr (o * tanh(c_t))``. ``W_hh`` is
        then (4*H, S), and h, ``y`` and their gradients are S wide (c stays H wide);
        `backward` returns ``dW_hr`` fifth. Every backend runs it.
    state : ndarray or tuple of ndarray, optional
        The initial state: ``h0``, shape (B, H), for the RNN and the GRU; ``(h0, c0)``, each of
        shape (B, H), for the LSTM (``h0`` (B, S) with projections). None, or None for one part
        of the pair, means zeros.
    lengths : array of int, shape (B,), optional
        The number of valid steps of each sequence, ``0 <= lengths[b] <= T``, for a padded batch.
        Steps ``t >= lengths[b]`` keep the state and output zeros; the reverse direction starts
        at each sequence's last valid step. None means every sequence has ``T`` steps.
    reverse : bool, default False
        Run from the last step to the first (the backward direction of a bidirectional layer).
    training : bool, default True
        Keep the per-step activations that `backward` needs and return them in ``ctx``. With
        False nothing per step is kept and ``ctx`` is None.
    backend : {"auto", "cpp", "numba", "numpy", "cuda"}, default "auto"
        The implementation that runs the cell; "auto" picks the fastest one usable here (see
        `rnnkit.available_backends`). All give the same results up to rounding. GPU arrays
        (CuPy; anything with ``__cuda_array_interface__``), all on one device, run on "cuda" only
        (where rnnkit was built with it), and come back as CuPy arrays on that device.
    return_states : bool, default False
        Also return the state after every step (which ``torch.nn`` does not offer). A padded
        step keeps the state it had: the final one, or in the reverse direction the initial
        state before the sequence starts.
    activations : list, optional
        ONNX's choice of nonlinearities, one per position of the cell: the RNN's f (default
        tanh; relu for "rnn_relu"), the GRU's f (for r and z, default sigmoid) and g (for n,
        default tanh), the LSTM's f (i, f and o: sigmoid), g (the candidate cell: tanh) and h
        (the output ``o * h(c_t)``: tanh). Each entry is a name of ONNX's list (Sigmoid, Tanh,
        Relu, HardSigmoid, LeakyRelu, ThresholdedRelu, Elu, Softsign, Softplus, ScaledTanh,
        Affine; any case) or a tuple ``(name, alpha)`` / ``(name, alpha, beta)`` with ONNX's
        meaning and defaults (ScaledTanh has none: give both). None: the cell's own.
    clip : float, optional
        Clip every gate's pre-activation (after the biases and peepholes) to ``[-clip, clip]``
        before its nonlinearity, as ONNX's ``clip`` does (``c_t`` itself is not clipped); the
        gradient stops where a pre-activation is clipped.
    input_forget : bool, default False
        LSTM: couple the forget gate to the input gate, ``f = 1 - i`` (ONNX's ``input_forget``);
        the forget gate's weights then have no effect and get zero gradients.

        These three options run on the C++ and Numba backends (scalar passes of their own,
        slower than the plain cells) and the NumPy reference; "cuda" does not run them (it
        raises naming the cell and options). The cell's own activations (for example
        ``["Sigmoid", "Tanh", "Tanh"]`` for the LSTM) are the plain cell and run anywhere at
        full speed.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The output of every step (the hidden state ``h_t``; zeros at padded steps); (T, B, S)
        with projections.
    state_n : ndarray or tuple of ndarray
        The final state, ``h_n`` of shape (B, H), or ``(h_n, c_n)`` for the LSTM: the state after
        each sequence's last valid step.
    ctx : Context or None
        What `backward` needs; None when ``training`` is False.
    states : ndarray or tuple of ndarray
        Only with ``return_states=True``: ``h_all`` of shape (T, B, H), or ``(h_all, c_all)``
        for the LSTM, the state after each step.

    Raises
    ------
    TypeError
        An argument of the wrong type or dtype (for example arrays of mixed dtypes, or a torch
        tensor instead of a NumPy array).
    ValueError
        An unknown ``cell`` or ``backend``, a backend that is not available here, arrays of
        shapes that do not fit together, or ``lengths`` out of range.
    NotImplementedError
        A ``backend`` named explicitly that does not implement ``cell`` yet.

    See Also
    --------
    backward : Backpropagation through time for the result of this call.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import functional as F
    >>> T, B, I, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((T, B, I)).astype(np.float32)
    >>> weights = (rng.standard_normal((3 * H, I)).astype(np.float32),
    ...            rng.standard_normal((3 * H, H)).astype(np.float32), None, None)
    >>> y, h_n, ctx = F.forward("gru", x, weights)
    >>> y.shape, h_n.shape
    ((5, 2, 4), (2, 4))
    """
    p = _validate.problem(cell, x, weights, state, lengths, reverse, training, activations=activations, clip=clip,
                          input_forget=input_forget, backend=backend)  # fmt: skip
    name = _backends.resolve(backend, p.cell, p.options, p.device)
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


def _forward_group(
    calls: Sequence[Mapping[str, Any]], backend: str = "auto", y_out: Optional[Array] = None
) -> List[ForwardResult]:
    """forward for several independent calls at once: each of `calls` a dict of forward's
    arguments (cell, x, weights, state, lengths, reverse, training). The C++ backend runs them
    concurrently (one core per direction of a bidirectional layer when a step is too small to
    split); the others one after another. Returns forward's (y, state_n, ctx) for each call,
    exactly what separate forward calls give.

    y_out: optional [T, B, k*H] array of x's dtype receiving the k outputs side by side (a
    bidirectional layer's y); each call's y is then its view y_out[..., j*H:(j+1)*H]. The C++
    backend writes there directly; the others' outputs are copied in."""
    ps = [_validate.problem(c["cell"], c["x"], c["weights"], c.get("state"), c.get("lengths"),
                            c.get("reverse", False), c.get("training", True), activations=c.get("activations"),
                            clip=c.get("clip"), input_forget=c.get("input_forget", False), backend=backend)
          for c in calls]  # fmt: skip
    # one cell (and one choice of options) per group (a layer), on one device
    name = _backends.resolve(backend, ps[0].cell if ps else None, any(p.options for p in ps), ps[0].device if ps else None)
    impl = _backends.get(name)
    views: Optional[List[Array]] = None
    if y_out is not None:
        views = [y_out[..., j * p.S : (j + 1) * p.S] for j, p in enumerate(ps)]
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


def _forward_result(p: Problem, name: str, out: Sequence[Any]) -> ForwardResult:
    """A backend's (y, h_n, c_n, cache) as forward returns it: (y, state_n, ctx)."""
    y, h_n, c_n, cache = out
    return y, ((h_n, c_n) if p.is_lstm else h_n), (Context(p, name, cache) if p.training else None)


def _backward_group(items: Iterable[Tuple[Optional[Context], Any, Any]], input_grad: bool = True) -> List[BackwardAnyResult]:
    """backward for several (ctx, dy, dstate_n) at once (concurrently on the C++ backend); returns
    backward's (dx, dstate0, dweights) for each, exactly what separate backward calls give."""
    ctxs: List[Tuple[Context, Array, Array, Optional[Array]]] = []
    for ctx, dy, dstate_n in items:
        ctx = _check_ctx(ctx)
        rows = getattr(_backends.get(ctx.backend), "backward_reads_dy_rows", False)
        ctxs.append((ctx, *_validate.grads(ctx.problem, dy, dstate_n, rows)))
    names = {ctx.backend for ctx, *_ in ctxs}
    impl = _backends.get(names.pop()) if len(names) == 1 else None
    group = getattr(impl, "backward_group", None)
    if group is not None and len(ctxs) > 1:
        kw = _skip_dx(impl, input_grad)
        outs = group([(ctx.problem, ctx.cache, dy, dh, dc) for ctx, dy, dh, dc in ctxs], **kw)
    else:
        outs = [_backend_backward(ctx, dy, dh, dc, input_grad) for ctx, dy, dh, dc in ctxs]
    return [_backward_result(ctx.problem, out, input_grad) for (ctx, *_), out in zip(ctxs, outs)]


def _summed_dx(outs: Sequence[BackwardAnyResult]) -> Any:
    """The dx of a layer's directions (a _backward_group's results) summed, in place into the
    first one's (a fresh array of the backend's); None where dx was not asked for."""
    dx: Any = None
    for d_x, _, _ in outs:
        if d_x is not None:
            if dx is None:
                dx = d_x
            else:
                dx += d_x  # (NumPy or CuPy)
    return dx


def _skip_dx(impl: Any, input_grad: bool) -> Mapping[str, bool]:
    """The keyword that tells a backend to leave dx out, for a backend that can (the C++ one: its
    dx is a GEMM of its own); the others compute it and _backward_result drops it."""
    return {} if input_grad or not getattr(impl, "backward_skips_dx", False) else {"need_dx": False}


def _backend_backward(ctx: Context, dy: Array, dh: Array, dc: Optional[Array], input_grad: bool) -> Any:
    impl = _backends.get(ctx.backend)
    fn = getattr(impl, f"{ctx.problem.cell}_backward")
    return fn(ctx.problem, ctx.cache, dy, dh, dc, **_skip_dx(impl, input_grad))


def _check_ctx(ctx: object) -> Context:
    if ctx is None:
        raise ValueError(
            "backward needs the ctx of forward(..., training=True); got None "
            "(forward with training=False keeps nothing to differentiate)"
        )
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be the Context returned by forward, got {type(ctx).__name__}")
    return ctx


def _backward_result(p: Problem, out: Sequence[Any], input_grad: bool = True) -> BackwardAnyResult:
    dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh = out[:7]
    dx = dx if input_grad else None
    dweights = (dW_ih, dW_hh, None if p.b_ih is None else db_ih, None if p.b_hh is None else db_hh, *out[7:])
    return dx, ((dh0, dc0) if p.is_lstm else dh0), dweights  # lstm_peephole: and dP


def _all_states(p: Problem, impl: Any, cache: Any, y: Array, h_n: Array, c_n: Optional[Array]) -> State:
    """The state after every step, [T, B, H] (see forward's return_states), in the library of the
    call's arrays (NumPy, or CuPy for GPU arrays; the step masks are made on the host)."""
    xp: Any = np if p.device is None else _validate._cupy(f"the arrays are on {p.device}")
    t = np.arange(p.T)[:, None]
    L = np.full(p.B, p.T) if p.lengths is None else p.lengths
    valid = xp.asarray((t < L[None, :])[..., None])  # [T, B, 1]
    before = p.reverse  # a padded step in the reverse direction comes before the sequence starts
    h_all: Array = xp.where(valid, y, (p.h0 if before else h_n)[None])
    if not p.is_lstm:
        return h_all
    assert c_n is not None and p.c0 is not None  # an LSTM has both
    c_in = xp.asarray(impl.entering_cell_state(p, cache))  # [T, B, H]: c entering each valid step
    # After step t comes the step processed next (t+1, or t-1 in reverse) if it is valid, else the end.
    nxt = xp.roll(c_in, 1 if p.reverse else -1, axis=0)
    last = xp.asarray((t == 0) if p.reverse else (t + 1 >= L[None, :]))
    c_all = xp.where(valid, xp.where(last[..., None], c_n[None], nxt), (p.c0 if before else c_n)[None])
    return h_all, c_all


@overload
def backward(
    ctx: Optional[Context], dy: ArrayLike, dstate_n: StateLike = None, *, dh_norms: Literal[False] = False,
    input_grad: Literal[True] = True
) -> BackwardResult: ...


@overload
def backward(
    ctx: Optional[Context], dy: ArrayLike, dstate_n: StateLike = None, *, dh_norms: Literal[True],
    input_grad: Literal[True] = True
) -> BackwardNormsResult: ...


@overload
def backward(
    ctx: Optional[Context], dy: ArrayLike, dstate_n: StateLike = None, *, dh_norms: bool = False,
    input_grad: bool = True
) -> Union[BackwardAnyResult, BackwardAnyNormsResult]: ...


def backward(
    ctx: Optional[Context], dy: ArrayLike, dstate_n: StateLike = None, *, dh_norms: bool = False,
    input_grad: bool = True
) -> Union[BackwardAnyResult, BackwardAnyNormsResult]:
    """Backpropagation through time for a training-mode `forward`.

    `backward` may run any number of times on one ``ctx``: it returns fresh gradients and
    accumulates nothing. The ``ctx`` holds references to the arrays given to `forward` (``x``, the
    weights, the initial state), not copies: they must not be changed in place before
    `backward`, or the gradients come out of the changed values.

    Parameters
    ----------
    ctx : Context
        The ``ctx`` returned by ``forward(..., training=True)``.
    dy : ndarray, shape (T, B, H)
        The gradient of the loss with respect to the output ``y``, of ``y``'s dtype.
    dstate_n : ndarray or tuple of ndarray, optional
        The gradient with respect to the final state: ``dh_n`` of shape (B, H), or
        ``(dh_n, dc_n)`` for the LSTM. None, or None for one part of the pair, means zeros.
    dh_norms : bool, default False
        Also return the norm of the gradient with respect to every step's hidden state, to see
        where gradients vanish or explode. Computed by the NumPy reference (re-running the
        forward pass when ``ctx`` came from another backend), so it costs nothing when off.
    input_grad : bool, default True
        False: ``dx`` is not wanted (the input needs no gradient, as the first layer's of a model
        reading data) and is returned as None; the C++ backend then skips its GEMM
        (``dgates @ W_ih``, a third of the backward's products). The other gradients are the same
        either way.

    Returns
    -------
    dx : ndarray, shape (T, B, I), or None
        The gradient with respect to ``x``; None with ``input_grad=False``.
    dstate0 : ndarray or tuple of ndarray
        The gradient with respect to the initial state: ``dh0`` of shape (B, H), or
        ``(dh0, dc0)`` for the LSTM.
    dweights : tuple
        ``(dW_ih, dW_hh, db_ih, db_hh)``, shaped like the weights; None where the forward's bias
        was None; a fifth, ``dP`` or ``dW_hr``, where the weights had one. Each step's gradient
        is summed into the shared weights (BPTT).
    norms : ndarray, shape (T, B)
        Only with ``dh_norms=True``: the Euclidean norm of dL/dh_t for every step and sequence
        (zero past a sequence's length).

    Raises
    ------
    ValueError
        ``ctx`` is None (the forward pass ran with ``training=False``), or ``dy`` or
        ``dstate_n`` has the wrong shape.
    TypeError
        ``ctx`` is not a `Context`, or a gradient has another dtype than the forward pass.

    See Also
    --------
    forward : The forward pass whose ``ctx`` this differentiates.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import functional as F
    >>> T, B, I, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((T, B, I))
    >>> weights = (rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H)), None, None)
    >>> y, (h_n, c_n), ctx = F.forward("lstm", x, weights)
    >>> dx, (dh0, dc0), (dW_ih, dW_hh, db_ih, db_hh) = F.backward(ctx, np.ones_like(y))
    >>> dx.shape, dh0.shape, dW_ih.shape, db_ih is None
    ((5, 2, 3), (2, 4), (16, 3), True)
    """
    ctx = _check_ctx(ctx)
    p = ctx.problem
    dh_norms = _validate.flag("dh_norms", dh_norms)
    rows = not dh_norms and getattr(_backends.get(ctx.backend), "backward_reads_dy_rows", False)
    dy, dh_n, dc_n = _validate.grads(p, dy, dstate_n, rows)
    input_grad = _validate.flag("input_grad", input_grad)
    norms = None
    if dh_norms:
        ref = _backends.get("numpy")
        cache = ctx.cache if ctx.backend == "numpy" else getattr(ref, f"{p.cell}_forward")(p)[3]
        norms = np.zeros((p.T, p.B), p.dtype)
        out = getattr(ref, f"{p.cell}_backward")(p, cache, dy, dh_n, dc_n, dh_norms=norms)
    else:
        out = _backend_backward(ctx, dy, dh_n, dc_n, input_grad)
    result = _backward_result(p, out, input_grad)
    if norms is not None:  # dh_norms
        return result + (norms,)
    return result


PackedWeights = _validate.PackedWeights


def pack(cell: str, weights: Weights) -> PackedWeights:
    """Pack a cell's weights once, for many `forward` / `backward` calls with them.

    Every call of the C++ backend otherwise packs ``W_ih`` and ``W_hh`` (and ``W_hr``) into the
    panels its products read, twice over the weights: a few microseconds of a small call (6.6 of
    54 us for an LSTM with T=32, B=1, H=64; 13 of 350 us for a streaming LSTM with T=100, H=128
    on a 2-vCPU EPYC). The returned weights keep those panels, made by the first call of each
    kind (forward or backward, thread count, dtype) and reused by the later ones. A call of a
    single step with a batch of at most 4 (a decoder's step) makes no panels either way: its
    products read the weights as they are. Results are bitwise the same as with the plain
    weights.

    Parameters
    ----------
    cell : str
        The cell, as for `forward` (the shapes are checked for it).
    weights : tuple
        ``(W_ih, W_hh, b_ih, b_hh)`` as `forward` takes them (a fifth, ``P`` or ``W_hr``, where the
        cell has one).

    Returns
    -------
    PackedWeights
        A tuple of read-only copies of the weights (in the dtype given), which `forward` takes in
        place of ``weights`` on every backend; `backward` of such a call uses them too. Changing the
        original arrays afterwards does not change it: pack again.

    Raises
    ------
    ValueError, TypeError
        The weights do not fit the cell (the messages of `forward`).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit import functional as F
    >>> H, I = 8, 3
    >>> rng = np.random.default_rng(0)
    >>> w = F.pack("gru", (rng.standard_normal((3 * H, I)), rng.standard_normal((3 * H, H)), None, None))
    >>> y, h_n, _ = F.forward("gru", rng.standard_normal((5, 1, I)), w, training=False)
    >>> y.shape, w[0].flags.writeable
    ((5, 1, 8), False)
    """
    cell = _validate.cell_name(cell)
    if not isinstance(weights, (tuple, list)) or not weights:
        got = type(weights).__name__
        raise TypeError(f"weights must be a tuple (W_ih, W_hh, b_ih, b_hh, ...) for cell {cell!r}, got a {got}")
    W_ih = _validate._array("W_ih", weights[0])
    I = W_ih.shape[1] if W_ih.ndim == 2 else 0  # noqa: E741 (a wrong ndim is reported by problem below)
    p = _validate.problem(cell, np.zeros((0, 1, I), W_ih.dtype), weights, None, training=False)
    if p.device is not None:
        raise ValueError(f"pack takes host (NumPy) arrays; the weights are on {p.device}")
    arrays = [p.W_ih, p.W_hh, p.b_ih, p.b_hh] + ([p.P] if cell == "lstm_peephole" else []) + (
        [p.W_hr] if p.W_hr is not None else [])  # fmt: skip
    frozen = []
    for a in arrays:
        if a is not None:
            a = np.array(a, copy=True, order="C")
            a.flags.writeable = False
        frozen.append(a)
    return _packed(cell, frozen)


def _packed(cell: str, frozen: Sequence[Optional[Array]]) -> PackedWeights:
    """frozen (arrays nobody changes while the result is in use: pack's copies, or a packed
    module's read-only parameters) as PackedWeights with a fresh store of the C++ backend's."""
    cpp = _backends._load("cpp")  # the C++ backend's module (its _core holds WeightPack), or None
    return PackedWeights._wrap(frozen, cell, None if cpp is None else cpp._core.WeightPack())
