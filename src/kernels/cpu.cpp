#include "kernels/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace musicgen::kernels {
namespace {
std::atomic<int> g_forced{-1};

#if defined(__x86_64__) || defined(__i386__)
// XCR0: which register states the OS saves (zmm needs opmask, ZMM_Hi256 and Hi16_ZMM: bits 5-7).
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif
}  // namespace

Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return Isa::kScalar;
  const bool f16c = (ecx & bit_F16C) != 0;
  const bool osxsave = (ecx & bit_OSXSAVE) != 0;
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c))
    return Isa::kScalar;
  // Leaf 7: AVX-512 F (EBX 16), DQ (17), BW (30), VL (31); VNNI (ECX 11).
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
  if (osxsave && __get_cpuid_count(7, 0, &a7, &b7, &c7, &d7) != 0) {
    const bool f = (b7 >> 16) & 1u, dq = (b7 >> 17) & 1u, bw = (b7 >> 30) & 1u,
               vl = (b7 >> 31) & 1u, vnni = (c7 >> 11) & 1u;
    const bool zmm_state = (xgetbv0() & 0xe6u) == 0xe6u;  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
    if (f && dq && bw && vl && vnni && zmm_state) return Isa::kAvx512;
  }
  return Isa::kAvx2;
#else
  return Isa::kScalar;
#endif
}

bool parse_isa(const char* name, Isa* out) {
  if (name == nullptr) return false;
  if (std::strcmp(name, "scalar") == 0) *out = Isa::kScalar;
  else if (std::strcmp(name, "avx2") == 0) *out = Isa::kAvx2;
  else if (std::strcmp(name, "avx512") == 0) *out = Isa::kAvx512;
  else return false;
  return true;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa chosen = [] {
    const Isa best = detect_isa();
    Isa want = best;
    if (!parse_isa(std::getenv("MUSICGEN_ISA"), &want)) return best;
    return std::min(want, best);
  }();
  return chosen;
}

bool isa_at_least(Isa isa) { return at_least(active_isa(), isa); }

void force_isa(Isa isa) { g_forced = static_cast<int>(std::min(isa, detect_isa())); }

void unforce_isa() { g_forced = -1; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "?";
}

}  // namespace musicgen::kernels
