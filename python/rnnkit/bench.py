"""rnnkit against torch.nn, measured: the cases shared by the pytest-benchmark suite (benchmarks/)
and `rnnkit bench` (a short run with a progress bar, a table, --plot and --json).

Case(cell, T, B, I, H) holds float32 inputs with torch's default initialisation and makes the timed
callables: rnnkit on a backend, rnnkit through rnnkit.torch, torch.nn (as shipped, without oneDNN,
or on a PackedSequence). torch is optional: without it only rnnkit's backends are timed.
"""

from __future__ import annotations

import os
import platform
import warnings

import numpy as np

from . import functional as F

# (T, B, I, H)
CONFIGS = {
    "S": (32, 1, 64, 64),
    "M": (64, 16, 256, 256),
    "L": (64, 64, 512, 512),
    "XL": (32, 128, 1024, 1024),
}
SMOKE_CONFIGS = ("S", "M")
# Whole models (LSTM): (I, H, num_layers, bidirectional, B, T), the shapes of public reports.
MODELS = {
    "bi2": (293, 128, 2, True, 32, 60),  # 2-layer bidirectional, batch 32, 60 steps (a TensorRT report)
    "deep2000": (256, 256, 2, False, 8, 2000),  # 2 layers over 2000 steps (a torch CPU report)
    "stream": (40, 128, 1, False, 1, 100),  # streaming: batch 1
    # an LSTM with projections (LSTMP, Sak et al. 2014: speech features in, 1024 cells projected
    # to 256), torch.nn.LSTM(proj_size=256); torch has no oneDNN path for it
    "lstmp": (320, 1024, 1, False, 8, 100, 256),
}
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
THREADS = int(os.environ.get("RNNKIT_BENCH_THREADS", "2"))


def forward_flops(cell, T, B, I, H):  # noqa: E741
    """FLOPs of a forward pass: 2*T*B*G*H*(I+H) (the products; pointwise work not counted)."""
    return 2 * T * B * GATES[cell] * H * (I + H)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

try:
    import torch
except ImportError:  # torch is optional: its cases are skipped
    torch = None


