// cpp/cuda/block.h: the recurrence of a small dense call in ONE thread block (the persistent path,
// cuDNN's persistent RNN in its simplest form): W_hh is read into shared memory once and stays there
// for every step, the state lives in shared memory, and each step is two phases between barriers
// (the product h_{t-1} W_hh^T, then the fused pointwise pass of cell.h; backward: the pointwise pass,
// then dL/dh_{t-1} = dg W_hh), so a whole sequence is one launch instead of two per step. The input
// projection before it and the large gradient GEMMs after it stay the drivers' (sequence.h).
//
// Written once over a `Block` executor: the device's (forward.cu / backward.cu: for_each strides the
// block's threads, sync is __syncthreads) and the host harness's (a plain loop, sync a no-op; valid
// because no element of a phase reads what another element of the same phase writes), so
// tests/test_cuda_host.py runs this exact code on the CPU. Each slice of a product sums in increasing
// order in one thread and the slices are added in order: bitwise identical run to run, and host and
// device agree on the order.
//
// W_hh's rows are padded by one element, so both the forward's row reads and the backward's column
// reads are free of bank conflicts; each product is cut into kBlockSplit slices of its sum, one
// thread each, for more threads than gate rows (a step's latency is the chain of one thread's sum).
#pragma once
#include <cstdint>

#include "cell.h"

