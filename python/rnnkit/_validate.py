"""Every check of user input, and its message, lives here; nothing else in rnnkit raises for bad input.

`problem(...)` turns the arguments of `functional.forward` into a normalised `Problem` (one dtype,
C-contiguous arrays, int64 lengths, zero states filled in); `grads(...)` does the same for the
incoming gradients of `functional.backward`. Backends trust what they receive.
"""

# Tested by tests/test_errors.py.

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Gate count per cell kind; gate order is PyTorch's (LSTM: i, f, g, o; GRU: r, z, n).
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3, "lstm_peephole": 4}
# The cells whose state is a pair (h, c); and the one whose weights carry a fifth array, P.
LSTM_CELLS = ("lstm", "lstm_peephole")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# The activation positions of each cell (ONNX's f, g, h) and torch's choice for each: the RNN f;
# the GRU f (r, z) and g (n); the LSTM f (i, f, o), g (the candidate cell) and h (the output).
DEFAULT_ACTS = {"rnn_tanh": ("tanh",), "rnn_relu": ("relu",), "lstm": ("sigmoid", "tanh", "tanh"),
                "lstm_peephole": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"),
                "gru_reset_before": ("sigmoid", "tanh")}  # fmt: skip
# ONNX's activation functions (lower case) and the defaults of their (alpha, beta), those of the
# ONNX operators of the same names; None: no default, the caller gives it. (onnxruntime takes a
# missing alpha or beta as 0 for ThresholdedRelu, Affine and ScaledTanh.)
ACTIVATIONS = {"sigmoid": (), "tanh": (), "relu": (), "softsign": (), "softplus": (), "leakyrelu": (0.01,),
               "thresholdedrelu": (1.0,), "elu": (1.0,), "hardsigmoid": (0.2, 0.5), "affine": (1.0, 0.0),
               "scaledtanh": (None, None)}  # fmt: skip
_ONNX_NAMES = ("Sigmoid", "Tanh", "Relu", "Softsign", "Softplus", "LeakyRelu", "ThresholdedRelu", "Elu",
               "HardSigmoid", "Affine", "ScaledTanh")  # fmt: skip
_POSITIONS = {1: "f", 2: "f (r and z), g (n)", 3: "f (i, f and o), g (the candidate cell), h (the output)"}


@dataclass
class Problem:
    """One validated single-layer, single-direction recurrent call.

    Shape letters: T steps, B batch, I input size, H hidden size, G gates (1, 4, 3).
    x [T,B,I]; W_ih [G*H,I]; W_hh [G*H,H]; b_ih, b_hh [G*H] or None; h0 [B,H]; c0 [B,H] (LSTM) or
    None; lengths [B] int64 or None. Every array is C-contiguous and of `dtype`.
    """

    cell: str
    T: int
    B: int
    I: int  # noqa: E741 - the shape letter used everywhere in rnnkit
    H: int
    G: int
    dtype: np.dtype
    x: np.ndarray
    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    h0: np.ndarray
    c0: Optional[np.ndarray]
    lengths: Optional[np.ndarray]
    reverse: bool
    training: bool
    P: Optional[np.ndarray] = None  # lstm_peephole: [3H] peephole weights (p_i, p_f, p_o)
    # lstm with projections (torch's proj_size): [S, H]; h_t = W_hr (o * tanh(c_t)) has S < H units,
    # and W_hh is [4H, S], h0 [B, S], y [T, B, S] (c stays [B, H])
    W_hr: Optional[np.ndarray] = None
    # ONNX's options of the cell, beyond torch's: acts, the activation of each position (RNN: f;
    # GRU: f, g; LSTM: f, g, h) as (name, alpha, beta) with ONNX's names in lower case, () for the
    # cell's defaults (torch's); clip, the bound of every gate's pre-activation, or None; input_forget
    # (LSTM): f = 1 - i.
    acts: Tuple[Tuple[str, float, float], ...] = ()
    clip: Optional[float] = None
    input_forget: bool = False
    # Where the arrays are: None for host memory (NumPy), else a device such as "cuda:0"; the arrays
    # are then CuPy arrays on it (see device_of), and only backend "cuda" runs the problem.
    device: Optional[str] = None
    # The weights' store of packed panels (rnnkit._core.WeightPack) when they came as PackedWeights,
    # else None: the C++ backend then reuses the panels instead of packing W per call.
    pack: Any = None

    @property
    def options(self) -> bool:
        """Whether the problem uses ONNX's options (activations other than the cell's, clip,
        input_forget), which only some backends run."""
        return bool(self.acts) or self.clip is not None or self.input_forget

    @property
    def is_lstm(self) -> bool:
        return self.cell in LSTM_CELLS

    @property
    def S(self) -> int:
        """The width of h (and of y): the projection's size, or H without one."""
        return self.H if self.W_hr is None else self.W_hr.shape[0]