def spread_lengths(T, B, seed=0):
    """Lengths spread evenly from T/8 to T, shuffled."""
    lengths = np.linspace(max(T // 8, 1), T, B).round().astype(np.int64)
    return np.random.default_rng(seed).permutation(lengths)


class Case:
    """Inputs of one benchmark: x [T,B,I] float32, PyTorch-initialised weights, dy."""

    def __init__(self, cell, T, B, I, H, lengths=False, seed=0):  # noqa: E741
        self.cell, self.T, self.B, self.I, self.H = cell, T, B, I, H
        rng = np.random.default_rng(seed)
        G = {"rnn_tanh": 1, "lstm": 4, "gru": 3}[cell]
        k = 1 / np.sqrt(H)  # torch.nn's default initialisation
        self.weights = tuple(rng.uniform(-k, k, s).astype(np.float32) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)])
        self.x = rng.standard_normal((T, B, I), dtype=np.float32)
        self.dy = rng.standard_normal((T, B, H), dtype=np.float32)
        self.lengths = spread_lengths(T, B, seed) if lengths else None
        self.valid_steps = int(self.lengths.sum()) if lengths else T * B

    # --- rnnkit -------------------------------------------------------------------------------
    def rnnkit_fn(self, backend, training, packed=False):
        """packed: the weights packed once (functional.pack), as an onnxruntime or OpenVINO session
        prepacks them when it is created (implementation "cpp_packed")."""
        cell, x, w, lengths, dy = self.cell, self.x, self.weights, self.lengths, self.dy
        if packed:
            w = F.pack(cell, w)
        if not training:
            return lambda: F.forward(cell, x, w, lengths=lengths, training=False, backend=backend)[0]

        def step():
            y, _, ctx = F.forward(cell, x, w, lengths=lengths, backend=backend)
            F.backward(ctx, dy)
            return y

        return step

    # --- torch --------------------------------------------------------------------------------
    def torch_module(self):
        mod = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[self.cell](self.I, self.H)
        with torch.no_grad():
            for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), self.weights):
                getattr(mod, name).copy_(torch.from_numpy(w))
        return mod

    def bridge_fn(self, training):
        """rnnkit's kernels through rnnkit.torch (the autograd bridge), on the same inputs."""
        import rnnkit.torch as rt

        mod = {"rnn_tanh": rt.RNN, "lstm": rt.LSTM, "gru": rt.GRU}[self.cell](self.I, self.H)
        with torch.no_grad():
            for name, w in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), self.weights):
                getattr(mod, name).copy_(torch.from_numpy(w))
        x = torch.from_numpy(self.x).requires_grad_(training)
        dy = torch.from_numpy(self.dy)

        def call():
            if not training:
                with torch.inference_mode():
                    return mod(x)[0]
            mod.zero_grad(set_to_none=True)
            x.grad = None
            y = mod(x)[0]
            y.backward(dy)
            return y.detach()

        return call

    def onnx_model(self):
        """The case as an ONNX graph of one RNN/LSTM/GRU node with the case's weights (X -> Y), or
        None when onnx is not installed: what onnxruntime and OpenVINO compile."""
        try:
            from onnx import TensorProto, helper
        except ImportError:
            return None
        order = {"rnn_tanh": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}[self.cell]  # ONNX gate order
        H = self.H

        def reorder(w):
            return np.concatenate([w[g * H : (g + 1) * H] for g in order], axis=0)

        W_ih, W_hh, b_ih, b_hh = self.weights
        inits = [helper.make_tensor(n, TensorProto.FLOAT, a.shape, a.ravel().tolist()) for n, a in
                 (("W", reorder(W_ih)[None]), ("R", reorder(W_hh)[None]),
                  ("B", np.concatenate([reorder(b_ih), reorder(b_hh)])[None]))]  # fmt: skip
        attrs = dict(hidden_size=H)
        if self.cell == "gru":
            attrs["linear_before_reset"] = 1
        op = {"rnn_tanh": "RNN", "lstm": "LSTM", "gru": "GRU"}[self.cell]
        node = helper.make_node(op, ["X", "W", "R", "B"], ["Y"], **attrs)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(self.x.shape))],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)  # fmt: skip
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])

    def onnxruntime_fn(self):
        """Inference through onnxruntime's RNN/LSTM/GRU operator (a second reference), or None
        when onnx/onnxruntime are not installed."""
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        model = self.onnx_model()
        if model is None:
            return None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        x = self.x
        return lambda: sess.run(None, {"X": x})[0][:, 0]

    def openvino_fn(self):
        """Inference through OpenVINO (its CPU plugin compiling the same ONNX graph; OpenVINO's
        LSTMSequence/GRUSequence/RNNSequence), or None when openvino/onnx are not installed."""
        try:
            import openvino as ov
        except ImportError:
            return None
        model = self.onnx_model()
        if model is None:
            return None
        core = ov.Core()
        compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                      {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
        req = compiled.create_infer_request()
        x = self.x

        def call():
            req.infer({0: x})
            return req.get_output_tensor(0).data[:, 0]

        return call

    def torch_fn(self, training, packed=False, mkldnn=True):
        """torch.nn on the padded batch (packed=False) or on a PackedSequence of the same lengths."""
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        mod = self.torch_module()
        x = torch.from_numpy(self.x).requires_grad_(training)
        dy = torch.from_numpy(self.dy)
        lengths = torch.from_numpy(self.lengths) if packed else None
        T = self.T

        def run():
            inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
            out, _ = mod(inp)
            if packed:
                out, _ = pad_packed_sequence(out, total_length=T)
            return out

        def call():
            if not training:
                with torch.inference_mode():
                    return run()
            mod.zero_grad(set_to_none=True)
            x.grad = None
            y = run()
            y.backward(dy)
            return y.detach()

        if mkldnn:
            return call

        def call_without_onednn():
            # torch.backends.mkldnn.flags() also sets TF32 flags and warns about Intel GPUs
            prev = torch._C._get_mkldnn_enabled()
            torch._C._set_mkldnn_enabled(False)
            try:
                return call()
            finally:
                torch._C._set_mkldnn_enabled(prev)

        return call_without_onednn


class ModelCase:
    """A whole LSTM model of MODELS: torch.nn.LSTM, the same weights in rnnkit.torch.LSTM and in the
    NumPy layers (rnnkit.LSTM) on a backend; one training step is forward + backward of y.sum()
    (NumPy: dy = ones), parameter gradients included."""

    def __init__(self, name, seed=0):
        self.name = name
        self.I, self.H, self.L, self.bi, self.B, self.T, *proj = MODELS[name]
        self.P = proj[0] if proj else 0  # proj_size
        self.x = np.random.default_rng(seed).standard_normal((self.T, self.B, self.I), dtype=np.float32)
        self._state = None

    def flops(self, training):
        D, S = 2 if self.bi else 1, self.P or self.H
        # the products: 2*T*B*4H*(I + S) per layer and direction, and the projection's 2*T*B*S*H
        total = sum(2 * self.T * self.B * (4 * self.H * ((self.I if layer == 0 else D * S) + S) + (S * self.H if self.P else 0))
                    for layer in range(self.L)) * D  # fmt: skip
        return total * (3 if training else 1)

    def _kw(self):
        return dict(num_layers=self.L, bidirectional=self.bi, proj_size=self.P)

    def state_dict(self):
        """torch.nn's initialisation, seeded, as NumPy arrays (shared by every implementation)."""
        if self._state is None:
            rng = np.random.default_rng(1)
            k = 1 / np.sqrt(self.H)
            D, G, S = (2 if self.bi else 1), 4, self.P or self.H
            self._state = {}
            for layer in range(self.L):
                for sfx in [f"_l{layer}", f"_l{layer}_reverse"][:D]:
                    I = self.I if layer == 0 else D * S  # noqa: E741
                    shapes = [("weight_ih", (G * self.H, I)), ("weight_hh", (G * self.H, S)),
                              ("bias_ih", (G * self.H,)), ("bias_hh", (G * self.H,))]  # fmt: skip
                    shapes += [("weight_hr", (S, self.H))] if self.P else []
                    for n, shape in shapes:
                        self._state[n + sfx] = rng.uniform(-k, k, shape).astype(np.float32)
        return self._state

    def _torch_call(self, mod, training):
        mod.load_state_dict({k: torch.from_numpy(v) for k, v in self.state_dict().items()})
        x = torch.from_numpy(self.x)

        def call():
            if not training:
                with torch.inference_mode():
                    return mod(x)[0]
            mod.zero_grad(set_to_none=True)
            y = mod(x)[0]
            y.sum().backward()
            return y.detach()

        return call

    def torch_fn(self, training):
        call = self._torch_call(torch.nn.LSTM(self.I, self.H, **self._kw()), training)
        if not self.P:
            return call

        def quiet():  # torch says once that it runs projections without oneDNN: known, not news
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN")
                return call()

        return quiet

    def bridge_fn(self, training):
        import rnnkit.torch as rt

        return self._torch_call(rt.LSTM(self.I, self.H, **self._kw()), training)

    def layers_fn(self, backend, training):
        from .layers import LSTM

        mod = LSTM(self.I, self.H, backend=backend, **self._kw())
        mod.load_state_dict(self.state_dict())
        mod.train(training)
        x = self.x
        dy = None

        def call():
            nonlocal dy
            y, _ = mod(x)
            if training:
                mod.zero_grad()
                # the gradient of y.sum(), made once (as torch's, which expands one number); x
                # needs no gradient, as torch's
                dy = np.ones_like(y) if dy is None else dy
                mod.backward(dy, input_grad=False)
            return y

        return call


# --- measurements ---------------------------------------------------------------------------------


def sgemm_gflops(threads=THREADS, n=(4096, 1024, 4096), repeats=5):
    """The machine's float32 GEMM speed (GFLOP/s, best of `repeats`) through NumPy's BLAS limited to
    `threads`: the ceiling a forward is compared with."""
    import time

    from threadpoolctl import threadpool_limits

    M, K, N = n
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * M * K * N / best / 1e9


_MEMORY_SCRIPT = """
import sys, rnnkit
from rnnkit.bench import Case, CONFIGS
cell, config, impl = sys.argv[1:4]
rnnkit.set_num_threads(int(sys.argv[4]))
case = Case(cell, *CONFIGS[config])
fn = case.torch_fn(True) if impl == "torch" else case.rnnkit_fn(impl, True)
if impl == "torch":
    import torch; torch.set_num_threads(int(sys.argv[4]))
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident size
base = status("VmRSS:")
fn()
print((status("VmHWM:") - base) / 1024)
"""


def peak_memory_mb(cell, config, impl, threads=THREADS):
    """Peak resident memory (MiB) that one training step (forward + backward) adds, measured in a
    fresh process (Linux: VmHWM after resetting it through /proc/self/clear_refs). None elsewhere."""
    import subprocess
    import sys

    if not os.path.exists("/proc/self/clear_refs"):
        return None
    r = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, cell, config, impl, str(threads)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    if r.returncode != 0:
        return None
    return float(r.stdout.strip().splitlines()[-1])


def time_call(fn, min_repeats=3, budget=0.5, times=None):
    """Median seconds of fn() over at least min_repeats calls and about `budget` seconds (every
    call's seconds appended to `times` when given)."""
    import time

    fn()  # warm-up (compilation, first touch)
    times = [] if times is None else times
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget and len(times) < 100):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


