"""torch.nn-style recurrent layers and cells on NumPy, built only on `rnnkit.functional`.

::

    lstm = rnnkit.LSTM(input_size, hidden_size, num_layers=2, bidirectional=True, seed=0)
    y, (h_n, c_n) = lstm(x, lengths=lengths)          # shapes exactly torch.nn.LSTM's
    dx, (dh0, dc0) = lstm.backward(dy)                 # parameter gradients accumulate in lstm.grads

Parameters carry torch's names (``weight_ih_l0``, ..., ``bias_hh_l1_reverse``), so a torch
``state_dict`` loads unchanged and ours loads into torch.
"""

# Tested by tests/test_layers.py (against torch.nn).

from __future__ import annotations

import copy

from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, TypeVar, Union, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import functional as F
from ._buffers import InnerOutputs, stack_states as _stack
from ._validate import LSTM_CELLS, flag, layer_forms, positive_int, proj_size_of

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "Embedding"]

Array = NDArray[Any]
#: A state as the layers return it: h, or (h, c) for the LSTM.
State = Union[Array, Tuple[Array, Array]]
#: One (layer, direction)'s initial state (or its gradient) as the functional core takes it.
_PartState = Union[None, Array, Tuple[Optional[Array], Optional[Array]]]
_Seed = Union[None, int, np.random.Generator]
_M = TypeVar("_M", bound="_Module")


