// pybind11 module rnnkit._core: NumPy arrays in, Problem + pointers to the kernels, GIL released
// for the whole kernel call. User input is validated in rnnkit/_validate.py and every buffer is
// allocated by rnnkit/_cpp.py; here each buffer's dtype, layout and size is only re-checked (Args),
// so that a bug upstream raises instead of corrupting memory. Stubs: python/rnnkit/_core.pyi.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "rnnkit/blas.h"
#include "rnnkit/build_info.h"
#include "rnnkit/kernels.h"
#include "rnnkit/pack.h"
#include "rnnkit/pool.h"
#include "rnnkit/pointwise.h"
#include "rnnkit/profile.h"
#include "rnnkit/threads.h"

namespace py = pybind11;
using rnnkit::Cell;
using rnnkit::Problem;
using rnnkit::Act;
using rnnkit::Form;

namespace {

// Every buffer is checked here before its pointer reaches a kernel: dtype, C-contiguity,
// writability and shape, and the length plan's consistency. The Python adapter always passes
// correct buffers, so these checks never fire in use; they cost well under a microsecond per call
// and turn an adapter bug (or a direct call of this private module) into a ValueError instead of
// memory corruption. Nothing is ever converted: a copy would silently lose an output.
class Args {
 public:
  explicit Args(const char* fn) : fn_(fn) {}

  [[noreturn]] void fail(const std::string& msg) const {
    throw py::value_error(std::string("rnnkit._core.") + fn_ + ": " + msg);
  }

  template <class T>
  T* get(const py::object& o, const char* name, std::initializer_list<int64_t> shape, bool needed,
         bool output) const {
    if (!needed) return nullptr;
    if (o.is_none()) fail(std::string(name) + " is required here, got None");
    if (!py::array_t<T>::check_(o))
      fail(std::string(name) + " must be a " + (sizeof(T) == 4 ? "float32" : "float64") +
           " array (the dtype of x), got " + std::string(py::str(py::type::of(o))) +
           (py::isinstance<py::array>(o) ? " of dtype " + std::string(py::str(o.attr("dtype"))) : ""));
    return ptr<T>(o, name, shape, output);
  }

  // An array [T, B, H] (an output unless output is false) whose rows may lie ld >= H elements
  // apart (one direction's columns of a [T, B, D*H] output or gradient): strides (B*ld, ld, 1)
  // elements. Returns the pointer, sets ld.
  template <class T>
  T* rows(const py::object& o, const char* name, int64_t T_, int64_t B, int64_t H, int64_t* ld,
          bool output = true) const {
    if (o.is_none()) fail(std::string(name) + " is required here, got None");
    if (!py::array_t<T>::check_(o))
      fail(std::string(name) + " must be a " + (sizeof(T) == 4 ? "float32" : "float64") + " array (the dtype of x)");
    auto a = py::reinterpret_borrow<py::array>(o);
    if (a.ndim() != 3 || a.shape(0) != T_ || a.shape(1) != B || a.shape(2) != H) {
      std::string got = "(";
      for (py::ssize_t k = 0; k < a.ndim(); ++k) got += (k ? ", " : "") + std::to_string(a.shape(k));
      fail(std::string(name) + " must have shape (" + std::to_string(T_) + ", " + std::to_string(B) + ", " +
           std::to_string(H) + "), got " + got + ")");
    }
    if (output && !a.writeable()) fail(std::string(name) + " must be writeable");
    const int64_t es = sizeof(T);
    *ld = H;
    if (T_ == 0 || B == 0) return static_cast<T*>(const_cast<void*>(a.data()));  // nothing is read or written
    // (the stride of a dimension of size 1 is arbitrary: NumPy calls such arrays contiguous anyway)
    const int64_t s0 = a.strides(0), s1 = B == 1 ? (T_ == 1 ? H * es : s0) : a.strides(1);
    *ld = s1 / es;
    if ((H > 1 && a.strides(2) != es) || s1 % es || *ld < H || (T_ > 1 && B > 1 && s0 != B * s1))
      fail(std::string(name) + " must have rows of H contiguous elements at a constant stride >= H");
    return static_cast<T*>(const_cast<void*>(a.data()));
  }

