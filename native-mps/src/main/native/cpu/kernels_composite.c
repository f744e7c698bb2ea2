/*
 * Sentence-embedding pooling ("pool") and the fused bias + residual + LayerNorm ("bias_layernorm") of the cpu
 * backend (contract: kernels.h). Pure functions of their arguments; sizes were checked by the table's validate().
 */
#include <math.h>
#include <string.h>

#include "cpu/kernels.h"

enum { POOL_CLS, POOL_MEAN, POOL_MAX, POOL_MEAN_SQRT_LEN };

void mps_cpu_pool(const float* x, const float* mask, float* y, int64_t batch, int64_t seq, int64_t hidden, int mode,
                  int normalize) {
  for (int64_t b = 0; b < batch; b++) {
    const float* xb = x + b * seq * hidden;
    const float* mb = mask ? mask + b * seq : NULL;
    float* yb = y + b * hidden;
    int64_t tokens = 0;
    if (mode == POOL_CLS) {
      memcpy(yb, xb, (size_t)hidden * sizeof *yb);
    } else {
      for (int64_t t = 0; t < seq; t++) {
        if (mb && mb[t] != 0.0f) continue;
        const float* xt = xb + t * hidden;
        if (tokens == 0) {
          memcpy(yb, xt, (size_t)hidden * sizeof *yb);
        } else if (mode == POOL_MAX) {
          for (int64_t c = 0; c < hidden; c++) yb[c] = xt[c] > yb[c] ? xt[c] : yb[c];
        } else {
          for (int64_t c = 0; c < hidden; c++) yb[c] += xt[c];
        }
        tokens++;
      }
      if (tokens == 0) {
        memset(yb, 0, (size_t)hidden * sizeof *yb);
      } else if (mode != POOL_MAX) {
        float inv = mode == POOL_MEAN ? 1.0f / (float)tokens : 1.0f / sqrtf((float)tokens);
        for (int64_t c = 0; c < hidden; c++) yb[c] *= inv;
      }
    }
    if (normalize) {
      double sq = 0.0;
      for (int64_t c = 0; c < hidden; c++) sq += (double)yb[c] * yb[c];
      double norm = sqrt(sq);
      float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
      for (int64_t c = 0; c < hidden; c++) yb[c] *= inv;
    }
  }
}

/* Two passes over y: the bias added (y may be x), then LayerNorm with the residual in place. The validator keeps
 * residual apart from y, so the first pass cannot change it. */
void mps_cpu_bias_layernorm(const float* x, const float* bias, const float* residual, const float* gamma,
                            const float* beta, float* y, int64_t rows, int64_t cols, float eps) {
  mps_cpu_bias_add(x, bias, y, rows, cols);
  mps_cpu_layernorm(y, residual, gamma, beta, y, rows, cols, eps);
}
