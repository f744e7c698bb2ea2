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
 * binary uses the wide units where present and still runs on any x86-64.
 * Not under ThreadSanitizer: GCC 12's TSan-instrumented ifunc resolver runs before the TSan runtime is
 * initialised and the program segfaults at load (even a one-function program does); the TSan build then
 * checks the baseline clone, which is the same C code. MPS_NO_TARGET_CLONES builds one plain version
 * (for testing a single instruction set with -march=..., or comparing against the scalar build). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__) && \
    !defined(MPS_NO_TARGET_CLONES)
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
  /* Written so NaN clamps to hi: the float-to-int conversion below must never see NaN (UB). */
  float xc = x < hi ? x : hi;
  xc = xc > lo ? xc : lo;
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
 * erfc(z) for z >= 0: erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), P of degree 9 (the Chebyshev fit
 * "erfcc" of Numerical Recipes). Its fractional error is below 1.2e-7 on the whole half line, so the
 * tail keeps *relative* accuracy where 1 - erf(z) would cancel to nothing.
 * In float the rounding of the exp argument -z^2 + P adds about z^2 * 6e-8: max relative error 9.2e-7
 * over z in [0, 2.83] (measured in test_kernels), 5e-6 at z = 6.4. z = +inf gives 0, NaN propagates.
 */
MPS_ALWAYS_INLINE float mps_erfcf_pos(float z) {
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t + -0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t + -1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t + -0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t + -1.26551223f;
  return t * mps_expf(p - z * z);
}

/*
 * gelu(x) = x Phi(x), Phi the standard normal CDF = 0.5 erfc(-x / sqrt 2), evaluated as
 * 0.5 erfc(|x| / sqrt 2) for x < 0 and 1 - 0.5 erfc(x / sqrt 2) for x >= 0. Going through erfc instead of
 * 1 + erf(x / sqrt 2) keeps the negative tail relatively accurate (gelu(-4) = -1.3e-4 is not swamped
 * by erf's absolute error). Max relative error 1.7e-6 over [-4, 9] (largest near -4, where |gelu| is
 * 1.3e-4) and 7.7e-6 over [-9, -4] (|gelu| < 1.3e-4 there), measured in test_kernels.
 * gelu(-100) = -0, gelu(-inf) = 0 (not -inf * 0 = NaN), gelu(+inf) = +inf, NaN propagates.
 */
MPS_ALWAYS_INLINE float mps_geluf(float x) {
  float half_erfc = 0.5f * mps_erfcf_pos(__builtin_fabsf(x) * 0.70710678118654752f);
  float phi = x < 0.0f ? half_erfc : 1.0f - half_erfc;
  float y = x * phi;
  return x < -3.40282347e38f ? 0.0f : y;
}

/*
 * tanh(x), Cephes tanhf: odd polynomial for |x| < 0.625 (where 1 - 2/(e^2x + 1) would cancel),
 * 1 - 2/(e^2|x| + 1) above with |x| clamped to 10 (tanh rounds to 1 in float from 9.02 on; the
 * clamp keeps e^2x finite), on |x| with the sign restored at the end. Both branches are computed and blended so the loop vectorizes.
 * Max absolute error 1.2e-7, max relative error 2.4e-7, measured in test_kernels. NaN propagates.
 */
MPS_ALWAYS_INLINE float mps_tanhf(float x) {
  float ax = __builtin_fabsf(x); /* a bit mask, vectorizes; no libm call */
  float x2 = ax * ax;
  float small = -5.70498872745e-3f;
  small = small * x2 + 2.06390887954e-2f;
  small = small * x2 + -5.37397155531e-2f;
  small = small * x2 + 1.33314422036e-1f;
  small = small * x2 + -3.33332819422e-1f;
  small = small * x2 * ax + ax;
  float axc = ax > 10.0f ? 10.0f : ax;
  float big = 1.0f - 2.0f / (mps_expf(2.0f * axc) + 1.0f);
  float y = ax < 0.625f ? small : big;
  y = __builtin_copysignf(y, x); /* odd function; also keeps tanh(-0) = -0 */
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
