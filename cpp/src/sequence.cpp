// The sequence drivers shared by every cell: forward over all steps and backpropagation through
// time (see rnnkit/kernels.h). The cells differ only in their pointwise passes (pointwise_impl.h);
// the GEMM schedule, packing, variable lengths and threading are written once here.
// Threads: one parallel() region per call (rnnkit/threads.h, rnnkit's own fork-safe pool); thread k
// owns a range of hidden-unit blocks, i.e. contiguous packed gate columns, so each step is one GEMM
// + one pointwise pass per thread and one barrier.
// Check: tests/test_backends.py (matrix against the reference), tests/test_threads.py.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "rnnkit/blas.h"
#include "rnnkit/forms.h"
#include "rnnkit/gates.h"
#include "rnnkit/kernels.h"
#include "rnnkit/pack.h"
#include "rnnkit/pointwise.h"
#include "rnnkit/pool.h"
#include "rnnkit/profile.h"
#include "rnnkit/threads.h"

namespace rnnkit {

namespace {

std::atomic<int> g_threads{1};

// A step must hold at least kMinStepWorkPerThread multiply-adds per thread before a second thread
// pays for its barrier (a round trip between the cores costs 0.2-0.4 us here). Measured on a
// 2-core AVX-512 EPYC, T100, one thread / two, medians in one process: LSTM B1 H128 (64 Ki per
// step) 357 / 277 us inference, 1020 / 657 us training; LSTM B2 H64 (32 Ki) 209 / 170 us; GRU
// B4 H64 (48 Ki) 251 / 177 us; below 32 Ki no gain. Each thread then streams only its half of
// W_hh from its own L2.
//
// Such a step lasts a few microseconds, so its barrier is hostage to the scheduler: when the other
// core is taken (another thread pool spinning, torch's OpenMP after its own calls, a CPU quota or
// affinity smaller than the thread count), each step waits for a descheduled thread, up to a
// timeslice (measured once: 23 ms instead of 0.5 for the streaming LSTM). Larger steps suffer the
// same when the other core stays taken: an M LSTM (B16 H256) compiled by inductor, whose OpenMP
// threads spin after the graph's own small kernels, took 19.6 ms instead of 7.5, 16 ms of it in
// barrier waits. So every call on several threads reports how many of its barrier waits outlasted
// the spin (Barrier::slept): a call whose steps hold less than kSureStepWorkPerThread per thread
// (marginal) is contended from two such waits, a larger one when at least one wait in eight
// outlasted the waiter's own work of that step (Barrier::slept_longer; see Contention::report).
// The calls that follow then run on half the threads (Contention) for as long as the contended call
// lasted, and all of them are tried again after that; the period doubles while the contention
// lasts. A time, not a number of calls: what takes the other core (another pool's spin, a vCPU the
// host took away) lasts a time, whatever the calls' size. Measured on a 2-vCPU AMD EPYC (Zen 5),
// M LSTM inference (2.5 ms a call on two threads, 5 on one): a process's first calls were
// contended for ~0.1 s (an OpenBLAS worker spins that long after its library loads: NumPy's, and
// rnnkit's own until rnnkit/_openblas.py), and the backoff counted in calls (8, then 16) kept 24
// calls on one thread, 60 ms lost, long after the spin ended; now 0-2.
constexpr int64_t kMinStepWorkPerThread = 16 * 1024;
constexpr int64_t kSureStepWorkPerThread = 64 * 1024;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The backoff after a contended call (see above); shared by all calls of the process (the other
// core is taken for all of them), relaxed atomics (a lost update only shifts when the threads are
// tried again).
class Contention {
 public:
  static constexpr int64_t kLongestNs = 1000 * 1000 * 1000;  // the longest period on fewer threads
  // Whether this call runs on fewer threads.
  bool demote() {
    if (now_ns() >= until_.load(std::memory_order_relaxed)) return false;
    demoted_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // After a call on several threads that took call_ns: slept of its phases barrier waits outlasted
  // the spin, longer of them also the waiter's own work since its previous wait. A marginal call is
  // contended from two waits that slept; a larger one only from waits longer than the waiter's
  // work, in at least one step of eight: a wait that outlasts the spin but not the work is an
  // uneven split (measured on this 2-vCPU EPYC, LSTM T64 B64 I512 H512 inference: a third of the
  // waits slept, one vCPU being slower than the other, and on half the threads the call took
  // 170 ms instead of 105), while two threads are slower than one only when a thread waits longer
  // than it worked. A contended call sends the calls of the next max(call_ns, twice the last
  // period) to fewer threads; a clean one ends the doubling.
  void report(int slept, int longer, int phases, bool marginal, int64_t call_ns) {
    const int waits = marginal ? slept : longer;
    if (waits < 2 || (!marginal && 8 * waits < phases)) {
      next_.store(0, std::memory_order_relaxed);
      return;
    }
    const int64_t period = std::min(std::max(next_.load(std::memory_order_relaxed), call_ns), kLongestNs);
    until_.store(now_ns() + period, std::memory_order_relaxed);
    next_.store(std::min(2 * period, kLongestNs), std::memory_order_relaxed);
    contended_.fetch_add(1, std::memory_order_relaxed);
  }
  ContentionStats stats() const {
    const int64_t left = until_.load() - now_ns();
    return {contended_.load(), demoted_.load(), left > 0 ? left / 1000 : 0};
  }

 private:
  std::atomic<int64_t> until_{0}, next_{0};
  std::atomic<int64_t> contended_{0}, demoted_{0};
};
Contention g_contention;

int64_t nblocks(int64_t H) { return (H + kBlock - 1) / kBlock; }

// memcpy of n elements; n = 0 may come with null pointers (empty buffers), which memcpy forbids.
template <class T> void copy(T* dst, const T* src, int64_t n) {
  if (n > 0) std::memcpy(dst, src, sizeof(T) * n);
}

// Workspaces that do not leave a call, kept per calling thread for its next call: a fresh
// allocation of a few MB is a fresh mmap whose pages fault in (and are zeroed) on first touch,
// which cost 15% of a long inference call (measured: 1.1k minor faults per call, 127 -> 108 ms).
// Each slot keeps the largest size asked of it while all slots together stay within kKeptBytes
// per thread; a request past that is served from a block of the recycling pool (rnnkit/pool.h) for
// the call, given back at its end, so that the next call's request of the same size finds its
// pages mapped (a backward's 65 MB dgates of an LSTM over 2000 steps, B 8, H 256, faulted in 16k
// pages every call when it was a fresh allocation).
// Contents are undefined on entry: every element is written before it is read (zeroing the large
// ones cost more than whole steps at small sizes). Forward and backward share the slots of the
// same purpose (one call at a time per thread).
enum Slot : int { kWih, kWihPanels, kWhhPanels, kAcc, kStates, kChunk, kDg, kWeightGrads, kDx,
                  kWhrPanels, kProj, kIota, kDgTorch, kSlots };
constexpr int64_t kKeptBytes = 64 << 20;

class Workspace {
 public:
  template <class T> T* get(Slot s, int64_t n) {
    const int64_t bytes = std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(T));
    if (bytes <= size_[s]) return aligned<T>(kept_[s]);
    if (kept_total() - size_[s] + bytes > kKeptBytes) {
      own_[s].reset();
      own_[s].n = static_cast<size_t>(bytes);
      own_[s].p = pool_take(own_[s].n);  // kAlign-aligned, as kept buffers are
      return static_cast<T*>(own_[s].p);
    }
    kept_[s].reset();  // the old one first: both at once would raise the peak
    size_[s] = 0;
    kept_[s].reset(new char[bytes + kAlign]);
    size_[s] = bytes;
    grew_ = true;
    return aligned<T>(kept_[s]);
  }
  // Whether a kept buffer grew during this call: its fresh pages fault in while the threads first
  // touch them, unevenly, so the call's barrier waits say nothing about contention.
  bool grew() const { return grew_; }
  void begin_call() { grew_ = false; }
  // The calling thread's workspace. Not reentrant: one sequence call at a time per thread (the
  // group runs its calls on separate pool threads).
  static Workspace& mine() {
    thread_local Workspace w;
    return w;
  }
  // Releases the buffers of this call that were too large to keep.
  void end_call() {
    for (auto& o : own_) o.reset();
  }

 private:
  static constexpr uintptr_t kAlign = 64;  // a cache line: panels start on one
  template <class T> static T* aligned(const std::unique_ptr<char[]>& p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p.get());
    return reinterpret_cast<T*>((a + kAlign - 1) & ~(kAlign - 1));
  }
  int64_t kept_total() const {
    int64_t n = 0;
    for (int64_t v : size_) n += v;
    return n;
  }
  struct PoolBlock {  // a block of the pool, given back by reset()
    void* p = nullptr;
    size_t n = 0;
    PoolBlock() = default;
    PoolBlock(const PoolBlock&) = delete;
    PoolBlock& operator=(const PoolBlock&) = delete;
    void reset() {
      if (p) pool_give(p, n);
      p = nullptr, n = 0;
    }
    ~PoolBlock() { reset(); }
  };
  std::unique_ptr<char[]> kept_[kSlots];
  PoolBlock own_[kSlots];
  int64_t size_[kSlots] = {};
  bool grew_ = false;
};

// The call's use of the workspace, ended on every way out.
struct WorkspaceCall {
  Workspace& w = Workspace::mine();
  WorkspaceCall() { w.begin_call(); }
  ~WorkspaceCall() { w.end_call(); }
};

// Packed position of gate g of unit u (rows of the packed weights, columns of the gate arrays).
int64_t packed_index(int64_t g, int64_t u, int64_t G, int64_t H) {
  const int64_t b = u / kBlock, wb = std::min(kBlock, H - b * kBlock);
  return b * G * kBlock + g * wb + (u - b * kBlock);
}

// W [G*H, K] in PyTorch's gate-major order -> rows in packed order, at out [G*H, K].
template <class T> void pack_rows(T* out, const T* W, int64_t G, int64_t H, int64_t K) {
  for (int64_t g = 0; g < G; ++g)
    for (int64_t u = 0; u < H; ++u) copy(out + packed_index(g, u, G, H) * K, W + (g * H + u) * K, K);
}

// Work is cut into a fixed number of panels (contiguous unit blocks; for dx, row ranges) that does
// not depend on the thread count, and every GEMM call covers exactly one panel: the BLAS then sees
// the same calls whatever the thread count, so results are bitwise identical across thread counts.
constexpr int64_t kPanels = 4;
// Rows (N, the valid steps' rows of all steps) up to which a backward call takes its weight and
// input gradients in PyTorch's order (sequence_backward's `few`).
constexpr int64_t kFewRows = 16;
// Batch rows up to which a call of one step takes its per-step products straight from the weights
// (PointwiseTable::gemm_rows_t / gemm_rows_n, cpp/src/onestep_impl.h) instead of packing panels that
// only this step would read; packed weights too, so that both stay bitwise equal.
constexpr int64_t kOneStepRows = 4;
int64_t panel_count(int64_t H) { return std::min(kPanels, nblocks(H)); }

// The unit blocks, packed columns and hidden units of panels [p0, p1).
struct Split {
  int64_t blk0, blk1, col0, col1, u0, u1;
};
Split panels(int64_t p0, int64_t p1, int64_t H, int64_t G) {
  const int64_t nb = nblocks(H), P = panel_count(H), b0 = nb * p0 / P, b1 = nb * p1 / P;
  return {b0, b1, std::min(b0 * G * kBlock, G * H), std::min(b1 * G * kBlock, G * H),
          std::min(b0 * kBlock, H), std::min(b1 * kBlock, H)};
}
// Panels [p0, p1) of thread k of nt.
Split split_for(int k, int nt, int64_t H, int64_t G) {
  const int64_t P = panel_count(H);
  return panels(P * k / nt, P * (k + 1) / nt, H, G);
}
// Calls f(Split) for each panel of thread k.
template <class F> void for_panels(int k, int nt, int64_t H, int64_t G, F&& f) {
  const int64_t P = panel_count(H);
  for (int64_t q = P * k / nt; q < P * (k + 1) / nt; ++q) f(panels(q, q + 1, H, G));
}

// Step s visits time t(s); the active rows of time t are the first batch_sizes[t] sorted rows.
int64_t time_of(const Problem& p, int64_t s) { return p.reverse ? p.T - 1 - s : s; }

template <class T> void copy_rows_permuted(T* dst, const T* src, const int64_t* perm, int64_t rows,
                                           int64_t width, bool gather) {
  for (int64_t i = 0; i < rows; ++i) {
    if (gather)
      copy(dst + i * width, src + perm[i] * width, width);
    else
      copy(dst + perm[i] * width, src + i * width, width);
  }
}

// Column sums of rows [0, N) of A [N, ld] over columns [c0, c1), in row order (deterministic).
template <class T> void column_sums(T* out, const T* A, int64_t N, int64_t ld, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) out[c] = T(0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = c0; c < c1; ++c) out[c] += A[n * ld + c];
}

// Packed rows [c0, c1) of Wp [G*H, K] -> their places in W [G*H, K] (PyTorch order); same for a
// packed vector when K = 1.
template <class T> void unpack_rows(T* W, const T* Wp, int64_t G, int64_t H, int64_t K, const Split& sp) {
  for (int64_t g = 0; g < G; ++g)
    for (int64_t u = sp.u0; u < sp.u1; ++u)
      copy(W + (g * H + u) * K, Wp + packed_index(g, u, G, H) * K, K);
}

// A call's use of the caller's pack (rnnkit/pack.h): at[i] its i-th buffer of counts[i] elements
// (each 64-byte aligned; all null without a pack, or when another call is filling this layout: the
// call then packs into its workspace), ready whether they hold the packed weights, fills whether
// this call packs them there (and publishes them when done).
template <class T> struct PackUse {
  T* at[3] = {nullptr, nullptr, nullptr};
  bool ready = false, fills = false;
  WeightPack* pack = nullptr;
  std::shared_ptr<WeightPack::Layout> layout;
  void publish() const {
    if (fills) pack->publish(layout);
  }
};
template <class T>
PackUse<T> pack_use(const Problem& p, WeightPack* pack, const T* W_ih, const T* W_hh, const T* W_hr, int pass,
                    int nthreads, int nr, std::initializer_list<int64_t> counts) {
  PackUse<T> u;
  if (!pack) return u;
  constexpr int64_t align = 64 / sizeof(T);
  auto rounded = [](int64_t n) { return (n + align - 1) / align * align; };
  int64_t total = 0;
  for (int64_t n : counts) total += rounded(n);
  WeightPack::Identity id;
  id.cell = static_cast<int>(p.cell) + (p.reset_before ? 8 : 0);
  id.G = p.G, id.H = p.H, id.I = p.I, id.S = p.S, id.W_ih = W_ih, id.W_hh = W_hh, id.W_hr = W_hr;
  const WeightPack::Use use = pack->acquire(id, pass, nthreads, sizeof(T), nr, total * int64_t(sizeof(T)));
  if (!use.layout) return u;
  T* at = static_cast<T*>(use.layout->data());
  int i = 0;
  for (int64_t n : counts) {
    u.at[i++] = n > 0 ? at : nullptr;
    at += rounded(n);
  }
  u.ready = use.ready, u.fills = !use.ready, u.pack = pack, u.layout = use.layout;
  return u;
}

std::atomic<bool> g_profiling{false};
std::atomic<int64_t> g_phase_ns[static_cast<int>(Phase::kCount)];

}  // namespace