class PackedWeights(tuple):  # type: ignore[type-arg]
    """A cell's weights packed once for many calls (made by `rnnkit.functional.pack`).

    A tuple of the weight arrays, as `functional.forward` takes them (read-only copies made at
    packing time), that any backend accepts; the C++ backend keeps the weights' packed panels in
    it, made by the first call of each layout (forward or backward pass, thread count) and reused
    by the later calls instead of being packed in every call."""

    cell: str
    _rnnkit_pack: Any  # rnnkit._core.WeightPack, or None without the C++ backend

    @classmethod
    def _wrap(cls, arrays: Sequence[Any], cell: str, pack: Any) -> "PackedWeights":
        """The arrays as they are (no copy), with pack: for callers that keep them unchanged while
        the pack is in use (functional.pack passes its read-only copies)."""
        w = cls(arrays)
        w.cell, w._rnnkit_pack = cell, pack
        return w

    def __repr__(self) -> str:
        shapes = ", ".join("None" if a is None else str(tuple(a.shape)) for a in self)
        return f"PackedWeights({self.cell!r}, shapes ({shapes}))"


def _shape(a) -> str:
    return "(" + ", ".join(str(d) for d in a.shape) + ")" if a.ndim != 1 else f"({a.shape[0]},)"


def _array(name: str, value) -> np.ndarray:
    """A native-byte-order ndarray of float32 or float64, or a TypeError naming `name`.

    Big-endian (or other non-native) arrays are converted once, like non-contiguous ones, so that
    no backend ever reads foreign byte order; masked arrays are refused (their mask would be
    honoured by no backend)."""
    if type(value) is np.ndarray and value.dtype in DTYPES:  # the common case, fast
        return value
    if type(value).__module__.split(".")[0] == "cupy":  # a GPU array (see _on_device), kept where it is
        if value.dtype not in DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")
        return value
    if isinstance(value, (tuple, list)) and any(isinstance(v, np.ndarray) for v in value):
        raise TypeError(f"{name} must be a single array, got a {type(value).__name__} of arrays")
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; rnnkit ignores no entries: pass {name}.filled(value), "
            f"and use `lengths` for padded sequences"
        )
    if not isinstance(value, np.ndarray):
        if type(value).__module__.split(".")[0] == "torch":
            raise TypeError(
                f"{name} is a torch.Tensor; rnnkit.functional takes NumPy arrays "
                f"(use .detach().cpu().numpy(), or the modules in rnnkit.torch)"
            )
        try:
            value = np.asarray(value)
        except Exception as exc:  # pragma: no cover - exotic array-likes
            raise TypeError(f"{name} must be a NumPy array, got {type(value).__name__}") from exc
    if value.dtype.char not in "fd" or value.dtype.kind != "f":
        raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    return value


def _expect_shape(name: str, a: np.ndarray, expected: tuple, meaning: str) -> None:
    if a.shape != expected:
        want = "(" + ", ".join(str(d) for d in expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {meaning} = {want}, got {_shape(a)}")


def flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def cell_name(cell) -> str:
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"cell must be one of {', '.join(map(repr, GATES))}; got {cell!r}")
    return cell


def _plain(a, dtype, shape) -> bool:
    """a is an exact C-contiguous ndarray of dtype and shape (the common case of every argument)."""
    return type(a) is np.ndarray and a.dtype == dtype and a.shape == shape and a.flags.c_contiguous


