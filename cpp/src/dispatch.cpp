// Detects the CPU's ISA once, caps it by the RNNKIT_CPU_ISA environment variable (scalar, avx2,
// avx512; read at import) and hands out the matching pointwise table. `rnnkit info` prints the
// choice. Check: tests/test_isa.py runs the matrix under each cap.
#include <cstdlib>
#include <cstring>
#include <string>

#include "rnnkit/pointwise.h"

namespace rnnkit {

namespace {

bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
}

Isa detect() {
  __builtin_cpu_init();
  Isa best = has_avx512() ? Isa::kAvx512 : has_avx2() ? Isa::kAvx2 : Isa::kScalar;
  const char* cap = std::getenv("RNNKIT_CPU_ISA");
  if (cap && *cap) {
    Isa want = !std::strcmp(cap, "scalar") ? Isa::kScalar
               : !std::strcmp(cap, "avx2") ? Isa::kAvx2
                                           : Isa::kAvx512;  // unknown values are checked in Python
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

const Isa g_isa = detect();

}  // namespace

Isa active_isa() { return g_isa; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

const char* cpu_features() {
  static const std::string s = [] {
    __builtin_cpu_init();
    std::string out;
    auto add = [&](const char* name, bool on) {
      if (on) out += (out.empty() ? "" : ",") + std::string(name);
    };
    add("sse2", __builtin_cpu_supports("sse2"));
    add("sse4.2", __builtin_cpu_supports("sse4.2"));
    add("avx", __builtin_cpu_supports("avx"));
    add("avx2", __builtin_cpu_supports("avx2"));
    add("fma", __builtin_cpu_supports("fma"));
    add("avx512f", __builtin_cpu_supports("avx512f"));
    add("avx512dq", __builtin_cpu_supports("avx512dq"));
    add("avx512vl", __builtin_cpu_supports("avx512vl"));
    add("avx512bw", __builtin_cpu_supports("avx512bw"));
    return out;
  }();
  return s.c_str();
}

template <> const PointwiseTable<float>& pointwise<float>() {
  switch (g_isa) {
    case Isa::kAvx512: return avx512::table_f32;
    case Isa::kAvx2: return avx2::table_f32;
    default: return scalar::table_f32;
  }
}

template <> const PointwiseTable<double>& pointwise<double>() {
  switch (g_isa) {
    case Isa::kAvx512: return avx512::table_f64;
    case Isa::kAvx2: return avx2::table_f64;
    default: return scalar::table_f64;
  }
}

}  // namespace rnnkit
