// cpp/cuda/host/harness.cpp: the CUDA backend's drivers (sequence.h) and per-element cell maths
// (cell.h) compiled for the host by g++, with plain loops where the device runs cuBLAS and kernels:
// a test-only shared library (ctypes, no CUDA, no pybind11) that tests/test_cuda_host.py builds and
// runs on NumPy buffers against the NumPy reference. The pointwise passes visit every (row, unit)
// index exactly as the kernels' threads do, so layout, indexing, gate order and maths are proven
// without a GPU; only the cuBLAS calls and the launches stay for a GPU run.
#include <cstring>
#include <exception>
#include <vector>

#include "../sequence.h"

namespace {

using namespace rnnkit::cuda;

// The one-block path (block.h) on the host: a phase's elements one after another, the barrier a
// no-op. Taken where the device would take it (shared memory limit: an H100's 227 KB) when
// g_block is set (rnnkit_cuda_host_set_block), so the test runs every case both ways.
int g_block = 0;
int g_block_calls = 0;  // calls that took it (the test checks the path it means to test is run)
constexpr int64_t kHostBlockBytes = 227 * 1024;

struct HostBlock {
  template <class F> void for_each(int n, F&& f) {
    for (int e = 0; e < n; ++e) f(e);
  }
  void sync() {}
};

template <class R, class A, class F> bool host_block(const A& a, F&& run) {
  if (!g_block || !block_path(a.dense, a.cell, a.T, a.B, a.H, sizeof(R), kHostBlockBytes)) return false;
  std::vector<R> smem(size_t(block_smem_elems(a.cell, a.B, a.H)));
  HostBlock blk;
  run(blk, smem.data());
  ++g_block_calls;
  return true;
}

struct HostOps {
  template <class R>
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const R* A, int64_t lda, const R* B, int64_t ldb,
            R beta, R* C, int64_t ldc) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        R acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += (ta ? A[k * lda + m] : A[m * lda + k]) * (tb ? B[n * ldb + k] : B[k * ldb + n]);
        C[m * ldc + n] = (beta == R(0) ? R(0) : beta * C[m * ldc + n]) + acc;
      }
  }
  template <class R> void gather(R* dst, const R* src, const int64_t* idx, int64_t n, int64_t w) {
    for (int64_t r = 0; r < n; ++r)
      if (w) std::memcpy(dst + r * w, src + row_of(idx, r) * w, sizeof(R) * w);
  }
  template <class R> void scatter(R* dst, const R* src, const int64_t* idx, int64_t n, int64_t w) {
    for (int64_t r = 0; r < n; ++r)
      if (w) std::memcpy(dst + row_of(idx, r) * w, src + r * w, sizeof(R) * w);
  }
  template <class R> void colsum(R* out, const R* m, int64_t n, int64_t w) {
    for (int64_t c = 0; c < w; ++c) {
      R s = 0;
      for (int64_t r = 0; r < n; ++r) s += m[r * w + c];
      out[c] = s;
    }
  }
  // Every (row, unit) of the step, as the kernel's threads (the order does not matter: each
  // element writes only its own locations, which is what this harness also checks by running them
  // in an order a GPU would not: units outer, rows inner).
  template <class R> void forward_step(int cell, const FwdStep<R>& s) {
    for (int64_t u = 0; u < s.H; ++u)
      for (int64_t i = 0; i < s.rows; ++i) switch (cell) {
          case kRnnTanh: forward_element<kRnnTanh>(s, i, u); break;
          case kRnnRelu: forward_element<kRnnRelu>(s, i, u); break;
          case kLstm: forward_element<kLstm>(s, i, u); break;
          default: forward_element<kGru>(s, i, u); break;
        }
  }
  template <class R> bool block_forward(const ForwardArgs<R>& a) {
    return host_block<R>(a, [&](HostBlock& blk, R* smem) {
      switch (a.cell) {
        case kRnnTanh: rnnkit::cuda::block_forward<kRnnTanh>(blk, a, smem); break;
        case kRnnRelu: rnnkit::cuda::block_forward<kRnnRelu>(blk, a, smem); break;
        case kLstm: rnnkit::cuda::block_forward<kLstm>(blk, a, smem); break;
        default: rnnkit::cuda::block_forward<kGru>(blk, a, smem); break;
      }
    });
  }
  template <class R> bool block_backward(const BackwardArgs<R>& a) {
    return host_block<R>(a, [&](HostBlock& blk, R* smem) {
      switch (a.cell) {
        case kRnnTanh: rnnkit::cuda::block_backward<kRnnTanh>(blk, a, smem); break;
        case kRnnRelu: rnnkit::cuda::block_backward<kRnnRelu>(blk, a, smem); break;
        case kLstm: rnnkit::cuda::block_backward<kLstm>(blk, a, smem); break;
        default: rnnkit::cuda::block_backward<kGru>(blk, a, smem); break;
      }
    });
  }
  template <class R> void backward_step(int cell, const BwdStep<R>& s) {
    for (int64_t u = 0; u < s.H; ++u)
      for (int64_t i = 0; i < s.rows; ++i) switch (cell) {
          case kRnnTanh: backward_element<kRnnTanh>(s, i, u); break;
          case kRnnRelu: backward_element<kRnnRelu>(s, i, u); break;
          case kLstm: backward_element<kLstm>(s, i, u); break;
          default: backward_element<kGru>(s, i, u); break;
        }
  }
};

template <class F> int guarded(char* err, int errlen, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), errlen > 0 ? errlen - 1 : 0);
    if (errlen > 0) err[errlen - 1] = 0;
    return 1;
  }
}

}  // namespace

extern "C" {

const char* rnnkit_cuda_forward_pointers() { return kForwardPointers; }
const char* rnnkit_cuda_backward_pointers() { return kBackwardPointers; }
const char* rnnkit_cuda_sizes() { return kSizes; }
// 1: small dense calls take the one-block path (block.h), as on a GPU; 0: the step loop.
void rnnkit_cuda_host_set_block(int on) { g_block = on; }
int rnnkit_cuda_host_block_calls() { return g_block_calls; }

// double_precision: 0 float32, 1 float64. Returns 0, or 1 with the message in err.
int rnnkit_cuda_host_forward(int double_precision, const uintptr_t* ptrs, const int64_t* sizes,
                             const int64_t* batch_sizes, const int64_t* offsets, char* err, int errlen) {
  return guarded(err, errlen, [&] {
    HostOps ops;
    if (double_precision) {
      auto a = forward_args<double>(ptrs, sizes, batch_sizes, offsets);
      check_args(a, true);
      forward_sequence(ops, a);
    } else {
      auto a = forward_args<float>(ptrs, sizes, batch_sizes, offsets);
      check_args(a, true);
      forward_sequence(ops, a);
    }
  });
}

int rnnkit_cuda_host_backward(int double_precision, const uintptr_t* ptrs, const int64_t* sizes,
                              const int64_t* batch_sizes, const int64_t* offsets, char* err, int errlen) {
  return guarded(err, errlen, [&] {
    HostOps ops;
    if (double_precision) {
      auto a = backward_args<double>(ptrs, sizes, batch_sizes, offsets);
      check_args(a, false);
      backward_sequence(ops, a);
    } else {
      auto a = backward_args<float>(ptrs, sizes, batch_sizes, offsets);
      check_args(a, false);
      backward_sequence(ops, a);
    }
  });
}
}
