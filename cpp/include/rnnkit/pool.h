// rnnkit/pool.h: the recycling pool of large blocks (cpp/src/pool.cpp). The arrays the C++ backend
// hands to Python (rnnkit._core.pooled: training caches, outputs, gradients) and the driver's
// workspaces too large to keep per thread (sequence.cpp's Workspace) take their memory here and
// give it back when done, so that a repeated call gets blocks whose pages are already mapped
// instead of fresh ones that fault in (and are zeroed) on first touch.
// Check: tests/test_threads.py (test_large_outputs_are_recycled_never_shared,
// test_pool_keeps_a_working_set_past_its_floor, test_training_steps_fault_no_pages).
#pragma once
#include <cstddef>

namespace rnnkit {

// Idle + in-use bytes stay within max(kPoolBytes, the most bytes ever in use at once).
constexpr size_t kPoolBytes = size_t(128) << 20;

// A 64-byte aligned block of at least nbytes (whole cache lines); throws std::bad_alloc.
void* pool_take(size_t nbytes);
// Gives back a block of pool_take(nbytes), with the same nbytes.
void pool_give(void* p, size_t nbytes);

struct PoolStats {
  size_t idle, live, peak_live, bound;
};
PoolStats pool_stats();

}  // namespace rnnkit
