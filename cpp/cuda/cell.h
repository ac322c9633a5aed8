// cpp/cuda/cell.h: the per-element maths of every cell's fused pointwise step, forward and backward,
// written once as __host__ __device__ functions. The CUDA kernels (forward.cu, backward.cu) call them
// for each (row, unit) of a step; the host harness (host/harness.cpp) calls the very same functions in
// a loop, and tests/test_cuda_host.py checks them on the CPU against the NumPy reference.
// Shape letters: B batch, H hidden size, G gates (RNN 1, LSTM 4, GRU 3), rows: the active rows of a
// step (the first `rows` of the batch sorted by length, see sequence.h). Gate order is torch's:
// LSTM i, f, g, o; GRU r, z, n (the constants of cpp/include/rnnkit/gates.h).
#pragma once
#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define RNNKIT_HD __host__ __device__ __forceinline__
#else
#define RNNKIT_HD inline
#endif

namespace rnnkit {
namespace cuda {

// The cell ids of rnnkit._core (python/rnnkit/_cpp.py, _CELL_ID), shared by the adapter.
enum CellId : int { kRnnTanh = 0, kRnnRelu = 1, kLstm = 2, kGru = 3 };
constexpr int kLstmI = 0, kLstmF = 1, kLstmG = 2, kLstmO = 3;  // as rnnkit/gates.h
constexpr int kGruR = 0, kGruZ = 1, kGruN = 2;

RNNKIT_HD int gate_count(int cell) { return cell == kLstm ? 4 : cell == kGru ? 3 : 1; }

// The libm functions of each type (overloads, not templates: expf/tanhf are the float32 ones on
// both the host and the device).
RNNKIT_HD float exp_(float a) { return expf(a); }
RNNKIT_HD double exp_(double a) { return exp(a); }
RNNKIT_HD float tanh_(float a) { return tanhf(a); }
RNNKIT_HD double tanh_(double a) { return tanh(a); }
// exp(-a) = inf for a << 0 gives exactly 0, as the reference's 1 / (1 + exp(-a)).
template <class R> RNNKIT_HD R sigmoid(R a) { return R(1) / (R(1) + exp_(-a)); }
// a < 0 ? 0 : a keeps a NaN (as torch's relu); the derivative selects (relu' = [h > 0]) so that a
// NaN gradient stops where the unit is off.
template <class R> RNNKIT_HD R relu(R a) { return a < R(0) ? R(0) : a; }

// One forward step: rows [0, rows) of the sorted batch, units [0, H). Element (i, u) reads and
// writes only its own unit u of row i (of each gate), so the state buffers may be updated in place.
// Row i of the sorted order is batch entry perm[i]; a dense call has no perm (the identity).
RNNKIT_HD int64_t row_of(const int64_t* perm, int64_t i) { return perm ? perm[i] : i; }

template <class R> struct FwdStep {
  int64_t rows = 0, H = 0;
  R* xg = nullptr;             // [rows, G*H] this step's rows of x W_ih^T (no bias) in;
                               // training: the activated gates out, in place (RNN: h_t)
  const R* acc = nullptr;      // [rows, G*H] h_{t-1} W_hh^T
  const R* b_ih = nullptr;     // [G*H] (zeros when the call has none)
  const R* b_hh = nullptr;     // [G*H]
  R* h = nullptr;              // [rows, H] sorted state: h_{t-1} in, h_t out
  R* c = nullptr;              // [rows, H] LSTM sorted cell state: c_{t-1} in, c_t out
  R* y = nullptr;              // [B, H] y[t], original batch order: row perm[i]
  const int64_t* perm = nullptr;  // [B] row i of the sorted order is batch entry perm[i]; null: identity
  R* h_prev = nullptr;         // training: [rows, H] packed h_{t-1} out; null in inference
  R* c_prev = nullptr;         // LSTM training: [rows, H] c_{t-1} out
  R* hn = nullptr;             // GRU training: [rows, H] W_hn h_{t-1} + b_hn out
};

// One backward step (rows, units as above).
template <class R> struct BwdStep {
  int64_t rows = 0, H = 0;
  const R* xg = nullptr;      // [rows, G*H] the activated gates the forward saved (RNN: h_t)
  const R* h_prev = nullptr;  // [rows, H] GRU: h_{t-1}
  const R* c_prev = nullptr;  // [rows, H] LSTM: c_{t-1}
  const R* hn = nullptr;      // [rows, H] GRU: W_hn h_{t-1} + b_hn
  const R* dy = nullptr;      // [B, H] dy[t], original batch order: row perm[i]
  const int64_t* perm = nullptr;
  R* dh = nullptr;   // [rows, H] sorted: dL/dh_t from the later steps in; GRU: the direct path
                     // dL/dh_t * z to h_{t-1} out (the GEMM then adds dgh W_hh); others: untouched
                     // (the GEMM overwrites it with dgh W_hh)
  R* dc = nullptr;   // [rows, H] LSTM sorted: dL/dc_t in, dL/dc_{t-1} out
  R* dgh = nullptr;  // [rows, G*H] gradient of the recurrent pre-activations (h W_hh^T + b_hh) out
  R* dgi = nullptr;  // GRU: [rows, G*H] gradient of the input pre-activations (x W_ih^T + b_ih) out;
                     // the other cells: null (the two are equal, dgh serves for both)
};

template <class R> RNNKIT_HD void rnn_forward_element(const FwdStep<R>& s, int64_t i, int64_t u, bool is_relu) {
  const int64_t k = i * s.H + u;
  const R a = s.xg[k] + s.acc[k] + s.b_ih[u] + s.b_hh[u];
  const R h = is_relu ? relu(a) : tanh_(a);  // h_t = act(W_ih x_t + W_hh h_{t-1} + b)
  if (s.h_prev) {
    s.h_prev[k] = s.h[k];
    s.xg[k] = h;
  }
  s.h[k] = h;
  s.y[row_of(s.perm, i) * s.H + u] = h;
}

template <class R> RNNKIT_HD void rnn_backward_element(const BwdStep<R>& s, int64_t i, int64_t u, bool is_relu) {
  const int64_t k = i * s.H + u;
  const R h = s.xg[k];
  const R d = s.dy[row_of(s.perm, i) * s.H + u] + s.dh[k];  // dL/dh_t: from the output and from step t+1
  s.dgh[k] = is_relu ? (h > R(0) ? d : R(0)) : d * (R(1) - h * h);  // tanh' = 1 - h^2
}

template <class R> RNNKIT_HD void lstm_forward_element(const FwdStep<R>& s, int64_t i, int64_t u) {
  const int64_t H = s.H, row = i * 4 * H, k = i * H + u;
  R* gx = s.xg + row;
  const R* ga = s.acc + row;
  const R ig = sigmoid(gx[kLstmI * H + u] + ga[kLstmI * H + u] + s.b_ih[kLstmI * H + u] + s.b_hh[kLstmI * H + u]);
  const R fg = sigmoid(gx[kLstmF * H + u] + ga[kLstmF * H + u] + s.b_ih[kLstmF * H + u] + s.b_hh[kLstmF * H + u]);
  const R gg = tanh_(gx[kLstmG * H + u] + ga[kLstmG * H + u] + s.b_ih[kLstmG * H + u] + s.b_hh[kLstmG * H + u]);
  const R og = sigmoid(gx[kLstmO * H + u] + ga[kLstmO * H + u] + s.b_ih[kLstmO * H + u] + s.b_hh[kLstmO * H + u]);
  const R cp = s.c[k];
  const R cn = fg * cp + ig * gg;  // c_t = f * c_{t-1} + i * g
  const R h = og * tanh_(cn);      // h_t = o * tanh(c_t)
  if (s.h_prev) {
    s.h_prev[k] = s.h[k];
    s.c_prev[k] = cp;
    gx[kLstmI * H + u] = ig;
    gx[kLstmF * H + u] = fg;
    gx[kLstmG * H + u] = gg;
    gx[kLstmO * H + u] = og;
  }
  s.c[k] = cn;
  s.h[k] = h;
  s.y[row_of(s.perm, i) * H + u] = h;
}

template <class R> RNNKIT_HD void lstm_backward_element(const BwdStep<R>& s, int64_t i, int64_t u) {
  const int64_t H = s.H, row = i * 4 * H, k = i * H + u;
  const R* g = s.xg + row;
  R* d = s.dgh + row;
  const R ig = g[kLstmI * H + u], fg = g[kLstmF * H + u], gg = g[kLstmG * H + u], og = g[kLstmO * H + u];
  const R cp = s.c_prev[k];
  const R tc = tanh_(fg * cp + ig * gg);  // tanh(c_t), recomputed rather than stored
  const R dht = s.dy[row_of(s.perm, i) * H + u] + s.dh[k];
  const R dct = s.dc[k] + dht * og * (R(1) - tc * tc);  // through h_t = o * tanh(c_t)
  d[kLstmI * H + u] = dct * gg * ig * (R(1) - ig);      // sigmoid' = s (1 - s)
  d[kLstmF * H + u] = dct * cp * fg * (R(1) - fg);
  d[kLstmG * H + u] = dct * ig * (R(1) - gg * gg);      // tanh' = 1 - g^2
  d[kLstmO * H + u] = dht * tc * og * (R(1) - og);
  s.dc[k] = dct * fg;  // to c_{t-1}
}

template <class R> RNNKIT_HD void gru_forward_element(const FwdStep<R>& s, int64_t i, int64_t u) {
  const int64_t H = s.H, row = i * 3 * H, k = i * H + u;
  R* gx = s.xg + row;
  const R* ga = s.acc + row;
  const R r = sigmoid(gx[kGruR * H + u] + ga[kGruR * H + u] + s.b_ih[kGruR * H + u] + s.b_hh[kGruR * H + u]);
  const R z = sigmoid(gx[kGruZ * H + u] + ga[kGruZ * H + u] + s.b_ih[kGruZ * H + u] + s.b_hh[kGruZ * H + u]);
  const R hn = ga[kGruN * H + u] + s.b_hh[kGruN * H + u];  // W_hn h_{t-1} + b_hn, kept apart
  const R n = tanh_(gx[kGruN * H + u] + s.b_ih[kGruN * H + u] + r * hn);
  const R hp = s.h[k];
  const R h = (R(1) - z) * n + z * hp;  // h_t = (1 - z) * n + z * h_{t-1}
  if (s.h_prev) {
    s.h_prev[k] = hp;
    s.hn[k] = hn;
    gx[kGruR * H + u] = r;
    gx[kGruZ * H + u] = z;
    gx[kGruN * H + u] = n;
  }
  s.h[k] = h;
  s.y[row_of(s.perm, i) * H + u] = h;
}

template <class R> RNNKIT_HD void gru_backward_element(const BwdStep<R>& s, int64_t i, int64_t u) {
  const int64_t H = s.H, row = i * 3 * H, k = i * H + u;
  const R* g = s.xg + row;
  const R r = g[kGruR * H + u], z = g[kGruZ * H + u], n = g[kGruN * H + u];
  const R dht = s.dy[row_of(s.perm, i) * H + u] + s.dh[k];
  const R dn = dht * (R(1) - z) * (R(1) - n * n);               // through (1 - z) * n, then tanh'
  const R dr = dn * s.hn[k] * r * (R(1) - r);                   // n = tanh(.. + r * hn)
  const R dz = dht * (s.h_prev[k] - n) * z * (R(1) - z);
  R* di = s.dgi + row;
  R* dr_ = s.dgh + row;
  di[kGruR * H + u] = dr;
  di[kGruZ * H + u] = dz;
  di[kGruN * H + u] = dn;
  dr_[kGruR * H + u] = dr;
  dr_[kGruZ * H + u] = dz;
  dr_[kGruN * H + u] = dn * r;  // the recurrent side of n is r * (W_hn h + b_hn)
  s.dh[k] = dht * z;            // direct path h_t = .. + z * h_{t-1}; the GEMM adds the rest
}

// The element of a step for a cell known at compile time (the kernels' template argument).
template <int Cell, class R> RNNKIT_HD void forward_element(const FwdStep<R>& s, int64_t i, int64_t u) {
  if constexpr (Cell == kLstm)
    lstm_forward_element(s, i, u);
  else if constexpr (Cell == kGru)
    gru_forward_element(s, i, u);
  else
    rnn_forward_element(s, i, u, Cell == kRnnRelu);
}

template <int Cell, class R> RNNKIT_HD void backward_element(const BwdStep<R>& s, int64_t i, int64_t u) {
  if constexpr (Cell == kLstm)
    lstm_backward_element(s, i, u);
  else if constexpr (Cell == kGru)
    gru_backward_element(s, i, u);
  else
    rnn_backward_element(s, i, u, Cell == kRnnRelu);
}

}  // namespace cuda
}  // namespace rnnkit
