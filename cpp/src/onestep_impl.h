// The products of a call of one step at a small batch (a decoder's step), each used once:
// C[M,N] (=|+=) A[M,K] @ op(W), with W's rows read where they lie (a RowMap takes a gate-major W
// in packed order), no panels. Making the panels (pack_panels transposes W) costs more than such
// a product itself: ~8 us per 256 KiB of W against ~2 us for the product (2-vCPU Zen 5, float32).
// rows_t (the forward's x W_ih^T and h W_hh^T: W's rows are the columns of C) sums each element's k
// in vector lanes, then the lanes (LaneSum); rows_n (the backward's dg W_hh: W's rows run along k)
// is a chain over k in order for each element, vectorised along n. Either way an element's sum
// does not depend on how rows or columns are split between threads, and every one-step call takes
// these, whether its weights are packed or not, so the two stay bitwise equal. (A step inside a
// longer call reads panels and sums in another order: equal to rounding, not bitwise.)
// Included by the per-ISA translation units (RNNKIT_ISA_NS, RNNKIT_VBYTES), after pack_impl.h
// (RowCursor).
// Check: tests/test_pack.py (one step), tests/test_backends.py, tests/test_threads.py.
#include <cstdint>
#include <cstring>

namespace rnnkit {
namespace RNNKIT_ISA_NS {
namespace {

// The sum of a vector's lanes in a fixed order: halves added down to 16 bytes, then those lanes
// in turn (a few vector adds where a lane-by-lane sum is a chain of VL dependent adds).
template <class T, int Bytes> struct LaneSum {
  typedef T V __attribute__((vector_size(Bytes)));
  typedef T Half __attribute__((vector_size(Bytes / 2)));
  static T of(V v) {
    Half lo, hi;
    std::memcpy(&lo, &v, sizeof(lo));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
    return LaneSum<T, Bytes / 2>::of(lo + hi);
  }
};
template <class T> struct LaneSum<T, 16> {
  typedef T V __attribute__((vector_size(16)));
  static T of(V v) {
    T lanes[16 / sizeof(T)];
    std::memcpy(lanes, &v, sizeof(lanes));
    T s = lanes[0];
    for (size_t l = 1; l < 16 / sizeof(T); ++l) s += lanes[l];
    return s;
  }
};

template <class T> struct OneStep {
  typedef T V __attribute__((vector_size(RNNKIT_VBYTES), aligned(sizeof(T))));
  static constexpr int VL = RNNKIT_VBYTES / sizeof(T);
  static constexpr int NB = 8;  // columns of C at a time (rows_t; 4 for pairs of rows)
  static constexpr int NV = 4;  // vectors of columns at a time (rows_n)

  static V load(const T* p) { return *reinterpret_cast<const V*>(p); }
  static V zero() { return V{} * T(0); }

  // Rows [m0, m0 + MB) of C, columns w[0..nb) (W's rows; nb <= NC), k over [0, K).
  template <int MB, int NC>
  static void dots(int64_t K, const T* A, int64_t lda, const T* const* w, int nb, T* C, int64_t ldc,
                   bool accumulate, const T* const* next = nullptr) {
    V acc[MB][NC];
    for (int r = 0; r < MB; ++r)
      for (int j = 0; j < NC; ++j) acc[r][j] = zero();
    int64_t k = 0;
    for (; k + VL <= K; k += VL) {
      V a[MB];
      for (int r = 0; r < MB; ++r) a[r] = load(A + r * lda + k);
      for (int j = 0; j < NC; ++j) {
        const V bv = load(w[j] + k);
        if (next) __builtin_prefetch(next[j] + k);  // the next columns' rows, as these are read
        for (int r = 0; r < MB; ++r) acc[r][j] += a[r] * bv;
      }
    }
    for (int r = 0; r < MB; ++r)
      for (int j = 0; j < nb; ++j) {
        typename LaneSum<T, RNNKIT_VBYTES>::V v;
        std::memcpy(&v, &acc[r][j], sizeof(v));
        T s = LaneSum<T, RNNKIT_VBYTES>::of(v);
        for (int64_t q = k; q < K; ++q) s += A[r * lda + q] * w[j][q];
        T* out = C + r * ldc + j;
        *out = accumulate ? *out + s : s;
      }
  }

  // C[M,N] (=|+=) A[M,K] @ W^T, column n of C from W's row row(n) (ldw apart).
  static void rows_t(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                     const RowMap& map, T* C, int64_t ldc, bool accumulate) {
    RowCursor cur(map);
    const T* rows[2][NB];  // this group's rows of W, and the next group's
    auto fill = [&](const T** w, int64_t n0) {
      const int nb = N - n0 < NB ? static_cast<int>(N - n0) : NB;
      for (int j = 0; j < NB; ++j) {
        if (j < nb) {
          w[j] = W + cur.row() * ldw;
          cur.next();
        } else {
          w[j] = w[0];  // (computed, not stored)
        }
      }
    };
    fill(rows[0], 0);
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      const int nb = N - n0 < NB ? static_cast<int>(N - n0) : NB;
      const T* const* w = rows[(n0 / NB) % 2];
      const T** next = rows[(n0 / NB + 1) % 2];
      if (n0 + NB < N) fill(next, n0 + NB);
      if (M == 1) {  // 8 columns: 8 chains of fused multiply-adds
        dots<1, NB>(K, A, lda, w, nb, C + n0, ldc, accumulate, n0 + NB < N ? next : nullptr);
        continue;
      }
      for (int h = 0; h < nb; h += NB / 2) {  // pairs of rows, 4 columns (AVX2's 16 registers)
        const int nh = nb - h < NB / 2 ? nb - h : NB / 2;
        int64_t m0 = 0;
        for (; m0 + 2 <= M; m0 += 2)
          dots<2, NB / 2>(K, A + m0 * lda, lda, w + h, nh, C + m0 * ldc + n0 + h, ldc, accumulate);
        if (m0 < M) dots<1, NB / 2>(K, A + m0 * lda, lda, w + h, nh, C + m0 * ldc + n0 + h, ldc, accumulate);
      }
    }
  }