def _fast_problem(cell, x, weights, state, lengths, reverse, training) -> Optional[Problem]:
    """The Problem of a call whose every argument is already what `problem` would make of it (exact
    C-contiguous ndarrays of one float dtype and the right shapes, no lengths, plain bools), in a
    few microseconds; None for anything else, which then takes the full path below (the one that
    explains what is wrong). Both give the same Problem."""
    G = GATES.get(cell) if type(cell) is str and cell != "lstm_peephole" else None  # P: the full path
    if (G is None or type(x) is not np.ndarray or x.ndim != 3 or x.dtype not in DTYPES
            or not x.flags.c_contiguous or type(weights) not in (tuple, list, PackedWeights) or len(weights) != 4
            or lengths is not None or type(reverse) is not bool or type(training) is not bool):  # fmt: skip
        return None
    W_ih, W_hh, b_ih, b_hh = weights
    dtype = x.dtype
    T, B, I = x.shape  # noqa: E741
    if type(W_hh) is not np.ndarray or W_hh.ndim != 2:
        return None
    H = W_hh.shape[1]
    GH = G * H
    if (H < 1 or max(GH, I) >= 2**31 or not _plain(W_hh, dtype, (GH, H)) or not _plain(W_ih, dtype, (GH, I))
            or not (b_ih is None or _plain(b_ih, dtype, (GH,))) or not (b_hh is None or _plain(b_hh, dtype, (GH,)))):  # fmt: skip
        return None
    lstm = cell == "lstm"
    if state is None:
        h0 = c0 = None
    elif lstm:
        if type(state) not in (tuple, list) or len(state) != 2:
            return None
        h0, c0 = state
    else:
        h0, c0 = state, None
    for a in (h0, c0):
        if a is not None and not _plain(a, dtype, (B, H)):
            return None
    return Problem(
        cell=cell, T=T, B=B, I=I, H=H, G=G, dtype=dtype, x=x, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh,
        h0=np.zeros((B, H), dtype) if h0 is None else h0,
        c0=(np.zeros((B, H), dtype) if c0 is None else c0) if lstm else None,
        lengths=None, reverse=reverse, training=training,
    )  # fmt: skip


def problem(cell, x, weights, state=None, lengths=None, reverse=False, training=True, *, activations=None,
            clip=None, input_forget=False, backend="auto") -> Problem:  # fmt: skip
    """Validate the arguments of `functional.forward`; return a normalised Problem. backend: the
    one asked for, checked against where the arrays are (GPU arrays run on "cuda" only)."""
    if activations is None and clip is None and input_forget is False:  # torch's cell, the common case
        fast = _fast_problem(cell, x, weights, state, lengths, reverse, training)
        if fast is not None:
            if backend == "cuda":
                _on_device(cell, x, weights, state, lengths, backend)  # raises: NumPy arrays
            p = fast
        else:
            p = _checked_problem(cell, x, weights, state, lengths, reverse, training, backend)
    else:
        cell, acts, clip, input_forget = form(cell_name(cell), activations, clip, input_forget)
        p = _checked_problem(cell, x, weights, state, lengths, reverse, training, backend)
        p.acts, p.clip, p.input_forget = acts, clip, input_forget
    if type(weights) is PackedWeights and p.device is None:
        p.pack = weights._rnnkit_pack
    return p


