// Conformance test of the metal backend through the C ABI only, modelled on test_cuda.cpp: every kernel
// against a float64 reference on random data (GEMM through each of its paths: one MPS call, batched MPS calls,
// the tiled kernel), Metal compile errors, encode-time validation, stream ordering, cross-stream waits,
// events, transfers of any alignment, completions from one thread per stream on the GPU's clock, releases
// while work is pending, and every object gone at the end. ctest runs it plain and under Metal's API and
// shader validation (MTL_DEBUG_LAYER=1 MTL_SHADER_VALIDATION=1, with MPS_TEST_LIGHT=1).
//
// Objective-C++ only so that the build compiles it with the backend's toolchain; it uses no Objective-C.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

using namespace mps_test;

namespace {

mps_device* g_device = nullptr;
std::mt19937 rng(20261124);

// The backend's clock (mach_absolute_time in ns): the GPU's timestamps and System.nanoTime on macOS.
uint64_t now_ns() { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

std::vector<float> random_vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

// Completions plus the threads they arrived on (a stream must deliver from exactly one thread) and the
// started/finished times of each point.
struct Delivery {
  Completions done;
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::vector<uint64_t> started, finished;
  static void on_start(void* user) {
    auto* d = static_cast<Delivery*>(user);
    d->note();
    Completions::on_start(&d->done);
  }
  static void on_complete(void* user, uint64_t point, mps_status status, const char* message, uint64_t started,
                          uint64_t finished) {
    auto* d = static_cast<Delivery*>(user);
    d->note();
    {
      std::lock_guard<std::mutex> g(d->mu);
      d->started.push_back(started);
      d->finished.push_back(finished);
    }
    Completions::on_complete(&d->done, point, status, message, started, finished);
  }
  static void on_stop(void* user) {
    auto* d = static_cast<Delivery*>(user);
    d->note();
    Completions::on_stop(&d->done);
  }
  void note() {
    std::lock_guard<std::mutex> g(mu);
    threads.insert(std::this_thread::get_id());
  }
  mps_stream_callbacks callbacks() { return {this, on_start, on_complete, on_stop}; }
};

// One stream with its completions; `run` commits what was encoded and waits for that point.
struct Stream {
  Delivery delivery;
  Completions& done = delivery.done;
  mps_stream* s = nullptr;
  Stream() {
    mps_stream_callbacks cb = delivery.callbacks();
    MUST(mps_stream_create(g_device, &cb, &s, nullptr));
  }
  ~Stream() {
    if (s) mps_stream_release(s, nullptr);
    CHECK(done.wait_for_stop(), "stream stops");
    std::lock_guard<std::mutex> g(done.mu);
    CHECK(done.started_calls == 1 && delivery.threads.size() == 1,
          "one delivering thread per stream: on_thread_start %d times, %zu threads", done.started_calls,
          delivery.threads.size());
  }
  mps_status run(std::string* message = nullptr) {
    uint64_t point = 0;
    MUST(mps_stream_commit(s, &point, nullptr));
    if (!done.wait_for_count(point)) return MPS_ERR_STATE;
    std::lock_guard<std::mutex> g(done.mu);
    if (message) *message = done.messages[point - 1];
    return done.statuses[point - 1];
  }
};

mps_buffer* device_buffer(Stream& st, const void* data, size_t bytes) {
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(g_device, bytes, &b, nullptr));
  if (data) MUST(mps_stream_encode_upload(st.s, data, b, 0, bytes, nullptr));
  return b;
}

std::vector<float> download(Stream& st, mps_buffer* b, size_t n) {
  std::vector<float> out(n, std::nanf(""));
  MUST(mps_stream_encode_download(st.s, b, 0, out.data(), n * sizeof(float), nullptr));
  CHECK(st.run() == MPS_OK, "download completes");
  return out;
}

mps_library* g_library = nullptr;
mps_pipeline* pipeline(const char* name) {
  mps_pipeline* p = nullptr;
  MUST(mps_pipeline_create(g_library, name, &p, nullptr));
  return p;
}

mps_arg I(int64_t v) { return mps_arg{MPS_ARG_INT, nullptr, 0, v, 0.0}; }
mps_arg F(double v) { return mps_arg{MPS_ARG_FLOAT, nullptr, 0, 0, v}; }
mps_arg NONE() { return mps_arg{MPS_ARG_NONE, nullptr, 0, 0, 0.0}; }

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

void test_device_and_compile() {
  mps_device_info info{};
  MUST(mps_device_info_get(g_device, &info, nullptr));
  std::printf("device: %s '%s', %d GPU cores, %.1f GiB working set, %.1f GiB max buffer\n", info.backend, info.name,
              info.compute_units, info.memory_bytes / 1073741824.0, info.max_buffer_bytes / 1073741824.0);
  CHECK(std::strcmp(info.backend, "metal") == 0 && info.host_visible == 1, "metal device, host visible");
  mps_error err{};
  mps_buffer* b = nullptr;
  CHECK(mps_buffer_alloc(g_device, info.max_buffer_bytes + 1, &b, &err) == MPS_ERR_INVALID_ARGUMENT,
        "oversized allocation refused: %s", err.message);

  mps_library* lib = nullptr;
  CHECK(mps_library_compile(g_device, "gemm nosuch", nullptr, &lib, &err) == MPS_ERR_COMPILE_FAILED &&
            std::strstr(err.message, "nosuch"),
        "unknown kernel named: %s", err.message);
  mps_status compiled = mps_library_compile(g_device, "layernorm", "-Dfloat=struct", &lib, &err);
  CHECK(compiled == MPS_ERR_COMPILE_FAILED && std::strstr(err.message, "error"),
        "source broken by a macro fails in Metal's compiler with its log: %s", err.message);
  if (compiled == MPS_OK) mps_library_release(lib, nullptr);
  std::printf("metal compiler log: %.200s\n", err.message);
  CHECK(mps_library_compile(g_device, "gelu", "-O3", &lib, &err) == MPS_ERR_COMPILE_FAILED &&
            std::strstr(err.message, "-O3"),
        "an option other than a macro is refused: %s", err.message);
  CHECK(mps_library_compile(g_device, "gelu", "-DMPS_UNUSED=1 -D MPS_FLAG", &lib, &err) == MPS_OK,
        "macros are accepted: %s", err.message);
  mps_library_release(lib, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  MUST(mps_library_compile(g_device, "*", nullptr, &g_library, nullptr));
  std::printf("Metal compile of all kernels: %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  mps_pipeline* missing = nullptr;
  CHECK(mps_pipeline_create(g_library, "conv2d", &missing, &err) == MPS_ERR_NOT_FOUND, "unknown function: %s",
        err.message);
}

// Unified memory: the host pointer, mps_buffer_write/read and a kernel see the same bytes.
void test_host_visible_buffers() {
  Stream st;
  const int64_t n = 1000;
  mps_buffer *a = nullptr, *y = nullptr;
  MUST(mps_buffer_alloc(g_device, n * 4, &a, nullptr));
  MUST(mps_buffer_alloc(g_device, n * 4, &y, nullptr));
  float* pa = host(a);
  for (int64_t i = 0; i < n; i++) pa[i] = (float)i;
  std::vector<float> ones(n, 1.0f);
  MUST(mps_buffer_write(y, 0, ones.data(), n * 4, nullptr));
  mps_pipeline* add = pipeline("add");
  mps_arg args[] = {buf(a), buf(y), buf(y), I(n)};
  MUST(mps_stream_encode_kernel(st.s, add, args, 4, nullptr));
  CHECK(st.run() == MPS_OK, "add completes");
  std::vector<float> got(n);
  MUST(mps_buffer_read(y, 0, got.data(), n * 4, nullptr));
  bool exact = true;
  for (int64_t i = 0; i < n; i++) exact &= got[i] == (float)i + 1.0f && host(y)[i] == got[i];
  CHECK(exact, "host pointer, write, kernel and read agree");
  mps_buffer_release(a, nullptr);
  mps_buffer_release(y, nullptr);
  mps_pipeline_release(add, nullptr);
}

// One gemm with explicit leading dimensions and strides, against float64 (untouched gaps must keep their values).
struct GemmCase {
  const char* path;  // which implementation the layout should take (printed only)
  int64_t m, n, k;
  int trans_a, trans_b, activation;
  double alpha, beta;
  bool bias;
  int64_t lda, ldb, ldc;
  int64_t bo, sa_o, sb_o, sc_o, bi, sa_i, sb_i, sc_i;
};

int64_t extent(int64_t rows, int64_t cols, int64_t ld, int64_t bo, int64_t so, int64_t bi, int64_t si) {
  return (bo - 1) * so + (bi - 1) * si + (rows - 1) * ld + cols;
}

void run_gemm(const GemmCase& g) {
  Stream st;
  int64_t m = g.m, n = g.n, k = g.k;
  auto A = random_vec((size_t)extent(g.trans_a ? k : m, g.trans_a ? m : k, g.lda, g.bo, g.sa_o, g.bi, g.sa_i));
  auto B = random_vec((size_t)extent(g.trans_b ? n : k, g.trans_b ? k : n, g.ldb, g.bo, g.sb_o, g.bi, g.sb_i));
  auto C = random_vec((size_t)extent(m, n, g.ldc, g.bo, g.sc_o, g.bi, g.sc_i));
  auto bias = random_vec((size_t)n);
  mps_buffer *a = device_buffer(st, A.data(), A.size() * 4), *b = device_buffer(st, B.data(), B.size() * 4);
  mps_buffer *c = device_buffer(st, C.data(), C.size() * 4), *bb = device_buffer(st, bias.data(), bias.size() * 4);
  mps_pipeline* p = pipeline("gemm");
  mps_arg args[] = {buf(a), buf(b), buf(c), g.bias ? buf(bb) : NONE(), I(m), I(n), I(k), I(g.lda), I(g.ldb),
                    I(g.ldc), I(g.trans_a), I(g.trans_b), F(g.alpha), F(g.beta), I(g.activation), I(g.bo),
                    I(g.sa_o), I(g.sb_o), I(g.sc_o), I(g.bi), I(g.sa_i), I(g.sb_i), I(g.sc_i)};
  mps_error err{};
  MUST(mps_stream_encode_kernel(st.s, p, args, 23, &err));
  auto got = download(st, c, C.size());
  std::vector<double> want(C.begin(), C.end());
  std::vector<float> got_touched;
  std::vector<double> want_touched;
  for (int64_t o = 0; o < g.bo; o++)
    for (int64_t i = 0; i < g.bi; i++)
      for (int64_t r = 0; r < m; r++)
        for (int64_t col = 0; col < n; col++) {
          double acc = 0;
          for (int64_t x = 0; x < k; x++) {
            double av = A[o * g.sa_o + i * g.sa_i + (g.trans_a ? x * g.lda + r : r * g.lda + x)];
            double bv = B[o * g.sb_o + i * g.sb_i + (g.trans_b ? col * g.ldb + x : x * g.ldb + col)];
            acc += av * bv;
          }
          size_t at = (size_t)(o * g.sc_o + i * g.sc_i + r * g.ldc + col);
          double v = g.alpha * acc + g.beta * (double)C[at] + (g.bias ? bias[col] : 0.0);
          if (g.activation == 1) v = gelu(v);
          if (g.activation == 2) v = std::tanh(v);
          want_touched.push_back(v);
          got_touched.push_back(got[at]);
          want[at] = v;
        }
  double e = rel_l2(got_touched, want_touched);
  bool untouched_kept = true;
  for (size_t i = 0; i < got.size(); i++) untouched_kept &= got[i] == (float)want[i] || std::fabs(got[i] - want[i]) < 1e-3;
  CHECK(e < 1e-5 && untouched_kept, "gemm (%s) ta=%d tb=%d act=%d bo=%lld bi=%lld: rel L2 %.3e, gaps kept %d", g.path,
        g.trans_a, g.trans_b, g.activation, (long long)g.bo, (long long)g.bi, e, untouched_kept);
  std::printf("[numerics] gemm %-34s ta=%d tb=%d act=%d batches %lldx%lld: %.3e\n", g.path, g.trans_a, g.trans_b,
              g.activation, (long long)g.bo, (long long)g.bi, e);
  for (mps_buffer* x : {a, b, c, bb}) mps_buffer_release(x, nullptr);
  mps_pipeline_release(p, nullptr);
}

// test_cuda's four cases (both batch levels, gaps between batches: batched MPS calls), then one layout for each
// other path: a single MPS call, one folded MPS batch, attention heads interleaved in [batch, seq, heads, dim]
// (MPS batched over the outer level, one call per head), a broadcast operand, and strides MPS cannot describe.
void test_gemm() {
  const int64_t m = 37, n = 53, k = 29;
  struct Flags { int ta, tb, act; int64_t bo, bi; double alpha, beta; };
  for (Flags f : {Flags{0, 0, 0, 1, 1, 1.0, 0.0}, Flags{1, 0, 1, 2, 3, 0.5, 1.0}, Flags{0, 1, 2, 3, 2, 1.0, 0.0},
                  Flags{1, 1, 1, 1, 4, -1.0, 0.25}}) {
    int64_t sa_i = m * k, sb_i = k * n, sc_i = m * n;
    run_gemm({"MPS, batches with gaps", m, n, k, f.ta, f.tb, f.act, f.alpha, f.beta, true, f.ta ? m : k, f.tb ? k : n,
              n, f.bo, sa_i * f.bi + 7, sb_i * f.bi + 5, sc_i * f.bi + 3, f.bi, sa_i, sb_i, sc_i});
  }
  run_gemm({"MPS, one matrix, padded rows", 64, 48, 96, 0, 0, 0, 1.0, 0.0, false, 100, 50, 49, 1, 0, 0, 0, 1, 0, 0, 0});
  run_gemm({"MPS, both levels folded", m, n, k, 0, 0, 1, 1.0, 0.0, true, k, n, n, 2, 3 * m * k, 3 * k * n, 3 * m * n,
            3, m * k, k * n, m * n});
  const int64_t batch = 3, seq = 40, heads = 4, dim = 16, hidden = heads * dim;
  run_gemm({"MPS per head, QK^T", seq, seq, dim, 0, 1, 0, 0.25, 0.0, false, hidden, hidden, seq, batch, seq * hidden,
            seq * hidden, heads * seq * seq, heads, dim, dim, seq * seq});
  run_gemm({"MPS per head, PV", seq, dim, seq, 0, 0, 0, 1.0, 0.0, false, seq, hidden, hidden, batch, heads * seq * seq,
            seq * hidden, seq * hidden, heads, seq * seq, dim, dim});
  run_gemm({"MPS per batch, B broadcast", 20, 30, 10, 0, 0, 2, 1.0, 0.0, true, 10, 30, 30, 1, 0, 0, 0, 4, 200, 0, 600});
  run_gemm({"tiled kernel, odd strides", 33, 21, 17, 1, 1, 1, 0.75, 0.5, true, 34, 18, 22, 2, 1601, 1201, 2203, 3,
            601, 401, 733});
}

void test_layernorm_softmax_elementwise() {
  Stream st;
  // layernorm with residual, offset mean so a one-pass variance (or an unshifted mean) would lose digits
  const int64_t rows = 33, cols = 768;
  auto x = random_vec(rows * cols, 99.0f, 101.0f), res = random_vec(rows * cols), g = random_vec(cols, 0.5f, 1.5f),
       be = random_vec(cols);
  mps_buffer *bx = device_buffer(st, x.data(), x.size() * 4), *br = device_buffer(st, res.data(), res.size() * 4);
  mps_buffer *bg = device_buffer(st, g.data(), g.size() * 4), *bb = device_buffer(st, be.data(), be.size() * 4);
  mps_buffer* by = device_buffer(st, nullptr, x.size() * 4);
  mps_pipeline* ln = pipeline("layernorm");
  mps_arg la[] = {buf(bx), buf(br), buf(bg), buf(bb), buf(by), I(rows), I(cols), F(1e-12)};
  MUST(mps_stream_encode_kernel(st.s, ln, la, 8, nullptr));
  auto y = download(st, by, x.size());
  std::vector<double> want(x.size());
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) mean += (double)x[r * cols + c] + res[r * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; c++) {
      double d = (double)x[r * cols + c] + res[r * cols + c] - mean;
      var += d * d;
    }
    var /= cols;
    for (int64_t c = 0; c < cols; c++)
      want[r * cols + c] = ((double)x[r * cols + c] + res[r * cols + c] - mean) / std::sqrt(var + 1e-12) * g[c] + be[c];
  }
  double e = rel_l2(y, want);
  CHECK(e < 1e-5, "layernorm rel L2 %.3e", e);
  std::printf("[numerics] layernorm  %.3e\n", e);

  // softmax over [batch, heads, rows, cols] with an additive mask
  const int64_t B = 3, H = 4, R = 17, C = 130;
  auto s = random_vec(B * H * R * C, -4.0f, 4.0f);
  std::vector<float> mask(B * C, 0.0f);
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = C - 5 * (b + 1); c < C; c++) mask[b * C + c] = -10000.0f;
  mps_buffer *bs = device_buffer(st, s.data(), s.size() * 4), *bm = device_buffer(st, mask.data(), mask.size() * 4);
  mps_pipeline* sm = pipeline("softmax");
  mps_arg sa[] = {buf(bs), buf(bm), I(B), I(H), I(R), I(C), F(0.125)};
  MUST(mps_stream_encode_kernel(st.s, sm, sa, 7, nullptr));
  auto sg = download(st, bs, s.size());
  std::vector<double> sw(s.size());
  for (int64_t row = 0; row < B * H * R; row++) {
    int64_t b = row / (H * R);
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < C; c++) mx = std::max(mx, 0.125 * s[row * C + c] + mask[b * C + c]);
    for (int64_t c = 0; c < C; c++) sum += std::exp(0.125 * s[row * C + c] + mask[b * C + c] - mx);
    for (int64_t c = 0; c < C; c++) sw[row * C + c] = std::exp(0.125 * s[row * C + c] + mask[b * C + c] - mx) / sum;
  }
  e = rel_l2(sg, sw);
  CHECK(e < 1e-5, "softmax rel L2 %.3e", e);
  std::printf("[numerics] softmax    %.3e\n", e);

  // gelu, tanh, bias_add, add in one commit (one compute encoder), in place where the contract allows
  const int64_t n = 100003, r2 = 301, c2 = 77;
  auto u = random_vec(n, -5.0f, 5.0f), v = random_vec(n), bias = random_vec(c2), xr = random_vec(r2 * c2);
  mps_buffer *bu = device_buffer(st, u.data(), n * 4), *bt = device_buffer(st, nullptr, n * 4);
  mps_buffer *bv = device_buffer(st, v.data(), n * 4), *bsum = device_buffer(st, nullptr, n * 4);
  mps_buffer *bbias = device_buffer(st, bias.data(), c2 * 4), *bxr = device_buffer(st, xr.data(), xr.size() * 4);
  mps_pipeline *pg = pipeline("gelu"), *pt = pipeline("tanh"), *pb = pipeline("bias_add"), *pa = pipeline("add");
  mps_arg tanh_args[] = {buf(bu), buf(bt), I(n)};
  mps_arg gelu_args[] = {buf(bu), buf(bu), I(n)};
  mps_arg add_args[] = {buf(bu), buf(bv), buf(bsum), I(n)};
  mps_arg bias_args[] = {buf(bxr), buf(bbias), buf(bxr), I(r2), I(c2)};
  MUST(mps_stream_encode_kernel(st.s, pt, tanh_args, 3, nullptr));
  MUST(mps_stream_encode_kernel(st.s, pg, gelu_args, 3, nullptr));
  MUST(mps_stream_encode_kernel(st.s, pa, add_args, 4, nullptr));
  MUST(mps_stream_encode_kernel(st.s, pb, bias_args, 5, nullptr));
  auto got_t = download(st, bt, n), got_sum = download(st, bsum, n), got_b = download(st, bxr, xr.size());
  auto got_gelu = download(st, bu, n);
  std::vector<double> wt(n), wsum(n), wb(xr.size());
  double worst_gelu = 0;  // relative, on [-5, 5]: the erfc-based GELU keeps the negative tail accurate
  for (int64_t i = 0; i < n; i++) {
    wt[i] = std::tanh((double)u[i]);
    wsum[i] = gelu(u[i]) + v[i];
    double w = gelu(u[i]);
    if (std::fabs(w) > 1e-30) worst_gelu = std::max(worst_gelu, std::fabs(got_gelu[i] - w) / std::fabs(w));
  }
  for (int64_t i = 0; i < r2 * c2; i++) wb[i] = (double)xr[i] + bias[i % c2];
  double et = rel_l2(got_t, wt), es = rel_l2(got_sum, wsum), eb = rel_l2(got_b, wb);
  CHECK(et < 1e-6 && es < 1e-6 && eb < 1e-7, "tanh %.3e, gelu+add %.3e, bias_add %.3e", et, es, eb);
  CHECK(worst_gelu < 1e-5, "gelu max relative error %.3e on [-5, 5]", worst_gelu);
  std::printf("[numerics] tanh %.3e  gelu+add %.3e  bias_add %.3e  gelu max rel %.3e\n", et, es, eb, worst_gelu);
  for (mps_buffer* b : {bx, br, bg, bb, by, bs, bm, bu, bt, bv, bsum, bbias, bxr}) mps_buffer_release(b, nullptr);
  for (mps_pipeline* p : {ln, sm, pg, pt, pb, pa}) mps_pipeline_release(p, nullptr);
}

