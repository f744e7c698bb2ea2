// Native tests of the cpu backend's fp32 kernels (cpu/kernels.h): accuracy against float64 scalar
// references, the table's validate/execute path, encode-time rejections, and concurrent execution from
// several threads (run under TSan too). One line per check; exits non-zero if any check fails.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/error.h"
#include "cpu/kernels.h"
#include "cpu/kernels_math.h"
#include "pool_reference.h"

namespace {

int g_passed = 0;
int g_failed = 0;
std::map<std::string, double> g_worst;  // worst relative L2 error per kernel (main thread only)

void check(bool ok, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void check(bool ok, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::printf("%s ", ok ? "PASS" : "FAIL");
  std::vprintf(fmt, ap);
  std::printf("\n");
  va_end(ap);
  (ok ? g_passed : g_failed)++;
}

constexpr double kTol = 1e-5;  // relative L2 bound from the kernel contract tests

// ||y - ref||_2 / ||ref||_2 over the selected elements (all when sel is empty).
double rel_l2(const float* y, const double* ref, size_t n, const std::vector<char>& sel = {}) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!sel.empty() && !sel[i]) continue;
    double d = (double)y[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

void record(const std::string& kernel, double err) {
  double& w = g_worst[kernel];
  if (err > w || std::isnan(err)) w = err;
}

std::mt19937 g_rng(20240611u);

std::vector<float> random_vec(size_t n, float lo = -3.0f, float hi = 3.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(g_rng);
  return v;
}

cpu_arg buf(void* p, size_t bytes) { return cpu_arg{MPS_ARG_BUFFER, p, bytes, 0, 0.0}; }
template <class T>
cpu_arg buf(std::vector<T>& v) {
  return buf(v.data(), v.size() * sizeof(T));
}
cpu_arg ival(int64_t i) { return cpu_arg{MPS_ARG_INT, nullptr, 0, i, 0.0}; }
cpu_arg fval(double f) { return cpu_arg{MPS_ARG_FLOAT, nullptr, 0, 0, f}; }
cpu_arg none() { return cpu_arg{MPS_ARG_NONE, nullptr, 0, 0, 0.0}; }

const cpu_kernel* kernel(const char* name) {
  const cpu_kernel* k = cpu_kernel_find(name);
  if (!k) {
    std::printf("FAIL kernel %s not in the table\n", name);
    std::exit(1);
  }
  return k;
}

// validate then execute through the table; returns the first failing status.
mps_status run_table(const char* name, const cpu_arg* args, mps_error* err) {
  const cpu_kernel* k = kernel(name);
  mps_status s = k->validate(args, err);
  if (s != MPS_OK) return s;
  return k->execute(args, err);
}

// erfc form: 1 + erf(x / sqrt 2) cancels in double too below x = -8 or so.
double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double act_ref(double v, int act) { return act == 1 ? gelu_ref(v) : act == 2 ? std::tanh(v) : v; }

// ------------------------------------------------------------------------------------------------
// gemm
// ------------------------------------------------------------------------------------------------

struct Gemm {
  int64_t m, n, k, lda, ldb, ldc;
  int ta, tb;
  double alpha, beta;
  int act;
  bool bias;
  int64_t bo = 1, sao = 0, sbo = 0, sco = 0, bi = 1, sai = 0, sbi = 0, sci = 0;
};

int64_t extent(int64_t rows, int64_t cols, int64_t ld, int64_t bo, int64_t so, int64_t bi, int64_t si) {
  return (bo - 1) * so + (bi - 1) * si + (rows - 1) * ld + cols;
}
int64_t extent_a(const Gemm& g) { return extent(g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda, g.bo, g.sao, g.bi, g.sai); }
int64_t extent_b(const Gemm& g) { return extent(g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb, g.bo, g.sbo, g.bi, g.sbi); }
int64_t extent_c(const Gemm& g) { return extent(g.m, g.n, g.ldc, g.bo, g.sco, g.bi, g.sci); }

std::array<cpu_arg, 23> gemm_args(const Gemm& g, std::vector<float>& a, std::vector<float>& b, std::vector<float>& c,
                                  std::vector<float>* bias) {
  return {buf(a), buf(b), buf(c), bias ? buf(*bias) : none(), ival(g.m), ival(g.n), ival(g.k), ival(g.lda),
          ival(g.ldb), ival(g.ldc), ival(g.ta), ival(g.tb), fval(g.alpha), fval(g.beta), ival(g.act), ival(g.bo),
          ival(g.sao), ival(g.sbo), ival(g.sco), ival(g.bi), ival(g.sai), ival(g.sbi), ival(g.sci)};
}

void gemm_direct(const Gemm& g, const float* a, const float* b, float* c, const float* bias) {
  mps_cpu_gemm(a, b, c, bias, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.ta, g.tb, (float)g.alpha, (float)g.beta, g.act,
               g.bo, g.sao, g.sbo, g.sco, g.bi, g.sai, g.sbi, g.sci);
}

// Float64 reference over the whole C buffer; `touched` marks the elements the kernel must write.
std::vector<double> gemm_ref(const Gemm& g, const std::vector<float>& a, const std::vector<float>& b,
                             const std::vector<float>& c0, const std::vector<float>* bias, std::vector<char>& touched) {
  std::vector<double> ref(c0.begin(), c0.end());
  touched.assign(c0.size(), 0);
  for (int64_t o = 0; o < g.bo; o++) {
    for (int64_t i = 0; i < g.bi; i++) {
      const float* A = a.data() + o * g.sao + i * g.sai;
      const float* B = b.data() + o * g.sbo + i * g.sbi;
      int64_t cbase = o * g.sco + i * g.sci;
      for (int64_t r = 0; r < g.m; r++) {
        for (int64_t j = 0; j < g.n; j++) {
          double s = 0;
          for (int64_t p = 0; p < g.k; p++) {
            double av = g.ta ? A[p * g.lda + r] : A[r * g.lda + p];
            double bv = g.tb ? B[j * g.ldb + p] : B[p * g.ldb + j];
            s += av * bv;
          }
          int64_t idx = cbase + r * g.ldc + j;
          double v = g.alpha * s + g.beta * c0[idx] + (bias ? (*bias)[j] : 0.0);
          ref[idx] = act_ref(v, g.act);
          touched[idx] = 1;
        }
      }
    }
  }
  return ref;
}

// Runs one case through the direct entry point or the table and checks accuracy and untouched padding.
void gemm_case(const Gemm& g, bool via_table, const char* label) {
  std::vector<float> a = random_vec(extent_a(g)), b = random_vec(extent_b(g)), c = random_vec(extent_c(g));
  std::vector<float> bias = random_vec(g.n);
  std::vector<float>* bp = g.bias ? &bias : nullptr;
  std::vector<char> touched;
  std::vector<double> ref = gemm_ref(g, a, b, c, bp, touched);
  std::vector<float> c0 = c;
  mps_status s = MPS_OK;
  mps_error err{};
  if (via_table) {
    auto args = gemm_args(g, a, b, c, bp);
    s = run_table("gemm", args.data(), &err);
  } else {
    gemm_direct(g, a.data(), b.data(), c.data(), g.bias ? bias.data() : nullptr);
  }
  double e = rel_l2(c.data(), ref.data(), c.size(), touched);
  bool padding_kept = true;
  for (size_t i = 0; i < c.size(); i++) {
    if (!touched[i] && std::memcmp(&c[i], &c0[i], sizeof(float)) != 0) padding_kept = false;
  }
  record("gemm", e);
  check(s == MPS_OK && e < kTol && padding_kept,
        "gemm %s M=%lld N=%lld K=%lld lda=%lld ldb=%lld ldc=%lld ta=%d tb=%d alpha=%g beta=%g act=%d bias=%d "
        "batch=%lldx%lld path=%s rel_l2=%.3g padding_kept=%d %s",
        label, (long long)g.m, (long long)g.n, (long long)g.k, (long long)g.lda, (long long)g.ldb, (long long)g.ldc,
        g.ta, g.tb, g.alpha, g.beta, g.act, (int)g.bias, (long long)g.bo, (long long)g.bi,
        via_table ? "table" : "direct", e, (int)padding_kept, s == MPS_OK ? "" : err.message);
}

void test_gemm_grid() {
  const int64_t sizes[][3] = {{1, 1, 1}, {1, 7, 33}, {7, 33, 128}, {33, 128, 7}, {128, 33, 1}, {128, 128, 128}};
  int combo = 0;
  for (auto& sz : sizes) {
    for (int ta = 0; ta < 2; ta++) {
      for (int tb = 0; tb < 2; tb++) {
        for (int act = 0; act < 3; act++) {
          for (int bias = 0; bias < 2; bias++, combo++) {
            Gemm g{};
            g.m = sz[0], g.n = sz[1], g.k = sz[2];
            g.ta = ta, g.tb = tb, g.act = act, g.bias = bias != 0;
            int64_t pad = combo % 3;  // leading dimensions wider than the matrix, sometimes
            g.lda = (ta ? g.m : g.k) + pad;
            g.ldb = (tb ? g.k : g.n) + pad;
            g.ldc = g.n + (pad == 1 ? 2 : 0);
            // beta 0 on half the cases: with a bias, C then starts as the bias rows (padding columns untouched)
            g.alpha = 0.75, g.beta = (combo / 2) % 2 == 0 ? 0.0 : -0.5;
            gemm_case(g, combo % 2 == 1, "grid");
          }
        }
      }
    }
  }
}

// beta = 0 follows the BLAS convention: C is write-only, so NaN garbage in it must not leak through.
void test_gemm_beta_zero() {
  Gemm g{};
  g.m = 7, g.n = 9, g.k = 5, g.lda = 5, g.ldb = 9, g.ldc = 9, g.alpha = 1.25, g.beta = 0.0, g.act = 2, g.bias = true;
  std::vector<float> a = random_vec(extent_a(g)), b = random_vec(extent_b(g)), bias = random_vec(g.n);
  std::vector<float> zeros(extent_c(g), 0.0f), c(extent_c(g), std::numeric_limits<float>::quiet_NaN());
  std::vector<char> touched;
  std::vector<double> ref = gemm_ref(g, a, b, zeros, &bias, touched);
  gemm_direct(g, a.data(), b.data(), c.data(), bias.data());
  double e = rel_l2(c.data(), ref.data(), c.size(), touched);
  record("gemm", e);
  check(e < kTol, "gemm beta=0 ignores NaN in C rel_l2=%.3g", e);
}

// Attention over X[batch=2, seq=5, heads=3, head_dim=4] row-major (hidden 12) without copies:
// scores[b, h] = Q[b, :, h, :] K[b, :, h, :]^T / sqrt(d) into [b, h, seq, seq], then
// ctx[b, :, h, :] = P[b, h] V[b, :, h, :] back into [batch, seq, hidden].
void test_gemm_attention() {
  const int64_t batch = 2, seq = 5, heads = 3, hd = 4, hidden = heads * hd;
  std::vector<float> q = random_vec(batch * seq * hidden), k = random_vec(batch * seq * hidden);
  std::vector<float> v = random_vec(batch * seq * hidden);
  for (int path = 0; path < 2; path++) {
    Gemm g{};
    g.m = seq, g.n = seq, g.k = hd, g.lda = hidden, g.ldb = hidden, g.ldc = seq, g.ta = 0, g.tb = 1;
    g.alpha = 1.0 / std::sqrt((double)hd), g.beta = 0.0, g.act = 0, g.bias = false;
    g.bo = batch, g.sao = seq * hidden, g.sbo = seq * hidden, g.sco = heads * seq * seq;
    g.bi = heads, g.sai = hd, g.sbi = hd, g.sci = seq * seq;
    check(extent_a(g) == (int64_t)q.size() && extent_c(g) == batch * heads * seq * seq,
          "gemm attention extents are exact (A %lld of %zu)", (long long)extent_a(g), q.size());
    std::vector<float> scores(batch * heads * seq * seq, 0.0f);
    std::vector<char> touched;
    std::vector<double> ref = gemm_ref(g, q, k, scores, nullptr, touched);
    mps_error err{};
    mps_status s = MPS_OK;
    if (path) {
      auto args = gemm_args(g, q, k, scores, nullptr);
      s = run_table("gemm", args.data(), &err);
    } else {
      gemm_direct(g, q.data(), k.data(), scores.data(), nullptr);
    }
    bool all = true;
    for (char t : touched) all = all && t;
    double e = rel_l2(scores.data(), ref.data(), scores.size());
    record("gemm", e);
    check(s == MPS_OK && all && e < kTol, "gemm attention scores QK^T [2,5,3,4] path=%s rel_l2=%.3g",
          path ? "table" : "direct", e);

    // Context: A = P (seq x seq per [b, h]), B = V[b, :, h, :], C = ctx[b, :, h, :] with ldc = hidden.
    Gemm h{};
    h.m = seq, h.n = hd, h.k = seq, h.lda = seq, h.ldb = hidden, h.ldc = hidden, h.ta = 0, h.tb = 0;
    h.alpha = 1.0, h.beta = 0.0, h.act = 0, h.bias = false;
    h.bo = batch, h.sao = heads * seq * seq, h.sbo = seq * hidden, h.sco = seq * hidden;
    h.bi = heads, h.sai = seq * seq, h.sbi = hd, h.sci = hd;
    std::vector<float> ctx(batch * seq * hidden, 0.0f);
    std::vector<double> ref2 = gemm_ref(h, scores, v, ctx, nullptr, touched);
    if (path) {
      auto args = gemm_args(h, scores, v, ctx, nullptr);
      s = run_table("gemm", args.data(), &err);
    } else {
      gemm_direct(h, scores.data(), v.data(), ctx.data(), nullptr);
    }
    all = true;
    for (char t : touched) all = all && t;
    e = rel_l2(ctx.data(), ref2.data(), ctx.size());
    record("gemm", e);
    check(s == MPS_OK && all && e < kTol, "gemm attention context PV into [2,5,12] path=%s rel_l2=%.3g",
          path ? "table" : "direct", e);

    if (path) {
      // One float short of the last element touched: validate must refuse before anything runs.
      std::vector<float> q_short(q.begin(), q.end() - 1);
      auto args = gemm_args(g, q_short, k, scores, nullptr);
      s = kernel("gemm")->validate(args.data(), &err);
      check(s == MPS_ERR_INVALID_ARGUMENT && std::strstr(err.message, "gemm: buffer A holds 476 bytes but needs 480"),
            "gemm attention A one element short rejected: %s", err.message);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// layernorm
// ------------------------------------------------------------------------------------------------

std::vector<double> layernorm_ref(const std::vector<float>& x, const std::vector<float>* res,
                                  const std::vector<float>& gamma, const std::vector<float>& beta, int64_t rows,
                                  int64_t cols, double eps) {
  std::vector<double> y(rows * cols);
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    auto h = [&](int64_t c) { return (double)x[r * cols + c] + (res ? (double)(*res)[r * cols + c] : 0.0); };
    for (int64_t c = 0; c < cols; c++) mean += h(c);
    mean /= cols;
    for (int64_t c = 0; c < cols; c++) var += (h(c) - mean) * (h(c) - mean);
    var /= cols;
    for (int64_t c = 0; c < cols; c++) y[r * cols + c] = (h(c) - mean) / std::sqrt(var + eps) * gamma[c] + beta[c];
  }
  return y;
}

void test_layernorm() {
  const double eps = 1e-5;
  int variant = 0;
  for (int64_t cols : {384, 7, 1, 33}) {
    for (int with_res = 0; with_res < 2; with_res++) {
      for (int in_place = 0; in_place < 2; in_place++, variant++) {
        const int64_t rows = 13;
        std::vector<float> x = random_vec(rows * cols), res = random_vec(rows * cols);
        std::vector<float> gamma = random_vec(cols, 0.5f, 1.5f), beta = random_vec(cols, -0.5f, 0.5f);
        std::vector<double> ref = layernorm_ref(x, with_res ? &res : nullptr, gamma, beta, rows, cols, eps);
        std::vector<float> out(rows * cols, 0.0f);
        std::vector<float>& y = in_place ? x : out;
        bool via_table = variant % 2 == 1;
        mps_error err{};
        mps_status s = MPS_OK;
        if (via_table) {
          cpu_arg args[] = {buf(x), with_res ? buf(res) : none(), buf(gamma), buf(beta), buf(y), ival(rows),
                            ival(cols), fval(eps)};
          s = run_table("layernorm", args, &err);
        } else {
          mps_cpu_layernorm(x.data(), with_res ? res.data() : nullptr, gamma.data(), beta.data(), y.data(), rows,
                            cols, (float)eps);
        }
        double e = rel_l2(y.data(), ref.data(), y.size());
        record("layernorm", e);
        check(s == MPS_OK && e < kTol, "layernorm rows=%lld cols=%lld residual=%d in_place=%d path=%s rel_l2=%.3g %s",
              (long long)rows, (long long)cols, with_res, in_place, via_table ? "table" : "direct", e, err.message);
      }
    }
  }
  // bias_layernorm: h = x + bias + residual, in place over x; y over the residual is refused.
  for (int with_res = 0; with_res < 2; with_res++) {
    const int64_t rows = 9, cols = 384;
    std::vector<float> x = random_vec(rows * cols, 99.0f, 101.0f), res = random_vec(rows * cols), bias = random_vec(cols);
    std::vector<float> gamma = random_vec(cols, 0.5f, 1.5f), beta = random_vec(cols, -0.5f, 0.5f);
    std::vector<double> ref(rows * cols);
    {
      std::vector<double> hx(rows * cols);
      for (int64_t i = 0; i < rows * cols; i++) hx[i] = (double)x[i] + bias[i % cols];
      for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        auto h = [&](int64_t c) { return hx[r * cols + c] + (with_res ? (double)res[r * cols + c] : 0.0); };
        for (int64_t c = 0; c < cols; c++) mean += h(c);
        mean /= cols;
        for (int64_t c = 0; c < cols; c++) var += (h(c) - mean) * (h(c) - mean);
        var /= cols;
        for (int64_t c = 0; c < cols; c++) ref[r * cols + c] = (h(c) - mean) / std::sqrt(var + eps) * gamma[c] + beta[c];
      }
    }
    cpu_arg args[] = {buf(x), buf(bias), with_res ? buf(res) : none(), buf(gamma), buf(beta), buf(x), ival(rows),
                      ival(cols), fval(eps)};
    mps_error err{};
    mps_status s = run_table("bias_layernorm", args, &err);
    double e = rel_l2(x.data(), ref.data(), x.size());
    record("bias_layernorm", e);
    check(s == MPS_OK && e < kTol, "bias_layernorm rows=%lld cols=%lld residual=%d in place, mean ~100 rel_l2=%.3g %s",
          (long long)rows, (long long)cols, with_res, e, err.message);
    if (with_res) {
      cpu_arg over_res[] = {buf(x), buf(bias), buf(res), buf(gamma), buf(beta), buf(res), ival(rows), ival(cols),
                            fval(eps)};
      s = run_table("bias_layernorm", over_res, &err);
      check(s == MPS_ERR_INVALID_ARGUMENT && std::strstr(err.message, "bias_layernorm: buffer y overlaps buffer residual"),
            "bias_layernorm refuses y over the residual: %s", err.message);
    }
  }
  // y aliasing the residual (h = x + residual written back over the residual stream).
  const int64_t rows = 4, cols = 384;
  std::vector<float> x = random_vec(rows * cols), res = random_vec(rows * cols);
  std::vector<float> gamma = random_vec(cols), beta = random_vec(cols);
  std::vector<double> ref = layernorm_ref(x, &res, gamma, beta, rows, cols, 1e-12);
  cpu_arg args[] = {buf(x), buf(res), buf(gamma), buf(beta), buf(res), ival(rows), ival(cols), fval(1e-12)};
  mps_error err{};
  mps_status s = run_table("layernorm", args, &err);
  double e = rel_l2(res.data(), ref.data(), res.size());
  record("layernorm", e);
  check(s == MPS_OK && e < kTol, "layernorm y aliasing residual, eps=1e-12 rel_l2=%.3g", e);

  // A constant row with eps = 0: variance 0, output must be beta, not NaN.
  std::vector<float> cx(cols, 2.5f), cy(cols);
  mps_cpu_layernorm(cx.data(), nullptr, gamma.data(), beta.data(), cy.data(), 1, cols, 0.0f);
  bool ok = true;
  for (int64_t c = 0; c < cols; c++) ok = ok && cy[c] == beta[c];
  check(ok, "layernorm constant row with eps=0 gives beta (no NaN)");
}

// ------------------------------------------------------------------------------------------------
// softmax
// ------------------------------------------------------------------------------------------------

std::vector<double> softmax_ref(const std::vector<float>& x, const std::vector<float>* mask, int64_t batch,
                                int64_t heads, int64_t rows, int64_t cols, double scale) {
  std::vector<double> y(x.size());
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t r = 0; r < heads * rows; r++) {
      int64_t base = (b * heads * rows + r) * cols;
      double mx = -INFINITY, sum = 0;
      std::vector<double> v(cols);
      for (int64_t c = 0; c < cols; c++) {
        v[c] = scale * x[base + c] + (mask ? (double)(*mask)[b * cols + c] : 0.0);
        mx = std::max(mx, v[c]);
      }
      for (int64_t c = 0; c < cols; c++) sum += (v[c] = std::exp(v[c] - mx));
      for (int64_t c = 0; c < cols; c++) y[base + c] = v[c] / sum;
    }
  }
  return y;
}

void test_softmax() {
  const int64_t batch = 2, heads = 3, rows = 4;
  int variant = 0;
  for (int64_t cols : {5, 33, 128}) {
    for (int with_mask = 0; with_mask < 2; with_mask++, variant++) {
      const double scale = 1.0 / std::sqrt(64.0);
      std::vector<float> x = random_vec(batch * heads * rows * cols, -10.0f, 10.0f);
      std::vector<float> mask(batch * cols, 0.0f);
      for (int64_t c = cols - cols / 3; c < cols; c++) mask[1 * cols + c] = -10000.0f;  // padding of sequence 1
      mask[0] = -10000.0f;
      std::vector<double> ref = softmax_ref(x, with_mask ? &mask : nullptr, batch, heads, rows, cols, scale);
      bool via_table = variant % 2 == 0;
      mps_error err{};
      mps_status s = MPS_OK;
      if (via_table) {
        cpu_arg args[] = {buf(x), with_mask ? buf(mask) : none(), ival(batch), ival(heads), ival(rows), ival(cols),
                          fval(scale)};
        s = run_table("softmax", args, &err);
      } else {
        mps_cpu_softmax(x.data(), with_mask ? mask.data() : nullptr, batch, heads, rows, cols, (float)scale);
      }
      double e = rel_l2(x.data(), ref.data(), x.size());
      record("softmax", e);
      check(s == MPS_OK && e < kTol, "softmax [2,3,4,%lld] mask=%d scale=1/8 path=%s rel_l2=%.3g", (long long)cols,
            with_mask, via_table ? "table" : "direct", e);
    }
  }
  // Fully masked rows: finite masks give a finite distribution, -inf gives zeros, never NaN.
  const float masks[] = {-1e4f, -3.4e38f, -std::numeric_limits<float>::max(), -INFINITY};
  for (float mval : masks) {
    const int64_t cols = 37;
    std::vector<float> x = random_vec(2 * cols);
    std::vector<float> mask(2 * cols, mval);
    for (int64_t c = 0; c < cols; c += 2) mask[cols + c] = 0.0f;  // row of batch 1 half masked
    mps_cpu_softmax(x.data(), mask.data(), 2, 1, 1, cols, 0.125f);
    bool finite = true;
    double sum0 = 0, sum1 = 0, masked1 = 0;
    for (int64_t c = 0; c < cols; c++) {
      finite = finite && std::isfinite(x[c]) && std::isfinite(x[cols + c]);
      sum0 += x[c];
      sum1 += x[cols + c];
      if (c % 2) masked1 += x[cols + c];
    }
    bool full_ok = std::isinf(mval) ? sum0 == 0.0 : std::fabs(sum0 - 1.0) < 1e-5;
    check(finite && full_ok && std::fabs(sum1 - 1.0) < 1e-5 && masked1 < 1e-30,
          "softmax mask=%g: fully masked row sum=%g (finite=%d), half-masked row sum=%g masked mass=%g", mval, sum0,
          (int)finite, sum1, masked1);
  }
}

// ------------------------------------------------------------------------------------------------
// pointwise: gelu, tanh, bias_add, add; and the approximations' measured max errors
// ------------------------------------------------------------------------------------------------

void test_unary(const char* name, void (*fn)(const float*, float*, int64_t), double (*ref_fn)(double)) {
  for (int variant = 0; variant < 4; variant++) {
    bool via_table = variant & 1, in_place = variant & 2;
    const int64_t n = 1001;
    std::vector<float> x = random_vec(n), out(n, 0.0f);
    std::vector<double> ref(n);
    for (int64_t i = 0; i < n; i++) ref[i] = ref_fn(x[i]);
    std::vector<float>& y = in_place ? x : out;
    mps_error err{};
    mps_status s = MPS_OK;
    if (via_table) {
      cpu_arg args[] = {buf(x), buf(y), ival(n)};
      s = run_table(name, args, &err);
    } else {
      fn(x.data(), y.data(), n);
    }
    double e = rel_l2(y.data(), ref.data(), n);
    record(name, e);
    check(s == MPS_OK && e < kTol, "%s n=%lld in_place=%d path=%s rel_l2=%.3g", name, (long long)n, (int)in_place,
          via_table ? "table" : "direct", e);
  }
}

double tanh_ref(double x) { return std::tanh(x); }

void expect_reject(const char* kname, const cpu_arg* args, const char* want, const char* what);

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// activation: every form through the table, in place and not, against float64
void test_activation() {
  double (*refs[])(double) = {nullptr, gelu_ref, tanh_ref, gelu_tanh_ref, nullptr};
  for (int act = 0; act <= 4; act++) {
    for (int in_place = 0; in_place < 2; in_place++) {
      const int64_t n = 1003;
      std::vector<float> x = random_vec(n), out(n, 7.0f);
      std::vector<double> ref(n);
      for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        ref[i] = act == 0 ? v : act == 4 ? (v < 0 ? 0.0 : v) : refs[act](v);
      }
      std::vector<float>& y = in_place ? x : out;
      cpu_arg args[] = {buf(x), buf(y), ival(n), ival(act)};
      mps_error err{};
      mps_status s = run_table("activation", args, &err);
      double e = rel_l2(y.data(), ref.data(), n);
      record("activation", e);
      check(s == MPS_OK && e < kTol, "activation %d in_place=%d rel_l2=%.3g %s", act, in_place, e, err.message);
    }
  }
  std::vector<float> x(4, 1.0f);
  cpu_arg bad[] = {buf(x), buf(x), ival(4), ival(5)};
  expect_reject("activation", bad, "activation: activation is 5 but must be in [0, 4]", "activation 5");
}

