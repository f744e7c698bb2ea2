// Conformance test of the cuda backend through the C ABI only (data moves by upload/download, as the
// memory is not host visible): every kernel against a float64 reference on random data, NVRTC compile
// errors, encode-time validation, stream ordering, cross-stream waits, events, releases while work is
// pending, and every object gone at the end. Run plain and under compute-sanitizer (memcheck, racecheck).
// The conformance suite over the C ABI (conformance.c, every backend) checks attention16 and repeats the
// kernel checks made here.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pool_reference.h"
#include "test_support.h"

using namespace mps_test;

namespace {

mps_device* g_device = nullptr;
std::mt19937 rng(20261124);

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

// One stream with its completions; `run` commits what was encoded and waits for that point.
struct Stream {
  Completions done;
  mps_stream* s = nullptr;
  Stream() {
    mps_stream_callbacks cb = done.callbacks();
    MUST(mps_stream_create(g_device, &cb, &s, nullptr));
  }
  ~Stream() {
    if (s) mps_stream_release(s, nullptr);
    done.wait_for_stop();
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
  std::printf("device: %s '%s', %d SMs, %.1f GiB\n", info.backend, info.name, info.compute_units,
              info.memory_bytes / 1073741824.0);
  CHECK(std::strcmp(info.backend, "cuda") == 0 && info.host_visible == 0, "cuda device, not host visible");
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(g_device, 64, &b, nullptr));
  void* p = nullptr;
  mps_error err{};
  CHECK(mps_buffer_host_pointer(b, &p, &err) == MPS_ERR_UNSUPPORTED, "no host pointer: %s", err.message);
  MUST(mps_buffer_release(b, nullptr));
  CHECK(mps_buffer_alloc(g_device, info.memory_bytes * 4, &b, &err) == MPS_ERR_INVALID_ARGUMENT,
        "oversized allocation refused: %s", err.message);