void test_embedding() {
  Stream st;
  const int64_t vocab = 1000, dim = 96, n = 257;
  auto table = random_vec(vocab * dim), pos = random_vec(n * dim);
  std::vector<int32_t> ids(n);
  std::uniform_int_distribution<int32_t> pick(0, (int32_t)vocab - 1);
  for (auto& id : ids) id = pick(rng);
  mps_buffer *bt = device_buffer(st, table.data(), table.size() * 4), *bo = device_buffer(st, pos.data(), pos.size() * 4);
  mps_buffer* bi = device_buffer(st, ids.data(), ids.size() * 4);
  mps_pipeline* p = pipeline("embedding");
  mps_arg args[] = {buf(bi), buf(bt), buf(bo), I(n), I(dim), I(vocab), I(1)};
  MUST(mps_stream_encode_kernel(st.s, p, args, 7, nullptr));
  auto got = download(st, bo, pos.size());
  bool exact = true;
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < dim; c++) exact &= got[i * dim + c] == pos[i * dim + c] + table[ids[i] * dim + c];
  CHECK(exact, "embedding accumulate is exact");
  // an id out of range fails the commit, naming the id and its position; the stream keeps serving
  ids[123] = (int32_t)vocab + 7;
  MUST(mps_stream_encode_upload(st.s, ids.data(), bi, 0, ids.size() * 4, nullptr));
  MUST(mps_stream_encode_kernel(st.s, p, args, 7, nullptr));
  std::string message;
  mps_status s = st.run(&message);
  CHECK(s == MPS_ERR_KERNEL_FAILED && message.find("1007") != std::string::npos &&
            message.find("123") != std::string::npos,
        "bad id reported: %s (%s)", mps_status_name(s), message.c_str());
  ids[123] = 5;
  MUST(mps_stream_encode_upload(st.s, ids.data(), bi, 0, ids.size() * 4, nullptr));
  MUST(mps_stream_encode_kernel(st.s, p, args, 7, nullptr));
  CHECK(st.run() == MPS_OK, "the next commit on the same stream succeeds");
  for (mps_buffer* b : {bt, bo, bi}) mps_buffer_release(b, nullptr);
  mps_pipeline_release(p, nullptr);
}