  const int64_t* index(const py::object& o, const char* name, std::initializer_list<int64_t> shape) const {
    if (!py::array_t<int64_t>::check_(o)) fail(std::string(name) + " must be an int64 array");
    return ptr<int64_t>(o, name, shape, false);
  }

 private:
  template <class T>
  T* ptr(const py::object& o, const char* name, std::initializer_list<int64_t> shape, bool output) const {
    auto a = py::reinterpret_borrow<py::array>(o);
    if (!(a.flags() & py::array::c_style)) fail(std::string(name) + " must be C-contiguous");
    if (output && !a.writeable()) fail(std::string(name) + " must be writeable");
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    std::string want = "(";
    int d = 0;
    for (int64_t n : shape) {
      want += (d ? ", " : "") + std::to_string(n);
      ok = ok && a.shape(d) == n;
      ++d;
    }
    if (!ok) {
      std::string got = "(";
      for (py::ssize_t k = 0; k < a.ndim(); ++k) got += (k ? ", " : "") + std::to_string(a.shape(k));
      fail(std::string(name) + " must have shape " + want + "), got " + got + ")");
    }
    return static_cast<T*>(output ? a.mutable_data() : const_cast<void*>(a.data()));
  }
  const char* fn_;
};

// The cell id, sizes and length plan (perm a permutation of the batch; batch_sizes non-increasing
// in [0, B], all B when dense; offsets their running sums from 0).
Problem make_problem(const Args& c, int cell, const py::object& x, const py::object& W_hh,
                     const py::object& W_hr, const py::object& P, const py::object& perm, const py::object& batch_sizes, const py::object& offsets,
                     bool reverse, bool training, bool dense) {
  if (cell < 0 || cell > 4)
    c.fail("cell must be 0 (rnn_tanh), 1 (rnn_relu), 2 (lstm), 3 (gru) or 4 (gru with the reset gate before "
           "the product), got " + std::to_string(cell));
  Problem p;
  p.cell = static_cast<Cell>(cell == 4 ? 3 : cell);
  p.reset_before = cell == 4;
  p.G = rnnkit::gate_count(p.cell);
  auto xa = py::reinterpret_borrow<py::array>(x), wa = py::reinterpret_borrow<py::array>(W_hh);
  if (!py::isinstance<py::array>(x) || xa.ndim() != 3) c.fail("x must be a 3-D array [T, B, I]");
  if (!py::isinstance<py::array>(W_hh) || wa.ndim() != 2) c.fail("W_hh must be a 2-D array [G*H, H]");
  p.T = xa.shape(0), p.B = xa.shape(1), p.I = xa.shape(2), p.H = p.S = wa.shape(1);
  if (!W_hr.is_none()) {  // an LSTM with projections: W_hr [S, H], W_hh [4H, S]
    auto ra = py::reinterpret_borrow<py::array>(W_hr);
    if (p.cell != Cell::kLstm) c.fail("W_hr (projections) is for the LSTM only");
    if (!py::isinstance<py::array>(W_hr) || ra.ndim() != 2 || ra.shape(0) < 1 || ra.shape(0) >= ra.shape(1))
      c.fail("W_hr must be a 2-D array [S, H] with 1 <= S < H");
    p.S = ra.shape(0), p.H = ra.shape(1);
  }
  if (!P.is_none()) {  // an LSTM with peepholes
    if (p.cell != Cell::kLstm) c.fail("P (peepholes) is for the LSTM only");
    if (p.projected()) c.fail("an LSTM with both peepholes and projections is not implemented");
    p.peephole = true;
  }
  p.reverse = reverse, p.training = training, p.dense = dense;
  p.perm = c.index(perm, "perm", {p.B});
  p.batch_sizes = c.index(batch_sizes, "batch_sizes", {p.T});
  p.offsets = c.index(offsets, "offsets", {p.T + 1});
  std::vector<char> seen(p.B, 0);
  for (int64_t i = 0; i < p.B; ++i) {
    const int64_t v = p.perm[i];
    if (v < 0 || v >= p.B || seen[v]) c.fail("perm must be a permutation of 0 .. B-1");
    seen[v] = 1;
  }
  if (p.offsets[0] != 0) c.fail("offsets[0] must be 0");
  for (int64_t t = 0; t < p.T; ++t) {
    const int64_t n = p.batch_sizes[t];
    if (n < 0 || n > p.B || (t && n > p.batch_sizes[t - 1]) || (dense && n != p.B))
      c.fail("batch_sizes must be non-increasing in [0, B] (all B when dense)");
    if (p.offsets[t + 1] != p.offsets[t] + n) c.fail("offsets must be the running sums of batch_sizes");
  }
  return p;
}

// One call's arguments, in the order of rnnkit._core.forward (see _core.pyi):
//   cell, y, h_n, c_n, xg, xp, h_prev, c_prev, hn, x, W_ih, W_hh, b_ih, b_hh, h0, c0,
//   perm, batch_sizes, offsets, reverse, training, dense, threads, m, W_hr, P, form, pack
// (threads: the most threads this call may use, 0 for rnnkit's setting; see Problem::threads;
// m, W_hr: an LSTM with projections, else None; P: an LSTM with peepholes, else None; form:
// ONNX's options as (activation codes, alphas, betas, clip, input_forget), see Problem::Form, or
// None for torch's cell; pack: a WeightPack to take the packed weights from and keep them in, or
// None, see rnnkit/pack.h)
constexpr size_t kForwardArgs = 28, kForwardThreads = 22, kForwardForm = 26, kForwardPack = 27;
// ... and of rnnkit._core.backward:
//   cell, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dg, dn, x, W_ih, W_hh, xg, xp, h_prev, c_prev,
//   hn, dy, dh_n, dc_n, perm, batch_sizes, offsets, reverse, dense, threads, dW_hr, m, W_hr, dP, P, form, pack
constexpr size_t kBackwardArgs = 34, kBackwardThreads = 26, kBackwardForm = 32, kBackwardPack = 33;

// The pack argument: None, or a WeightPack (kept alive by the call's tuple for the whole call).
rnnkit::WeightPack* pack_arg(const Args& c, const py::object& o) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<rnnkit::WeightPack>(o)) c.fail("pack must be a WeightPack or None, got " + std::string(py::str(py::type::of(o))));
  return o.cast<rnnkit::WeightPack*>();
}