def form(cell: str, activations, clip, input_forget) -> Tuple[str, Tuple[Tuple[str, float, float], ...], Optional[float], bool]:
    """Check ONNX's options of a cell: activations (one per position of the cell: a name of ONNX's
    list, or (name, alpha) or (name, alpha, beta)), clip (a positive bound, or None) and
    input_forget (LSTM); return (cell, acts, clip, input_forget) as Problem holds them. The cell's
    own activations become (); an RNN whose activation is tanh or relu becomes that cell."""
    n = len(DEFAULT_ACTS[cell])
    acts: Tuple[Tuple[str, float, float], ...] = ()
    if activations is not None:
        if isinstance(activations, (str, bytes)) or not isinstance(activations, (tuple, list)):
            raise TypeError(f"activations must be a list of {n} activation(s) for cell {cell!r} "
                            f"({_POSITIONS[n]}), got {activations!r}")  # fmt: skip
        if len(activations) != n:
            raise ValueError(f"activations must have {n} entr{'y' if n == 1 else 'ies'} for cell {cell!r} "
                             f"({_POSITIONS[n]}), got {len(activations)}: {list(activations)!r}")  # fmt: skip
        acts = tuple(_activation(f"activations[{k}]", a) for k, a in enumerate(activations))
        if tuple((a, 0.0, 0.0) for a in DEFAULT_ACTS[cell]) == acts:
            acts = ()
        elif cell in ("rnn_tanh", "rnn_relu") and acts[0][0] in ("tanh", "relu"):
            cell, acts = "rnn_" + acts[0][0], ()  # an RNN of torch's
    if clip is not None:
        if isinstance(clip, (bool, np.bool_)) or not isinstance(clip, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(clip) and clip > 0):  # fmt: skip
            raise ValueError(f"clip must be a positive finite number (the bound of every gate's input) or None, "
                             f"got {clip!r}")  # fmt: skip
        clip = float(clip)
    input_forget = flag("input_forget", input_forget)
    if input_forget and cell not in LSTM_CELLS:
        raise ValueError(f"input_forget (f = 1 - i) is an option of the LSTM, not of cell {cell!r}")
    return cell, acts, clip, input_forget


def activation_spec(acts: Tuple[Tuple[str, float, float], ...]) -> Optional[List[Any]]:
    """The activations argument that gives these acts back (each name with as many parameters as
    it takes, in ONNX's spelling); None for the cell's own ()."""
    if not acts:
        return None
    names = dict(zip(ACTIVATIONS, _ONNX_NAMES))
    return [(names[k], al, be)[: 1 + len(ACTIVATIONS[k])] if ACTIVATIONS[k] else names[k] for k, al, be in acts]


def layer_forms(cell: str, activations, clip, input_forget, directions: int) -> List[Tuple[str, Dict[str, Any]]]:
    """ONNX's options of a layer (`form`'s, for each direction: activations holds one entry per
    position of the cell for both directions or, bidirectional, the forward direction's followed
    by the reverse one's, as ONNX's list does); returns, per direction, the cell and the keyword
    arguments of its forward calls (all None/False for torch's cell, so the calls take the fast
    path)."""
    n = len(DEFAULT_ACTS[cell])
    per = [activations] * directions
    if directions == 2 and isinstance(activations, (tuple, list)) and len(activations) == 2 * n:
        per = [list(activations[:n]), list(activations[n:])]
    elif directions == 2 and isinstance(activations, (tuple, list)) and len(activations) != n:
        raise ValueError(f"activations must have {n} entries for cell {cell!r} ({_POSITIONS[n]}), or {2 * n} for "
                         f"a bidirectional layer (the forward direction's, then the reverse one's), got "
                         f"{len(activations)}: {list(activations)!r}")  # fmt: skip
    out = []
    for acts in per:
        c, a, cl, inf = form(cell, acts, clip, input_forget)
        out.append((c, {"activations": activation_spec(a), "clip": cl, "input_forget": inf}))
    return out


def _activation(name: str, a) -> Tuple[str, float, float]:
    """One entry of activations as (lower-case name, alpha, beta)."""
    spec = (a,) if isinstance(a, str) else a
    if not isinstance(spec, (tuple, list)) or not spec or not isinstance(spec[0], str):
        raise TypeError(f"{name} must be an activation name or a tuple (name, alpha[, beta]), got {a!r}")
    key = spec[0].lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {spec[0]!r}; expected one of {', '.join(_ONNX_NAMES)}")
    defaults, given = ACTIVATIONS[key], spec[1:]
    label = _ONNX_NAMES[list(ACTIVATIONS).index(key)]
    if len(given) > len(defaults):
        takes = f"at most {len(defaults)} ({', '.join(('alpha', 'beta')[: len(defaults)])})" if defaults else "no parameters"
        raise ValueError(f"{name}: {label} takes {takes}, got {len(given)}: {a!r}")
    params = []
    for j, d in enumerate(defaults):
        v = given[j] if j < len(given) else d
        pname = ("alpha", "beta")[j]
        if v is None:
            raise ValueError(f"{name}: {label} needs {pname} (it has no default), got {a!r}")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise ValueError(f"{name}: {label}'s {pname} must be a finite number, got {v!r}")
        params.append(float(v))
    params += [0.0] * (2 - len(params))
    return key, params[0], params[1]


