// pybind11 module rnnkit._core: checked NumPy arrays in, Problem + pointers to the kernels, GIL
// released for the whole kernel call. No shape logic here: rnnkit/_validate.py and rnnkit/_cpp.py
// check and allocate everything. Stubs: python/rnnkit/_core.pyi.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "rnnkit/blas.h"
#include "rnnkit/build_info.h"
#include "rnnkit/kernels.h"
#include "rnnkit/pointwise.h"
#include "rnnkit/threads.h"

namespace py = pybind11;
using rnnkit::Cell;
using rnnkit::Problem;

namespace {

template <class T> using Arr = py::array_t<T, py::array::c_style>;
template <class T> using OptArr = std::optional<Arr<T>>;
using Idx = py::array_t<int64_t, py::array::c_style>;

template <class T> T* ptr(OptArr<T>& a) { return a ? a->mutable_data() : nullptr; }
template <class T> const T* cptr(const OptArr<T>& a) { return a ? a->data() : nullptr; }

Problem make_problem(int cell, int64_t T_, int64_t B, int64_t I, int64_t H, const Idx& perm,
                     const Idx& batch_sizes, const Idx& offsets, bool reverse, bool training, bool dense) {
  Problem p;
  p.cell = static_cast<Cell>(cell);
  p.G = rnnkit::gate_count(p.cell);
  p.T = T_, p.B = B, p.I = I, p.H = H;
  p.reverse = reverse, p.training = training, p.dense = dense;
  p.perm = perm.data(), p.batch_sizes = batch_sizes.data(), p.offsets = offsets.data();
  return p;
}

template <class T>
void forward(int cell, Arr<T> y, Arr<T> h_n, OptArr<T> c_n, Arr<T> xg, OptArr<T> xp, OptArr<T> h_prev,
             OptArr<T> c_prev, OptArr<T> hn, Arr<T> x, Arr<T> W_ih, Arr<T> W_hh, OptArr<T> b_ih,
             OptArr<T> b_hh, Arr<T> h0, OptArr<T> c0, Idx perm, Idx batch_sizes, Idx offsets,
             bool reverse, bool training, bool dense) {
  Problem p = make_problem(cell, x.shape(0), x.shape(1), x.shape(2), W_hh.shape(1), perm,
                           batch_sizes, offsets, reverse, training, dense);
  rnnkit::ForwardArgs<T> a;
  a.y = y.mutable_data(), a.h_n = h_n.mutable_data(), a.c_n = ptr(c_n);
  a.xg = xg.mutable_data(), a.xp = ptr(xp), a.h_prev = ptr(h_prev), a.c_prev = ptr(c_prev), a.hn = ptr(hn);
  a.x = x.data(), a.W_ih = W_ih.data(), a.W_hh = W_hh.data(), a.b_ih = cptr(b_ih), a.b_hh = cptr(b_hh);
  a.h0 = h0.data(), a.c0 = cptr(c0);
  py::gil_scoped_release nogil;
  rnnkit::sequence_forward<T>(p, a);
}

template <class T>
void backward(int cell, Arr<T> dx, Arr<T> dh0, OptArr<T> dc0, Arr<T> dW_ih, Arr<T> dW_hh, Arr<T> db_ih,
              Arr<T> db_hh, Arr<T> dg, OptArr<T> dn, Arr<T> x, Arr<T> W_ih, Arr<T> W_hh, Arr<T> xg,
              OptArr<T> xp, Arr<T> h_prev, OptArr<T> c_prev, OptArr<T> hn, Arr<T> dy, Arr<T> dh_n,
              OptArr<T> dc_n, Idx perm, Idx batch_sizes, Idx offsets, bool reverse, bool dense) {
  Problem p = make_problem(cell, x.shape(0), x.shape(1), x.shape(2), W_hh.shape(1), perm,
                           batch_sizes, offsets, reverse, true, dense);
  rnnkit::BackwardArgs<T> a;
  a.dx = dx.mutable_data(), a.dh0 = dh0.mutable_data(), a.dc0 = ptr(dc0);
  a.dW_ih = dW_ih.mutable_data(), a.dW_hh = dW_hh.mutable_data();
  a.db_ih = db_ih.mutable_data(), a.db_hh = db_hh.mutable_data();
  a.dg = dg.mutable_data(), a.dn = ptr(dn);
  a.x = x.data(), a.W_ih = W_ih.data(), a.W_hh = W_hh.data(), a.xg = xg.data(), a.xp = cptr(xp);
  a.h_prev = h_prev.data(), a.c_prev = cptr(c_prev), a.hn = cptr(hn);
  a.dy = dy.data(), a.dh_n = dh_n.data(), a.dc_n = cptr(dc_n);
  py::gil_scoped_release nogil;
  rnnkit::sequence_backward<T>(p, a);
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
  m.def("forward", &forward<float>, "Sequence forward (float32); see rnnkit/kernels.h.");
  m.def("forward", &forward<double>, "Sequence forward (float64); see rnnkit/kernels.h.");
  m.def("backward", &backward<float>, "Sequence BPTT (float32); see rnnkit/kernels.h.");
  m.def("backward", &backward<double>, "Sequence BPTT (float64); see rnnkit/kernels.h.");
}