ENGINES = ("onnxruntime", "openvino")  # the other CPU inference engines, compiling the case's ONNX graph


def available_impls(cells=("lstm",)):
    """rnnkit's usable backends (cpp, numba), torch, and the inference engines that are importable."""
    import importlib.util

    from . import available_backends

    impls = [b for b in ("cpp", "numba") if b in available_backends()]
    if torch is not None:
        impls = ["torch"] + impls
    engines = [e for e in ENGINES if importlib.util.find_spec(e) and importlib.util.find_spec("onnx")]
    return impls + engines


def cases(full=False):
    """(name, cell, mode, T, B, I, H, lengths) of a run: the short one, or the full sweep."""
    configs = list(CONFIGS) if full else ["S", "M"]
    out = []
    for cell in ("rnn_tanh", "lstm", "gru"):
        for mode in ("inference", "training"):
            for c in configs:
                out.append((f"{cell}-{mode}-{c}", cell, mode, *CONFIGS[c], False))
    T, B, I, H = CONFIGS["M"]
    if full:
        for t in (16, 64, 256, 1024):
            out.append((f"sweepT-lstm-inference-T{t}", "lstm", "inference", t, B, I, H, False))
        for b in (1, 4, 16, 64, 256):
            out.append((f"sweepB-lstm-inference-B{b}", "lstm", "inference", T, b, I, H, False))
    for cell in ("lstm", "gru"):
        out.append((f"lengths-{cell}-training-M", cell, "training", T, B, I, H, True))
    return out


