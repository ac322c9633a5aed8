"""ONNX interchange for rnnkit's NumPy layers, and rnnkit as an ONNX backend for RNN/LSTM/GRU nodes.

::

    rnnkit.onnx.export(layer, "model.onnx")        # rnnkit.RNN/LSTM/GRU -> ONNX RNN/LSTM/GRU nodes
    layers = rnnkit.onnx.load("model.onnx")        # each chain of recurrent nodes -> an rnnkit layer
    rep = rnnkit.onnx.Backend.prepare(model)       # onnx.backend API: rep.run([x, ...])

The ONNX operators (https://onnx.ai/onnx/operators/onnx__LSTM.html and RNN, GRU) differ from
torch's layout, which rnnkit uses, in gate order (LSTM i, o, f, c against torch's i, f, g, o; GRU
z, r, h against r, z, n), in stacking the directions of one node (W (D, G*H, I), R (D, G*H, H),
B (D, 2*G*H) = [Wb, Rb]), and in the output's layout (Y (T, D, B, H)); those are converted here.
Every form of the three operators runs: torch's cells, the ONNX GRU with either
``linear_before_reset``, the LSTM with peepholes (input ``P``), and ONNX's options ``activations``
(with ``activation_alpha``/``activation_beta``), ``clip`` and ``input_forget`` (see
functional.forward). `load` builds layers with those options and `export` writes them; the
Backend runs any node. A node whose attributes or weights do not fit gets an error naming the
node and the attribute.

The functions need the onnx package (the ``onnx`` or ``test`` extra); ``import rnnkit`` does not
import it.
"""

# Tested by tests/test_onnx.py.

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import functional as F
from . import layers
from ._validate import LSTM_CELLS

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

__all__ = ["export", "load", "Backend"]  # noqa: F822 - Backend comes from __getattr__

Array = NDArray[Any]
_Layer = Union[layers.RNN, layers.LSTM, layers.GRU]
_Path = Union[str, "os.PathLike[str]"]

_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU", "gru_reset_before": "GRU",
       "lstm_peephole": "LSTM"}
_TO_ONNX = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "gru_reset_before": (1, 0, 2),
            "lstm_peephole": (0, 3, 1, 2)}  # ONNX's gate blocks, as torch's