def _checked_problem(cell, x, weights, state, lengths, reverse, training, backend="auto") -> Problem:
    """problem's full path: every check, with its message, and every conversion."""
    cell = cell_name(cell)
    G = GATES[cell]
    xp: Any = np  # the array module of the call: NumPy, or CuPy for GPU arrays
    device = _on_device(cell, x, weights, state, lengths, backend)
    if device is not None:
        xp, x, weights, state, lengths = _to_cupy(device, x, weights, state, lengths)

    x = _array("x", x)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (T, B, I), got {x.ndim}-D with shape {_shape(x)}")
    T, B, I = x.shape  # noqa: E741
    dtype = x.dtype

    peephole = cell == "lstm_peephole"
    n_weights = (5,) if peephole else (4, 5) if cell == "lstm" else (4,)
    if not isinstance(weights, (tuple, list)) or len(weights) not in n_weights:
        got = f"a {type(weights).__name__}" + (
            f" of length {len(weights)}" if isinstance(weights, (tuple, list)) else ""
        )
        want = {"lstm_peephole": "(W_ih, W_hh, b_ih, b_hh, P)",
                "lstm": "(W_ih, W_hh, b_ih, b_hh) or (W_ih, W_hh, b_ih, b_hh, W_hr)"}.get(cell, "(W_ih, W_hh, b_ih, b_hh)")  # fmt: skip
        raise TypeError(f"weights must be a tuple {want} for cell {cell!r}, got {got}")
    W_ih, W_hh, b_ih, b_hh = weights[:4]
    P = W_hr = None
    if peephole:
        if weights[4] is None:
            raise TypeError("weights: P (the peephole weights) is required for cell 'lstm_peephole'")
        P = _array("P", weights[4])
    elif len(weights) == 5 and weights[4] is not None:
        W_hr = _array("W_hr", weights[4])
    if W_ih is None or W_hh is None:
        raise TypeError("weights: W_ih and W_hh are required; only the biases may be None")
    W_ih, W_hh = _array("W_ih", W_ih), _array("W_hh", W_hh)
    b_ih = None if b_ih is None else _array("b_ih", b_ih)
    b_hh = None if b_hh is None else _array("b_hh", b_hh)

    if W_hr is not None:  # LSTM with projections: H from W_hr [S, H], S < H; W_hh [4H, S]
        if W_hr.ndim != 2 or not 1 <= W_hr.shape[0] < W_hr.shape[1]:
            raise ValueError(
                f"W_hr must have shape (S, H) with 1 <= S < H (S: the projection size, "
                f"torch's proj_size), got {_shape(W_hr)}"
                + (" (the fifth weight of cell 'lstm' is the projection W_hr; peepholes P are "
                   "cell 'lstm_peephole')" if W_hr.ndim == 1 else "")
            )  # fmt: skip
        S, H = W_hr.shape
        _expect_shape("W_hh", W_hh, (G * H, S), f"(4*H, S) with H={H}, S={S} (from W_hr)")
    else:
        if W_hh.ndim != 2 or W_hh.shape[1] < 1 or W_hh.shape[0] != G * W_hh.shape[1]:
            raise ValueError(
                f"W_hh must have shape (G*H, H) with G={G} gates for cell {cell!r}, got {_shape(W_hh)}"
            )
        H = S = W_hh.shape[1]
    if max(G * H, I) >= 2**31:  # the BLAS's 32-bit widths (rows and reductions are cut to fit)
        raise ValueError(f"G*H = {G * H} and I = {I} must each be below 2**31")
    src = "W_hr" if W_hr is not None else "W_hh"
    _expect_shape("W_ih", W_ih, (G * H, I), f"(G*H, I) with G={G}, H={H} (from {src}), I={I} (from x)")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _expect_shape(name, b, (G * H,), f"(G*H,) with G={G}, H={H}")
    if P is not None:
        _expect_shape("P", P, (3 * H,), f"(3*H,) = ({3 * H},): p_i, p_f, p_o")

    h0, c0 = _state(cell, state, B, H, S=S)

    named = [("x", x), ("W_ih", W_ih), ("W_hh", W_hh), ("b_ih", b_ih), ("b_hh", b_hh)]
    named += [("h0", h0), ("c0", c0), ("P", P), ("W_hr", W_hr)]
    for name, a in named[1:]:
        if a is not None and a.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but x has dtype {dtype}; "
                f"all arrays of one call must share one dtype"
            )

    lengths = _lengths(lengths, T, B)
    reverse = flag("reverse", reverse)
    training = flag("training", training)

    def c(a):
        return a if a is None or a.flags.c_contiguous else xp.ascontiguousarray(a)

    return Problem(
        cell=cell, T=T, B=B, I=I, H=H, G=G, dtype=dtype,
        x=c(x), W_ih=c(W_ih), W_hh=c(W_hh), b_ih=c(b_ih), b_hh=c(b_hh),
        h0=xp.zeros((B, S), dtype) if h0 is None else c(h0),
        c0=(xp.zeros((B, H), dtype) if c0 is None else c(c0)) if cell in LSTM_CELLS else None,
        lengths=lengths, reverse=reverse, training=training, P=c(P), W_hr=c(W_hr),
        device=None if device is None else device_of(x),
    )  # fmt: skip


