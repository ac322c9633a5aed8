"""Keras 3 layers' weights as rnnkit layers, and back.

::

    lstm = rnnkit.keras.from_keras(keras_lstm)    # keras.layers.LSTM -> rnnkit.LSTM(batch_first=True)
    y, (h_n, c_n) = lstm(x)                       # x (B, T, I), as the Keras layer takes it
    rnnkit.keras.to_keras(lstm, keras_lstm)       # rnnkit's (trained) parameters into the Keras layer

Converted: ``SimpleRNN`` to `rnnkit.RNN`, ``LSTM`` to `rnnkit.LSTM`, ``GRU`` with
``reset_after=True`` (Keras 3's default, the formula of torch's GRU) to `rnnkit.GRU`, and with
``reset_after=False`` to ``rnnkit.GRU(linear_before_reset=False)``, with any ``activation`` and
``recurrent_activation`` of ONNX's list (tanh, sigmoid, relu, hard_sigmoid, softsign, softplus,
elu, leaky_relu, linear; others than tanh/sigmoid, or relu for SimpleRNN, become the layer's
``activations``), ``Bidirectional`` of one of these with ``merge_mode="concat"`` to the
bidirectional rnnkit layer, ``Dense`` to `rnnkit.Linear` and ``Embedding`` to
`rnnkit.Embedding`. A recurrent layer with ``go_backwards=True`` becomes a `GoBackwards`
wrapper, which runs the rnnkit layer over the time-reversed input as Keras does.

Keras stores a recurrent layer as ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H) and one
``bias`` (G*H,) (the GRU with ``reset_after=True``: (2, 3*H), the input and the recurrent bias);
rnnkit stores torch's ``weight_ih_l0`` (G*H, I), ``weight_hh_l0`` (G*H, H), ``bias_ih_l0`` and
``bias_hh_l0``. Keras's LSTM gates i, f, c, o are torch's i, f, g, o; its GRU gates z, r, h are
reordered to torch's r, z, n. A single Keras bias becomes ``bias_ih`` (``bias_hh`` is zero) and
``to_keras`` writes their sum. Dense's ``kernel`` (in, out) is ``weight.T``.

Anything the conversion cannot honour raises an error naming the Keras layer and the attribute:
NotImplementedError for a form rnnkit does not run (activations outside ONNX's list, merge modes other than
``"concat"``), TypeError for a layer class with no rnnkit equivalent,
ValueError for weights of the wrong shape. Training-time options (``dropout``,
``recurrent_dropout``) and ``stateful`` are not carried over: the rnnkit layer computes what the
Keras layer computes in inference, from the state passed to it (zeros by default).

The layers are found by duck typing (their class name, ``get_config()``, ``get_weights()`` and
``set_weights()``); this module never imports keras, and works with any Keras 3 backend.
"""

# Tested by tests/test_keras.py (against Keras on its torch backend).

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import layers

__all__ = ["from_keras", "to_keras", "GoBackwards"]

Array = NDArray[Any]
_Recurrent = Union[layers.RNN, layers.LSTM, layers.GRU]
#: What `from_keras` returns.
Converted = Union[layers.RNN, layers.LSTM, layers.GRU, "GoBackwards", layers.Linear, layers.Embedding]
_G = TypeVar("_G", bound="GoBackwards")

_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_RNNKIT = {"SimpleRNN": "rnnkit.RNN", "LSTM": "rnnkit.LSTM", "GRU": "rnnkit.GRU"}
_CELL_CLASS: Dict[str, Type[layers._RecurrentLayer]] = {"rnn_tanh": layers.RNN, "rnn_relu": layers.RNN, "lstm": layers.LSTM,
                                                        "gru": layers.GRU, "gru_reset_before": layers.GRU}
_GRU_ORDER = (1, 0, 2)  # Keras's z, r, h blocks <-> torch's r, z, n (the permutation is its own inverse)
_LINEAR = (None, "linear")


def _label(layer: Any, within: Optional[str] = None) -> str:
    text = f"{type(layer).__name__} layer {getattr(layer, 'name', '?')!r}"
    return f"{text} (in {within})" if within else text


