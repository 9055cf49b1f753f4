// Run-time choice of instruction set. Every SIMD kernel has a scalar twin that tests compare it
// against; the choice is made once per process (or forced, for tests and benchmarks).
#pragma once

namespace musicgen::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1 };

// The best instruction set this CPU supports (AVX2 needs FMA and F16C too).
Isa detect_isa();
// The instruction set kernels use now: detect_isa() unless forced. MUSICGEN_ISA=scalar in the
// environment forces the scalar kernels.
Isa active_isa();
void force_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace musicgen::kernels