// ONNX's options (None: torch's cell): one activation code, alpha and beta per position of the cell.
Form make_form(const Args& c, const Problem& p, const py::object& o) {
  Form f;
  if (o.is_none()) return f;
  const auto t = o.cast<py::tuple>();
  if (t.size() != 5) c.fail("form must be (codes, alphas, betas, clip, input_forget)");
  const auto codes = t[0].cast<std::vector<int>>();
  const auto alphas = t[1].cast<std::vector<double>>(), betas = t[2].cast<std::vector<double>>();
  const size_t n = p.cell == Cell::kLstm ? 3 : p.cell == Cell::kGru ? 2 : 1;
  if (codes.size() != n || alphas.size() != n || betas.size() != n)
    c.fail("form: one activation per position of the cell (" + std::to_string(n) + ")");
  for (size_t k = 0; k < n; ++k) {
    if (codes[k] < 0 || codes[k] >= static_cast<int>(Act::kCount)) c.fail("form: unknown activation code");
    f.act[k] = static_cast<Act>(codes[k]), f.alpha[k] = alphas[k], f.beta[k] = betas[k];
  }
  f.clip = t[3].cast<double>(), f.input_forget = t[4].cast<bool>();
  if (!(f.clip >= 0)) c.fail("form: clip must be >= 0 (0: none)");
  if (f.input_forget && p.cell != Cell::kLstm) c.fail("form: input_forget is for the LSTM only");
  f.any = true;
  return f;
}