void test_validation() {
  Stream st;
  mps_buffer* small = nullptr;
  MUST(mps_buffer_alloc(g_device, 64, &small, nullptr));
  mps_pipeline* p = pipeline("gelu");
  mps_arg args[] = {buf(small), buf(small), I(1000)};
  mps_error err{};
  CHECK(mps_stream_encode_kernel(st.s, p, args, 3, &err) == MPS_ERR_INVALID_ARGUMENT &&
            std::strstr(err.message, "holds 64 bytes"),
        "too small a buffer refused at encode: %s", err.message);
  mps_arg neg[] = {buf(small), buf(small), I(-1)};
  CHECK(mps_stream_encode_kernel(st.s, p, neg, 3, &err) == MPS_ERR_INVALID_ARGUMENT, "negative size: %s", err.message);
  float host_floats[32];
  CHECK(mps_stream_encode_download(st.s, small, 32, host_floats, 64, &err) == MPS_ERR_INVALID_ARGUMENT,
        "download past the end: %s", err.message);
  CHECK(mps_stream_open_commands(st.s) == 0, "nothing was encoded");
  mps_buffer_release(small, nullptr);
  mps_pipeline_release(p, nullptr);
}

// Copies, uploads and downloads at offsets and sizes that are not multiples of 4 (the byte-copy kernel; a
// blit needs multiples of 4 on macOS) and at aligned ones (the blit), in one commit, in order.
void test_transfers_of_any_alignment() {
  Stream st;
  std::vector<uint8_t> pattern(1000);
  for (size_t i = 0; i < pattern.size(); i++) pattern[i] = (uint8_t)(i * 7 + 3);
  mps_buffer *a = nullptr, *b = nullptr;
  MUST(mps_buffer_alloc(g_device, 1024, &a, nullptr));
  MUST(mps_buffer_alloc(g_device, 1024, &b, nullptr));
  std::vector<uint8_t> zeros(1024, 0);
  MUST(mps_buffer_write(a, 0, zeros.data(), 1024, nullptr));
  MUST(mps_buffer_write(b, 0, zeros.data(), 1024, nullptr));
  MUST(mps_stream_encode_upload(st.s, pattern.data(), a, 3, 997, nullptr));     // unaligned upload
  MUST(mps_stream_encode_copy(st.s, a, 5, b, 1, 333, nullptr));                  // unaligned copy
  MUST(mps_stream_encode_copy(st.s, a, 512, b, 600, 256, nullptr));              // aligned copy (blit)
  std::vector<uint8_t> odd(101, 0xee), whole(1024, 0xee);
  MUST(mps_stream_encode_download(st.s, b, 7, odd.data(), odd.size(), nullptr));  // unaligned download
  MUST(mps_stream_encode_download(st.s, b, 0, whole.data(), whole.size(), nullptr));
  CHECK(st.run() == MPS_OK, "transfers complete");
  std::vector<uint8_t> ha(1024, 0), hb(1024, 0);
  std::memcpy(ha.data() + 3, pattern.data(), 997);
  std::memcpy(hb.data() + 1, ha.data() + 5, 333);
  std::memcpy(hb.data() + 600, ha.data() + 512, 256);
  CHECK(std::memcmp(whole.data(), hb.data(), 1024) == 0 && std::memcmp(odd.data(), hb.data() + 7, odd.size()) == 0,
        "byte-exact transfers at any alignment");
  mps_buffer_release(a, nullptr);
  mps_buffer_release(b, nullptr);
}

