// cpp/cuda/device.cuh: the device executor of the drivers in sequence.h (DeviceOps): cuBLAS GEMMs
// (row-major in, column-major cuBLAS underneath), the row gather/scatter of the packed layout, the
// fixed-order column sums of the bias gradients, and the launch of the pointwise kernels
// (forward_step in forward.cu, backward_step in backward.cu). Compiled by .ci/cuda (nvcc, warnings as
// errors); the same drivers run on the host in tests/test_cuda_host.py.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sequence.h"

namespace rnnkit {
namespace cuda {

// Throw std::runtime_error naming the call when a CUDA or cuBLAS call failed (device.cu).
void check(cudaError_t e, const char* what);
void check(cublasStatus_t s, const char* what);
// This thread's cuBLAS handle for the current device (created once; host pointer mode, default
// math: no TF32 for float32, which would need an explicit opt-in).
cublasHandle_t blas_handle();

struct DeviceOps {
  cublasHandle_t blas = nullptr;
  cudaStream_t stream = nullptr;

  template <class R>
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const R* A, int64_t lda, const R* B, int64_t ldb,
            R beta, R* C, int64_t ldc);
  template <class R> void gather(R* dst, const R* src, const int64_t* idx, int64_t n, int64_t w);
  template <class R> void scatter(R* dst, const R* src, const int64_t* idx, int64_t n, int64_t w);
  template <class R> void colsum(R* out, const R* m, int64_t n, int64_t w);
  template <class R> void forward_step(int cell, const FwdStep<R>& s);   // forward.cu
  template <class R> void backward_step(int cell, const BwdStep<R>& s);  // backward.cu
};

// The launch shape of the pointwise kernels: units along x (coalesced), rows along y, a grid-stride
// loop over rows beyond the grid's y limit.
constexpr int kUnitsPerBlock = 32, kRowsPerBlock = 8;
inline dim3 pointwise_grid(int64_t rows, int64_t H) {
  const int64_t gx = (H + kUnitsPerBlock - 1) / kUnitsPerBlock, gy = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return dim3(unsigned(gx), unsigned(gy < 65535 ? gy : 65535));
}

}  // namespace cuda
}  // namespace rnnkit
