"""The NumPy reference (backend "numpy"): the ground truth every other backend is tested against.

Each cell is a `<cell>_forward(p) -> (y, h_n, c_n, cache)` and `<cell>_backward(p, cache, dy, dh_n,
dc_n) -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh)` pair over a validated Problem; c_n, dc0 are
None for cells other than LSTM; cache is None when p.training is False.
"""

from .._validate import LSTM_CELLS
from .gru import GRUCache, gru_backward, gru_forward, gru_reset_before_backward, gru_reset_before_forward
from .lstm import LSTMCache, lstm_backward, lstm_forward, lstm_peephole_backward, lstm_peephole_forward
from .rnn import RNNCache, rnn_relu_backward, rnn_relu_forward, rnn_tanh_backward, rnn_tanh_forward

ONNX_OPTIONS = True  # every cell with ONNX's activations, clip and input_forget (see _common.gate)



def cache_layout(cell, T, B, I, H, N, dense, S=None):  # noqa: E741
    """The shape of each array of the cell's cache, in field order, for a training call of these
    sizes (see rnnkit._cpp.cache_layout; S: the LSTM's projection size, None without one)."""
    if cell in LSTM_CELLS:
        return {"h_prev": (T, B, S or H), "c_prev": (T, B, H), "a": (T, B, 4 * H), "c": (T, B, H)}
    if cell in ("gru", "gru_reset_before"):
        return {"h_prev": (T, B, H), "a": (T, B, 3 * H), "hn": (T, B, H)}
    return {"h_prev": (T, B, H), "a": (T, B, H)}


def cache_restore(p, arrays):
    """The cell's cache of a training forward of p from its arrays (see cache_layout)."""
    kind = {"lstm": LSTMCache, "lstm_peephole": LSTMCache, "gru": GRUCache, "gru_reset_before": GRUCache}.get(p.cell, RNNCache)
    return kind(*arrays)


def entering_cell_state(p, cache):
    """LSTM: c entering each step, [T, B, H] (valid steps; others undefined)."""
    return cache.c_prev


__all__ = [
    "cache_layout", "cache_restore", "entering_cell_state",
    "gru_backward", "gru_forward", "gru_reset_before_backward", "gru_reset_before_forward",
    "lstm_backward", "lstm_forward", "lstm_peephole_backward", "lstm_peephole_forward",
    "rnn_relu_backward", "rnn_relu_forward", "rnn_tanh_backward", "rnn_tanh_forward",
]  # fmt: skip