// Stream B waits on A's point while A runs a long GEMM chain into X; B then copies X and downloads it.
// Without the wait B would copy X before A wrote it.
void test_cross_stream_wait_and_release() {
  Stream a, b;
  const bool light = std::getenv("MPS_TEST_LIGHT") != nullptr;
  const int64_t n = light ? 256 : 1024;
  const int reps = light ? 6 : 40;
  auto M = random_vec(n * n, -0.03f, 0.03f);
  std::vector<float> ones(n * n, 1.0f);
  mps_buffer *bm = device_buffer(a, M.data(), M.size() * 4), *bx = device_buffer(a, ones.data(), ones.size() * 4);
  mps_buffer* by = device_buffer(a, nullptr, ones.size() * 4);
  mps_pipeline* g = pipeline("gemm");
  CHECK(a.run() == MPS_OK, "uploads done");
  for (int rep = 0; rep < reps; rep++) {  // X = M * X, reps times, on A
    mps_buffer* src = rep % 2 == 0 ? bx : by;
    mps_buffer* dst = rep % 2 == 0 ? by : bx;
    mps_arg args[] = {buf(bm), buf(src), buf(dst), NONE(), I(n), I(n), I(n), I(n), I(n), I(n), I(0), I(0), F(1.0), F(0.0),
                      I(0), I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
    MUST(mps_stream_encode_kernel(a.s, g, args, 23, nullptr));
  }
  uint64_t point = 0;
  MUST(mps_stream_commit(a.s, &point, nullptr));
  mps_buffer* result = nullptr;
  MUST(mps_buffer_alloc(g_device, ones.size() * 4, &result, nullptr));
  MUST(mps_stream_encode_wait(b.s, a.s, point, nullptr));
  MUST(mps_stream_encode_copy(b.s, bx, 0, result, 0, ones.size() * 4, nullptr));
  std::vector<float> got(n * n, 0.0f);
  MUST(mps_stream_encode_download(b.s, result, 0, got.data(), got.size() * 4, nullptr));
  // released at once: the pending commands hold the buffers
  mps_buffer_release(bm, nullptr);
  mps_buffer_release(bx, nullptr);
  mps_buffer_release(by, nullptr);
  mps_buffer_release(result, nullptr);
  CHECK(b.run() == MPS_OK, "B completes after A");
  CHECK(mps_stream_completed_point(a.s) >= point, "A completed before B's copy");
  double worst = 0;
  for (int col : {0, (int)n / 2 - 1, (int)n - 1}) {
    std::vector<double> v(n, 1.0), w(n);
    for (int rep = 0; rep < reps; rep++) {
      for (int64_t r = 0; r < n; r++) {
        double acc = 0;
        for (int64_t x = 0; x < n; x++) acc += (double)M[r * n + x] * v[x];
        w[r] = acc;
      }
      v.swap(w);
    }
    std::vector<float> g_col(n);
    for (int64_t r = 0; r < n; r++) g_col[r] = got[r * n + col];
    worst = std::max(worst, rel_l2(g_col, v));
  }
  CHECK(worst < 1e-4, "chained gemm across the wait: rel L2 %.3e", worst);
  std::printf("[streams] %d chained %lld^3 GEMMs on A, B waited: rel L2 %.3e\n", reps, (long long)n, worst);
  mps_pipeline_release(g, nullptr);
}

// Many streams from many threads at once: every commit completes in order, every result exact, timestamps on
// the backend's clock and one after another, events complete with sensible times.
void test_parallel_streams_and_events() {
  const int streams = 8, commits = 60;
  std::vector<std::thread> threads;
  mps_event* shared_event = nullptr;
  MUST(mps_event_create(g_device, &shared_event, nullptr));
  for (int t = 0; t < streams; t++) {
    threads.emplace_back([t, shared_event] {
      uint64_t t0 = now_ns();
      Stream st;
      mps_pipeline* add = pipeline("add");
      const int64_t n = 4096;
      std::vector<float> a(n, (float)t), step(n, 1.0f);
      mps_buffer *ba = device_buffer(st, a.data(), n * 4), *bs = device_buffer(st, step.data(), n * 4);
      mps_event *e0 = nullptr, *e1 = nullptr;
      MUST(mps_event_create(g_device, &e0, nullptr));
      MUST(mps_event_create(g_device, &e1, nullptr));
      MUST(mps_stream_encode_event_record(st.s, e0, nullptr));
      for (int c = 0; c < commits; c++) {
        mps_arg args[] = {buf(ba), buf(bs), buf(ba), I(n)};
        MUST(mps_stream_encode_kernel(st.s, add, args, 4, nullptr));
        if (c % 10 == 0) MUST(mps_stream_encode_event_record(st.s, shared_event, nullptr));
        uint64_t p = 0;
        MUST(mps_stream_commit(st.s, &p, nullptr));
      }
      MUST(mps_stream_encode_event_record(st.s, e1, nullptr));
      auto got = download(st, ba, n);
      uint64_t t1 = now_ns();
      bool exact = true;
      for (float v : got) exact &= v == (float)(t + commits);
      CHECK(exact, "stream %d: %d in-order adds", t, commits);
      {
        std::lock_guard<std::mutex> g(st.done.mu);
        bool ordered = true;
        for (size_t i = 0; i < st.done.points.size(); i++) ordered &= st.done.points[i] == i + 1;
        CHECK(ordered, "stream %d: completions in point order", t);
      }
      int32_t complete = 0;
      double ms = -1;
      MUST(mps_event_query(e1, &complete, nullptr));
      CHECK(complete == 1 && mps_event_elapsed_ms(e0, e1, &ms, nullptr) == MPS_OK && ms >= 0.0 &&
                ms <= (double)(t1 - t0) / 1e6,
            "stream %d events: complete %d, %.3f ms (the test took %.3f ms)", t, complete, ms, (t1 - t0) / 1e6);
      mps_event_release(e0, nullptr);
      mps_event_release(e1, nullptr);
      mps_buffer_release(ba, nullptr);
      mps_buffer_release(bs, nullptr);
      mps_pipeline_release(add, nullptr);
    });
  }
  for (auto& th : threads) th.join();
  int32_t complete = 0;
  MUST(mps_event_query(shared_event, &complete, nullptr));
  CHECK(complete == 1, "an event recorded on %d streams completes", streams);
  mps_event_release(shared_event, nullptr);
}

// started/finished come from the GPU (mach time, the clock of System.nanoTime on macOS): inside the test's
// window and one commit after another. An event recorded after work in the same commit is timed at that
// work's end (the commit is split there), so two records around two halves of the work time each half.
void test_clock_and_event_split() {
  uint64_t t0 = now_ns();
  std::vector<uint64_t> started, finished;
  {
    Stream st;
    const int64_t n = 512;
    auto M = random_vec(n * n, -0.03f, 0.03f);
    mps_buffer *bm = device_buffer(st, M.data(), M.size() * 4), *bx = device_buffer(st, M.data(), M.size() * 4);
    mps_buffer* by = device_buffer(st, nullptr, M.size() * 4);
    CHECK(st.run() == MPS_OK, "uploads done");
    mps_pipeline* g = pipeline("gemm");
    mps_event *before = nullptr, *middle = nullptr, *after = nullptr;
    MUST(mps_event_create(g_device, &before, nullptr));
    MUST(mps_event_create(g_device, &middle, nullptr));
    MUST(mps_event_create(g_device, &after, nullptr));
    mps_arg args[] = {buf(bm), buf(bx), buf(by), NONE(), I(n), I(n), I(n), I(n), I(n), I(n), I(0), I(0), F(1.0),
                      F(0.0), I(0), I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
    MUST(mps_stream_encode_event_record(st.s, before, nullptr));
    for (int i = 0; i < 8; i++) MUST(mps_stream_encode_kernel(st.s, g, args, 23, nullptr));
    MUST(mps_stream_encode_event_record(st.s, middle, nullptr));
    for (int i = 0; i < 8; i++) MUST(mps_stream_encode_kernel(st.s, g, args, 23, nullptr));
    MUST(mps_stream_encode_event_record(st.s, after, nullptr));
    CHECK(st.run() == MPS_OK, "timed commit completes");
    for (int i = 0; i < 5; i++) {
      MUST(mps_stream_encode_kernel(st.s, g, args, 23, nullptr));
      MUST(mps_stream_commit(st.s, nullptr, nullptr));
    }
    for (int i = 0; i < 3; i++) MUST(mps_stream_commit(st.s, nullptr, nullptr));  // empty: timeline markers
    CHECK(st.done.wait_for_count(10) && st.done.all_ok(), "ten commits complete");
    uint64_t t1 = now_ns();
    double first = -1, second = -1;
    CHECK(mps_event_elapsed_ms(before, middle, &first, nullptr) == MPS_OK &&
              mps_event_elapsed_ms(middle, after, &second, nullptr) == MPS_OK && first > 0 && second > 0 &&
              first + second <= (double)(t1 - t0) / 1e6,
          "events split the commit: %.3f ms + %.3f ms of GEMMs", first, second);
    std::printf("[clock] 8 GEMMs %.3f ms, 8 more %.3f ms (GPU times)\n", first, second);
    for (mps_event* e : {before, middle, after}) mps_event_release(e, nullptr);
    for (mps_buffer* b : {bm, bx, by}) mps_buffer_release(b, nullptr);
    mps_pipeline_release(g, nullptr);
    std::lock_guard<std::mutex> lock(st.delivery.mu);
    started = st.delivery.started;
    finished = st.delivery.finished;
  }
  uint64_t t1 = now_ns();
  bool in_window = true, in_order = true;
  for (size_t i = 0; i < started.size(); i++) {
    in_window &= t0 <= started[i] && started[i] <= finished[i] && finished[i] <= t1;
    if (i > 0) in_order &= started[i] >= finished[i - 1];
  }
  CHECK(started.size() == 10 && in_window && in_order,
        "completion times on the test's clock (%zu points, in window %d, one after another %d)", started.size(),
        in_window, in_order);
}

// A program encoded by several streams at once, each with its own binding.
void test_program() {
  mps_program* prog = nullptr;
  MUST(mps_program_create(g_device, 3, &prog, nullptr));
  mps_pipeline *gl = pipeline("gelu"), *ad = pipeline("add");
  const int64_t n = 2048;
  mps_program_arg g_args[] = {{MPS_ARG_BUFFER, 0, 0, 0, 0}, {MPS_ARG_BUFFER, 1, 0, 0, 0}, {MPS_ARG_INT, 0, 0, n, 0}};
  mps_program_arg a_args[] = {{MPS_ARG_BUFFER, 1, 0, 0, 0}, {MPS_ARG_BUFFER, 0, 0, 0, 0}, {MPS_ARG_BUFFER, 2, 0, 0, 0},
                              {MPS_ARG_INT, 0, 0, n, 0}};
  MUST(mps_program_add_kernel(prog, gl, g_args, 3, nullptr));
  MUST(mps_program_add_kernel(prog, ad, a_args, 4, nullptr));
  MUST(mps_program_seal(prog, nullptr));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      Stream st;
      auto x = random_vec(n, -3.0f, 3.0f);
      mps_buffer* slots[3] = {device_buffer(st, x.data(), n * 4), device_buffer(st, nullptr, n * 4),
                              device_buffer(st, nullptr, n * 4)};
      MUST(mps_stream_encode_program(st.s, prog, slots, 3, nullptr));
      auto got = download(st, slots[2], n);
      std::vector<double> want(n);
      for (int64_t i = 0; i < n; i++) want[i] = gelu(x[i]) + x[i];
      double e = rel_l2(got, want);
      CHECK(e < 1e-6, "program on stream %d: rel L2 %.3e", t, e);
      for (mps_buffer* b : slots) mps_buffer_release(b, nullptr);
    });
  }
  for (auto& th : threads) th.join();
  mps_program_release(prog, nullptr);
  mps_pipeline_release(gl, nullptr);
  mps_pipeline_release(ad, nullptr);
}

