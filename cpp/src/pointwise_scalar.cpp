// The pointwise passes compiled for the scalar ISA (flags per file in CMakeLists.txt); the code is
// in pointwise_impl.h, shared by every ISA. Chosen at run time by dispatch.cpp.
#define RNNKIT_ISA_NS scalar
#define RNNKIT_VBYTES 16
#include "pointwise_impl.h"
