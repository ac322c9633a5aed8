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
  // Tiles of 6 rows: AVX2's 16 registers hold 6 x 2 vectors of sums, AVX-512's 32 hold 6 x 4, so
  // that each B vector loaded feeds 6 multiply-adds and each A element broadcast 4 (measured on a
  // 2-vCPU AMD EPYC Zen 5, LSTM XL (T32 B128 I1024 H1024) inference 166 -> 150 ms, level with
  // OpenVINO's oneDNN kernels, from 8 x 2 vectors). A call of few rows (a batch of 8 to 32) runs
  // 8-row strips over half panels instead (HalfRows), as the 8 x 2 tile did: 6 + 2 rows read each
  // B panel twice (LSTM T200 B8 H256: per-step products 6-8% slower); at 32 rows both measure
  // the same.
  static constexpr int NV = RNNKIT_VBYTES >= 64 ? 4 : 2;  // vectors per row of a panel
  static constexpr int NR = VL * NV;                        // panel width
  static constexpr int MR = 6;
  static constexpr int HalfMR = RNNKIT_VBYTES >= 64 ? 8 : 0;  // rows of the half-panel strips
  static constexpr int64_t HalfRows = RNNKIT_VBYTES >= 64 ? 32 : 0;  // calls of up to these rows use them
};

