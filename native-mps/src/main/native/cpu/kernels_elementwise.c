/*
 * Elementwise and row-wise fp32 kernels of the cpu backend (contract: kernels.h).
 *
 * Pure functions of their arguments: no globals, no statics, no locks. Sizes were checked by the
 * table's validate(), so these trust them.
 *
 * Vectorization: the hot loops are plain counted loops over contiguous floats. Outputs that may alias
 * an input (y == x in place) are not restrict-qualified (that would be UB); `#pragma GCC ivdep` tells
 * GCC instead that each iteration reads index i before writing index i only, which exact aliasing
 * satisfies. Row reductions keep MPS_LANES independent partial results so the vectorizer needs no
 * float reassociation (we do not compile with -ffast-math); lanes are combined once per row.
 */
#include <math.h>
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/kernels_math.h"

/* Partial accumulators per row reduction: 16 floats = one AVX-512 or two AVX2 registers. */
#define MPS_LANES 16

/* ------------------------------------------------------------------------------------------------
 * LayerNorm
 * ---------------------------------------------------------------------------------------------- */

/* h[c] = x[c] + residual[c]; with_residual is a compile-time constant after inlining, so each variant
 * is a branch-free loop. */
MPS_ALWAYS_INLINE float ln_h(const float* x, const float* res, int64_t c, int with_residual) {
  return with_residual ? x[c] + res[c] : x[c];
}

MPS_ALWAYS_INLINE float ln_row_mean(const float* x, const float* res, int64_t cols, int with_residual) {
  float acc[MPS_LANES] = {0};
  int64_t c = 0;
  for (; c + MPS_LANES <= cols; c += MPS_LANES) {
    for (int j = 0; j < MPS_LANES; j++) acc[j] += ln_h(x, res, c + j, with_residual);
  }
  float sum = 0.0f;
  for (int j = 0; j < MPS_LANES; j++) sum += acc[j];
  for (; c < cols; c++) sum += ln_h(x, res, c, with_residual);
  return sum / (float)cols;
}

/* Second pass over the row: sum of squared deviations around the exact-ish mean. Two passes instead
 * of E[h^2] - E[h]^2 because the latter cancels catastrophically when |mean| >> stddev. */
MPS_ALWAYS_INLINE float ln_row_var(const float* x, const float* res, int64_t cols, float mean,
                                   int with_residual) {
  float acc[MPS_LANES] = {0};
  int64_t c = 0;
  for (; c + MPS_LANES <= cols; c += MPS_LANES) {
    for (int j = 0; j < MPS_LANES; j++) {
      float d = ln_h(x, res, c + j, with_residual) - mean;
      acc[j] += d * d;
    }
  }
  float sum = 0.0f;
  for (int j = 0; j < MPS_LANES; j++) sum += acc[j];
  for (; c < cols; c++) {
    float d = ln_h(x, res, c, with_residual) - mean;
    sum += d * d;
  }
  return sum / (float)cols;
}

MPS_ALWAYS_INLINE void ln_rows(const float* x, const float* res, const float* restrict gamma,
                               const float* restrict beta, float* y, int64_t rows, int64_t cols, float eps,
                               int with_residual) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    const float* rr = with_residual ? res + r * cols : NULL;
    float* yr = y + r * cols;
    float mean = ln_row_mean(xr, rr, cols, with_residual);
    float var = ln_row_var(xr, rr, cols, mean, with_residual);
    float denom = sqrtf(var + eps);
    /* eps == 0 on a constant row: every deviation is 0, so output beta rather than 0 * inf = NaN. */
    float rstd = denom > 0.0f ? 1.0f / denom : 0.0f;
    /* y may alias x or residual: element c is read before it is written, and only at index c. */
#pragma GCC ivdep
    for (int64_t c = 0; c < cols; c++) {
      yr[c] = (ln_h(xr, rr, c, with_residual) - mean) * rstd * gamma[c] + beta[c];
    }
  }
}

MPS_HOT void mps_cpu_layernorm(const float* x, const float* residual, const float* gamma, const float* beta,
                               float* y, int64_t rows, int64_t cols, float eps) {
  if (residual) {
    ln_rows(x, residual, gamma, beta, y, rows, cols, eps, 1);
  } else {
    ln_rows(x, NULL, gamma, beta, y, rows, cols, eps, 0);
  }
}