def _config(layer: Any) -> Dict[str, Any]:
    get = getattr(layer, "get_config", None)
    if not callable(get):
        raise TypeError(f"expected a Keras layer (with get_config), got {type(layer).__name__}")
    return dict(get())


def _weights(layer: Any, label: str, names: Sequence[str]) -> List[Array]:
    """The layer's weights as arrays, checked to be as many as ``names``."""
    ws = [np.asarray(w) for w in layer.get_weights()]
    if not ws:
        raise ValueError(f"{label} is not built (it has no weights): call it on an input first")
    if len(ws) != len(names):
        raise ValueError(f"{label} has {len(ws)} weight arrays, expected {len(names)} ({', '.join(names)})")
    return ws


def _check_shape(label: str, name: str, a: Array, shape: Tuple[Optional[int], ...]) -> None:
    ok = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("I" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{label}: {name} must have shape {want}, got {a.shape}")


# Keras 3's activations that ONNX's list holds (keras.activations: hard_sigmoid is relu6(x + 3) / 6,
# leaky_relu's negative_slope 0.2, elu's alpha 1), as rnnkit's activations entries
_KERAS_ACTS: Dict[Optional[str], Any] = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "softsign": "Softsign",
                                         "softplus": "Softplus", "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5),
                                         "elu": ("Elu", 1.0), "leaky_relu": ("LeakyRelu", 0.2),
                                         "linear": ("Affine", 1.0, 0.0), None: ("Affine", 1.0, 0.0)}  # fmt: skip
_Form = Tuple[str, Optional[List[Any]]]


def _cell(layer: Any, cfg: Dict[str, Any], label: str) -> _Form:
    """The rnnkit cell of a Keras SimpleRNN, LSTM or GRU and its activations (None: the cell's
    own; else ONNX's list, f = recurrent_activation for the gates, g = h = activation), or an
    error naming what does not fit."""
    kind = type(layer).__name__
    names = ("activation",) if kind == "SimpleRNN" else ("recurrent_activation", "activation")
    acts = []
    for name in names:
        a = cfg.get(name)
        if not (a is None or isinstance(a, str)) or a not in _KERAS_ACTS:
            raise NotImplementedError(f"{label}: {name} {a!r} is not implemented by {_RNNKIT[kind]} (it runs "
                                      f"{', '.join(k for k in _KERAS_ACTS if k)})")  # fmt: skip
        acts.append(_KERAS_ACTS[a])
    if kind == "SimpleRNN":
        if cfg.get("activation") in ("tanh", "relu"):
            return f"rnn_{cfg['activation']}", None
        return "rnn_tanh", acts
    positions = acts + [acts[1]] if kind == "LSTM" else acts  # LSTM: f, g, h; GRU: f, g
    default = ["Sigmoid", "Tanh", "Tanh"] if kind == "LSTM" else ["Sigmoid", "Tanh"]
    activations = None if positions == default else positions
    if kind == "LSTM":
        return "lstm", activations
    # reset_after=False: the reset gate before the recurrent product, rnnkit.GRU(linear_before_reset=False)
    return ("gru" if cfg.get("reset_after", True) else "gru_reset_before"), activations


def _blocks(w: Array, order: Sequence[int]) -> Array:
    parts = np.split(w, len(order), axis=0)
    return np.concatenate([parts[j] for j in order])


def _recurrent_params(layer: Any, cfg: Dict[str, Any], cell: str, label: str) -> Tuple[int, int, Dict[str, Array]]:
    """(input_size, hidden_size, torch-layout parameters without the layer suffix) of a Keras layer."""
    kind = type(layer).__name__
    G, H, use_bias = _GATES[kind], int(cfg["units"]), bool(cfg.get("use_bias", True))
    names = ["kernel", "recurrent_kernel"] + (["bias"] if use_bias else [])
    ws = _weights(layer, label, names)
    _check_shape(label, "kernel", ws[0], (None, G * H))
    _check_shape(label, "recurrent_kernel", ws[1], (H, G * H))
    order = _GRU_ORDER if kind == "GRU" else tuple(range(G))
    p = {"weight_ih": _blocks(ws[0].T, order), "weight_hh": _blocks(ws[1].T, order)}
    if use_bias:
        if cell == "gru":
            _check_shape(label, "bias", ws[2], (2, G * H))
            p["bias_ih"], p["bias_hh"] = _blocks(ws[2][0], order), _blocks(ws[2][1], order)
        else:  # one bias, added outside the reset gate (GRU reset_after=False too)
            _check_shape(label, "bias", ws[2], (G * H,))
            p["bias_ih"], p["bias_hh"] = _blocks(ws[2], order), np.zeros_like(ws[2])
    return int(ws[0].shape[0]), H, p