def model_cases():
    """(name, model, mode) of the whole-model group."""
    return [(f"model-{mode}-{m}", m, mode) for m in MODELS for mode in ("inference", "training")]


def model_fn(case, impl, training):
    """The timed callable of one whole model: torch (torch.nn), rnnkit_torch, or a backend name
    (the NumPy layers)."""
    if impl == "torch":
        return case.torch_fn(training)
    if impl == "rnnkit_torch":
        return case.bridge_fn(training)
    return case.layers_fn(impl, training)


def run(full=False, impls=None, only_cells=None, only_configs=None, progress=True, budget=0.5):
    """Time every case on every implementation; returns a list of result dicts
    {group, impl, median, gflops, cell, mode, T, B, I, H}."""
    impls = impls or available_impls()
    todo = [c for c in cases(full)
            if (not only_cells or c[1] in only_cells)
            and (not only_configs or c[0].rsplit("-", 1)[1] in only_configs)]  # fmt: skip
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo) * len(impls), desc="rnnkit bench", leave=False)
    results = []
    for name, cell, mode, T, B, I, H, lengths in todo:  # noqa: E741
        case = Case(cell, T, B, I, H, lengths=lengths)
        training = mode == "training"
        flops = forward_flops(cell, T, B, I, H) * (3 if training else 1) * case.valid_steps / (T * B)
        for impl in impls:
            if impl in ENGINES:  # inference on the dense batch only
                fn = None if training or lengths else getattr(case, f"{impl}_fn")()
                if fn is None:
                    if bar is not None:
                        bar.update(1)
                    continue
            elif impl == "torch":
                fn = case.torch_fn(training, packed=lengths)
            else:
                fn = case.rnnkit_fn(impl, training)
            med = time_call(fn, budget=budget)
            results.append(dict(group=name, impl="torch_packed" if impl == "torch" and lengths else impl,
                                median=med, gflops=flops / med / 1e9, cell=cell, mode=mode,
                                T=T, B=B, I=I, H=H))  # fmt: skip
            if bar is not None:
                bar.update(1)
    # The whole models (LSTM): torch.nn, rnnkit.torch and the NumPy layers on each backend.
    models = [c for c in model_cases() if (not only_cells or "lstm" in only_cells)
              and (not only_configs or c[1] in only_configs)]  # fmt: skip
    mimpls = (["torch", "rnnkit_torch"] if "torch" in impls else []) + [i for i in impls if i not in ("torch", *ENGINES)]
    if bar is not None:
        bar.total += len(models) * len(mimpls)
    for name, model, mode in models:
        case = ModelCase(model)
        training = mode == "training"
        for impl in mimpls:
            med = time_call(model_fn(case, impl, training), budget=budget)
            results.append(dict(group=name, impl=impl, median=med, gflops=case.flops(training) / med / 1e9,
                                cell="lstm", mode=mode, T=case.T, B=case.B, I=case.I, H=case.H))  # fmt: skip
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return results


