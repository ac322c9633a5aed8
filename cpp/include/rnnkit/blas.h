// rnnkit/blas.h: the one wrapper around the BLAS gemm (cpp/src/blas.cpp; nothing else calls BLAS).
// Row-major C[M,N] = alpha * op(A) @ op(B) + beta * C, op = transpose when ta/tb. Handles empty
// sizes (M, N or K = 0) itself, since BLAS leaves C untouched for K = 0.
#pragma once
#include <cstdint>

namespace rnnkit {

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Called once at import: rnnkit's OpenBLAS runs single-threaded inside rnnkit's own threads.
void blas_init();
// Largest M or K handed to one BLAS call (default and cap: the BLAS's 32-bit int); products past
// it are cut into pieces. Lowered only by the tests, to exercise the cutting on small shapes.
void set_blas_limit(int64_t n);
const char* blas_config();

}  // namespace rnnkit