/* ------------------------------------------------------------------------------------------------
 * Softmax
 * ---------------------------------------------------------------------------------------------- */

/* Pass 1: v = scale * x + mask written back in place; returns the row max. */
MPS_ALWAYS_INLINE float sm_scale_mask_max(float* restrict x, const float* restrict mask, int64_t cols, float scale,
                                          int with_mask) {
  float acc[MPS_LANES];
  for (int j = 0; j < MPS_LANES; j++) acc[j] = -__builtin_inff();
  int64_t c = 0;
  for (; c + MPS_LANES <= cols; c += MPS_LANES) {
    for (int j = 0; j < MPS_LANES; j++) {
      float v = scale * x[c + j] + (with_mask ? mask[c + j] : 0.0f);
      x[c + j] = v;
      acc[j] = v > acc[j] ? v : acc[j];
    }
  }
  float mx = -__builtin_inff();
  for (int j = 0; j < MPS_LANES; j++) mx = acc[j] > mx ? acc[j] : mx;
  for (; c < cols; c++) {
    float v = scale * x[c] + (with_mask ? mask[c] : 0.0f);
    x[c] = v;
    mx = v > mx ? v : mx;
  }
  return mx;
}

/* Pass 2: x = exp(x - max), returns the sum (>= 1: the max element contributes exp(0)). */
MPS_ALWAYS_INLINE float sm_exp_sum(float* restrict x, int64_t cols, float mx) {
  float acc[MPS_LANES] = {0};
  int64_t c = 0;
  for (; c + MPS_LANES <= cols; c += MPS_LANES) {
    for (int j = 0; j < MPS_LANES; j++) {
      float e = mps_expf(x[c + j] - mx);
      x[c + j] = e;
      acc[j] += e;
    }
  }
  float sum = 0.0f;
  for (int j = 0; j < MPS_LANES; j++) sum += acc[j];
  for (; c < cols; c++) {
    float e = mps_expf(x[c] - mx);
    x[c] = e;
    sum += e;
  }
  return sum;
}

MPS_ALWAYS_INLINE void sm_row(float* restrict x, const float* restrict mask, int64_t cols, float scale,
                              int with_mask) {
  float mx = sm_scale_mask_max(x, mask, cols, scale, with_mask);
  if (mx == -__builtin_inff()) {
    /* Every position masked with -inf: exp(-inf - -inf) would be NaN; an all-dropped row attends to
     * nothing. (Finite masks such as -1e4 or -FLT_MAX never get here and yield a finite softmax.) */
    memset(x, 0, (size_t)cols * sizeof *x);
    return;
  }
  float inv = 1.0f / sm_exp_sum(x, cols, mx);
  for (int64_t c = 0; c < cols; c++) x[c] *= inv;
}

