// rnnkit/gates.h: gate order, and the scalar activation functions the pointwise passes use.
// The exp below is branch-free (Cody-Waite reduction, polynomial, exponent by integer add) so that
// GCC vectorises the loops that call it for whatever ISA the including file is compiled for.
// Every function has internal linkage (static): each ISA's translation unit keeps its own copy, so
// the linker can never hand AVX-512 code to the scalar path.
// Accuracy: a few ulp in float64, about 2 ulp in float32, relative to the true value over the
// whole range (tests/test_isa.py); exp saturates to 0 and inf, so sigmoid reaches 0 and 1.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

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

// e^r for |r| <= ln2/2 by its Taylor polynomial of degree D (Horner), r a value or a vector.
// Degree 7 for float32 (truncation error < 2e-9 relative), 13 for float64 (< 1e-17).
template <class T> struct ExpDegree { static constexpr int value = sizeof(T) == 4 ? 7 : 13; };

template <class V, class T> __attribute__((always_inline)) static inline V poly_exp(V r) {
  constexpr int D = ExpDegree<T>::value;
  T fact = 1;  // D!
  for (int n = 2; n <= D; ++n) fact *= T(n);
  V p = r * T(0) + T(1) / fact;
  for (int n = D - 1; n >= 0; --n) {  // p <- p * r + 1/n!, with 1/n! = (n+1) * 1/(n+1)!
    fact /= T(n + 1);
    p = p * r + T(1) / fact;
  }
  return p;
}

// The activations work on vectors of units (GCC vector extensions).
// VB is the vector register width in bytes of the including translation unit's ISA: wider generic
// vectors are split by GCC with spills, native ones map to one instruction per operation.
template <class T, int VB> struct Lanes {
  typedef T V __attribute__((vector_size(VB), aligned(sizeof(T))));
  typedef typename ExpConst<T>::Int VI __attribute__((vector_size(VB), aligned(sizeof(T))));
};

template <class T, int VB> static inline typename Lanes<T, VB>::V splat(T v) {
  return typename Lanes<T, VB>::V{} + v;
}

template <class T, int VB>
__attribute__((always_inline)) static inline typename Lanes<T, VB>::V exp_(typename Lanes<T, VB>::V x) {
  using C = ExpConst<T>;
  using V = typename Lanes<T, VB>::V;
  using VI = typename Lanes<T, VB>::VI;
  const V lo = splat<T, VB>(C::lo), hi = splat<T, VB>(C::hi);
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  V kf = xc * T(1.4426950408889634) + C::shifter;  // round(x / ln2), as the low bits of kf
  const VI ki = (VI)kf;
  kf -= C::shifter;
  V r = xc - kf * C::ln2_hi;
  r = r - kf * C::ln2_lo;
  const V p = poly_exp<V, T>(r);
  // multiply by 2^k: the shifter's own bits shift out (unsigned wrap-around)
  V out = (V)((VI)p + (ki << C::mant));
  // Past the clamps the result saturates exactly as the true exp does (0 below, inf above), so
  // that sigmoid reaches 0 and 1 and no gradient leaks through a saturated gate.
  out = x < lo ? splat<T, VB>(0) : out;
  out = x > hi ? splat<T, VB>(__builtin_inf()) : out;
  return x != x ? x : out;  // NaN in, NaN out
}

template <class T, int VB>
__attribute__((always_inline)) static inline typename Lanes<T, VB>::V sigmoid_(typename Lanes<T, VB>::V x) {
  return T(1) / (T(1) + exp_<T, VB>(-x));
}

// tanh(x) = x + x^3 P(x^2) for |x| < 0.625 (Cephes' tanhf polynomial; for float64 its rational
// P/Q), where (1 - e) / (1 + e) would cancel (relative error 1e-2 at 1e-6, 0 below 1e-8);
// sign(x) (1 - e) / (1 + e), e = exp(-2|x|), above. Both are computed and blended (vectorised).
// Within 2 ulp of the true tanh everywhere (tests/test_isa.py sweeps 1e-30 .. 1e3).
template <class V, class T> __attribute__((always_inline)) static inline V tanh_small(V x) {
  const V s = x * x;
  if constexpr (sizeof(T) == 4) {
    const V p = (((T(-5.70498872745e-3f) * s + T(2.06390887954e-2f)) * s + T(-5.37397155531e-2f)) * s +
                 T(1.33314422036e-1f)) * s + T(-3.33332819422e-1f);
    return p * s * x + x;
  } else {
    const V p = (T(-9.64399179425052238628e-1) * s + T(-9.92877231001918586564e1)) * s +
                T(-1.61468768441708447952e3);
    const V q = ((s + T(1.12811678491632931402e2)) * s + T(2.23548839060100448583e3)) * s +
                T(4.84406305325125486048e3);
    return x + x * s * (p / q);
  }
}

template <class T, int VB>
__attribute__((always_inline)) static inline typename Lanes<T, VB>::V tanh_(typename Lanes<T, VB>::V x) {
  using V = typename Lanes<T, VB>::V;
  const V zero = splat<T, VB>(0);
  const V ax = x < zero ? -x : x;
  const V e = exp_<T, VB>(T(-2) * ax);  // in [0, 1]: no overflow
  V t = (T(1) - e) / (T(1) + e);
  t = x < zero ? -t : t;  // NaN: ax, e, t are NaN and so is the result
  return ax < splat<T, VB>(T(0.625)) ? tanh_small<V, T>(x) : t;
}

}  // namespace rnnkit