def _new_recurrent(form: _Form, input_size: int, hidden_size: int, bias: bool, bidirectional: bool,
                   dtype: DTypeLike, backend: str) -> _Recurrent:  # fmt: skip
    cell, activations = form
    kw: Dict[str, Any] = dict(bias=bias, batch_first=True, bidirectional=bidirectional, dtype=dtype, backend=backend,
                              activations=activations)  # fmt: skip
    if cell.startswith("rnn_"):
        return layers.RNN(input_size, hidden_size, nonlinearity=cell[4:], **kw)
    if cell == "lstm":
        return layers.LSTM(input_size, hidden_size, **kw)
    return layers.GRU(input_size, hidden_size, linear_before_reset=cell == "gru", **kw)


def _directions(layer: Any, cfg: Dict[str, Any], label: str) -> Tuple[Any, Any, _Form]:
    """The forward and backward layers of a Keras Bidirectional, and their rnnkit cell and activations."""
    if cfg.get("merge_mode") != "concat":
        raise NotImplementedError(
            f"{label}: merge_mode {cfg.get('merge_mode')!r} is not implemented (rnnkit's bidirectional "
            f"layers concatenate the directions: merge_mode='concat')"
        )
    fw, bw = getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)
    cells = []
    for sub in (fw, bw):
        if type(sub).__name__ not in _GATES:
            raise TypeError(f"{label}: its {type(sub).__name__} layer has no rnnkit equivalent (SimpleRNN, LSTM or GRU)")
        sub_label = _label(sub, label)
        sub_cfg = _config(sub)
        cells.append(_cell(sub, sub_cfg, sub_label))
        if bool(sub_cfg.get("go_backwards")) != (sub is bw):
            raise NotImplementedError(
                f"{sub_label}: go_backwards={sub_cfg.get('go_backwards')} in a Bidirectional layer is not "
                f"implemented (rnnkit's reverse direction is the backward layer, go_backwards=True)"
            )
    if type(fw).__name__ != type(bw).__name__ or cells[0] != cells[1] or _config(fw)["units"] != _config(bw)["units"]:
        raise NotImplementedError(
            f"{label}: forward_layer and backward_layer differ (class, activation or units); rnnkit's "
            f"bidirectional layers run one cell form in both directions"
        )
    if bool(_config(fw).get("use_bias", True)) != bool(_config(bw).get("use_bias", True)):
        raise NotImplementedError(f"{label}: forward_layer and backward_layer differ in use_bias")
    return fw, bw, cells[0]