_TO_TORCH = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2)}  # torch's gate blocks, as ONNX's block indices
_DEFAULT_ACTS = {"RNN": ["tanh"], "LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


def _onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - the test extra has it
        raise ImportError("rnnkit.onnx needs the onnx package: pip install onnx") from e
    return onnx


def _blocks(w: Array, order: Sequence[int]) -> Array:
    """The gate blocks of w [G*H, ...] in the given order of block indices."""
    if len(order) == 1:
        return w
    parts = np.split(w, len(order), axis=0)
    return np.concatenate([parts[j] for j in order])


def _cell_of(layer: object) -> str:
    cell: str = getattr(layer, "_cell", "")  # checked just below
    if cell not in _OP or not isinstance(layer, layers._RecurrentLayer):
        raise TypeError(f"layer must be an rnnkit.RNN, LSTM or GRU, got {type(layer).__name__}")
    return cell


def export(layer: _Layer, path: _Path, *, lengths: bool = False, initial_states: bool = False,
           opset: int = 18) -> ModelProto:  # fmt: skip
    """Write an `rnnkit.RNN`, `rnnkit.LSTM` or `rnnkit.GRU` as an ONNX model.

    The model has one ONNX RNN, LSTM or GRU node per layer (both directions in it), the weights
    as initializers, and computes what ``layer.forward`` returns in inference (no dropout).
    ``L``, ``D``, ``H`` and ``I`` are the layer's ``num_layers``, ``num_directions``,
    ``hidden_size`` and ``input_size``; ``T`` and ``B`` are dynamic.

    Parameters
    ----------
    layer : rnnkit.RNN, rnnkit.LSTM or rnnkit.GRU
        The layer to export.
    path : str or os.PathLike
        Where to write the model.
    lengths : bool, default False
        Give the model the input ``lengths``, shape (B,), int32 (ONNX's ``sequence_lens``).
    initial_states : bool, default False
        Give the model the inputs ``h0`` (and ``c0`` for the LSTM), shape (L*D, B, H).
    opset : int, default 18
        The ONNX opset version of the model.

    Returns
    -------
    onnx.ModelProto
        The model written. Its inputs: ``x``, shape (T, B, I), or (B, T, I) with
        ``batch_first``, then ``lengths`` and ``h0`` (``c0``) as asked for. Its outputs: ``y``,
        shape (T, B, D*H) or (B, T, D*H), and ``h_n`` (and ``c_n``), shape (L*D, B, H).

    Raises
    ------
    TypeError
        ``layer`` is not an rnnkit RNN, LSTM or GRU.
    ImportError
        The onnx package is not installed.
    NotImplementedError
        An LSTM with projections (``proj_size > 0``): ONNX's LSTM operator has none.

    See Also
    --------
    load : Read the layers back.

    Examples
    --------
    >>> import os, tempfile
    >>> import rnnkit, rnnkit.onnx
    >>> lstm = rnnkit.LSTM(3, 4, num_layers=2, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "lstm.onnx")
    >>> model = rnnkit.onnx.export(lstm, path)
    >>> [n.op_type for n in model.graph.node if n.op_type == "LSTM"]
    ['LSTM', 'LSTM']
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    cell = _cell_of(layer)
    if layer.proj_size:
        raise NotImplementedError(f"{type(layer).__name__}(proj_size={layer.proj_size}): an LSTM with projections "
                                  "has no ONNX form (ONNX's LSTM operator has no projection weight)")  # fmt: skip
    op, lstm = _OP[cell], cell in LSTM_CELLS
    L, D, H, I = layer.num_layers, layer.num_directions, layer.hidden_size, layer.input_size  # noqa: E741
    et = TensorProto.DOUBLE if layer.dtype == np.float64 else TensorProto.FLOAT
    order = _TO_ONNX.get(cell, (0,))
    nodes, inits = [], []
    inputs = [helper.make_tensor_value_info("x", et, ["B", "T", I] if layer.batch_first else ["T", "B", I])]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
    if initial_states:
        inputs += [helper.make_tensor_value_info(n, et, [L * D, "B", H]) for n in (("h0", "c0") if lstm else ("h0",))]

    def const(name: str, a: ArrayLike) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    x = "x"
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2]))
        x = "x_tm"
    shape3 = const("shape_tb_", np.array([0, 0, -1], np.int64))
    hs, cs = [], []
    for li in range(L):
        sfxs = layer._suffixes(li)
        W = np.stack([_blocks(layer.params[f"weight_ih{s}"], order) for s in sfxs])
        R = np.stack([_blocks(layer.params[f"weight_hh{s}"], order) for s in sfxs])
        ins = [x, const(f"W_l{li}", W), const(f"R_l{li}", R)]
        if layer.bias:
            B = np.stack([np.concatenate([_blocks(layer.params[f"bias_ih{s}"], order),
                                          _blocks(layer.params[f"bias_hh{s}"], order)]) for s in sfxs])  # fmt: skip
            ins.append(const(f"B_l{li}", B))
        else:
            ins.append("")
        ins.append("lengths" if lengths else "")
        if initial_states:
            for name in ("h0", "c0") if lstm else ("h0",):
                lo, hi = const(f"{name}_lo_l{li}", np.array([li * D], np.int64)), const(f"{name}_hi_l{li}", np.array([li * D + D], np.int64))
                nodes.append(helper.make_node("Slice", [name, lo, hi], [f"{name}_l{li}"]))
                ins.append(f"{name}_l{li}")
        if cell == "lstm_peephole":  # input P (D, 3H), ONNX's order p_i, p_o, p_f
            ins += [""] * (7 - len(ins))
            ins.append(const(f"P_l{li}", np.stack([_blocks(layer.params[f"weight_peephole{s}"], (0, 2, 1)) for s in sfxs])))
        attrs: Dict[str, Any] = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
        if op == "GRU":
            attrs["linear_before_reset"] = int(cell == "gru")
        attrs.update(_option_attrs(layer))
        outs = [f"Y_l{li}", f"Yh_l{li}"] + ([f"Yc_l{li}"] if lstm else [])
        nodes.append(helper.make_node(op, ins, outs, name=f"{op.lower()}_l{li}", **attrs))
        nodes.append(helper.make_node("Transpose", [outs[0]], [f"Yt_l{li}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt_l{li}", shape3], [f"y_l{li}"]))
        x = f"y_l{li}"
        hs.append(outs[1])
        if lstm:
            cs.append(outs[2])
    y = x
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", [x], ["y_bf"], perm=[1, 0, 2]))
        y = "y_bf"
    nodes.append(helper.make_node("Identity", [y], ["y"]))
    nodes.append(helper.make_node("Concat", hs, ["h_n"], axis=0))
    y_shape: List[Union[str, int]] = ["B", "T", D * H] if layer.batch_first else ["T", "B", D * H]
    outputs = [helper.make_tensor_value_info("y", et, y_shape), helper.make_tensor_value_info("h_n", et, [L * D, "B", H])]
    if lstm:
        nodes.append(helper.make_node("Concat", cs, ["c_n"], axis=0))
        outputs.append(helper.make_tensor_value_info("c_n", et, [L * D, "B", H]))
    graph = helper.make_graph(nodes, f"rnnkit_{cell}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="rnnkit")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return model


def _option_attrs(layer: _Layer) -> Dict[str, Any]:
    """The node attributes of a layer's ONNX options (activations with activation_alpha and
    activation_beta in the order the activations take them, clip, input_forget); {} for torch's
    cell with its own activations."""
    from ._validate import _ONNX_NAMES, ACTIVATIONS, DEFAULT_ACTS, _activation

    forms = layer._forms
    attrs: Dict[str, Any] = {}
    if any(kw["activations"] for _, kw in forms) or any(c == "rnn_relu" for c, _ in forms):
        names, alphas, betas = [], [], []
        onnx_name = dict(zip(ACTIVATIONS, _ONNX_NAMES))
        for c, kw in forms:
            for k, spec in enumerate(kw["activations"] or [onnx_name[a] for a in DEFAULT_ACTS[c]]):
                key, al, be = _activation(f"activations[{k}]", spec)
                names.append(onnx_name[key])
                n_params = len(ACTIVATIONS[key])
                alphas += [al] if n_params >= 1 else []
                betas += [be] if n_params == 2 else []
        attrs["activations"] = names
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    if layer.clip is not None:
        attrs["clip"] = float(layer.clip)
    if layer.input_forget:
        attrs["input_forget"] = 1
    return attrs


# ---- reading ONNX recurrent nodes ----


class _Node:
    """One ONNX RNN/LSTM/GRU node, read and checked: rnnkit's cell, sizes, and per direction the
    weights in torch's layout."""

    def __init__(self, node: NodeProto, value: Callable[[str], Optional[Array]]) -> None:
        """value(name) -> ndarray or None: an initializer (or, at run time, an input)."""
        from onnx import helper

        self.node, self.op = node, node.op_type
        where = f"{self.op} node {node.name or node.output[0]!r}"
        a: Dict[str, Any] = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        clip = a.get("clip")
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"{where}: attribute clip must be a positive number, got {clip!r}")
        input_forget = a.get("input_forget", 0)
        if input_forget not in (0, 1) or (input_forget and self.op != "LSTM"):
            raise ValueError(f"{where}: attribute input_forget must be 0 or 1 (LSTM only), got {input_forget!r}")
        lbr = a.get("linear_before_reset", 0)
        if self.op == "GRU" and lbr not in (0, 1):
            raise ValueError(f"{where}: attribute linear_before_reset must be 0 or 1, got {lbr!r}")
        direction = a.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{where}: attribute direction must be forward, reverse or bidirectional, got {direction!r}")
        self.D = 2 if direction == "bidirectional" else 1
        self.reverses = [False, True] if self.D == 2 else [direction == "reverse"]
        self.layout = a.get("layout", 0)
        # ONNX's default GRU (linear_before_reset=0) is rnnkit's gru_reset_before; linear_before_reset=1
        # is torch's GRU
        self.cell = {"LSTM": "lstm", "GRU": "gru" if lbr == 1 else "gru_reset_before"}.get(self.op, "rnn_tanh")
        acts = _activations(where, a, self.op, self.D)
        if self.op == "RNN" and acts and all(d == [("relu",)] for d in acts):
            self.cell, acts = "rnn_relu", []  # torch's RNN with relu in every direction
        # functional.forward's options per direction (ONNX's activations, clip, input_forget)
        self.options: List[Dict[str, Any]] = [dict(activations=acts[d] if acts else None, clip=None if clip is None else float(clip),
                             input_forget=bool(input_forget)) for d in range(self.D)]  # fmt: skip
        ins = list(node.input) + [""] * (8 - len(node.input))
        W, R = value(ins[1]), value(ins[2])
        if W is None or R is None:
            raise ValueError(f"{where}: inputs W and R must be given")
        P = value(ins[7]) if len(ins) > 7 and ins[7] else None
        if len(ins) > 7 and ins[7] and P is None:
            raise NotImplementedError(f"{where}: input P (peepholes) must be an initializer or a graph input")
        if P is not None and np.any(P):  # peepholes: rnnkit's lstm_peephole (the NumPy reference only so far)
            self.cell = "lstm_peephole"
        G = {"LSTM": 4, "GRU": 3}.get(self.op, 1)
        self.H = int(a["hidden_size"] if "hidden_size" in a else R.shape[-1])
        if W.ndim != 3 or W.shape[0] != self.D or W.shape[1] != G * self.H or R.shape != (self.D, G * self.H, self.H):
            raise ValueError(f"{where}: W {W.shape} and R {R.shape} do not fit {self.D} direction(s), "
                             f"{G} gate(s) and hidden_size {self.H}")  # fmt: skip
        self.I = W.shape[2]
        Bias = value(ins[3]) if ins[3] else None
        if Bias is not None and Bias.shape != (self.D, 2 * G * self.H):
            raise ValueError(f"{where}: B has shape {Bias.shape}, expected ({self.D}, {2 * G * self.H})")
        if self.cell == "lstm_peephole" and (P is None or P.shape != (self.D, 3 * self.H)):
            raise ValueError(f"{where}: P has shape {None if P is None else P.shape}, expected ({self.D}, {3 * self.H})")
        order = _TO_TORCH.get({"GRU": "gru", "LSTM": "lstm"}.get(self.op, self.cell), (0,))
        self.weights = []
        for d in range(self.D):
            b_ih = b_hh = None
            if Bias is not None:
                b_ih, b_hh = _blocks(Bias[d, : G * self.H], order), _blocks(Bias[d, G * self.H :], order)
            w: Tuple[Any, ...] = (_blocks(W[d], order), _blocks(R[d], order), b_ih, b_hh)
            if self.cell == "lstm_peephole":
                assert P is not None
                w += (_blocks(P[d], (0, 2, 1)),)  # ONNX's p_i, p_o, p_f -> p_i, p_f, p_o
            self.weights.append(w)
        self.inputs = ins

    def run(self, x: Array, lengths: Optional[ArrayLike] = None, h0: Optional[Array] = None,
            c0: Optional[Array] = None, backend: str = "auto") -> Tuple[Any, ...]:
        """ONNX's outputs (Y, Y_h[, Y_c]) for x in the node's layout."""
        if self.layout == 1:
            x = x.transpose(1, 0, 2)
            h0 = None if h0 is None else h0.transpose(1, 0, 2)
            c0 = None if c0 is None else c0.transpose(1, 0, 2)
        x = np.ascontiguousarray(x)
        lstm = self.cell in LSTM_CELLS
        dt = x.dtype
        ys, hs, cs = [], [], []
        for d in range(self.D):
            w = tuple(None if t is None else t.astype(dt, copy=False) for t in self.weights[d])
            h = None if h0 is None else np.ascontiguousarray(h0[d], dt)
            c = None if c0 is None else np.ascontiguousarray(c0[d], dt)
            y, sn, _ = F.forward(self.cell, x, w, (h, c) if lstm else h, lengths=lengths,
                                 reverse=self.reverses[d], training=False, backend=backend, **self.options[d])  # fmt: skip
            ys.append(y)
            hs.append(sn[0] if lstm else sn)
            if lstm:
                cs.append(sn[1])
        Y, Y_h = np.stack(ys, axis=1), np.stack(hs)  # [T, D, B, H], [D, B, H]
        Y_c = np.stack(cs) if lstm else None
        if self.layout == 1:
            Y, Y_h = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2)
            Y_c = None if Y_c is None else Y_c.transpose(1, 0, 2)
        return (Y, Y_h, Y_c) if lstm else (Y, Y_h)