void set_profiling(bool on) { g_profiling.store(on, std::memory_order_relaxed); }
bool profiling() { return g_profiling.load(std::memory_order_relaxed); }
void profile_add(const int64_t* ns) {
  for (int i = 0; i < static_cast<int>(Phase::kCount); ++i)
    g_phase_ns[i].fetch_add(ns[i], std::memory_order_relaxed);
}
void profile_read(int64_t* ns) {
  for (int i = 0; i < static_cast<int>(Phase::kCount); ++i) ns[i] = g_phase_ns[i].load();
}
void profile_reset() {
  for (auto& v : g_phase_ns) v.store(0);
}

void set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }
int get_num_threads() { return g_threads; }

ContentionStats contention_stats() { return g_contention.stats(); }

// Multiply-adds of one step's products (the recurrent one, and the projection's).
int64_t step_work(const Problem& p) {
  const int64_t S = p.S > 0 ? p.S : p.H;
  return p.B * p.G * p.H * S + (S != p.H ? p.B * S * p.H : 0);
}

int threads_for(const Problem& p) {
  const int64_t work = step_work(p);
  const int cap = p.threads > 0 ? std::min<int>(p.threads, g_threads) : g_threads.load();
  int64_t nt = std::min<int64_t>(cap, panel_count(p.H));
  nt = std::min<int64_t>(nt, std::max<int64_t>(1, work / kMinStepWorkPerThread));
  return static_cast<int>(std::max<int64_t>(1, nt));
}

