"""rnnkit: fast recurrent cells (RNN, LSTM, GRU), forward and backpropagation through time.

The functional core, `rnnkit.functional`, runs one layer in one direction on NumPy arrays::

    import rnnkit
    y, h_n, ctx = rnnkit.functional.forward("gru", x, (W_ih, W_hh, b_ih, b_hh))
    dx, dh0, dweights = rnnkit.functional.backward(ctx, dy)

On top of it, torch.nn-style layers (`RNN`, `LSTM`, `GRU`), cells (`RNNCell`, `LSTMCell`,
`GRUCell`), `Linear` and `Embedding`, optimizers in `rnnkit.training`, and ONNX interchange in
``rnnkit.onnx``. The kernels come from one of several backends (see `available_backends`) and
run on `get_num_threads` threads.
"""

from . import functional, training
from ._backends import available_backends, precompile
from ._threads import get_num_threads, set_num_threads
from ._version import __version__
from .layers import GRU, LSTM, RNN, Embedding, GRUCell, Linear, LSTMCell, RNNCell

__all__ = [
    "GRU", "LSTM", "RNN", "Embedding", "GRUCell", "LSTMCell", "Linear", "RNNCell", "__version__",
    "available_backends", "functional", "get_num_threads", "precompile", "set_num_threads", "training",
]  # fmt: skip