// rel_bias: scores [batch, heads, seq, seq] += table[bucket(j - i), head], buckets clamped
void test_rel_bias() {
  const int64_t batch = 2, heads = 3, seq = 7, nb = 5;
  std::vector<float> scores = random_vec(batch * heads * seq * seq), table = random_vec(nb * heads);
  std::vector<int32_t> buckets(2 * seq - 1);
  for (int64_t d = 0; d < 2 * seq - 1; d++) buckets[d] = (int32_t)((d * 3) % (nb + 2)) - 1;  // -1 and nb clamp
  std::vector<double> ref(scores.size());
  for (int64_t b = 0; b < batch; b++)
    for (int64_t h = 0; h < heads; h++)
      for (int64_t i = 0; i < seq; i++)
        for (int64_t j = 0; j < seq; j++) {
          int64_t k = buckets[j - i + seq - 1];
          k = k < 0 ? 0 : k >= nb ? nb - 1 : k;
          size_t at = ((b * heads + h) * seq + i) * seq + j;
          ref[at] = (double)scores[at] + table[k * heads + h];
        }
  cpu_arg args[] = {buf(scores), buf(table), {MPS_ARG_BUFFER, buckets.data(), buckets.size() * 4, 0, 0},
                    ival(batch), ival(heads), ival(seq), ival(nb)};
  mps_error err{};
  mps_status s = run_table("rel_bias", args, &err);
  double e = rel_l2(scores.data(), ref.data(), scores.size());
  record("rel_bias", e);
  check(s == MPS_OK && e < kTol, "rel_bias [2,3,7,7] rel_l2=%.3g %s", e, err.message);
  cpu_arg short_buckets[] = {buf(scores), buf(table), {MPS_ARG_BUFFER, buckets.data(), 48, 0, 0},
                             ival(batch), ival(heads), ival(seq), ival(nb)};
  expect_reject("rel_bias", short_buckets, "rel_bias: buffer buckets holds 48 bytes but needs 52", "13 buckets");
}

