// cpp/cuda/api.h: the entry points of the CUDA backend that the binding (bindings.cpp) calls: one
// forward and one backward call of a whole sequence on `stream`, with the arguments as addresses in
// the order of sequence.h's kForwardPointers / kBackwardPointers and sizes in kSizes' order; the plan
// (batch_sizes [T], offsets [T+1]) in host memory. They return once every launch is queued (the
// work runs asynchronously on the stream); errors throw std::runtime_error / std::invalid_argument.
#pragma once
#include <cstdint>

namespace rnnkit {
namespace cuda {

void forward_device(bool double_precision, const uintptr_t* ptrs, const int64_t* sizes, const int64_t* batch_sizes,
                    const int64_t* offsets, uintptr_t stream);
void backward_device(bool double_precision, const uintptr_t* ptrs, const int64_t* sizes, const int64_t* batch_sizes,
                     const int64_t* offsets, uintptr_t stream);
// (device count, "" or the driver's error) without raising: how rnnkit/_cuda.py says why not.
int device_count(const char** error);
// Whether small dense calls run their step loop in one thread block (block.h; default on).
void set_block_path(bool on);
// What the build used: the architectures and where cuBLAS came from (CMake fills it in).
const char* build_info();

}  // namespace cuda
}  // namespace rnnkit
