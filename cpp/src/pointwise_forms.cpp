// The pointwise passes of the cells with ONNX's options (rnnkit/forms.h), scalar, one function per
// plain pass of pointwise_impl.h, on the same packed layout (rnnkit/pointwise.h). The maths is the
// NumPy reference's (rnnkit/reference/_common.py: act, act_backprop, gate, gate_backprop), checked
// against it by tests/test_cell_forms.py.
#include "rnnkit/forms.h"

#include <cmath>
#include <cstring>

#include "rnnkit/gates.h"

namespace rnnkit {
namespace forms {
namespace {

inline int64_t min_(int64_t a, int64_t b) { return a < b ? a : b; }

// Activation k of the form at a.
template <class T> T act(const Form& f, int k, T a) {
  const T al = T(f.alpha[k]), be = T(f.beta[k]);
  switch (f.act[k]) {
    case Act::kSigmoid: return T(1) / (T(1) + std::exp(-a));
    case Act::kTanh: return std::tanh(a);
    case Act::kRelu: return a > 0 || a != a ? a : T(0);  // keeps NaN, as np.maximum
    case Act::kLeakyRelu: return a >= 0 ? a : al * a;
    case Act::kThresholdedRelu: return a > al ? a : T(0);
    case Act::kScaledTanh: return al * std::tanh(be * a);
    case Act::kHardSigmoid: {
      const T v = al * a + be;
      return v < 0 ? T(0) : v > 1 ? T(1) : v;
    }
    case Act::kElu: return a >= 0 ? a : al * std::expm1(a);
    case Act::kSoftsign: return a / (T(1) + std::fabs(a));
    case Act::kSoftplus: return a > 0 ? a + std::log1p(std::exp(-a)) : std::log1p(std::exp(a));
    default: return al * a + be;  // kAffine
  }
}

// d * act'(a) for activation k; piecewise ones select, so a NaN gradient stops where a unit is off.
template <class T> T act_backprop(const Form& f, int k, T a, T d) {
  const T al = T(f.alpha[k]), be = T(f.beta[k]);
  switch (f.act[k]) {
    case Act::kSigmoid: {
      const T s = T(1) / (T(1) + std::exp(-a));
      return d * s * (T(1) - s);
    }
    case Act::kTanh: {
      const T t = std::tanh(a);
      return d * (T(1) - t * t);
    }
    case Act::kRelu: return a > 0 ? d : T(0);
    case Act::kLeakyRelu: return a >= 0 ? d : al * d;
    case Act::kThresholdedRelu: return a > al ? d : T(0);
    case Act::kScaledTanh: {
      const T t = std::tanh(be * a);
      return d * (al * be) * (T(1) - t * t);
    }
    case Act::kHardSigmoid: {
      const T v = al * a + be;
      return v > 0 && v < 1 ? al * d : T(0);
    }
    case Act::kElu: return a >= 0 ? d : d * al * std::exp(a);
    case Act::kSoftsign: {
      const T q = T(1) + std::fabs(a);
      return d / (q * q);
    }
    case Act::kSoftplus: return d / (T(1) + std::exp(-a));
    default: return al * d;  // kAffine
  }
}

// A gate: activation k of its pre-activation, clipped to [-clip, clip] first when the form clips.
template <class T> T gate(const Form& f, int k, T a) {
  if (f.clip > 0) a = a < -T(f.clip) ? -T(f.clip) : a > T(f.clip) ? T(f.clip) : a;
  return act(f, k, a);
}
// d * d(gate)/da: past the clip bounds (or at a NaN) the gradient stops.
template <class T> T gate_backprop(const Form& f, int k, T a, T d) {
  if (f.clip > 0) {
    if (!(std::fabs(a) <= T(f.clip))) return T(0);
  }
  return act_backprop(f, k, a, d);
}

// Calls body(u0, wb, col) for each unit block of the thread: first unit, width, first packed column.
template <class F> void for_blocks(int64_t H, int64_t G, int64_t blk0, int64_t blk1, F&& body) {
  for (int64_t b = blk0; b < blk1; ++b) {
    const int64_t u0 = b * kBlock;
    body(u0, min_(kBlock, H - u0), b * G * kBlock);
  }
}

// This thread's units of h (row i) to where the next step or the caller reads them.
template <class T> void route_h(const StepFwd<T>& s, int64_t i, const T* h) {
  if (!s.h_n) return;  // an LSTM with projections: the driver routes W_hr h
  const int64_t u0 = s.blk0 * kBlock, u1 = min_(s.blk1 * kBlock, s.H);
  T* dst = i < s.rows_next ? s.h_next + i * s.H : s.h_n + s.perm[i] * s.H;
  std::memcpy(dst + u0, h + u0, sizeof(T) * (u1 - u0));
}

}  // namespace

template <class T> void rnn_fwd(const StepFwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H, acc0 = s.blk0 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        const T a = xg[col + u] + acc[col + u] + s.b[u0 + u];
        y[u0 + u] = gate(f, 0, a);
        xg[col + u] = a;
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void rnn_bwd(const StepBwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * H;
    const T* dy = s.dy + s.perm[i] * s.ld_dy;
    const T* dh = s.dh + i * H;
    T* dg = s.dg + i * H;
    for_blocks(H, 1, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u)
        dg[col + u] = gate_backprop(f, 0, xg[col + u], dy[u0 + u] + dh[u0 + u]);
    });
  }
}

