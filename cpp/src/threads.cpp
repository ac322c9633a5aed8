// rnnkit's thread pool (see rnnkit/threads.h): teams of worker threads kept in a free list, one
// team per concurrent call, futex-based spin-then-sleep waits, and a pthread_atfork handler that
// leaves a forked child with an empty pool.
// Check: tests/test_threads.py.
#include "rnnkit/threads.h"

#include <dlfcn.h>
#include <pthread.h>

#include <chrono>
#include <climits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RNNKIT_PAUSE() _mm_pause()
#else
#define RNNKIT_PAUSE() std::this_thread::yield()
#endif

namespace rnnkit {

namespace detail {

namespace {

// How long a waiting thread spins before it sleeps. Long enough to cover the imbalance between
// threads within a step and the Python work between two calls of a training loop (waking a
// sleeping thread costs 5-50 us on these VMs, more when its vCPU was halted); short enough that an
// idle pool or an oversubscribed core is handed back quickly.
constexpr auto kSpin = std::chrono::microseconds(200);

#if defined(__linux__)
void futex_wait(std::atomic<uint32_t>& word, uint32_t value) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}
#else
void futex_wait(std::atomic<uint32_t>&, uint32_t) { std::this_thread::yield(); }
void futex_wake(std::atomic<uint32_t>&) {}
#endif

// When this thread last left a wait (approximately: the spin loop's last clock read), to measure
// the work it did before the next one. The epoch at first: a first wait counts as never long.
thread_local std::chrono::steady_clock::time_point t_last_exit{};

}  // namespace

Wait wait_while_equal(std::atomic<uint32_t>& word, uint32_t value, std::atomic<int>& sleepers) {
  const auto start = std::chrono::steady_clock::now();
  auto seen = start;
  for (unsigned i = 1;; ++i) {
    if (word.load(std::memory_order_acquire) != value) {
      t_last_exit = seen;
      return Wait::kSpun;
    }
    RNNKIT_PAUSE();
    if (i % 64 == 0 && (seen = std::chrono::steady_clock::now()) - start > kSpin) break;
  }
  // The waker changes the word, then reads sleepers; we raise sleepers, then read the word (both
  // sequentially consistent): either it sees us and wakes us, or we see its change.
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  while (word.load(std::memory_order_seq_cst) == value) futex_wait(word, value);
  sleepers.fetch_sub(1, std::memory_order_relaxed);
  const auto end = std::chrono::steady_clock::now();
  const bool longer = end - start > start - t_last_exit;  // waited longer than it had worked
  t_last_exit = end;
  return longer ? Wait::kSleptLonger : Wait::kSlept;
}

void wake_all(std::atomic<uint32_t>& word, std::atomic<int>& sleepers) {
  if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake(word);
}

namespace {

std::atomic<int> g_pool_threads{0};

// nw worker threads running one task at a time for one caller. A team lives until the process
// ends (its threads sleep when idle); a forked child forgets every team of its parent, whose
// threads do not exist there, without destroying them.
class Team {
 public:
  explicit Team(int nw) : nw_(nw) {
    for (int i = 0; i < nw; ++i) std::thread([this, i] { loop(i + 1); }).detach();
    g_pool_threads += nw;
  }
  int size() const { return nw_; }

  void run(int nt, TaskFn fn, void* ctx) {
    fn_ = fn, ctx_ = ctx, nt_ = nt;
    pending_.store(static_cast<uint32_t>(nw_), std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_seq_cst);  // publishes the task
    wake_all(epoch_, epoch_sleepers_);
    fn(ctx, 0, nt);
    for (uint32_t v; (v = pending_.load(std::memory_order_acquire)) != 0;)
      wait_while_equal(pending_, v, done_sleepers_);
  }

 private:
  void loop(int k) {
    for (uint32_t seen = 0;;) {
      wait_while_equal(epoch_, seen, epoch_sleepers_);
      seen = epoch_.load(std::memory_order_acquire);
      if (k < nt_) fn_(ctx_, k, nt_);
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_all(pending_, done_sleepers_);
    }
  }