def from_keras(layer: Any, *, dtype: DTypeLike = np.float32, backend: str = "auto",
               drop_activation: bool = False) -> Converted:  # fmt: skip
    """An rnnkit layer with the weights of a built Keras 3 layer.

    ``B``, ``T`` and ``I`` are the batch, the steps and the input features, ``H`` is the Keras
    layer's ``units``.

    Parameters
    ----------
    layer : keras.layers.Layer
        A built ``SimpleRNN``, ``LSTM``, ``GRU``, ``Bidirectional`` (of one of these), ``Dense``
        or ``Embedding`` (built: called on an input once, or loaded with its weights).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the rnnkit layer's parameters and computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs a recurrent layer (see `rnnkit.available_backends`).
    drop_activation : bool, default False
        ``Dense`` only: convert a Dense whose activation is not linear (``"sigmoid"``, say) to the
        `rnnkit.Linear` of its pre-activation; apply the activation to its output yourself.
        Without it such a Dense raises, so that no activation is lost silently.

    Returns
    -------
    rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, GoBackwards, rnnkit.Linear or rnnkit.Embedding
        A recurrent layer with ``batch_first=True``, so that it takes Keras's input ``x`` of
        shape (B, T, I), and returns what rnnkit layers return: ``y`` of shape (B, T, D*H) and
        the final state ``h_n`` of shape (D, B, H), or ``(h_n, c_n)`` for the LSTM, with ``D = 2``
        for a Bidirectional layer, else 1. Keras's outputs from these:

        - ``return_sequences=True``: ``y``, exactly (for a Bidirectional layer too: Keras flips
          the backward layer's outputs back into time order, which is rnnkit's layout).
        - ``return_sequences=False``: the last step, ``y[:, -1]``, which for full-length
          sequences is also ``h_n[-1]``. For a Bidirectional layer Keras returns
          ``concat(h_forward, h_backward)``, the final states of the two directions, which is
          ``np.concatenate([h_n[0], h_n[1]], axis=-1)`` and *not* ``y[:, -1]`` (there the
          backward direction has read one step only).
        - ``return_state=True``: the states after the output: ``h_n[0]`` (and ``c_n[0]``);
          for a Bidirectional layer ``h_n[0], h_n[1]``, or for the LSTM
          ``h_n[0], c_n[0], h_n[1], c_n[1]``.
        - ``go_backwards=True``: a `GoBackwards` of the layer, returning what Keras returns: the
          outputs in the order the reversed sequence is read (``y[:, 0]`` after reading the last
          input step), and the state after reading the first input step.

        ``Dense`` gives an `rnnkit.Linear` (``y = x @ kernel + bias`` over the last axis), and
        ``Embedding`` an `rnnkit.Embedding`. The layer is in training mode, as rnnkit layers
        start; call ``.eval()`` for inference.

    Raises
    ------
    TypeError
        The layer's class has no rnnkit equivalent.
    NotImplementedError
        The layer asks for a form rnnkit does not run: an activation or recurrent activation
        outside ONNX's list (gelu, selu, silu, ...), a Bidirectional with a ``merge_mode`` other
        than ``"concat"`` or with differing layers, a LoRA-enabled or quantized Dense or
        Embedding.
    ValueError
        The layer is not built, or a weight array has the wrong shape; a Dense with a non-linear
        activation without ``drop_activation=True``.

    Notes
    -----
    An ``Embedding`` with ``mask_zero=True`` makes Keras's recurrent layers skip the steps of id
    0. rnnkit's layers take ``lengths`` instead: for post-padded sequences pass
    ``lengths=(ids != 0).sum(1)`` and the final state (and Keras's ``return_sequences=False``
    output, ``h_n[-1]``) is Keras's; the outputs of the padded steps are zeros where Keras repeats
    the last valid output.

    Examples
    --------
    >>> import os
    >>> _ = os.environ.setdefault("KERAS_BACKEND", "torch")  # any Keras 3 backend; before importing keras
    >>> import keras, numpy as np
    >>> import rnnkit.keras
    >>> x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    >>> k = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True))
    >>> y_keras = keras.ops.convert_to_numpy(k(x))               # (3, 5, 12)
    >>> lstm = rnnkit.keras.from_keras(k).eval()
    >>> y, (h_n, c_n) = lstm(x)
    >>> y.shape, h_n.shape, bool(np.allclose(y, y_keras, atol=1e-5))
    ((3, 5, 12), (2, 3, 6), True)
    """
    kind, label, cfg = type(layer).__name__, _label(layer), _config(layer)
    if kind not in _GATES and kind not in ("Bidirectional", "Dense", "Embedding"):
        raise TypeError(
            f"from_keras: {label} has no rnnkit equivalent (SimpleRNN, LSTM, GRU, Bidirectional, Dense "
            f"and Embedding convert)"
        )
    if kind in _GATES:
        form = _cell(layer, cfg, label)
        I, H, p = _recurrent_params(layer, cfg, form[0], label)  # noqa: E741
        rk = _new_recurrent(form, I, H, bool(cfg.get("use_bias", True)), False, dtype, backend)
        rk.load_state_dict({f"{n}_l0": v for n, v in p.items()})
        return GoBackwards(rk) if cfg.get("go_backwards") else rk
    if kind == "Bidirectional":
        fw, bw, form = _directions(layer, cfg, label)
        I, H, pf = _recurrent_params(fw, _config(fw), form[0], _label(fw, label))  # noqa: E741
        Ib, _, pb = _recurrent_params(bw, _config(bw), form[0], _label(bw, label))
        if Ib != I:
            raise ValueError(f"{label}: the backward layer's kernel reads {Ib} features, the forward layer's {I}")
        rk = _new_recurrent(form, I, H, "bias_ih" in pf, True, dtype, backend)
        rk.load_state_dict({**{f"{n}_l0": v for n, v in pf.items()}, **{f"{n}_l0_reverse": v for n, v in pb.items()}})
        return rk
    _not_adapted(cfg, label)
    if kind == "Dense":
        act = cfg.get("activation")
        if act not in _LINEAR and not drop_activation:
            raise ValueError(
                f"{label}: activation {act!r} has no place in rnnkit.Linear; pass drop_activation=True to "
                f"convert the affine part and apply {act!r} to its output yourself"
            )
        use_bias = bool(cfg.get("use_bias", True))
        ws = _weights(layer, label, ["kernel", "bias"] if use_bias else ["kernel"])
        _check_shape(label, "kernel", ws[0], (None, int(cfg["units"])))
        lin = layers.Linear(ws[0].shape[0], ws[0].shape[1], bias=use_bias, dtype=dtype)
        state = {"weight": ws[0].T}
        if use_bias:
            _check_shape(label, "bias", ws[1], (int(cfg["units"]),))
            state["bias"] = ws[1]
        lin.load_state_dict(state)
        return lin
    (table,) = _weights(layer, label, ["embeddings"])
    _check_shape(label, "embeddings", table, (int(cfg["input_dim"]), int(cfg["output_dim"])))
    emb = layers.Embedding(table.shape[0], table.shape[1], dtype=dtype)
    emb.load_state_dict({"weight": table})
    return emb


