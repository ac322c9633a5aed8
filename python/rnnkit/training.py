"""The training toolkit around the layers: softmax cross-entropy, gradient clipping (the threshold
cure for exploding gradients), SGD with momentum and Adam over the parameters of one or several
modules (torch's parameter groups, each with its own options), and truncated BPTT over a long
sequence.

Examples
--------
A model of three modules, trained without merging their dicts by hand::

    emb = rnnkit.Embedding(V, E)
    lstm = rnnkit.LSTM(E, H)
    head = rnnkit.Linear(H, V)
    opt = training.Adam([emb, lstm, head], lr=1e-3)
    ...              # forward, loss, backward: gradients land in each .grads
    training.clip_grad_norm([emb, lstm, head], 5.0)
    opt.step()       # reads every module's .grads
    opt.zero_grad()
"""

# Tested by tests/test_training.py (against torch.optim and torch.nn.utils) and tests/test_errors.py.

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["softmax", "softmax_cross_entropy", "clip_grad_norm", "clip_grad_value", "SGD", "Adam", "tbptt_chunks"]

Array = NDArray[Any]


class HasGrads(Protocol):
    """Anything holding ``params`` and ``grads`` dicts (name -> array): every rnnkit layer."""

    params: Dict[str, Array]
    grads: Dict[str, Array]


#: What an optimiser or a clipping function accepts: one parameter dict, one module, a list of
#: modules, or a list of groups (a module, a ``(params, grads)`` pair, or a dict with ``"params"``,
#: optionally ``"grads"`` and per-group options such as ``"lr"``).
Params = Union[Mapping[str, Array], HasGrads, Sequence[Any]]