template <class F> rnnkit::ForwardArgs<F> forward_args(const Problem& p, const Args& c, const py::tuple& t) {
  const int64_t T = p.T, B = p.B, I = p.I, H = p.H, S = p.S, GH = p.G * p.H, N = p.N();
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru, tr = p.training;
  const bool proj = p.projected();
  rnnkit::ForwardArgs<F> a;
  a.y = c.rows<F>(t[1], "y", T, B, S, &a.ld_y);
  a.h_n = c.get<F>(t[2], "h_n", {B, S}, true, true);
  a.c_n = c.get<F>(t[3], "c_n", {B, H}, lstm, true);
  a.xg = c.get<F>(t[4], "xg", {N, GH}, tr, true);
  a.xp = c.get<F>(t[5], "xp", {N, I}, !p.dense, true);
  a.h_prev = c.get<F>(t[6], "h_prev", {N, S}, tr, true);
  a.c_prev = c.get<F>(t[7], "c_prev", {N, H}, tr && lstm, true);
  a.hn = c.get<F>(t[8], "hn", {N, H}, tr && gru, true);
  a.x = c.get<F>(t[9], "x", {T, B, I}, true, false);
  a.W_ih = c.get<F>(t[10], "W_ih", {GH, I}, true, false);
  a.W_hh = c.get<F>(t[11], "W_hh", {GH, S}, true, false);
  a.b_ih = c.get<F>(t[12], "b_ih", {GH}, !t[12].is_none(), false);
  a.b_hh = c.get<F>(t[13], "b_hh", {GH}, !t[13].is_none(), false);
  a.h0 = c.get<F>(t[14], "h0", {B, S}, true, false);
  a.c0 = c.get<F>(t[15], "c0", {B, H}, lstm, false);
  a.m = c.get<F>(t[23], "m", {N, H}, tr && proj, true);
  a.W_hr = c.get<F>(t[24], "W_hr", {S, H}, proj, false);
  a.P = c.get<F>(t[25], "P", {3 * H}, p.peephole, false);
  a.pack = pack_arg(c, t[kForwardPack]);
  return a;
}

template <class F> rnnkit::BackwardArgs<F> backward_args(const Problem& p, const Args& c, const py::tuple& t) {
  const int64_t T = p.T, B = p.B, I = p.I, H = p.H, S = p.S, GH = p.G * p.H, N = p.N();
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru, proj = p.projected();
  rnnkit::BackwardArgs<F> a;
  a.dx = c.get<F>(t[1], "dx", {T, B, I}, !t[1].is_none(), true);  // None: not computed
  a.dh0 = c.get<F>(t[2], "dh0", {B, S}, true, true);
  a.dc0 = c.get<F>(t[3], "dc0", {B, H}, lstm, true);
  a.dW_ih = c.get<F>(t[4], "dW_ih", {GH, I}, true, true);
  a.dW_hh = c.get<F>(t[5], "dW_hh", {GH, S}, true, true);
  a.db_ih = c.get<F>(t[6], "db_ih", {GH}, true, true);
  a.db_hh = c.get<F>(t[7], "db_hh", {GH}, true, true);
  a.dg = c.get<F>(t[8], "dg", {N, GH}, !t[8].is_none(), true);  // None: the driver's workspace
  a.dn = c.get<F>(t[9], "dn", {N, H}, gru, true);
  a.x = c.get<F>(t[10], "x", {T, B, I}, true, false);
  a.W_ih = c.get<F>(t[11], "W_ih", {GH, I}, true, false);
  a.W_hh = c.get<F>(t[12], "W_hh", {GH, S}, true, false);
  a.xg = c.get<F>(t[13], "xg", {N, GH}, true, false);
  a.xp = c.get<F>(t[14], "xp", {N, I}, !p.dense, false);
  a.h_prev = c.get<F>(t[15], "h_prev", {N, S}, true, false);
  a.c_prev = c.get<F>(t[16], "c_prev", {N, H}, lstm, false);
  a.hn = c.get<F>(t[17], "hn", {N, H}, gru, false);
  a.dy = c.rows<F>(t[18], "dy", T, B, S, &a.ld_dy, false);
  a.dh_n = c.get<F>(t[19], "dh_n", {B, S}, true, false);
  a.dc_n = c.get<F>(t[20], "dc_n", {B, H}, lstm, false);
  a.dW_hr = c.get<F>(t[27], "dW_hr", {S, H}, proj, true);
  a.m = c.get<F>(t[28], "m", {N, H}, proj, false);
  a.W_hr = c.get<F>(t[29], "W_hr", {S, H}, proj, false);
  a.dP = c.get<F>(t[30], "dP", {3 * H}, p.peephole, true);
  a.P = c.get<F>(t[31], "P", {3 * H}, p.peephole, false);
  a.pack = pack_arg(c, t[kBackwardPack]);
  return a;
}