template <class T> void lstm_fwd(const StepFwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H, acc0 = s.blk0 * 4 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 4 * H;
    T* c = s.c + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        T* gx = xg + col + u;
        const T* ga = acc + col + u;
        const int64_t j = u0 + u;
        const T cp = c[j];
        T ai = gx[0] + ga[0] + s.b[j], af = gx[wb] + ga[wb] + s.b[H + j];
        const T ag = gx[2 * wb] + ga[2 * wb] + s.b[2 * H + j];
        T ao = gx[3 * wb] + ga[3 * wb] + s.b[3 * H + j];
        if (s.P) ai += s.P[j] * cp, af += s.P[H + j] * cp;  // i and f peep at c_{t-1}
        const T ig = gate(f, 0, ai), fg = f.input_forget ? T(1) - ig : gate(f, 0, af);
        const T cn = fg * cp + ig * gate(f, 1, ag);  // c_t = f * c_{t-1} + i * g
        if (s.P) ao += s.P[2 * H + j] * cn;  // o peeps at c_t
        c[j] = cn;
        y[j] = gate(f, 0, ao) * act(f, 2, cn);  // h_t = o * h(c_t), c_t not clipped
        if (s.training) s.c_prev_out[i * H + j] = cp;
        gx[0] = ai, gx[wb] = af, gx[2 * wb] = ag, gx[3 * wb] = ao;  // pre-activations
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void lstm_bwd(const StepBwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 4 * H;
    const T* cp = s.c_prev + i * H;
    const T* dy = s.dy ? s.dy + s.perm[i] * s.ld_dy : nullptr;
    const T* dh = s.dh + i * H;
    T* dc = s.dc + i * H;
    T* dg = s.dg + i * 4 * H;
    for_blocks(H, 4, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        const T* g = xg + col + u;
        T* d = dg + col + u;
        const int64_t j = u0 + u;
        const T ai = g[0], af = g[wb], ag = g[2 * wb], ao = g[3 * wb], c_prev = cp[j];
        const T ig = gate(f, 0, ai), fg = f.input_forget ? T(1) - ig : gate(f, 0, af), gg = gate(f, 1, ag);
        const T cn = fg * c_prev + ig * gg, og = gate(f, 0, ao), hc = act(f, 2, cn);
        const T dht = dy ? dy[j] + dh[j] : dh[j];
        const T dao = gate_backprop(f, 0, ao, dht * hc);
        T dct = dc[j] + act_backprop(f, 2, cn, dht * og);
        if (s.P) dct += dao * s.P[2 * H + j];  // o peeps at c_t
        // with input_forget f = 1 - i: i also gets f's share, negated
        const T dai = gate_backprop(f, 0, ai, f.input_forget ? dct * (gg - c_prev) : dct * gg);
        const T daf = f.input_forget ? T(0) : gate_backprop(f, 0, af, dct * c_prev);
        d[0] = dai, d[wb] = daf, d[2 * wb] = gate_backprop(f, 1, ag, dct * ig), d[3 * wb] = dao;
        T dcp = dct * fg;
        if (s.P) dcp += dai * s.P[j] + daf * s.P[H + j];  // i, f peep at c_{t-1}
        dc[j] = dcp;
      }
    });
  }
}

template <class T> T lstm_c(const Form& f, const T* g, int64_t ci, int64_t cf, int64_t cg, T c_prev) {
  const T ig = gate(f, 0, g[ci]), fg = f.input_forget ? T(1) - ig : gate(f, 0, g[cf]);
  return fg * c_prev + ig * gate(f, 1, g[cg]);
}

template <class T> void gru_fwd(const StepFwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H, acc0 = s.blk0 * 3 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        T* gx = xg + col + u;
        const T* ga = acc + col + u;
        const int64_t j = u0 + u;
        const T ar = gx[0] + ga[0] + s.b[j], az = gx[wb] + ga[wb] + s.b[H + j];
        const T hn = ga[2 * wb] + s.b_hn[j];
        const T r = gate(f, 0, ar), z = gate(f, 0, az);
        const T an = gx[2 * wb] + s.b[2 * H + j] + r * hn;  // n = g(W_in x + b_in + r * (W_hn h + b_hn))
        y[j] = (T(1) - z) * gate(f, 1, an) + z * hp[j];
        if (s.training) s.hn_out[i * H + j] = hn;
        gx[0] = ar, gx[wb] = az, gx[2 * wb] = an;
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void gru_bwd(const StepBwd<T>& s) {
  const Form& f = *s.form;
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
      for (int64_t u = 0; u < wb; ++u) {
        const T* g = xg + col + u;
        T* d = dg + col + u;
        const int64_t j = u0 + u;
        const T r = gate(f, 0, g[0]), z = gate(f, 0, g[wb]), nv = gate(f, 1, g[2 * wb]);
        const T dht = dy[j] + dh[j];
        const T dnv = gate_backprop(f, 1, g[2 * wb], dht * (T(1) - z));
        d[0] = gate_backprop(f, 0, g[0], dnv * hnv[j]);
        d[wb] = gate_backprop(f, 0, g[wb], dht * (hp[j] - nv));
        d[2 * wb] = dnv * r;  // recurrent side: n = g(.. + r * (W_hn h + b_hn))
        dn[j] = dnv;
        dh[j] = dht * z;  // direct path h_t = .. + z * h_{t-1}; the GEMM adds the rest
      }
    });
  }
}

