"""ONNX export of models holding rnnkit.torch's modules: rnnkit::layer_forward written as the
standard ONNX RNN / LSTM / GRU node (opset 18), so that any ONNX runtime runs the file.

    torch.onnx.export(model, args, "model.onnx", dynamo=True,
                      custom_translation_table=rnnkit.torch.onnx_translations())
    rnnkit.torch.export_onnx(model, args, "model.onnx")   # the same, in one call

Conversions (ONNX operator spec, LSTM/GRU/RNN): torch's gate order i,f,g,o becomes ONNX's i,o,f,c
(GRU r,z,n becomes z,r,h, with linear_before_reset=1, which is torch's GRU); the directions of a
layer are stacked on a leading axis (W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H] = [Wb, Rb]); Y
[T, D, B, H] is laid out as rnnkit's [T, B, D*H]; lengths become sequence_lens (int32). Only
inference is exported (a training-mode forward keeps a cache ONNX has no place for).
"""

# Check: tests/test_torch_ops.py::test_onnx_export_runs_in_onnxruntime.

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

import torch

# torch's gate blocks in ONNX's order, per cell
_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


_NO_PROJECTIONS = ("an LSTM with projections (proj_size > 0) has no ONNX form: ONNX's LSTM operator has no "
                   "projection weight")

# The values below are the exporter's symbolic ONNX values (onnxscript traces this function),
# not torch tensors: they are typed Any.
def _layer_forward(cell: str, backend: str, x: Any, params: Sequence[Any], h0: Sequence[Any], c0: Sequence[Any],
                   lengths: Any, reverses: Sequence[bool], bias: bool, training: bool) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    from onnxscript import opset18 as op

    if training:
        raise ValueError("ONNX export covers inference only: export the model under torch.no_grad() "
                         "or with parameters that do not require grad")  # fmt: skip
    order = _ORDER[cell]
    G, D, H = len(order), len(reverses), int(params[1].shape[1])
    k = 4 if bias else 2
    if len(params) > k * D:
        raise NotImplementedError(_NO_PROJECTIONS)

    def gates(w: Any) -> Any:  # torch's [G*H, ...] blocks reordered to ONNX's
        if G == 1:
            return w
        parts = op.Split(w, axis=0, num_outputs=G)
        return op.Concat(*[parts[j] for j in order], axis=0)

    # onnxscript turns the Python int lists given as axes/shapes/starts below into INT64 constants
    # when it traces; its stubs accept only tensors there (hence the ignores).
    def stack(ts: Sequence[Any]) -> Any:
        return op.Concat(*[op.Unsqueeze(t, [0]) for t in ts], axis=0)  # type: ignore[arg-type]

    W = stack([gates(params[k * d]) for d in range(D)])
    R = stack([gates(params[k * d + 1]) for d in range(D)])
    B = None
    if bias:
        B = stack([op.Concat(gates(params[k * d + 2]), gates(params[k * d + 3]), axis=0) for d in range(D)])
    # Cast's output type is set by `to` when the graph is built, which its stubs cannot express.
    seq: Any = None if lengths is None else op.Cast(lengths, to=6)  # INT32
    direction = "bidirectional" if D == 2 else ("reverse" if reverses[0] else "forward")
    attrs: dict[str, Any] = dict(hidden_size=H, direction=direction)
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    if cell == "rnn_relu":
        attrs["activations"] = ["Relu"] * D
    init_h = stack(h0) if h0 else None  # none given: ONNX's default, zeros
    if cell == "lstm":
        Y, Y_h, Y_c = op.LSTM(x, W, R, B, seq, init_h, stack(c0) if c0 else None, **attrs)
    else:
        Y, Y_h = getattr(op, _ONNX_OP[cell])(x, W, R, B, seq, init_h, **attrs)
        Y_c = None
    y = op.Reshape(op.Transpose(Y, perm=[0, 2, 1, 3]), [0, 0, -1])  # type: ignore[arg-type]  # [T, D, B, H] -> [T, B, D*H]
    h_n = [op.Squeeze(op.Slice(Y_h, [d], [d + 1], [0]), [0]) for d in range(D)]  # type: ignore[type-var, arg-type]
    c_n = [op.Squeeze(op.Slice(Y_c, [d], [d + 1], [0]), [0]) for d in range(D)] if cell == "lstm" else []  # type: ignore[type-var, arg-type]
    # The op's list outputs are ONNX sequences to the exporter (its getitem is SequenceAt, which
    # its optimiser folds away with these SequenceConstructs); no cache in inference.
    dt = 1 if params[0].dtype == torch.float32 else 11
    return y, op.SequenceConstruct(*h_n), op.SequenceConstruct(*c_n) if c_n else op.SequenceEmpty(dtype=dt), op.SequenceEmpty(dtype=dt)


