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