def _not_adapted(cfg: Dict[str, Any], label: str) -> None:
    for attr in ("lora_rank", "quantization_config"):
        if cfg.get(attr):
            raise NotImplementedError(f"{label}: {attr}={cfg[attr]!r} is not implemented (a plain float layer is)")


def _built(keras_layer: Any, shape: Tuple[Optional[int], ...]) -> None:
    if not getattr(keras_layer, "built", True) or not keras_layer.get_weights():
        keras_layer.build(shape)


def _keras_recurrent(rk: layers._RecurrentLayer, sfx: str, cell: str, use_bias: bool, label: str) -> List[Array]:
    """The Keras weights (kernel, recurrent_kernel[, bias]) of one direction of an rnnkit layer."""
    p = rk.params
    order = _GRU_ORDER if cell.startswith("gru") else tuple(range(rk._gates))
    out = [_blocks(p[f"weight_ih{sfx}"], order).T, _blocks(p[f"weight_hh{sfx}"], order).T]
    if not use_bias:
        if rk.bias and (np.any(p[f"bias_ih{sfx}"]) or np.any(p[f"bias_hh{sfx}"])):
            raise ValueError(f"to_keras: {label} has use_bias=False, but the rnnkit layer's biases are not zero")
        return out
    GH = rk._gates * rk.hidden_size
    b_ih = p[f"bias_ih{sfx}"] if rk.bias else np.zeros(GH, rk.dtype)
    b_hh = p[f"bias_hh{sfx}"] if rk.bias else np.zeros(GH, rk.dtype)
    out.append(np.stack([_blocks(b_ih, order), _blocks(b_hh, order)]) if cell == "gru" else _blocks(b_ih + b_hh, order))
    return out


