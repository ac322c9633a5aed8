// The fused pointwise passes of every cell, written once as plain loops that GCC vectorises for the
// ISA of the including file (pointwise_scalar.cpp / _avx2.cpp / _avx512.cpp define RNNKIT_ISA_NS).
// Each function handles rows [0, rows) and the unit blocks [blk0, blk1) of one thread; see
// rnnkit/pointwise.h for the packed column layout. Check: tests/test_backends.py, with
// RNNKIT_CPU_ISA=scalar|avx2|avx512 to force each table.
#include <cstring>

#include "rnnkit/gates.h"
#include "rnnkit/pointwise.h"
#include "gemm_impl.h"
#include "pack_impl.h"
#include "onestep_impl.h"

namespace rnnkit {
namespace RNNKIT_ISA_NS {
namespace {

// Local, not std::min: a std:: template instantiated here would be compiled for this ISA and might
// be the copy the linker keeps for every translation unit.
inline int64_t min_(int64_t a, int64_t b) { return a < b ? a : b; }

// Calls body(u0, wb, col) for each block: first unit, width, first packed column. Full blocks
// get the compile-time width, so their inner loops have a fixed trip count.
template <class F>
inline void for_blocks(int64_t H, int64_t G, int64_t blk0, int64_t blk1, F&& body) {
  for (int64_t b = blk0; b < blk1; ++b) {
    const int64_t u0 = b * kBlock, wb = min_(kBlock, H - u0), col = b * G * kBlock;
    if (wb == kBlock)
      body(u0, kBlock, col);
    else
      body(u0, wb, col);
  }
}

constexpr int kVB = RNNKIT_VBYTES;
template <class T> using V = typename Lanes<T, kVB>::V;
template <class T> constexpr int64_t kVL = kVB / sizeof(T);  // lanes per vector
template <class T> inline V<T> splat(T v) { return rnnkit::splat<T, kVB>(v); }
template <class T> __attribute__((always_inline)) inline V<T> sigmoid_(const V<T>& x) { return rnnkit::sigmoid_<T, kVB>(x); }
template <class T> __attribute__((always_inline)) inline V<T> tanh_(const V<T>& x) { return rnnkit::tanh_<T, kVB>(x); }

// n <= kVL units as one vector (fewer are padded with zeros).
template <class T> inline V<T> ld(const T* p, int64_t n) {
  if (n == kVL<T>) return *reinterpret_cast<const V<T>*>(p);
  V<T> v = splat<T>(0);
  std::memcpy(&v, p, sizeof(T) * n);
  return v;
}
template <class T> inline void st(T* p, const V<T>& v, int64_t n) {
  if (n == kVL<T>)
    *reinterpret_cast<V<T>*>(p) = v;
  else
    std::memcpy(p, &v, sizeof(T) * n);
}

// Calls f(u, n) for the vectors covering units [0, wb) of a block: u the first unit, n <= kVL.
template <class T, class F> inline void for_lanes(int64_t wb, F&& f) {
  for (int64_t u = 0; u < wb; u += kVL<T>) f(u, wb - u < kVL<T> ? wb - u : kVL<T>);
}

// Copies this thread's units of h (row i) to where the next step or the caller reads them.
template <class T> inline void route_h(const StepFwd<T>& s, int64_t i, const T* h) {
  if (!s.h_n) return;  // an LSTM with projections: the driver routes W_hr h
  const int64_t u0 = s.blk0 * kBlock, u1 = min_(s.blk1 * kBlock, s.H);
  T* dst = i < s.rows_next ? s.h_next + i * s.H : s.h_n + s.perm[i] * s.H;
  std::memcpy(dst + u0, h + u0, sizeof(T) * (u1 - u0));
}

template <class T, bool Relu, bool Train> __attribute__((flatten)) void rnn_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const V<T> a = ld(xg + col + u, n) + ld(acc + col + u, n) + ld(s.b + u0 + u, n);
        const V<T> h = Relu ? (a < splat<T>(0) ? splat<T>(0) : a) : tanh_<T>(a);  // relu keeps NaN
        st(y + u0 + u, h, n);
        if (Train) st(xg + col + u, h, n);
      });
    });
    route_h(s, i, y);
  }
}

template <class T, bool Relu> __attribute__((flatten)) void rnn_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * H;
    const T* dy = s.dy + s.perm[i] * s.ld_dy;
    const T* dh = s.dh + i * H;
    T* dg = s.dg + i * H;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const V<T> h = ld(xg + col + u, n), d = ld(dy + u0 + u, n) + ld(dh + u0 + u, n);
        st(dg + col + u, Relu ? (h > splat<T>(0) ? d : splat<T>(0)) : d * (T(1) - h * h), n);
      });
    });
  }
}