MPS_HOT void mps_cpu_softmax(float* x, const float* mask, int64_t batch, int64_t heads, int64_t rows, int64_t cols,
                             float scale) {
  int64_t per_batch = heads * rows;
  for (int64_t b = 0; b < batch; b++) {
    const float* mb = mask ? mask + b * cols : NULL;
    for (int64_t r = 0; r < per_batch; r++) {
      float* xr = x + (b * per_batch + r) * cols;
      if (mb) {
        sm_row(xr, mb, cols, scale, 1);
      } else {
        sm_row(xr, NULL, cols, scale, 0);
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------------
 * Pointwise
 * ---------------------------------------------------------------------------------------------- */

MPS_HOT void mps_cpu_gelu(const float* x, float* y, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; i++) y[i] = mps_geluf(x[i]);
}

MPS_HOT void mps_cpu_tanh(const float* x, float* y, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; i++) y[i] = mps_tanhf(x[i]);
}

/* 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), as Hugging Face's gelu_new and PyTorch's tanh GELU. */
MPS_ALWAYS_INLINE float mps_gelu_tanhf(float x) {
  return 0.5f * x * (1.0f + mps_tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

MPS_HOT void mps_cpu_activation(const float* x, float* y, int64_t n, int activation) {
  switch (activation) {
    case 1:
#pragma GCC ivdep
      for (int64_t i = 0; i < n; i++) y[i] = mps_geluf(x[i]);
      break;
    case 2:
#pragma GCC ivdep
      for (int64_t i = 0; i < n; i++) y[i] = mps_tanhf(x[i]);
      break;
    case 3:
#pragma GCC ivdep
      for (int64_t i = 0; i < n; i++) y[i] = mps_gelu_tanhf(x[i]);
      break;
    case 4: /* x < 0 is false for NaN: NaN propagates, as torch.relu */
#pragma GCC ivdep
      for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    default:
      if (y != x) memmove(y, x, (size_t)n * sizeof *y);
      break;
  }
}

MPS_HOT void mps_cpu_rel_bias(float* scores, const float* table, const int32_t* buckets, int64_t batch,
                              int64_t heads, int64_t seq, int64_t num_buckets) {
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t h = 0; h < heads; h++) {
      for (int64_t i = 0; i < seq; i++) {
        float* restrict row = scores + ((b * heads + h) * seq + i) * seq;
        const int32_t* restrict bk = buckets + (seq - 1 - i); /* bk[j] = buckets[j - i + seq - 1] */
        for (int64_t j = 0; j < seq; j++) {
          int64_t k = bk[j] < 0 ? 0 : bk[j] >= num_buckets ? num_buckets - 1 : bk[j];
          row[j] += table[k * heads + h];
        }
      }
    }
  }
}

MPS_HOT void mps_cpu_bias_add(const float* x, const float* bias, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
#pragma GCC ivdep
    for (int64_t c = 0; c < cols; c++) yr[c] = xr[c] + bias[c];
  }
}

MPS_HOT void mps_cpu_add(const float* a, const float* b, float* y, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* ------------------------------------------------------------------------------------------------
 * Embedding
 * ---------------------------------------------------------------------------------------------- */

MPS_HOT static void embedding_accumulate_row(float* restrict out, const float* restrict row, int64_t dim) {
  for (int64_t d = 0; d < dim; d++) out[d] += row[d];
}

int64_t mps_cpu_embedding(const int32_t* ids, const float* table, float* out, int64_t n_ids, int64_t dim,
                          int64_t vocab, int accumulate) {
  /* All ids are checked before the first write, so a failed kernel leaves `out` untouched. */
  for (int64_t i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || (int64_t)ids[i] >= vocab) return i;
  }
  for (int64_t i = 0; i < n_ids; i++) {
    const float* row = table + (int64_t)ids[i] * dim;
    float* o = out + i * dim;
    if (accumulate) {
      embedding_accumulate_row(o, row, dim);
    } else {
      memcpy(o, row, (size_t)dim * sizeof *o);
    }
  }
  return -1;
}

/* ------------------------------------------------------------------------------------------------
 * GEMM epilogue (called by mps_cpu_gemm after each sgemm)
 * ---------------------------------------------------------------------------------------------- */

MPS_ALWAYS_INLINE float epi_act(float v, int activation) {
  return activation == 1 ? mps_geluf(v) : activation == 2 ? mps_tanhf(v) : v;
}

/* with_bias and activation are constants after inlining: six branch-free loop variants. */
MPS_ALWAYS_INLINE void epi_rows(float* c, int64_t ldc, const float* restrict bias, int64_t m, int64_t n,
                                int with_bias, int activation) {
  for (int64_t r = 0; r < m; r++) {
    float* restrict cr = c + r * ldc;
    for (int64_t j = 0; j < n; j++) cr[j] = epi_act(with_bias ? cr[j] + bias[j] : cr[j], activation);
  }
}

MPS_HOT void mps_cpu_epilogue(float* c, int64_t ldc, const float* bias, int64_t m, int64_t n, int activation) {
  switch (activation) {
    case 1:
      if (bias) epi_rows(c, ldc, bias, m, n, 1, 1); else epi_rows(c, ldc, NULL, m, n, 0, 1);
      break;
    case 2:
      if (bias) epi_rows(c, ldc, bias, m, n, 1, 2); else epi_rows(c, ldc, NULL, m, n, 0, 2);
      break;
    default:
      if (bias) epi_rows(c, ldc, bias, m, n, 1, 0);
      break;
  }
}