// Threads of one call: threads_for, halved while backing off (Contention); a marginal call then
// runs on no more threads than steps of kSureStepWorkPerThread allow. report: whether to report the
// call's barrier waits afterwards (calls on several threads that were not demoted).
int call_threads(const Problem& p, bool* report, bool* marginal) {
  const int nt = threads_for(p);
  const int64_t work = step_work(p);
  *marginal = nt > 1 && work / nt < kSureStepWorkPerThread;
  *report = nt > 1;
  if (nt <= 1 || !g_contention.demote()) return nt;
  *report = false;
  int64_t fewer = std::max(1, nt / 2);
  if (*marginal) fewer = std::min<int64_t>(fewer, std::max<int64_t>(1, work / kSureStepWorkPerThread));
  return static_cast<int>(fewer);
}

// The input projection runs chunk by chunk, each chunk just before the steps that read it: at most
// kChunkRows rows of xg (or one step's B rows), i.e. a few hundred KB per thread that stay in L2
// until the pointwise passes read them, instead of all N rows written to memory first and read
// back step by step. In inference that is all of xg there is (a workspace, not N rows); in
// training the chunk is the next rows of the cache. Every chunk is computed with the same packed
// kernel, whose results do not depend on how rows are grouped: inference and training give
// bitwise the same y, as do all thread counts.
constexpr int64_t kChunkRows = 128;

// The steps [s0, s1) of one chunk and the packed rows [r0, r1) they read (rows in time order: in
// reverse the chunk's first step has the largest offsets).
struct Chunk {
  int64_t s0, s1, r0, r1;
};
Chunk chunk_at(const Problem& p, int64_t s0, int64_t cap) {
  int64_t s1 = s0, rows = 0;
  while (s1 < p.T && (s1 == s0 || rows + p.batch_sizes[time_of(p, s1)] <= cap))
    rows += p.batch_sizes[time_of(p, s1++)];
  const int64_t ta = time_of(p, s0), tb = time_of(p, s1 - 1);
  const int64_t t0 = std::min(ta, tb), t1 = std::max(ta, tb);
  return {s0, s1, p.offsets[t0], p.offsets[t1] + p.batch_sizes[t1]};
}

