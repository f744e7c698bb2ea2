// Microbenchmark of the cpu backend's Linear-layer GEMMs: the OpenBLAS path (mps_cpu_gemm: cblas_sgemm with
// the bias written into C first, then the activation pass) against the packed-weight kernel
// (mps_cpu_gemm_packed, weights packed once beforehand), on BERT-family shapes, by the calling thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID), best of N rounds, so other processes on a shared machine move the figures
// less than wall-clock time would. Both run single-threaded (one BLAS thread, as a stream's executor does
// by default). Not a test: built next to the native tests, run by hand:
//   native-mps/target/cmake-release/tests/bench_gemm [rounds] [rows] [shapes: all | minilm | bert]
#include <cblas.h>
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels.h"

extern "C" void openblas_set_num_threads(int);

namespace {

double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

template <typename F>
double best_of(int rounds, F&& f) {
  double best = 1e30;
  for (int r = 0; r < rounds; r++) {
    double t0 = thread_seconds();
    f();
    double t = thread_seconds() - t0;
    if (t < best) best = t;
  }
  return best;
}

struct Shape {
  const char* name;
  int64_t n, k;
  bool bias;
  int act;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
  const int64_t m = argc > 2 ? std::atoll(argv[2]) : 2048;
  const std::string which = argc > 3 ? argv[3] : "all";
  openblas_set_num_threads(1);
  const Shape shapes[] = {
      {"MiniLM qkv      384->1152 +bias", 1152, 384, true, 0},
      {"MiniLM attn.out 384->384", 384, 384, false, 0},
      {"MiniLM inter    384->1536 +bias+GELU", 1536, 384, true, 1},
      {"MiniLM out      1536->384", 384, 1536, false, 0},
      {"BERT qkv        768->2304 +bias", 2304, 768, true, 0},
      {"BERT attn.out   768->768", 768, 768, false, 0},
      {"BERT inter      768->3072 +bias+GELU", 3072, 768, true, 1},
      {"BERT out        3072->768", 768, 3072, false, 0},
  };
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::printf("M = %lld rows, best of %d rounds, thread CPU time\n", (long long)m, rounds);
  std::printf("%-40s %10s %10s %8s %9s\n", "shape", "openblas", "packed", "ratio", "GFLOP/s");
  double sum_blas = 0, sum_packed = 0;
  for (const Shape& s : shapes) {
    const bool minilm = std::string(s.name).rfind("MiniLM", 0) == 0;
    if ((which == "minilm" && !minilm) || (which == "bert" && minilm)) continue;
    std::vector<float> a((size_t)(m * s.k)), w((size_t)(s.n * s.k)), bias((size_t)s.n), c1((size_t)(m * s.n)),
        c2((size_t)(m * s.n)), packed((size_t)mps_cpu_packed_floats(s.n, s.k));
    for (auto& v : a) v = dist(rng);
    for (auto& v : w) v = dist(rng) * 0.05f;
    for (auto& v : bias) v = dist(rng);
    mps_cpu_pack_weights(w.data(), s.k, 1, s.n, s.k, packed.data());
    const float* bp = s.bias ? bias.data() : nullptr;
    auto blas = [&] {
      mps_cpu_gemm(a.data(), w.data(), c1.data(), bp, m, s.n, s.k, s.k, s.k, s.n, 0, 1, 1.0f, 0.0f, s.act, 1, 0, 0,
                   0, 1, 0, 0, 0);
    };
    auto pk = [&] { mps_cpu_gemm_packed(a.data(), s.k, packed.data(), c2.data(), s.n, bp, m, s.n, s.k, s.act); };
    blas();
    pk();
    double num = 0, den = 0;
    for (size_t i = 0; i < c1.size(); i++) {
      double d = (double)c1[i] - c2[i];
      num += d * d;
      den += (double)c1[i] * c1[i];
    }
    double tb = 1e30, tp = 1e30;
    for (int r = 0; r < 2; r++) {  // interleaved, so a burst of load hits both
      tb = std::min(tb, best_of(rounds, blas));
      tp = std::min(tp, best_of(rounds, pk));
    }
    sum_blas += tb;
    sum_packed += tp;
    std::printf("%-40s %8.2fms %8.2fms %7.3fx %9.1f  (rel diff %.1e)\n", s.name, tb * 1e3, tp * 1e3, tp / tb,
                2.0 * m * s.n * s.k / tp * 1e-9, std::sqrt(num / den));
  }
  std::printf("sum: openblas %.2f ms, packed %.2f ms, ratio %.3f\n", sum_blas * 1e3, sum_packed * 1e3,
              sum_packed / sum_blas);
  return 0;
}
