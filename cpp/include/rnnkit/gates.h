// rnnkit/gates.h: gate order, and the scalar activation functions the pointwise passes use.
// The exp below is branch-free (Cody-Waite reduction, polynomial, exponent by integer add) so that
// GCC vectorises the loops that call it for whatever ISA the including file is compiled for.
// Every function has internal linkage (static): each ISA's translation unit keeps its own copy, so
// the linker can never hand AVX-512 code to the scalar path.
// Accuracy: a few ulp in float64, about 2 ulp in float32 (checked by tests/test_backends.py).
#pragma once
#include <cstdint>
#include <cstring>

namespace rnnkit {

// PyTorch gate order.
constexpr int kLstmI = 0, kLstmF = 1, kLstmG = 2, kLstmO = 3;
constexpr int kGruR = 0, kGruZ = 1, kGruN = 2;
// Hidden units are processed in blocks of kBlock: the width of an AVX-512 float32 register.
constexpr int64_t kBlock = 16;

template <class T> struct ExpConst;
template <> struct ExpConst<float> {
  using Int = uint32_t;
  static constexpr float lo = -87.3f, hi = 88.3f;
  static constexpr float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr int mant = 23;
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187045e-06f;
};
template <> struct ExpConst<double> {
  using Int = uint64_t;
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int mant = 52;
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
};

template <class T> static inline T poly_exp(T r);  // e^r for |r| <= ln2/2
template <> inline float poly_exp<float>(float r) {
  // Taylor to degree 7: truncation error < 2e-9 relative on the reduced range.
  float p = 1.f / 5040;
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  return p * r + 1.f;
}
template <> inline double poly_exp<double>(double r) {
  // Taylor to degree 13: truncation error < 1e-17 relative on the reduced range.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  return p * r + 1.0;
}

template <class T> static inline T exp_(T x) {
  using C = ExpConst<T>;
  using Int = typename C::Int;
  T xc = x < C::lo ? C::lo : x;
  xc = xc > C::hi ? C::hi : xc;
  T kf = xc * T(1.4426950408889634) + C::shifter;  // round(x / ln2), as the low bits of kf
  Int ki;
  std::memcpy(&ki, &kf, sizeof(T));
  kf -= C::shifter;
  T r = xc - kf * C::ln2_hi;
  r = r - kf * C::ln2_lo;
  T p = poly_exp<T>(r);
  Int pi;
  std::memcpy(&pi, &p, sizeof(T));
  pi += ki << C::mant;  // multiply by 2^k: the shifter's own bits shift out (unsigned wrap-around)
  std::memcpy(&p, &pi, sizeof(T));
  return x != x ? x : p;  // NaN in, NaN out
}

template <class T> static inline T sigmoid_(T x) { return T(1) / (T(1) + exp_(-x)); }

template <class T> static inline T tanh_(T x) {
  T ax = x < 0 ? -x : x;
  T e = exp_(T(-2) * ax);  // in (0, 1]: no overflow
  T t = (T(1) - e) / (T(1) + e);
  return x < 0 ? -t : t;  // NaN: ax, e, t are NaN and so is the result
}

}  // namespace rnnkit