// One tile: M_ rows by NP panels over kc values of k, of each panel its vectors [V0, V0 + NVT)
// (all by default); of the last panel only its first n <= NR columns are stored. Panels lie ps
// elements apart. Small M_ take several panels at once so that enough independent accumulator
// chains hide the latency of the fused multiply-add. Each element is one chain in k order,
// whatever the tile.
template <class T, int M_, int NP, int V0 = 0, int NVT = GemmShape<T>::NV>
inline void tile(int64_t kc, int64_t ps, const T* __restrict__ A, int64_t lda,
                 const T* __restrict__ Bp, T* __restrict__ C, int64_t ldc, int n, bool accumulate) {
  using S = GemmShape<T>;
  typedef T V __attribute__((vector_size(RNNKIT_VBYTES), aligned(sizeof(T))));
  constexpr int NV = NVT * NP;  // vectors per tile row
  V c[M_][NV];
  for (int i = 0; i < M_; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = V{} * T(0);
  for (int64_t k = 0; k < kc; ++k) {
    V b[NV];  // loaded as vectors: a memcpy through the stack stalls on store forwarding
    for (int q = 0; q < NP; ++q)
      for (int v = 0; v < NVT; ++v)
        b[q * NVT + v] = *reinterpret_cast<const V*>(Bp + q * ps + k * S::NR + (V0 + v) * S::VL);
    for (int i = 0; i < M_; ++i) {
      const T a = A[i * lda + k];
      for (int v = 0; v < NV; ++v) c[i][v] += a * b[v];
    }
  }
  constexpr int W = NVT * S::VL;  // columns of a panel in this tile
  for (int i = 0; i < M_; ++i) {
    for (int q = 0; q < NP; ++q) {
      T* out = C + i * ldc + q * S::NR + V0 * S::VL;
      const V* cv = c[i] + q * NVT;
      const int cols = q < NP - 1 || n == S::NR ? W : n - V0 * S::VL;
      if (cols >= W) {
        for (int v = 0; v < NVT; ++v) {
          V* o = reinterpret_cast<V*>(out + v * S::VL);
          *o = accumulate ? *o + cv[v] : cv[v];
        }
      } else if (cols > 0) {
        T row[W];
        std::memcpy(row, cv, sizeof(row));
        for (int j = 0; j < cols; ++j) out[j] = accumulate ? out[j] + row[j] : row[j];
      }
    }
  }
}

// Rows [0, HalfMR) of C for all N columns, a panel at a time in two halves (GemmShape::HalfRows).
template <class T>
inline void half_strip(int64_t N, int64_t kc, int64_t ps, const T* A, int64_t lda, const T* Bp, T* C,
                       int64_t ldc, bool accumulate) {
  using S = GemmShape<T>;
  if constexpr (S::HalfMR > 0) {  // (AVX-512 only)
    constexpr int H2 = S::NV / 2;
    const int64_t panels = (N + S::NR - 1) / S::NR;
    const int last = static_cast<int>(N - (panels - 1) * S::NR);
    for (int64_t j = 0; j < panels; ++j) {
      const int n = j + 1 == panels ? last : S::NR;
      tile<T, S::HalfMR, 1, 0, H2>(kc, ps, A, lda, Bp + j * ps, C + j * S::NR, ldc, n, accumulate);
      if (n > H2 * S::VL)
        tile<T, S::HalfMR, 1, H2, H2>(kc, ps, A, lda, Bp + j * ps, C + j * S::NR, ldc, n, accumulate);
    }
  }
}

// Rows [0, M_) of C for all N columns: NP panels at a time, then two (a few rows' NP >= 3: the
// chains of two panels hide more of the multiply-add's latency than those of one, as in a decoder
// step's dh_{t-1} = dg W_hh of 64 units a thread, 2 panels), then one at a time.
template <class T, int M_, int NP>
inline void row_strip(int64_t N, int64_t kc, int64_t ps, const T* A, int64_t lda, const T* Bp,
                      T* C, int64_t ldc, bool accumulate) {
  using S = GemmShape<T>;
  const int64_t panels = (N + S::NR - 1) / S::NR;
  const int last = static_cast<int>(N - (panels - 1) * S::NR);
  int64_t j = 0;
  for (; j + NP <= panels; j += NP)
    tile<T, M_, NP>(kc, ps, A, lda, Bp + j * ps, C + j * S::NR, ldc,
                    j + NP == panels ? last : S::NR, accumulate);
  if constexpr (NP >= 3)
    for (; j + 2 <= panels; j += 2)
      tile<T, M_, 2>(kc, ps, A, lda, Bp + j * ps, C + j * S::NR, ldc, j + 2 == panels ? last : S::NR,
                     accumulate);
  for (; j < panels; ++j)
    tile<T, M_, 1>(kc, ps, A, lda, Bp + j * ps, C + j * S::NR, ldc, j + 1 == panels ? last : S::NR,
                   accumulate);
}

// K is cut into chunks of kKc and the columns into blocks of kNcPanels panels, so that a block's
// chunks (kKc * kNcPanels * NR elements: 256 KiB in float32 at NR 32, 512 KiB at AVX-512's 64)
// stay in L2 while the row strips pass over them; each chunk after the first accumulates into C.
constexpr int64_t kKc = 256;
constexpr int64_t kNcPanels = 8;

template <class T>
void gemm_packed(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
                 int64_t ldc, bool accumulate) {
  using S = GemmShape<T>;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(T) * N);
    return;
  }
  const int64_t ps = K * S::NR;  // elements from one panel to the next
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = K - k0 < kKc ? K - k0 : kKc;
    const bool acc = accumulate || k0 > 0;
    for (int64_t n0 = 0; n0 < N; n0 += kNcPanels * S::NR) {
      const int64_t nc = N - n0 < kNcPanels * S::NR ? N - n0 : kNcPanels * S::NR;
      const T* bp = Bp + (n0 / S::NR) * ps + k0 * S::NR;
      int64_t m0 = 0;
      if constexpr (S::HalfMR > 0)
        if (M <= S::HalfRows)
          for (; m0 + S::HalfMR <= M; m0 += S::HalfMR)
            half_strip<T>(nc, kc, ps, A + m0 * lda + k0, lda, bp, C + m0 * ldc + n0, ldc, acc);
      for (; m0 + S::MR <= M; m0 += S::MR)
        row_strip<T, S::MR, 1>(nc, kc, ps, A + m0 * lda + k0, lda, bp, C + m0 * ldc + n0, ldc, acc);
      const T* a = A + m0 * lda + k0;
      T* c = C + m0 * ldc + n0;
      switch (M - m0) {
        case 1: row_strip<T, 1, 4>(nc, kc, ps, a, lda, bp, c, ldc, acc); break;
        case 2: row_strip<T, 2, 3>(nc, kc, ps, a, lda, bp, c, ldc, acc); break;
        case 3: row_strip<T, 3, 2>(nc, kc, ps, a, lda, bp, c, ldc, acc); break;
        case 4: row_strip<T, 4, 1>(nc, kc, ps, a, lda, bp, c, ldc, acc); break;
        case 5: row_strip<T, 5, 1>(nc, kc, ps, a, lda, bp, c, ldc, acc); break;
        default: break;
      }
    }
  }
}

}  // namespace
}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
