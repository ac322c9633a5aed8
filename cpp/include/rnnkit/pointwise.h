// rnnkit/pointwise.h: the fused per-step pointwise passes (bias, gate nonlinearities, c/h update,
// outputs) and their derivatives, one table per ISA (cpp/src/pointwise_{scalar,avx2,avx512}.cpp,
// all compiled from cpp/src/pointwise_impl.h) chosen once at run time (cpp/src/dispatch.cpp).
//
// Packed gate columns: hidden units come in blocks of kBlock (the last may be narrower, width wb);
// block b owns the G*wb columns starting at b*G*kBlock, gate-major inside: column
// b*G*kBlock + g*wb + u holds gate g of unit b*kBlock + u. A thread owns whole blocks, so its
// gates are contiguous columns and each step needs one GEMM and one barrier per thread.
#pragma once
#include <cstdint>

#include "rnnkit/problem.h"

namespace rnnkit {

// One forward step for the rows [0, rows) of the sorted batch and unit blocks [blk0, blk1).
template <class T> struct StepFwd {
  int64_t rows = 0;       // active rows at this step
  int64_t rows_next = 0;  // active rows at the next step (0 after the last): rows >= it finish here
  int64_t H = 0, G = 1, blk0 = 0, blk1 = 0;
  const T* acc = nullptr;  // [rows, ld_acc] recurrent GEMM h_prev @ W_hh^T, from column blk0*G*kBlock
  int64_t ld_acc = 0;
  T* xg = nullptr;            // [rows, G*H] packed input projection in; activated gates out (training)
  const T* b = nullptr;       // [G*H] original order: b_ih + b_hh (GRU n gate: b_in only)
  const T* b_hn = nullptr;    // [H] GRU: b_hn, inside r * (W_hn h + b_hn)
  const T* h_prev = nullptr;  // [rows, H] state entering the step
  T* h_next = nullptr;        // [>= rows_next, H] state entering the next step (rows < rows_next)
  T* c = nullptr;             // [B, H] LSTM cell state, updated in place
  T* c_prev_out = nullptr;    // [rows, H] LSTM training: c entering the step; else null
  T* hn_out = nullptr;        // [rows, H] GRU training: W_hn h + b_hn; else null
  T* y = nullptr;             // [B, H] y[t] (original batch order, row perm[i]), rows ld_y apart
  int64_t ld_y = 0;
  T* h_n = nullptr;           // [B, H] final state (original order), for rows >= rows_next; null:
                              // h_t is only written to y (an LSTM with projections: m_t, which the
                              // driver projects and routes itself)
  const int64_t* perm = nullptr;
  bool training = false;
  const T* P = nullptr;  // [3H] LSTM with peepholes (p_i, p_f, p_o), original order; else null
  // The GRU with the reset gate before the product (two passes per step, grb_fwd_rz then
  // grb_fwd_n): acc then holds h_prev @ W_{hr,hz}^T in the packed layout of G = 2 (ld_acc = 2H),
  // acc_n [rows, H] (r * h_prev) @ W_hn^T by unit; rh [rows, H] r * h_prev, out of the first pass.
  const T* acc_n = nullptr;
  T* rh = nullptr;
  const Form* form = nullptr;  // ONNX's options: the form passes (rnnkit/forms.h), else null
};

// One backward step for the rows [0, rows) and unit blocks [blk0, blk1).
template <class T> struct StepBwd {
  int64_t rows = 0, H = 0, G = 1, blk0 = 0, blk1 = 0;
  const T* xg = nullptr;      // [rows, G*H] activated gates saved by the forward (RNN: h_t)
  const T* h_prev = nullptr;  // [rows, H] GRU: state entering the step
  const T* c_prev = nullptr;  // [rows, H] LSTM: cell state entering the step
  const T* hn = nullptr;      // [rows, H] GRU: W_hn h + b_hn
  const T* dy = nullptr;      // [B, H] dy[t] (original order), rows ld_dy apart; LSTM: null when dh
                              // holds all of dL/dh_t (with projections: dm_t = (dy[t] + dh) W_hr)
  int64_t ld_dy = 0;
  T* dh = nullptr;            // [B, H] sorted: dL/dh leaving the step in; GRU: dh_in * z out (the
                              // direct path to h_{t-1}; the GEMM then adds dgates @ W_hh)
  T* dc = nullptr;            // [B, H] LSTM sorted: dL/dc leaving the step in, entering it out
  T* dg = nullptr;            // [rows, G*H] packed gradient of the recurrent pre-activations, out
  T* dn = nullptr;            // [rows, H] GRU: gradient of the input-side n pre-activation, out
  const int64_t* perm = nullptr;
  const T* P = nullptr;       // [3H] LSTM with peepholes (p_i, p_f, p_o), original order; else null
  // The GRU with the reset gate before the product (grb_bwd_zn, then grb_bwd_r): hn holds
  // r * h_prev; dn [rows, H] gets dL/dn's pre-activation (the operand of d(r*h) = dn W_hn);
  // drh [rows, H] that product, in; dgrz [rows, 2H] the r and z columns of dg again, in the packed
  // layout of G = 2 (the operand of dh_{t-1} += dgrz W_{hr,hz}).
  const T* drh = nullptr;
  T* dgrz = nullptr;
  const Form* form = nullptr;  // ONNX's options: the form passes (rnnkit/forms.h), else null
};

// pack_panels' row map: with G > 0 the index that runs along a gate-major W's rows [G*H, K]
// (PyTorch's order) stands for packed row m0 + i (sequence.cpp's packed_index); G = 0: none.
struct RowMap {
  int64_t G = 0, H = 0, m0 = 0;
};

template <class T> struct PointwiseTable {
  void (*rnn_fwd)(const StepFwd<T>&, bool relu);
  void (*rnn_bwd)(const StepBwd<T>&, bool relu);
  void (*lstm_fwd)(const StepFwd<T>&);
  void (*lstm_bwd)(const StepBwd<T>&);
  void (*gru_fwd)(const StepFwd<T>&);
  void (*gru_bwd)(const StepBwd<T>&);
  void (*grb_fwd_rz)(const StepFwd<T>&);  // the GRU with the reset gate before the product
  void (*grb_fwd_n)(const StepFwd<T>&);
  void (*grb_bwd_zn)(const StepBwd<T>&);
  void (*grb_bwd_r)(const StepBwd<T>&);
  // C[M,N] = (or +=, with accumulate) A[M,K] (row stride lda) @ Bp, Bp packed by pack_panels with
  // panel width nr (cpp/src/gemm_impl.h).
  void (*gemm_packed)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
                      int64_t ldc, bool accumulate);
  // Columns [0, N) of B (element (k, n) at B[trans ? n * ldb + k : k * ldb + n]) into the panels
  // gemm_packed reads: ceil(N / nr) * nr * K elements at out (cpp/src/pack_impl.h).
  void (*pack_panels)(T* out, const T* B, int64_t ldb, bool trans, int64_t K, int64_t N, const RowMap& map);
  // A call of one step's products, no panels (cpp/src/onestep_impl.h): C[M,N] (=|+=) A[M,K] @ W^T
  // with column n of C from W's row n (rows_t), or A @ W with row k of W its row k (rows_n); W's
  // rows through a RowMap.
  void (*gemm_rows_t)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                      const RowMap& map, T* C, int64_t ldc, bool accumulate);
  void (*gemm_rows_n)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                      const RowMap& map, T* C, int64_t ldc, bool accumulate);
  int nr;
  // x[0, n) <- exp (kind 0), sigmoid (1) or tanh (2) of itself, as the passes compute them (tests).
  void (*activation)(int kind, T* x, int64_t n);
};

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The tables, one per ISA (defined in the per-ISA translation units).
namespace scalar { extern const PointwiseTable<float> table_f32; extern const PointwiseTable<double> table_f64; }
namespace avx2 { extern const PointwiseTable<float> table_f32; extern const PointwiseTable<double> table_f64; }
namespace avx512 { extern const PointwiseTable<float> table_f32; extern const PointwiseTable<double> table_f64; }

// The table for the ISA chosen at run time (best supported, capped by RNNKIT_CPU_ISA).
template <class T> const PointwiseTable<T>& pointwise();
Isa active_isa();
const char* isa_name(Isa isa);
// Comma-separated CPU features seen at run time ("sse2,avx,avx2,fma,avx512f,...").
const char* cpu_features();

}  // namespace rnnkit
