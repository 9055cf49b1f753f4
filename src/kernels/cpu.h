// Run-time choice of instruction set. Every SIMD kernel has a scalar twin that tests compare it
// against; the choice is made once per process (or forced, for tests and benchmarks).
//
// The levels are ordered: a kernel without an AVX-512 variant uses its AVX2 one on an AVX-512
// machine (test with at_least(), never with ==).
#pragma once

namespace musicgen::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best instruction set this CPU (and OS: the zmm state must be enabled) supports. AVX2 needs
// FMA and F16C too; AVX-512 means F, BW, VL, DQ and VNNI (Ice Lake, Zen 4 and later).
Isa detect_isa();
// The instruction set kernels use now: detect_isa() unless forced. MUSICGEN_ISA=scalar|avx2|avx512
// in the environment caps it (a level the CPU lacks falls back to the best it has).
Isa active_isa();
// True when the active instruction set is `isa` or a higher one.
inline bool at_least(Isa active, Isa isa) { return static_cast<int>(active) >= static_cast<int>(isa); }
bool isa_at_least(Isa isa);
// Forces a level (tests and benchmarks); capped at detect_isa().
void force_isa(Isa isa);
// Back to the environment / detected choice.
void unforce_isa();
const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx512"; false for anything else.
bool parse_isa(const char* name, Isa* out);

}  // namespace musicgen::kernels