// Checks every call of the list (all in the dtype of the first call's x), then runs them with the
// GIL released: one call directly, several as a group (concurrently).
template <class F, bool Fwd> void run_calls(const Args& c, const std::vector<py::tuple>& calls) {
  using A = std::conditional_t<Fwd, rnnkit::ForwardArgs<F>, rnnkit::BackwardArgs<F>>;
  std::vector<Problem> ps;
  std::vector<A> as;
  for (const py::tuple& t : calls) {
    if (Fwd) {
      ps.push_back(make_problem(c, t[0].cast<int>(), t[9], t[11], t[24], t[25], t[16], t[17], t[18],
                                t[19].cast<bool>(), t[20].cast<bool>(), t[21].cast<bool>()));
    } else {
      ps.push_back(make_problem(c, t[0].cast<int>(), t[10], t[12], t[29], t[31], t[21], t[22], t[23],
                                t[24].cast<bool>(), true, t[25].cast<bool>()));
    }
    const int cap = t[Fwd ? kForwardThreads : kBackwardThreads].cast<int>();
    if (cap < 0) c.fail("threads must be >= 0 (0: rnnkit's setting), got " + std::to_string(cap));
    ps.back().threads = cap;
    ps.back().form = make_form(c, ps.back(), t[Fwd ? kForwardForm : kBackwardForm]);
    if constexpr (Fwd)
      as.push_back(forward_args<F>(ps.back(), c, t));
    else
      as.push_back(backward_args<F>(ps.back(), c, t));
  }
  py::gil_scoped_release nogil;
  const int k = static_cast<int>(ps.size());
  if constexpr (Fwd) {
    if (k == 1) rnnkit::sequence_forward<F>(ps[0], as[0]);
    else rnnkit::sequence_forward_group<F>(k, ps.data(), as.data());
  } else {
    if (k == 1) rnnkit::sequence_backward<F>(ps[0], as[0]);
    else rnnkit::sequence_backward_group<F>(k, ps.data(), as.data());
  }
}

py::list one_call(const py::args& a) {
  py::list l;
  l.append(a);
  return l;
}

template <bool Fwd> void dispatch_calls(const char* fn, const py::list& calls) {
  const Args c(fn);
  std::vector<py::tuple> ts;
  const size_t n = Fwd ? kForwardArgs : kBackwardArgs;
  for (const py::handle& h : calls) {
    if (!py::isinstance<py::tuple>(h) || py::len(h) != n)
      c.fail("each call must be a tuple of its " + std::to_string(n) + " arguments");
    ts.push_back(py::reinterpret_borrow<py::tuple>(h));
  }
  if (ts.empty()) return;
  if (py::array_t<double>::check_(ts[0][Fwd ? 9 : 10]))
    run_calls<double, Fwd>(c, ts);
  else
    run_calls<float, Fwd>(c, ts);
}

// exp/sigmoid/tanh of the active ISA's pointwise table, in place (for the accuracy tests).
template <class T> void activation_of(int kind, py::array_t<T, py::array::c_style> x) {
  if (kind < 0 || kind > 2) throw py::value_error("rnnkit._core.activation: kind must be 0 (exp), 1 (sigmoid) or 2 (tanh)");
  if (!x.writeable()) throw py::value_error("rnnkit._core.activation: x must be writeable");
  rnnkit::pointwise<T>().activation(kind, x.mutable_data(), x.size());
}