// Peep: the LSTM with peepholes, i and f also see c_{t-1}, o sees c_t (through s.P).
template <class T, bool Train, bool Peep> __attribute__((flatten)) void lstm_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * 4 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 4 * H;
    T* c = s.c + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        T* gx = xg + col;
        const T* ga = acc + col;
        const V<T> cp = ld(c + u0 + u, n);
        V<T> ai = ld(gx + u, n) + ld(ga + u, n) + ld(s.b + 0 * H + u0 + u, n);
        V<T> af = ld(gx + wb + u, n) + ld(ga + wb + u, n) + ld(s.b + 1 * H + u0 + u, n);
        if (Peep) ai += ld(s.P + u0 + u, n) * cp, af += ld(s.P + H + u0 + u, n) * cp;
        const V<T> ig = sigmoid_<T>(ai), fg = sigmoid_<T>(af);
        const V<T> gg = tanh_<T>(ld(gx + 2 * wb + u, n) + ld(ga + 2 * wb + u, n) + ld(s.b + 2 * H + u0 + u, n));
        const V<T> cn = fg * cp + ig * gg;  // c_t = f * c_{t-1} + i * g
        V<T> ao = ld(gx + 3 * wb + u, n) + ld(ga + 3 * wb + u, n) + ld(s.b + 3 * H + u0 + u, n);
        if (Peep) ao += ld(s.P + 2 * H + u0 + u, n) * cn;
        const V<T> og = sigmoid_<T>(ao);
        st(c + u0 + u, cn, n);
        st(y + u0 + u, og * tanh_<T>(cn), n);  // h_t = o * tanh(c_t)
        if (Train) {
          st(s.c_prev_out + i * H + u0 + u, cp, n);
          st(gx + u, ig, n);
          st(gx + wb + u, fg, n);
          st(gx + 2 * wb + u, gg, n);
          st(gx + 3 * wb + u, og, n);
        }
      });
    });
    route_h(s, i, y);
  }
}

template <class T, bool Dy, bool Peep> __attribute__((flatten)) void lstm_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 4 * H;
    const T* cp = s.c_prev + i * H;
    const T* dy = Dy ? s.dy + s.perm[i] * s.ld_dy : nullptr;
    const T* dh = s.dh + i * H;
    T* dc = s.dc + i * H;
    T* dg = s.dg + i * 4 * H;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const T* g = xg + col;
        T* d = dg + col;
        const V<T> ig = ld(g + u, n), fg = ld(g + wb + u, n), gg = ld(g + 2 * wb + u, n);
        const V<T> og = ld(g + 3 * wb + u, n);
        const V<T> c_prev = ld(cp + u0 + u, n);
        const V<T> tc = tanh_<T>(fg * c_prev + ig * gg);  // tanh(c_t), recomputed rather than stored
        const V<T> dht = Dy ? ld(dy + u0 + u, n) + ld(dh + u0 + u, n) : ld(dh + u0 + u, n);
        const V<T> dao = dht * tc * og * (T(1) - og);
        V<T> dct = ld(dc + u0 + u, n) + dht * og * (T(1) - tc * tc);
        if (Peep) dct += dao * ld(s.P + 2 * H + u0 + u, n);  // o peeps at c_t
        const V<T> dai = dct * gg * ig * (T(1) - ig), daf = dct * c_prev * fg * (T(1) - fg);
        st(d + u, dai, n);
        st(d + wb + u, daf, n);
        st(d + 2 * wb + u, dct * ig * (T(1) - gg * gg), n);
        st(d + 3 * wb + u, dao, n);
        V<T> dcp = dct * fg;
        if (Peep) dcp += dai * ld(s.P + u0 + u, n) + daf * ld(s.P + H + u0 + u, n);  // i, f peep at c_{t-1}
        st(dc + u0 + u, dcp, n);
      });
    });
  }
}

