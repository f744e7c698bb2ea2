/*
 * Batched fp32 GEMM of the cpu backend (contract: kernels.h): OpenBLAS cblas_sgemm per batch item,
 * the bias written into C first when beta is 0 (see below), then the activation (or, with beta != 0,
 * bias + activation) epilogue on the C block it just wrote.
 *
 * Threading: this never calls openblas_set_num_threads*; the stream worker sets its own thread-local
 * BLAS thread count, and a process-wide setting here would race with other streams.
 * Sizes were validated by the table (1 <= M, N, K, ld <= INT32_MAX, so the casts to blasint, which is
 * int in this OpenBLAS build, are exact).
 */
#include <cblas.h>
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/kernels_math.h"

/* ------------------------------------------------------------------------------------------------
 * Small GEMMs (attention's per-head products: [L, d] x [d, L] and [L, L] x [L, d] with d = 32 or 64)
 *
 * OpenBLAS packs both operands on every call, which for a 128 x 128 x 32 product costs about as much as
 * the arithmetic; a BERT layer makes 2 x batch x heads such calls. When op(B) fits in SMALL_B_FLOATS
 * (64 KiB) it is packed once per call into a row-major [k, n8] block (n8 = n rounded up to 8, zero
 * padded), and C is computed 4 rows x 16 columns at a time in vector registers: per step of k, two
 * 8-float loads of B, four broadcasts of A, eight FMAs. GCC's vector extension keeps the block in
 * registers in every target clone (two SSE registers per vector in the baseline clone).
 * ---------------------------------------------------------------------------------------------- */

#define SMALL_B_FLOATS 16384

typedef float v8f __attribute__((vector_size(32)));

/* Rows [i, i + rows) x columns [j, j + 16) of C (cols_here <= 16 of them real), rows <= 4 constant after
 * inlining. c = alpha * acc + beta * c, with c never read when beta == 0 (BLAS: C is then write-only). */
MPS_ALWAYS_INLINE void small_block(const float* a, int64_t lda, const float* bp, int64_t n8, int64_t k, float* c,
                                   int64_t ldc, int64_t i, int64_t j, int64_t cols_here, int rows, float alpha,
                                   float beta) {
  v8f acc[4][2];
  for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = (v8f){0};
  const int two = cols_here > 8;
  for (int64_t p = 0; p < k; p++) {
    const float* bq = bp + p * n8 + j;
    v8f b0, b1 = (v8f){0};
    memcpy(&b0, bq, sizeof b0);
    if (two) memcpy(&b1, bq + 8, sizeof b1);
    for (int r = 0; r < rows; r++) {
      float av = a[(i + r) * lda + p];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  for (int r = 0; r < rows; r++) {
    float* cr = c + (i + r) * ldc + j;
    if (cols_here == 16) {
      for (int h = 0; h < 2; h++) {
        v8f v = alpha * acc[r][h];
        if (beta != 0.0f) {
          v8f old;
          memcpy(&old, cr + 8 * h, sizeof old);
          v += beta * old;
        }
        memcpy(cr + 8 * h, &v, sizeof v);
      }
      continue;
    }
    float out[16];
    memcpy(out, &acc[r][0], sizeof acc[r][0]);
    memcpy(out + 8, &acc[r][1], sizeof acc[r][1]);
    for (int64_t q = 0; q < cols_here; q++) cr[q] = beta == 0.0f ? alpha * out[q] : alpha * out[q] + beta * cr[q];
  }
}

MPS_HOT static void small_gemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
                               int64_t lda, int64_t ldb, int64_t ldc, int trans_b, float alpha, float beta) {
  float bp[SMALL_B_FLOATS];
  const int64_t n8 = (n + 7) / 8 * 8;
  for (int64_t p = 0; p < k; p++) {
    float* row = bp + p * n8;
    if (trans_b) {
      for (int64_t q = 0; q < n; q++) row[q] = b[q * ldb + p];
    } else {
      memcpy(row, b + p * ldb, (size_t)n * sizeof *row);
    }
    for (int64_t q = n; q < n8; q++) row[q] = 0.0f;
  }
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t cols_here = n - j < 16 ? n - j : 16;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) small_block(a, lda, bp, n8, k, c, ldc, i, j, cols_here, 4, alpha, beta);
    for (; i < m; i++) small_block(a, lda, bp, n8, k, c, ldc, i, j, cols_here, 1, alpha, beta);
  }
}

void mps_cpu_gemm(const float* a, const float* b, float* c, const float* bias, int64_t m, int64_t n, int64_t k,
                  int64_t lda, int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha, float beta,
                  int activation, int64_t batch_outer, int64_t stride_a_outer, int64_t stride_b_outer,
                  int64_t stride_c_outer, int64_t batch_inner, int64_t stride_a_inner, int64_t stride_b_inner,
                  int64_t stride_c_inner) {
  const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  /* With beta 0 and a bias, C starts as the bias rows and sgemm accumulates onto them (beta 1): that
   * write replaces the pass in which OpenBLAS would zero C for beta 0, and the bias needs no pass of its
   * own afterwards, so a Linear without activation is one sgemm and nothing else. */
  const int small = !trans_a && (n + 7) / 8 * 8 * k <= SMALL_B_FLOATS;
  if (small) {
    for (int64_t o = 0; o < batch_outer; o++) {
      for (int64_t i = 0; i < batch_inner; i++) {
        float* ci = c + o * stride_c_outer + i * stride_c_inner;
        small_gemm(a + o * stride_a_outer + i * stride_a_inner, b + o * stride_b_outer + i * stride_b_inner, ci,
                   m, n, k, lda, ldb, ldc, trans_b, alpha, beta);
        if (bias != NULL || activation != 0) mps_cpu_epilogue(ci, ldc, bias, m, n, activation);
      }
    }
    return;
  }
  const int bias_first = bias != NULL && beta == 0.0f;
  const float sgemm_beta = bias_first ? 1.0f : beta;
  const int need_epilogue = (bias != NULL && !bias_first) || activation != 0;
  for (int64_t o = 0; o < batch_outer; o++) {
    for (int64_t i = 0; i < batch_inner; i++) {
      const float* ai = a + o * stride_a_outer + i * stride_a_inner;
      const float* bi = b + o * stride_b_outer + i * stride_b_inner;
      float* ci = c + o * stride_c_outer + i * stride_c_inner;
      if (bias_first) {
        for (int64_t r = 0; r < m; r++) memcpy(ci + r * ldc, bias, (size_t)n * sizeof *ci);
      }
      cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, ai, (blasint)lda, bi,
                  (blasint)ldb, sgemm_beta, ci, (blasint)ldc);
      if (need_epilogue) mps_cpu_epilogue(ci, ldc, bias_first ? NULL : bias, m, n, activation);
    }
  }
}