void test_pointwise_extremes() {
  std::vector<float> x = {100.0f, -100.0f, 1e30f, -1e30f, 0.0f, -0.0f, 9.5f, -9.5f, 1e-20f, -5.0f, 88.0f, INFINITY,
                          -INFINITY};
  std::vector<float> g(x.size()), t(x.size());
  mps_cpu_gelu(x.data(), g.data(), (int64_t)x.size());
  mps_cpu_tanh(x.data(), t.data(), (int64_t)x.size());
  check(g[0] == 100.0f && g[1] == 0.0f && g[2] == 1e30f && g[3] == 0.0f && g[4] == 0.0f && g[11] == INFINITY &&
            g[12] == 0.0f && std::fabs(g[9] - gelu_ref(-5.0)) < 1e-6,
        "gelu extremes: gelu(100)=%g gelu(-100)=%g gelu(1e30)=%g gelu(-1e30)=%g gelu(-5)=%g gelu(inf)=%g "
        "gelu(-inf)=%g",
        g[0], g[1], g[2], g[3], g[9], g[11], g[12]);
  check(t[0] == 1.0f && t[1] == -1.0f && t[2] == 1.0f && t[3] == -1.0f && t[4] == 0.0f && std::signbit(t[5]) &&
            t[8] == 1e-20f && t[11] == 1.0f && t[12] == -1.0f,
        "tanh extremes: tanh(+-100)=%g,%g tanh(+-1e30)=%g,%g tanh(-0) signbit=%d tanh(1e-20)=%g tanh(+-inf)=%g,%g",
        t[0], t[1], t[2], t[3], (int)std::signbit(t[5]), t[8], t[11], t[12]);
  std::vector<float> nan(3, std::numeric_limits<float>::quiet_NaN()), out(3);
  mps_cpu_gelu(nan.data(), out.data(), 3);
  bool gn = std::isnan(out[0]);
  mps_cpu_tanh(nan.data(), out.data(), 3);
  check(gn && std::isnan(out[0]), "gelu and tanh propagate NaN");
}