# Where arrays live. DLPack's device types (dlpack.h, DLDeviceType): 1 CPU and 3 CUDA pinned host
# memory are the host; 2 CUDA and 13 CUDA managed memory are what backend "cuda" runs on.
_DLPACK_DEVICES = {2: "cuda", 13: "cuda", 4: "opencl", 7: "vulkan", 8: "metal", 10: "rocm", 14: "oneapi"}
_HOST_BACKENDS = ("cpp", "numba", "numpy")


def device_of(value) -> Optional[str]:
    """Where an array argument lives: None for host memory (NumPy arrays, lists, torch CPU tensors,
    None), else a device such as "cuda:0" (from ``__dlpack_device__``), or "cuda" for an object
    with ``__cuda_array_interface__`` only."""
    if value is None or type(value) is np.ndarray or isinstance(value, (int, float, list, tuple)):
        return None
    if hasattr(type(value), "__dlpack_device__"):
        try:
            kind, index = (int(v) for v in value.__dlpack_device__())
        except Exception:  # an exotic object: fall back to the interface below
            kind, index = -1, 0
        if kind in (1, 3):
            return None
        if kind >= 0:
            return f"{_DLPACK_DEVICES.get(kind, f'DLPack device type {kind}')}:{index}"
    if hasattr(value, "__cuda_array_interface__"):
        return "cuda"
    return None


def _same_device(a: Optional[str], b: Optional[str]) -> bool:
    """Equal devices; "cuda" (an object without a device id) matches any CUDA device."""
    return a == b or (a is not None and b is not None and "cuda" in (a, b) and a[:4] == b[:4] == "cuda")


def _where(device: Optional[str]) -> str:
    return "the host" if device is None else device