def _number(name: str, value: Any, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, high_open: bool = False) -> float:  # fmt: skip
    """A real number in the given range, or an error naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = v != v or (low is not None and (v <= low if low_open else v < low))
    bad = bad or (high is not None and (v >= high if high_open else v > high))
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")
    return v


def softmax(logits: ArrayLike, axis: int = -1) -> Array:
    """Softmax along one axis, shifted by the maximum so that it never overflows.

    ``softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)``.

    Parameters
    ----------
    logits : array_like, shape (..., K)
        Unnormalised scores.
    axis : int, default -1
        The class axis.

    Returns
    -------
    ndarray
        Probabilities of the shape of ``logits``, summing to one along ``axis``.
    """
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def softmax_cross_entropy(logits: ArrayLike, targets: ArrayLike,
                          mask: Optional[ArrayLike] = None) -> Tuple[float, Array]:  # fmt: skip
    """Mean cross-entropy of ``softmax(logits)`` against integer targets, and its gradient.

    Parameters
    ----------
    logits : ndarray of float, shape (..., K)
        Scores, classes last (for a sequence model: (T, B, K)).
    targets : ndarray of int, shape (...)
        The class of each entry, in [0, K).
    mask : array_like of bool or 0/1, shape (...), optional
        Entries with mask 0 (padded steps) neither count in the mean nor get a gradient.

    Returns
    -------
    loss : float
        The mean over the unmasked entries.
    dlogits : ndarray, shape (..., K)
        ``(softmax(logits) - onehot(targets)) * mask / count``, in the dtype of ``logits``.

    Raises
    ------
    ValueError
        If the shapes disagree or a target lies outside [0, K).
    TypeError
        If ``targets`` are not integers.
    """
    z = np.asarray(logits)
    t = np.asarray(targets)
    if z.ndim == 0 or z.dtype.kind != "f":
        raise ValueError(f"logits must be a float array [..., K] (classes last), got shape {z.shape}, dtype {z.dtype}")
    if z.shape[:-1] != t.shape:
        raise ValueError(f"targets must have shape {z.shape[:-1]} (logits without the class axis), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets must be integers, got dtype {t.dtype}")
    K = z.shape[-1]
    m = np.ones(t.shape, z.dtype) if mask is None else np.asarray(mask).astype(z.dtype)
    if m.shape != t.shape:
        raise ValueError(f"mask must have shape {t.shape}, got {m.shape}")
    tt = np.where(m > 0, t, 0)
    if tt.size and (tt.min() < 0 or tt.max() >= K):
        raise ValueError(f"targets must lie in [0, {K})")
    count = max(float(m.sum()), 1.0)
    p = softmax(z)
    logp = np.log(np.take_along_axis(p, tt[..., None], axis=-1)[..., 0] + np.finfo(z.dtype).tiny)
    loss = float(-(logp * m).sum() / count)
    d = p.copy()
    np.put_along_axis(d, tt[..., None], np.take_along_axis(d, tt[..., None], axis=-1) - 1, axis=-1)
    return loss, (d * (m / count)[..., None]).astype(z.dtype)


class _Group:
    """One parameter group: live parameters, where their gradients are (or None: given to step),
    and the options of this group."""

    def __init__(self, params: Dict[str, Array], grads: Optional[Mapping[str, Array]], options: Dict[str, Any]):
        self.params, self.grads, self.options = params, grads, options


def _is_module(x: Any) -> bool:
    return isinstance(getattr(x, "params", None), dict) and isinstance(getattr(x, "grads", None), dict)


def _check_dict(what: str, d: Any) -> Dict[str, Array]:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a dict name -> array, got {type(d).__name__}")
    for n, v in d.items():
        if not isinstance(v, np.ndarray):
            raise TypeError(f"{what}[{n!r}] must be a NumPy array, got {type(v).__name__}")
    return dict(d)


def _one_group(where: str, g: Any, option_names: Sequence[str]) -> Tuple[Dict[str, Array], Optional[Mapping[str, Array]], Dict[str, Any]]:
    if _is_module(g):
        return g.params, g.grads, {}
    if isinstance(g, tuple) and len(g) == 2:
        return _check_dict(f"{where}[0] (params)", g[0]), _check_dict(f"{where}[1] (grads)", g[1]), {}
    if isinstance(g, Mapping) and "params" in g:
        unknown = sorted(set(g) - {"params", "grads", *option_names})
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}; a group takes 'params', 'grads' and {list(option_names)}")
        p = g["params"]
        if _is_module(p):
            params, grads = p.params, p.grads
        else:
            params, grads = _check_dict(f"{where}['params']", p), None
        if "grads" in g:
            grads = _check_dict(f"{where}['grads']", g["grads"])
        return params, grads, {k: g[k] for k in option_names if k in g}
    if isinstance(g, Mapping):  # a plain dict name -> array: its gradients come to step()
        return _check_dict(where, g), None, {}
    raise TypeError(
        f"{where} must be a module (with .params and .grads), a (params, grads) pair of dicts or a dict "
        f"with 'params', got {type(g).__name__}"
    )


def _groups(params: Any, option_names: Sequence[str]) -> List[Tuple[Dict[str, Array], Optional[Mapping[str, Array]], Dict[str, Any]]]:
    """Every accepted form of ``params`` as a list of (params, grads or None, options)."""
    if _is_module(params):
        return [(params.params, params.grads, {})]
    if isinstance(params, Mapping):
        if "params" in params:
            return [_one_group("params", params, option_names)]
        return [(_check_dict("params", params), None, {})]
    if isinstance(params, (list, tuple)) and not (isinstance(params, tuple) and len(params) == 2
                                                  and all(isinstance(p, Mapping) for p in params)):  # fmt: skip
        if not params:
            raise ValueError("params is an empty list: give at least one module or parameter group")
        return [_one_group(f"params[{i}]", g, option_names) for i, g in enumerate(params)]
    if isinstance(params, tuple):
        return [_one_group("params", params, option_names)]
    raise TypeError(
        f"params must be a dict name -> array, a module (with .params and .grads), or a list of modules "
        f"or parameter groups, got {type(params).__name__}"
    )


def _all_grads(grads: Any) -> List[Array]:
    """Every gradient array of a dict, a module, a (params, grads) pair or a list of these."""
    if _is_module(grads):
        return list(grads.grads.values())
    if isinstance(grads, Mapping):
        if "params" in grads:  # a parameter group
            if "grads" in grads:
                return _all_grads(grads["grads"])
            return _all_grads(grads["params"]) if _is_module(grads["params"]) else []
        return list(grads.values())
    if isinstance(grads, tuple) and len(grads) == 2 and all(isinstance(g, Mapping) for g in grads):
        return list(grads[1].values())
    if isinstance(grads, (list, tuple)):
        out: List[Array] = []
        for g in grads:
            out.extend(_all_grads(g) if isinstance(g, (Mapping, list, tuple)) or _is_module(g) else [g])
        return out
    raise TypeError(f"grads must be a dict name -> array, a module or a list of them, got {type(grads).__name__}")


def clip_grad_norm(grads: Any, max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most ``max_norm``.

    The threshold cure for exploding gradients (``torch.nn.utils.clip_grad_norm_``).

    Parameters
    ----------
    grads : dict, module, or list of them
        A dict name -> gradient array, a module (its ``.grads``), a ``(params, grads)`` pair,
        parameter groups, or a list of any of these: the norm is taken over all of them together.
    max_norm : float
        The threshold, > 0.

    Returns
    -------
    float
        The global norm before clipping.
    """
    max_norm = _number("max_norm", max_norm, 0, low_open=True)
    gs = _all_grads(grads)
    total = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gs)))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in gs:
            g *= scale
    return total


