// The hand-written product for the small per-step recurrent GEMMs, C[M,N] (=|+=) A[M,K] @ Bp, with
// Bp packed once per call into panels of NR columns (see pack_panels in sequence.cpp) and reused
// for all T steps. BLAS packs its operands on every call, which costs as much as the product when
// M (the batch) is small; here each element is one fused multiply-add chain in k order, so the
// result never depends on how rows or columns are split between threads.
// Included by the per-ISA translation units (RNNKIT_ISA_NS, RNNKIT_VBYTES: vector register bytes).
// Check: tests/test_backends.py, tests/test_threads.py.
#include <cstdint>
#include <cstring>

namespace rnnkit {
namespace RNNKIT_ISA_NS {
namespace {

template <class T> struct GemmShape {
  static constexpr int VL = RNNKIT_VBYTES / sizeof(T);  // elements per vector
  static constexpr int NV = 2;                          // vectors per row of the tile
  static constexpr int NR = VL * NV;                    // tile columns = panel width
  static constexpr int MR = 6;                          // tile rows
};

// One tile: M_ rows by NP panels (NP * NR columns), all K; of the last panel only n <= NR columns
// are stored. Small M_ take several panels at once so that enough independent accumulator chains
// hide the latency of the fused multiply-add.
template <class T, int M_, int NP>
inline void tile(int64_t K, const T* __restrict__ A, int64_t lda, const T* __restrict__ Bp,
                 T* __restrict__ C, int64_t ldc, int n, bool accumulate) {
  using S = GemmShape<T>;
  typedef T V __attribute__((vector_size(RNNKIT_VBYTES), aligned(sizeof(T))));
  constexpr int NV = S::NV * NP;  // vectors per tile row
  V c[M_][NV];
  for (int i = 0; i < M_; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = V{} * T(0);
  const int64_t panel = K * S::NR;  // elements between consecutive panels
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];  // loaded as vectors: a memcpy through the stack stalls on store forwarding
    for (int q = 0; q < NP; ++q)
      for (int v = 0; v < S::NV; ++v)
        b[q * S::NV + v] = *reinterpret_cast<const V*>(Bp + q * panel + k * S::NR + v * S::VL);
    for (int i = 0; i < M_; ++i) {
      const T a = A[i * lda + k];
      for (int v = 0; v < NV; ++v) c[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < M_; ++i) {
    for (int q = 0; q < NP; ++q) {
      T* out = C + i * ldc + q * S::NR;
      const V* cv = c[i] + q * S::NV;
      if (q < NP - 1 || n == S::NR) {
        for (int v = 0; v < S::NV; ++v) {
          V* o = reinterpret_cast<V*>(out + v * S::VL);
          *o = accumulate ? *o + cv[v] : cv[v];
        }
      } else {
        T row[S::NR];
        std::memcpy(row, cv, sizeof(row));
        for (int j = 0; j < n; ++j) out[j] = accumulate ? out[j] + row[j] : row[j];
      }
    }
  }
}

// Rows [0, M_) of C for all N columns: NP panels at a time, then one at a time.
template <class T, int M_, int NP>
inline void row_strip(int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
                      int64_t ldc, bool accumulate) {
  using S = GemmShape<T>;
  const int64_t panels = (N + S::NR - 1) / S::NR;
  const int last = static_cast<int>(N - (panels - 1) * S::NR);
  int64_t j = 0;
  for (; j + NP <= panels; j += NP)
    tile<T, M_, NP>(K, A, lda, Bp + j * K * S::NR, C + j * S::NR, ldc,
                    j + NP == panels ? last : S::NR, accumulate);
  for (; j < panels; ++j)
    tile<T, M_, 1>(K, A, lda, Bp + j * K * S::NR, C + j * S::NR, ldc,
                   j + 1 == panels ? last : S::NR, accumulate);
}

template <class T>
void gemm_packed(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
                 int64_t ldc, bool accumulate) {
  using S = GemmShape<T>;
  if (M == 0 || N == 0) return;
  int64_t m0 = 0;
  for (; m0 + S::MR <= M; m0 += S::MR)
    row_strip<T, S::MR, 1>(N, K, A + m0 * lda, lda, Bp, C + m0 * ldc, ldc, accumulate);
  const T* a = A + m0 * lda;
  T* c = C + m0 * ldc;
  switch (M - m0) {
    case 1: row_strip<T, 1, 4>(N, K, a, lda, Bp, c, ldc, accumulate); break;
    case 2: row_strip<T, 2, 3>(N, K, a, lda, Bp, c, ldc, accumulate); break;
    case 3: row_strip<T, 3, 2>(N, K, a, lda, Bp, c, ldc, accumulate); break;
    case 4: row_strip<T, 4, 1>(N, K, a, lda, Bp, c, ldc, accumulate); break;
    case 5: row_strip<T, 5, 1>(N, K, a, lda, Bp, c, ldc, accumulate); break;
    default: break;
  }
}

}  // namespace
}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
