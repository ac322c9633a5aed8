"""rnnkit: fast recurrent cells (RNN, LSTM, GRU), forward and backpropagation through time.

    import rnnkit
    y, h_n, ctx = rnnkit.functional.forward("gru", x, (W_ih, W_hh, b_ih, b_hh))
    dx, dh0, dweights = rnnkit.functional.backward(ctx, dy)
"""

from . import functional, training
from ._backends import available_backends
from ._threads import get_num_threads, set_num_threads
from ._version import __version__
from .layers import GRU, LSTM, RNN, Embedding, GRUCell, Linear, LSTMCell, RNNCell

__all__ = [
    "GRU", "LSTM", "RNN", "Embedding", "GRUCell", "LSTMCell", "Linear", "RNNCell", "__version__",
    "available_backends", "functional", "get_num_threads", "set_num_threads", "training",
]  # fmt: skip
