// The floor under a batch-1 step: how long one core takes to read N KiB that sit in its L2 (or
// L1), with AVX-512 loads into 16 independent sums, the streaming LSTM's W_hh read once per step.
// Not part of the build (it needs -mavx512f, which nothing distributed uses):
//   g++ -O3 -mavx512f benchmarks/l2_read.cpp -o /tmp/l2_read && /tmp/l2_read 128
// Measured on a 2-vCPU AMD EPYC Zen 5 (2 MiB L2): 32 KiB 0.063 us (520 GB/s, L1), 128 KiB
// 0.71 us (185 GB/s), 512 KiB 2.2 us (235 GB/s), 1024 KiB 8.0 us.
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const size_t kib = argc > 1 ? static_cast<size_t>(atoi(argv[1])) : 128;
  const size_t n = kib * 1024 / sizeof(float);
  if (n < 256 || n % 256) {
    fprintf(stderr, "size must be a multiple of 1 KiB, at least 1 KiB\n");
    return 1;
  }
  float* a = static_cast<float*>(aligned_alloc(64, n * sizeof(float)));
  for (size_t i = 0; i < n; ++i) a[i] = 1.0f;
  __m512 acc[16];
  for (auto& v : acc) v = _mm512_setzero_ps();
  const int reps = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < n; i += 256)
      for (int j = 0; j < 16; ++j) acc[j] = _mm512_add_ps(acc[j], _mm512_load_ps(a + i + 16 * j));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m512 t = acc[0];
  for (int j = 1; j < 16; ++j) t = _mm512_add_ps(t, acc[j]);
  float out[16];
  _mm512_storeu_ps(out, t);
  printf("%zu KiB: %.3f us a pass, %.1f GB/s (checksum %g)\n", kib, s / reps * 1e6, kib * 1024.0 * reps / s / 1e9,
         static_cast<double>(out[0]));
  free(a);
  return 0;
}
