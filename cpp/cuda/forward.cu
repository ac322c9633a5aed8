// cpp/cuda/forward.cu: the forward pass on the GPU: the fused pointwise kernel of one step (each
// thread one (row, unit) of cell.h's forward_element) and the entry point that runs sequence.h's
// forward_sequence on DeviceOps. Twin of backward.cu. Host-checked by tests/test_cuda_host.py,
// compiled by .ci/cuda, run on a GPU by benchmarks/cuda_check.sh.
#include "api.h"
#include "device.cuh"

namespace rnnkit {
namespace cuda {
namespace {

template <int Cell, class R> __global__ void forward_kernel(const FwdStep<R> s) {
  const int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u >= s.H) return;
  for (int64_t i = int64_t(blockIdx.y) * blockDim.y + threadIdx.y; i < s.rows; i += int64_t(gridDim.y) * blockDim.y)
    forward_element<Cell>(s, i, u);
}

// The whole step loop of a small dense call in one block (block.h), W_hh in shared memory.
template <int Cell, class R> __global__ void block_forward_kernel(const ForwardArgs<R> a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  DeviceBlock blk;
  block_forward<Cell>(blk, a, reinterpret_cast<R*>(smem_raw));
}

template <class R> void run(const uintptr_t* ptrs, const int64_t* sizes, const int64_t* bs, const int64_t* off,
                            uintptr_t stream) {
  ForwardArgs<R> a = forward_args<R>(ptrs, sizes, bs, off);
  check_args(a, true);
  DeviceOps ops;
  ops.blas = blas_handle();
  ops.stream = reinterpret_cast<cudaStream_t>(stream);
  forward_sequence(ops, a);
}

}  // namespace

template <class R> void DeviceOps::forward_step(int cell, const FwdStep<R>& s) {
  const dim3 grid = pointwise_grid(s.rows, s.H), block(kUnitsPerBlock, kRowsPerBlock);
  switch (cell) {
    case kRnnTanh: forward_kernel<kRnnTanh, R><<<grid, block, 0, stream>>>(s); break;
    case kRnnRelu: forward_kernel<kRnnRelu, R><<<grid, block, 0, stream>>>(s); break;
    case kLstm: forward_kernel<kLstm, R><<<grid, block, 0, stream>>>(s); break;
    default: forward_kernel<kGru, R><<<grid, block, 0, stream>>>(s); break;
  }
  check(cudaGetLastError(), "forward pointwise launch");
}
template void DeviceOps::forward_step<float>(int, const FwdStep<float>&);
template void DeviceOps::forward_step<double>(int, const FwdStep<double>&);

template <class R> bool DeviceOps::block_forward(const ForwardArgs<R>& a) {
  if (!block_path_on(a.cell, a.dense, a.T, a.B, a.H, sizeof(R))) return false;
  const size_t bytes = size_t(block_smem_elems(a.cell, a.B, a.H)) * sizeof(R);
  const int threads = block_threads(a.cell, a.B, a.H);
  switch (a.cell) {
    case kRnnTanh: launch_block(block_forward_kernel<kRnnTanh, R>, threads, bytes, stream, a, "block_forward launch"); break;
    case kRnnRelu: launch_block(block_forward_kernel<kRnnRelu, R>, threads, bytes, stream, a, "block_forward launch"); break;
    case kLstm: launch_block(block_forward_kernel<kLstm, R>, threads, bytes, stream, a, "block_forward launch"); break;
    default: launch_block(block_forward_kernel<kGru, R>, threads, bytes, stream, a, "block_forward launch"); break;
  }
  return true;
}
template bool DeviceOps::block_forward<float>(const ForwardArgs<float>&);
template bool DeviceOps::block_forward<double>(const ForwardArgs<double>&);

void forward_device(bool double_precision, const uintptr_t* ptrs, const int64_t* sizes, const int64_t* batch_sizes,
                    const int64_t* offsets, uintptr_t stream) {
  if (double_precision)
    run<double>(ptrs, sizes, batch_sizes, offsets, stream);
  else
    run<float>(ptrs, sizes, batch_sizes, offsets, stream);
}

int device_count(const char** error) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  *error = e == cudaSuccess ? "" : cudaGetErrorString(e);
  return e == cudaSuccess ? n : 0;
}

}  // namespace cuda
}  // namespace rnnkit