  mps_library* lib = nullptr;
  CHECK(mps_library_compile(g_device, "gemm nosuch", nullptr, &lib, &err) == MPS_ERR_COMPILE_FAILED &&
            std::strstr(err.message, "nosuch"),
        "unknown kernel named: %s", err.message);
  mps_status compiled = mps_library_compile(g_device, "layernorm", "-Dfloat=struct", &lib, &err);
  CHECK(compiled == MPS_ERR_COMPILE_FAILED && std::strstr(err.message, "error"),
        "source broken by an option fails in NVRTC with its log: %s", err.message);
  if (compiled == MPS_OK) mps_library_release(lib, nullptr);
  std::printf("nvrtc log: %.200s\n", err.message);
  auto t0 = std::chrono::steady_clock::now();
  MUST(mps_library_compile(g_device, "*", nullptr, &g_library, nullptr));
  std::printf("NVRTC compile of all kernels: %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  mps_pipeline* missing = nullptr;
  CHECK(mps_pipeline_create(g_library, "conv2d", &missing, &err) == MPS_ERR_NOT_FOUND, "unknown function: %s",
        err.message);
}

// gemm with both batch levels, transposes, bias and each activation, against float64.
// n = 53 takes the epilogue's one-column path, n = 64 (one matrix) its vector path.
void test_gemm(int trans_a, int trans_b, int activation, int64_t bo, int64_t bi, double alpha, double beta,
               int64_t n = 53) {
  Stream st;
  const int64_t m = 37, k = 29;
  int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n, ldc = n;
  int64_t sa_i = m * k, sb_i = k * n, sc_i = m * n;
  int64_t sa_o = sa_i * bi + 7, sb_o = sb_i * bi + 5, sc_o = sc_i * bi + 3;  // gaps: not foldable
  auto A = random_vec((size_t)(sa_o * bo)), B = random_vec((size_t)(sb_o * bo)), C = random_vec((size_t)(sc_o * bo));
  auto bias = random_vec((size_t)n);
  mps_buffer *a = device_buffer(st, A.data(), A.size() * 4), *b = device_buffer(st, B.data(), B.size() * 4);
  mps_buffer *c = device_buffer(st, C.data(), C.size() * 4), *bb = device_buffer(st, bias.data(), bias.size() * 4);
  mps_pipeline* p = pipeline("gemm");
  mps_arg args[] = {buf(a), buf(b), buf(c), buf(bb), I(m), I(n), I(k), I(lda), I(ldb), I(ldc), I(trans_a), I(trans_b),
                    F(alpha), F(beta), I(activation), I(bo), I(sa_o), I(sb_o), I(sc_o), I(bi), I(sa_i), I(sb_i),
                    I(sc_i)};
  MUST(mps_stream_encode_kernel(st.s, p, args, 23, nullptr));
  auto got = download(st, c, C.size());
  std::vector<double> want(C.begin(), C.end());
  std::vector<float> got_touched;
  std::vector<double> want_touched;
  for (int64_t o = 0; o < bo; o++)
    for (int64_t i = 0; i < bi; i++)
      for (int64_t r = 0; r < m; r++)
        for (int64_t col = 0; col < n; col++) {
          double acc = 0;
          for (int64_t x = 0; x < k; x++) {
            double av = A[o * sa_o + i * sa_i + (trans_a ? x * lda + r : r * lda + x)];
            double bv = B[o * sb_o + i * sb_i + (trans_b ? col * ldb + x : x * ldb + col)];
            acc += av * bv;
          }
          size_t at = (size_t)(o * sc_o + i * sc_i + r * ldc + col);
          double v = alpha * acc + beta * (double)C[at] + bias[col];
          if (activation == 1) v = gelu(v);
          if (activation == 2) v = std::tanh(v);
          want_touched.push_back(v);
          got_touched.push_back(got[at]);
          want[at] = v;
        }
  double e = rel_l2(got_touched, want_touched);
  bool untouched_kept = true;  // the gaps between batches must keep their values
  for (size_t i = 0; i < got.size(); i++) untouched_kept &= got[i] == (float)want[i] || std::fabs(got[i] - want[i]) < 1e-3;
  CHECK(e < 1e-5 && untouched_kept, "gemm ta=%d tb=%d act=%d bo=%lld bi=%lld: rel L2 %.3e", trans_a, trans_b,
        activation, (long long)bo, (long long)bi, e);
  std::printf("[numerics] gemm ta=%d tb=%d act=%d batches %lldx%lld: %.3e\n", trans_a, trans_b, activation,
              (long long)bo, (long long)bi, e);
  for (mps_buffer* x : {a, b, c, bb}) mps_buffer_release(x, nullptr);
  mps_pipeline_release(p, nullptr);
}

void test_layernorm_softmax_elementwise() {
  Stream st;
  // layernorm with residual, offset mean so a one-pass variance would lose digits
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

  // gelu, tanh, bias_add, add in one commit, in place where the contract allows
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
  std::vector<double> wt(n), wsum(n), wb(xr.size());
  for (int64_t i = 0; i < n; i++) {
    wt[i] = std::tanh((double)u[i]);
    wsum[i] = gelu(u[i]) + v[i];
  }
  for (int64_t i = 0; i < r2 * c2; i++) wb[i] = (double)xr[i] + bias[i % c2];
  double et = rel_l2(got_t, wt), es = rel_l2(got_sum, wsum), eb = rel_l2(got_b, wb);
  CHECK(et < 1e-6 && es < 1e-6 && eb < 1e-7, "tanh %.3e, gelu+add %.3e, bias_add %.3e", et, es, eb);
  std::printf("[numerics] tanh %.3e  gelu+add %.3e  bias_add %.3e\n", et, es, eb);
  for (mps_buffer* b : {bx, br, bg, bb, by, bs, bm, bu, bt, bv, bsum, bbias, bxr}) mps_buffer_release(b, nullptr);
  for (mps_pipeline* p : {ln, sm, pg, pt, pb, pa}) mps_pipeline_release(p, nullptr);
}

// Rows longer than the warp kernels hold in registers (1024 values) take their re-reading path.
void test_wide_rows() {
  Stream st;
  const int64_t rows = 5, cols = 1500;
  auto x = random_vec(rows * cols, 9.0f, 11.0f), g = random_vec(cols, 0.5f, 1.5f), be = random_vec(cols);
  mps_buffer *bx = device_buffer(st, x.data(), x.size() * 4), *bg = device_buffer(st, g.data(), g.size() * 4);
  mps_buffer *bb = device_buffer(st, be.data(), be.size() * 4);
  mps_arg la[] = {buf(bx), NONE(), buf(bg), buf(bb), buf(bx), I(rows), I(cols), F(1e-5)};
  mps_pipeline* ln = pipeline("layernorm");
  MUST(mps_stream_encode_kernel(st.s, ln, la, 8, nullptr));
  auto y = download(st, bx, x.size());
  std::vector<double> want(x.size());
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) mean += x[r * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; c++) var += ((double)x[r * cols + c] - mean) * ((double)x[r * cols + c] - mean);
    var /= cols;
    for (int64_t c = 0; c < cols; c++) want[r * cols + c] = (x[r * cols + c] - mean) / std::sqrt(var + 1e-5) * g[c] + be[c];
  }
  double e = rel_l2(y, want);
  CHECK(e < 1e-5, "layernorm over rows of %lld (in place) rel L2 %.3e", (long long)cols, e);
  // softmax over 1100 columns, the second sequence's every position masked with -inf: zeros, not NaN
  const int64_t B = 2, H = 3, R = 2, C = 1100;
  auto s = random_vec(B * H * R * C, -6.0f, 6.0f);
  std::vector<float> mask(B * C, 0.0f);
  for (int64_t c = 0; c < C; c++) mask[C + c] = -INFINITY;
  for (int64_t c = 0; c < 100; c++) mask[c] = -3.4028234663852886e38f;
  mps_buffer *bs = device_buffer(st, s.data(), s.size() * 4), *bm = device_buffer(st, mask.data(), mask.size() * 4);
  mps_arg sa[] = {buf(bs), buf(bm), I(B), I(H), I(R), I(C), F(0.5)};
  mps_pipeline* sm = pipeline("softmax");
  MUST(mps_stream_encode_kernel(st.s, sm, sa, 7, nullptr));
  auto sg = download(st, bs, s.size());
  std::vector<double> sw(s.size(), 0.0);
  for (int64_t row = 0; row < H * R; row++) {  // sequence 0; sequence 1 attends to nothing
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < C; c++) mx = std::max(mx, 0.5 * s[row * C + c] + mask[c]);
    for (int64_t c = 0; c < C; c++) sum += std::exp(0.5 * s[row * C + c] + mask[c] - mx);
    for (int64_t c = 0; c < C; c++) sw[row * C + c] = std::exp(0.5 * s[row * C + c] + mask[c] - mx) / sum;
  }
  bool zeros = true;
  for (size_t i = H * R * C; i < sg.size(); i++) zeros = zeros && sg[i] == 0.0f;
  e = rel_l2(sg, sw);
  CHECK(e < 1e-5 && zeros, "softmax over rows of %lld rel L2 %.3e, fully -inf-masked rows zero: %d", (long long)C, e,
        (int)zeros);
  for (mps_buffer* b : {bx, bg, bb, bs, bm}) mps_buffer_release(b, nullptr);
  for (mps_pipeline* p : {ln, sm}) mps_pipeline_release(p, nullptr);
}