def onnx_translations() -> dict[Callable[..., Any], Callable[..., Any]]:
    """The translation table that exports rnnkit's operators as standard ONNX nodes.

    Pass it as ``custom_translation_table`` to ``torch.onnx.export(..., dynamo=True)``: each
    layer of an `RNN`, `LSTM` or `GRU` (the registered operator ``torch.ops.rnnkit.layer_forward``)
    becomes one ONNX ``RNN``, ``LSTM`` or ``GRU`` node (opset 18), which any ONNX runtime runs.

    Returns
    -------
    dict
        ``{torch.ops.rnnkit.layer_forward.default: translation}``, the translation being an
        onnxscript function.

    See Also
    --------
    export_onnx : the export in one call.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import LSTM, onnx_translations
    >>> model = LSTM(8, 16).eval()
    >>> with torch.no_grad():  # doctest: +SKIP
    ...     torch.onnx.export(model, (torch.randn(5, 2, 8),), "lstm.onnx", dynamo=True,
    ...                       custom_translation_table=onnx_translations())
    """
    return {torch.ops.rnnkit.layer_forward.default: _layer_forward}


def export_onnx(model: torch.nn.Module, args: tuple[Any, ...], path: Union[str, os.PathLike[str], None],
                **kwargs: Any) -> Optional[torch.onnx.ONNXProgram]:  # fmt: skip
    """Export a model holding rnnkit.torch's modules to ONNX, for inference.

    ``torch.onnx.export(model, args, path, dynamo=True)`` with the translations of
    `onnx_translations` added, run under ``torch.no_grad()`` (a training-mode forward keeps a
    cache that ONNX has no place for). Needs the ``onnxscript`` package.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its `RNN`, `LSTM` and `GRU` layers become standard ONNX nodes.
    args : tuple
        Example inputs of ``model``'s forward, as for ``torch.onnx.export``.
    path : str or os.PathLike or None
        The ``.onnx`` file to write (None: write nothing, return the program).
    **kwargs
        Further arguments of ``torch.onnx.export`` (``dynamic_shapes``, ``input_names``, ...);
        a ``custom_translation_table`` given here is merged with rnnkit's.

    Returns
    -------
    torch.onnx.ONNXProgram or None
        What ``torch.onnx.export`` returns.

    Raises
    ------
    NotImplementedError
        The model holds an LSTM with projections (``proj_size > 0``): ONNX's LSTM has none.

    Examples
    --------
    >>> import torch
    >>> from rnnkit.torch import GRU, export_onnx
    >>> model = GRU(8, 16, batch_first=True).eval()
    >>> program = export_onnx(model, (torch.randn(2, 5, 8),), "gru.onnx")  # doctest: +SKIP
    """
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.RNNBase) and m.proj_size > 0:
            raise NotImplementedError(f"{name or 'model'}: {_NO_PROJECTIONS}")
    table = {**onnx_translations(), **kwargs.pop("custom_translation_table", {})}
    with torch.no_grad():
        return torch.onnx.export(model, args, path, dynamo=True, custom_translation_table=table, **kwargs)
