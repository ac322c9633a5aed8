"""The NumPy reference (backend "numpy"): the ground truth every other backend is tested against.

Each cell is a `<cell>_forward(p) -> (y, h_n, c_n, cache)` and `<cell>_backward(p, cache, dy, dh_n,
dc_n) -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh)` pair over a validated Problem; c_n, dc0 are
None for cells other than LSTM; cache is None when p.training is False.
"""

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_relu_backward, rnn_relu_forward, rnn_tanh_backward, rnn_tanh_forward



def entering_cell_state(p, cache):
    """LSTM: c entering each step, [T, B, H] (valid steps; others undefined)."""
    return cache.c_prev


__all__ = [
    "entering_cell_state",
    "gru_backward", "gru_forward", "lstm_backward", "lstm_forward",
    "rnn_relu_backward", "rnn_relu_forward", "rnn_tanh_backward", "rnn_tanh_forward",
]  # fmt: skip
