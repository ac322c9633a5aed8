// rnnkit/problem.h: the plain description of one single-layer, single-direction recurrent call.
// Shape letters everywhere: T steps, B batch, I input size, H hidden size, G gates (RNN 1, LSTM 4,
// GRU 3), N = sum of the sequence lengths (T*B without lengths). The Python side validates and
// fills it (rnnkit/_cpp.py); kernels trust it.
#pragma once
#include <cstdint>

namespace rnnkit {

enum class Cell : int { kRnnTanh = 0, kRnnRelu = 1, kLstm = 2, kGru = 3 };

inline int gate_count(Cell c) { return c == Cell::kLstm ? 4 : c == Cell::kGru ? 3 : 1; }

// ONNX's options of a cell (rnnkit/forms.h, cpp/src/pointwise_forms.cpp): the activation of each
// position (RNN f; GRU f for r and z, g for n; LSTM f for i, f and o, g for the candidate cell, h
// for the output) with its alpha and beta, the clip of every gate's pre-activation (0: none), and
// the LSTM's coupled forget gate f = 1 - i. any: the call uses them (else torch's cell, the
// per-ISA passes).
enum class Act : int {
  kSigmoid = 0, kTanh, kRelu, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu, kSoftsign,
  kSoftplus, kAffine, kCount
};
struct Form {
  bool any = false;
  Act act[3] = {Act::kSigmoid, Act::kTanh, Act::kTanh};
  double alpha[3] = {0, 0, 0}, beta[3] = {0, 0, 0};
  double clip = 0;
  bool input_forget = false;
};

// Variable lengths are handled by ordering the batch by length (descending) once: at time t the
// sequences still inside their length are then the first batch_sizes[t] rows of that order, in both
// directions. Per-step activations are "packed": the rows of time t sit at offsets[t] .. offsets[t] +
// batch_sizes[t] of an [N, ...] array, in sorted order. Without lengths, perm is the identity,
// batch_sizes[t] = B and the packed layout is the ordinary [T, B, ...] one.
struct Problem {
  Cell cell = Cell::kRnnTanh;
  int64_t T = 0, B = 0, I = 0, H = 0, G = 1;
  // Width of the state h and of y: H, or for an LSTM with projections (torch's proj_size) S < H,
  // h_t = W_hr (o * tanh(c_t)) with W_hr [S, H] and W_hh [G*H, S]; c stays H wide.
  int64_t S = 0;
  bool peephole = false;  // an LSTM whose gates see c (ONNX's input P): i, f see c_{t-1}, o sees c_t
  // A GRU with the reset gate before the recurrent product (ONNX's linear_before_reset=0, Keras's
  // reset_after=False): n = tanh(W_in x + b_in + W_hn (r * h_{t-1}) + b_hn). Each step then runs
  // two products, r and z first, W_hn (r * h) once every unit's r is known.
  bool reset_before = false;
  Form form;  // ONNX's options (form.any), else torch's cell
  bool reverse = false;   // visit t = T-1 .. 0
  bool training = false;  // keep what backward reads
  bool dense = true;      // no lengths: perm is the identity and every step has B rows
  const int64_t* perm = nullptr;         // [B] row i of the sorted order is batch entry perm[i]
  const int64_t* batch_sizes = nullptr;  // [T] active rows at time t (non-increasing in t)
  const int64_t* offsets = nullptr;      // [T+1] packed row offset of time t; offsets[T] = N
  int threads = 0;  // most threads this call may use; 0: rnnkit's setting (set_num_threads)

  int64_t N() const { return offsets[T]; }
  bool projected() const { return S != H; }
};

}  // namespace rnnkit
