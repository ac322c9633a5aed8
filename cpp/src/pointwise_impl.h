// The fused pointwise passes of every cell, written once as plain loops that GCC vectorises for the
// ISA of the including file (pointwise_scalar.cpp / _avx2.cpp / _avx512.cpp define RNNKIT_ISA_NS).
// Each function handles rows [0, rows) and the unit blocks [blk0, blk1) of one thread; see
// rnnkit/pointwise.h for the packed column layout. Check: tests/test_backends.py, with
// RNNKIT_CPU_ISA=scalar|avx2|avx512 to force each table.
#include <cstring>

#include "rnnkit/gates.h"
#include "rnnkit/pointwise.h"
#include "gemm_impl.h"

namespace rnnkit {
namespace RNNKIT_ISA_NS {
namespace {

#define RK_RESTRICT __restrict__

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

// Copies this thread's units of h (row i) to where the next step or the caller reads them.
template <class T> inline void route_h(const StepFwd<T>& s, int64_t i, const T* h) {
  const int64_t u0 = s.blk0 * kBlock, u1 = min_(s.blk1 * kBlock, s.H);
  T* dst = i < s.rows_next ? s.h_next + i * s.H : s.h_n + s.perm[i] * s.H;
  std::memcpy(dst + u0, h + u0, sizeof(T) * (u1 - u0));
}

template <class T, bool Relu, bool Train> void rnn_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT acc = s.acc + i * s.ld_acc - acc0;
    T* RK_RESTRICT xg = s.xg + i * H;
    T* RK_RESTRICT y = s.y + s.perm[i] * H;
    const T* RK_RESTRICT b = s.b;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        const T a = xg[col + u] + acc[col + u] + b[u0 + u];
        const T h = Relu ? (a < T(0) ? T(0) : a) : tanh_(a);  // relu keeps NaN
        y[u0 + u] = h;
        if (Train) xg[col + u] = h;
      }
    });
    route_h(s, i, y);
  }
}

template <class T, bool Relu> void rnn_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT xg = s.xg + i * H;
    const T* RK_RESTRICT dy = s.dy + s.perm[i] * H;
    const T* RK_RESTRICT dh = s.dh + i * H;
    T* RK_RESTRICT dg = s.dg + i * H;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        const T h = xg[col + u], d = dy[u0 + u] + dh[u0 + u];
        dg[col + u] = Relu ? (h > T(0) ? d : T(0)) : d * (T(1) - h * h);
      }
    });
  }
}

template <class T, bool Train> void lstm_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * 4 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT acc = s.acc + i * s.ld_acc - acc0;
    T* RK_RESTRICT xg = s.xg + i * 4 * H;
    T* RK_RESTRICT c = s.c + i * H;
    T* RK_RESTRICT cp_out = Train ? s.c_prev_out + i * H : nullptr;
    T* RK_RESTRICT y = s.y + s.perm[i] * H;
    const T* RK_RESTRICT b = s.b;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      T* RK_RESTRICT gx = xg + col;
      const T* RK_RESTRICT ga = acc + col;
      for (int64_t u = 0; u < wb; ++u) {
        const T ig = sigmoid_(gx[u] + ga[u] + b[0 * H + u0 + u]);
        const T fg = sigmoid_(gx[wb + u] + ga[wb + u] + b[1 * H + u0 + u]);
        const T gg = tanh_(gx[2 * wb + u] + ga[2 * wb + u] + b[2 * H + u0 + u]);
        const T og = sigmoid_(gx[3 * wb + u] + ga[3 * wb + u] + b[3 * H + u0 + u]);
        const T cp = c[u0 + u];
        const T cn = fg * cp + ig * gg;
        c[u0 + u] = cn;
        y[u0 + u] = og * tanh_(cn);
        if (Train) {
          cp_out[u0 + u] = cp;
          gx[u] = ig, gx[wb + u] = fg, gx[2 * wb + u] = gg, gx[3 * wb + u] = og;
        }
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void lstm_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT xg = s.xg + i * 4 * H;
    const T* RK_RESTRICT cp = s.c_prev + i * H;
    const T* RK_RESTRICT dy = s.dy + s.perm[i] * H;
    const T* RK_RESTRICT dh = s.dh + i * H;
    T* RK_RESTRICT dc = s.dc + i * H;
    T* RK_RESTRICT dg = s.dg + i * 4 * H;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      const T* RK_RESTRICT g = xg + col;
      T* RK_RESTRICT d = dg + col;
      for (int64_t u = 0; u < wb; ++u) {
        const T ig = g[u], fg = g[wb + u], gg = g[2 * wb + u], og = g[3 * wb + u];
        const T c_prev = cp[u0 + u];
        const T tc = tanh_(fg * c_prev + ig * gg);  // tanh(c_t), recomputed rather than stored
        const T dht = dy[u0 + u] + dh[u0 + u];
        const T dct = dc[u0 + u] + dht * og * (T(1) - tc * tc);
        d[u] = dct * gg * ig * (T(1) - ig);
        d[wb + u] = dct * c_prev * fg * (T(1) - fg);
        d[2 * wb + u] = dct * ig * (T(1) - gg * gg);
        d[3 * wb + u] = dht * tc * og * (T(1) - og);
        dc[u0 + u] = dct * fg;
      }
    });
  }
}

