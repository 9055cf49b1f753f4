#include "kernels/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace musicgen::kernels {
namespace {
std::atomic<int> g_forced{-1};
}

Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

Isa active_isa() {
  const int forced = g_forced.load();
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa chosen = [] {
    const char* env = std::getenv("MUSICGEN_ISA");
    if (env != nullptr && std::strcmp(env, "scalar") == 0) return Isa::kScalar;
    return detect_isa();
  }();
  return chosen;
}

void force_isa(Isa isa) { g_forced = static_cast<int>(isa); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "?";
}

}  // namespace musicgen::kernels