  const int nw_;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int nt_ = 0;
  std::atomic<uint32_t> epoch_{0}, pending_{0};
  std::atomic<int> epoch_sleepers_{0}, done_sleepers_{0};
};

std::mutex g_mu;
std::vector<Team*>* g_free = new std::vector<Team*>();  // idle teams; never destroyed (see Team)

void before_fork() { g_mu.lock(); }
void after_fork_parent() { g_mu.unlock(); }
// The host's OpenMP runtime (GNU libgomp, already loaded by torch), when use_host_openmp found it.
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
using OmpInt = int (*)();
struct HostOpenMP {
  GompParallel parallel = nullptr;
  OmpInt thread_num = nullptr, in_parallel = nullptr, get_dynamic = nullptr, thread_limit = nullptr;
};
std::atomic<const HostOpenMP*> g_host{nullptr};
std::atomic<bool> g_forked{false};  // this process is a forked child: never the host's OpenMP

void after_fork_child() {
  g_free->clear();  // the teams' threads were not copied into the child: forget (leak) them
  g_pool_threads = 0;
  // libgomp's pool does not survive fork either (a child starting a region hangs when the parent
  // had a team): a child runs on rnnkit's own pool.
  g_host.store(nullptr, std::memory_order_relaxed);
  g_forked.store(true, std::memory_order_relaxed);
  g_mu.unlock();  // held by this very thread since before_fork
}
const int g_atfork = pthread_atfork(before_fork, after_fork_parent, after_fork_child);

Team* acquire(int nw) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto it = g_free->begin(); it != g_free->end(); ++it)
      if ((*it)->size() == nw) {
        Team* t = *it;
        g_free->erase(it);
        return t;
      }
  }
  return new Team(nw);
}

void release(Team* t) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_free->push_back(t);
}

}  // namespace

namespace {
struct HostTask {
  TaskFn fn;
  void* ctx;
  int nt;
  OmpInt thread_num;
};
void host_task(void* p) {
  const HostTask* t = static_cast<const HostTask*>(p);
  t->fn(t->ctx, t->thread_num(), t->nt);
}
}  // namespace

void parallel_impl(int nt, TaskFn fn, void* ctx) {
  (void)g_atfork;
  // On the host's OpenMP threads when they are there (inside torch: its own intra-op threads,
  // which otherwise spin on the cores rnnkit's threads need after every parallel torch op), and
  // only when libgomp will give exactly nt threads (no dynamic teams, no thread limit below nt,
  // not nested in a region): rnnkit's barriers need every one of them.
  const HostOpenMP* h = g_host.load(std::memory_order_acquire);
  if (h && !h->in_parallel() && !h->get_dynamic() && h->thread_limit() >= nt) {
    HostTask t{fn, ctx, nt, h->thread_num};
    h->parallel(host_task, &t, static_cast<unsigned>(nt), 0);
    return;
  }
  Team* t = acquire(nt - 1);
  t->run(nt, fn, ctx);
  release(t);
}

bool use_host_openmp(const char* library) {
  // A forked child may have inherited a libgomp whose threads did not come along (a region there
  // would hang): it keeps rnnkit's pool.
  if (library == nullptr || g_forked.load(std::memory_order_relaxed)) {
    g_host.store(nullptr, std::memory_order_release);
    return false;
  }
  void* lib = dlopen(library, RTLD_NOW | RTLD_NOLOAD);  // only a runtime the process already holds
  if (lib == nullptr) return false;
  auto* h = new HostOpenMP;  // kept for the process (a region may be using it)
  h->parallel = reinterpret_cast<GompParallel>(dlsym(lib, "GOMP_parallel"));
  h->thread_num = reinterpret_cast<OmpInt>(dlsym(lib, "omp_get_thread_num"));
  h->in_parallel = reinterpret_cast<OmpInt>(dlsym(lib, "omp_in_parallel"));
  h->get_dynamic = reinterpret_cast<OmpInt>(dlsym(lib, "omp_get_dynamic"));
  h->thread_limit = reinterpret_cast<OmpInt>(dlsym(lib, "omp_get_thread_limit"));
  if (!h->parallel || !h->thread_num || !h->in_parallel || !h->get_dynamic || !h->thread_limit) {
    delete h;
    return false;
  }
  g_host.store(h, std::memory_order_release);
  return true;
}

bool using_host_openmp() { return g_host.load(std::memory_order_acquire) != nullptr; }

}  // namespace detail

int pool_threads() { return detail::g_pool_threads.load(); }

}  // namespace rnnkit
