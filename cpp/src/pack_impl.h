// Packing of a GEMM operand into the panels of gemm_packed (gemm_impl.h), per ISA: columns [0, N)
// of B, element (k, n) at B[trans ? n * ldb + k : k * ldb + n], into panels of NR columns
// (zero-padded); panel p holds K rows of NR values at out + p * K * NR. With a RowMap (G > 0) the
// index that runs along W's rows (n when trans, else k) is a packed row m0 + n (or m0 + k) of a
// gate-major W, read from its row in W (RowCursor): the panels of W's rows in packed order
// straight from W, without first copying W into that order. The transposing case moves
// float32 8x8 blocks through registers (a scalar transposing copy costs ~3 cycles per element,
// which at small sizes is more than the T steps that reuse the panels).
// Check: every forward runs through it (tests/test_backends.py).
#include <cstdint>
#include <cstring>

#include "rnnkit/gates.h"

namespace rnnkit {
namespace RNNKIT_ISA_NS {
namespace {

typedef float V8f __attribute__((vector_size(32), aligned(4)));

// Rows r[0..7] (8 floats each) -> columns: out[k] = (r[0][k], ..., r[7][k]).
inline void transpose8x8(const V8f r[8], V8f out[8]) {
  V8f t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    out[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    out[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// The rows of a gate-major W [G*H, K] in packed order from packed row m0 (sequence.cpp's
// packed_index): row() is W's row of the current packed row, next() moves on, without a division
// per row. Without a map (G = 0) the rows as they are, from m0.
struct RowCursor {
  int64_t G, H, b = 0, g = 0, i = 0, wb = 0, r = 0;
  explicit RowCursor(const RowMap& map) : G(map.G), H(map.H) {
    if (G <= 0) {
      r = map.m0;
      return;
    }
    b = map.m0 / (G * kBlock);
    const int64_t rem = map.m0 - b * G * kBlock;
    wb = H - b * kBlock < kBlock ? H - b * kBlock : kBlock;
    g = rem / wb, i = rem % wb;
  }
  int64_t row() const { return G > 0 ? g * H + b * kBlock + i : r; }
  void next() {
    if (G <= 0) {
      ++r;
    } else if (++i == wb) {
      i = 0;
      if (++g == G) g = 0, ++b, wb = H - b * kBlock < kBlock ? H - b * kBlock : kBlock;
    }
  }
};

template <class T>
void pack_panels(T* out, const T* B, int64_t ldb, bool trans, int64_t K, int64_t N, const RowMap& map) {
  constexpr int64_t nr = GemmShape<T>::NR;
  RowCursor cur(map);  // W's rows in turn: along k, or along the columns
  if (!trans) {  // row k of B (the packed row map.m0 + k of W with a map) to row k of each panel
    for (int64_t k = 0; k < K; ++k) {
      const T* src = B + cur.row() * ldb;
      cur.next();
      for (int64_t j = 0; j < N; j += nr) {
        T* dst = out + j * K + k * nr;  // panel j / nr starts at (j / nr) * K * nr = j * K
        const int64_t w = N - j < nr ? N - j : nr;
        for (int64_t c = 0; c < w; ++c) dst[c] = src[j + c];
        for (int64_t c = w; c < nr; ++c) dst[c] = T(0);
      }
    }
    return;
  }
  for (int64_t j = 0; j < N; j += nr) {
    T* panel = out + j * K;  // panel j / nr starts at (j / nr) * K * nr = j * K
    const T* src[nr];  // column n = j + c comes from row row(n) of B
    for (int64_t c = 0; c < nr && j + c < N; ++c, cur.next()) src[c] = B + cur.row() * ldb;
    int64_t c0 = 0;
    if (sizeof(T) == 4) {  // full groups of 8 columns, 8 k at a time
      for (; c0 + 8 <= nr && j + c0 + 8 <= N; c0 += 8) {
        int64_t k0 = 0;
        for (; k0 + 8 <= K; k0 += 8) {
          V8f r[8], col[8];
          // Vector loads and stores (a memcpy through the stack stalls on store forwarding).
          for (int i = 0; i < 8; ++i) r[i] = *reinterpret_cast<const V8f*>(src[c0 + i] + k0);
          transpose8x8(r, col);
          for (int k = 0; k < 8; ++k) *reinterpret_cast<V8f*>(panel + (k0 + k) * nr + c0) = col[k];
        }
        for (; k0 < K; ++k0)
          for (int64_t c = c0; c < c0 + 8; ++c) panel[k0 * nr + c] = src[c][k0];
      }
    }
    for (int64_t c = c0; c < nr; ++c) {
      if (j + c >= N) {
        for (int64_t k = 0; k < K; ++k) panel[k * nr + c] = T(0);
      } else {
        for (int64_t k = 0; k < K; ++k) panel[k * nr + c] = src[c][k];
      }
    }
  }
}

}  // namespace
}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
