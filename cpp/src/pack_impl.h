// Packing of a GEMM operand into the panels of gemm_packed (gemm_impl.h), per ISA: columns [0, N)
// of B, element (k, n) at B[trans ? n * ldb + k : k * ldb + n], into panels of NR columns
// (zero-padded); panel p holds K rows of NR values at out + p * K * NR. The transposing case moves
// float32 8x8 blocks through registers (a scalar transposing copy costs ~3 cycles per element,
// which at small sizes is more than the T steps that reuse the panels).
// Check: every forward runs through it (tests/test_backends.py).
#include <cstdint>
#include <cstring>

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

template <class T>
void pack_panels(T* out, const T* B, int64_t ldb, bool trans, int64_t K, int64_t N) {
  constexpr int64_t nr = GemmShape<T>::NR;
  for (int64_t j = 0; j < N; j += nr) {
    T* panel = out + j * K;  // panel j / nr starts at (j / nr) * K * nr = j * K
    int64_t c0 = 0;
    if (trans && sizeof(T) == 4) {  // full groups of 8 columns, 8 k at a time
      for (; c0 + 8 <= nr && j + c0 + 8 <= N; c0 += 8) {
        int64_t k0 = 0;
        for (; k0 + 8 <= K; k0 += 8) {
          V8f r[8], col[8];
          // Vector loads and stores (a memcpy through the stack stalls on store forwarding).
          for (int i = 0; i < 8; ++i)
            r[i] = *reinterpret_cast<const V8f*>(B + (j + c0 + i) * ldb + k0);
          transpose8x8(r, col);
          for (int k = 0; k < 8; ++k) *reinterpret_cast<V8f*>(panel + (k0 + k) * nr + c0) = col[k];
        }
        for (; k0 < K; ++k0)
          for (int64_t c = c0; c < c0 + 8; ++c) panel[k0 * nr + c] = B[(j + c) * ldb + k0];
      }
    }
    for (int64_t c = c0; c < nr; ++c) {
      const int64_t n = j + c;
      if (n >= N) {
        for (int64_t k = 0; k < K; ++k) panel[k * nr + c] = T(0);
      } else if (trans) {
        const T* src = B + n * ldb;
        for (int64_t k = 0; k < K; ++k) panel[k * nr + c] = src[k];
      } else {
        for (int64_t k = 0; k < K; ++k) panel[k * nr + c] = B[k * ldb + n];
      }
    }
  }
}

}  // namespace
}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
