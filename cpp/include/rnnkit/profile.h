// rnnkit/profile.h: per-phase timers of the sequence drivers, behind a debug switch (off by
// default; one relaxed atomic load per phase when off). Each thread sums the wall time of its own
// phases in a PhaseClock and adds them to process-wide totals once, at the end of its part of a
// call; the totals are thread-seconds (two threads in the same phase for 1 ms add 2 ms).
// Read from Python: rnnkit._core.profile(enable) / profile_read() / profile_reset();
// benchmarks/phases.py prints the breakdown of one case.
// Check: tests/test_threads.py::test_phase_profile_accounts_for_the_call.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace rnnkit {

enum class Phase : int {
  kSetup,       // packing weights, permuting states, packing x (lengths)
  kInput,       // the input projection (forward)
  kStepGemm,    // the per-step recurrent products (forward h W_hh^T, backward dg W_hh)
  kPointwise,   // the fused pointwise passes
  kWait,        // barrier waits between steps and phases
  kWeightGrad,  // dW_ih, dW_hh, biases (backward)
  kInputGrad,   // dx (backward)
  kCount
};
constexpr const char* kPhaseNames[] = {"setup",  "input", "step_gemm",  "pointwise",
                                       "wait",   "weight_grad", "input_grad"};

void set_profiling(bool on);
bool profiling();
void profile_add(const int64_t* ns);  // kCount values
void profile_read(int64_t* ns);       // kCount values
void profile_reset();

// One thread's clock: lap(phase) charges the time since the previous lap to phase.
class PhaseClock {
 public:
  PhaseClock() : on_(profiling()) {
    if (on_) last_ = now();
  }
  ~PhaseClock() {
    if (on_) profile_add(ns_);
  }
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;
  void lap(Phase p) {
    if (!on_) return;
    const int64_t t = now();
    ns_[static_cast<int>(p)] += t - last_;
    last_ = t;
  }
  // Restart without charging (the time spent in a parallel region that has clocks of its own).
  void skip() {
    if (on_) last_ = now();
  }

 private:
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool on_;
  int64_t last_ = 0;
  int64_t ns_[static_cast<int>(Phase::kCount)] = {};
};

}  // namespace rnnkit