def clip_grad_value(grads: Any, clip_value: float) -> None:
    """Clip every gradient element in place to [-clip_value, clip_value].

    Parameters
    ----------
    grads : dict, module, or list of them
        As for :func:`clip_grad_norm`.
    clip_value : float
        The bound, > 0.
    """
    clip_value = _number("clip_value", clip_value, 0, low_open=True)
    for g in _all_grads(grads):
        np.clip(g, -clip_value, clip_value, out=g)


class _Optimizer:
    """The parameter groups and the one way ``step`` finds each parameter's gradient."""

    _options: Dict[str, Any] = {}

    def __init__(self, params: Params, defaults: Dict[str, Any]):
        self._groups: List[_Group] = []
        seen: Dict[int, str] = {}
        for i, (ps, gs, opts) in enumerate(_groups(params, list(defaults))):
            options = {**defaults, **opts}
            where = "" if not opts else f" (group {i})"
            self._check_options(options, where)
            for n, p in ps.items():
                if id(p) in seen:
                    raise ValueError(f"parameter {n!r} appears in more than one parameter group (also as {seen[id(p)]!r})")
                seen[id(p)] = n
            self._groups.append(_Group(ps, gs, options))
        self.state: Dict[Tuple[int, str], Dict[str, Any]] = {}

    def _check_options(self, options: Dict[str, Any], where: str) -> None:
        raise NotImplementedError

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """The groups as dicts: ``"params"`` (the live arrays), ``"grads"`` (None if given to
        :meth:`step`) and this group's options. Change an option in place to schedule it, e.g.
        ``for g in opt.param_groups: g["lr"] *= 0.5``."""
        return [_GroupView(g) for g in self._groups]

    @property
    def lr(self) -> float:
        """The learning rate of the first group; setting it sets every group's."""
        return float(self._groups[0].options["lr"]) if self._groups else 0.0

    @lr.setter
    def lr(self, value: float) -> None:
        value = _number("lr", value, 0)
        for g in self._groups:
            g.options["lr"] = value

    def _pairs(self, grads: Optional[Any]) -> Iterator[Tuple[int, str, Array, Array, Dict[str, Any]]]:
        """(group index, name, parameter, its gradient, the group's options) for every parameter."""
        if grads is not None:
            given = [grads] if len(self._groups) == 1 and isinstance(grads, Mapping) else grads
            if not isinstance(given, (list, tuple)) or len(given) != len(self._groups):
                raise ValueError(
                    f"step: grads must be a dict (one group) or a list of {len(self._groups)} dicts, one per "
                    f"parameter group, got {type(grads).__name__}"
                )
        for i, g in enumerate(self._groups):
            src = g.grads if grads is None else given[i]
            if src is None:
                raise ValueError(
                    "step() needs the gradients: pass step(grads), or give the optimiser modules (with .grads) "
                    "or (params, grads) pairs so that it finds them"
                )
            for n, p in g.params.items():
                if n not in src:
                    raise KeyError(f"step: no gradient for parameter {n!r} (grads has {sorted(src)})")
                d = src[n]
                if d.shape != p.shape:
                    raise ValueError(f"step: the gradient of {n!r} has shape {d.shape}, the parameter {p.shape}")
                yield i, n, p, d, g.options

    def zero_grad(self) -> None:
        """Set every gradient this optimiser knows of (modules' ``.grads``, given grads dicts) to zero."""
        for g in self._groups:
            for d in (g.grads or {}).values():
                d[...] = 0