def _activations(where: str, a: Dict[str, Any], op: str, D: int) -> List[List[Tuple[Any, ...]]]:
    """A node's activations attribute, with activation_alpha and activation_beta consumed in order
    by the activations that take them (as ONNX and onnxruntime read them), per direction as
    functional.forward's ``activations``; [] without the attribute."""
    from ._validate import ACTIVATIONS

    names = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [])]
    if not names:
        return []
    per = len(_DEFAULT_ACTS[op])
    if len(names) != per * D:
        raise ValueError(f"{where}: attribute activations has {len(names)} entries, expected {per * D} "
                         f"({per} per direction)")  # fmt: skip
    alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
    specs: List[Tuple[Any, ...]] = []
    for name in names:
        defaults = ACTIVATIONS.get(name.lower())
        if defaults is None:
            raise NotImplementedError(f"{where}: activation {name!r} is not one of ONNX's activations")
        params = []
        for j, pool in enumerate((alphas, betas)[: len(defaults)]):
            if pool:
                params.append(pool.pop(0))
            elif defaults[j] is None:
                raise ValueError(f"{where}: activation {name} needs activation_{('alpha', 'beta')[j]}")
            else:
                params.append(defaults[j])
        specs.append((name.lower(), *params))
    return [specs[d * per : (d + 1) * per] for d in range(D)]