template <class T> void sequence_forward(const Problem& p, const ForwardArgs<T>& a) {
  const int64_t B = p.B, I = p.I, H = p.H, G = p.G, GH = G * H, S = p.S;
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru;
  const bool relu = p.cell == Cell::kRnnRelu, proj = p.projected();
  const bool grb = gru && p.reset_before;  // two products per step: r and z, then W_hn (r * h)
  const bool form = p.form.any;            // ONNX's options: the passes of rnnkit/forms.h
  copy(a.h_n, a.h0, B * S);  // sequences of length 0 keep their state
  if (lstm) copy(a.c_n, a.c0, B * H);
  if (p.T == 0 || B == 0) return;
  PhaseClock clock;
  const int64_t t_call = now_ns();  // (Contention::report)
  WorkspaceCall call;
  Workspace& ws = call.w;
  const PointwiseTable<T>& pw = pointwise<T>();
  bool report = false, marginal = false;
  const int nthreads = call_threads(p, &report, &marginal);

  // Per thread, W_hh^T and W_ih^T as panels of its own packed columns (and W_hr^T of its own
  // columns of h; grb: W_{hr,hz}^T of its columns of the G = 2 layout, then W_hn^T of its units):
  // from the caller's pack when it holds them for this thread count (rnnkit/pack.h), else packed
  // here straight from W's rows, taken in packed order (pack_panels' RowMap).
  const int64_t n_whh = (GH + (grb ? 2 : 1) * nthreads * pw.nr) * S;
  const int64_t n_whr = proj ? (S + nthreads * pw.nr) * H : 0, n_wih = (GH + nthreads * pw.nr) * I;
  const PackUse<T> pk = pack_use<T>(p, a.pack, a.W_ih, a.W_hh, a.W_hr, 0, nthreads, pw.nr, {n_whh, n_whr, n_wih});
  const bool packed = pk.ready;  // the panels are there: nothing to pack
  const bool one = p.T == 1 && B <= kOneStepRows;  // no panels (but a pack this call fills gets them)
  const bool make_panels = !packed && (!one || pk.fills);
  T* const Whh_panels = pk.at[0] ? pk.at[0] : ws.get<T>(kWhhPanels, n_whh);
  T* const Whr_panels = !proj ? nullptr : pk.at[1] ? pk.at[1] : ws.get<T>(kWhrPanels, n_whr);
  T* const Wih_panels = pk.at[2] ? pk.at[2] : ws.get<T>(kWihPanels, n_wih);
  const int64_t cap = std::max(B, kChunkRows);
  T* const chunk = p.training ? nullptr : ws.get<T>(kChunk, cap * GH);
  T* const acc = ws.get<T>(kAcc, B * GH);  // grb: [B, 2H] the r, z products, then [B, H] W_hn (r * h)
  T* const acc_n = grb ? acc + B * 2 * H : nullptr;
  T* const rh_inf = grb && !p.training ? ws.get<T>(kProj, B * H) : nullptr;  // r * h_prev (inference)
  // Combined biases, sorted initial states, and in inference the two [B, H] GEMM operands used in
  // turn (a thread may only overwrite one after the next barrier); in training the operand of each
  // step is the packed h_prev cache itself.
  T* const bias = ws.get<T>(kStates, GH + H + B * S + B * H + (p.training ? 0 : 2 * B * S));
  T* const b_hn = bias + GH;
  T* const h0s = b_hn + H;
  T* const c = h0s + B * S;
  T* const hbuf = c + B * H;
  // With projections: m_t (inference; in training the m cache) and W_hr m_t, sorted rows, and the
  // identity order in which the pointwise pass writes m_t.
  T* const mbuf = proj ? ws.get<T>(kProj, B * S + (p.training ? 0 : B * H)) : nullptr;
  T* const hproj = mbuf;
  T* const m_inf = proj && !p.training ? mbuf + B * S : nullptr;
  int64_t* const iota = proj ? ws.get<int64_t>(kIota, B) : nullptr;
  for (int64_t i = 0; proj && i < B; ++i) iota[i] = i;
  for (int64_t j = 0; j < GH; ++j) {
    T v = a.b_ih ? a.b_ih[j] : T(0);
    if (a.b_hh && !(gru && !grb && j >= 2 * H)) v += a.b_hh[j];  // grb: b_hn adds straight in
    bias[j] = v;
  }
  for (int64_t u = 0; u < H; ++u) b_hn[u] = gru && !grb && a.b_hh ? a.b_hh[2 * H + u] : T(0);
  copy_rows_permuted(h0s, a.h0, p.perm, B, S, true);
  if (lstm) copy_rows_permuted(c, a.c0, p.perm, B, H, true);

  const T* X = a.x;
  if (!p.dense) {  // pack x by time, rows in sorted order, active rows only
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t i = 0; i < p.batch_sizes[t]; ++i)
        copy(a.xp + (p.offsets[t] + i) * I, a.x + (t * B + p.perm[i]) * I, I);
    X = a.xp;
  }
  const int64_t t_first = time_of(p, 0);
  if (p.training) {
    copy(a.h_prev + p.offsets[t_first] * S, h0s, p.batch_sizes[t_first] * S);
  } else {
    copy(hbuf, h0s, B * S);
    copy(hbuf + B * S, h0s, B * S);
  }
  clock.lap(Phase::kSetup);

  Barrier barrier(nthreads);
  parallel(nthreads, [&](int k, int nt) {
    PhaseClock tc;
    const Split sp = split_for(k, nt, H, G);
    const Split sh = split_for(k, nt, S, 1);  // with projections: this thread's columns of h
    const Split sr = grb ? split_for(k, nt, H, 2) : sp;  // the columns of the recurrent product
    const int64_t ncols = sp.col1 - sp.col0, hcols = sh.u1 - sh.u0, rcols = sr.col1 - sr.col0;
    const int64_t units = sp.u1 - sp.u0, ld_acc = grb ? 2 * H : GH;
    T* const Wp = Whh_panels + (sr.col0 + k * pw.nr) * S;
    T* const Wip = Wih_panels + (sp.col0 + k * pw.nr) * I;
    T* const Wnp = grb ? Whh_panels + (2 * H + nthreads * pw.nr + sp.u0 + k * pw.nr) * S : nullptr;
    T* const Wrp = proj ? Whr_panels + (sh.u0 + k * pw.nr) * H : nullptr;
    // (grb: the r and z rows of W_hh only, packed as G = 2)
    const RowMap map_hh{grb ? 2 : G, H, sr.col0}, map_ih{G, H, sp.col0};
    const T* const W_hn = grb ? a.W_hh + (2 * H + sp.u0) * S : nullptr;  // (grb: its units' rows)
    const T* const W_hr = proj ? a.W_hr + sh.u0 * H : nullptr;          // (its columns of h)
    if (make_panels) {
      pw.pack_panels(Wp, a.W_hh, S, true, S, rcols, map_hh);
      pw.pack_panels(Wip, a.W_ih, I, true, I, ncols, map_ih);
      if (grb && units > 0) pw.pack_panels(Wnp, W_hn, S, true, S, units, RowMap{});
      if (proj && hcols > 0) pw.pack_panels(Wrp, W_hr, H, true, H, hcols, RowMap{});
    }
    tc.lap(Phase::kSetup);

    StepFwd<T> st;
    st.H = H, st.G = G, st.blk0 = sp.blk0, st.blk1 = sp.blk1, st.ld_acc = ld_acc;
    st.acc = acc + sr.col0, st.acc_n = acc_n, st.b = bias, st.b_hn = b_hn, st.ld_y = a.ld_y;
    st.c = c, st.h_n = proj ? nullptr : a.h_n, st.perm = proj ? iota : p.perm, st.training = p.training;
    st.P = p.peephole ? a.P : nullptr;
    st.form = form ? &p.form : nullptr;
    Chunk ch{0, 0, 0, 0};
    T* xg = nullptr;  // row r0 of the current chunk
    for (int64_t s = 0; s < p.T; ++s) {
      if (s == ch.s1) {  // this thread's columns of the next chunk's input projection; no barrier
        ch = chunk_at(p, s, cap);  // needed: each thread reads back only its own columns
        xg = p.training ? a.xg + ch.r0 * GH : chunk;
        if (one)
          pw.gemm_rows_t(ch.r1 - ch.r0, ncols, I, X + ch.r0 * I, I, a.W_ih, I, map_ih, xg + sp.col0, GH, false);
        else
          pw.gemm_packed(ch.r1 - ch.r0, ncols, I, X + ch.r0 * I, I, Wip, xg + sp.col0, GH, false);
        tc.lap(Phase::kInput);
      }
      const int64_t t = time_of(p, s), rows = p.batch_sizes[t];
      const bool last = s + 1 == p.T;
      const int64_t tn = last ? t : time_of(p, s + 1), rows_next = last ? 0 : p.batch_sizes[tn];
      const T* hcur = p.training ? a.h_prev + p.offsets[t] * S : hbuf + (s % 2) * B * S;
      T* hnext = p.training ? (last ? nullptr : a.h_prev + p.offsets[tn] * S)
                            : hbuf + ((s + 1) % 2) * B * S;
      if (one)
        pw.gemm_rows_t(rows, rcols, S, hcur, S, a.W_hh, S, map_hh, acc + sr.col0, ld_acc, false);
      else
        pw.gemm_packed(rows, rcols, S, hcur, S, Wp, acc + sr.col0, ld_acc, false);
      tc.lap(Phase::kStepGemm);
      st.rows = rows, st.rows_next = rows_next;
      st.xg = xg + (p.offsets[t] - ch.r0) * GH, st.h_prev = hcur, st.h_next = hnext;
      T* const mt = proj ? (p.training ? a.m + p.offsets[t] * H : m_inf) : nullptr;
      st.y = proj ? mt : a.y + t * B * a.ld_y;
      st.ld_y = proj ? H : a.ld_y;
      if (p.training) {
        if (lstm) st.c_prev_out = a.c_prev + p.offsets[t] * H;
        if (gru) st.hn_out = a.hn + p.offsets[t] * H;
      }
      if (grb) {  // r, z and r * h_prev; once every unit's are there, W_hn (r * h_prev), n and h_t
        st.rh = p.training ? a.hn + p.offsets[t] * H : rh_inf;
        form ? forms::grb_fwd_rz(st) : pw.grb_fwd_rz(st);
        tc.lap(Phase::kPointwise);
        barrier.wait();
        tc.lap(Phase::kWait);
        if (units > 0 && one) pw.gemm_rows_t(rows, units, H, st.rh, H, W_hn, S, RowMap{}, acc_n + sp.u0, H, false);
        if (units > 0 && !one) pw.gemm_packed(rows, units, H, st.rh, H, Wnp, acc_n + sp.u0, H, false);
        tc.lap(Phase::kStepGemm);
        form ? forms::grb_fwd_n(st) : pw.grb_fwd_n(st);
      } else if (form) {
        switch (p.cell) {
          case Cell::kLstm: forms::lstm_fwd(st); break;
          case Cell::kGru: forms::gru_fwd(st); break;
          default: forms::rnn_fwd(st);
        }
      } else {
        switch (p.cell) {
          case Cell::kLstm: pw.lstm_fwd(st); break;
          case Cell::kGru: pw.gru_fwd(st); break;
          default: pw.rnn_fwd(st, relu);
        }
      }
      if (proj) {  // h_t = m_t W_hr^T, this thread's columns, once every unit's m_t is there
        tc.lap(Phase::kPointwise);
        barrier.wait();
        tc.lap(Phase::kWait);
        if (hcols > 0 && one) pw.gemm_rows_t(rows, hcols, H, mt, H, W_hr, H, RowMap{}, hproj + sh.u0, S, false);
        if (hcols > 0 && !one) pw.gemm_packed(rows, hcols, H, mt, H, Wrp, hproj + sh.u0, S, false);
        tc.lap(Phase::kStepGemm);
        T* const yt = a.y + t * B * a.ld_y;
        for (int64_t i = 0; i < rows; ++i) {
          const T* h = hproj + i * S + sh.u0;
          copy(yt + p.perm[i] * a.ld_y + sh.u0, h, hcols);
          copy((i < rows_next ? hnext + i * S : a.h_n + p.perm[i] * S) + sh.u0, h, hcols);
        }
      }
      // Reverse direction with lengths: sequences that start at the next step enter with h0.
      const Split& own = proj ? sh : sp;  // this thread's columns of h
      for (int64_t i = rows; i < rows_next; ++i)
        copy(hnext + i * S + own.u0, h0s + i * S + own.u0, (own.u1 - own.u0));
      tc.lap(Phase::kPointwise);
      barrier.wait();
      tc.lap(Phase::kWait);
    }
  });
  clock.skip();
  pk.publish();  // a pack filled by this call serves the next ones
  if (report && !ws.grew() && !pk.fills)  // fresh workspace or pack pages faulted in
    g_contention.report(barrier.slept(), barrier.slept_longer(), barrier.phases(), marginal, now_ns() - t_call);
  if (lstm) copy_rows_permuted(a.c_n, c, p.perm, B, H, false);
  clock.lap(Phase::kSetup);
}