// Dense sweeps measuring the approximations' max errors against libm in double (reported in comments).
void test_approximation_errors() {
  double exp_rel = 0, erfc_rel = 0, gelu_rel = 0, gelu_tail_rel = 0, tanh_abs = 0, tanh_rel = 0;
  for (double x = -87.0; x <= 88.7; x += 1.0 / 1024 + 1e-7) {
    double r = std::exp((double)(float)x);
    exp_rel = std::max(exp_rel, std::fabs(mps_expf((float)x) - r) / r);
  }
  for (double z = 0.0; z <= 2.83; z += 1.0 / 8192) {
    double r = std::erfc((double)(float)z);
    erfc_rel = std::max(erfc_rel, std::fabs(mps_erfcf_pos((float)z) - r) / r);
  }
  for (double x = -9.0; x <= 9.0; x += 1.0 / 8192) {
    float xf = (float)x;
    double gr = gelu_ref((double)xf);
    if (gr != 0) {
      double e = std::fabs(mps_geluf(xf) - gr) / std::fabs(gr);
      double& slot = xf < -4.0f ? gelu_tail_rel : gelu_rel;
      slot = std::max(slot, e);
    }
    double tr = std::tanh((double)xf);
    double te = std::fabs(mps_tanhf(xf) - tr);
    tanh_abs = std::max(tanh_abs, te);
    if (tr != 0) tanh_rel = std::max(tanh_rel, te / std::fabs(tr));
  }
  check(exp_rel < 3e-7, "mps_expf max relative error over [-87, 88.7] = %.3g", exp_rel);
  check(erfc_rel < 1.5e-6, "mps_erfcf_pos max relative error over [0, 2.83] = %.3g", erfc_rel);
  check(gelu_rel < 2.5e-6, "mps_geluf max relative error over [-4, 9] = %.3g", gelu_rel);
  check(gelu_tail_rel < 2e-5, "mps_geluf max relative error over [-9, -4] (|gelu| < 1.3e-4) = %.3g", gelu_tail_rel);
  check(tanh_abs < 3e-7 && tanh_rel < 5e-7, "mps_tanhf max abs error %.3g, max rel error %.3g over [-9, 9]", tanh_abs,
        tanh_rel);
  check(mps_expf(-200.0f) == 0.0f && mps_expf(-INFINITY) == 0.0f && std::isinf(mps_expf(89.0f)) &&
            std::isnan(mps_expf(NAN)) && mps_expf(0.0f) == 1.0f,
        "mps_expf limits: exp(-200)=%g exp(-inf)=%g exp(89)=%g exp(0)=%g", mps_expf(-200.0f), mps_expf(-INFINITY),
        mps_expf(89.0f), mps_expf(0.0f));
  // exp(-100) = 3.7e-44 is subnormal (about 26 steps of 1.4e-45): expect the nearest float within a step.
  float sub = mps_expf(-100.0f), want = (float)std::exp(-100.0);
  check(std::fabs(sub - want) <= 1.5e-45f, "mps_expf(-100) = %g, nearest float %g (gradual underflow)", sub, want);
}