namespace rnnkit {
namespace cuda {

constexpr int kBlockBatch = 8;  // batch rows a thread's product accumulates at once (registers)
constexpr int kBlockSplit = 4;  // each product is summed in this many slices by as many threads

// Shared memory of both passes (elements of R): W [G*H, H + 1], a [B, G*H] (forward: the product;
// backward: the step's dg), parts [kBlockSplit, B, max(G*H, H)] (the slices' partial sums), s [B, H]
// and c [B, H] (h and c forward; dh and dc backward).
inline int64_t block_smem_elems(int cell, int64_t B, int64_t H) {
  const int64_t GH = gate_count(cell) * H;
  return GH * (H + 1) + B * GH + kBlockSplit * B * GH + 2 * B * H;
}

// Whether a call takes the one-block path: dense, its shared memory within max_bytes, and a step
// small enough that one multiprocessor does it faster than a launch pair per step costs (at most
// 2^20 multiply-adds per step, B <= 64).
inline bool block_path(bool dense, int cell, int64_t T, int64_t B, int64_t H, int64_t elem_size, int64_t max_bytes) {
  const int64_t GH = gate_count(cell) * H;
  return dense && T > 0 && B > 0 && B <= 64 && B * GH * H <= (int64_t(1) << 20) &&
         block_smem_elems(cell, B, H) * elem_size <= max_bytes;
}

// Slice q of n: [n * q / kBlockSplit, n * (q + 1) / kBlockSplit).
RNNKIT_HD int slice_begin(int n, int q) { return n * q / kBlockSplit; }

// parts[q, b, j] = sum over k in slice q of s[b, k] W[j, k], every q, b < B, j < GH (W padded: row
// stride H + 1; thread (q, j) reads row j, consecutive j in consecutive banks).
template <class R, class Block>
RNNKIT_HD void block_product(Block& blk, const R* W, const R* s, R* parts, int B, int GH, int H) {
  blk.for_each(kBlockSplit * GH, [&](int e) {
    const int q = e / GH, j = e - q * GH, k0 = slice_begin(H, q), k1 = slice_begin(H, q + 1);
    const R* w = W + j * (H + 1);
    for (int b0 = 0; b0 < B; b0 += kBlockBatch) {
      const int nb = B - b0 < kBlockBatch ? B - b0 : kBlockBatch;
      R sum[kBlockBatch];
      for (int r = 0; r < kBlockBatch; ++r) sum[r] = R(0);
      for (int k = k0; k < k1; ++k) {
        const R wk = w[k];
        for (int r = 0; r < kBlockBatch; ++r)
          if (r < nb) sum[r] += s[(b0 + r) * H + k] * wk;
      }
      for (int r = 0; r < nb; ++r) parts[(q * B + b0 + r) * GH + j] = sum[r];
    }
  });
}

// parts[q, b, k] = sum over j in slice q of d[b, j] W[j, k], every q, b < B, k < H (thread (q, k)
// reads column k: consecutive k in consecutive banks).
template <class R, class Block>
RNNKIT_HD void block_product_t(Block& blk, const R* W, const R* d, R* parts, int B, int GH, int H) {
  blk.for_each(kBlockSplit * H, [&](int e) {
    const int q = e / H, k = e - q * H, j0 = slice_begin(GH, q), j1 = slice_begin(GH, q + 1);
    for (int b0 = 0; b0 < B; b0 += kBlockBatch) {
      const int nb = B - b0 < kBlockBatch ? B - b0 : kBlockBatch;
      R sum[kBlockBatch];
      for (int r = 0; r < kBlockBatch; ++r) sum[r] = R(0);
      for (int j = j0; j < j1; ++j) {
        const R wj = W[j * (H + 1) + k];
        for (int r = 0; r < kBlockBatch; ++r)
          if (r < nb) sum[r] += d[(b0 + r) * GH + j] * wj;
      }
      for (int r = 0; r < nb; ++r) parts[(q * B + b0 + r) * H + k] = sum[r];
    }
  });
}

// The slices' sum of element e of an [B, w] product, in slice order (the same on every run).
template <class R> RNNKIT_HD R slices_sum(const R* parts, int Bw, int e) {
  R v = parts[e];
  for (int q = 1; q < kBlockSplit; ++q) v += parts[q * Bw + e];
  return v;
}

template <class R, class Block> RNNKIT_HD void block_load_weights(Block& blk, const R* W_hh, R* W, int GH, int H) {
  blk.for_each(GH * H, [&](int e) { W[(e / H) * (H + 1) + e % H] = W_hh[e]; });
}

// The forward recurrence of a dense call (batch order = sorted order): h0 / c0 in (null: zeros),
// h_n / c_n out, y and the training cache written as the step loop of forward_sequence writes them.
template <int Cell, class R, class Block, class Args> RNNKIT_HD void block_forward(Block& blk, const Args& a, R* smem) {
  const int B = int(a.B), H = int(a.H), GH = gate_count(Cell) * H;
  constexpr bool lstm = Cell == kLstm, gru = Cell == kGru;
  const int G = gate_count(Cell);
  R* W = smem;
  R* acc = W + GH * (H + 1);
  R* parts = acc + B * GH;
  R* h = parts + kBlockSplit * B * GH;
  R* c = h + B * H;
  block_load_weights(blk, a.W_hh, W, GH, H);
  blk.for_each(B * H, [&](int e) {
    h[e] = a.h0 ? a.h0[e] : R(0);
    if (lstm) c[e] = a.c0 ? a.c0[e] : R(0);
  });
  blk.sync();
  for (int64_t k = 0; k < a.T; ++k) {
    const int64_t t = a.reverse ? a.T - 1 - k : k, off = t * a.B;
    block_product(blk, W, h, parts, B, GH, H);
    blk.sync();
    FwdStep<R> s;
    s.rows = B, s.H = H;
    s.xg = a.xg + off * GH, s.acc = acc, s.b_ih = a.b_ih, s.b_hh = a.b_hh;
    s.h = h, s.c = lstm ? c : nullptr, s.y = a.y + t * a.B * H, s.perm = nullptr;
    if (a.training) {
      s.h_prev = a.h_prev + off * H;
      s.c_prev = lstm ? a.c_prev + off * H : nullptr;
      s.hn = gru ? a.hn + off * H : nullptr;
    }
    blk.for_each(B * H, [&](int e) {
      const int i = e / H, u = e - i * H;
      for (int g = 0; g < G; ++g) acc[i * GH + g * H + u] = slices_sum(parts, B * GH, i * GH + g * H + u);
      forward_element<Cell>(s, i, u);  // reads exactly the acc entries of (i, u) combined above
    });
    blk.sync();
  }
  blk.for_each(B * H, [&](int e) {
    a.h_n[e] = h[e];
    if (lstm) a.c_n[e] = c[e];
  });
}

// The backward recurrence of a dense call: dh_n / dc_n in (null: zeros), dh0 / dc0 out, dgh (and the
// GRU's dgi) written for every step, as the step loop of backward_sequence writes them.
template <int Cell, class R, class Block, class Args> RNNKIT_HD void block_backward(Block& blk, const Args& a, R* smem) {
  const int B = int(a.B), H = int(a.H), GH = gate_count(Cell) * H;
  constexpr bool lstm = Cell == kLstm, gru = Cell == kGru;
  R* W = smem;
  R* dg = W + GH * (H + 1);
  R* parts = dg + B * GH;
  R* dh = parts + kBlockSplit * B * GH;
  R* dc = dh + B * H;
  block_load_weights(blk, a.W_hh, W, GH, H);
  blk.for_each(B * H, [&](int e) {
    dh[e] = a.dh_n ? a.dh_n[e] : R(0);
    if (lstm) dc[e] = a.dc_n ? a.dc_n[e] : R(0);
  });
  blk.sync();
  // dL/dh_{t-1} = dg W_hh (GRU: + the direct path the pointwise pass leaves in dh), combined from
  // the slices by the thread that reads it next.
  auto combine = [&](int e) { dh[e] = gru ? slices_sum(parts, B * H, e) + dh[e] : slices_sum(parts, B * H, e); };
  for (int64_t k = 0; k < a.T; ++k) {
    const int64_t t = a.reverse ? k : a.T - 1 - k, off = t * a.B;
    BwdStep<R> s;
    s.rows = B, s.H = H;
    s.xg = a.xg + off * GH, s.h_prev = a.h_prev + off * H;
    s.c_prev = lstm ? a.c_prev + off * H : nullptr, s.hn = gru ? a.hn + off * H : nullptr;
    s.dy = a.dy + t * a.B * H, s.perm = nullptr;
    s.dh = dh, s.dc = lstm ? dc : nullptr;
    s.dgh = dg, s.dgi = gru ? a.dgi + off * GH : nullptr;
    const bool pending = k > 0;
    blk.for_each(B * H, [&](int e) {
      if (pending) combine(e);
      backward_element<Cell>(s, e / H, e % H);
    });
    blk.sync();
    R* dgh = a.dgh + off * GH;
    blk.for_each(B * GH, [&](int e) { dgh[e] = dg[e]; });
    block_product_t(blk, W, dg, parts, B, GH, H);
    blk.sync();
  }
  blk.for_each(B * H, [&](int e) {
    if (a.T > 0) combine(e);
    a.dh0[e] = dh[e];
    if (lstm) a.dc0[e] = dc[e];
  });
}

}  // namespace cuda
}  // namespace rnnkit
