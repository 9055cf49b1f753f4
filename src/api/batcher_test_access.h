// Internal, for tests: a CodeGenRequest run through a Batcher's shared batch exactly as
// Batcher::generate runs a batchable request's decoder loop (tests/test_batcher.cpp uses it to
// test streaming frames, CodeGenRequest::on_frames, delivered on the calling thread).
#pragma once

#include "generation/generator.h"
#include "musicgen/batcher.h"

namespace musicgen {

struct BatcherTestAccess {
  static CodeGenResult decode(Batcher& batcher, const CodeGenRequest& request);
};

}  // namespace musicgen