void test_bias_add_and_add() {
  for (int variant = 0; variant < 4; variant++) {
    bool via_table = variant & 1, in_place = variant & 2;
    const int64_t rows = 9, cols = 35;
    std::vector<float> x = random_vec(rows * cols), bias = random_vec(cols), out(rows * cols, 0.0f);
    std::vector<double> ref(rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) ref[i] = (double)x[i] + bias[i % cols];
    std::vector<float>& y = in_place ? x : out;
    mps_error err{};
    mps_status s = MPS_OK;
    if (via_table) {
      cpu_arg args[] = {buf(x), buf(bias), buf(y), ival(rows), ival(cols)};
      s = run_table("bias_add", args, &err);
    } else {
      mps_cpu_bias_add(x.data(), bias.data(), y.data(), rows, cols);
    }
    double e = rel_l2(y.data(), ref.data(), y.size());
    record("bias_add", e);
    check(s == MPS_OK && e < kTol, "bias_add %lldx%lld in_place=%d path=%s rel_l2=%.3g", (long long)rows,
          (long long)cols, (int)in_place, via_table ? "table" : "direct", e);
  }
  for (int variant = 0; variant < 6; variant++) {
    bool via_table = variant & 1;
    int alias = variant / 2;  // 0: y separate, 1: y == a, 2: y == b
    const int64_t n = 77;
    std::vector<float> a = random_vec(n), b = random_vec(n), out(n, 0.0f);
    std::vector<double> ref(n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    std::vector<float>& y = alias == 1 ? a : alias == 2 ? b : out;
    mps_error err{};
    mps_status s = MPS_OK;
    if (via_table) {
      cpu_arg args[] = {buf(a), buf(b), buf(y), ival(n)};
      s = run_table("add", args, &err);
    } else {
      mps_cpu_add(a.data(), b.data(), y.data(), n);
    }
    double e = rel_l2(y.data(), ref.data(), n);
    record("add", e);
    check(s == MPS_OK && e < kTol, "add n=%lld alias=%s path=%s rel_l2=%.3g", (long long)n,
          alias == 0 ? "none" : alias == 1 ? "y=a" : "y=b", via_table ? "table" : "direct", e);
  }
}

// ------------------------------------------------------------------------------------------------
// embedding
// ------------------------------------------------------------------------------------------------

void test_embedding() {
  const int64_t vocab = 50, dim = 17, n = 9;
  std::vector<float> table = random_vec(vocab * dim);
  std::vector<int32_t> ids = {0, 49, 3, 3, 17, 8, 0, 22, 49};
  for (int variant = 0; variant < 4; variant++) {
    bool via_table = variant & 1;
    int accumulate = variant / 2;
    std::vector<float> out = random_vec(n * dim);
    std::vector<double> ref(n * dim);
    for (int64_t i = 0; i < n; i++) {
      for (int64_t d = 0; d < dim; d++) {
        ref[i * dim + d] = (accumulate ? (double)out[i * dim + d] : 0.0) + table[ids[i] * dim + d];
      }
    }
    mps_error err{};
    mps_status s = MPS_OK;
    int64_t bad = -1;
    if (via_table) {
      cpu_arg args[] = {buf(ids), buf(table), buf(out), ival(n), ival(dim), ival(vocab), ival(accumulate)};
      s = run_table("embedding", args, &err);
    } else {
      bad = mps_cpu_embedding(ids.data(), table.data(), out.data(), n, dim, vocab, accumulate);
    }
    double e = rel_l2(out.data(), ref.data(), out.size());
    record("embedding", e);
    check(s == MPS_OK && bad == -1 && e < kTol, "embedding n_ids=%lld dim=%lld vocab=%lld accumulate=%d path=%s "
          "rel_l2=%.3g", (long long)n, (long long)dim, (long long)vocab, accumulate, via_table ? "table" : "direct", e);
  }
  // Out-of-range ids are data errors seen only at execution: KERNEL_FAILED naming id and position,
  // and nothing written.
  for (int32_t bad_id : {50, -1, 2147483647}) {
    std::vector<int32_t> bad_ids = ids;
    bad_ids[4] = bad_id;
    std::vector<float> out = random_vec(n * dim), before = out;
    cpu_arg args[] = {buf(bad_ids), buf(table), buf(out), ival(n), ival(dim), ival(vocab), ival(0)};
    mps_error err{};
    mps_status vs = kernel("embedding")->validate(args, &err);
    mps_status s = kernel("embedding")->execute(args, &err);
    char want_id[32];
    std::snprintf(want_id, sizeof want_id, "id %d", bad_id);
    check(vs == MPS_OK && s == MPS_ERR_KERNEL_FAILED && err.status == MPS_ERR_KERNEL_FAILED &&
              std::strstr(err.message, want_id) && std::strstr(err.message, "position 4") && out == before,
          "embedding id %d at position 4 fails execute: status=%s message=\"%s\" out untouched=%d", bad_id,
          mps_status_name(s), err.message, (int)(out == before));
    int64_t pos = mps_cpu_embedding(bad_ids.data(), table.data(), out.data(), n, dim, vocab, 1);
    check(pos == 4, "mps_cpu_embedding returns position %lld of id %d", (long long)pos, bad_id);
  }
}

// ------------------------------------------------------------------------------------------------
// validate rejections (buffers are malloc'd to exactly the stated bytes)
// ------------------------------------------------------------------------------------------------

struct Mem {
  void* p;
  size_t bytes;
  explicit Mem(size_t n) : p(std::calloc(n ? n : 1, 1)), bytes(n) {}
  ~Mem() { std::free(p); }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  cpu_arg arg() const { return buf(p, bytes); }
};

void expect_reject(const char* kname, const cpu_arg* args, const char* want, const char* what) {
  mps_error err{};
  err.status = MPS_OK;
  mps_status s = kernel(kname)->validate(args, &err);
  check(s == MPS_ERR_INVALID_ARGUMENT && err.status == MPS_ERR_INVALID_ARGUMENT && std::strstr(err.message, want),
        "%s validate rejects %s: \"%s\"", kname, what, err.message);
}

void test_validate() {
  // The reference valid gemm: M = N = K = 10, every matrix 400 bytes.
  Mem a(400), b(400), c(400), c_small(100), bias(40), bias_small(36);
  auto gemm = [&](void (*edit)(std::array<cpu_arg, 23>&)) {
    std::array<cpu_arg, 23> g = {a.arg(), b.arg(), c.arg(), none(), ival(10), ival(10), ival(10), ival(10),
                                 ival(10), ival(10), ival(0), ival(0), fval(1.0), fval(0.0), ival(0), ival(1),
                                 ival(0), ival(0), ival(0), ival(1), ival(0), ival(0), ival(0)};
    edit(g);
    return g;
  };
  {
    auto g = gemm([](std::array<cpu_arg, 23>&) {});
    mps_error err{};
    check(kernel("gemm")->validate(g.data(), &err) == MPS_OK && err.status == MPS_OK, "gemm validate accepts a valid 10x10x10");
  }
  auto g = gemm([](std::array<cpu_arg, 23>&) {});
  g[2] = c_small.arg();
  expect_reject("gemm", g.data(), "gemm: buffer C holds 100 bytes but needs 400", "a short C");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[7] = ival(9); });
  expect_reject("gemm", g.data(), "gemm: lda is 9 but must be >= 10", "lda < K");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[10] = ival(1); x[7] = ival(10); x[4] = ival(11); });
  expect_reject("gemm", g.data(), "gemm: lda is 10 but must be >= 11", "lda < M with trans_a");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[4] = ival(0); });
  expect_reject("gemm", g.data(), "gemm: M is 0", "M = 0");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[6] = ival(-3); });
  expect_reject("gemm", g.data(), "gemm: K is -3", "negative K");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[5] = ival(INT64_C(1) << 31); });
  expect_reject("gemm", g.data(), "gemm: N is 2147483648 but must be in [1, 2147483647]", "N beyond blasint");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[14] = ival(3); });
  expect_reject("gemm", g.data(), "gemm: activation is 3 but must be in [0, 2]", "activation 3");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[16] = ival(-1); });
  expect_reject("gemm", g.data(), "gemm: stride_a_outer is -1", "a negative stride");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[15] = ival(INT64_C(1) << 40); x[16] = ival(INT64_C(1) << 40); });
  expect_reject("gemm", g.data(), "gemm: the extent of buffer A overflows int64", "an overflowing batch extent");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[19] = ival(2); x[22] = ival(100); });
  expect_reject("gemm", g.data(), "gemm: buffer C holds 400 bytes but needs 800", "a batch stride past C");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[12] = fval(NAN); });
  expect_reject("gemm", g.data(), "gemm: alpha is nan but must be a finite float", "alpha NaN");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[13] = fval(1e39); });
  expect_reject("gemm", g.data(), "gemm: beta is 1e+39 but must be a finite float", "beta overflowing float");
  g = gemm([](std::array<cpu_arg, 23>&) {});
  g[3] = bias_small.arg();
  expect_reject("gemm", g.data(), "gemm: buffer bias holds 36 bytes but needs 40", "a short bias");
  g = gemm([](std::array<cpu_arg, 23>&) {});
  g[0] = none();
  expect_reject("gemm", g.data(), "gemm: argument A is a none but must be a buffer", "a missing required buffer");
  g = gemm([](std::array<cpu_arg, 23>& x) { x[4] = fval(10.0); });
  expect_reject("gemm", g.data(), "gemm: argument M is a float but must be a int", "a float where an int goes");
  g = gemm([](std::array<cpu_arg, 23>&) {});
  g[1] = buf((char*)b.p + 2, 396);
  expect_reject("gemm", g.data(), "gemm: buffer B is not 4-byte aligned", "a misaligned B");
  g = gemm([](std::array<cpu_arg, 23>&) {});
  g[0] = buf(nullptr, 400);
  expect_reject("gemm", g.data(), "gemm: buffer A is null", "a null A");

  Mem x(4 * 384 * 4), res(4 * 384 * 4), gamma(384 * 4), beta(384 * 4), y(4 * 384 * 4), y_short(4 * 384 * 4 - 4);
  cpu_arg ln[] = {x.arg(), none(), gamma.arg(), beta.arg(), y.arg(), ival(4), ival(384), fval(1e-5)};
  {
    mps_error err{};
    check(kernel("layernorm")->validate(ln, &err) == MPS_OK, "layernorm validate accepts 4x384");
  }
  ln[6] = ival(0);
  expect_reject("layernorm", ln, "layernorm: cols is 0", "cols = 0");
  ln[6] = ival(384);
  ln[7] = fval(INFINITY);
  expect_reject("layernorm", ln, "layernorm: eps is inf but must be a finite float", "eps = inf");
  ln[7] = fval(-1e-5);
  expect_reject("layernorm", ln, "layernorm: eps is -1e-05 but must be >= 0", "a negative eps");
  ln[7] = fval(1e-5);
  ln[4] = y_short.arg();
  expect_reject("layernorm", ln, "layernorm: buffer y holds 6140 bytes but needs 6144", "a short y");
  ln[4] = buf((char*)x.p + 4, x.bytes - 4);
  ln[0] = buf(x.p, x.bytes - 4);
  ln[5] = ival(1);
  expect_reject("layernorm", ln, "layernorm: buffer y overlaps buffer x without being the same memory",
                "y partially overlapping x");
  cpu_arg ln2[] = {x.arg(), res.arg(), buf(gamma.p, 380), beta.arg(), y.arg(), ival(4), ival(384), fval(1e-5)};
  expect_reject("layernorm", ln2, "layernorm: buffer gamma holds 380 bytes but needs 1536", "a short gamma");
  cpu_arg ln3[] = {x.arg(), res.arg(), gamma.arg(), beta.arg(), y.arg(), ival(INT64_C(1) << 40), ival(INT64_C(1) << 40),
                   fval(1e-5)};
  expect_reject("layernorm", ln3, "layernorm: rows * cols overflows int64", "rows * cols overflowing");

  Mem sx(2 * 3 * 4 * 8 * 4), smask(2 * 8 * 4 - 4);
  cpu_arg sm[] = {sx.arg(), smask.arg(), ival(2), ival(3), ival(4), ival(8), fval(0.125)};
  expect_reject("softmax", sm, "softmax: buffer mask holds 60 bytes but needs 64", "a short mask");
  sm[1] = none();
  sm[6] = fval(NAN);
  expect_reject("softmax", sm, "softmax: scale is nan", "scale NaN");
  sm[6] = fval(0.125);
  sm[3] = ival(0);
  expect_reject("softmax", sm, "softmax: heads is 0", "heads = 0");
  sm[3] = ival(3);
  sm[5] = ival(INT64_C(1) << 62);
  expect_reject("softmax", sm, "softmax: batch * heads * rows * cols overflows int64", "an overflowing size");

  Mem ids(9 * 4), table(50 * 17 * 4 - 4), eout(9 * 17 * 4);
  cpu_arg em[] = {ids.arg(), table.arg(), eout.arg(), ival(9), ival(17), ival(50), ival(0)};
  expect_reject("embedding", em, "embedding: buffer table holds 3396 bytes but needs 3400", "a short table");
  em[5] = ival(0);
  expect_reject("embedding", em, "embedding: vocab is 0", "vocab = 0");
  em[5] = ival(50);
  em[0] = ival(5);
  expect_reject("embedding", em, "embedding: argument ids is a int but must be a buffer", "an int for ids");

  Mem va(40), vb(36);
  cpu_arg ad[] = {va.arg(), vb.arg(), va.arg(), ival(10)};
  expect_reject("add", ad, "add: buffer b holds 36 bytes but needs 40", "a short b");
  ad[3] = ival(-1);
  expect_reject("add", ad, "add: n is -1", "n = -1");
  cpu_arg ge[] = {va.arg(), buf((char*)va.p + 4, 36), ival(9)};
  expect_reject("gelu", ge, "gelu: buffer y overlaps buffer x without being the same memory", "y shifted over x");
  cpu_arg th[] = {va.arg(), va.arg(), ival(11)};
  expect_reject("tanh", th, "tanh: buffer x holds 40 bytes but needs 44", "n past x");
  cpu_arg bad_y[] = {va.arg(), va.arg(), vb.arg(), ival(1), ival(10)};
  expect_reject("bias_add", bad_y, "bias_add: buffer y holds 36 bytes but needs 40", "a short y");
  cpu_arg bias_in_y[] = {va.arg(), va.arg(), va.arg(), ival(1), ival(10)};
  expect_reject("bias_add", bias_in_y, "bias_add: buffer y overlaps buffer bias", "y written over its bias");
}

