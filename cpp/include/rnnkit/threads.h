// rnnkit/threads.h: rnnkit's own thread pool (cpp/src/threads.cpp), the one threading design of the
// C++ backend. parallel(nt, f) runs f(k, nt) for k = 0 .. nt-1, the calling thread being k = 0, and
// returns when every k is done. Barrier synchronises any subset of those threads (a whole call, or
// one direction of a bidirectional layer).
//
// Why not OpenMP: GNU libgomp's pool does not survive fork() (a child calling rnnkit after a
// threaded call in the parent hung: DataLoader workers fork by default), and its barrier sleeps
// on a futex at a fixed spin count it does not let a library choose per region. This pool is
// fork-safe (pthread_atfork: a child starts with no pool and builds a new one on its first call),
// serves concurrent callers (each call takes a team of its own from a free list), and every wait,
// between steps and between calls, spins for a bounded time and then sleeps on a futex, so a
// descheduled vCPU or an idle pool never burns the other core.
// Check: tests/test_threads.py (bitwise across thread counts, fork, concurrent callers).
#pragma once
#include <atomic>
#include <cstdint>

namespace rnnkit {

// Spin-then-sleep waiting on a 32-bit word (Linux futex; elsewhere a yield loop). Returns whether
// it had to sleep (the word did not change within the spin time) and, if so, whether the wait
// outlasted the work this thread did since its previous wait: the case where the threads it waits
// for are too slow for its share of the work to pay (a descheduled thread, not an uneven split).
namespace detail {
enum class Wait { kSpun, kSlept, kSleptLonger };
Wait wait_while_equal(std::atomic<uint32_t>& word, uint32_t value, std::atomic<int>& sleepers);
void wake_all(std::atomic<uint32_t>& word, std::atomic<int>& sleepers);
using TaskFn = void (*)(void* ctx, int k, int nt);
void parallel_impl(int nt, TaskFn fn, void* ctx);
}  // namespace detail

// f(k, nt) for k in [0, nt) on nt threads; nt <= 1 runs f(0, 1) on the caller. f must not throw.
template <class F> void parallel(int nt, F&& f) {
  if (nt <= 1) return f(0, 1);
  detail::parallel_impl(
      nt, [](void* c, int k, int n) { (*static_cast<F*>(c))(k, n); }, &f);
}

// A reusable barrier for n threads: generation counter, spin then futex. slept() counts the waits
// that outlasted the spin: with steps of microseconds, a sign that a thread was descheduled;
// slept_longer() those that also outlasted the waiter's own work since its previous wait: with
// longer steps, the sign (a wait outlasting the spin may just be an uneven split of a long step).
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    if (n_ <= 1) return;
    const uint32_t gen = generation_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_seq_cst);
      detail::wake_all(generation_, sleepers_);
      return;
    }
    const detail::Wait w = detail::wait_while_equal(generation_, gen, sleepers_);
    if (w != detail::Wait::kSpun) slept_.fetch_add(1, std::memory_order_relaxed);
    if (w == detail::Wait::kSleptLonger) slept_longer_.fetch_add(1, std::memory_order_relaxed);
  }
  int slept() const { return slept_.load(std::memory_order_relaxed); }
  int slept_longer() const { return slept_longer_.load(std::memory_order_relaxed); }
  int phases() const { return static_cast<int>(generation_.load(std::memory_order_relaxed)); }  // completed waits

 private:
  int n_;
  std::atomic<int> count_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> slept_{0};
  std::atomic<int> slept_longer_{0};
};

// Worker threads created so far in this process (all teams); 0 in a freshly forked child.
int pool_threads();

// Run parallel() regions on the host's GNU OpenMP runtime (the libgomp already loaded from
// `library`, e.g. torch's) instead of rnnkit's own pool; nullptr goes back to the pool. Returns
// whether the runtime was found. A forked child always runs on rnnkit's pool (and refuses this).
namespace detail {
bool use_host_openmp(const char* library);
bool using_host_openmp();
}  // namespace detail

}  // namespace rnnkit