class _GroupView(dict):  # type: ignore[type-arg]
    """A group as torch shows it: a dict whose option entries write through to the optimiser."""

    def __init__(self, group: _Group):
        super().__init__(group.options, params=group.params, grads=group.grads)
        self._group = group

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key not in ("params", "grads"):
            self._group.options[key] = value


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum and weight decay (torch.optim.SGD's update).

    ``b = momentum * b + (g + weight_decay * p)``; ``p -= lr * b`` (plain ``g`` when momentum is 0).

    Parameters
    ----------
    params : dict, module, or list of modules or parameter groups
        A dict name -> array (then pass the gradients to :meth:`step`), a module such as
        :class:`rnnkit.LSTM` (its ``.params``, with gradients read from its ``.grads``), a list of
        modules, or a list of groups, each a module, a ``(params, grads)`` pair or a dict with
        ``"params"`` (and optionally ``"grads"``, ``"lr"``, ``"momentum"``, ``"weight_decay"``
        overriding the defaults for that group, as torch's parameter groups do).
    lr : float, default 0.01
    momentum : float, default 0
        In [0, 1).
    weight_decay : float, default 0
        L2 penalty added to the gradient.

    Examples
    --------
    ::

        opt = SGD([{"params": emb, "lr": 0.1}, lstm, head], lr=0.01, momentum=0.9)
        opt.step()
    """

    def __init__(self, params: Params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _check_options(self, o: Dict[str, Any], where: str) -> None:
        o["lr"] = _number("lr" + where, o["lr"], 0)
        o["momentum"] = _number("momentum" + where, o["momentum"], 0, 1, high_open=True)
        o["weight_decay"] = _number("weight_decay" + where, o["weight_decay"], 0)

    def step(self, grads: Optional[Any] = None) -> None:
        """Update every parameter in place.

        Parameters
        ----------
        grads : dict or list of dicts, optional
            The gradients by parameter name (a list: one dict per group). Leave out when the
            optimiser was given modules or ``(params, grads)`` pairs: it reads those.
        """
        for i, n, p, g, o in list(self._pairs(grads)):
            g = g + o["weight_decay"] * p if o["weight_decay"] else g
            if o["momentum"]:
                st = self.state.setdefault((i, n), {})
                b = st.get("momentum_buffer")
                b = g.copy() if b is None else b * o["momentum"] + g
                st["momentum_buffer"] = b
                g = b
            p -= o["lr"] * g


class Adam(_Optimizer):
    """Adam with bias correction (torch.optim.Adam's update).

    Parameters
    ----------
    params : dict, module, or list of modules or parameter groups
        As for :class:`SGD`; a group's dict may override ``"lr"``, ``"betas"`` and ``"eps"``.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, > 0.
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.t = 0

    def _check_options(self, o: Dict[str, Any], where: str) -> None:
        betas = o["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas{where} must be a pair (beta1, beta2), got {betas!r}")
        o["betas"] = (_number(f"betas[0]{where}", betas[0], 0, 1, high_open=True),
                      _number(f"betas[1]{where}", betas[1], 0, 1, high_open=True))  # fmt: skip
        o["lr"] = _number("lr" + where, o["lr"], 0)
        o["eps"] = _number("eps" + where, o["eps"], 0, low_open=True)

    def step(self, grads: Optional[Any] = None) -> None:
        """Update every parameter in place.

        Parameters
        ----------
        grads : dict or list of dicts, optional
            As for :meth:`SGD.step`.
        """
        pairs = list(self._pairs(grads))
        self.t += 1
        for i, n, p, g, o in pairs:
            b1, b2 = o["betas"]
            st = self.state.setdefault((i, n), {})
            m = st["exp_avg"] = b1 * st.get("exp_avg", 0.0) + (1 - b1) * g
            v = st["exp_avg_sq"] = b2 * st.get("exp_avg_sq", 0.0) + (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p -= (o["lr"] * m_hat / (np.sqrt(v_hat) + o["eps"])).astype(p.dtype)


def tbptt_chunks(T: int, chunk: int, lengths: Optional[ArrayLike] = None) -> Iterator[Tuple[int, int, Optional[NDArray[np.int64]]]]:
    """Truncated BPTT: the consecutive chunks of a T-step sequence.

    Run each chunk forward from the previous chunk's final state (detached: no gradient flows back
    across chunks) and backward within the chunk.

    Parameters
    ----------
    T : int
        The sequence length.
    chunk : int
        Steps per chunk (the last chunk may be shorter).
    lengths : array_like of int, shape (B,), optional
        Per-sequence lengths of the whole batch.

    Yields
    ------
    start, stop : int
        The chunk is ``x[start:stop]``.
    chunk_lengths : ndarray of int64, shape (B,), or None
        ``lengths`` clipped to the chunk (0 for a sequence that ended before it).
    """
    from ._validate import positive_int

    positive_int("chunk", chunk)
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        cl = None if lengths is None else np.clip(np.asarray(lengths) - start, 0, stop - start).astype(np.int64)
        yield start, stop, cl