template <class T, bool Train> __attribute__((flatten)) void gru_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * 3 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        T* gx = xg + col;
        const T* ga = acc + col;
        const V<T> r = sigmoid_<T>(ld(gx + u, n) + ld(ga + u, n) + ld(s.b + u0 + u, n));
        const V<T> z = sigmoid_<T>(ld(gx + wb + u, n) + ld(ga + wb + u, n) + ld(s.b + H + u0 + u, n));
        const V<T> hn = ld(ga + 2 * wb + u, n) + ld(s.b_hn + u0 + u, n);
        const V<T> nv = tanh_<T>(ld(gx + 2 * wb + u, n) + ld(s.b + 2 * H + u0 + u, n) + r * hn);
        st(y + u0 + u, (T(1) - z) * nv + z * ld(hp + u0 + u, n), n);
        if (Train) {
          st(s.hn_out + i * H + u0 + u, hn, n);
          st(gx + u, r, n);
          st(gx + wb + u, z, n);
          st(gx + 2 * wb + u, nv, n);
        }
      });
    });
    route_h(s, i, y);
  }
}

template <class T> __attribute__((flatten)) void gru_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    const T* hnv = s.hn + i * H;
    const T* dy = s.dy + s.perm[i] * s.ld_dy;
    T* dh = s.dh + i * H;
    T* dg = s.dg + i * 3 * H;
    T* dn = s.dn + i * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const T* g = xg + col;
        T* d = dg + col;
        const V<T> r = ld(g + u, n), z = ld(g + wb + u, n), nv = ld(g + 2 * wb + u, n);
        const V<T> dht = ld(dy + u0 + u, n) + ld(dh + u0 + u, n);
        const V<T> dnv = dht * (T(1) - z) * (T(1) - nv * nv);
        st(d + u, dnv * ld(hnv + u0 + u, n) * r * (T(1) - r), n);
        st(d + wb + u, dht * (ld(hp + u0 + u, n) - nv) * z * (T(1) - z), n);
        st(d + 2 * wb + u, dnv * r, n);  // recurrent side: n = tanh(.. + r * (W_hn h + b_hn))
        st(dn + u0 + u, dnv, n);
        st(dh + u0 + u, dht * z, n);  // direct path h_t = .. + z * h_{t-1}; the GEMM adds the rest
      });
    });
  }
}

// The GRU with the reset gate before the product, forward: first r, z and r * h_prev (acc: the r
// and z products, packed as for G = 2), then, once the driver has W_hn (r * h_prev) in acc_n, n and
// h_t. The gates go to xg in either mode (in inference it is the chunk workspace): the second pass
// reads z back from there.
template <class T> __attribute__((flatten)) void grb_fwd_rz_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * 2 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    T* rh = s.rh + i * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        T* gx = xg + col;
        const T* ga = acc + 2 * u0;  // block b's columns in the G = 2 layout start at 2 * b * kBlock
        const V<T> r = sigmoid_<T>(ld(gx + u, n) + ld(ga + u, n) + ld(s.b + u0 + u, n));
        const V<T> z = sigmoid_<T>(ld(gx + wb + u, n) + ld(ga + wb + u, n) + ld(s.b + H + u0 + u, n));
        st(rh + u0 + u, r * ld(hp + u0 + u, n), n);  // reset before the product
        st(gx + u, r, n);
        st(gx + wb + u, z, n);
      });
    });
  }
}

template <class T, bool Train> __attribute__((flatten)) void grb_fwd_n_t(const StepFwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    T* xg = s.xg + i * 3 * H;
    const T* an = s.acc_n + i * H;
    const T* hp = s.h_prev + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        T* gx = xg + col;
        const V<T> z = ld(gx + wb + u, n);
        // s.b holds b_in + b_hn here: both add straight to the pre-activation
        const V<T> nv = tanh_<T>(ld(gx + 2 * wb + u, n) + ld(s.b + 2 * H + u0 + u, n) + ld(an + u0 + u, n));
        st(y + u0 + u, (T(1) - z) * nv + z * ld(hp + u0 + u, n), n);  // h_t = (1 - z) * n + z * h_prev
        if (Train) st(gx + 2 * wb + u, nv, n);
      });
    });
    route_h(s, i, y);
  }
}

// ... backward: first dz, dn and the direct path dh_t * z (dn also compact, for d(r*h) = dn W_hn),
// then, once the driver has d(r*h) in drh, dr and the path through r * h_prev.
template <class T> __attribute__((flatten)) void grb_bwd_zn_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    const T* dy = s.dy + s.perm[i] * s.ld_dy;
    T* dh = s.dh + i * H;
    T* dg = s.dg + i * 3 * H;
    T* dn = s.dn + i * H;
    T* dgrz = s.dgrz + i * 2 * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const T* g = xg + col;
        T* d = dg + col;
        const V<T> z = ld(g + wb + u, n), nv = ld(g + 2 * wb + u, n);
        const V<T> dht = ld(dy + u0 + u, n) + ld(dh + u0 + u, n);
        const V<T> dnv = dht * (T(1) - z) * (T(1) - nv * nv);
        const V<T> dz = dht * (ld(hp + u0 + u, n) - nv) * z * (T(1) - z);
        st(d + wb + u, dz, n);
        st(dgrz + 2 * u0 + wb + u, dz, n);
        st(d + 2 * wb + u, dnv, n);
        st(dn + u0 + u, dnv, n);
        st(dh + u0 + u, dht * z, n);  // direct path h_t = .. + z * h_{t-1}
      });
    });
  }
}

