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
Check: tests/test_torch_ops.py::test_onnx_export_runs_in_onnxruntime.
"""

from __future__ import annotations

import torch

# torch's gate blocks in ONNX's order, per cell
_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


def _layer_forward(cell, backend, x, params, h0, c0, lengths, reverses, bias, training):
    from onnxscript import opset18 as op

    if training:
        raise ValueError("ONNX export covers inference only: export the model under torch.no_grad() "
                         "or with parameters that do not require grad")  # fmt: skip
    order = _ORDER[cell]
    G, D, H = len(order), len(reverses), int(params[1].shape[1])
    k = 4 if bias else 2

    def gates(w):  # torch's [G*H, ...] blocks reordered to ONNX's
        if G == 1:
            return w
        parts = op.Split(w, axis=0, num_outputs=G)
        return op.Concat(*[parts[j] for j in order], axis=0)

    def stack(ts):
        return op.Concat(*[op.Unsqueeze(t, [0]) for t in ts], axis=0)

    W = stack([gates(params[k * d]) for d in range(D)])
    R = stack([gates(params[k * d + 1]) for d in range(D)])
    B = None
    if bias:
        B = stack([op.Concat(gates(params[k * d + 2]), gates(params[k * d + 3]), axis=0) for d in range(D)])
    seq = None if lengths is None else op.Cast(lengths, to=6)  # INT32
    direction = "bidirectional" if D == 2 else ("reverse" if reverses[0] else "forward")
    attrs = dict(hidden_size=H, direction=direction)
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
    y = op.Reshape(op.Transpose(Y, perm=[0, 2, 1, 3]), [0, 0, -1])  # [T, D, B, H] -> [T, B, D*H]
    h_n = [op.Squeeze(op.Slice(Y_h, [d], [d + 1], [0]), [0]) for d in range(D)]
    c_n = [op.Squeeze(op.Slice(Y_c, [d], [d + 1], [0]), [0]) for d in range(D)] if cell == "lstm" else []
    # The op's list outputs are ONNX sequences to the exporter (its getitem is SequenceAt, which
    # its optimiser folds away with these SequenceConstructs); no cache in inference.
    dt = 1 if params[0].dtype == torch.float32 else 11
    return y, op.SequenceConstruct(*h_n), op.SequenceConstruct(*c_n) if c_n else op.SequenceEmpty(dtype=dt), op.SequenceEmpty(dtype=dt)


def onnx_translations() -> dict:
    """The custom_translation_table for torch.onnx.export(..., dynamo=True): rnnkit's operators
    as standard ONNX nodes."""
    return {torch.ops.rnnkit.layer_forward.default: _layer_forward}


def export_onnx(model, args, path, **kwargs):
    """torch.onnx.export(model, args, path, dynamo=True) with rnnkit's translations (needs the
    onnxscript package); model is exported for inference (under torch.no_grad). Returns the
    ONNXProgram. kwargs go to torch.onnx.export (dynamic_shapes, input_names, ...)."""
    table = {**onnx_translations(), **kwargs.pop("custom_translation_table", {})}
    with torch.no_grad():
        return torch.onnx.export(model, args, path, dynamo=True, custom_translation_table=table, **kwargs)
