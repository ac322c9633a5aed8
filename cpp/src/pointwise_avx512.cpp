// The pointwise passes compiled for the avx512 ISA (flags per file in CMakeLists.txt); the code is
// in pointwise_impl.h, shared by every ISA. Chosen at run time by dispatch.cpp.
#define RNNKIT_ISA_NS avx512
#define RNNKIT_VBYTES 64
#include "pointwise_impl.h"
