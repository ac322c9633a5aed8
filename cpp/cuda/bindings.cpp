// cpp/cuda/bindings.cpp: pybind11 module rnnkit._cuda_core: raw device addresses + sizes + a stream
// handle -> the entry points of api.h, GIL released for the call. No shape logic here: the Python
// side (rnnkit/_cuda.py) validated the problem and allocated every buffer with the caller's array
// library; this checks only that the lists have the lengths the kernels read.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "api.h"
#include "sequence.h"

namespace py = pybind11;
using Index = py::array_t<int64_t, py::array::c_style>;
using Entry = void (*)(bool, const uintptr_t*, const int64_t*, const int64_t*, const int64_t*, uintptr_t);

namespace {

void call(Entry entry, const char* names, bool f64, const std::vector<uintptr_t>& ptrs, const Index& sizes,
          const Index& batch_sizes, const Index& offsets, uintptr_t stream) {
  using rnnkit::cuda::count_names;
  if (int(ptrs.size()) != count_names(names))
    throw std::invalid_argument("expected " + std::to_string(count_names(names)) + " addresses (" + names + ")");
  if (sizes.size() != count_names(rnnkit::cuda::kSizes))
    throw std::invalid_argument(std::string("expected sizes ") + rnnkit::cuda::kSizes);
  const int64_t T = sizes.data()[1];
  if (batch_sizes.size() != T || offsets.size() != T + 1)
    throw std::invalid_argument("batch_sizes must have T entries and offsets T+1");
  py::gil_scoped_release release;
  entry(f64, ptrs.data(), sizes.data(), batch_sizes.data(), offsets.data(), stream);
}

}  // namespace

PYBIND11_MODULE(_cuda_core, m) {
  m.doc() = "rnnkit's CUDA kernels (private; use rnnkit.functional with backend='cuda')";
  m.attr("FORWARD_POINTERS") = rnnkit::cuda::kForwardPointers;
  m.attr("BACKWARD_POINTERS") = rnnkit::cuda::kBackwardPointers;
  m.attr("SIZES") = rnnkit::cuda::kSizes;
  m.def(
      "forward",
      [](bool f64, const std::vector<uintptr_t>& ptrs, const Index& sizes, const Index& bs, const Index& off,
         uintptr_t stream) { call(rnnkit::cuda::forward_device, rnnkit::cuda::kForwardPointers, f64, ptrs, sizes, bs, off, stream); },
      "Queue one forward call of a sequence on `stream` (addresses in FORWARD_POINTERS order).");
  m.def(
      "backward",
      [](bool f64, const std::vector<uintptr_t>& ptrs, const Index& sizes, const Index& bs, const Index& off,
         uintptr_t stream) { call(rnnkit::cuda::backward_device, rnnkit::cuda::kBackwardPointers, f64, ptrs, sizes, bs, off, stream); },
      "Queue one backward call of a sequence on `stream` (addresses in BACKWARD_POINTERS order).");
  m.def(
      "device_count",
      [] {
        const char* error = "";
        const int n = rnnkit::cuda::device_count(&error);
        return py::make_tuple(n, std::string(error));
      },
      "(number of CUDA devices, '' or the driver's error), never raising.");
  m.def("set_block_path", [](bool on) { rnnkit::cuda::set_block_path(on); },
        "Whether small dense calls run their step loop in one thread block (default True; False: one GEMM "
        "and one pointwise launch per step, for tests and benchmarks).");
  m.def("build_info", [] { return std::string(rnnkit::cuda::build_info()); }, "Architectures and the cuBLAS used.");
}
