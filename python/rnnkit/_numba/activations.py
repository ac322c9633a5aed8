"""Activations for the Numba kernels, in place on 1-D contiguous arrays, in loops LLVM vectorises.

Numba's scalar math.exp/np.exp inside a loop is a call per element (~17 ns; no SVML here), so exp
is written out: Cody-Waite reduction, a Taylor polynomial, and 2^k added to the exponent bits in a
second loop over integer views (~0.5 ns per float32 element). The clamps let NaN through, and the
second loop leaves NaN's bits alone, so NaN stays NaN whatever its payload. A few ulp in float64,
~2 ulp in float32. error_model="numpy": a division by zero gives inf instead of raising, which is
what lets LLVM vectorise the divisions in sigmoid and tanh.
"""

# Tested by tests/test_backends.py (backend "numba"), tests/test_numba_kernels.py.

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._cache import CACHE

FASTMATH = {"contract"}  # fused multiply-add only: no assumptions about NaN or reassociation

# abs_mask/inf_bits: |x| bits above inf_bits are NaN
_F32 = dict(lo=-87.3, hi=88.3, sh=12582912.0, mant=23, l2h=0.693145751953125,
            l2l=1.428606765330187045e-06, deg=7, abs_mask=0x7FFFFFFF, inf_bits=0x7F800000)  # fmt: skip
_F64 = dict(lo=-708.0, hi=709.0, sh=6755399441055744.0, mant=52, l2h=6.93147180369123816490e-01,
            l2l=1.90821492927058770002e-10, deg=13, abs_mask=0x7FFFFFFFFFFFFFFF,
            inf_bits=0x7FF0000000000000)  # fmt: skip


def _make_exp(ft, it, c):
    lo, hi, sh, l2h, l2l = ft(c["lo"]), ft(c["hi"]), ft(c["sh"]), ft(c["l2h"]), ft(c["l2l"])
    zero, inf = ft(0), ft(np.inf)
    log2e, mant = ft(1.4426950408889634), c["mant"]
    abs_mask, inf_bits = c["abs_mask"], c["inf_bits"]  # Python ints: typed like literals
    coef = tuple(ft(1.0 / math.factorial(n)) for n in range(c["deg"], -1, -1))
    head, tail = coef[0], coef[1:]

    @njit(fastmath=FASTMATH, error_model="numpy")  # not cached: two closures share one qualname
    def exp_inplace(v, k):
        n = v.shape[0]
        for j in range(n):
            x = v[j]
            xc = lo if x < lo else x  # NaN passes both clamps
            xc = hi if xc > hi else xc
            kf = xc * log2e + sh  # round(x / ln2) sits in the low bits of kf
            kk = kf - sh
            r = xc - kk * l2h
            r = r - kk * l2l
            p = head
            for q in tail:  # a homogeneous tuple: LLVM unrolls the loop
                p = p * r + q
            # past the clamps, saturate as the true exp does: sigmoid then reaches 0 and 1
            p = zero if x < lo else p
            p = inf if x > hi else p
            v[j] = p
            k[j] = kf
        vi, ki = _bits(v), _bits(k)
        for j in range(n):
            b = vi[j]
            m = b & abs_mask  # 0 < m < inf_bits: a finite p to scale; 0, inf and NaN stay as they are
            keep = it(m > 0) & it(m < inf_bits)
            vi[j] = b + ((ki[j] << mant) & -keep)  # times 2^k through the exponent field

    return exp_inplace


def _bits(v):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_bits)
def _bits_ov(v):
    if v.dtype == types.float32:
        return lambda v: v.view(np.int32)
    return lambda v: v.view(np.int64)


_exp32 = _make_exp(np.float32, np.int32, _F32)
_exp64 = _make_exp(np.float64, np.int64, _F64)


def exp_inplace(v, k):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(exp_inplace)
def _exp_ov(v, k):
    if v.dtype == types.float32:
        return lambda v, k: _exp32(v, k)
    return lambda v, k: _exp64(v, k)


@njit(cache=CACHE, fastmath=FASTMATH, error_model="numpy")
def sigmoid_inplace(v, k):
    """v <- 1 / (1 + exp(-v)); k is scratch of v's length and dtype."""
    one = v.dtype.type(1)  # typed constants: a bare 1 would turn float32 arithmetic into float64
    for j in range(v.shape[0]):
        v[j] = -v[j]
    exp_inplace(v, k)
    for j in range(v.shape[0]):
        v[j] = one / (one + v[j])


def _tanh_small(x):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_tanh_small)
def _tanh_small_ov(x):
    """tanh(x) for |x| < 0.625: x + x^3 P(x^2) (Cephes' tanhf polynomial; float64: its rational
    P/Q), where (1 - e) / (1 + e) cancels (1e-2 relative error at 1e-6, 0 below 1e-8)."""
    if x == types.float32:
        c0, c1, c2 = np.float32(-5.70498872745e-3), np.float32(2.06390887954e-2), np.float32(-5.37397155531e-2)
        c3, c4 = np.float32(1.33314422036e-1), np.float32(-3.33332819422e-1)

        def f(x):
            s = x * x
            return ((((c0 * s + c1) * s + c2) * s + c3) * s + c4) * s * x + x

        return f
    p0, p1, p2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
    q0, q1, q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3

    def g(x):
        s = x * x
        return x + x * s * (((p0 * s + p1) * s + p2) / (((s + q0) * s + q1) * s + q2))

    return g


@njit(cache=CACHE, fastmath=FASTMATH, error_model="numpy")
def tanh_inplace(v, k, s):
    """v <- tanh(v): sign(v) (1 - e) / (1 + e), e = exp(-2|v|), for |v| >= 0.625, a polynomial
    below (accurate to a few ulp relative to the true value everywhere); k, s are scratch."""
    one, m2, small = v.dtype.type(1), v.dtype.type(-2), v.dtype.type(0.625)
    for j in range(v.shape[0]):
        s[j] = v[j]
        v[j] = m2 * abs(v[j])
    exp_inplace(v, k)
    for j in range(v.shape[0]):
        x = s[j]
        t = (one - v[j]) / (one + v[j])
        t = -t if x < 0 else t
        v[j] = _tanh_small(x) if abs(x) < small else t