// bias_layernorm: a linear layer's bias, the residual and LayerNorm in one pass, in place over x.
void test_bias_layernorm() {
  Stream st;
  for (int64_t cols : {768, 1500}) {  // rows in registers, and rows re-read
    const int64_t rows = 21;
    auto x = random_vec(rows * cols, -3.0f, 3.0f), bias = random_vec(cols), res = random_vec(rows * cols, 9.0f, 11.0f);
    auto g = random_vec(cols, 0.5f, 1.5f), be = random_vec(cols);
    mps_buffer *bx = device_buffer(st, x.data(), x.size() * 4), *bbias = device_buffer(st, bias.data(), cols * 4);
    mps_buffer *br = device_buffer(st, res.data(), res.size() * 4), *bg = device_buffer(st, g.data(), cols * 4);
    mps_buffer* bb = device_buffer(st, be.data(), cols * 4);
    mps_pipeline* p = pipeline("bias_layernorm");
    mps_arg a[] = {buf(bx), buf(bbias), buf(br), buf(bg), buf(bb), buf(bx), I(rows), I(cols), F(1e-12)};
    MUST(mps_stream_encode_kernel(st.s, p, a, 9, nullptr));
    auto y = download(st, bx, x.size());
    std::vector<double> want(x.size());
    for (int64_t r = 0; r < rows; r++) {
      auto h = [&](int64_t c) { return (double)x[r * cols + c] + bias[c] + res[r * cols + c]; };
      double mean = 0, var = 0;
      for (int64_t c = 0; c < cols; c++) mean += h(c);
      mean /= cols;
      for (int64_t c = 0; c < cols; c++) var += (h(c) - mean) * (h(c) - mean);
      var /= cols;
      for (int64_t c = 0; c < cols; c++) want[r * cols + c] = (h(c) - mean) / std::sqrt(var + 1e-12) * g[c] + be[c];
    }
    double e = rel_l2(y, want);
    CHECK(e < 1e-5, "bias_layernorm %lld x %lld with residual, in place: rel L2 %.3e", (long long)rows, (long long)cols, e);
    std::printf("[numerics] bias_layernorm cols=%lld %.3e\n", (long long)cols, e);
    for (mps_buffer* b : {bx, bbias, br, bg, bb}) mps_buffer_release(b, nullptr);
    mps_pipeline_release(p, nullptr);
  }
}

// Sentence embeddings over a ragged batch (padding at the end, inside, a sequence of padding only).
void test_pool() {
  Stream st;
  const int64_t batch = 5, seq = 37, hidden = 300;
  auto x = random_vec(batch * seq * hidden, -2.0f, 2.0f);
  std::vector<double> xd(x.begin(), x.end());
  std::vector<float> mask = ragged_mask(batch, seq);
  mps_buffer *bx = device_buffer(st, x.data(), x.size() * 4), *bm = device_buffer(st, mask.data(), mask.size() * 4);
  mps_buffer* by = device_buffer(st, nullptr, batch * hidden * 4);
  mps_pipeline* p = pipeline("pool");
  const char* modes[] = {"cls", "mean", "max", "mean_sqrt_len"};
  for (int mode = 0; mode < 4; mode++) {
    for (int normalize = 0; normalize < 2; normalize++) {
      mps_arg pa[] = {buf(bx), buf(bm), buf(by), I(batch), I(seq), I(hidden), I(mode), I(normalize)};
      MUST(mps_stream_encode_kernel(st.s, p, pa, 8, nullptr));
      auto y = download(st, by, batch * hidden);
      double e = rel_l2(y, pool_ref(xd, mask, batch, seq, hidden, mode, normalize));
      CHECK(e < 1e-6, "pool %s normalize=%d over a ragged batch: rel L2 %.3e", modes[mode], normalize, e);
      std::printf("[numerics] pool %s normalize=%d %.3e\n", modes[mode], normalize, e);
    }
  }
  for (mps_buffer* b : {bx, bm, by}) mps_buffer_release(b, nullptr);
  mps_pipeline_release(p, nullptr);
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
  float host[32];
  CHECK(mps_stream_encode_download(st.s, small, 32, host, 64, &err) == MPS_ERR_INVALID_ARGUMENT,
        "download past the end: %s", err.message);
  CHECK(mps_stream_open_commands(st.s) == 0, "nothing was encoded");
  mps_buffer_release(small, nullptr);
  mps_pipeline_release(p, nullptr);
}

