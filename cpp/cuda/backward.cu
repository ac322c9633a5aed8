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

// The whole step loop of a small dense call in one block (block.h), W_hh in shared memory.
template <int Cell, class R> __global__ void block_backward_kernel(const BackwardArgs<R> a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  DeviceBlock blk;
  block_backward<Cell>(blk, a, reinterpret_cast<R*>(smem_raw));
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

template <class R> bool DeviceOps::block_backward(const BackwardArgs<R>& a) {
  if (!block_path_on(a.cell, a.dense, a.T, a.B, a.H, sizeof(R))) return false;
  const size_t bytes = size_t(block_smem_elems(a.cell, a.B, a.H)) * sizeof(R);
  const int threads = block_threads(a.cell, a.B, a.H);
  switch (a.cell) {
    case kRnnTanh: launch_block(block_backward_kernel<kRnnTanh, R>, threads, bytes, stream, a, "block_backward launch"); break;
    case kRnnRelu: launch_block(block_backward_kernel<kRnnRelu, R>, threads, bytes, stream, a, "block_backward launch"); break;
    case kLstm: launch_block(block_backward_kernel<kLstm, R>, threads, bytes, stream, a, "block_backward launch"); break;
    default: launch_block(block_backward_kernel<kGru, R>, threads, bytes, stream, a, "block_backward launch"); break;
  }
  return true;
}
template bool DeviceOps::block_backward<float>(const BackwardArgs<float>&);
template bool DeviceOps::block_backward<double>(const BackwardArgs<double>&);

void backward_device(bool double_precision, const uintptr_t* ptrs, const int64_t* sizes, const int64_t* batch_sizes,
                     const int64_t* offsets, uintptr_t stream) {
  if (double_precision)
    run<double>(ptrs, sizes, batch_sizes, offsets, stream);
  else
    run<float>(ptrs, sizes, batch_sizes, offsets, stream);
}

}  // namespace cuda
}  // namespace rnnkit
