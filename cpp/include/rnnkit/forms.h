// rnnkit/forms.h: the pointwise passes of the cells with ONNX's options (Problem::form: activations
// other than the cell's own, clip, input_forget), cpp/src/pointwise_forms.cpp. They replace the
// per-ISA passes of pointwise.h one for one, on the same packed layout, with one difference in what
// the training cache holds: xg keeps each gate's pre-activation (after the biases and peepholes,
// before the clip), not its activation, because the derivative of an arbitrary activation (and of
// the clip) is taken at the pre-activation; backward recomputes the activations from it. The GRU's
// hn and the LSTM's c_prev are as in pointwise.h. Scalar code with <cmath>: a form is for models
// brought from ONNX, not the hot path (torch's cells never come here).
#pragma once
#include "rnnkit/pointwise.h"

namespace rnnkit {
namespace forms {

template <class T> void rnn_fwd(const StepFwd<T>& s);
template <class T> void rnn_bwd(const StepBwd<T>& s);
template <class T> void lstm_fwd(const StepFwd<T>& s);
template <class T> void lstm_bwd(const StepBwd<T>& s);
template <class T> void gru_fwd(const StepFwd<T>& s);
template <class T> void gru_bwd(const StepBwd<T>& s);
// the GRU with the reset gate before the product, in the order of the plain grb passes
template <class T> void grb_fwd_rz(const StepFwd<T>& s);
template <class T> void grb_fwd_n(const StepFwd<T>& s);
template <class T> void grb_bwd_zn(const StepBwd<T>& s);
template <class T> void grb_bwd_r(const StepBwd<T>& s);
// The LSTM's c_t from one row's pre-activations (packed columns ci, cf, cg of g) and c_{t-1}: the
// peepholes' gradient dP needs it at the end of backward.
template <class T> T lstm_c(const Form& f, const T* g, int64_t ci, int64_t cf, int64_t cg, T c_prev);

}  // namespace forms
}  // namespace rnnkit
