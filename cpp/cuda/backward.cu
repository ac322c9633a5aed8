// cpp/cuda/backward.cu: BPTT on the GPU: the fused pointwise kernel of one step (each thread one
// (row, unit) of cell.h's backward_element) and the entry point that runs sequence.h's
// backward_sequence on DeviceOps. Twin of forward.cu. Host-checked by tests/test_cuda_host.py,
// compiled by .ci/cuda, run on a GPU by benchmarks/cuda_check.sh.
#include "api.h"
#include "device.cuh"

namespace rnnkit {
namespace cuda {
namespace {

template <int Cell, class R> __global__ void backward_kernel(const BwdStep<R> s) {
  const int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u >= s.H) return;
  for (int64_t i = int64_t(blockIdx.y) * blockDim.y + threadIdx.y; i < s.rows; i += int64_t(gridDim.y) * blockDim.y)
    backward_element<Cell>(s, i, u);
}

template <class R> void run(const uintptr_t* ptrs, const int64_t* sizes, const int64_t* bs, const int64_t* off,
                            uintptr_t stream) {
  BackwardArgs<R> a = backward_args<R>(ptrs, sizes, bs, off);
  check_args(a, false);
  DeviceOps ops;
  ops.blas = blas_handle();
  ops.stream = reinterpret_cast<cudaStream_t>(stream);
  backward_sequence(ops, a);
}

}  // namespace

template <class R> void DeviceOps::backward_step(int cell, const BwdStep<R>& s) {
  const dim3 grid = pointwise_grid(s.rows, s.H), block(kUnitsPerBlock, kRowsPerBlock);
  switch (cell) {
    case kRnnTanh: backward_kernel<kRnnTanh, R><<<grid, block, 0, stream>>>(s); break;
    case kRnnRelu: backward_kernel<kRnnRelu, R><<<grid, block, 0, stream>>>(s); break;
    case kLstm: backward_kernel<kLstm, R><<<grid, block, 0, stream>>>(s); break;
    default: backward_kernel<kGru, R><<<grid, block, 0, stream>>>(s); break;
  }
  check(cudaGetLastError(), "backward pointwise launch");
}
template void DeviceOps::backward_step<float>(int, const BwdStep<float>&);
template void DeviceOps::backward_step<double>(int, const BwdStep<double>&);

void backward_device(bool double_precision, const uintptr_t* ptrs, const int64_t* sizes, const int64_t* batch_sizes,
                     const int64_t* offsets, uintptr_t stream) {
  if (double_precision)
    run<double>(ptrs, sizes, batch_sizes, offsets, stream);
  else
    run<float>(ptrs, sizes, batch_sizes, offsets, stream);
}

}  // namespace cuda
}  // namespace rnnkit
