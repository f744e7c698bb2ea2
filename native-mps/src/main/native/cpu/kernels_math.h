/*
 * Internal helpers of the cpu kernels: branch-free float approximations of exp, erf and tanh that GCC
 * can vectorize (libm's expf/erff/tanhf are opaque calls, so a loop using them stays scalar), and the
 * fused GEMM epilogue shared by kernels_gemm.c and kernels_elementwise.c.
 *
 * Every helper is written as straight-line arithmetic with selects (?:) instead of branches, so that
 * inside a simple loop the vectorizer turns each select into a blend. All are pure.
 */
#ifndef MPS_CPU_KERNELS_MATH_H
#define MPS_CPU_KERNELS_MATH_H

#include <stdint.h>
#include <string.h>

#define MPS_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Clones of the hot loops: AVX-512, AVX2+FMA, and baseline x86-64 chosen at load time (ifunc), so one
 * binary uses the wide units where present and still runs on any x86-64. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MPS_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MPS_HOT
#endif

MPS_ALWAYS_INLINE float mps_bits_to_float(int32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f); /* memcpy, not a pointer cast: no strict-aliasing UB, still one move */
  return f;
}

/*
 * exp(x), Cephes expf polynomial. Range reduction x = n*ln2 + r, |r| <= ln2/2, with ln2 split in two
 * so n*ln2_hi is exact; then 2^n is applied as two factors 2^(n/2) * 2^(n - n/2) so the scale stays a
 * normal float across the whole input range (results round correctly into the subnormals).
 * Max relative error 2.0e-7 (about 2 ulp) over [-87, 88.7] (measured in test_kernels against double exp).
 * x > ln(FLT_MAX) gives +inf, x < -103.9 (and -inf) gives exactly 0, NaN propagates.
 * The round-to-nearest uses the 1.5*2^23 trick instead of rintf/floorf, which need SSE4.1 to vectorize.
 */
MPS_ALWAYS_INLINE float mps_expf(float x) {
  const float hi = 88.72283905f, lo = -103.97f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer in the low mantissa */
  float nf = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - nf * 0.693359375f; /* ln2 hi part: 9 significant bits, so nf * hi is exact */
  r = r - nf * -2.12194440e-4f;     /* ln2 lo part */
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  int32_t n = (int32_t)nf;
  int32_t n1 = n / 2; /* n in [-150, 128]: both halves in [-75, 64], normal exponents */
  int32_t n2 = n - n1;
  float y = p * mps_bits_to_float((n1 + 127) << 23) * mps_bits_to_float((n2 + 127) << 23);
  y = x > hi ? __builtin_inff() : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

/*
 * erf(x), rational minimax approximation x*P(x^2)/Q(x^2) on [-4, 4] (the coefficients used by Eigen and
 * XLA); |erf(x)| rounds to 1 in float beyond 3.92, so the input is clamped to [-4, 4] and the result to
 * [-1, 1] (the rational form may overshoot 1 by an ulp, which would make gelu(-100) non-zero).
 * Max absolute error 1.3e-7 in float (6.5e-8 for the exact rational), measured in test_kernels.
 * NaN propagates.
 */
MPS_ALWAYS_INLINE float mps_erff(float x) {
  float xc = x > 4.0f ? 4.0f : x;
  xc = xc < -4.0f ? -4.0f : xc;
  float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * xc;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  float y = p / q;
  y = y > 1.0f ? 1.0f : y;
  y = y < -1.0f ? -1.0f : y;
  return x != x ? x : y;
}

/* gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). Below -10 the true value is under 8e-23 in
 * magnitude, so it returns 0 there: that also keeps gelu(-inf) = 0 instead of -inf * 0 = NaN. */
MPS_ALWAYS_INLINE float mps_geluf(float x) {
  float y = 0.5f * x * (1.0f + mps_erff(x * 0.70710678118654752f));
  return x < -10.0f ? 0.0f : y;
}

/*
 * tanh(x), Cephes tanhf: odd polynomial for |x| < 0.625 (where 1 - 2/(e^2x + 1) would cancel),
 * 1 - 2/(e^2|x| + 1) above with |x| clamped to 9 (tanh(9) rounds to 1 in float; the clamp keeps
 * e^2x finite). Both branches are computed and blended so the loop vectorizes.
 * Max absolute error 1.2e-7, max relative error 2.4e-7, measured in test_kernels. NaN propagates.
 */
MPS_ALWAYS_INLINE float mps_tanhf(float x) {
  float ax = __builtin_fabsf(x); /* a bit mask, vectorizes; no libm call */
  float x2 = x * x;
  float small = -5.70498872745e-3f;
  small = small * x2 + 2.06390887954e-2f;
  small = small * x2 + -5.37397155531e-2f;
  small = small * x2 + 1.33314422036e-1f;
  small = small * x2 + -3.33332819422e-1f;
  small = small * x2 * x + x;
  float axc = ax > 9.0f ? 9.0f : ax;
  float big = 1.0f - 2.0f / (mps_expf(2.0f * axc) + 1.0f);
  big = x < 0.0f ? -big : big;
  float y = ax < 0.625f ? small : big;
  return x != x ? x : y;
}

#ifdef __cplusplus
extern "C" {
#endif

/* Fused GEMM epilogue on an m x n block with leading dimension ldc (elements):
 * c[r, j] = act(c[r, j] + bias[j]); bias may be NULL; activation 0 none, 1 GELU, 2 tanh. */
void mps_cpu_epilogue(float* c, int64_t ldc, const float* bias, int64_t m, int64_t n, int activation);

#ifdef __cplusplus
}
#endif

#endif