# --- reporting ------------------------------------------------------------------------------------

ORDER = ("torch", "torch_nomkldnn", "torch_packed", "torch_padded", "onnxruntime", "openvino", "cpp", "cpp_packed",
         "rnnkit_torch", "numba", "numpy")  # fmt: skip
RATIO_OF = ("cpp", "cpp_packed", "rnnkit_torch", "numba", "numpy")


def _group_key(name):
    order = {"S": 0, "M": 1, "L": 2, "XL": 3}
    parts = name.split("-")
    size = parts[-1]
    num = int(size[1:]) if size[:1] in "TB" and size[1:].isdigit() else order.get(size, 9)
    return (parts[0] in ("lengths", "sweepT", "sweepB", "model"), parts[0], parts[-2] if len(parts) > 2 else "", num)


def grouped(results):
    groups = {}
    for r in results:
        groups.setdefault(r["group"], {})[r["impl"]] = r
    return groups


def _fmt_time(s):
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def table(results, markdown=False, compact=False):
    """Median per implementation (with GFLOP/s) and the speed-up over torch, one row per case."""
    groups = grouped(results)
    impls = [i for i in ORDER if any(i in g for g in groups.values())]
    if compact:  # torch as shipped (packed for variable lengths) and rnnkit's compiled backends
        impls = [i for i in impls if i in ("torch", "torch_packed", "cpp", "numba")]
    # the engines against rnnkit: engine time / cpp time (above 1x: rnnkit is faster)
    vs = [e for e in ENGINES if e in impls] if "cpp" in impls else []
    head = ["case"] + impls + [f"{i}/torch" for i in impls if i in RATIO_OF] + [f"{e}/cpp" for e in vs]
    rows = []
    for name in sorted(groups, key=_group_key):
        g = groups[name]
        base = g.get("torch", g.get("torch_packed"))
        row = [name]
        for i in impls:
            gf = g[i].get("gflops") if i in g else None
            row.append(_fmt_time(g[i]["median"]) + (f" ({gf:.0f} GF/s)" if gf else "") if i in g else "-")
        row += [f"{base['median'] / g[i]['median']:.2f}x" if base and i in g else "-" for i in impls if i in RATIO_OF]
        row += [f"{g[e]['median'] / g['cpp']['median']:.2f}x" if e in g and "cpp" in g else "-" for e in vs]
        rows.append(row)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(r[c])) for r in [head] + rows) for c in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [head] + rows)