// Stream B waits on A's point while A runs a long GEMM chain into X; B then copies X and downloads it.
// Without the wait B would copy X before A wrote it.
void test_cross_stream_wait_and_release() {
  Stream a, b;
  // Under compute-sanitizer every kernel runs instrumented: MPS_TEST_LIGHT=1 keeps the chain short.
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
  // released at once: the pending commands hold the buffers
  mps_buffer* result = nullptr;
  MUST(mps_buffer_alloc(g_device, ones.size() * 4, &result, nullptr));
  MUST(mps_stream_encode_wait(b.s, a.s, point, nullptr));
  MUST(mps_stream_encode_copy(b.s, bx, 0, result, 0, ones.size() * 4, nullptr));
  std::vector<float> got(n * n, 0.0f);
  MUST(mps_stream_encode_download(b.s, result, 0, got.data(), got.size() * 4, nullptr));
  mps_buffer_release(bm, nullptr);
  mps_buffer_release(bx, nullptr);
  mps_buffer_release(by, nullptr);
  mps_buffer_release(result, nullptr);
  CHECK(b.run() == MPS_OK, "B completes after A");
  // The wait orders the device work; A's own completion report may reach the host after B's (each stream
  // has its completion thread), so it is awaited, not assumed. The data below proves the order.
  CHECK(a.done.wait_for_count(point), "A's point %llu is reported complete too", (unsigned long long)point);
  // reference: the same chain on the host, in float64, on a few columns
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

// Many streams from many threads at once: every commit completes in order, every result exact.
void test_parallel_streams_and_events() {
  const int streams = 8, commits = 60;
  std::vector<std::thread> threads;
  mps_event* shared_event = nullptr;
  MUST(mps_event_create(g_device, &shared_event, nullptr));
  for (int t = 0; t < streams; t++) {
    threads.emplace_back([t, shared_event] {
      Stream st;
      mps_pipeline* add = pipeline("add");
      const int64_t n = 4096;
      std::vector<float> a(n, (float)t), step(n, 1.0f);
      mps_buffer *ba = device_buffer(st, a.data(), n * 4), *bs = device_buffer(st, step.data(), n * 4);
      mps_event* e0 = nullptr;
      mps_event* e1 = nullptr;
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
      CHECK(complete == 1 && mps_event_elapsed_ms(e0, e1, &ms, nullptr) == MPS_OK && ms >= 0.0,
            "stream %d events: complete %d, %.3f ms", t, complete, ms);
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

// Each GEMM math mode on its own device: within its format's error of float64, and visibly not fp32
// (a mode that silently ran fp32 or tf32 would fail the lower bound).
void test_math_modes() {
  struct Mode {
    int32_t math;
    const char* name;
    double lo, hi;
  };
  for (Mode mode : {Mode{MPS_MATH_TF32, "tf32", 1e-5, 5e-3}, Mode{MPS_MATH_FP16, "fp16", 1e-5, 5e-3},
                    Mode{MPS_MATH_BF16, "bf16", 1e-4, 2e-2}}) {
    mps_device_options options{"cuda", 0, 1, mode.math};
    mps_device* d = nullptr;
    MUST(mps_device_open(&options, &d, nullptr));
    mps_library* lib = nullptr;
    MUST(mps_library_compile(d, "gemm", nullptr, &lib, nullptr));
    mps_pipeline* p = nullptr;
    MUST(mps_pipeline_create(lib, "gemm", &p, nullptr));
    const int64_t m = 96, n = 80, k = 512;
    auto A = random_vec(m * k), B = random_vec(k * n);
    mps_buffer *a = nullptr, *b = nullptr, *c = nullptr;
    MUST(mps_buffer_alloc(d, A.size() * 4, &a, nullptr));
    MUST(mps_buffer_alloc(d, B.size() * 4, &b, nullptr));
    MUST(mps_buffer_alloc(d, m * n * 4, &c, nullptr));
    MUST(mps_buffer_write(a, 0, A.data(), A.size() * 4, nullptr));
    MUST(mps_buffer_write(b, 0, B.data(), B.size() * 4, nullptr));
    Completions done;
    mps_stream_callbacks cb = done.callbacks();
    mps_stream* st = nullptr;
    MUST(mps_stream_create(d, &cb, &st, nullptr));
    mps_arg args[] = {buf(a), buf(b), buf(c), NONE(), I(m), I(n), I(k), I(k), I(n), I(n), I(0), I(0), F(1.0), F(0.0),
                      I(0), I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
    MUST(mps_stream_encode_kernel(st, p, args, 23, nullptr));
    uint64_t point = 0;
    MUST(mps_stream_commit(st, &point, nullptr));
    CHECK(done.wait_for_count(point) && done.all_ok(), "%s gemm completes", mode.name);
    std::vector<float> got(m * n);
    MUST(mps_buffer_read(c, 0, got.data(), got.size() * 4, nullptr));
    std::vector<double> want(m * n, 0.0);
    for (int64_t r = 0; r < m; r++)
      for (int64_t x = 0; x < k; x++)
        for (int64_t col = 0; col < n; col++) want[r * n + col] += (double)A[r * k + x] * B[x * n + col];
    double e = rel_l2(got, want);
    CHECK(e > mode.lo && e < mode.hi, "%s gemm: rel L2 %.3e, expected in (%.0e, %.0e)", mode.name, e, mode.lo, mode.hi);
    std::printf("[numerics] gemm math %s: %.3e\n", mode.name, e);
    MUST(mps_stream_release(st, nullptr));
    done.wait_for_stop();
    for (mps_buffer* x : {a, b, c}) mps_buffer_release(x, nullptr);
    mps_pipeline_release(p, nullptr);
    mps_library_release(lib, nullptr);
    CHECK(wait_live_zero(d) && mps_device_close(d, nullptr) == MPS_OK, "%s device closes clean", mode.name);
  }
}

// ---- 16-bit storage kernels -----------------------------------------------------------------------

uint16_t to16(float v, bool bf16) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if (bf16) return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  uint32_t sign = (bits >> 16) & 0x8000u, abs = bits & 0x7fffffffu;
  if (abs < 0x38800000u) {  // subnormal half (test data stays far from overflow)
    float a;
    std::memcpy(&a, &abs, 4);
    return (uint16_t)(sign | (uint32_t)std::nearbyint(a * 16777216.0f));
  }
  uint32_t h = (((abs >> 23) - 112u) << 10) | ((abs >> 13) & 0x3ffu), dropped = abs & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

double from16(uint16_t h, bool bf16) {
  if (bf16) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -v : v;
}

// Random values rounded to the storage format; `exact` gets the rounded values back in double.
std::vector<uint16_t> stored16(size_t n, bool bf16, std::vector<double>& exact, float lo = -1.0f, float hi = 1.0f) {
  auto v = random_vec(n, lo, hi);
  std::vector<uint16_t> out(n);
  exact.resize(n);
  for (size_t i = 0; i < n; i++) {
    out[i] = to16(v[i], bf16);
    exact[i] = from16(out[i], bf16);
  }
  return out;
}

double rel_l2_16(const std::vector<uint16_t>& got, const std::vector<double>& want, bool bf16) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double d = from16(got[i], bf16) - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

// gemm16 (with the attention-shaped two-level batch, bias and GELU), layernorm16, softmax16 and
// embedding16 on an fp16 and a bf16 device, against float64 on the rounded inputs: the error left is the
// output rounding plus fp32 accumulation.
void test_storage16() {
  for (bool bf16 : {false, true}) {
    const char* fmt = bf16 ? "bf16" : "fp16";
    double limit = bf16 ? 1.5e-2 : 2e-3;
    mps_device_options options{"cuda", 0, 1, bf16 ? MPS_MATH_BF16 : MPS_MATH_FP16};
    mps_device* d = nullptr;
    MUST(mps_device_open(&options, &d, nullptr));
    mps_library* lib = nullptr;
    MUST(mps_library_compile(d, "gemm16 layernorm16 softmax16 embedding16 pool16 bias_layernorm16", nullptr, &lib,
                             nullptr));
    mps_pipeline *g = nullptr, *ln = nullptr, *sm = nullptr, *em = nullptr, *pl = nullptr, *bln = nullptr;
    MUST(mps_pipeline_create(lib, "pool16", &pl, nullptr));
    MUST(mps_pipeline_create(lib, "bias_layernorm16", &bln, nullptr));
    MUST(mps_pipeline_create(lib, "gemm16", &g, nullptr));
    MUST(mps_pipeline_create(lib, "layernorm16", &ln, nullptr));
    MUST(mps_pipeline_create(lib, "softmax16", &sm, nullptr));
    MUST(mps_pipeline_create(lib, "embedding16", &em, nullptr));
    Completions done;
    mps_stream_callbacks cb = done.callbacks();
    mps_stream* st = nullptr;
    MUST(mps_stream_create(d, &cb, &st, nullptr));
    uint64_t points = 0;
    auto run = [&]() {
      MUST(mps_stream_commit(st, &points, nullptr));
      return done.wait_for_count(points) && done.all_ok();
    };
    auto dev = [&](const void* data, size_t bytes) {
      mps_buffer* b = nullptr;
      MUST(mps_buffer_alloc(d, bytes, &b, nullptr));
      if (data) MUST(mps_buffer_write(b, 0, data, bytes, nullptr));
      return b;
    };
    std::vector<mps_buffer*> buffers;

    // gemm16: Q K^T per (sequence, head) inside packed rows, like BERT's attention (bo=3 sequences, bi=4 heads).
    const int64_t bo = 3, bi = 4, L = 24, hd = 16, row = bi * hd;
    std::vector<double> qx, bias_x;
    auto q = stored16(bo * L * row, bf16, qx);
    auto bias = stored16(L, bf16, bias_x);
    mps_buffer *bq = dev(q.data(), q.size() * 2), *bbias = dev(bias.data(), bias.size() * 2);
    mps_buffer* bs = dev(nullptr, bo * bi * L * L * 2);
    buffers.insert(buffers.end(), {bq, bbias, bs});
    mps_arg ga[] = {buf(bq), buf(bq), buf(bs), buf(bbias), I(L), I(L), I(hd), I(row), I(row), I(L), I(0), I(1),
                    F(0.25), F(0.0), I(1), I(bo), I(L * row), I(L * row), I(bi * L * L), I(bi), I(hd), I(hd), I(L * L)};
    MUST(mps_stream_encode_kernel(st, g, ga, 23, nullptr));
    CHECK(run(), "%s gemm16 completes", fmt);
    std::vector<uint16_t> sgot(bo * bi * L * L);
    MUST(mps_buffer_read(bs, 0, sgot.data(), sgot.size() * 2, nullptr));
    std::vector<double> swant(sgot.size());
    for (int64_t o = 0; o < bo; o++)
      for (int64_t h = 0; h < bi; h++)
        for (int64_t r = 0; r < L; r++)
          for (int64_t c = 0; c < L; c++) {
            double acc = 0;
            for (int64_t x = 0; x < hd; x++) acc += qx[o * L * row + r * row + h * hd + x] * qx[o * L * row + c * row + h * hd + x];
            swant[o * bi * L * L + h * L * L + r * L + c] = gelu(0.25 * acc + bias_x[c]);
          }
    double e = rel_l2_16(sgot, swant, bf16);
    CHECK(e < limit, "%s gemm16 (two-level batch, bias, GELU): rel L2 %.3e", fmt, e);
    std::printf("[storage16] %s gemm16 %.3e\n", fmt, e);

    // layernorm16 with residual, in place
    const int64_t rows = 17, cols = 96;
    std::vector<double> xx, rx, gx, bx;
    auto x = stored16(rows * cols, bf16, xx, 1.0f, 3.0f);
    auto res = stored16(rows * cols, bf16, rx);
    auto gamma = stored16(cols, bf16, gx, 0.5f, 1.5f);
    auto beta = stored16(cols, bf16, bx);
    mps_buffer *bxb = dev(x.data(), x.size() * 2), *brb = dev(res.data(), res.size() * 2);
    mps_buffer *bgb = dev(gamma.data(), gamma.size() * 2), *bbb = dev(beta.data(), beta.size() * 2);
    buffers.insert(buffers.end(), {bxb, brb, bgb, bbb});
    mps_arg la[] = {buf(bxb), buf(brb), buf(bgb), buf(bbb), buf(bxb), I(rows), I(cols), F(1e-5)};
    MUST(mps_stream_encode_kernel(st, ln, la, 8, nullptr));
    CHECK(run(), "%s layernorm16 completes", fmt);
    std::vector<uint16_t> lgot(rows * cols);
    MUST(mps_buffer_read(bxb, 0, lgot.data(), lgot.size() * 2, nullptr));
    std::vector<double> lwant(rows * cols);
    for (int64_t r = 0; r < rows; r++) {
      double mean = 0, var = 0;
      for (int64_t c = 0; c < cols; c++) mean += xx[r * cols + c] + rx[r * cols + c];
      mean /= cols;
      for (int64_t c = 0; c < cols; c++) var += std::pow(xx[r * cols + c] + rx[r * cols + c] - mean, 2);
      var /= cols;
      for (int64_t c = 0; c < cols; c++)
        lwant[r * cols + c] = (xx[r * cols + c] + rx[r * cols + c] - mean) / std::sqrt(var + 1e-5) * gx[c] + bx[c];
    }
    e = rel_l2_16(lgot, lwant, bf16);
    CHECK(e < limit, "%s layernorm16: rel L2 %.3e", fmt, e);
    std::printf("[storage16] %s layernorm16 %.3e\n", fmt, e);

    // bias_layernorm16 over the layernorm's output (in place), with a bias and the original residual
    std::vector<double> lbx;
    auto lbias = stored16(cols, bf16, lbx);
    mps_buffer* blb = dev(lbias.data(), lbias.size() * 2);
    buffers.push_back(blb);
    std::vector<double> hin(rows * cols);
    for (size_t i = 0; i < hin.size(); i++) hin[i] = from16(lgot[i], bf16);
    mps_arg bla[] = {buf(bxb), buf(blb), buf(brb), buf(bgb), buf(bbb), buf(bxb), I(rows), I(cols), F(1e-5)};
    MUST(mps_stream_encode_kernel(st, bln, bla, 9, nullptr));
    CHECK(run(), "%s bias_layernorm16 completes", fmt);
    std::vector<uint16_t> bgot(rows * cols);
    MUST(mps_buffer_read(bxb, 0, bgot.data(), bgot.size() * 2, nullptr));
    std::vector<double> bwant(rows * cols);
    for (int64_t r = 0; r < rows; r++) {
      auto h = [&](int64_t c) { return hin[r * cols + c] + lbx[c] + rx[r * cols + c]; };
      double mean = 0, var = 0;
      for (int64_t c = 0; c < cols; c++) mean += h(c);
      mean /= cols;
      for (int64_t c = 0; c < cols; c++) var += std::pow(h(c) - mean, 2);
      var /= cols;
      for (int64_t c = 0; c < cols; c++) bwant[r * cols + c] = (h(c) - mean) / std::sqrt(var + 1e-5) * gx[c] + bx[c];
    }
    e = rel_l2_16(bgot, bwant, bf16);
    CHECK(e < limit, "%s bias_layernorm16: rel L2 %.3e", fmt, e);
    std::printf("[storage16] %s bias_layernorm16 %.3e\n", fmt, e);

    // softmax16 over the gemm's scores with an fp32 mask that drops the last 5 columns of sequence 1
    std::vector<float> mask(bo * L, 0.0f);
    for (int64_t c = L - 5; c < L; c++) mask[1 * L + c] = -10000.0f;
    mps_buffer* bm = dev(mask.data(), mask.size() * 4);
    buffers.push_back(bm);
    mps_arg sa[] = {buf(bs), buf(bm), I(bo), I(bi), I(L), I(L), F(0.5)};
    MUST(mps_stream_encode_kernel(st, sm, sa, 7, nullptr));
    CHECK(run(), "%s softmax16 completes", fmt);
    std::vector<uint16_t> pgot(sgot.size());
    MUST(mps_buffer_read(bs, 0, pgot.data(), pgot.size() * 2, nullptr));
    std::vector<double> pwant(sgot.size());
    for (int64_t rr = 0; rr < bo * bi * L; rr++) {
      int64_t b = rr / (bi * L);
      double mx = -1e300, sum = 0;
      for (int64_t c = 0; c < L; c++) mx = std::max(mx, 0.5 * from16(sgot[rr * L + c], bf16) + mask[b * L + c]);
      for (int64_t c = 0; c < L; c++) sum += std::exp(0.5 * from16(sgot[rr * L + c], bf16) + mask[b * L + c] - mx);
      for (int64_t c = 0; c < L; c++)
        pwant[rr * L + c] = std::exp(0.5 * from16(sgot[rr * L + c], bf16) + mask[b * L + c] - mx) / sum;
    }
    e = rel_l2_16(pgot, pwant, bf16);
    CHECK(e < limit, "%s softmax16: rel L2 %.3e", fmt, e);
    std::printf("[storage16] %s softmax16 %.3e\n", fmt, e);

    // The 16-bit GEMM epilogue (bias, GELU) and layernorms move 8 values a load where rows and pointers allow
    // it, 4 where only 4 fit, one otherwise: each path, a row longer than the registers hold included.
    for (int64_t nc : {40, 20, 13, 1032}) {
      const int64_t m = 6, kk = 16;
      std::vector<double> ax, wx, bvx;
      auto A = stored16(m * kk, bf16, ax), W = stored16(nc * kk, bf16, wx), bv = stored16(nc, bf16, bvx);
      mps_buffer *ba = dev(A.data(), A.size() * 2), *bw = dev(W.data(), W.size() * 2);
      mps_buffer *bb = dev(bv.data(), bv.size() * 2), *bc = dev(nullptr, m * nc * 2);
      buffers.insert(buffers.end(), {ba, bw, bb, bc});
      mps_arg lin[] = {buf(ba), buf(bw), buf(bc), buf(bb), I(m), I(nc), I(kk), I(kk), I(kk), I(nc), I(0), I(1),
                       F(1.0), F(0.0), I(1), I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
      MUST(mps_stream_encode_kernel(st, g, lin, 23, nullptr));
      CHECK(run(), "%s gemm16 N=%lld completes", fmt, (long long)nc);
      std::vector<uint16_t> cgot(m * nc);
      MUST(mps_buffer_read(bc, 0, cgot.data(), cgot.size() * 2, nullptr));
      std::vector<double> cwant(m * nc);
      for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < nc; c++) {
          double acc = bvx[c];
          for (int64_t x = 0; x < kk; x++) acc += ax[r * kk + x] * wx[c * kk + x];
          cwant[r * nc + c] = gelu(acc);
        }
      e = rel_l2_16(cgot, cwant, bf16);
      CHECK(e < limit, "%s gemm16 epilogue N=%lld: rel L2 %.3e", fmt, (long long)nc, e);
      // bias_layernorm16 over those rows (the gemm's output, its bias again, no residual), in place
      std::vector<double> gx2, bx2;
      auto gam = stored16(nc, bf16, gx2, 0.5f, 1.5f), bet = stored16(nc, bf16, bx2);
      mps_buffer *bg2 = dev(gam.data(), gam.size() * 2), *bb2 = dev(bet.data(), bet.size() * 2);
      buffers.insert(buffers.end(), {bg2, bb2});
      mps_arg nla[] = {buf(bc), buf(bb), NONE(), buf(bg2), buf(bb2), buf(bc), I(m), I(nc), F(1e-5)};
      MUST(mps_stream_encode_kernel(st, bln, nla, 9, nullptr));
      CHECK(run(), "%s bias_layernorm16 cols %lld completes", fmt, (long long)nc);
      std::vector<uint16_t> ngot(m * nc);
      MUST(mps_buffer_read(bc, 0, ngot.data(), ngot.size() * 2, nullptr));
      std::vector<double> nwant(m * nc);
      for (int64_t r = 0; r < m; r++) {
        auto h = [&](int64_t c) { return from16(cgot[r * nc + c], bf16) + bvx[c]; };
        double mean = 0, var = 0;
        for (int64_t c = 0; c < nc; c++) mean += h(c);
        mean /= nc;
        for (int64_t c = 0; c < nc; c++) var += std::pow(h(c) - mean, 2);
        var /= nc;
        for (int64_t c = 0; c < nc; c++) nwant[r * nc + c] = (h(c) - mean) / std::sqrt(var + 1e-5) * gx2[c] + bx2[c];
      }
      e = rel_l2_16(ngot, nwant, bf16);
      CHECK(e < limit, "%s bias_layernorm16 cols %lld: rel L2 %.3e", fmt, (long long)nc, e);
      std::printf("[storage16] %s gemm16 epilogue and bias_layernorm16 width %lld ok\n", fmt, (long long)nc);
    }

    // embedding16, accumulating a second table; an id out of range still fails the commit
    const int64_t vocab = 50, dim = 32, n = 20;
    std::vector<double> tx;
    auto table = stored16(vocab * dim, bf16, tx);
    std::vector<int32_t> ids(n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 7) % vocab);
    mps_buffer *bt = dev(table.data(), table.size() * 2), *bid = dev(ids.data(), ids.size() * 4);
    mps_buffer* bo16 = dev(nullptr, n * dim * 2);
    buffers.insert(buffers.end(), {bt, bid, bo16});
    mps_arg ea[] = {buf(bid), buf(bt), buf(bo16), I(n), I(dim), I(vocab), I(0)};
    mps_arg eacc[] = {buf(bid), buf(bt), buf(bo16), I(n), I(dim), I(vocab), I(1)};
    MUST(mps_stream_encode_kernel(st, em, ea, 7, nullptr));
    MUST(mps_stream_encode_kernel(st, em, eacc, 7, nullptr));
    CHECK(run(), "%s embedding16 completes", fmt);
    std::vector<uint16_t> egot(n * dim);
    MUST(mps_buffer_read(bo16, 0, egot.data(), egot.size() * 2, nullptr));
    std::vector<double> ewant(n * dim);
    for (int64_t i = 0; i < n; i++)
      for (int64_t c = 0; c < dim; c++) ewant[i * dim + c] = 2 * tx[ids[i] * dim + c];
    e = rel_l2_16(egot, ewant, bf16);
    CHECK(e == 0.0, "%s embedding16 accumulate is exact (doubling): rel L2 %.3e", fmt, e);

    // pool16: mean (normalized) and max over a ragged batch, 16-bit in and out, fp32 mask
    const int64_t pb = 4, ps = 29, ph = 200;
    std::vector<double> px;
    auto hidden16 = stored16(pb * ps * ph, bf16, px, -2.0f, 2.0f);
    std::vector<float> pmask = ragged_mask(pb, ps);
    mps_buffer *bph = dev(hidden16.data(), hidden16.size() * 2), *bpm = dev(pmask.data(), pmask.size() * 4);
    mps_buffer* bpy = dev(nullptr, pb * ph * 2);
    buffers.insert(buffers.end(), {bph, bpm, bpy});
    for (int mode : {1, 2}) {
      mps_arg pa[] = {buf(bph), buf(bpm), buf(bpy), I(pb), I(ps), I(ph), I(mode), I(mode == 1)};
      MUST(mps_stream_encode_kernel(st, pl, pa, 8, nullptr));
      CHECK(run(), "%s pool16 completes", fmt);
      std::vector<uint16_t> pgot16(pb * ph);
      MUST(mps_buffer_read(bpy, 0, pgot16.data(), pgot16.size() * 2, nullptr));
      e = rel_l2_16(pgot16, pool_ref(px, pmask, pb, ps, ph, mode, mode == 1), bf16);
      CHECK(e < limit, "%s pool16 %s: rel L2 %.3e", fmt, mode == 1 ? "mean normalized" : "max", e);
      std::printf("[storage16] %s pool16 mode %d %.3e\n", fmt, mode, e);
    }

    for (mps_buffer* b : buffers) mps_buffer_release(b, nullptr);
    MUST(mps_stream_release(st, nullptr));
    done.wait_for_stop();
    for (mps_pipeline* p : {g, ln, sm, em, pl, bln}) mps_pipeline_release(p, nullptr);
    mps_library_release(lib, nullptr);
    CHECK(wait_live_zero(d) && mps_device_close(d, nullptr) == MPS_OK, "%s storage device closes clean", fmt);
  }
  // On an fp32 device the 16-bit kernels are refused by name, with the reason.
  mps_library* lib = nullptr;
  MUST(mps_library_compile(g_device, "gemm16", nullptr, &lib, nullptr));
  mps_pipeline* p = nullptr;
  mps_error err{};
  CHECK(mps_pipeline_create(lib, "gemm16", &p, &err) == MPS_ERR_UNSUPPORTED && std::strstr(err.message, "fp16 or bf16"),
        "gemm16 needs a 16-bit math mode: %s", err.message);
  mps_library_release(lib, nullptr);
}

}  // namespace

int main() {
  mps_device_options options{"cuda", 0, 1, MPS_MATH_FP32};
  mps_error err{};
  if (mps_device_open(&options, &g_device, &err) != MPS_OK) {
    std::fprintf(stderr, "cannot open the cuda device: %s\n", err.message);
    return 2;
  }
  test_device_and_compile();
  test_gemm(0, 0, 0, 1, 1, 1.0, 0.0);
  test_gemm(1, 0, 1, 2, 3, 0.5, 1.0);
  test_gemm(0, 1, 2, 3, 2, 1.0, 0.0);
  test_gemm(1, 1, 1, 1, 4, -1.0, 0.25);
  test_gemm(0, 1, 1, 1, 1, 1.0, 0.5, 64);
  test_layernorm_softmax_elementwise();
  test_wide_rows();
  test_bias_layernorm();
  test_pool();
  test_embedding();
  test_validation();
  test_cross_stream_wait_and_release();
  test_parallel_streams_and_events();
  test_program();
  test_math_modes();
  test_storage16();
  MUST(mps_library_release(g_library, nullptr));
  CHECK(wait_live_zero(g_device), "every object freed");
  CHECK(mps_device_close(g_device, &err) == MPS_OK, "device closes: %s", err.message);
  return summary("test_cuda");
}
