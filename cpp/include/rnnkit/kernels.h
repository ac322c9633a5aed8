// rnnkit/kernels.h: the sequence drivers for every cell (cpp/src/sequence.cpp): forward over all T
// steps and backpropagation through time. Outputs first, then inputs; all arrays C-contiguous and
// allocated by the caller (rnnkit/_cpp.py). Shape letters as in problem.h.
//
// Forward: the input projection in chunks of steps (one GEMM each, just before the chunk's steps),
// and per step one recurrent GEMM and one fused pointwise pass (pointwise.h). Backward: per step (reverse order) one pointwise pass and one
// GEMM for dh_{t-1}; then dW_ih, dW_hh, biases and dx as large GEMMs/reductions over all steps.
// An LSTM with projections (Problem::S < H) adds per step the product h_t = m_t W_hr^T after the
// pointwise pass (m_t = o * tanh(c_t)) and a second barrier; its backward the product dm_t = dh_t
// W_hr before the pointwise pass, and dW_hr = sum_t dh_t^T m_t at the end. Widths written H below
// are S for h, y and their gradients when S < H (h0, h_n, y, h_prev, dy, dh_n, dh0, W_hh's columns).
#pragma once
#include "rnnkit/problem.h"

namespace rnnkit {
class WeightPack;  // rnnkit/pack.h
}

namespace rnnkit {

template <class T> struct ForwardArgs {
  // outputs (overwritten)
  T* y = nullptr;    // [T, B, H], rows ld_y apart (a direction's columns of a wider output);
                     // rows past a sequence's length must be zero on entry
  int64_t ld_y = 0;  // >= H
  T* h_n = nullptr;  // [B, H]
  T* c_n = nullptr;  // [B, H] LSTM
  // workspace / training cache (overwritten)
  T* xg = nullptr;      // [N, G*H] training: the activated gates (RNN: h_t); null in inference
  T* xp = nullptr;      // [N, I] packed x (with lengths only; null when dense)
  T* h_prev = nullptr;  // [N, H] training: state entering each step; null in inference
  T* c_prev = nullptr;  // [N, H] LSTM training: cell state entering each step
  T* hn = nullptr;      // [N, H] GRU training: W_hn h + b_hn
  // inputs
  const T* x = nullptr;     // [T, B, I]
  const T* W_ih = nullptr;  // [G*H, I]
  const T* W_hh = nullptr;  // [G*H, H]
  const T* b_ih = nullptr;  // [G*H] or null
  const T* b_hh = nullptr;  // [G*H] or null
  const T* h0 = nullptr;    // [B, H]
  const T* c0 = nullptr;    // [B, H] LSTM
  // LSTM with projections only (null otherwise)
  T* m = nullptr;           // [N, H] training: o * tanh(c_t), the projection's input
  const T* W_hr = nullptr;  // [S, H]
  const T* P = nullptr;     // [3H] LSTM with peepholes: (p_i, p_f, p_o); null otherwise
  WeightPack* pack = nullptr;  // the caller's store of packed weights (rnnkit/pack.h), or null
};

template <class T> struct BackwardArgs {
  // outputs (overwritten)
  T* dx = nullptr;     // [T, B, I]; rows past a sequence's length must be zero on entry; null: not computed
  T* dh0 = nullptr;    // [B, H]
  T* dc0 = nullptr;    // [B, H] LSTM
  T* dW_ih = nullptr;  // [G*H, I]
  T* dW_hh = nullptr;  // [G*H, H]
  T* db_ih = nullptr;  // [G*H]
  T* db_hh = nullptr;  // [G*H]
  // workspace (overwritten)
  T* dg = nullptr;  // [N, G*H] packed gradients of the pre-activations, all steps; null: a
                    // workspace of the driver's own (kept for the calling thread's next call)
  T* dn = nullptr;  // [N, H] GRU: input-side gradient of the n gate
  // inputs: the forward's inputs and training cache
  const T* x = nullptr;
  const T* W_ih = nullptr;
  const T* W_hh = nullptr;
  const T* xg = nullptr;
  const T* xp = nullptr;
  const T* h_prev = nullptr;
  const T* c_prev = nullptr;
  const T* hn = nullptr;
  const T* dy = nullptr;    // [T, B, H], rows ld_dy apart (a direction's columns of a wider dy)
  int64_t ld_dy = 0;        // >= H
  const T* dh_n = nullptr;  // [B, H]
  const T* dc_n = nullptr;  // [B, H] LSTM
  // LSTM with projections only (null otherwise)
  T* dW_hr = nullptr;       // [S, H] out
  const T* m = nullptr;     // [N, H] the forward's cache
  const T* W_hr = nullptr;  // [S, H]
  // LSTM with peepholes only (null otherwise)
  T* dP = nullptr;          // [3H] out
  const T* P = nullptr;     // [3H]
  WeightPack* pack = nullptr;  // the caller's store of packed weights (rnnkit/pack.h), or null
};

template <class T> void sequence_forward(const Problem& p, const ForwardArgs<T>& a);
template <class T> void sequence_backward(const Problem& p, const BackwardArgs<T>& a);

// k independent calls (the directions of a bidirectional layer): when their steps are too small to
// split over all n threads, they run concurrently, spread over min(k, n) threads with n / min(k, n)
// each; otherwise one after another with all n. Results are those of the calls made one by one
// (bitwise: no result depends on the thread count).
template <class T> void sequence_forward_group(int k, const Problem* ps, const ForwardArgs<T>* as);
template <class T> void sequence_backward_group(int k, const Problem* ps, const BackwardArgs<T>* as);

// Threads used by rnnkit (>= 1); the default is set from Python at import.
void set_num_threads(int n);
int get_num_threads();
// Threads a call of this problem actually uses (small problems run on one thread).
int threads_for(const Problem& p);
// Calls found contended (sequence.cpp, Contention: their barrier waits outlasted the spin), how
// many ran on fewer threads since, and for how many more microseconds calls will before all the
// threads are tried again.
struct ContentionStats {
  int64_t contended, demoted, left_us;
};
ContentionStats contention_stats();

}  // namespace rnnkit