def _expect_recurrent(rk: Any, form: _Form, bidirectional: bool, label: str, units: int) -> layers._RecurrentLayer:
    from ._validate import layer_forms

    cell, activations = form
    cls = _CELL_CLASS[cell]
    if not isinstance(rk, cls):
        raise TypeError(f"to_keras: {label} takes an rnnkit.{cls.__name__}, got {type(rk).__name__}")
    if rk.clip is not None or rk.input_forget:
        raise ValueError(f"to_keras: {label} has no clip or input_forget, the rnnkit layer has clip={rk.clip}, "
                         f"input_forget={rk.input_forget}")  # fmt: skip
    ((want_cell, want),) = layer_forms(cell, activations, None, False, 1)
    for have_cell, have in rk._forms:  # each direction's cell and activations
        if have_cell != want_cell and cell.startswith("rnn_") and not (want["activations"] or have["activations"]):
            raise ValueError(f"to_keras: {label} has activation {want_cell[4:]!r}, the rnnkit.RNN runs {have_cell[4:]!r}")
        if have_cell != want_cell and cell.startswith("gru"):  # a GRU of the other cell form (reset_after)
            form_name = "reset_after=True" if cell == "gru" else "reset_after=False"
            raise ValueError(f"to_keras: {label} has {form_name}, the rnnkit.GRU is of the other form "
                             f"(linear_before_reset={rk._cell == 'gru'})")  # fmt: skip
        if (have_cell, have) != (want_cell, want):
            raise ValueError(f"to_keras: {label} has activations {want['activations'] or 'of its cell'}, the rnnkit "
                             f"layer runs {have['activations'] or 'its cell ' + repr(have_cell)}")  # fmt: skip
    if rk.proj_size:
        raise ValueError(f"to_keras: {label} has no projection, the rnnkit.LSTM has proj_size={rk.proj_size}")
    if rk.num_layers != 1:
        raise ValueError(f"to_keras: {label} holds one layer, the rnnkit layer has num_layers={rk.num_layers}")
    if rk.bidirectional != bidirectional:
        raise ValueError(f"to_keras: {label} takes a bidirectional={bidirectional} rnnkit layer, got bidirectional={rk.bidirectional}")
    if rk.hidden_size != units:
        raise ValueError(f"to_keras: {label} has units={units}, the rnnkit layer hidden_size={rk.hidden_size}")
    return rk


def _set(keras_layer: Any, new: List[Array], label: str, names: Sequence[str]) -> None:
    old = [np.asarray(w) for w in keras_layer.get_weights()]
    for name, a, b in zip(names, new, old):
        if a.shape != b.shape:
            raise ValueError(f"to_keras: {label}: {name} must have shape {b.shape}, the rnnkit layer gives {a.shape}")
    keras_layer.set_weights([a.astype(b.dtype) for a, b in zip(new, old)])