// A writeable uint8 array of nbytes (rounded up to 64) from the pool; its memory returns to the
// pool when the array (and every view of it) is freed. Contents are undefined, as np.empty's.
py::array pooled(size_t nbytes) {
  void* p = rnnkit::pool_take(nbytes);
  auto* block = new std::pair<void*, size_t>(p, nbytes);
  py::capsule owner(block, [](void* b) {
    auto* q = static_cast<std::pair<void*, size_t>*>(b);
    rnnkit::pool_give(q->first, q->second);
    delete q;
  });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(nbytes)}, {static_cast<py::ssize_t>(1)},
                              static_cast<uint8_t*>(p), owner);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit's compiled kernels (private; use rnnkit.functional)";
  rnnkit::blas_init();
  m.attr("__version__") = RNNKIT_VERSION;
  m.def("build_info", [] { return std::string(RNNKIT_BUILD_INFO); }, "Compiler, flags and libraries of this build.");
  m.def("cpu_features", [] { return std::string(rnnkit::cpu_features()); }, "CPU features seen at run time.");
  m.def("isa", [] { return std::string(rnnkit::isa_name(rnnkit::active_isa())); }, "ISA of the pointwise passes in use.");
  m.def("blas_config", [] { return std::string(rnnkit::blas_config()); }, "OpenBLAS build configuration.");
  m.def("set_num_threads", &rnnkit::set_num_threads, "Threads rnnkit's kernels use.");
  m.def("get_num_threads", &rnnkit::get_num_threads, "Threads rnnkit's kernels use.");
  m.def("pool_threads", &rnnkit::pool_threads, "Worker threads of rnnkit's pool in this process.");
  m.def("use_host_openmp", [](const py::object& library) {
        if (library.is_none()) return rnnkit::detail::use_host_openmp(nullptr);
        const std::string path = library.cast<std::string>();
        return rnnkit::detail::use_host_openmp(path.c_str());
      }, py::arg("library"),
      "Run the threaded kernels on the already loaded GNU OpenMP runtime at this path (torch's), "
      "or on rnnkit's own pool again (None); whether the runtime was found.");
  m.def("using_host_openmp", &rnnkit::detail::using_host_openmp,
        "Whether the threaded kernels run on the host's OpenMP threads (see use_host_openmp).");
  m.def("pooled", &pooled, py::arg("nbytes"),
        "A uint8 array of nbytes whose memory is recycled when it is freed (rnnkit/_cpp.py).");
  m.def("pool_bytes", [] { return rnnkit::pool_stats().idle; }, "Bytes held by the pool of freed blocks.");
  m.def("pool_limit", [] { return rnnkit::kPoolBytes; }, "Idle + in-use bytes the pool keeps at least (see pool_stats).");
  m.def("pool_stats", [] {
        const rnnkit::PoolStats st = rnnkit::pool_stats();
        return py::dict(py::arg("idle") = st.idle, py::arg("live") = st.live, py::arg("peak_live") = st.peak_live,
                        py::arg("bound") = st.bound);
      }, "Bytes of the recycling pool: idle, in use, the most in use at once, and the bound on idle + in use.");
  py::class_<rnnkit::WeightPack>(m, "WeightPack",
                                 "A store of packed weights, passed as forward/backward's pack argument "
                                 "(rnnkit/pack.h); its owner keeps the weights unchanged while it is used.")
      .def(py::init<>())
      .def_property_readonly("nbytes", &rnnkit::WeightPack::nbytes, "Bytes of packed weights held.")
      .def_property_readonly("layouts", &rnnkit::WeightPack::layouts,
                             "How many layouts (pass, thread count, dtype) it holds.")
      .def("clear", &rnnkit::WeightPack::clear, "Drop every layout (the weights changed).");
  m.def("contention", [] {
        const rnnkit::ContentionStats c = rnnkit::contention_stats();
        py::dict d;
        d["contended"] = c.contended, d["demoted"] = c.demoted, d["left_us"] = c.left_us;
        return d;
      },
      "Calls found contended, run on fewer threads since, and the microseconds of backoff left (sequence.cpp, Contention).");
  m.def("barrier_waits", [](int64_t work_us0, int64_t work_us1, int steps) {
        // Two threads, each busy work_us of its own per step, then the barrier (tests only).
        if (work_us0 < 0 || work_us1 < 0 || steps < 0)
          throw py::value_error("rnnkit._core.barrier_waits: work and steps must be >= 0");
        rnnkit::Barrier barrier(2);
        {
          py::gil_scoped_release nogil;
          rnnkit::parallel(2, [&](int k, int) {
            const auto work = std::chrono::microseconds(k == 0 ? work_us0 : work_us1);
            for (int s = 0; s < steps; ++s) {
              const auto t0 = std::chrono::steady_clock::now();
              while (std::chrono::steady_clock::now() - t0 < work) {
              }
              barrier.wait();
            }
          });
        }
        py::dict d;
        d["slept"] = barrier.slept(), d["slept_longer"] = barrier.slept_longer(), d["phases"] = barrier.phases();
        return d;
      }, py::arg("work_us0"), py::arg("work_us1"), py::arg("steps"),
      "Barrier waits of two threads working work_us0 and work_us1 per step (tests of Barrier).");
  m.def("profile", &rnnkit::set_profiling, py::arg("enable"),
        "Per-phase timers of the sequence drivers on/off (rnnkit/profile.h).");
  m.def("profile_reset", &rnnkit::profile_reset, "Zero the per-phase totals.");
  m.def("profile_read", [] {
    int64_t ns[static_cast<int>(rnnkit::Phase::kCount)];
    rnnkit::profile_read(ns);
    py::dict d;
    for (int i = 0; i < static_cast<int>(rnnkit::Phase::kCount); ++i) d[rnnkit::kPhaseNames[i]] = ns[i] * 1e-9;
    return d;
  }, "Thread-seconds per phase since the last reset.");
  m.def("set_blas_limit", &rnnkit::set_blas_limit,
        "Largest M or K of one BLAS call (tests only; <= 0 restores the 32-bit maximum).");
  m.def("activation", &activation_of<float>, py::arg("kind"), py::arg("x").noconvert(),
        "x <- exp (0), sigmoid (1) or tanh (2) of x, in place, as the kernels compute them.");
  m.def("activation", &activation_of<double>, py::arg("kind"), py::arg("x").noconvert(),
        "x <- exp (0), sigmoid (1) or tanh (2) of x, in place, as the kernels compute them.");
  m.def("forward", [](const py::args& a) { dispatch_calls<true>("forward", one_call(a)); },
        "Sequence forward (float32 or float64, the dtype of x); see rnnkit/kernels.h.");
  m.def("backward", [](const py::args& a) { dispatch_calls<false>("backward", one_call(a)); },
        "Sequence BPTT (float32 or float64, the dtype of x); see rnnkit/kernels.h.");
  m.def("threads_for", [](int cell, int64_t B, int64_t H, int threads) {
          if (cell < 0 || cell > 4) throw py::value_error("rnnkit._core.threads_for: cell must be 0 .. 4");
          if (cell == 4) cell = 3;  // the GRU with the reset gate before the product: the same work
          Problem p;
          p.cell = static_cast<Cell>(cell), p.G = rnnkit::gate_count(p.cell), p.B = B, p.H = p.S = H;
          p.threads = threads < 0 ? 0 : threads;
          return rnnkit::threads_for(p);
        }, py::arg("cell"), py::arg("B"), py::arg("H"), py::arg("threads") = 0,
        "Threads a call with this cell, batch and hidden size uses (small steps run on one), at most threads (0: the setting).");
  m.def("forward_group", [](const py::list& calls) { dispatch_calls<true>("forward_group", calls); },
        "Several independent forward calls (tuples of forward's arguments) run concurrently.");
  m.def("backward_group", [](const py::list& calls) { dispatch_calls<false>("backward_group", calls); },
        "Several independent backward calls (tuples of backward's arguments) run concurrently.");
}