  // Rows [m0, m0 + MB) of C, columns [n0, n0 + nc) (nc <= NV * VL), k over W's rows in turn.
  template <int MB>
  static void axpys(int64_t K, int64_t nc, const T* A, int64_t lda, const T* W, int64_t ldw, const RowMap& map,
                    T* C, int64_t ldc, bool accumulate) {
    const int full = static_cast<int>(nc / VL), part = static_cast<int>(nc % VL);
    V acc[MB][NV + 1];  // (the last: a partial vector of part columns)
    for (int r = 0; r < MB; ++r)
      for (int v = 0; v <= NV; ++v) acc[r][v] = zero();
    RowCursor cur(map);
    for (int64_t k = 0; k < K; ++k, cur.next()) {
      const T* wr = W + cur.row() * ldw;
      T a[MB];
      for (int r = 0; r < MB; ++r) a[r] = A[r * lda + k];
      for (int v = 0; v < full; ++v) {
        const V bv = load(wr + v * VL);
        for (int r = 0; r < MB; ++r) acc[r][v] += a[r] * bv;
      }
      if (part > 0) {  // the same vector arithmetic on the last columns, through a zeroed copy
        T tail[VL] = {};
        std::memcpy(tail, wr + full * VL, sizeof(T) * part);
        const V bv = load(tail);
        for (int r = 0; r < MB; ++r) acc[r][NV] += a[r] * bv;
      }
    }
    for (int r = 0; r < MB; ++r) {
      T* out = C + r * ldc;
      for (int v = 0; v < full; ++v) {
        T lanes[VL];
        std::memcpy(lanes, &acc[r][v], sizeof(lanes));
        for (int l = 0; l < VL; ++l) out[v * VL + l] = accumulate ? out[v * VL + l] + lanes[l] : lanes[l];
      }
      if (part > 0) {
        T lanes[VL];
        std::memcpy(lanes, &acc[r][NV], sizeof(lanes));
        for (int l = 0; l < part; ++l) out[full * VL + l] = accumulate ? out[full * VL + l] + lanes[l] : lanes[l];
      }
    }
  }

  // C[M,N] (=|+=) A[M,K] @ W, row k of W at W + row(k) * ldw.
  static void rows_n(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                     const RowMap& map, T* C, int64_t ldc, bool accumulate) {
    for (int64_t n0 = 0; n0 < N; n0 += NV * VL) {
      const int64_t nc = N - n0 < NV * VL ? N - n0 : NV * VL;
      int64_t m0 = 0;
      for (; m0 + 2 <= M; m0 += 2)
        axpys<2>(K, nc, A + m0 * lda, lda, W + n0, ldw, map, C + m0 * ldc + n0, ldc, accumulate);
      if (m0 < M) axpys<1>(K, nc, A + m0 * lda, lda, W + n0, ldw, map, C + m0 * ldc + n0, ldc, accumulate);
    }
  }
};

}  // namespace
}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