template <class T> void grb_fwd_rz(const StepFwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H, acc0 = s.blk0 * 2 * kBlock;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* acc = s.acc + i * s.ld_acc - acc0;
    T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    T* rh = s.rh + i * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        T* gx = xg + col + u;
        const T* ga = acc + 2 * u0 + u;  // the G = 2 layout of the r and z products
        const int64_t j = u0 + u;
        const T ar = gx[0] + ga[0] + s.b[j], az = gx[wb] + ga[wb] + s.b[H + j];
        rh[j] = gate(f, 0, ar) * hp[j];  // reset before the product
        gx[0] = ar, gx[wb] = az;
      }
    });
  }
}

template <class T> void grb_fwd_n(const StepFwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    T* xg = s.xg + i * 3 * H;
    const T* an_ = s.acc_n + i * H;
    const T* hp = s.h_prev + i * H;
    T* y = s.y + s.perm[i] * s.ld_y;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        T* gx = xg + col + u;
        const int64_t j = u0 + u;
        const T an = gx[2 * wb] + s.b[2 * H + j] + an_[j], z = gate(f, 0, gx[wb]);
        y[j] = (T(1) - z) * gate(f, 1, an) + z * hp[j];
        gx[2 * wb] = an;
      }
    });
    route_h(s, i, y);
  }
}

template <class T> void grb_bwd_zn(const StepBwd<T>& s) {
  const Form& f = *s.form;
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
      for (int64_t u = 0; u < wb; ++u) {
        const T* g = xg + col + u;
        T* d = dg + col + u;
        const int64_t j = u0 + u;
        const T z = gate(f, 0, g[wb]), nv = gate(f, 1, g[2 * wb]);
        const T dht = dy[j] + dh[j];
        const T dnv = gate_backprop(f, 1, g[2 * wb], dht * (T(1) - z));
        const T dz = gate_backprop(f, 0, g[wb], dht * (hp[j] - nv));
        d[wb] = dz, dgrz[2 * u0 + wb + u] = dz, d[2 * wb] = dnv, dn[j] = dnv;
        dh[j] = dht * z;  // direct path h_t = .. + z * h_{t-1}
      }
    });
  }
}

template <class T> void grb_bwd_r(const StepBwd<T>& s) {
  const Form& f = *s.form;
  const int64_t H = s.H;
  for (int64_t i = 0; i < s.rows; ++i) {
    const T* xg = s.xg + i * 3 * H;
    const T* hp = s.h_prev + i * H;
    const T* drh = s.drh + i * H;
    T* dh = s.dh + i * H;
    T* dg = s.dg + i * 3 * H;
    T* dgrz = s.dgrz + i * 2 * H;
    for_blocks(H, 3, s.blk0, s.blk1, [&](int64_t u0, int64_t wb, int64_t col) {
      for (int64_t u = 0; u < wb; ++u) {
        const int64_t j = u0 + u;
        const T ar = xg[col + u];
        const T dr = gate_backprop(f, 0, ar, drh[j] * hp[j]);
        dg[col + u] = dr, dgrz[2 * u0 + u] = dr;
        dh[j] += drh[j] * gate(f, 0, ar);  // through r * h_{t-1}
      }
    });
  }
}

#define RNNKIT_FORMS(T)                                                                             \
  template void rnn_fwd<T>(const StepFwd<T>&);                                                      \
  template void rnn_bwd<T>(const StepBwd<T>&);                                                      \
  template void lstm_fwd<T>(const StepFwd<T>&);                                                     \
  template void lstm_bwd<T>(const StepBwd<T>&);                                                     \
  template void gru_fwd<T>(const StepFwd<T>&);                                                      \
  template void gru_bwd<T>(const StepBwd<T>&);                                                      \
  template void grb_fwd_rz<T>(const StepFwd<T>&);                                                   \
  template void grb_fwd_n<T>(const StepFwd<T>&);                                                    \
  template void grb_bwd_zn<T>(const StepBwd<T>&);                                                   \
  template void grb_bwd_r<T>(const StepBwd<T>&);                                                    \
  template T lstm_c<T>(const Form&, const T*, int64_t, int64_t, int64_t, T);
RNNKIT_FORMS(float)
RNNKIT_FORMS(double)
#undef RNNKIT_FORMS

}  // namespace forms
}  // namespace rnnkit