PLOT_IMPLS = (("cpp", "tab:green"), ("numba", "tab:blue"))  # the backends drawn, each against torch


def _case_label(name, row):
    sizes = " ".join(f"{k}{row[k]}" for k in ("T", "B", "I", "H") if row.get(k) is not None)
    return f"{name}  ({sizes})" if sizes else name


def plot(results, path, info=None):
    """Draw the speed-ups over torch (same run) of every rnnkit backend timed, one bar each, the
    figure on the bar; then the T and B sweeps when present. `info` (cpu, threads, isa, dtype)
    goes in the title; by default this machine's facts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if info is None:
        import rnnkit

        info = {"cpu": cpu_model(), "threads": rnnkit.get_num_threads()}
    groups = grouped(results)
    names = [n for n in sorted(groups, key=_group_key) if ("torch" in groups[n] or "torch_packed" in groups[n])
             and any(i in groups[n] for i, _ in PLOT_IMPLS) and not n.startswith("sweep")]  # fmt: skip
    impls = [(i, c) for i, c in PLOT_IMPLS if any(i in groups[n] for n in names)]
    sweeps = [k for k in ("sweepT", "sweepB") if any(n.startswith(k) for n in groups)]
    height = 0.22 * len(names) * max(1, len(impls)) + 2.2
    fig, axes = plt.subplots(1, 1 + len(sweeps), figsize=(11 + 4 * len(sweeps), height), squeeze=False,
                             gridspec_kw={"width_ratios": [3] + [1] * len(sweeps)})
    ax = axes[0][0]
    width = 0.8 / max(1, len(impls))
    top = 1.0
    for k, (impl, color) in enumerate(impls):
        ys, speed = [], []
        for j, n in enumerate(names):
            if impl in groups[n]:
                ref = groups[n].get("torch") or groups[n]["torch_packed"]
                ys.append(j - 0.4 + width * (k + 0.5))
                speed.append(ref["median"] / groups[n][impl]["median"])
        bars = ax.barh(ys, speed, height=width * 0.9, color=color, label=f"rnnkit {impl}")
        ax.bar_label(bars, labels=[f"{s:.2f}x" if s < 10 else f"{s:.0f}x" for s in speed], padding=2, fontsize=7)
        top = max([top, *speed])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(range(len(names)), [_case_label(n, next(iter(groups[n].values()))) for n in names], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=top * 2.5)
    ax.set_xlabel("speed-up over torch, same run (right of the line: rnnkit faster)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    for ax, key in zip(axes[0][1:], sweeps):
        rows = sorted((n for n in groups if n.startswith(key)), key=_group_key)
        xs = [next(iter(groups[n].values()))[key[-1]] for n in rows]
        for impl in ("torch", "cpp", "numba"):
            if all(impl in groups[n] for n in rows):
                ax.loglog(xs, [groups[n][impl]["median"] for n in rows], "o-", label=impl)
        ax.set_xlabel(key[-1] + " (LSTM inference, M otherwise)")
        ax.set_ylabel("seconds (median)")
        ax.legend()
    facts = [str(info.get("cpu") or "unknown CPU"), f"{info.get('threads', '?')} threads"]
    if info.get("isa"):
        facts.append(f"pointwise ISA {info['isa']}")
    facts.append(str(info.get("dtype", "float32")))
    fig.suptitle("rnnkit against torch.nn: time of torch / time of rnnkit, median of each case\n" + ", ".join(facts),
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def from_pytest_json(path):
    """Results from a `pytest benchmarks --benchmark-json=FILE` run, and its machine facts; also
    reads what `rnnkit bench --json FILE` writes."""
    import json

    with open(path) as f:
        data = json.load(f)
    if "results" in data:  # rnnkit bench --json
        return data["results"], {k: data[k] for k in ("cpu", "threads", "sgemm_gflops", "isa") if k in data}
    results, info = [], {}
    for b in data["benchmarks"]:
        ex = b.get("extra_info", {})
        results.append(dict(group=b["group"], impl=ex.get("impl") or b["params"].get("impl"),
                            median=b["stats"]["median"], gflops=ex.get("gflops"),
                            peak_mb=ex.get("peak_mb"), **{k: ex.get(k) for k in ("cell", "mode", "T", "B", "I", "H")}))  # fmt: skip
        info = {k: ex[k] for k in ("cpu", "threads", "sgemm_gflops", "isa") if k in ex} or info
    return results, info


SUMMARY_CELLS = (("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "RNN (tanh)"))
SUMMARY_MODELS = (("bi2", "2-layer bidirectional LSTM, 293/128, B32, 60 steps"),
                  ("deep2000", "2-layer LSTM, 256/256, B8, 2000 steps"),
                  ("stream", "streaming LSTM, 40/128, B1, 100 steps"),
                  ("lstmp", "LSTM with projections, 320/1024/256, B8, 100 steps"))  # fmt: skip


def summary(results):
    """The README's one-screen table: torch time / rnnkit time per case of a saved run, for the cpp
    and numba backends (whole models: the NumPy layers on each backend)."""
    groups = grouped(results)

    def ratio(group, impl):
        g = groups.get(group, {})
        ref = g.get("torch") or g.get("torch_packed")
        if ref is None or impl not in g:
            return "-"
        s = ref["median"] / g[impl]["median"]
        return f"{s:.2f}x" if s < 10 else f"{s:.0f}x"

    def both(group):
        if group not in groups:
            return "not in this run"
        return f"{ratio(group, 'cpp')} / {ratio(group, 'numba')}"

    rows = ["| case (T, B, I, H) | inference: cpp / numba | training: cpp / numba |", "|---|---|---|"]
    for size in ("S", "M", "L", "XL"):
        for cell, name in SUMMARY_CELLS:
            if f"{cell}-inference-{size}" in groups or f"{cell}-training-{size}" in groups:
                T, B, I, H = CONFIGS[size]  # noqa: E741
                rows.append(f"| {name} {size} ({T}, {B}, {I}, {H}) | {both(f'{cell}-inference-{size}')} "
                            f"| {both(f'{cell}-training-{size}')} |")  # fmt: skip
    for cell, name in SUMMARY_CELLS:
        if any(n.startswith(f"lengths-{cell}-") for n in groups):
            rows.append(f"| {name} M, lengths T/8..T, against a PackedSequence | {both(f'lengths-{cell}-inference-M')} "
                        f"| {both(f'lengths-{cell}-training-M')} |")  # fmt: skip
    for key, name in SUMMARY_MODELS:
        if f"model-inference-{key}" in groups or f"model-training-{key}" in groups:
            rows.append(f"| {name} | {both(f'model-inference-{key}')} | {both(f'model-training-{key}')} |")
    return "\n".join(rows)