void test_table() {
  const char* names[] = {"gemm", "layernorm", "softmax", "gelu", "tanh", "bias_add", "add", "embedding",
                         "gemm16", "layernorm16", "softmax16", "embedding16", "pool", "pool16", "bias_layernorm",
                         "bias_layernorm16", "attention16", "activation", "activation16", "rel_bias", "rel_bias16",
                         "gemm_packed"};
  const uint32_t nargs[] = {23, 8, 7, 3, 3, 5, 4, 7, 23, 8, 7, 7, 8, 8, 9, 9, 9, 4, 4, 7, 7, 10};
  bool ok = cpu_kernel_count() == 22 && cpu_kernel_at(22) == nullptr && cpu_kernel_find("nope") == nullptr &&
            cpu_kernel_find(nullptr) == nullptr;
  for (size_t i = 0; i < 22; i++) {
    const cpu_kernel* k = cpu_kernel_find(names[i]);
    // 16-bit storage: validated here, executed by a GPU backend only
    bool sixteen = (i >= 8 && i < 12) || i == 13 || i == 15 || i == 16 || i == 18 || i == 20;
    ok = ok && k && k == cpu_kernel_at(i) && k->nargs == nargs[i] && k->validate &&
         (sixteen ? k->execute == nullptr && k->value_bytes == 2 : k->execute != nullptr) &&
         k->nargs <= MPS_MAX_KERNEL_ARGS && k->cpu_only == (i == 21 ? 1u : 0u);
    for (uint32_t j = 0; ok && j < k->nargs; j++) ok = k->arg_names[j] && k->arg_kinds[j] >= MPS_ARG_BUFFER;
  }
  ok = ok && cpu_kernel_find("gemm")->optional_buffers == (1u << 3) &&
       cpu_kernel_find("layernorm")->optional_buffers == (1u << 1) &&
       cpu_kernel_find("softmax")->optional_buffers == (1u << 1) &&
       cpu_kernel_find("pool")->optional_buffers == (1u << 1) &&
       cpu_kernel_find("bias_layernorm")->optional_buffers == (1u << 2) &&
       cpu_kernel_find("attention16")->optional_buffers == ((1u << 1) | (1u << 2)) &&
       cpu_kernel_find("gemm_packed")->optional_buffers == (1u << 3);
  check(ok, "table lists 22 kernels with the contract's argument counts, optional buffers and cpu-only flags");
  // A 16-bit tensor needs half the bytes of an fp32 one: 40 bytes hold 20 values for layernorm16.
  std::vector<float> room(10, 1.0f), params(10, 1.0f);  // x and y in place; gamma and beta elsewhere
  cpu_arg ln16[] = {{MPS_ARG_BUFFER, room.data(), 40, 0, 0}, {MPS_ARG_NONE, nullptr, 0, 0, 0},
                    {MPS_ARG_BUFFER, params.data(), 40, 0, 0}, {MPS_ARG_BUFFER, params.data(), 40, 0, 0},
                    {MPS_ARG_BUFFER, room.data(), 40, 0, 0}, {MPS_ARG_INT, nullptr, 0, 2, 0},
                    {MPS_ARG_INT, nullptr, 0, 10, 0}, {MPS_ARG_FLOAT, nullptr, 0, 0, 1e-5}};
  mps_error err{};
  check(cpu_kernel_find("layernorm16")->validate(ln16, &err) == MPS_OK, "layernorm16 counts 2 bytes a value: %s",
        err.message);
  ln16[6].i = 11;
  check(cpu_kernel_find("layernorm16")->validate(ln16, &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strstr(err.message, "holds 40 bytes but needs 44"),
        "layernorm16 rejects 22 values in 40 bytes: %s", err.message);
  // attention16: [batch, seq, 3, heads, head_dim] 16-bit values in, [batch, seq, heads, head_dim] out
  const cpu_kernel* at = cpu_kernel_find("attention16");
  std::vector<uint16_t> qkv(2 * 3 * 3 * 2 * 32), out(2 * 3 * 2 * 32);
  std::vector<float> amask(2 * 3, 0.0f);
  std::vector<uint16_t> abias(3 * 2 * 128);
  size_t bias_bytes = 3 * 2 * 32 * 2;
  auto at_args = [&](size_t qkv_bytes, void* out_ptr, int64_t head_dim) {
    return std::vector<cpu_arg>{{MPS_ARG_BUFFER, qkv.data(), qkv_bytes, 0, 0},
                                {MPS_ARG_BUFFER, abias.data(), bias_bytes, 0, 0},
                                {MPS_ARG_BUFFER, amask.data(), amask.size() * 4, 0, 0},
                                {MPS_ARG_BUFFER, out_ptr, out.size() * 2, 0, 0},
                                {MPS_ARG_INT, nullptr, 0, 2, 0}, {MPS_ARG_INT, nullptr, 0, 3, 0},
                                {MPS_ARG_INT, nullptr, 0, 2, 0}, {MPS_ARG_INT, nullptr, 0, head_dim, 0},
                                {MPS_ARG_FLOAT, nullptr, 0, 0, 0.125}};
  };
  auto good = at_args(qkv.size() * 2, out.data(), 32);
  check(at->validate(good.data(), &err) == MPS_OK, "attention16 accepts its contract: %s", err.message);
  auto odd = at_args(qkv.size() * 2, out.data(), 48);
  check(at->validate(odd.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: head_dim is 48 but must be 32, 64 or 128") == 0,
        "attention16 refuses head_dim 48: %s", err.message);
  auto short_qkv = at_args(qkv.size() * 2 - 2, out.data(), 32);
  check(at->validate(short_qkv.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: buffer qkv holds 2302 bytes but needs 2304") == 0,
        "attention16 refuses a short qkv: %s", err.message);
  auto over = at_args(qkv.size() * 2, qkv.data(), 32);
  check(at->validate(over.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: buffer out overlaps buffer qkv") == 0,
        "attention16 refuses out over qkv: %s", err.message);
  auto shifted = at_args(qkv.size() * 2 - 16, out.data(), 32);
  shifted[0].ptr = qkv.data() + 4;  // 8 bytes in: 4-byte aligned, not 16
  check(at->validate(shifted.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: buffer qkv is not 16-byte aligned (it is read 8 values a load)") == 0,
        "attention16 refuses a qkv off 16 bytes: %s", err.message);
  bias_bytes -= 2;
  auto short_bias = at_args(qkv.size() * 2, out.data(), 32);
  check(at->validate(short_bias.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: buffer bias holds 382 bytes but needs 384") == 0,
        "attention16 refuses a bias shorter than 3 * heads * head_dim: %s", err.message);
  bias_bytes += 2;
  auto no_bias = at_args(qkv.size() * 2, out.data(), 32);
  no_bias[1] = {MPS_ARG_NONE, nullptr, 0, 0, 0};
  check(at->validate(no_bias.data(), &err) == MPS_OK, "attention16 runs without a bias: %s", err.message);
  auto out_on_bias = at_args(qkv.size() * 2, abias.data(), 32);
  check(at->validate(out_on_bias.data(), &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strcmp(err.message, "attention16: buffer out overlaps buffer bias") == 0,
        "attention16 refuses out over its bias: %s", err.message);
}

// ------------------------------------------------------------------------------------------------
// concurrency: 4 threads run every kernel on their own outputs from shared read-only inputs
// ------------------------------------------------------------------------------------------------

struct Shared {
  int64_t m = 48, n = 96, k = 64, rows = 16, cols = 384, vocab = 64, dim = 32, n_ids = 20;
  std::vector<float> a, b, bias, x, res, gamma, beta, scores, mask, table;
  std::vector<int32_t> ids;
};

struct Outputs {
  std::vector<float> c, ln, sm, gelu, tanh, emb, add;
  mps_status status = MPS_OK;
};

void run_all(const Shared& s, Outputs& o) {
  o.c.assign(s.m * s.n, 0.0f);
  cpu_arg g[] = {buf((void*)s.a.data(), s.a.size() * 4), buf((void*)s.b.data(), s.b.size() * 4), buf(o.c),
                 buf((void*)s.bias.data(), s.bias.size() * 4), ival(s.m), ival(s.n), ival(s.k), ival(s.k),
                 ival(s.n), ival(s.n), ival(0), ival(0), fval(1.0), fval(0.0), ival(1), ival(1), ival(0), ival(0),
                 ival(0), ival(1), ival(0), ival(0), ival(0)};
  mps_error err{};
  if (run_table("gemm", g, &err) != MPS_OK) o.status = err.status;
  o.ln.assign(s.rows * s.cols, 0.0f);
  mps_cpu_layernorm(s.x.data(), s.res.data(), s.gamma.data(), s.beta.data(), o.ln.data(), s.rows, s.cols, 1e-5f);
  o.sm = s.scores;
  cpu_arg sm[] = {buf(o.sm), buf((void*)s.mask.data(), s.mask.size() * 4), ival(2), ival(2), ival(4), ival(s.cols / 2),
                  fval(0.125)};
  if (run_table("softmax", sm, &err) != MPS_OK) o.status = err.status;
  o.gelu.assign(s.x.size(), 0.0f);
  mps_cpu_gelu(s.x.data(), o.gelu.data(), (int64_t)s.x.size());
  o.tanh.assign(s.x.size(), 0.0f);
  mps_cpu_tanh(s.x.data(), o.tanh.data(), (int64_t)s.x.size());
  o.add.assign(s.x.size(), 0.0f);
  mps_cpu_add(s.x.data(), s.res.data(), o.add.data(), (int64_t)s.x.size());
  o.emb.assign(s.n_ids * s.dim, 0.0f);
  if (mps_cpu_embedding(s.ids.data(), s.table.data(), o.emb.data(), s.n_ids, s.dim, s.vocab, 1) != -1) {
    o.status = MPS_ERR_KERNEL_FAILED;
  }
}

void test_threads() {
  Shared s;
  s.a = random_vec(s.m * s.k), s.b = random_vec(s.k * s.n), s.bias = random_vec(s.n);
  s.x = random_vec(s.rows * s.cols), s.res = random_vec(s.rows * s.cols);
  s.gamma = random_vec(s.cols), s.beta = random_vec(s.cols);
  s.scores = random_vec(2 * 2 * 4 * (s.cols / 2)), s.mask = random_vec(2 * (s.cols / 2), -1.0f, 0.0f);
  s.table = random_vec(s.vocab * s.dim);
  for (int64_t i = 0; i < s.n_ids; i++) s.ids.push_back((int32_t)((i * 7) % s.vocab));
  Outputs expected;
  run_all(s, expected);
  const int kThreads = 4, kIters = 8;
  std::vector<Outputs> outs(kThreads);
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < kIters; it++) {
        run_all(s, outs[t]);
        const Outputs& o = outs[t];
        // Elementwise kernels are deterministic: bitwise equal. GEMM within 1e-6 (BLAS may split work).
        std::vector<double> cref(expected.c.begin(), expected.c.end());
        bool same = o.status == MPS_OK && rel_l2(o.c.data(), cref.data(), cref.size()) < 1e-6 && o.ln == expected.ln &&
                    o.sm == expected.sm && o.gelu == expected.gelu && o.tanh == expected.tanh &&
                    o.add == expected.add && o.emb == expected.emb;
        if (!same) mismatches[t]++;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; t++) {
    check(mismatches[t] == 0, "thread %d ran every kernel %d times concurrently, mismatches=%d", t, kIters,
          mismatches[t]);
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// gemm_packed: a Linear layer over weights packed once (both packings), ragged against the 6 x 16 tile and
// the K, row and column blocks, padded leading dimensions, every activation, with and without bias
// ------------------------------------------------------------------------------------------------

void gemm_packed_case(int64_t m, int64_t n, int64_t k, int trans_b, int act, bool with_bias, int64_t pad,
                      bool via_table) {
  const int64_t lda = k + pad, ldc = n + 2 * pad, ldb = (trans_b ? k : n) + pad;
  std::vector<float> a = random_vec((size_t)((m - 1) * lda + k)), c = random_vec((size_t)((m - 1) * ldc + n));
  std::vector<float> b = random_vec((size_t)((trans_b ? n - 1 : k - 1) * ldb + (trans_b ? k : n)), -0.3f, 0.3f);
  std::vector<float> bias = random_vec((size_t)n);
  std::vector<float> packed((size_t)mps_cpu_packed_floats(n, k), std::nanf(""));  // every float gets written
  mps_cpu_pack_weights(b.data(), ldb, trans_b, n, k, packed.data());
  bool pack_written = true;
  for (float v : packed) pack_written = pack_written && !std::isnan(v);
  std::vector<float> c0 = c;
  std::vector<double> ref(c.begin(), c.end());
  std::vector<char> touched(c.size(), 0);
  for (int64_t r = 0; r < m; r++) {
    for (int64_t j = 0; j < n; j++) {
      double sum = with_bias ? bias[(size_t)j] : 0.0;
      for (int64_t p = 0; p < k; p++) {
        sum += (double)a[(size_t)(r * lda + p)] * b[(size_t)(trans_b ? j * ldb + p : p * ldb + j)];
      }
      ref[(size_t)(r * ldc + j)] = act_ref(sum, act);
      touched[(size_t)(r * ldc + j)] = 1;
    }
  }
  mps_status s = MPS_OK;
  mps_error err{};
  if (via_table) {
    cpu_arg args[] = {buf(a), buf(packed), buf(c), with_bias ? buf(bias) : none(), ival(m), ival(n), ival(k),
                      ival(lda), ival(ldc), ival(act)};
    s = run_table("gemm_packed", args, &err);
  } else {
    mps_cpu_gemm_packed(a.data(), lda, packed.data(), c.data(), ldc, with_bias ? bias.data() : nullptr, m, n, k, act);
  }
  double e = rel_l2(c.data(), ref.data(), c.size(), touched);
  bool padding_kept = true;
  for (size_t i = 0; i < c.size(); i++) {
    if (!touched[i] && std::memcmp(&c[i], &c0[i], sizeof(float)) != 0) padding_kept = false;
  }
  record("gemm_packed", e);
  check(s == MPS_OK && e < kTol && padding_kept && pack_written,
        "gemm_packed M=%lld N=%lld K=%lld trans_b=%d act=%d bias=%d pad=%lld path=%s rel_l2=%.3g padding_kept=%d "
        "pack_written=%d %s",
        (long long)m, (long long)n, (long long)k, trans_b, act, (int)with_bias, (long long)pad,
        via_table ? "table" : "direct", e, (int)padding_kept, (int)pack_written, s == MPS_OK ? "" : err.message);
}

void test_gemm_packed() {
  // M: one row, below, at and past the 6-row tile, past the 120-row block; N: below, at and past a 16-column
  // panel and past the 48-panel block (770 = 48 panels + 2 columns); K: one, odd, past the 384 block (two and
  // three blocks, the last short).
  const int64_t shapes[][3] = {{1, 1, 1},   {5, 15, 7},    {6, 16, 33},  {7, 17, 384}, {13, 33, 385},
                               {121, 40, 9}, {250, 31, 800}, {8, 770, 20}, {127, 64, 1000}};
  int combo = 0;
  for (auto& sh : shapes) {
    for (int act = 0; act < 3; act++) {
      for (int bias = 0; bias < 2; bias++, combo++) {
        gemm_packed_case(sh[0], sh[1], sh[2], combo % 2 == 0, act, bias != 0, combo % 3, combo % 4 >= 2);
      }
    }
  }
  // A MiniLM intermediate layer at a small batch: 128 x 384 -> 1536 with bias and GELU, through the table.
  gemm_packed_case(128, 1536, 384, 1, 1, true, 0, true);

  // Encode-time rejections name the kernel and the argument.
  Mem a(4 * 10 * 10), w(4 * 16 * 10), c(4 * 10 * 10), bias(4 * 10);
  auto args = [&](std::array<cpu_arg, 10>& x) {
    x = {a.arg(), w.arg(), c.arg(), bias.arg(), ival(10), ival(10), ival(10), ival(10), ival(10), ival(1)};
  };
  std::array<cpu_arg, 10> x;
  args(x);
  mps_error err{};
  check(kernel("gemm_packed")->validate(x.data(), &err) == MPS_OK, "gemm_packed validate accepts 10x10x10: %s",
        err.message);
  x[1] = buf(w.p, 4 * 10 * 10);  // 10 columns pack to 16: 640 bytes, not 400
  expect_reject("gemm_packed", x.data(), "gemm_packed: buffer W holds 400 bytes but needs 640", "an unpadded W");
  args(x);
  x[8] = ival(9);
  expect_reject("gemm_packed", x.data(), "gemm_packed: ldc is 9 but must be >= N (10)", "ldc < N");
  args(x);
  x[7] = ival(5);
  expect_reject("gemm_packed", x.data(), "gemm_packed: lda is 5 but must be >= K (10)", "lda < K");
  args(x);
  x[9] = ival(3);
  expect_reject("gemm_packed", x.data(), "gemm_packed: activation is 3 but must be in [0, 2]", "activation 3");
  args(x);
  x[6] = ival(0);
  expect_reject("gemm_packed", x.data(), "gemm_packed: K is 0", "K = 0");
  args(x);
  x[2] = a.arg();
  expect_reject("gemm_packed", x.data(), "gemm_packed: buffer C overlaps buffer A", "C aliasing A");
  args(x);
  x[3] = buf(bias.p, 36);
  expect_reject("gemm_packed", x.data(), "gemm_packed: buffer bias holds 36 bytes but needs 40", "a short bias");
  args(x);
  x[1] = ival(3);
  expect_reject("gemm_packed", x.data(), "gemm_packed: argument W is a int but must be a buffer", "W not a buffer");
}

// ------------------------------------------------------------------------------------------------
// pool: sentence embeddings over ragged sequences (padding at the end, inside, and a row of padding only)
// ------------------------------------------------------------------------------------------------

void test_pool() {
  const int64_t batch = 4, seq = 9, hidden = 37;
  std::vector<float> x = random_vec(batch * seq * hidden, -3.0f, 3.0f);
  std::vector<double> xd(x.begin(), x.end());
  std::vector<float> mask = mps_test::ragged_mask(batch, seq);
  const char* modes[] = {"cls", "mean", "max", "mean_sqrt_len"};
  for (int mode = 0; mode < 4; mode++) {
    for (int normalize = 0; normalize < 2; normalize++) {
      std::vector<float> y(batch * hidden, 123.0f);
      std::vector<double> ref = mps_test::pool_ref(xd, mask, batch, seq, hidden, mode, normalize);
      cpu_arg args[] = {buf(x), buf(mask), buf(y), ival(batch), ival(seq), ival(hidden), ival(mode), ival(normalize)};
      mps_error err{};
      mps_status s = run_table("pool", args, &err);
      double e = rel_l2(y.data(), ref.data(), y.size());
      bool empty_row_zero = mode == 0 || std::all_of(y.begin() + 3 * hidden, y.end(), [](float v) { return v == 0.0f; });
      record("pool", e);
      check(s == MPS_OK && e < kTol && empty_row_zero, "pool mode=%s normalize=%d over ragged rows rel_l2=%.3g %s",
            modes[mode], normalize, e, err.message);
    }
  }
  // Without a mask every position is a token: mean over all 9.
  std::vector<float> y(batch * hidden), ones(batch * seq, 0.0f);
  cpu_arg args[] = {buf(x), none(), buf(y), ival(batch), ival(seq), ival(hidden), ival(1), ival(0)};
  mps_error err{};
  mps_status s = run_table("pool", args, &err);
  std::vector<double> ref = mps_test::pool_ref(xd, ones, batch, seq, hidden, 1, 0);
  double e = rel_l2(y.data(), ref.data(), y.size());
  check(s == MPS_OK && e < kTol, "pool mean without a mask covers every position rel_l2=%.3g", e);
  cpu_arg bad[] = {buf(x), buf(mask), buf(y), ival(batch), ival(seq), ival(hidden), ival(4), ival(0)};
  s = run_table("pool", bad, &err);
  check(s == MPS_ERR_INVALID_ARGUMENT && std::strstr(err.message, "pool: mode is 4 but must be in [0, 3]"),
        "pool rejects mode 4: %s", err.message);
  cpu_arg small[] = {buf(x), buf(mask), buf(y.data(), 40), ival(batch), ival(seq), ival(hidden), ival(1), ival(0)};
  s = run_table("pool", small, &err);
  check(s == MPS_ERR_INVALID_ARGUMENT && std::strstr(err.message, "pool: buffer y holds 40 bytes but needs 592"),
        "pool rejects a short y: %s", err.message);
}

int main() {
  test_table();
  test_gemm_grid();
  test_gemm_beta_zero();
  test_gemm_attention();
  test_layernorm();
  test_softmax();
  test_unary("gelu", mps_cpu_gelu, gelu_ref);
  test_unary("tanh", mps_cpu_tanh, tanh_ref);
  test_pointwise_extremes();
  test_activation();
  test_rel_bias();
  test_approximation_errors();
  test_bias_add_and_add();
  test_embedding();
  test_pool();
  test_validate();
  test_gemm_packed();
  test_threads();
  for (auto& kv : g_worst) std::printf("ACCURACY %s worst rel_l2=%.3g\n", kv.first.c_str(), kv.second);
  std::printf("test_kernels: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
