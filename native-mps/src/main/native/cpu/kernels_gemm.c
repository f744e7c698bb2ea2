/*
 * Batched fp32 GEMM of the cpu backend (contract: kernels.h): OpenBLAS cblas_sgemm per batch item,
 * then the fused bias + activation epilogue on the C block it just wrote, while that block is still
 * in cache.
 *
 * Threading: this never calls openblas_set_num_threads*; the stream worker sets its own thread-local
 * BLAS thread count, and a process-wide setting here would race with other streams.
 * Sizes were validated by the table (1 <= M, N, K, ld <= INT32_MAX, so the casts to blasint, which is
 * int in this OpenBLAS build, are exact).
 */
#include <cblas.h>

#include "cpu/kernels.h"
#include "cpu/kernels_math.h"

void mps_cpu_gemm(const float* a, const float* b, float* c, const float* bias, int64_t m, int64_t n, int64_t k,
                  int64_t lda, int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha, float beta,
                  int activation, int64_t batch_outer, int64_t stride_a_outer, int64_t stride_b_outer,
                  int64_t stride_c_outer, int64_t batch_inner, int64_t stride_a_inner, int64_t stride_b_inner,
                  int64_t stride_c_inner) {
  const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const int need_epilogue = bias != NULL || activation != 0;
  for (int64_t o = 0; o < batch_outer; o++) {
    for (int64_t i = 0; i < batch_inner; i++) {
      const float* ai = a + o * stride_a_outer + i * stride_a_inner;
      const float* bi = b + o * stride_b_outer + i * stride_b_inner;
      float* ci = c + o * stride_c_outer + i * stride_c_inner;
      cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, ai, (blasint)lda, bi,
                  (blasint)ldb, beta, ci, (blasint)ldc);
      if (need_epilogue) mps_cpu_epilogue(ci, ldc, bias, m, n, activation);
    }
  }
}
