// cpp/cuda/device.cuh: the device executor of the drivers in sequence.h (DeviceOps): cuBLAS GEMMs
// (row-major in, column-major cuBLAS underneath), the row gather/scatter of the packed layout, the
// fixed-order column sums of the bias gradients, and the launch of the pointwise kernels
// (forward_step in forward.cu, backward_step in backward.cu). Compiled by .ci/cuda (nvcc, warnings as
// errors); the same drivers run on the host in tests/test_cuda_host.py.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "api.h"
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
  template <class R> bool block_forward(const ForwardArgs<R>& a);        // forward.cu
  template <class R> bool block_backward(const BackwardArgs<R>& a);      // backward.cu
};

// The one-block path (block.h): whether a call of this element size takes it on the current
// device (its opt-in shared memory per block; off after set_block_path(false)), the threads of its
// block, and the device executor of block.h's phases.
bool block_path_on(int cell, bool dense, int64_t T, int64_t B, int64_t H, int64_t elem_size);
inline int block_threads(int cell, int64_t B, int64_t H) {
  const int64_t GH = gate_count(cell) * H, wide = kBlockSplit * GH > B * H ? kBlockSplit * GH : B * H;
  const int64_t t = (wide + 31) / 32 * 32;
  return int(t < 64 ? 64 : t > 1024 ? 1024 : t);
}
struct DeviceBlock {
  template <class F> __host__ __device__ void for_each(int n, F&& f) {
#ifdef __CUDA_ARCH__
    for (int e = int(threadIdx.x); e < n; e += int(blockDim.x)) f(e);
#endif
  }
  __host__ __device__ void sync() {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
};
// Launch kernel<<<1, threads, bytes of dynamic shared memory, stream>>>(args), with no more threads
// than the kernel's registers allow in one block (its maxThreadsPerBlock: the backward kernel needs
// more than 64 registers a thread, so 1024 threads failed on an H200 with "too many resources
// requested for launch"); block.h's phases stride over whatever threads there are.
template <class Kernel, class Args>
void launch_block(Kernel kernel, int threads, size_t bytes, cudaStream_t stream, const Args& args, const char* what) {
  cudaFuncAttributes attr;
  check(cudaFuncGetAttributes(&attr, kernel), what);
  if (threads > attr.maxThreadsPerBlock) threads = attr.maxThreadsPerBlock / 32 * 32;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), what);
  kernel<<<1, threads, bytes, stream>>>(args);
  check(cudaGetLastError(), what);
}

// The launch shape of the pointwise kernels: units along x (coalesced), rows along y, a grid-stride
// loop over rows beyond the grid's y limit.
constexpr int kUnitsPerBlock = 32, kRowsPerBlock = 8;
inline dim3 pointwise_grid(int64_t rows, int64_t H) {
  const int64_t gx = (H + kUnitsPerBlock - 1) / kUnitsPerBlock, gy = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return dim3(unsigned(gx), unsigned(gy < 65535 ? gy : 65535));
}

}  // namespace cuda
}  // namespace rnnkit
