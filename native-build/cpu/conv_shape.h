// The geometry of one convolution call, shared by the entry points (conv.cpp) and the implicit-GEMM engine
// (conv_gemm.cpp).
#pragma once
#include "internal.h"

namespace sgld {

struct ConvShape {
    int64_t n, cin, t, h, w;       // input (NCTHW)
    int64_t cout, kt, kh, kw;      // weight [cout, cin, kt, kh, kw]
    int64_t st, sh, sw;            // strides
    int64_t pt, ph, pw;            // leading pads (front, top, left); trailing pads only shape the output
    int64_t to, ho, wo;            // output
    int64_t k() const { return cin * kt * kh * kw; }
    int64_t pixels() const { return ho * wo; }
};

// y = conv(x, weight) + bias as an implicit GEMM: Y[cout, pixels] = W[cout, K] @ im2col(x)[K, pixels], the
// im2col panels packed straight from x in the micro-kernel's layout. Returns false when a workspace cannot be
// allocated. Results do not depend on the thread count.
bool conv3d_implicit_gemm(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight,
                          const float *bias, float *y);

// Winograd F(4x4, 3x3) for stride-1 3x3 spatial kernels, any temporal kernel (conv_winograd.cpp).
// conv3d_winograd_applies says whether the shape fits it; conv3d_winograd returns false when a workspace cannot
// be allocated. Results do not depend on the thread count.
bool conv3d_winograd_applies(const ConvShape &s);
bool conv3d_winograd(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight, const float *bias,
                     float *y);

// At most this many output channels, a stride-1-in-x convolution runs as a direct register-blocked loop
// (conv_direct.cpp) instead: too few rows to feed a GEMM micro-tile. Returns false when it does not apply.
constexpr int64_t kDirectMaxChannels = 3;
bool conv3d_direct_few_channels(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight,
                                const float *bias, float *y);

}  // namespace sgld