def _on_device(cell, x, weights, state, lengths, backend) -> Optional[str]:
    """The device of a call's arrays (None: the host), after checking that they are all on one,
    and that `backend` runs there; the errors name the argument and its device."""
    named = [("x", x)]
    if isinstance(weights, (tuple, list)):
        fifth = "P" if cell == "lstm_peephole" else "W_hr"
        named += list(zip(("W_ih", "W_hh", "b_ih", "b_hh", fifth), weights))
    if isinstance(state, (tuple, list)) and len(state) == 2:
        named += [("h0", state[0]), ("c0", state[1])]
    elif not isinstance(state, (tuple, list)):
        named.append(("h0", state))
    device = device_of(x)  # every other argument is compared with x
    for n, a in named[1:] + [("lengths", lengths)]:
        if a is None:
            continue
        d = device_of(a)
        if not _same_device(d, device) and not (n == "lengths" and d is None):  # lengths may stay on the host
            raise ValueError(f"{n} is on {_where(d)} but x is on {_where(device)}: all arrays of one call must be "
                             f"on one device")  # fmt: skip
    if device is None:
        if backend == "cuda":
            raise ValueError("backend 'cuda' runs on GPU arrays (CuPy arrays, torch CUDA tensors), but x is on the "
                             "host: pass GPU arrays, or a host backend ('auto', 'cpp', 'numba', 'numpy')")  # fmt: skip
        return None
    name = "x"
    if backend in _HOST_BACKENDS:
        raise ValueError(f"{name} is on {device}, but backend {backend!r} runs on the host: pass NumPy arrays "
                         f"(for example cupy.asnumpy({name})), or use backend 'cuda' (or 'auto')")  # fmt: skip
    if not device.startswith("cuda"):
        raise ValueError(f"{name} is on {device}: rnnkit runs on the host or on CUDA devices only")
    return device


def _cupy(what: str):
    try:
        import cupy
    except ImportError:
        raise ImportError(f"{what}: rnnkit takes GPU arrays through CuPy, which is not installed "
                          f"(pip install 'rnnkit[cuda]')") from None  # fmt: skip
    return cupy


def _to_cupy(device, x, weights, state, lengths):
    """The call's GPU arrays as CuPy arrays (zero-copy, through __cuda_array_interface__ or DLPack),
    lengths on the host."""
    cp = _cupy(f"x is on {device}")

    def g(a):
        return None if a is None else cp.asarray(a)

    if isinstance(weights, (tuple, list)):
        weights = type(weights)(g(w) for w in weights)
    if isinstance(state, (tuple, list)):
        state = type(state)(g(s) for s in state)
    else:
        state = g(state)
    if lengths is not None and device_of(lengths) is not None:
        lengths = cp.asnumpy(cp.asarray(lengths))
    return cp, g(x), weights, state, lengths


def _state(cell, state, B, H, name="state", S=None):
    """Split and check `state` (h0 [B, S], or (h0, c0 [B, H]) for LSTM; S = H without a
    projection); None parts mean zeros."""
    S = H if S is None else S
    h_name, c_name = ("h0", "c0") if name == "state" else ("dh_n", "dc_n")
    if cell in LSTM_CELLS:
        if state is None:
            return None, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(
                f"{name} of an LSTM must be a tuple ({h_name}, {c_name}) or None, "
                f"got {type(state).__name__}"
            )
        h, c = state
    else:
        if isinstance(state, (tuple, list)):
            raise TypeError(
                f"{name} of cell {cell!r} must be a single array {h_name} or None, "
                f"got a {type(state).__name__} (only an LSTM takes a (h, c) pair)"
            )
        h, c = state, None
    out = []
    for nm, a, w in ((h_name, h, S), (c_name, c, H)):
        if a is not None:
            a = _array(nm, a)
            if w == H:
                _expect_shape(nm, a, (B, H), "(B, H)")
            else:
                _expect_shape(nm, a, (B, w), "(B, S) with S the projection size")
        out.append(a)
    return out[0], out[1]


