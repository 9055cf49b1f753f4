#include "kernels/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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
  // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
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