def to_keras(layer: Converted, keras_layer: Any) -> None:
    """Write an rnnkit layer's parameters into a Keras 3 layer of the matching kind.

    The inverse of `from_keras`: a model trained with rnnkit then runs in Keras. The Keras
    layer keeps its configuration; only its weights change (``set_weights``), cast to its dtype.
    An unbuilt Keras layer is built first for the rnnkit layer's input size.

    Parameters
    ----------
    layer : rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, GoBackwards, rnnkit.Linear or rnnkit.Embedding
        The source: one layer (``num_layers=1``), bidirectional for a Keras ``Bidirectional``,
        a `GoBackwards` for a Keras layer with ``go_backwards=True``. rnnkit's two biases are
        summed into Keras's one (SimpleRNN, LSTM); a layer without biases writes zeros.
    keras_layer : keras.layers.Layer
        The target: ``SimpleRNN`` (with the rnnkit.RNN's nonlinearity as ``activation``),
        ``LSTM``, ``GRU`` (``reset_after=True``; ``False`` for a GRU with
        ``linear_before_reset=False``), ``Bidirectional`` of one of these
        (``merge_mode="concat"``), ``Dense`` (of any activation: the rnnkit.Linear is its affine
        part) or ``Embedding``.

    Raises
    ------
    TypeError
        The rnnkit layer is not of the Keras layer's kind, or the Keras layer has no rnnkit
        equivalent.
    NotImplementedError
        The Keras layer is of a form rnnkit does not run (as in `from_keras`).
    ValueError
        The sizes, the number of layers, the directions or ``go_backwards`` differ, the Keras
        layer has ``use_bias=False`` and the rnnkit layer non-zero biases, or a weight does not
        fit.

    Examples
    --------
    >>> import os
    >>> _ = os.environ.setdefault("KERAS_BACKEND", "torch")  # any Keras 3 backend; before importing keras
    >>> import keras, numpy as np
    >>> import rnnkit, rnnkit.keras
    >>> gru = rnnkit.GRU(4, 6, batch_first=True, seed=0).eval()
    >>> k = keras.layers.GRU(6, return_sequences=True)
    >>> rnnkit.keras.to_keras(gru, k)                             # builds k for I = 4
    >>> x = np.ones((3, 5, 4), np.float32)
    >>> y, h_n = gru(x)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(k(x)), y, atol=1e-5))
    True
    """
    kind, label, cfg = type(keras_layer).__name__, _label(keras_layer), _config(keras_layer)
    if kind not in _GATES and kind not in ("Bidirectional", "Dense", "Embedding"):
        raise TypeError(f"to_keras: {label} has no rnnkit equivalent (SimpleRNN, LSTM, GRU, Bidirectional, Dense, Embedding)")
    names3 = ["kernel", "recurrent_kernel", "bias"]
    if kind in _GATES:
        form = _cell(keras_layer, cfg, label)
        cell = form[0]
        backwards = isinstance(layer, GoBackwards)
        if backwards != bool(cfg.get("go_backwards")):
            fix = "wrap the rnnkit layer in rnnkit.keras.GoBackwards" if not backwards else "pass the layer inside"
            raise ValueError(f"to_keras: {label} has go_backwards={bool(cfg.get('go_backwards'))}; {fix}")
        inner = layer.layer if isinstance(layer, GoBackwards) else layer
        rk = _expect_recurrent(inner, form, False, label, int(cfg["units"]))
        use_bias = bool(cfg.get("use_bias", True))
        _built(keras_layer, (None, None, rk.input_size))
        _set(keras_layer, _keras_recurrent(rk, "_l0", cell, use_bias, label), label, names3)
        return
    if kind == "Bidirectional":
        fw, bw, form = _directions(keras_layer, cfg, label)
        cell = form[0]
        rk = _expect_recurrent(layer, form, True, label, int(_config(fw)["units"]))
        use_bias = bool(_config(fw).get("use_bias", True))
        _built(keras_layer, (None, None, rk.input_size))
        new = _keras_recurrent(rk, "_l0", cell, use_bias, _label(fw, label))
        new += _keras_recurrent(rk, "_l0_reverse", cell, use_bias, _label(bw, label))
        n = len(new) // 2
        _set(keras_layer, new, label, [f"forward {s}" for s in names3[:n]] + [f"backward {s}" for s in names3[:n]])
        return
    _not_adapted(cfg, label)
    if kind == "Dense":
        if not isinstance(layer, layers.Linear):
            raise TypeError(f"to_keras: {label} takes an rnnkit.Linear, got {type(layer).__name__}")
        use_bias = bool(cfg.get("use_bias", True))
        if not use_bias and np.any(layer.params.get("bias", 0)):
            raise ValueError(f"to_keras: {label} has use_bias=False, but the rnnkit.Linear's bias is not zero")
        _built(keras_layer, (None, layer.in_features))
        new = [layer.params["weight"].T]
        if use_bias:
            new.append(layer.params.get("bias", np.zeros(layer.out_features, layer.dtype)))
        _set(keras_layer, new, label, ["kernel", "bias"])
        return
    if not isinstance(layer, layers.Embedding):
        raise TypeError(f"to_keras: {label} takes an rnnkit.Embedding, got {type(layer).__name__}")
    _built(keras_layer, (None,))
    _set(keras_layer, [layer.params["weight"]], label, ["embeddings"])