template <class T> void sequence_backward(const Problem& p, const BackwardArgs<T>& a) {
  const int64_t B = p.B, I = p.I, H = p.H, G = p.G, GH = G * H, S = p.S;
  const bool lstm = p.cell == Cell::kLstm, gru = p.cell == Cell::kGru;
  const bool relu = p.cell == Cell::kRnnRelu, proj = p.projected();
  const bool grb = gru && p.reset_before;  // d(r*h) = dn W_hn first, then dr and dh_{t-1}
  const bool form = p.form.any;            // ONNX's options: the passes of rnnkit/forms.h
  if (p.T == 0 || B == 0) {
    copy(a.dh0, a.dh_n, B * S);
    if (lstm) copy(a.dc0, a.dc_n, B * H);
    std::fill(a.dW_ih, a.dW_ih + GH * I, T(0));
    std::fill(a.dW_hh, a.dW_hh + GH * S, T(0));
    if (proj) std::fill(a.dW_hr, a.dW_hr + S * H, T(0));
    if (p.peephole) std::fill(a.dP, a.dP + 3 * H, T(0));
    std::fill(a.db_ih, a.db_ih + GH, T(0));
    std::fill(a.db_hh, a.db_hh + GH, T(0));
    return;
  }
  const int64_t N = p.N();
  PhaseClock clock;
  const int64_t t_call = now_ns();  // (Contention::report)
  WorkspaceCall call;
  Workspace& ws = call.w;
  // The gradients of the pre-activations, all steps: a workspace unless the caller passes one.
  T* const dg = a.dg ? a.dg : ws.get<T>(kDg, N * GH);
  const PointwiseTable<T>& pw = pointwise<T>();
  T* const dh = ws.get<T>(kStates, B * S + B * H);  // gradients of the running state, sorted rows
  T* const dc = dh + B * S;
  // With projections: dL/dh_t of every step [N, S] (for dW_hr) and dm_t = dL/dh_t W_hr [B, H].
  T* const dhs = proj ? ws.get<T>(kProj, p.N() * S + B * H) : nullptr;
  T* const dm = proj ? dhs + p.N() * S : nullptr;
  copy_rows_permuted(dh, a.dh_n, p.perm, B, S, true);
  if (lstm) copy_rows_permuted(dc, a.dc_n, p.perm, B, H, true);
  const T* X = p.dense ? a.x : a.xp;
  // Packed weight gradients before they are put back in PyTorch's order (one buffer each: threads
  // fill their own rows of both at once).
  T* const dWhp = ws.get<T>(kWeightGrads, GH * (S + I + 1));
  T* const dWip = dWhp + GH * S;
  T* const dbp = dWip + GH * I;
  const bool want_dx = a.dx != nullptr;  // (the first layer of a model whose input needs no gradient)
  T* const dxp = p.dense || !want_dx ? nullptr : ws.get<T>(kDx, N * I);
  bool report = false, marginal = false;
  const int nthreads = call_threads(p, &report, &marginal);
  const int64_t GK = grb ? 2 * H : GH;  // the depth of the dh_{t-1} product (grb: r and z only)
  // W_ih's rows in packed order (for dx), per thread the panels of W_hh, and of W_hr (projections)
  // or W_hn (grb: its units): from the caller's pack when it holds them (rnnkit/pack.h), else
  // packed here.
  const int64_t n_whh = (S + nthreads * pw.nr) * GK;
  const int64_t n_third = proj ? (H + nthreads * pw.nr) * S : grb ? (H + nthreads * pw.nr) * H : 0;
  const PackUse<T> pk = pack_use<T>(p, a.pack, a.W_ih, a.W_hh, a.W_hr, 1, nthreads, pw.nr, {GH * I, n_whh, n_third});
  const bool packed = pk.ready;  // nothing to pack
  const bool one = p.T == 1 && B <= kOneStepRows;  // no panels (but a pack this call fills gets them)
  const bool make_panels = !packed && (!one || pk.fills);
  // A call of few rows (a decoder's step) takes the weight and input gradients from dg put in
  // PyTorch's column order (dgt; dgx the input side's, whose n gate differs for the GRU): its
  // products then write dW_hh and dW_ih in place and read W_ih as it is, where the packed order
  // would copy W_ih into it and both gradients out of it, each far more than dg itself. The
  // choice depends on the shapes only, so packed and plain weights give bitwise the same results.
  const bool few = N <= kFewRows;
  T* const dgt = few ? ws.get<T>(kDgTorch, 2 * N * GH) : nullptr;
  const bool split_n = gru && !grb;  // the GRU whose input side's n gradient is dn, not dg's
  T* const dgx = few && split_n ? dgt + N * GH : dgt;
  // (a pack this call fills gets W_ih's rows all the same: a later call of many rows reads them)
  T* const Wih = pk.at[0] ? pk.at[0] : few || !want_dx ? nullptr : ws.get<T>(kWih, GH * I);
  if (!packed && Wih) pack_rows(Wih, a.W_ih, G, H, I);
  T* const Whh_panels = pk.at[1] ? pk.at[1] : ws.get<T>(kWhhPanels, n_whh);  // W_hh, per thread
  T* const third = n_third == 0 ? nullptr : pk.at[2] ? pk.at[2] : ws.get<T>(kWhrPanels, n_third);
  T* const Whr_panels = proj ? third : nullptr;
  // grb: W_hn per thread (its units), the r and z columns of dg twice (steps in turn: a thread may
  // only overwrite one after the next barrier) and d(r*h) [B, H].
  T* const Wn_panels = grb ? third : nullptr;
  T* const dgrz_buf = grb ? ws.get<T>(kProj, 2 * B * 2 * H + B * H) : nullptr;
  T* const drh = grb ? dgrz_buf + 2 * B * 2 * H : nullptr;

  clock.lap(Phase::kSetup);
  Barrier barrier(nthreads);
  int step_slept = 0, step_longer = 0, step_phases = 0;
  parallel(nthreads, [&](int k, int nt) {
    PhaseClock tc;
    const Split sp = split_for(k, nt, H, G);
    const Split sh = split_for(k, nt, S, 1);  // this thread's columns of h (its units without projections)
    const int64_t hcols = sh.u1 - sh.u0, units = sp.u1 - sp.u0;
    T* const Wp = Whh_panels + (sh.u0 + k * pw.nr) * GK;
    T* const Wnp = grb ? Wn_panels + (sp.u0 + k * pw.nr) * H : nullptr;
    T* const Wrp = proj ? Whr_panels + (sp.u0 + k * pw.nr) * S : nullptr;
    // (W_hh's rows in packed order, straight from W_hh; grb: those of r and z, as G = 2)
    const RowMap map_hh{grb ? 2 : G, H, 0};
    const T* const W_hn = grb ? a.W_hh + 2 * H * S + sp.u0 : nullptr;  // (grb: its units' columns)
    const T* const W_hr = proj ? a.W_hr + sp.u0 : nullptr;
    if (make_panels) {
      pw.pack_panels(Wp, a.W_hh + sh.u0, S, false, GK, hcols, map_hh);
      if (grb && units > 0) pw.pack_panels(Wnp, W_hn, S, false, H, units, RowMap{});
      if (proj && units > 0) pw.pack_panels(Wrp, W_hr, H, false, S, units, RowMap{});
    }
    tc.lap(Phase::kSetup);
    StepBwd<T> st;
    st.H = H, st.G = G, st.blk0 = sp.blk0, st.blk1 = sp.blk1, st.perm = p.perm;
    st.dh = proj ? dm : dh, st.dc = dc, st.P = p.peephole ? a.P : nullptr, st.ld_dy = a.ld_dy;
    st.form = form ? &p.form : nullptr;
    for (int64_t s = p.T - 1; s >= 0; --s) {
      const int64_t t = time_of(p, s), rows = p.batch_sizes[t], o = p.offsets[t];
      st.rows = rows, st.xg = a.xg + o * GH, st.dg = dg + o * GH, st.dy = proj ? nullptr : a.dy + t * B * a.ld_dy;
      if (proj) {  // dL/dh_t = dy[t] + dh (this thread's columns), then dm_t = dL/dh_t W_hr
        const T* dyt = a.dy + t * B * a.ld_dy;
        for (int64_t i = 0; i < rows; ++i) {
          T* d = dhs + (o + i) * S;
          const T* g = dyt + p.perm[i] * a.ld_dy;
          for (int64_t j = sh.u0; j < sh.u1; ++j) d[j] = g[j] + dh[i * S + j];
        }
        tc.lap(Phase::kPointwise);
        barrier.wait();
        tc.lap(Phase::kWait);
        if (units > 0 && one) pw.gemm_rows_n(rows, units, S, dhs + o * S, S, W_hr, H, RowMap{}, dm + sp.u0, H, false);
        if (units > 0 && !one) pw.gemm_packed(rows, units, S, dhs + o * S, S, Wrp, dm + sp.u0, H, false);
        tc.lap(Phase::kStepGemm);
      }
      if (lstm) st.c_prev = a.c_prev + o * H;
      if (gru) st.h_prev = a.h_prev + o * H, st.hn = a.hn + o * H, st.dn = a.dn + o * H;
      T* const dgrz = grb ? dgrz_buf + (s % 2) * B * 2 * H : nullptr;
      if (grb) {  // dz, dn and dh_t * z; once every unit's dn is there, d(r*h) = dn W_hn, then dr
        st.dgrz = dgrz, st.drh = drh;
        form ? forms::grb_bwd_zn(st) : pw.grb_bwd_zn(st);
        tc.lap(Phase::kPointwise);
        barrier.wait();
        tc.lap(Phase::kWait);
        if (units > 0 && one) pw.gemm_rows_n(rows, units, H, a.dn + o * H, H, W_hn, S, RowMap{}, drh + sp.u0, H, false);
        if (units > 0 && !one) pw.gemm_packed(rows, units, H, a.dn + o * H, H, Wnp, drh + sp.u0, H, false);
        tc.lap(Phase::kStepGemm);
        form ? forms::grb_bwd_r(st) : pw.grb_bwd_r(st);
      } else if (form) {
        switch (p.cell) {
          case Cell::kLstm: forms::lstm_bwd(st); break;
          case Cell::kGru: forms::gru_bwd(st); break;
          default: forms::rnn_bwd(st);
        }
      } else {
        switch (p.cell) {
          case Cell::kLstm: pw.lstm_bwd(st); break;
          case Cell::kGru: pw.gru_bwd(st); break;
          default: pw.rnn_bwd(st, relu);
        }
      }
      tc.lap(Phase::kPointwise);
      barrier.wait();
      tc.lap(Phase::kWait);
      // dh_{t-1} for this thread's columns = dgates (all columns; grb: those of r and z) @
      // W_hh[:, columns]; rows past their length are not touched, so their gradient passes through.
      const T* const dgk = grb ? dgrz : dg + o * GH;
      if (hcols > 0 && one) pw.gemm_rows_n(rows, hcols, GK, dgk, GK, a.W_hh + sh.u0, S, map_hh, dh + sh.u0, S, gru);
      if (hcols > 0 && !one) pw.gemm_packed(rows, hcols, GK, dgk, GK, Wp, dh + sh.u0, S, gru);
      tc.lap(Phase::kStepGemm);
    }
    barrier.wait();
    if (k == 0)  // the steps' waits only
      step_slept = barrier.slept(), step_longer = barrier.slept_longer(), step_phases = barrier.phases();
    tc.lap(Phase::kWait);
    // Weight and bias gradients for this thread's packed rows: large GEMMs over all N rows.
    const int64_t P = panel_count(H);
    if (few) {  // this thread's units' columns of dg in PyTorch's order, then its fixed row panels
      for (int64_t n = 0; n < N; ++n)
        for (int64_t b = sp.blk0; b < sp.blk1; ++b) {
          const int64_t u0 = b * kBlock, wb = std::min(kBlock, H - u0);
          for (int64_t g = 0; g < G; ++g) {
            copy(dgt + n * GH + g * H + u0, dg + n * GH + b * G * kBlock + g * wb, wb);
            if (split_n)
              copy(dgx + n * GH + g * H + u0, g == 2 ? a.dn + n * H + u0 : dg + n * GH + b * G * kBlock + g * wb, wb);
          }
        }
      barrier.wait();
      for (int64_t q = P * k / nt; q < P * (k + 1) / nt; ++q) {  // (grb: W_hn's rows below)
        const int64_t r0 = GK * q / P, r1 = GK * (q + 1) / P;
        gemm<T>(true, false, r1 - r0, S, N, T(1), dgt + r0, GH, a.h_prev, S, T(0), a.dW_hh + r0 * S, S);
      }
    } else {
      for_panels(k, nt, H, G, [&](const Split& q) {
        gemm<T>(true, false, q.col1 - q.col0, S, N, T(1), dg + q.col0, GH, a.h_prev, S, T(0),
                dWhp + q.col0 * S, S);
      });
      unpack_rows(a.dW_hh, dWhp, G, H, S, sp);
    }
    if (grb)  // W_hn multiplies r * h_prev (the hn cache): its rows again, this thread's units
      for_panels(k, nt, H, 1, [&](const Split& q) {
        gemm<T>(true, false, q.u1 - q.u0, S, N, T(1), a.dn + q.u0, H, a.hn, H, T(0), a.dW_hh + (2 * H + q.u0) * S, S);
      });
    if (p.peephole)  // dP = sums over steps of (da_i * c_{t-1}, da_f * c_{t-1}, da_o * c_t), in row order
      for (int64_t u = sp.u0; u < sp.u1; ++u) {
        const int64_t ci = packed_index(0, u, G, H), cf = packed_index(1, u, G, H);
        const int64_t cg = packed_index(2, u, G, H), co = packed_index(3, u, G, H);
        T si = 0, sf = 0, so = 0;
        for (int64_t n = 0; n < N; ++n) {
          const T* g = a.xg + n * GH;
          const T* d = dg + n * GH;
          const T cp = a.c_prev[n * H + u];
          const T ct = form ? forms::lstm_c(p.form, g, ci, cf, cg, cp) : g[cf] * cp + g[ci] * g[cg];  // c_t
          si += d[ci] * cp, sf += d[cf] * cp, so += d[co] * ct;
        }
        a.dP[u] = si, a.dP[H + u] = sf, a.dP[2 * H + u] = so;
      }
    if (proj)  // dW_hr = sum over steps of dL/dh_t^T m_t, this thread's rows
      for_panels(k, nt, S, 1, [&](const Split& q) {
        gemm<T>(true, false, q.u1 - q.u0, H, N, T(1), dhs + q.u0, S, a.m, H, T(0), a.dW_hr + q.u0 * H, H);
      });
    column_sums(dbp, dg, N, GH, sp.col0, sp.col1);
    unpack_rows(a.db_hh, dbp, G, H, 1, sp);
    if (gru && !grb) {  // the input side of the n gate differs: dn, not dn * r
      for (int64_t n = 0; n < N; ++n)
        for (int64_t b = sp.blk0; b < sp.blk1; ++b) {
          const int64_t u0 = b * kBlock, wb = std::min(kBlock, H - u0);
          copy(dg + n * GH + b * G * kBlock + 2 * wb, a.dn + n * H + u0, wb);
        }
      column_sums(dbp, dg, N, GH, sp.col0, sp.col1);
    }
    unpack_rows(a.db_ih, dbp, G, H, 1, sp);
    if (few) {
      for (int64_t q = P * k / nt; q < P * (k + 1) / nt; ++q) {
        const int64_t r0 = GH * q / P, r1 = GH * (q + 1) / P;
        gemm<T>(true, false, r1 - r0, I, N, T(1), dgx + r0, GH, X, I, T(0), a.dW_ih + r0 * I, I);
      }
    } else {
      for_panels(k, nt, H, G, [&](const Split& q) {
        gemm<T>(true, false, q.col1 - q.col0, I, N, T(1), dg + q.col0, GH, X, I, T(0),
                dWip + q.col0 * I, I);
      });
      unpack_rows(a.dW_ih, dWip, G, H, I, sp);
    }
    tc.lap(Phase::kWeightGrad);
    if (want_dx) barrier.wait();  // (dx reads every thread's columns of dg)
    tc.lap(Phase::kWait);
    // dx = dgates @ W_ih, split by rows (fixed row panels, as the columns above).
    for (int64_t q = P * k / nt; want_dx && q < P * (k + 1) / nt; ++q) {
      const int64_t n0 = N * q / P, n1 = N * (q + 1) / P;
      gemm<T>(false, false, n1 - n0, I, GH, T(1), few ? dgx + n0 * GH : dg + n0 * GH, GH, few ? a.W_ih : Wih, I,
              T(0), (p.dense ? a.dx : dxp) + n0 * I, I);
    }
    tc.lap(Phase::kInputGrad);
  });
  clock.skip();
  pk.publish();  // a pack filled by this call serves the next ones
  if (report && !ws.grew() && !pk.fills)
    g_contention.report(step_slept, step_longer, step_phases, marginal, now_ns() - t_call);
  if (!p.dense && want_dx)
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t i = 0; i < p.batch_sizes[t]; ++i)
        copy(a.dx + (t * B + p.perm[i]) * I, dxp + (p.offsets[t] + i) * I, I);
  copy_rows_permuted(a.dh0, dh, p.perm, B, S, false);
  if (lstm) copy_rows_permuted(a.dc0, dc, p.perm, B, H, false);
  clock.lap(Phase::kSetup);
}