// Released with committed work still queued: every point is still reported, then on_thread_stop, last.
void test_release_with_pending_work() {
  Delivery d;
  mps_stream_callbacks cb = d.callbacks();
  mps_stream* s = nullptr;
  MUST(mps_stream_create(g_device, &cb, &s, nullptr));
  mps_pipeline* g = pipeline("gemm");
  const int64_t n = 256;
  mps_buffer* m = nullptr;
  MUST(mps_buffer_alloc(g_device, n * n * 4, &m, nullptr));
  mps_buffer* c = nullptr;
  MUST(mps_buffer_alloc(g_device, n * n * 4, &c, nullptr));
  mps_arg args[] = {buf(m), buf(m), buf(c), NONE(), I(n), I(n), I(n), I(n), I(n), I(n), I(0), I(0), F(1.0), F(0.0),
                    I(0), I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
  for (int i = 0; i < 20; i++) {
    MUST(mps_stream_encode_kernel(s, g, args, 23, nullptr));
    MUST(mps_stream_commit(s, nullptr, nullptr));
  }
  MUST(mps_stream_encode_kernel(s, g, args, 23, nullptr));  // uncommitted: discarded
  mps_buffer_release(m, nullptr);
  mps_buffer_release(c, nullptr);
  mps_pipeline_release(g, nullptr);
  MUST(mps_stream_release(s, nullptr));
  CHECK(d.done.wait_for_stop(), "released stream stops");
  std::lock_guard<std::mutex> lock(d.done.mu);
  CHECK(d.done.points.size() == 20 && d.done.started_calls == 1 && d.threads.size() == 1,
        "all 20 committed points reported from one thread before on_thread_stop (%zu points)", d.done.points.size());
}

// The metal backend computes in fp32 only; other math modes are refused at open, like on cpu.
void test_math_modes_refused() {
  for (int32_t math : {MPS_MATH_TF32, MPS_MATH_FP16, MPS_MATH_BF16}) {
    mps_device_options options{"metal", 0, 1, math};
    mps_device* d = nullptr;
    mps_error err{};
    CHECK(mps_device_open(&options, &d, &err) == MPS_ERR_UNSUPPORTED && d == nullptr, "math mode %d refused: %s",
          (int)math, err.message);
  }
  mps_device_options cuda{"cuda", 0, 1, MPS_MATH_FP32};
  mps_device* d = nullptr;
  mps_error err{};
  CHECK(mps_device_open(&cuda, &d, &err) == MPS_ERR_NOT_FOUND, "another backend is not here: %s", err.message);
}

}  // namespace

int main() {
  mps_device_options options{"metal", 0, 1, MPS_MATH_FP32};
  mps_error err{};
  if (mps_device_open(&options, &g_device, &err) != MPS_OK) {
    std::fprintf(stderr, "cannot open the metal device: %s\n", err.message);
    return 2;
  }
  test_device_and_compile();
  test_host_visible_buffers();
  test_gemm();
  test_layernorm_softmax_elementwise();
  test_embedding();
  test_validation();
  test_transfers_of_any_alignment();
  test_cross_stream_wait_and_release();
  test_parallel_streams_and_events();
  test_clock_and_event_split();
  test_program();
  test_release_with_pending_work();
  test_math_modes_refused();
  MUST(mps_library_release(g_library, nullptr));
  CHECK(wait_live_zero(g_device), "every object freed");
  CHECK(mps_device_close(g_device, &err) == MPS_OK, "device closes: %s", err.message);
  return summary("test_metal");
}