def _read(path_or_model: Union[_Path, ModelProto]) -> ModelProto:
    _onnx()  # the ImportError that says what to install
    import onnx

    return path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))


def load(path_or_model: Union[_Path, ModelProto], *, dtype: Optional[DTypeLike] = None,
         backend: str = "auto") -> List[_Layer]:  # fmt: skip
    """rnnkit layers with the weights of an ONNX model's RNN, LSTM and GRU nodes.

    Nodes fed one from the other (a node's input computed from the previous one's ``Y`` only
    through Transpose, Reshape, Squeeze or Identity, as `export` writes them) with the same cell,
    size and directions become one multi-layer layer; any other node is one layer. The layers
    are in inference mode.

    Parameters
    ----------
    path_or_model : str, os.PathLike or onnx.ModelProto
        The model, or the path of its file.
    dtype : {None, numpy.float32, numpy.float64}, optional
        The layers' dtype; None: the dtype of the model's weights.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The backend the layers run on.

    Returns
    -------
    list of rnnkit.RNN, rnnkit.LSTM or rnnkit.GRU
        The layers, in graph order.

    Raises
    ------
    ValueError
        The model has no RNN, LSTM or GRU node, or a node's weights do not fit its attributes.
    NotImplementedError
        A node runs in the reverse direction only (`Backend` runs such nodes).

    Examples
    --------
    >>> import os, tempfile
    >>> import rnnkit, rnnkit.onnx
    >>> path = os.path.join(tempfile.mkdtemp(), "gru.onnx")
    >>> _ = rnnkit.onnx.export(rnnkit.GRU(3, 4, bidirectional=True, seed=0), path)
    >>> [gru] = rnnkit.onnx.load(path)
    >>> type(gru).__name__, gru.num_directions
    ('GRU', 2)
    """
    from onnx import numpy_helper

    model = _read(path_or_model)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:  # Constant nodes count as initializers
        if n.op_type == "Constant":
            from onnx import helper

            inits[n.output[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
    rec = [_Node(n, inits.get) for n in g.node if n.op_type in ("RNN", "LSTM", "GRU")]
    if not rec:
        raise ValueError("the model has no RNN, LSTM or GRU node")

    def fed_by(node: _Node, prev: _Node) -> bool:
        name = node.inputs[0]
        while name in producer and producer[name] is not prev.node:
            p = producer[name]
            if p.op_type not in ("Transpose", "Reshape", "Squeeze", "Identity"):
                return False
            name = p.input[0]
        return name in producer

    groups = [[rec[0]]]
    for nd in rec[1:]:
        last = groups[-1][-1]
        same = (nd.cell, nd.H, nd.D, nd.reverses, nd.weights[0][2] is None, nd.layout, nd.options) == (
            last.cell, last.H, last.D, last.reverses, last.weights[0][2] is None, last.layout, last.options)  # fmt: skip
        if same and nd.I == last.H * last.D and not nd.reverses[0] and fed_by(nd, last):
            groups[-1].append(nd)
        else:
            groups.append([nd])
    out = []
    for grp in groups:
        first = grp[0]
        if first.reverses == [True]:
            raise NotImplementedError(f"{first.op} node {first.node.name!r}: a reverse-only node has no rnnkit layer "
                                      "(rnnkit.onnx.Backend runs it)")  # fmt: skip
        dt = np.dtype(dtype) if dtype is not None else first.weights[0][0].dtype
        classes: Dict[str, Type[_Layer]] = {"lstm": layers.LSTM, "lstm_peephole": layers.LSTM, "gru": layers.GRU,
                                            "gru_reset_before": layers.GRU}
        cls = classes.get(first.cell, layers.RNN)
        kw: Dict[str, Any] = {} if cls is not layers.RNN else {"nonlinearity": first.cell[4:]}
        if first.cell == "gru_reset_before":
            kw["linear_before_reset"] = False
        if first.cell == "lstm_peephole":
            kw["peepholes"] = True
        # ONNX's options: one activation list for both directions, or the forward one's then the reverse one's
        acts = [o["activations"] for o in first.options]
        if any(a is not None for a in acts):
            full = [a if a is not None else list(_DEFAULT_ACTS[first.op]) for a in acts]
            kw["activations"] = full[0] if all(a == full[0] for a in full) else [s for a in full for s in a]
        kw["clip"], kw["input_forget"] = first.options[0]["clip"], first.options[0]["input_forget"]
        if cls is not layers.LSTM:
            del kw["input_forget"]
        layer = cls(first.I, first.H, num_layers=len(grp), bias=first.weights[0][2] is not None,
                    bidirectional=first.D == 2, batch_first=first.layout == 1, dtype=dt, backend=backend, **kw)  # fmt: skip
        sd = {}
        for li, nd in enumerate(grp):
            for sfx, w in zip(layer._suffixes(li), nd.weights):
                for name, a in zip(layer._names(sfx), w):
                    if a is not None:
                        sd[name] = a.astype(dt)
        layer.load_state_dict(sd)
        layer.eval()
        out.append(layer)
    return out


# ---- the onnx.backend API ----


class BackendRep:
    """A prepared ONNX graph of RNN, LSTM, GRU and Identity nodes, as ``Backend.prepare`` returns it.

    Parameters
    ----------
    model : onnx.ModelProto
        The model.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The rnnkit backend that runs the nodes.

    Raises
    ------
    NotImplementedError
        The graph has a node of another type.
    """

    def __init__(self, model: ModelProto, backend: str = "auto") -> None:
        from onnx import numpy_helper

        g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        known = set(self.inits)
        self.inputs = [i.name for i in g.input if i.name not in known]
        self.outputs = [o.name for o in g.output]
        self.nodes = list(g.node)
        self.backend = backend
        for n in self.nodes:
            if n.op_type not in ("RNN", "LSTM", "GRU", "Identity"):
                raise NotImplementedError(f"rnnkit.onnx runs RNN, LSTM and GRU nodes only; node {n.name!r} is {n.op_type}")

    def run(self, inputs: Any, **kwargs: Any) -> Tuple[Any, ...]:
        """Run the graph.

        Parameters
        ----------
        inputs : ndarray, sequence of ndarray or dict of str to ndarray
            The graph's inputs that are not initializers: in order, or by name.
        **kwargs
            Accepted for the ``onnx.backend`` interface, and ignored.

        Returns
        -------
        tuple of ndarray
            The graph's outputs, in order.
        """
        vals = dict(self.inits)
        if isinstance(inputs, dict):
            vals.update(inputs)
        else:
            vals.update(zip(self.inputs, inputs if isinstance(inputs, (list, tuple)) else [inputs]))
        for n in self.nodes:
            if n.op_type == "Identity":
                vals[n.output[0]] = vals[n.input[0]]
                continue
            nd = _Node(n, lambda name: vals.get(name) if name else None)
            ins = nd.inputs
            x = np.asarray(vals[ins[0]])
            lens = vals.get(ins[4]) if ins[4] else None
            h0 = vals.get(ins[5]) if ins[5] else None
            c0 = vals.get(ins[6]) if len(ins) > 6 and ins[6] else None
            outs = nd.run(x, None if lens is None else np.asarray(lens).astype(np.int64), h0, c0, self.backend)
            for name, v in zip(n.output, outs):
                if name:
                    vals[name] = v
        return tuple(vals[o] for o in self.outputs)


def _make_backend() -> type:
    from onnx.backend.base import Backend as _Base

    class Backend(_Base):
        """rnnkit as an ``onnx.backend``: graphs of RNN, LSTM and GRU nodes run on rnnkit's kernels.

        Only the device "CPU" is supported. Pass ``backend=`` (an rnnkit backend name) to
        `prepare` or `run_model` to choose the kernels.
        """

        @classmethod
        def prepare(cls, model: ModelProto, device: str = "CPU", **kwargs: Any) -> BackendRep:  # type: ignore[override]  # rnnkit's own BackendRep, not a subclass of onnx's
            """Check the model and prepare it to run.

            Parameters
            ----------
            model : onnx.ModelProto
                A graph of RNN, LSTM, GRU and Identity nodes.
            device : str, default "CPU"
                The device; only "CPU".
            **kwargs
                ``backend``: the rnnkit backend, default "auto".

            Returns
            -------
            BackendRep
                The prepared graph; ``rep.run(inputs)`` runs it.
            """
            super().prepare(model, device, **kwargs)
            return BackendRep(model, kwargs.get("backend", "auto"))

        @classmethod
        def run_model(cls, model: ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> Tuple[Any, ...]:
            """Prepare the model and run it once: ``prepare(model, device, **kwargs).run(inputs)``.

            Returns
            -------
            tuple of ndarray
                The graph's outputs, in order.
            """
            return cls.prepare(model, device, **kwargs).run(inputs)

        @classmethod
        def supports_device(cls, device: str) -> bool:
            """Whether rnnkit runs on ``device``: True for "CPU" only."""
            return device == "CPU"

    return Backend


def __getattr__(name: str) -> Any:  # Backend subclasses onnx's, so onnx is imported on first use only
    if name == "Backend":
        b = _make_backend()
        globals()["Backend"] = b
        return b
    raise AttributeError(name)
