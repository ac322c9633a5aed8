// cpp/cuda/sequence.h: the sequence drivers of the CUDA backend, forward and BPTT, written once over an
// `Ops` executor: the device one (device_ops.cuh: cuBLAS GEMMs and the pointwise kernels of
// forward.cu / backward.cu) and the host harness's (host/harness.cpp: loops over the same per-element
// functions of cell.h), so tests/test_cuda_host.py runs this exact schedule on the CPU.
//
// The schedule (haste's): the input projection of all steps as one GEMM; per step one GEMM
// h_{t-1} W_hh^T and ONE fused pointwise kernel; backward per step one fused pointwise kernel and one
// GEMM for dL/dh_{t-1}; dx, dW_ih, dW_hh as three large GEMMs over all steps and the biases as
// column sums at the end. No atomics: every reduction has a fixed order (bitwise identical runs).
//
// Variable lengths as on the CPU (python/rnnkit/_plan.py, rnnkit/problem.h): the batch is sorted by
// length once; at time t the running sequences are the first batch_sizes[t] rows of that order, in
// both directions, and per-step data is packed at rows offsets[t] .. offsets[t] + batch_sizes[t] of
// an [N, ...] array (N = the sum of the lengths), so the work is proportional to N. The state lives
// in sorted order in hs/cs; rows past a step's batch size are not touched, so a finished (or, in
// reverse, a not yet started) sequence keeps its state, and in backward its gradient passes through.
//
// Ops (all matrices row-major, element (r, c) of M at M[r * ld + c]):
//   gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)  C[M,N] = op(A) op(B) + beta C, op(X) = X^T if t
//                                 (K = 0: C = beta C, so zeros with beta = 0; M or N = 0: nothing)
//   gather(dst, src, idx, n, w)   dst[r, :] = src[idx[r], :] for r < n (rows of w)
//   scatter(dst, src, idx, n, w)  dst[idx[r], :] = src[r, :]
//   colsum(out, m, n, w)          out[c] = sum over r < n of m[r, c] (fixed order), overwritten
//   forward_step(cell, FwdStep), backward_step(cell, BwdStep): the pointwise pass over rows x H
//   block_forward(args), block_backward(args): the whole step loop of a small dense call in one
//                                 thread block (block.h), or false (not taken: the loop runs here)
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "block.h"
#include "cell.h"