def _as_array(name: str, value: Any, dtype: np.dtype[Any]) -> Array:
    """A parameter value from NumPy or torch (a state_dict), as a C-contiguous array of dtype."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"load_state_dict: {name} must be an array of numbers, got {type(value).__name__} of dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _float_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _expect_grad(name: str, dy: ArrayLike, shape: Sequence[int], dtype: np.dtype[Any]) -> Array:
    """The incoming gradient of a layer's output: an array of exactly the output's shape."""
    dy = np.asarray(dy)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of the last forward's output {tuple(shape)}, got {dy.shape}")
    return dy.astype(dtype, copy=False)


def _consumed(what: str) -> RuntimeError:
    return RuntimeError(
        f"backward was already called for the last forward of this {what}: its gradients are in "
        f".grads. Run forward again, or pass retain_graph=True to the first backward to call it twice"
    )


def _rng(seed: _Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class _Module:
    """Parameters under torch's names, their gradients, train/eval, state_dict round trips."""

    params: Dict[str, Array]
    grads: Dict[str, Array]
    dtype: np.dtype[Any]
    training: bool
    _packs: Dict[Any, Any]  # a packed copy's PackedWeights by key (packed); absent elsewhere

    def _init_params(self, shapes: Mapping[str, Tuple[int, ...]], hidden_size: int, rng: np.random.Generator) -> None:
        k = 1.0 / np.sqrt(hidden_size)  # torch.nn's default: U(-1/sqrt(H), 1/sqrt(H))
        self.params = {n: rng.uniform(-k, k, s).astype(self.dtype) for n, s in shapes.items()}
        self.grads = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.training = True

    def parameters(self) -> List[Tuple[str, Array]]:
        """The parameters, in torch's order.

        Returns
        -------
        list of (str, ndarray)
            ``(name, array)`` pairs; the arrays are the live parameters (changing them in place
            changes the module).
        """
        return list(self.params.items())

    def state_dict(self) -> Dict[str, Array]:
        """A copy of every parameter under torch's name.

        Returns
        -------
        dict of str to ndarray
            The parameters, copied. torch's ``load_state_dict`` accepts it after
            ``torch.from_numpy`` on each value.
        """
        return {n: v.copy() for n, v in self.params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load parameters by name, for example a ``torch.nn`` module's ``state_dict``.

        Parameters
        ----------
        state_dict : mapping of str to array
            One NumPy array (or torch tensor) of the parameter's shape per parameter name; the
            values are copied and converted to the module's dtype.

        Raises
        ------
        ValueError
            A name is missing or unexpected, or an array has the wrong shape (nothing is loaded
            then).
        TypeError
            A value is not an array of numbers.
        """
        missing = [n for n in self.params if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self.params]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        new = {}
        for n, v in state_dict.items():
            a = _as_array(n, v, self.dtype)
            if a.shape != self.params[n].shape:
                raise ValueError(f"load_state_dict: {n} must have shape {self.params[n].shape}, got {a.shape}")
            new[n] = a
        for n, a in new.items():
            self.params[n][...] = a

    def zero_grad(self) -> None:
        """Set every gradient in ``grads`` to zero (``backward`` adds to them)."""
        for g in self.grads.values():
            g[...] = 0

    def train(self: _M, mode: bool = True) -> _M:
        """Switch training mode on (or off with ``mode=False``), like ``torch.nn.Module.train``.

        In training mode a forward call keeps what ``backward`` needs (and applies dropout).

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for inference.

        Returns
        -------
        self
        """
        if mode and getattr(self, "_packs", None) is not None:
            raise ValueError("train: this module is a packed inference copy (packed()); train the module it was "
                             "made from, then pack it again")  # fmt: skip
        self.training = bool(mode)
        return self

    def eval(self: _M) -> _M:
        """Switch to inference mode: the same as ``train(False)``.

        Returns
        -------
        self
        """
        return self.train(False)

    def packed(self: _M) -> _M:
        """An inference copy of this module whose recurrent weights are packed once.

        Every call of the C++ backend otherwise packs the weights into the panels its products
        read (see `rnnkit.functional.pack`), a part of every small call of several steps; a
        single step with a batch of at most 4 (a decoder's or a sampler's) reads the weights as
        they are either way, so there the copy saves only the checks of the plain weights. The copy is in eval mode, its
        parameters are read-only copies (this module's later changes do not reach it: pack again
        after training), and ``train(True)`` on it raises. Results are bitwise those of this module
        in eval mode, on every backend.

        Returns
        -------
        module
            A module of the same class and settings.

        Examples
        --------
        >>> import numpy as np, rnnkit
        >>> cell = rnnkit.LSTMCell(8, 16)
        >>> fast = cell.packed()
        >>> h, c = fast(np.zeros((1, 8), np.float32))
        >>> fast.training, fast.params["weight_hh"].flags.writeable
        (False, False)
        """
        clone = copy.copy(self)
        clone.params = {}
        for n, v in self.params.items():
            v = v.copy()
            v.flags.writeable = False
            clone.params[n] = v
        clone.grads = {n: np.zeros_like(v) for n, v in self.params.items()}
        clone.training = False
        clone._packs = {}
        clone._reset_packed_state()
        return clone

    def _reset_packed_state(self) -> None:
        """What a packed copy (packed) must not share with its original: its tape and buffers."""
        for name, value in list(vars(self).items()):
            if name == "_tape":
                setattr(self, name, [] if isinstance(value, list) else None)
            elif name == "_consumed":
                setattr(self, name, False)
            elif isinstance(value, InnerOutputs):
                setattr(self, name, InnerOutputs())

    def _packed_weights(self, key: Any, cell: str, weights: Tuple[Optional[Array], ...]) -> Any:
        """weights as PackedWeights in a packed copy (made once per key), else as they are."""
        packs = getattr(self, "_packs", None)
        if packs is None:
            return weights
        if key not in packs:  # this copy's parameters are read-only copies already (packed)
            packs[key] = F._packed(cell, weights)
        return packs[key]

    def _accumulate(self, names: Sequence[str], dweights: Sequence[Optional[Array]]) -> None:
        for n, d in zip(names, dweights):
            if d is not None:
                self.grads[n] += d


_Tape = Tuple[List[Tuple[List[Optional[F.Context]], Optional[Array], Tuple[int, ...]]], Tuple[int, ...]]


class _RecurrentLayer(_Module):
    _gates = 1
    _cell: str
    proj_size = 0  # the LSTM's projections (h has proj_size units when > 0)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 dtype: DTypeLike = np.float32, backend: str = "auto", seed: _Seed = None,
                 activations: Optional[Sequence[Any]] = None, clip: Optional[float] = None,
                 input_forget: bool = False) -> None:  # fmt: skip
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        # ONNX's options, per direction: (cell, the keyword arguments of its forward calls)
        self._forms = layer_forms(self._cell, activations, clip, input_forget, self.num_directions)
        self.activations = None if activations is None else list(activations)
        self.clip = self._forms[0][1]["clip"]
        self.input_forget = self._forms[0][1]["input_forget"]
        if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.dtype = _float_dtype(dtype)
        self.backend = backend
        self._rng = _rng(seed)
        G, H, D, S = self._gates, self.hidden_size, self.num_directions, self._out_size
        shapes: Dict[str, Tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else S * D
            for sfx in self._suffixes(layer):
                shapes[f"weight_ih{sfx}"] = (G * H, in_size)
                shapes[f"weight_hh{sfx}"] = (G * H, S)
                if self.bias:
                    shapes[f"bias_ih{sfx}"] = (G * H,)
                    shapes[f"bias_hh{sfx}"] = (G * H,)
                if self._cell == "lstm_peephole":
                    shapes[f"weight_peephole{sfx}"] = (3 * H,)  # p_i, p_f, p_o
                if self.proj_size:
                    shapes[f"weight_hr{sfx}"] = (S, H)  # h_t = W_hr (o * tanh(c_t))
        self._init_params(shapes, H, self._rng)
        self._tape: Optional[_Tape] = None
        self._consumed = False
        self._outputs = InnerOutputs()

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional layer, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self) -> int:
        """Units of h and of each direction's y: proj_size, or hidden_size without projections."""
        return self.proj_size or self.hidden_size

    def _suffixes(self, layer: int) -> List[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _names(self, sfx: str) -> List[str]:
        names = [f"weight_ih{sfx}", f"weight_hh{sfx}", f"bias_ih{sfx}", f"bias_hh{sfx}"]
        if self.proj_size:
            return names + [f"weight_hr{sfx}"]
        return names + [f"weight_peephole{sfx}"] if self._cell == "lstm_peephole" else names

    @property
    def _lstm(self) -> bool:
        return self._cell in LSTM_CELLS

    def _weights(self, sfx: str) -> Any:
        packs = getattr(self, "_packs", None)
        if packs is not None and sfx in packs:  # (a packed copy's, made at its first call)
            return packs[sfx]
        names = self._name_lists.get(sfx)
        if names is None:
            names = self._name_lists[sfx] = self._names(sfx)
        return self._packed_weights(sfx, self._forms[0][0], tuple(self.params.get(n) for n in names))

    @property
    def _name_lists(self) -> Dict[str, List[str]]:
        """_names per suffix, made once (each call of a layer needs them for every direction)."""
        lists = self.__dict__.get("_names_by_suffix")
        if lists is None:
            lists = self.__dict__["_names_by_suffix"] = {}
        return lists

    def _split_state(self, state: Any, name: str, B: int) -> List[_PartState]:
        """(h, c) per (layer, direction) from torch-shaped states [L*D, B, H] (None: zeros; h has
        proj_size units with projections)."""
        LD, H, S = self.num_layers * self.num_directions, self.hidden_size, self._out_size
        lstm = self._lstm
        if state is None:
            return [None] * LD
        parts = state if lstm else (state,)
        if lstm and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise TypeError(f"{name} of an LSTM must be a tuple (h, c), got {type(state).__name__}")
        arrays: List[Optional[Array]] = []
        for label, a in zip(("h", "c"), parts):
            if a is None:
                arrays.append(None)
                continue
            a = np.asarray(a)
            w = S if label == "h" else H
            if a.shape != (LD, B, w):
                letter = "proj_size" if w != H else "H"
                raise ValueError(
                    f"{name} ({label}) must have shape (num_layers * num_directions, B, {letter}) = "
                    f"({LD}, {B}, {w}), got {a.shape}"
                )
            arrays.append(a)
        if lstm:
            return [(None if arrays[0] is None else arrays[0][i], None if arrays[1] is None else arrays[1][i]) for i in range(LD)]
        return [None if arrays[0] is None else arrays[0][i] for i in range(LD)]

    @overload
    def forward(self, x: ArrayLike, state: Any = None, lengths: Optional[ArrayLike] = None,
                return_states: Literal[False] = False) -> Tuple[Array, State]: ...  # fmt: skip

    @overload
    def forward(self, x: ArrayLike, state: Any, lengths: Optional[ArrayLike],
                return_states: Literal[True]) -> Tuple[Array, State, State]: ...  # fmt: skip

    @overload
    def forward(self, x: ArrayLike, state: Any = None, lengths: Optional[ArrayLike] = None, *,
                return_states: Literal[True]) -> Tuple[Array, State, State]: ...  # fmt: skip

    @overload
    def forward(self, x: ArrayLike, state: Any = None, lengths: Optional[ArrayLike] = None,
                return_states: bool = False) -> Union[Tuple[Array, State], Tuple[Array, State, State]]: ...  # fmt: skip

    def forward(self, x: ArrayLike, state: Any = None, lengths: Optional[ArrayLike] = None,
                return_states: bool = False) -> Union[Tuple[Array, State], Tuple[Array, State, State]]:  # fmt: skip
        """Run the layer over a batch of sequences (also available as calling the layer).

        ``L`` is ``num_layers``, ``D`` is ``num_directions`` (2 if bidirectional, else 1), ``H`` is
        ``hidden_size``, ``I`` is ``input_size``.

        Parameters
        ----------
        x : ndarray, shape (T, B, I), or (B, T, I) with ``batch_first``
            The input sequences.
        state : ndarray or tuple of ndarray, optional
            The initial state, shaped like ``torch.nn``'s: ``h0`` of shape (L*D, B, H), or
            ``(h0, c0)`` for the LSTM. None, or None for one part of the pair, means zeros.
        lengths : array of int, shape (B,), optional
            The number of valid steps of each sequence of a padded batch; the steps past it
            output zeros and leave the state unchanged. None: every sequence has ``T`` steps.
        return_states : bool, default False
            Also return every step's state (``torch.nn`` has no such option).

        Returns
        -------
        y : ndarray, shape (T, B, D*H), or (B, T, D*H) with ``batch_first``
            The last layer's output at every step, both directions side by side.
        state_n : ndarray or tuple of ndarray
            The final state of every layer and direction: ``h_n`` of shape (L*D, B, H), or
            ``(h_n, c_n)`` for the LSTM.
        states : ndarray or tuple of ndarray
            Only with ``return_states=True``: ``h_all`` of shape (T, L*D, B, H), or
            ``(h_all, c_all)`` for the LSTM, time-major whatever ``batch_first`` says.

        Raises
        ------
        ValueError
            ``x`` is not 3-D, or a state or ``lengths`` does not fit it.
        TypeError
            An argument of the wrong type or dtype.
        """
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D ({'B, T, I' if self.batch_first else 'T, B, I'}), got shape {x.shape}")
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        B = x.shape[1]
        states = self._split_state(state, "state", B)
        with self._outputs.call(not self.training and self.num_layers > 1) as held:  # rnnkit/_buffers.py
            return self._forward_layers(x, B, states, lengths, return_states, held)

    def _forward_layers(self, x: Array, B: int, states: List[_PartState], lengths: Optional[ArrayLike],
                        return_states: bool, held: bool) -> Union[Tuple[Array, State], Tuple[Array, State, State]]:  # fmt: skip
        lstm = self._lstm
        inp = x
        tape: List[Tuple[List[Optional[F.Context]], Optional[Array], Tuple[int, ...]]] = []
        h_n_list: List[Array] = []
        c_n_list: List[Array] = []
        h_all_list: List[Array] = []
        c_all_list: List[Array] = []
        for layer in range(self.num_layers):
            outs: List[Array] = []
            ctxs: List[Optional[F.Context]] = []
            sfxs = self._suffixes(layer)
            i0 = layer * self.num_directions
            y_out = None
            runs: Sequence[Tuple[Any, ...]]
            if return_states:
                runs = [F.forward(self._forms[d][0], inp, self._weights(sfx), states[i0 + d], lengths=lengths,
                                  reverse=d == 1, training=self.training, backend=self.backend,
                                  return_states=True, **self._forms[d][1]) for d, sfx in enumerate(sfxs)]  # fmt: skip
                for *_, st in runs:
                    h_all_list.append(st[0] if lstm else st)
                    if lstm:
                        c_all_list.append(st[1])
            else:  # both directions in one call (they run concurrently), writing into one output
                y_out = self._outputs.get(layer, (inp.shape[0], B, self.num_directions * self._out_size), self.dtype,
                                          held, last=layer == self.num_layers - 1)  # fmt: skip
                runs = F._forward_group([dict(cell=self._forms[d][0], x=inp, weights=self._weights(sfx),
                                              state=states[i0 + d], lengths=lengths, reverse=d == 1,
                                              training=self.training, **self._forms[d][1])
                                         for d, sfx in enumerate(sfxs)], self.backend, y_out=y_out)  # fmt: skip
            for y, sn, ctx, *_ in runs:
                outs.append(y)
                ctxs.append(ctx)
                h_n_list.append(sn[0] if lstm else sn)
                if lstm:
                    c_n_list.append(sn[1])
            if y_out is not None:
                out = y_out
            else:
                out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(out.shape) < keep).astype(out.dtype) / out.dtype.type(keep)
                out = out * mask
            tape.append((ctxs, mask, inp.shape))
            inp = out
        y = inp.transpose(1, 0, 2) if self.batch_first else inp
        self._tape = (tape, y.shape) if self.training else None
        self._consumed = False
        h_n = _stack(h_n_list)
        state_n: State = (h_n, _stack(c_n_list)) if lstm else h_n
        if not return_states:
            return y, state_n
        h_all = np.stack(h_all_list, axis=1)
        return y, state_n, ((h_all, np.stack(c_all_list, axis=1)) if lstm else h_all)

    __call__ = forward

    @overload
    def backward(self, dy: Optional[ArrayLike], dstate_n: Any = None, *, retain_graph: bool = False,
                 input_grad: Literal[True] = True) -> Tuple[Array, State]: ...
    @overload
    def backward(self, dy: Optional[ArrayLike], dstate_n: Any = None, *, retain_graph: bool = False,
                 input_grad: bool = True) -> Tuple[Optional[Array], State]: ...

    def backward(self, dy: Optional[ArrayLike], dstate_n: Any = None, *, retain_graph: bool = False,
                 input_grad: bool = True) -> Tuple[Optional[Array], State]:
        """Backpropagation through the last training-mode call.

        The parameter gradients are added to ``grads``. Like torch's, a second backward of the
        same forward call raises (it would add the gradients twice) unless the first one passed
        ``retain_graph=True``.

        Parameters
        ----------
        dy : ndarray, shape of that call's ``y``, or None
            The gradient of the loss with respect to ``y``: (T, B, D*H), or (B, T, D*H) with
            ``batch_first``. None means zeros: a many-to-one model whose loss reads only the
            final state passes ``backward(None, dh_n)``.
        dstate_n : ndarray or tuple of ndarray, optional
            The gradient with respect to the final state: ``dh_n`` of shape (L*D, B, H), or
            ``(dh_n, dc_n)`` for the LSTM. None, or None for one part of the pair, means zeros.
        retain_graph : bool, default False
            Keep what the forward call recorded, so that backward may run on it again.
        input_grad : bool, default True
            False: the gradient with respect to ``x`` is not wanted (the layer reads data, not
            another layer's output) and ``dx`` comes back None; the first layer's ``dgates @
            W_ih`` is then skipped (functional.backward's ``input_grad``).

        Returns
        -------
        dx : ndarray or None
            The gradient with respect to ``x``, shaped like ``x``; None with ``input_grad=False``.
        dstate0 : ndarray or tuple of ndarray
            The gradient with respect to the initial state: ``dh0`` of shape (L*D, B, H), or
            ``(dh0, dc0)`` for the LSTM.

        Raises
        ------
        RuntimeError
            No training-mode forward call came before, or its backward already ran.
        ValueError
            ``dy`` or ``dstate_n`` has the wrong shape.
        """
        if self._tape is None:
            raise RuntimeError("backward needs a forward call in training mode first (layer.train())")
        if self._consumed:
            raise _consumed(type(self).__name__)
        tape, y_shape = self._tape
        input_grad = flag("input_grad", input_grad)
        if dy is None and dstate_n is None:
            raise ValueError("backward needs dy or dstate_n (the gradient of the output or of the final state); both are None")
        dy = np.zeros(y_shape, self.dtype) if dy is None else _expect_grad("dy", dy, y_shape, self.dtype)
        self._consumed = not retain_graph
        if self.batch_first:
            dy = dy.transpose(1, 0, 2)
        H, D, lstm, S = self.hidden_size, self.num_directions, self._lstm, self._out_size
        B = dy.shape[1] if dy.ndim == 3 else 0
        dstates = self._split_state(dstate_n, "dstate_n", B)
        LD = self.num_layers * D
        dh0 = np.zeros((LD, B, S), self.dtype)
        dc0 = np.zeros((LD, B, H), self.dtype) if lstm else None
        dout = dy
        for layer in range(self.num_layers - 1, -1, -1):
            ctxs, mask, in_shape = tape[layer]
            if mask is not None:
                dout = dout * mask
            sfxs = self._suffixes(layer)
            need_dx = layer > 0 or input_grad
            outs = F._backward_group([(ctxs[d], dout[..., d * S : (d + 1) * S], dstates[layer * D + d])
                                      for d in range(len(sfxs))], input_grad=need_dx)  # fmt: skip
            dinp: Optional[Array] = F._summed_dx(outs)
            for d, (sfx, (_, ds0, dw)) in enumerate(zip(sfxs, outs)):
                i = layer * D + d
                self._accumulate(self._names(sfx), dw)
                if dc0 is not None:  # lstm
                    dh0[i], dc0[i] = ds0
                else:
                    dh0[i] = ds0
            if dinp is None:  # the first layer, whose dx is not wanted
                break
            dout = dinp
        dx = None if not input_grad else dout.transpose(1, 0, 2) if self.batch_first else dout
        return dx, ((dh0, dc0) if dc0 is not None else dh0)


class RNN(_RecurrentLayer):
    """An Elman RNN, ``torch.nn.RNN``'s arguments and semantics.

    Each step computes ``h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)``, with ``act`` tanh or
    ReLU; the output is ``h_t``. Here ``G = 1`` (one gate block).

    Parameters
    ----------
    input_size : int
        The number of features of each input step, ``I``.
    hidden_size : int
        The number of features of the hidden state, ``H``.
    num_layers : int, default 1
        The number of stacked layers, ``L``; each one after the first reads the output of the
        one before.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation ``act``.
    bias : bool, default True
        Give each layer the biases ``b_ih`` and ``b_hh``.
    batch_first : bool, default False
        The input and output are (B, T, features) instead of (T, B, features).
    dropout : float, default 0.0
        In training mode, drop each output of every layer but the last with this probability
        (scaling the rest by ``1 / (1 - dropout)``); in [0, 1).
    bidirectional : bool, default False
        Run every layer in both directions, ``D = 2``, and concatenate the two outputs.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cells (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (torch.nn's uniform initialisation
        U(-1/sqrt(H), 1/sqrt(H))) and of the dropout masks.
    activations : list, optional
        ONNX's activation choice for each position of the cell (one: the activation f): names among
        Sigmoid, Tanh, Relu, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign,
        Softplus, Affine, or ``(name, alpha[, beta])``; a bidirectional layer takes one list for
        both directions or, as ONNX, the forward direction's followed by the reverse one's. None:
        the cell's own (see `rnnkit.functional.forward`).
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).

    Attributes
    ----------
    params : dict of str to ndarray
        The parameters under torch's names: ``weight_ih_l{k}`` of shape (G*H, I) for the first
        layer and (G*H, D*H) for the others, ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and
        ``bias_hh_l{k}`` (G*H,), with the suffix ``_reverse`` for the reverse direction.
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether forward calls record what ``backward`` needs (see ``train`` and ``eval``).

    Raises
    ------
    ValueError
        A size below 1, a dropout outside [0, 1) or an unknown nonlinearity.
    TypeError
        A size that is not an integer, or a dtype other than float32 and float64.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> rnn = rnnkit.RNN(3, 4, num_layers=2, seed=0)
    >>> y, h_n = rnn(np.zeros((5, 2, 3), np.float32))
    >>> y.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 **kw: Any) -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if kw.get("activations") is not None and nonlinearity != "tanh":
            raise ValueError(f"give nonlinearity or activations, not both (got nonlinearity={nonlinearity!r} and "
                             f"activations={kw['activations']!r})")  # fmt: skip
        self._cell = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kw)


class LSTM(_RecurrentLayer):
    """An LSTM, ``torch.nn.LSTM``'s arguments and semantics.

    Each step computes the gates ``i, f, g, o`` (in this order, ``G = 4``) from
    ``W_ih x_t + b_ih + W_hh h_(t-1) + b_hh``, then ``c_t = f * c_(t-1) + i * g`` and
    ``h_t = o * tanh(c_t)``; the output is ``h_t`` and the state the pair ``(h, c)``. With
    ``proj_size = P > 0`` (torch's LSTM with projections), ``h_t = W_hr (o * tanh(c_t))`` has
    ``P < H`` units: the output, ``h0`` and ``h_n`` are ``P`` wide and ``c`` stays ``H`` wide.

    Parameters
    ----------
    input_size : int
        The number of features of each input step, ``I``.
    hidden_size : int
        The number of features of the hidden state, ``H``.
    num_layers : int, default 1
        The number of stacked layers, ``L``; each one after the first reads the output of the
        one before.
    bias : bool, default True
        Give each layer the biases ``b_ih`` and ``b_hh``.
    batch_first : bool, default False
        The input and output are (B, T, features) instead of (T, B, features).
    dropout : float, default 0.0
        In training mode, drop each output of every layer but the last with this probability
        (scaling the rest by ``1 / (1 - dropout)``); in [0, 1).
    bidirectional : bool, default False
        Run every layer in both directions, ``D = 2``, and concatenate the two outputs.
    proj_size : int, default 0
        With ``0 < proj_size < hidden_size``, project each ``h_t`` to ``proj_size`` units
        through ``weight_hr_l{k}`` of shape (proj_size, H); every backend runs it.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cells (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (torch.nn's uniform initialisation
        U(-1/sqrt(H), 1/sqrt(H))) and of the dropout masks.
    activations : list, optional
        ONNX's activation choice for each position of the cell (three: f for i, f and o; g for the cell input; h for the output): names among
        Sigmoid, Tanh, Relu, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign,
        Softplus, Affine, or ``(name, alpha[, beta])``; a bidirectional layer takes one list for
        both directions or, as ONNX, the forward direction's followed by the reverse one's. None:
        the cell's own (see `rnnkit.functional.forward`).
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).
    input_forget : bool, default False
        Couple the forget gate to the input gate, ``f = 1 - i`` (ONNX's ``input_forget``).
    peepholes : bool, default False
        The input and forget gates also see ``c_(t-1)`` and the output gate ``c_t``, through the
        diagonal weights ``weight_peephole_l{k}`` of shape (3*H,), ordered ``p_i, p_f, p_o``
        (ONNX's LSTM with input ``P``; cell ``"lstm_peephole"``). Every backend runs this form
        (``backend="auto"`` picks the C++ one where it is built, else Numba).

    Attributes
    ----------
    params : dict of str to ndarray
        The parameters under torch's names: ``weight_ih_l{k}`` of shape (G*H, I) for the first
        layer and (G*H, D*H) for the others, ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and
        ``bias_hh_l{k}`` (G*H,), with the suffix ``_reverse`` for the reverse direction. With
        projections (P = proj_size): ``weight_hr_l{k}`` (P, H), ``weight_hh_l{k}`` (G*H, P) and
        ``weight_ih_l{k}`` (G*H, D*P) after the first layer, as torch's.
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether forward calls record what ``backward`` needs (see ``train`` and ``eval``).

    Raises
    ------
    ValueError
        A size below 1, a dropout outside [0, 1), or a ``proj_size`` outside [0, hidden_size).
    TypeError
        A size that is not an integer, or a dtype other than float32 and float64.
    NotImplementedError
        ``peepholes=True`` together with ``proj_size > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> lstm = rnnkit.LSTM(3, 4, bidirectional=True, seed=0)
    >>> y, (h_n, c_n) = lstm(np.zeros((5, 2, 3), np.float32))
    >>> y.shape, h_n.shape, c_n.shape
    ((5, 2, 8), (2, 2, 4), (2, 2, 4))
    >>> dx, (dh0, dc0) = lstm.backward(np.ones_like(y))
    >>> dx.shape, sorted(lstm.grads)[:2]
    ((5, 2, 3), ['bias_hh_l0', 'bias_hh_l0_reverse'])
    """

    _cell, _gates = "lstm", 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, peepholes: bool = False, **kw: Any) -> None:  # fmt: skip
        self.peepholes = flag("peepholes", peepholes)
        self._cell = "lstm_peephole" if self.peepholes else "lstm"
        self.proj_size = proj_size_of(proj_size, hidden_size)
        if self.proj_size and self.peepholes:
            raise NotImplementedError("an LSTM with both peepholes and projections (proj_size > 0) is not implemented")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kw)


class GRU(_RecurrentLayer):
    """A GRU, ``torch.nn.GRU``'s arguments and semantics.

    Each step computes the gates ``r, z, n`` (in this order, ``G = 3``):
    ``r = sigmoid(W_ir x_t + b_ir + W_hr h_(t-1) + b_hr)``, ``z`` likewise,
    ``n = tanh(W_in x_t + b_in + r * (W_hn h_(t-1) + b_hn))`` and
    ``h_t = (1 - z) * n + z * h_(t-1)``; the output is ``h_t``. With
    ``linear_before_reset=False``, ``n = tanh(W_in x_t + b_in + W_hn (r * h_(t-1)) + b_hn)``.

    Parameters
    ----------
    input_size : int
        The number of features of each input step, ``I``.
    hidden_size : int
        The number of features of the hidden state, ``H``.
    num_layers : int, default 1
        The number of stacked layers, ``L``; each one after the first reads the output of the
        one before.
    bias : bool, default True
        Give each layer the biases ``b_ih`` and ``b_hh``.
    batch_first : bool, default False
        The input and output are (B, T, features) instead of (T, B, features).
    dropout : float, default 0.0
        In training mode, drop each output of every layer but the last with this probability
        (scaling the rest by ``1 / (1 - dropout)``); in [0, 1).
    bidirectional : bool, default False
        Run every layer in both directions, ``D = 2``, and concatenate the two outputs.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cells (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (torch.nn's uniform initialisation
        U(-1/sqrt(H), 1/sqrt(H))) and of the dropout masks.
    activations : list, optional
        ONNX's activation choice for each position of the cell (two: f for r and z; g for n): names among
        Sigmoid, Tanh, Relu, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign,
        Softplus, Affine, or ``(name, alpha[, beta])``; a bidirectional layer takes one list for
        both directions or, as ONNX, the forward direction's followed by the reverse one's. None:
        the cell's own (see `rnnkit.functional.forward`).
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).
    linear_before_reset : bool, default True
        True: torch's formula (ONNX's ``linear_before_reset=1``, Keras's ``reset_after=True``).
        False: the reset gate multiplies the state before the recurrent product (the original
        GRU, ONNX's default and Keras's ``reset_after=False``); the parameters keep their names
        and shapes. Every backend runs this form.

    Attributes
    ----------
    params : dict of str to ndarray
        The parameters under torch's names: ``weight_ih_l{k}`` of shape (G*H, I) for the first
        layer and (G*H, D*H) for the others, ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and
        ``bias_hh_l{k}`` (G*H,), with the suffix ``_reverse`` for the reverse direction.
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether forward calls record what ``backward`` needs (see ``train`` and ``eval``).

    Raises
    ------
    ValueError
        A size below 1 or a dropout outside [0, 1).
    TypeError
        A size that is not an integer, or a dtype other than float32 and float64.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> gru = rnnkit.GRU(3, 4, batch_first=True, seed=0)
    >>> y, h_n = gru(np.zeros((2, 5, 3), np.float32), lengths=[5, 3])
    >>> y.shape, h_n.shape
    ((2, 5, 4), (1, 2, 4))
    """

    _cell, _gates = "gru", 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 linear_before_reset: bool = True, **kw: Any) -> None:  # fmt: skip
        self.linear_before_reset = flag("linear_before_reset", linear_before_reset)
        self._cell = "gru" if self.linear_before_reset else "gru_reset_before"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, **kw)


class _Cell(_Module):
    """One step of a recurrent cell (torch.nn.*Cell): x [B, I] -> h' [B, H] (LSTM: (h', c')).
    Calls stack up a tape; backward(dh) undoes the most recent call first, so a decoder loop
    calls backward once per step in reverse."""

    _gates = 1
    _cell: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: DTypeLike = np.float32,
                 backend: str = "auto", seed: _Seed = None, activations: Optional[Sequence[Any]] = None,
                 clip: Optional[float] = None, input_forget: bool = False) -> None:  # fmt: skip
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.bias, self.dtype, self.backend = bool(bias), _float_dtype(dtype), backend
        # ONNX's options: the cell and the keyword arguments of its forward calls (rnnkit.RNN's)
        ((self._call_cell, self._options),) = layer_forms(self._cell, activations, clip, input_forget, 1)
        self.activations = None if activations is None else list(activations)
        self.clip, self.input_forget = self._options["clip"], self._options["input_forget"]
        G, H = self._gates, self.hidden_size
        shapes: Dict[str, Tuple[int, ...]] = {"weight_ih": (G * H, self.input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        if self._cell == "lstm_peephole":
            shapes["weight_peephole"] = (3 * H,)  # p_i, p_f, p_o
            self._names = self._names + ("weight_peephole",)
        self._init_params(shapes, H, _rng(seed))
        self._tape: List[F.Context] = []

    _names: Tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def forward(self, x: ArrayLike, state: Any = None) -> State:
        """Run one step (also available as calling the cell).

        In training mode the call is recorded for ``backward``.

        Parameters
        ----------
        x : ndarray, shape (B, I)
            The input of the step.
        state : ndarray or tuple of ndarray, optional
            The state entering the step: ``h`` of shape (B, H), or ``(h, c)`` for the LSTM cell.
            None, or None for one part of the pair, means zeros.

        Returns
        -------
        ndarray or tuple of ndarray
            The next state: ``h'`` of shape (B, H), or ``(h', c')`` for the LSTM cell.

        Raises
        ------
        ValueError
            ``x`` is not 2-D, or the state does not fit it.
        """
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (B, I), got shape {x.shape}")
        w = self._packed_weights(None, self._call_cell, tuple(self.params.get(n) for n in self._names))
        y, sn, ctx = F.forward(self._call_cell, x[None], w, state, training=self.training, backend=self.backend,
                               **self._options)  # fmt: skip
        if self.training:
            self._tape.append(ctx)
        state_n: State = sn
        return state_n

    __call__ = forward

    def backward(self, dstate: Any) -> Tuple[Array, State]:
        """Backpropagation through the most recent call not yet undone.

        Calls stack up; each backward undoes the most recent one, so a decoder loop calls
        backward once per step, in reverse order. The parameter gradients are added to ``grads``.

        Parameters
        ----------
        dstate : ndarray or tuple of ndarray
            The gradient of the loss with respect to that call's result: ``dh'`` of shape (B, H),
            or ``(dh', dc')`` for the LSTM cell (None parts mean zeros).

        Returns
        -------
        dx : ndarray, shape (B, I)
            The gradient with respect to that call's ``x``.
        dstate : ndarray or tuple of ndarray
            The gradient with respect to the state passed to that call.

        Raises
        ------
        RuntimeError
            No training-mode call is left to undo.
        """
        if not self._tape:
            raise RuntimeError("backward needs a forward call in training mode first (cell.train())")
        ctx = self._tape.pop()
        dy = np.zeros((1, ctx.problem.B, self.hidden_size), self.dtype)
        dx, ds0, dw = F.backward(ctx, dy, dstate)
        self._accumulate(self._names, dw)
        return dx[0], ds0

    def clear_tape(self) -> None:
        """Forget every recorded call (for example after an inference loop in training mode)."""
        self._tape.clear()


class RNNCell(_Cell):
    """One step of an Elman RNN, ``torch.nn.RNNCell``'s arguments and semantics.

    ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with ``act`` tanh or ReLU; ``G = 1``.

    Parameters
    ----------
    input_size : int
        The number of features of the input, ``I``.
    hidden_size : int
        The number of features of the state, ``H``.
    bias : bool, default True
        Give the cell the biases ``bias_ih`` and ``bias_hh``.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation ``act``.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cell (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (U(-1/sqrt(H), 1/sqrt(H)), as torch.nn).
    activations : list, optional
        ONNX's activation for each position of the cell (one), as for the layer.
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih`` of shape (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh``
        (G*H,).
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether calls are recorded for ``backward`` (see ``train`` and ``eval``).

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> cell = rnnkit.RNNCell(3, 4, seed=0)
    >>> h = cell(np.zeros((2, 3), np.float32))
    >>> dx, dh = cell.backward(np.ones_like(h))
    >>> h.shape, dx.shape, dh.shape
    ((2, 4), (2, 3), (2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 **kw: Any) -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if kw.get("activations") is not None and nonlinearity != "tanh":
            raise ValueError(f"give nonlinearity or activations, not both (got nonlinearity={nonlinearity!r} and "
                             f"activations={kw['activations']!r})")  # fmt: skip
        self._cell = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, bias, **kw)


class LSTMCell(_Cell):
    """One step of an LSTM, ``torch.nn.LSTMCell``'s arguments and semantics.

    The gates are i, f, g, o in this order (``G = 4``); the state is the pair ``(h, c)``.

    Parameters
    ----------
    input_size : int
        The number of features of the input, ``I``.
    hidden_size : int
        The number of features of the state, ``H``.
    bias : bool, default True
        Give the cell the biases ``bias_ih`` and ``bias_hh``.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cell (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (U(-1/sqrt(H), 1/sqrt(H)), as torch.nn).
    activations : list, optional
        ONNX's activation for each position of the cell (three: f, g, h), as for the layer.
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).
    input_forget : bool, default False
        Couple the forget gate to the input gate, ``f = 1 - i`` (ONNX's ``input_forget``).
    peepholes : bool, default False
        The gates also see the cell state through ``weight_peephole`` of shape (3*H,), ordered
        ``p_i, p_f, p_o``, as `rnnkit.LSTM`'s ``peepholes``.

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih`` of shape (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh``
        (G*H,).
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether calls are recorded for ``backward`` (see ``train`` and ``eval``).

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> cell = rnnkit.LSTMCell(3, 4, seed=0)
    >>> x = np.zeros((2, 3), np.float32)
    >>> h, c = cell(x)
    >>> h, c = cell(x, (h, c))
    >>> dx, (dh, dc) = cell.backward((np.ones_like(h), None))  # undoes the second call
    >>> dx, (dh, dc) = cell.backward((dh, dc))  # then the first
    >>> dx.shape, dh.shape
    ((2, 3), (2, 4))
    """

    _cell, _gates = "lstm", 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, peepholes: bool = False,
                 **kw: Any) -> None:  # fmt: skip
        self.peepholes = flag("peepholes", peepholes)
        self._cell = "lstm_peephole" if self.peepholes else "lstm"
        super().__init__(input_size, hidden_size, bias, **kw)


class GRUCell(_Cell):
    """One step of a GRU, ``torch.nn.GRUCell``'s arguments and semantics.

    The gates are r, z, n in this order (``G = 3``), with torch's formula (or, with
    ``linear_before_reset=False``, the reset gate before the recurrent product).

    Parameters
    ----------
    input_size : int
        The number of features of the input, ``I``.
    hidden_size : int
        The number of features of the state, ``H``.
    bias : bool, default True
        Give the cell the biases ``bias_ih`` and ``bias_hh``.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    backend : {"auto", "cpp", "numba", "numpy"}, default "auto"
        The implementation that runs the cell (see `rnnkit.available_backends`).
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (U(-1/sqrt(H), 1/sqrt(H)), as torch.nn).
    activations : list, optional
        ONNX's activation for each position of the cell (two: f, g), as for the layer.
    clip : float, optional
        Clip every gate's pre-activation to ``[-clip, clip]`` (ONNX's ``clip``).
    linear_before_reset : bool, default True
        As for `rnnkit.GRU`: False applies the reset gate before the recurrent product.

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight_ih`` of shape (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh``
        (G*H,).
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether calls are recorded for ``backward`` (see ``train`` and ``eval``).

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> cell = rnnkit.GRUCell(3, 4, dtype=np.float64, seed=0)
    >>> h = cell(np.zeros((2, 3)))
    >>> h.shape, h.dtype
    ((2, 4), dtype('float64'))
    """

    _cell, _gates = "gru", 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 linear_before_reset: bool = True, **kw: Any) -> None:  # fmt: skip
        self.linear_before_reset = flag("linear_before_reset", linear_before_reset)
        self._cell = "gru" if self.linear_before_reset else "gru_reset_before"
        super().__init__(input_size, hidden_size, bias, **kw)


class Linear(_Module):
    """A fully connected layer over the last axis, ``torch.nn.Linear``'s arguments and layout.

    ``y = x @ weight.T + bias``.

    Parameters
    ----------
    in_features : int
        The size of the last axis of the input.
    out_features : int
        The size of the last axis of the output.
    bias : bool, default True
        Add the learned bias.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the parameters and of the computation.
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial parameters (U(-1/sqrt(in_features),
        1/sqrt(in_features))).

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight`` of shape (out_features, in_features) and ``bias`` of shape (out_features,).
    grads : dict of str to ndarray
        The gradients of the parameters, under the same names; ``backward`` adds to them.
    training : bool
        Whether a forward call keeps its input for ``backward``.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> fc = rnnkit.Linear(4, 2, seed=0)
    >>> y = fc(np.ones((5, 3, 4), np.float32))
    >>> dx = fc.backward(np.ones_like(y))
    >>> y.shape, dx.shape, fc.grads["weight"].shape
    ((5, 3, 2), (5, 3, 4), (2, 4))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: DTypeLike = np.float32,
                 seed: _Seed = None) -> None:  # fmt: skip
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.dtype = _float_dtype(dtype)
        shapes: Dict[str, Tuple[int, ...]] = {"weight": (self.out_features, self.in_features)}
        if bias:
            shapes["bias"] = (self.out_features,)
        self._init_params(shapes, self.in_features, _rng(seed))
        self._x: Optional[Array] = None
        self._consumed = False

    def forward(self, x: ArrayLike) -> Array:
        """Apply the layer (also available as calling it).

        Parameters
        ----------
        x : ndarray, shape (..., in_features)
            Any number of leading axes.

        Returns
        -------
        ndarray, shape (..., out_features)

        Raises
        ------
        ValueError
            The last axis of ``x`` is not ``in_features`` long.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must end in in_features = {self.in_features}, got shape {x.shape}")
        self._x = x if self.training else None
        self._consumed = False
        y = x @ self.params["weight"].T
        return y + self.params["bias"] if "bias" in self.params else y

    __call__ = forward

    def backward(self, dy: ArrayLike, *, retain_graph: bool = False) -> Array:
        """Backpropagation through the last training-mode call.

        Adds the gradients of ``weight`` and ``bias`` to ``grads``. A second backward of one
        forward call raises unless the first passed ``retain_graph=True``.

        Parameters
        ----------
        dy : ndarray, shape (..., out_features)
            The gradient of the loss with respect to that call's output, of its shape.
        retain_graph : bool, default False
            Allow another backward of the same forward call.

        Returns
        -------
        ndarray, shape (..., in_features)
            The gradient with respect to that call's ``x``.

        Raises
        ------
        RuntimeError
            No training-mode forward call came before, or its backward already ran.
        ValueError
            ``dy`` does not have the shape of the output.
        """
        if self._x is None:
            raise RuntimeError("backward needs a forward call in training mode first")
        if self._consumed:
            raise _consumed("Linear")
        dy = _expect_grad("dy", dy, self._x.shape[:-1] + (self.out_features,), self.dtype)
        self._consumed = not retain_graph
        x2 = self._x.reshape(-1, self.in_features)
        dy2 = dy.reshape(-1, self.out_features)
        self.grads["weight"] += dy2.T @ x2
        if "bias" in self.grads:
            self.grads["bias"] += dy2.sum(axis=0)
        return (dy2 @ self.params["weight"]).reshape(self._x.shape)


class Embedding(_Module):
    """A lookup table from integer ids to vectors, ``torch.nn.Embedding``'s layout.

    Parameters
    ----------
    num_embeddings : int
        The number of ids (rows of the table).
    embedding_dim : int
        The size of each vector.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The dtype of the table.
    seed : int, numpy.random.Generator or None, optional
        The random source of the initial table (standard normal entries, as torch.nn).

    Attributes
    ----------
    params : dict of str to ndarray
        ``weight`` of shape (num_embeddings, embedding_dim).
    grads : dict of str to ndarray
        Its gradient; ``backward`` adds to it.
    training : bool
        Whether a forward call keeps its ids for ``backward``.

    Examples
    --------
    >>> import numpy as np
    >>> import rnnkit
    >>> emb = rnnkit.Embedding(10, 3, seed=0)
    >>> v = emb(np.array([[1, 2], [3, 1]]))
    >>> emb.backward(np.ones_like(v))
    >>> v.shape, emb.grads["weight"][1].tolist()
    ((2, 2, 3), [2.0, 2.0, 2.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype: DTypeLike = np.float32,
                 seed: _Seed = None) -> None:  # fmt: skip
        self.num_embeddings = positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        self.dtype = _float_dtype(dtype)
        rng = _rng(seed)
        self.params = {"weight": rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self.training = True
        self._ids: Optional[Array] = None
        self._consumed = False

    def forward(self, ids: ArrayLike) -> Array:
        """Look the ids up (also available as calling the layer).

        Parameters
        ----------
        ids : array of int, any shape
            Each in ``[0, num_embeddings)``.

        Returns
        -------
        ndarray, shape ``ids.shape + (embedding_dim,)``

        Raises
        ------
        TypeError
            ``ids`` are not integers.
        ValueError
            An id is out of range.
        """
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), got values in [{ids.min()}, {ids.max()}]")
        self._ids = ids if self.training else None
        self._consumed = False
        out: Array = self.params["weight"][ids]
        return out

    __call__ = forward

    def backward(self, dy: ArrayLike, *, retain_graph: bool = False) -> None:
        """Backpropagation through the last training-mode call: adds the table's gradient to ``grads``.

        A second backward of one forward call raises unless the first passed
        ``retain_graph=True``.

        Parameters
        ----------
        dy : ndarray, shape ``ids.shape + (embedding_dim,)``
            The gradient of the loss with respect to that call's output.
        retain_graph : bool, default False
            Allow another backward of the same forward call.

        Raises
        ------
        RuntimeError
            No training-mode forward call came before, or its backward already ran.
        ValueError
            ``dy`` does not have the shape of the output.
        """
        if self._ids is None:
            raise RuntimeError("backward needs a forward call in training mode first")
        if self._consumed:
            raise _consumed("Embedding")
        dy = _expect_grad("dy", dy, self._ids.shape + (self.embedding_dim,), self.dtype)
        self._consumed = not retain_graph
        np.add.at(self.grads["weight"], self._ids.reshape(-1), dy.reshape(-1, self.embedding_dim))
