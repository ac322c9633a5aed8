// The one wrapper around the BLAS gemm: OpenBLAS from the scipy-openblas32 wheel (prefixed symbols).
// Check: every kernel test goes through it (tests/test_backends.py).
#include "rnnkit/blas.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace rnnkit {

namespace {
template <class T> void scale(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

// The BLAS routine per element type (overloads), so that gemm<T> is written once.
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, float alpha,
               const float* A, blasint lda, const float* B, blasint ldb, float beta, float* C,
               blasint ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, double alpha,
               const double* A, blasint lda, const double* B, blasint ldb, double beta, double* C,
               blasint ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// The BLAS takes 32-bit sizes (blasint); M and K grow with the sum of the lengths (the input
// projection has M = N rows, dW_ih and dW_hh reduce over K = N), so larger products are cut into
// pieces of at most g_blas_limit rows of C (M) and of the reduction (K, accumulating with beta = 1
// after the first piece). N and the leading dimensions are layer widths (I, H, G*H), which
// rnnkit/_validate.py keeps below 2^31.
int64_t g_blas_limit = std::numeric_limits<blasint>::max();

}  // namespace

void set_blas_limit(int64_t n) {
  g_blas_limit = n < 1 || n > std::numeric_limits<blasint>::max() ? std::numeric_limits<blasint>::max() : n;
}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale(M, N, beta, C, ldc);
  const int64_t lim = g_blas_limit;
  if (M > lim) {  // rows of C (and of op(A))
    for (int64_t m0 = 0; m0 < M; m0 += lim)
      gemm(ta, tb, std::min(lim, M - m0), N, K, alpha, A + (ta ? m0 : m0 * lda), lda, B, ldb, beta,
           C + m0 * ldc, ldc);
    return;
  }
  if (K > lim) {  // the reduction: later pieces accumulate
    for (int64_t k0 = 0; k0 < K; k0 += lim)
      gemm(ta, tb, M, N, std::min(lim, K - k0), alpha, A + (ta ? k0 * lda : k0), lda,
           B + (tb ? k0 : k0 * ldb), ldb, k0 ? T(1) : beta, C, ldc);
    return;
  }
  blas_gemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
            (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

void blas_init() { scipy_openblas_set_num_threads(1); }

const char* blas_config() { return scipy_openblas_get_config(); }

}  // namespace rnnkit