template <class T> __attribute__((flatten)) void grb_bwd_r_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    const T* drh = s.drh + i * H;
    T* dh = s.dh + i * H;
    T* dg = s.dg + i * 3 * H;
    T* dgrz = s.dgrz + i * 2 * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for_lanes<T>(wb, [&](int64_t u, int64_t n) {
        const V<T> r = ld(xg + col + u, n), d_rh = ld(drh + u0 + u, n);
        const V<T> dr = d_rh * ld(hp + u0 + u, n) * r * (T(1) - r);
        st(dg + col + u, dr, n);
        st(dgrz + 2 * u0 + u, dr, n);
        st(dh + u0 + u, ld(dh + u0 + u, n) + d_rh * r, n);  // through r * h_{t-1}
      });
    });
  }
}

template <class T> void grb_fwd_n(const StepFwd<T>& s) {
  s.training ? grb_fwd_n_t<T, true>(s) : grb_fwd_n_t<T, false>(s);
}

template <class T> void rnn_fwd(const StepFwd<T>& s, bool relu) {
  if (relu)
    s.training ? rnn_fwd_t<T, true, true>(s) : rnn_fwd_t<T, true, false>(s);
  else
    s.training ? rnn_fwd_t<T, false, true>(s) : rnn_fwd_t<T, false, false>(s);
}
template <class T> void rnn_bwd(const StepBwd<T>& s, bool relu) {
  relu ? rnn_bwd_t<T, true>(s) : rnn_bwd_t<T, false>(s);
}
template <class T> void lstm_bwd(const StepBwd<T>& s) {
  if (s.P)
    s.dy ? lstm_bwd_t<T, true, true>(s) : lstm_bwd_t<T, false, true>(s);
  else
    s.dy ? lstm_bwd_t<T, true, false>(s) : lstm_bwd_t<T, false, false>(s);
}
template <class T> void lstm_fwd(const StepFwd<T>& s) {
  if (s.P)
    s.training ? lstm_fwd_t<T, true, true>(s) : lstm_fwd_t<T, false, true>(s);
  else
    s.training ? lstm_fwd_t<T, true, false>(s) : lstm_fwd_t<T, false, false>(s);
}
template <class T> void gru_fwd(const StepFwd<T>& s) {
  s.training ? gru_fwd_t<T, true>(s) : gru_fwd_t<T, false>(s);
}

template <class T> void activation(int kind, T* x, int64_t n) {
  for (int64_t i = 0; i < n; i += kVL<T>) {
    const int64_t m = min_(kVL<T>, n - i);
    const V<T> v = ld(x + i, m);
    st(x + i, kind == 0 ? rnnkit::exp_<T, kVB>(v) : kind == 1 ? sigmoid_<T>(v) : tanh_<T>(v), m);
  }
}

}  // namespace

extern const PointwiseTable<float> table_f32 = {
    rnn_fwd<float>, rnn_bwd<float>, lstm_fwd<float>, lstm_bwd<float>, gru_fwd<float>,
    gru_bwd_t<float>, grb_fwd_rz_t<float>, grb_fwd_n<float>, grb_bwd_zn_t<float>, grb_bwd_r_t<float>,
    gemm_packed<float>, pack_panels<float>, OneStep<float>::rows_t, OneStep<float>::rows_n, GemmShape<float>::NR,
    activation<float>};
extern const PointwiseTable<double> table_f64 = {
    rnn_fwd<double>, rnn_bwd<double>, lstm_fwd<double>, lstm_bwd<double>, gru_fwd<double>,
    gru_bwd_t<double>, grb_fwd_rz_t<double>, grb_fwd_n<double>, grb_bwd_zn_t<double>, grb_bwd_r_t<double>,
    gemm_packed<double>, pack_panels<double>, OneStep<double>::rows_t, OneStep<double>::rows_n, GemmShape<double>::NR,
    activation<double>};

}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