def _lengths(lengths, T, B):
    if lengths is None:
        return None
    if type(lengths).__module__.split(".")[0] == "torch":
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths)
    if arr.size == 0 and arr.dtype == np.float64 and isinstance(lengths, (list, tuple)):
        arr = arr.astype(np.int64)  # [] for an empty batch
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must be an integer array of shape (B,) = ({B},), got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), got {_shape(arr) if arr.ndim else '()'}")
    if B and (arr.min() < 0 or arr.max() > T):
        bad = int(np.flatnonzero((arr < 0) | (arr > T))[0])
        raise ValueError(
            f"lengths must satisfy 0 <= lengths[b] <= T = {T}; lengths[{bad}] = {int(arr[bad])}"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def grads(p: Problem, dy: Any, dstate_n: Any, rows: bool = False) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Validate the incoming gradients of `functional.backward`; returns (dy, dh_n, dc_n).

    dh_n and dc_n are zeros when not given (dc_n is None for cells other than LSTM). dy comes back
    C-contiguous, or with rows: as it is when its rows are contiguous at one stride (strides
    (B*ld, ld, 1) elements: a direction's columns of a bidirectional layer's gradient), which the
    C++ backend reads in place.
    """
    for name, a in (("dy", dy),) + (tuple(zip(("dh_n", "dc_n"), dstate_n)) if isinstance(dstate_n, (tuple, list))
                                     else (("dh_n", dstate_n),)):  # fmt: skip
        if a is not None and not _same_device(device_of(a), p.device):
            raise ValueError(f"{name} is on {_where(device_of(a))} but the forward pass ran on {_where(p.device)}: "
                             f"the gradients must be where the forward's arrays were")  # fmt: skip
    xp: Any = np
    if p.device is not None:
        xp = _cupy(f"the forward pass ran on {p.device}")
        dy = xp.asarray(dy)
        if isinstance(dstate_n, (tuple, list)):
            dstate_n = type(dstate_n)(None if a is None else xp.asarray(a) for a in dstate_n)
        elif dstate_n is not None:
            dstate_n = xp.asarray(dstate_n)
    dy = _array("dy", dy)
    S = p.S
    want = "(T, B, H)" if S == p.H else "(T, B, S)"
    _expect_shape("dy", dy, (p.T, p.B, S), want)  # (like y)
    dh_n, dc_n = _state(p.cell, dstate_n, p.B, p.H, name="dstate_n", S=S)
    for name, a in (("dy", dy), ("dh_n", dh_n), ("dc_n", dc_n)):
        if a is not None and a.dtype != p.dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but the forward pass ran in {p.dtype}; "
                f"all arrays of one call must share one dtype"
            )
    dh_n = xp.zeros((p.B, S), p.dtype) if dh_n is None else xp.ascontiguousarray(dh_n)
    if p.is_lstm:
        dc_n = xp.zeros((p.B, p.H), p.dtype) if dc_n is None else xp.ascontiguousarray(dc_n)
    if rows and xp is np and _row_layout(dy):
        return dy, dh_n, dc_n
    return xp.ascontiguousarray(dy), dh_n, dc_n


def _row_layout(a: np.ndarray) -> bool:
    """Whether a [T, B, S] array's rows are contiguous and lie one stride apart (bindings.cpp's
    Args::rows)."""
    if a.flags.c_contiguous:
        return True
    T, B, S = a.shape
    e = a.itemsize
    s0, s1, s2 = a.strides
    return s2 == e and s1 % e == 0 and s1 >= S * e and s0 == B * s1 and a.flags.aligned


def positive_int(name: str, value, maximum: Optional[int] = None) -> int:
    """An int >= 1 (and <= maximum); bools are refused (True is not a count)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    if maximum is not None and n > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {n}")
    return n


def proj_size_of(proj_size, hidden_size) -> int:
    """An LSTM's proj_size: an int in [0, hidden_size) (0: no projections), as torch.nn.LSTM's."""
    if isinstance(proj_size, (bool, np.bool_)):
        raise TypeError(f"proj_size must be an integer, got bool {proj_size!r}")
    try:
        n = operator.index(proj_size)
    except TypeError:
        raise TypeError(f"proj_size must be an integer, got {type(proj_size).__name__}") from None
    if n < 0:
        raise ValueError(f"proj_size must be >= 0, got {n}")
    if n and isinstance(hidden_size, int) and n >= hidden_size:
        raise ValueError(f"proj_size must be smaller than hidden_size = {hidden_size}, got {n}")
    return n


# Most threads rnnkit accepts (the C++ side takes an int; more than this is a typo, not a machine).
MAX_THREADS = 4096


def num_threads(name: str, value) -> int:
    return positive_int(name, value, MAX_THREADS)
