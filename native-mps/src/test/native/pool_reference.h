// The float64 reference of the "pool" kernel (contract: cpu/kernels.h), shared by the backend tests.
#ifndef MPS_TEST_POOL_REFERENCE_H
#define MPS_TEST_POOL_REFERENCE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace mps_test {

// x [batch, seq, hidden], mask additive [batch, seq] (0 = token); mode 0 cls, 1 mean, 2 max, 3 mean_sqrt_len.
inline std::vector<double> pool_ref(const std::vector<double>& x, const std::vector<float>& mask, int64_t batch,
                                    int64_t seq, int64_t hidden, int mode, int normalize) {
  std::vector<double> y(batch * hidden, 0.0);
  for (int64_t b = 0; b < batch; b++) {
    int64_t tokens = 0;
    for (int64_t t = 0; t < seq; t++) tokens += mask[b * seq + t] == 0.0f;
    for (int64_t c = 0; c < hidden; c++) {
      double acc = mode == 2 ? -INFINITY : 0.0;
      if (mode == 0) {
        acc = x[b * seq * hidden + c];
      } else {
        for (int64_t t = 0; t < seq; t++) {
          if (mask[b * seq + t] != 0.0f) continue;
          double v = x[(b * seq + t) * hidden + c];
          acc = mode == 2 ? std::max(acc, v) : acc + v;
        }
        if (tokens == 0) acc = 0.0;
        else if (mode == 1) acc /= (double)tokens;
        else if (mode == 3) acc /= std::sqrt((double)tokens);
      }
      y[b * hidden + c] = acc;
    }
    if (normalize) {
      double sq = 0.0;
      for (int64_t c = 0; c < hidden; c++) sq += y[b * hidden + c] * y[b * hidden + c];
      double norm = std::max(std::sqrt(sq), 1e-12);
      for (int64_t c = 0; c < hidden; c++) y[b * hidden + c] /= norm;
    }
  }
  return y;
}

// A ragged batch's additive mask: sequence 0 all tokens, 1 padded at the end, 2 padded inside, 3 (and any
// further) padding only. `masked` is the value padding carries.
inline std::vector<float> ragged_mask(int64_t batch, int64_t seq, float masked = -3.4028234663852886e38f) {
  std::vector<float> mask(batch * seq, 0.0f);
  for (int64_t t = seq * 2 / 3; t < seq; t++) mask[1 * seq + t] = masked;
  mask[2 * seq + 2] = mask[2 * seq + seq / 2 + 1] = masked;
  for (int64_t b = 3; b < batch; b++)
    for (int64_t t = 0; t < seq; t++) mask[b * seq + t] = masked;
  return mask;
}

}  // namespace mps_test

#endif