template <class T, bool Train> void gru_fwd_t(const StepFwd<T>& s) {
  const int64_t H = s.H, acc0 = s.blk0 * 3 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT acc = s.acc + i * s.ld_acc - acc0;
    T* RK_RESTRICT xg = s.xg + i * 3 * H;
    const T* RK_RESTRICT hp = s.h_prev + i * H;
    T* RK_RESTRICT hn_out = Train ? s.hn_out + i * H : nullptr;
    T* RK_RESTRICT y = s.y + s.perm[i] * H;
    const T* RK_RESTRICT b = s.b;
    const T* RK_RESTRICT b_hn = s.b_hn;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      T* RK_RESTRICT gx = xg + col;
      const T* RK_RESTRICT ga = acc + col;
      for (int64_t u = 0; u < wb; ++u) {
        const T r = sigmoid_(gx[u] + ga[u] + b[u0 + u]);
        const T z = sigmoid_(gx[wb + u] + ga[wb + u] + b[H + u0 + u]);
        const T hn = ga[2 * wb + u] + b_hn[u0 + u];
        const T n = tanh_(gx[2 * wb + u] + b[2 * H + u0 + u] + r * hn);
        y[u0 + u] = (T(1) - z) * n + z * hp[u0 + u];
        if (Train) {
          hn_out[u0 + u] = hn;
          gx[u] = r, gx[wb + u] = z, gx[2 * wb + u] = n;
        }
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void gru_bwd_t(const StepBwd<T>& s) {
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* RK_RESTRICT xg = s.xg + i * 3 * H;
    const T* RK_RESTRICT hp = s.h_prev + i * H;
    const T* RK_RESTRICT hnv = s.hn + i * H;
    const T* RK_RESTRICT dy = s.dy + s.perm[i] * H;
    T* RK_RESTRICT dh = s.dh + i * H;
    T* RK_RESTRICT dg = s.dg + i * 3 * H;
    T* RK_RESTRICT dn = s.dn + i * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      const T* RK_RESTRICT g = xg + col;
      T* RK_RESTRICT d = dg + col;
      for (int64_t u = 0; u < wb; ++u) {
        const T r = g[u], z = g[wb + u], n = g[2 * wb + u];
        const T dht = dy[u0 + u] + dh[u0 + u];
        const T dnv = dht * (T(1) - z) * (T(1) - n * n);
        d[u] = dnv * hnv[u0 + u] * r * (T(1) - r);
        d[wb + u] = dht * (hp[u0 + u] - n) * z * (T(1) - z);
        d[2 * wb + u] = dnv * r;  // recurrent side: n = tanh(.. + r * (W_hn h + b_hn))
        dn[u0 + u] = dnv;
        dh[u0 + u] = dht * z;  // direct path h_t = .. + z * h_{t-1}; the GEMM adds the rest
      }
    });
  }
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
template <class T> void lstm_fwd(const StepFwd<T>& s) {
  s.training ? lstm_fwd_t<T, true>(s) : lstm_fwd_t<T, false>(s);
}
template <class T> void gru_fwd(const StepFwd<T>& s) {
  s.training ? gru_fwd_t<T, true>(s) : gru_fwd_t<T, false>(s);
}

}  // namespace

extern const PointwiseTable<float> table_f32 = {
    rnn_fwd<float>, rnn_bwd<float>, lstm_fwd<float>, lstm_bwd_t<float>, gru_fwd<float>,
    gru_bwd_t<float>, gemm_packed<float>, GemmShape<float>::NR};
extern const PointwiseTable<double> table_f64 = {
    rnn_fwd<double>, rnn_bwd<double>, lstm_fwd<double>, lstm_bwd_t<double>, gru_fwd<double>,
    gru_bwd_t<double>, gemm_packed<double>, GemmShape<double>::NR};

}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