namespace rnnkit {
namespace cuda {

// The pointer arguments of one forward call, in the order of kForwardPointers (the binding fills
// them from a list of addresses; the Python adapter builds that list by these names). Device
// memory (host memory in the harness) unless noted; sizes in brackets; N = offsets[T].
template <class R> struct ForwardArgs {
  R* y = nullptr;       // [T, B, H] out (rows past a sequence's length are not written: zero them)
  R* h_n = nullptr;     // [B, H] out
  R* c_n = nullptr;     // [B, H] LSTM out; else null
  R* xg = nullptr;      // [N, G*H] input projection (workspace); training: the activated gates (cache)
  R* xp = nullptr;      // [N, I] packed x (lengths only; cache in training); null when dense
  R* h_prev = nullptr;  // [N, H] training cache: h entering each step; null in inference
  R* c_prev = nullptr;  // [N, H] LSTM training cache: c entering each step
  R* hn = nullptr;      // [N, H] GRU training cache: W_hn h + b_hn
  R* hs = nullptr;      // [B, H] workspace: the state in sorted order
  R* cs = nullptr;      // [B, H] LSTM workspace: the cell state in sorted order
  R* acc = nullptr;     // [B, G*H] workspace: h_{t-1} W_hh^T of a step
  const R* x = nullptr;     // [T, B, I]
  const R* W_ih = nullptr;  // [G*H, I]
  const R* W_hh = nullptr;  // [G*H, H]
  const R* b_ih = nullptr;  // [G*H] (zeros when the call has none)
  const R* b_hh = nullptr;  // [G*H]
  const R* h0 = nullptr;    // [B, H]
  const R* c0 = nullptr;    // [B, H] LSTM
  const int64_t* perm = nullptr;  // [B] sorted row i is batch entry perm[i] (null when dense: identity)
  const int64_t* src = nullptr;   // [N] packed row n comes from row src[n] of [T*B, ...]; null when dense
  // sizes and the plan (host memory)
  int cell = kRnnTanh;
  int64_t T = 0, B = 0, I = 0, H = 0;
  bool reverse = false, training = false, dense = true;
  const int64_t* batch_sizes = nullptr;  // [T] host
  const int64_t* offsets = nullptr;      // [T+1] host
};
constexpr const char* kForwardPointers =
    "y,h_n,c_n,xg,xp,h_prev,c_prev,hn,hs,cs,acc,x,W_ih,W_hh,b_ih,b_hh,h0,c0,perm,src";

template <class R> struct BackwardArgs {
  R* dx = nullptr;      // [T, B, I] out (overwritten; rows past a sequence's length are not written)
  R* dh0 = nullptr;     // [B, H] out
  R* dc0 = nullptr;     // [B, H] LSTM out
  R* dW_ih = nullptr;   // [G*H, I] out, overwritten
  R* dW_hh = nullptr;   // [G*H, H] out, overwritten
  R* db_ih = nullptr;   // [G*H] out, overwritten
  R* db_hh = nullptr;   // [G*H] out, overwritten
  R* dgh = nullptr;     // [N, G*H] workspace: gradient of the recurrent pre-activations
  R* dgi = nullptr;     // [N, G*H] GRU workspace: of the input pre-activations; else null
  R* dxp = nullptr;     // [N, I] workspace (lengths only): packed dx; null when dense
  R* dhs = nullptr;     // [B, H] workspace: dL/dh in sorted order
  R* dcs = nullptr;     // [B, H] LSTM workspace: dL/dc in sorted order
  const R* x = nullptr;       // [T, B, I] (read when dense)
  const R* xp = nullptr;      // [N, I] the forward's packed x (lengths only)
  const R* W_ih = nullptr;    // [G*H, I]
  const R* W_hh = nullptr;    // [G*H, H]
  const R* xg = nullptr;      // [N, G*H] the forward's cache of activated gates
  const R* h_prev = nullptr;  // [N, H]
  const R* c_prev = nullptr;  // [N, H] LSTM
  const R* hn = nullptr;      // [N, H] GRU
  const R* dy = nullptr;      // [T, B, H]
  const R* dh_n = nullptr;    // [B, H]
  const R* dc_n = nullptr;    // [B, H] LSTM
  const int64_t* perm = nullptr;
  const int64_t* src = nullptr;
  int cell = kRnnTanh;
  int64_t T = 0, B = 0, I = 0, H = 0;
  bool reverse = false, training = true, dense = true;
  const int64_t* batch_sizes = nullptr;
  const int64_t* offsets = nullptr;
};
constexpr const char* kBackwardPointers =
    "dx,dh0,dc0,dW_ih,dW_hh,db_ih,db_hh,dgh,dgi,dxp,dhs,dcs,x,xp,W_ih,W_hh,xg,h_prev,c_prev,hn,dy,dh_n,dc_n,perm,src";
// The sizes, in order, of both calls.
constexpr const char* kSizes = "cell,T,B,I,H,reverse,training,dense";

inline int count_names(const char* s) {
  int n = 1;
  for (; *s; ++s) n += *s == ',';
  return n;
}

// Fill args from the addresses p[0 .. count_names(kForwardPointers)) and sizes z[0 .. 8).
template <class R>
ForwardArgs<R> forward_args(const uintptr_t* p, const int64_t* z, const int64_t* batch_sizes, const int64_t* offsets) {
  ForwardArgs<R> a;
  int k = 0;
  auto m = [&](auto& field) { field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(p[k++]); };
  m(a.y), m(a.h_n), m(a.c_n), m(a.xg), m(a.xp), m(a.h_prev), m(a.c_prev), m(a.hn), m(a.hs), m(a.cs), m(a.acc);
  m(a.x), m(a.W_ih), m(a.W_hh), m(a.b_ih), m(a.b_hh), m(a.h0), m(a.c0), m(a.perm), m(a.src);
  if (k != count_names(kForwardPointers)) throw std::logic_error("forward_args: kForwardPointers out of step");
  a.cell = int(z[0]), a.T = z[1], a.B = z[2], a.I = z[3], a.H = z[4];
  a.reverse = z[5] != 0, a.training = z[6] != 0, a.dense = z[7] != 0;
  a.batch_sizes = batch_sizes, a.offsets = offsets;
  return a;
}

template <class R>
BackwardArgs<R> backward_args(const uintptr_t* p, const int64_t* z, const int64_t* batch_sizes, const int64_t* offsets) {
  BackwardArgs<R> a;
  int k = 0;
  auto m = [&](auto& field) { field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(p[k++]); };
  m(a.dx), m(a.dh0), m(a.dc0), m(a.dW_ih), m(a.dW_hh), m(a.db_ih), m(a.db_hh), m(a.dgh), m(a.dgi), m(a.dxp);
  m(a.dhs), m(a.dcs), m(a.x), m(a.xp), m(a.W_ih), m(a.W_hh), m(a.xg), m(a.h_prev), m(a.c_prev), m(a.hn);
  m(a.dy), m(a.dh_n), m(a.dc_n), m(a.perm), m(a.src);
  if (k != count_names(kBackwardPointers)) throw std::logic_error("backward_args: kBackwardPointers out of step");
  a.cell = int(z[0]), a.T = z[1], a.B = z[2], a.I = z[3], a.H = z[4];
  a.reverse = z[5] != 0, a.training = z[6] != 0, a.dense = z[7] != 0;
  a.batch_sizes = batch_sizes, a.offsets = offsets;
  return a;
}

// The checks a binding owes the kernels (the Python side validated the problem; this catches an
// adapter slip before a kernel reads a null pointer).
template <class A> void check_args(const A& a, bool forward) {
  auto need = [](bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("rnnkit CUDA call: ") + what);
  };
  need(a.cell >= kRnnTanh && a.cell <= kGru, "unknown cell id");
  need(a.T >= 0 && a.B >= 0 && a.I >= 0 && a.H >= 1, "bad sizes");
  // An empty array has no address (CuPy allocates nothing for it): a pointer is needed only where
  // its array has elements (B = 0, I = 0 and all-zero lengths are valid calls).
  need(a.offsets && (a.T == 0 || a.batch_sizes) && (a.B == 0 || a.dense || a.perm), "missing plan");
  const int64_t N = a.B ? a.offsets[a.T] : 0;
  need(a.dense || N == 0 || a.src, "lengths without the packed row index src");
  need((a.I == 0 || a.W_ih) && a.W_hh, "missing weights");
  if (forward) need(!a.training || N == 0 || a.xg, "missing cache");
}

template <class R, class Ops> void forward_sequence(Ops& ops, const ForwardArgs<R>& a) {
  const int64_t T = a.T, B = a.B, I = a.I, H = a.H, G = gate_count(a.cell), GH = G * H;
  const int64_t N = a.offsets[T];
  const bool lstm = a.cell == kLstm, gru = a.cell == kGru;
  if (B == 0) return;
  if (N > 0) {
    const R* xp = a.x;
    if (!a.dense) {
      ops.gather(a.xp, a.x, a.src, N, I);
      xp = a.xp;
    }
    ops.gemm(false, true, N, GH, I, xp, I, a.W_ih, I, R(0), a.xg, GH);  // x W_ih^T, every step at once
  }
  // Small and dense: the whole loop in one launch, from h0/c0 to h_n/c_n (no sorted copies).
  if (ops.block_forward(a)) return;
  ops.gather(a.hs, a.h0, a.perm, B, H);  // the state in sorted order
  if (lstm) ops.gather(a.cs, a.c0, a.perm, B, H);
  for (int64_t k = 0; k < T; ++k) {
    const int64_t t = a.reverse ? T - 1 - k : k, rows = a.batch_sizes[t], off = a.offsets[t];
    if (rows == 0) continue;
    ops.gemm(false, true, rows, GH, H, a.hs, H, a.W_hh, H, R(0), a.acc, GH);  // h_{t-1} W_hh^T
    FwdStep<R> s;
    s.rows = rows, s.H = H;
    s.xg = a.xg + off * GH, s.acc = a.acc, s.b_ih = a.b_ih, s.b_hh = a.b_hh;
    s.h = a.hs, s.c = lstm ? a.cs : nullptr, s.y = a.y + t * B * H, s.perm = a.perm;
    if (a.training) {
      s.h_prev = a.h_prev + off * H;
      s.c_prev = lstm ? a.c_prev + off * H : nullptr;
      s.hn = gru ? a.hn + off * H : nullptr;
    }
    ops.forward_step(a.cell, s);
  }
  ops.scatter(a.h_n, a.hs, a.perm, B, H);  // the state after each sequence's last step
  if (lstm) ops.scatter(a.c_n, a.cs, a.perm, B, H);
}

template <class R, class Ops> void backward_sequence(Ops& ops, const BackwardArgs<R>& a) {
  const int64_t T = a.T, B = a.B, I = a.I, H = a.H, G = gate_count(a.cell), GH = G * H;
  const int64_t N = B ? a.offsets[T] : 0;
  const bool lstm = a.cell == kLstm, gru = a.cell == kGru;
  R* dgi = gru ? a.dgi : a.dgh;  // the input side differs from the recurrent one in the GRU only
  // Small and dense: the whole loop in one launch, from dh_n/dc_n to dh0/dc0 (no sorted copies).
  const bool in_block = B > 0 && ops.block_backward(a);
  if (B > 0 && !in_block) {
    ops.gather(a.dhs, a.dh_n, a.perm, B, H);
    if (lstm) ops.gather(a.dcs, a.dc_n, a.perm, B, H);
  }
  for (int64_t k = 0; k < T && B > 0 && !in_block; ++k) {
    const int64_t t = a.reverse ? k : T - 1 - k, rows = a.batch_sizes[t], off = a.offsets[t];
    if (rows == 0) continue;
    BwdStep<R> s;
    s.rows = rows, s.H = H;
    s.xg = a.xg + off * GH, s.h_prev = a.h_prev + off * H;
    s.c_prev = lstm ? a.c_prev + off * H : nullptr, s.hn = gru ? a.hn + off * H : nullptr;
    s.dy = a.dy + t * B * H, s.perm = a.perm;
    s.dh = a.dhs, s.dc = lstm ? a.dcs : nullptr;
    s.dgh = a.dgh + off * GH, s.dgi = gru ? a.dgi + off * GH : nullptr;
    ops.backward_step(a.cell, s);
    // dL/dh_{t-1} = dgh W_hh (GRU: + the direct path the pointwise pass left in dhs)
    ops.gemm(false, false, rows, H, GH, s.dgh, GH, a.W_hh, H, gru ? R(1) : R(0), a.dhs, H);
  }
  if (B > 0 && !in_block) {
    ops.scatter(a.dh0, a.dhs, a.perm, B, H);
    if (lstm) ops.scatter(a.dc0, a.dcs, a.perm, B, H);
  }
  // The large products over all steps at once.
  const R* xp = a.dense ? a.x : a.xp;
  R* dxp = a.dense ? a.dx : a.dxp;
  if (N > 0 && I > 0) {
    ops.gemm(false, false, N, I, GH, dgi, GH, a.W_ih, I, R(0), dxp, I);  // dx = dgi W_ih
    if (!a.dense) ops.scatter(a.dx, dxp, a.src, N, I);
  }
  ops.gemm(true, false, GH, I, N, dgi, GH, xp, I, R(0), a.dW_ih, I);         // dW_ih = dgi^T x
  ops.gemm(true, false, GH, H, N, a.dgh, GH, a.h_prev, H, R(0), a.dW_hh, H);  // dW_hh = dgh^T h_prev
  ops.colsum(a.db_ih, dgi, N, GH);
  ops.colsum(a.db_hh, a.dgh, N, GH);
}

}  // namespace cuda
}  // namespace rnnkit