namespace {
// Concurrently only where that is a gain: when the calls' own steps would use fewer threads than
// there are (a step too small to split), each call gets a share of the threads; otherwise the
// calls run one after another, each with all of them (measured on 2 vCPUs: two 1-thread directions
// side by side were no faster than one 2-thread direction after the other, and slower after
// `import torch`, from two threads faulting in their workspaces at once).
template <class Args, class Run> void run_group(int k, const Problem* ps, const Args* as, Run run) {
  // every call of a group comes from one caller, with one thread cap (Problem::threads)
  const int cap = ps[0].threads > 0 ? std::min<int>(ps[0].threads, g_threads) : g_threads.load();
  const int n = cap, outer = std::min(k, n), share = std::max(1, n / std::max(outer, 1));
  int wanted = 0;
  for (int q = 0; q < k; ++q) wanted += threads_for(ps[q]);
  if (outer <= 1 || wanted > n) {
    for (int q = 0; q < k; ++q) run(ps[q], as[q]);
    return;
  }
  parallel(outer, [&](int j, int nt) {
    for (int q = j; q < k; q += nt) {
      Problem p = ps[q];
      p.threads = p.threads > 0 ? std::min(p.threads, share) : share;
      run(p, as[q]);
    }
  });
}
}  // namespace

template <class T> void sequence_forward_group(int k, const Problem* ps, const ForwardArgs<T>* as) {
  run_group(k, ps, as, [](const Problem& p, const ForwardArgs<T>& a) { sequence_forward<T>(p, a); });
}
template <class T> void sequence_backward_group(int k, const Problem* ps, const BackwardArgs<T>* as) {
  run_group(k, ps, as, [](const Problem& p, const BackwardArgs<T>& a) { sequence_backward<T>(p, a); });
}

template void sequence_forward_group<float>(int, const Problem*, const ForwardArgs<float>*);
template void sequence_forward_group<double>(int, const Problem*, const ForwardArgs<double>*);
template void sequence_backward_group<float>(int, const Problem*, const BackwardArgs<float>*);
template void sequence_backward_group<double>(int, const Problem*, const BackwardArgs<double>*);
template void sequence_forward<float>(const Problem&, const ForwardArgs<float>&);
template void sequence_forward<double>(const Problem&, const ForwardArgs<double>&);
template void sequence_backward<float>(const Problem&, const BackwardArgs<float>&);
template void sequence_backward<double>(const Problem&, const BackwardArgs<double>&);

}  // namespace rnnkit
