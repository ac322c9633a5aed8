// pybind11 module rnnkit._core: NumPy arrays in, Problem + pointers to the kernels, GIL released
// for the whole kernel call. User input is validated in rnnkit/_validate.py and every buffer is
// allocated by rnnkit/_cpp.py; here each buffer's dtype, layout and size is only re-checked (Args),
// so that a bug upstream raises instead of corrupting memory. Stubs: python/rnnkit/_core.pyi.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "rnnkit/blas.h"
#include "rnnkit/build_info.h"
#include "rnnkit/kernels.h"
#include "rnnkit/pointwise.h"
#include "rnnkit/threads.h"

namespace py = pybind11;
using rnnkit::Cell;
using rnnkit::Problem;

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
                     const py::object& perm, const py::object& batch_sizes, const py::object& offsets,
                     bool reverse, bool training, bool dense) {
  if (cell < 0 || cell > 3) c.fail("cell must be 0 (rnn_tanh), 1 (rnn_relu), 2 (lstm) or 3 (gru), got " + std::to_string(cell));
  Problem p;
  p.cell = static_cast<Cell>(cell);
  p.G = rnnkit::gate_count(p.cell);
  auto xa = py::reinterpret_borrow<py::array>(x), wa = py::reinterpret_borrow<py::array>(W_hh);
  if (!py::isinstance<py::array>(x) || xa.ndim() != 3) c.fail("x must be a 3-D array [T, B, I]");
  if (!py::isinstance<py::array>(W_hh) || wa.ndim() != 2) c.fail("W_hh must be a 2-D array [G*H, H]");
  p.T = xa.shape(0), p.B = xa.shape(1), p.I = xa.shape(2), p.H = wa.shape(1);
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

template <class F>
void forward(const Problem& p, const Args& c, py::object y, py::object h_n, py::object c_n,
             py::object xg, py::object xp, py::object h_prev, py::object c_prev, py::object hn,
             py::object x, py::object W_ih, py::object W_hh, py::object b_ih, py::object b_hh,
             py::object h0, py::object c0) {
  const int64_t T = p.T, B = p.B, I = p.I, H = p.H, GH = p.G * p.H, N = p.N();
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru, tr = p.training;
  rnnkit::ForwardArgs<F> a;
  a.y = c.get<F>(y, "y", {T, B, H}, true, true);
  a.h_n = c.get<F>(h_n, "h_n", {B, H}, true, true);
  a.c_n = c.get<F>(c_n, "c_n", {B, H}, lstm, true);
  a.xg = c.get<F>(xg, "xg", {N, GH}, true, true);
  a.xp = c.get<F>(xp, "xp", {N, I}, !p.dense, true);
  a.h_prev = c.get<F>(h_prev, "h_prev", {N, H}, tr, true);
  a.c_prev = c.get<F>(c_prev, "c_prev", {N, H}, tr && lstm, true);
  a.hn = c.get<F>(hn, "hn", {N, H}, tr && gru, true);
  a.x = c.get<F>(x, "x", {T, B, I}, true, false);
  a.W_ih = c.get<F>(W_ih, "W_ih", {GH, I}, true, false);
  a.W_hh = c.get<F>(W_hh, "W_hh", {GH, H}, true, false);
  a.b_ih = c.get<F>(b_ih, "b_ih", {GH}, !b_ih.is_none(), false);
  a.b_hh = c.get<F>(b_hh, "b_hh", {GH}, !b_hh.is_none(), false);
  a.h0 = c.get<F>(h0, "h0", {B, H}, true, false);
  a.c0 = c.get<F>(c0, "c0", {B, H}, lstm, false);
  py::gil_scoped_release nogil;
  rnnkit::sequence_forward<F>(p, a);
}

void forward_any(int cell, py::object y, py::object h_n, py::object c_n, py::object xg, py::object xp,
                 py::object h_prev, py::object c_prev, py::object hn, py::object x, py::object W_ih,
                 py::object W_hh, py::object b_ih, py::object b_hh, py::object h0, py::object c0,
                 py::object perm, py::object batch_sizes, py::object offsets, bool reverse,
                 bool training, bool dense) {
  const Args c("forward");
  const Problem p = make_problem(c, cell, x, W_hh, perm, batch_sizes, offsets, reverse, training, dense);
  if (py::array_t<double>::check_(x))
    forward<double>(p, c, y, h_n, c_n, xg, xp, h_prev, c_prev, hn, x, W_ih, W_hh, b_ih, b_hh, h0, c0);
  else
    forward<float>(p, c, y, h_n, c_n, xg, xp, h_prev, c_prev, hn, x, W_ih, W_hh, b_ih, b_hh, h0, c0);
}

template <class F>
void backward(const Problem& p, const Args& c, py::object dx, py::object dh0, py::object dc0,
              py::object dW_ih, py::object dW_hh, py::object db_ih, py::object db_hh, py::object dg,
              py::object dn, py::object x, py::object W_ih, py::object W_hh, py::object xg,
              py::object xp, py::object h_prev, py::object c_prev, py::object hn, py::object dy,
              py::object dh_n, py::object dc_n) {
  const int64_t T = p.T, B = p.B, I = p.I, H = p.H, GH = p.G * p.H, N = p.N();
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru;
  rnnkit::BackwardArgs<F> a;
  a.dx = c.get<F>(dx, "dx", {T, B, I}, true, true);
  a.dh0 = c.get<F>(dh0, "dh0", {B, H}, true, true);
  a.dc0 = c.get<F>(dc0, "dc0", {B, H}, lstm, true);
  a.dW_ih = c.get<F>(dW_ih, "dW_ih", {GH, I}, true, true);
  a.dW_hh = c.get<F>(dW_hh, "dW_hh", {GH, H}, true, true);
  a.db_ih = c.get<F>(db_ih, "db_ih", {GH}, true, true);
  a.db_hh = c.get<F>(db_hh, "db_hh", {GH}, true, true);
  a.dg = c.get<F>(dg, "dg", {N, GH}, true, true);
  a.dn = c.get<F>(dn, "dn", {N, H}, gru, true);
  a.x = c.get<F>(x, "x", {T, B, I}, true, false);
  a.W_ih = c.get<F>(W_ih, "W_ih", {GH, I}, true, false);
  a.W_hh = c.get<F>(W_hh, "W_hh", {GH, H}, true, false);
  a.xg = c.get<F>(xg, "xg", {N, GH}, true, false);
  a.xp = c.get<F>(xp, "xp", {N, I}, !p.dense, false);
  a.h_prev = c.get<F>(h_prev, "h_prev", {N, H}, true, false);
  a.c_prev = c.get<F>(c_prev, "c_prev", {N, H}, lstm, false);
  a.hn = c.get<F>(hn, "hn", {N, H}, gru, false);
  a.dy = c.get<F>(dy, "dy", {T, B, H}, true, false);
  a.dh_n = c.get<F>(dh_n, "dh_n", {B, H}, true, false);
  a.dc_n = c.get<F>(dc_n, "dc_n", {B, H}, lstm, false);
  py::gil_scoped_release nogil;
  rnnkit::sequence_backward<F>(p, a);
}

void backward_any(int cell, py::object dx, py::object dh0, py::object dc0, py::object dW_ih,
                  py::object dW_hh, py::object db_ih, py::object db_hh, py::object dg, py::object dn,
                  py::object x, py::object W_ih, py::object W_hh, py::object xg, py::object xp,
                  py::object h_prev, py::object c_prev, py::object hn, py::object dy, py::object dh_n,
                  py::object dc_n, py::object perm, py::object batch_sizes, py::object offsets,
                  bool reverse, bool dense) {
  const Args c("backward");
  const Problem p = make_problem(c, cell, x, W_hh, perm, batch_sizes, offsets, reverse, true, dense);
  if (py::array_t<double>::check_(x))
    backward<double>(p, c, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dg, dn, x, W_ih, W_hh, xg, xp,
                     h_prev, c_prev, hn, dy, dh_n, dc_n);
  else
    backward<float>(p, c, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dg, dn, x, W_ih, W_hh, xg, xp,
                    h_prev, c_prev, hn, dy, dh_n, dc_n);
}

// exp/sigmoid/tanh of the active ISA's pointwise table, in place (for the accuracy tests).
template <class T> void activation_of(int kind, py::array_t<T, py::array::c_style> x) {
  if (kind < 0 || kind > 2) throw py::value_error("rnnkit._core.activation: kind must be 0 (exp), 1 (sigmoid) or 2 (tanh)");
  if (!x.writeable()) throw py::value_error("rnnkit._core.activation: x must be writeable");
  rnnkit::pointwise<T>().activation(kind, x.mutable_data(), x.size());
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
  m.def("set_blas_limit", &rnnkit::set_blas_limit,
        "Largest M or K of one BLAS call (tests only; <= 0 restores the 32-bit maximum).");
  m.def("activation", &activation_of<float>, py::arg("kind"), py::arg("x").noconvert(),
        "x <- exp (0), sigmoid (1) or tanh (2) of x, in place, as the kernels compute them.");
  m.def("activation", &activation_of<double>, py::arg("kind"), py::arg("x").noconvert(),
        "x <- exp (0), sigmoid (1) or tanh (2) of x, in place, as the kernels compute them.");
  m.def("forward", &forward_any, "Sequence forward (float32 or float64, the dtype of x); see rnnkit/kernels.h.");
  m.def("backward", &backward_any, "Sequence BPTT (float32 or float64, the dtype of x); see rnnkit/kernels.h.");
}
