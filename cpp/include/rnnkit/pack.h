// rnnkit/pack.h: WeightPack, a caller-owned store of the packed weights of sequence calls, for calls
// that run again on the same weights (inference over many inputs, a decoder's single steps, every
// call between two optimizer steps). Without it each call packs W_ih, W_hh (and W_hr) into its
// panels afresh: two passes over the weights, 13 us of a 350 us streaming LSTM call (T100 B1 H128)
// and 6.6 of 54 us of the S one (T32 B1 H64; 2-vCPU EPYC, rnnkit._core.profile's setup phase).
//
// A pack holds one layout per (pass, thread count, dtype, ISA table's panel width): forward's panels
// of W_ih^T, W_hh^T (and W_hr^T, or the GRU-with-reset-before's W_hn^T), backward's packed W_ih rows
// and panels of W_hh (and W_hr or W_hn), each filled by the first call that needs it and read by the
// later ones. The caller guarantees that the weights' contents do not change while a pack is used
// with them (rnnkit.functional.pack holds read-only copies); the pack checks the rest: calls with
// other weight arrays, sizes or cell start it afresh. (Not keyed on torch's Tensor._version: writes
// through .data, as torch's own gradcheck and hand-written optimizers make, leave it unchanged.)
// Thread-safe: concurrent calls share a filled layout; a call that finds its layout being filled by
// another packs into its own workspace, as without a pack.
// Check: tests/test_pack.py (bitwise against calls without a pack, every cell, both passes).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace rnnkit {

class WeightPack {
 public:
  // What the packed weights were made from: cell, sizes and the arrays' addresses.
  struct Identity {
    int cell = -1;
    int64_t G = 0, H = 0, I = 0, S = 0;
    const void *W_ih = nullptr, *W_hh = nullptr, *W_hr = nullptr;
    bool operator==(const Identity& o) const {
      return cell == o.cell && G == o.G && H == o.H && I == o.I && S == o.S && W_ih == o.W_ih &&
             W_hh == o.W_hh && W_hr == o.W_hr;
    }
  };
  struct Layout {
    int pass = 0, threads = 0, elem = 0, nr = 0;  // pass: 0 forward, 1 backward
    int64_t bytes = 0;
    std::unique_ptr<char[]> buf;
    bool ready = false;  // filled (read-only from then on)
    bool filling = false;
    void* data() const {
      const uintptr_t a = reinterpret_cast<uintptr_t>(buf.get());
      return reinterpret_cast<void*>((a + 63) & ~uintptr_t(63));
    }
  };
  // A call's use of its layout: ready (read it), or fill it and call publish(); null layout when
  // another call is filling it (pack into the call's own workspace instead).
  struct Use {
    std::shared_ptr<Layout> layout;
    bool ready = false;
  };

  Use acquire(const Identity& id, int pass, int threads, int elem, int nr, int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!(id == id_)) {  // other weights: start afresh (calls still using old layouts keep them alive)
      layouts_.clear();
      id_ = id;
    }
    for (const auto& l : layouts_) {
      if (l->pass == pass && l->threads == threads && l->elem == elem && l->nr == nr && l->bytes == bytes) {
        if (l->ready) return {l, true};
        if (l->filling) return {nullptr, false};
        l->filling = true;
        return {l, false};
      }
    }
    auto l = std::make_shared<Layout>();
    l->pass = pass, l->threads = threads, l->elem = elem, l->nr = nr, l->bytes = bytes;
    l->buf.reset(new char[bytes + 64]);
    l->filling = true;
    layouts_.push_back(l);
    return {l, false};
  }
  void publish(const std::shared_ptr<Layout>& l) {
    std::lock_guard<std::mutex> lock(mu_);
    l->filling = false;
    l->ready = true;
  }
  // Bytes held by the current layouts, and how many there are.
  int64_t nbytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (const auto& l : layouts_) n += l->bytes;
    return n;
  }
  int layouts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(layouts_.size());
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    layouts_.clear();
    id_ = Identity{};
  }

 private:
  mutable std::mutex mu_;
  Identity id_;
  std::vector<std::shared_ptr<Layout>> layouts_;
};

}  // namespace rnnkit