class GoBackwards:
    """An rnnkit recurrent layer run over the time-reversed input: Keras's ``go_backwards=True``.

    ``GoBackwards(layer)(x)`` is ``layer(x reversed in time)``: the outputs come in the order
    the reversed sequence is read (the first after the last input step), as Keras returns them
    (Keras does not flip them back; only its ``Bidirectional`` does). `from_keras` returns one
    for a Keras layer with ``go_backwards=True``; `to_keras` takes one for such a layer.
    Padded batches (``lengths``) are not supported: Keras masks the reversed sequence, whose
    padding then comes first.

    Parameters
    ----------
    layer : rnnkit.RNN, rnnkit.LSTM or rnnkit.GRU
        A unidirectional layer; ``batch_first`` says which axis is time.

    Attributes
    ----------
    layer : rnnkit.RNN, rnnkit.LSTM or rnnkit.GRU
        The wrapped layer, holding the parameters.

    Raises
    ------
    TypeError
        ``layer`` is not an rnnkit RNN, LSTM or GRU.
    ValueError
        ``layer`` is bidirectional.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit, rnnkit.keras
    >>> lstm = rnnkit.LSTM(4, 6, batch_first=True, seed=0)
    >>> back = rnnkit.keras.GoBackwards(lstm)
    >>> x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    >>> y, (h_n, c_n) = back(x)
    >>> bool(np.array_equal(y, lstm(x[:, ::-1])[0])), y.shape
    (True, (3, 5, 6))
    """

    def __init__(self, layer: _Recurrent) -> None:
        if not isinstance(layer, (layers.RNN, layers.LSTM, layers.GRU)):
            raise TypeError(f"GoBackwards takes an rnnkit.RNN, LSTM or GRU, got {type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("GoBackwards takes a unidirectional layer (bidirectional=False)")
        self.layer = layer

    def _flip(self, a: Array) -> Array:
        return np.ascontiguousarray(np.flip(a, axis=1 if self.layer.batch_first else 0))

    def forward(self, x: ArrayLike, state: Any = None) -> Tuple[Array, layers.State]:
        """Run the layer over the reversed sequences (also available as calling the wrapper).

        Parameters
        ----------
        x : ndarray, shape (B, T, I), or (T, B, I) without ``batch_first``
            The input sequences, in time order.
        state : ndarray or tuple of ndarray, optional
            The initial state, as the layer takes it: ``h0`` of shape (1, B, H), or
            ``(h0, c0)`` for the LSTM. None means zeros.

        Returns
        -------
        y : ndarray, shape (B, T, H), or (T, B, H) without ``batch_first``
            The outputs in the order the reversed sequence is read: ``y[:, t]`` after reading
            input steps ``T-1`` down to ``T-1-t``.
        state_n : ndarray or tuple of ndarray
            The state after reading the first input step: ``h_n`` of shape (1, B, H), or
            ``(h_n, c_n)`` for the LSTM.

        Raises
        ------
        ValueError
            ``x`` is not 3-D, or the state does not fit it.
        """
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D, got shape {x.shape}")
        return self.layer(self._flip(x), state)

    __call__ = forward

    def backward(self, dy: Optional[ArrayLike], dstate_n: Any = None, *,
                 retain_graph: bool = False) -> Tuple[Array, layers.State]:  # fmt: skip
        """Backpropagation through the last training-mode call; parameter gradients go to ``layer.grads``.

        Parameters
        ----------
        dy : ndarray, shape of that call's ``y``, or None
            The gradient of the loss with respect to ``y`` (in ``y``'s order); None means zeros.
        dstate_n : ndarray or tuple of ndarray, optional
            The gradient with respect to the final state.
        retain_graph : bool, default False
            Keep what the forward call recorded, so that backward may run on it again.

        Returns
        -------
        dx : ndarray
            The gradient with respect to ``x``, in ``x``'s (time) order.
        dstate0 : ndarray or tuple of ndarray
            The gradient with respect to the initial state.
        """
        dx, ds0 = self.layer.backward(dy, dstate_n, retain_graph=retain_graph)
        return self._flip(dx), ds0

    @property
    def params(self) -> Dict[str, Array]:
        """The wrapped layer's parameters, under torch's names."""
        return self.layer.params

    @property
    def grads(self) -> Dict[str, Array]:
        """The wrapped layer's gradients, under the same names."""
        return self.layer.grads

    def train(self: _G, mode: bool = True) -> _G:
        """Switch the wrapped layer's training mode on (or off with ``mode=False``).

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for inference.

        Returns
        -------
        self
        """
        self.layer.train(mode)
        return self

    def eval(self: _G) -> _G:
        """Switch the wrapped layer to inference mode.

        Returns
        -------
        self
        """
        return self.train(False)
