// Native tests of the cpu backend's runtime: devices, buffers, libraries, events and streams driven from
// several threads at once. Runs plain, under ASan+UBSan and under TSan (see run-sanitizers.sh).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using mps_test::kBound;
using mps_test::Completions;
using mps_test::buf;
using mps_test::host;
using mps_test::wait_live_zero;

mps_arg none() { return mps_arg{MPS_ARG_NONE, nullptr, 0, 0, 0.0}; }
mps_arg i64(int64_t v) { return mps_arg{MPS_ARG_INT, nullptr, 0, v, 0.0}; }
mps_arg f64(double v) { return mps_arg{MPS_ARG_FLOAT, nullptr, 0, 0, v}; }

void test_device_errors() {
  mps_error err{};
  mps_device* d = nullptr;
  mps_device_options cuda{"cuda", 0, 1, MPS_MATH_FP32};
  CHECK(mps_device_open(&cuda, &d, &err) == MPS_ERR_NOT_FOUND, "cuda must not open in the cpu library");
  CHECK(std::strstr(err.message, "cuda") != nullptr, "message names the backend: %s", err.message);
  mps_device_options second{"cpu", 1, 1, MPS_MATH_FP32};
  CHECK(mps_device_open(&second, &d, &err) == MPS_ERR_INVALID_ARGUMENT, "ordinal 1 rejected");
  CHECK(mps_device_open(nullptr, nullptr, &err) == MPS_ERR_INVALID_ARGUMENT, "NULL out rejected");
}

void test_buffers_and_libraries(mps_device* d) {
  mps_error err{};
  mps_buffer* b = nullptr;
  CHECK(mps_buffer_alloc(d, 0, &b, &err) == MPS_ERR_INVALID_ARGUMENT, "zero-size buffer rejected");
  CHECK(mps_buffer_alloc(d, UINT64_MAX, &b, &err) == MPS_ERR_INVALID_ARGUMENT, "enormous buffer rejected");
  CHECK(std::strstr(err.message, "limit") != nullptr, "message says the limit: %s", err.message);

  mps_library* lib = nullptr;
  CHECK(mps_library_compile(d, "gemm no_such_kernel", "", &lib, &err) == MPS_ERR_COMPILE_FAILED, "unknown kernel");
  CHECK(std::strstr(err.message, "no_such_kernel") != nullptr, "log names the kernel: %s", err.message);
  CHECK(mps_library_compile(d, "  ,, ", "", &lib, &err) == MPS_ERR_COMPILE_FAILED, "empty source");
  MUST(mps_library_compile(d, "add, layernorm", "", &lib, &err));
  mps_pipeline* p = nullptr;
  CHECK(mps_pipeline_create(lib, "gemm", &p, &err) == MPS_ERR_NOT_FOUND, "gemm not in this library");
  CHECK(std::strstr(err.message, "layernorm") != nullptr, "message lists what it has: %s", err.message);
  MUST(mps_pipeline_create(lib, "add", &p, &err));
  // The pipeline keeps the library alive after its owner releases it.
  MUST(mps_library_release(lib, &err));
  uint32_t n = 0;
  MUST(mps_pipeline_arg_count(p, &n, &err));
  CHECK(n == 4, "add takes 4 arguments, got %u", n);
  MUST(mps_pipeline_release(p, &err));
}

// One stream, many kernels: y = a + b per buffer, checked against double arithmetic.
void test_single_stream_results(mps_device* d, mps_pipeline* add) {
  Completions c;
  auto cbs = c.callbacks();
  mps_stream* s = nullptr;
  MUST(mps_stream_create(d, &cbs, &s, nullptr));
  const int n = 1000;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  mps_buffer *a, *b, *y;
  MUST(mps_buffer_alloc(d, n * 4, &a, nullptr));
  MUST(mps_buffer_alloc(d, n * 4, &b, nullptr));
  MUST(mps_buffer_alloc(d, n * 4, &y, nullptr));
  std::vector<float> av(n), bv(n);
  for (int i = 0; i < n; i++) host(a)[i] = av[i] = u(rng), host(b)[i] = bv[i] = u(rng);
  mps_arg args[] = {buf(a), buf(b), buf(y), i64(n)};
  MUST(mps_stream_encode_kernel(s, add, args, 4, nullptr));
  CHECK(mps_stream_open_commands(s) == 1, "one open command");
  uint64_t point = 0;
  MUST(mps_stream_commit(s, &point, nullptr));
  CHECK(point == 1, "first point is 1, got %llu", (unsigned long long)point);
  CHECK(mps_stream_open_commands(s) == 0, "commit closes the buffer");
  // Owner releases its buffers right away: the pending command keeps them alive.
  float* out = host(y);
  std::vector<float> result(n);
  MUST(mps_buffer_release(a, nullptr));
  MUST(mps_buffer_release(b, nullptr));
  uint64_t p2 = 0;
  mps_stream_encode_download(s, y, 0, result.data(), n * 4, nullptr);
  MUST(mps_stream_commit(s, &p2, nullptr));
  (void)out;
  CHECK(c.wait_for_count(2), "both points complete within the bound");
  CHECK(mps_stream_completed_point(s) == 2, "completed point 2");
  double worst = 0;
  for (int i = 0; i < n; i++) worst = std::fmax(worst, std::fabs((double)result[i] - ((double)av[i] + bv[i])));
  CHECK(worst < 1e-6, "add matches double reference (max abs err %g)", worst);
  {
    std::lock_guard<std::mutex> g(c.mu);
    CHECK(c.points.size() == 2 && c.points[0] == 1 && c.points[1] == 2, "completions in point order");
    CHECK(c.statuses[0] == MPS_OK && c.statuses[1] == MPS_OK, "both OK");
    CHECK(c.started_calls == 1, "thread start called once");
  }
  MUST(mps_buffer_release(y, nullptr));
  MUST(mps_stream_release(s, nullptr));
  CHECK(c.wait_for_stop(), "executor stops after release");
}

// A failing kernel fails its own point only; the stream keeps serving.
void test_kernel_failure_is_contained(mps_device* d, mps_pipeline* embedding, mps_pipeline* add) {
  Completions c;
  auto cbs = c.callbacks();
  mps_stream* s = nullptr;
  MUST(mps_stream_create(d, &cbs, &s, nullptr));
  mps_buffer *ids, *table, *out;
  MUST(mps_buffer_alloc(d, 4 * 4, &ids, nullptr));
  MUST(mps_buffer_alloc(d, 10 * 8 * 4, &table, nullptr));
  MUST(mps_buffer_alloc(d, 4 * 8 * 4, &out, nullptr));
  int32_t* id = static_cast<int32_t*>(static_cast<void*>(host(ids)));
  id[0] = 1, id[1] = 2, id[2] = 99, id[3] = 3;  // 99 is outside the 10-row table
  for (int i = 0; i < 80; i++) host(table)[i] = 0.5f + i;
  mps_arg eargs[] = {buf(ids), buf(table), buf(out), i64(4), i64(8), i64(10), i64(0)};
  MUST(mps_stream_encode_kernel(s, embedding, eargs, 7, nullptr));
  uint64_t p1 = 0, p2 = 0;
  MUST(mps_stream_commit(s, &p1, nullptr));
  mps_arg aargs[] = {buf(table), buf(table), buf(out), i64(32)};
  MUST(mps_stream_encode_kernel(s, add, aargs, 4, nullptr));
  MUST(mps_stream_commit(s, &p2, nullptr));
  CHECK(c.wait_for_count(2), "both points complete");
  {
    std::lock_guard<std::mutex> g(c.mu);
    CHECK(c.statuses[0] == MPS_ERR_KERNEL_FAILED, "embedding with id 99 fails (%s)", mps_status_name(c.statuses[0]));
    CHECK(c.messages[0].find("99") != std::string::npos, "message names the id: %s", c.messages[0].c_str());
    CHECK(c.statuses[1] == MPS_OK, "next point still runs");
  }
  CHECK(host(out)[5] == 2 * host(table)[5], "later kernel produced its result");
  MUST(mps_buffer_release(ids, nullptr));
  MUST(mps_buffer_release(table, nullptr));
  MUST(mps_buffer_release(out, nullptr));
  MUST(mps_stream_release(s, nullptr));
  CHECK(c.wait_for_stop(), "executor stops");
}

void test_wait_validation(mps_device* d) {
  Completions ca, cb;
  auto a_cb = ca.callbacks(), b_cb = cb.callbacks();
  mps_stream *a, *b;
  MUST(mps_stream_create(d, &a_cb, &a, nullptr));
  MUST(mps_stream_create(d, &b_cb, &b, nullptr));
  mps_error err{};
  CHECK(mps_stream_encode_wait(a, b, 1, &err) == MPS_ERR_STATE, "waiting on an uncommitted point is refused");
  CHECK(std::strstr(err.message, "not committed") != nullptr, "message explains: %s", err.message);
  uint64_t p = 0;
  MUST(mps_stream_commit(b, &p, nullptr));
  MUST(mps_stream_encode_wait(a, b, p, &err));
  MUST(mps_stream_commit(a, &p, nullptr));
  CHECK(ca.wait_for_count(1) && cb.wait_for_count(1), "cross-stream wait completes");
  MUST(mps_stream_release(a, nullptr));
  MUST(mps_stream_release(b, nullptr));
  CHECK(ca.wait_for_stop() && cb.wait_for_stop(), "both stop");
}

// Several owner threads, one stream each, form a pipeline through cross-stream waits: stream k adds the
// output of stream k-1 to itself. Events bracket each stream's work. Every point must complete, in order,
// with the right numbers, and releasing streams with work still queued must not lose completions.
void test_multi_stream_pipeline(mps_device* d, mps_pipeline* add) {
  const int streams = 4;
  const int rounds = 200;
  const int n = 4096;
  std::vector<Completions> comps(streams);
  std::vector<mps_stream*> s(streams);
  std::vector<mps_buffer*> data(streams);
  for (int k = 0; k < streams; k++) {
    auto cbs = comps[k].callbacks();
    MUST(mps_stream_create(d, &cbs, &s[k], nullptr));
    MUST(mps_buffer_alloc(d, (uint64_t)n * 4 * rounds, &data[k], nullptr));
  }
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.25f, 1.f);
  std::vector<float> seed((size_t)n * rounds);
  for (auto& v : seed) v = u(rng);
  std::memcpy(host(data[0]), seed.data(), seed.size() * 4);
  mps_event* first = nullptr;
  mps_event* last = nullptr;
  MUST(mps_event_create(d, &first, nullptr));
  MUST(mps_event_create(d, &last, nullptr));
  mps_error err{};
  int32_t done = 0;
  CHECK(mps_event_query(first, &done, &err) == MPS_ERR_STATE, "unrecorded event query is an error");

  // Stream k's owner encodes waits on stream k-1, whose owner may release it meanwhile: it holds a
  // timeline reference, the only thing that keeps another owner's stream valid.
  for (int k = 0; k + 1 < streams; k++) MUST(mps_stream_timeline_retain(s[k], nullptr));
  // Committed points of stream k per round, published for stream k+1's owner thread.
  std::vector<std::vector<std::atomic<uint64_t>>> points(streams);
  for (auto& v : points) v = std::vector<std::atomic<uint64_t>>(rounds);
  std::vector<std::thread> owners;
  for (int k = 0; k < streams; k++) {
    owners.emplace_back([&, k] {
      for (int r = 0; r < rounds; r++) {
        uint64_t off = (uint64_t)r * n * 4;
        if (k == 0 && r == 0) MUST(mps_stream_encode_event_record(s[0], first, nullptr));
        if (k > 0) {
          uint64_t dep;
          while ((dep = points[k - 1][r].load(std::memory_order_acquire)) == 0) std::this_thread::yield();
          MUST(mps_stream_encode_wait(s[k], s[k - 1], dep, nullptr));
          mps_arg args[] = {buf(data[k - 1], off), buf(data[k - 1], off), buf(data[k], off), i64(n)};
          MUST(mps_stream_encode_kernel(s[k], add, args, 4, nullptr));
        } else {
          mps_arg args[] = {buf(data[0], off), buf(data[0], off), buf(data[0], off), i64(n)};
          MUST(mps_stream_encode_kernel(s[0], add, args, 4, nullptr));
        }
        if (k == streams - 1 && r == rounds - 1) MUST(mps_stream_encode_event_record(s[k], last, nullptr));
        uint64_t p = 0;
        MUST(mps_stream_commit(s[k], &p, nullptr));
        points[k][r].store(p, std::memory_order_release);
      }
      // Release with work possibly still queued: every committed point must still be reported.
      MUST(mps_stream_release(s[k], nullptr));
    });
  }
  for (auto& t : owners) t.join();
  for (int k = 0; k + 1 < streams; k++) MUST(mps_stream_timeline_release(s[k], nullptr));
  for (int k = 0; k < streams; k++) {
    CHECK(comps[k].wait_for_count(rounds), "stream %d completes all %d points", k, rounds);
    CHECK(comps[k].wait_for_stop(), "stream %d executor stops after release", k);
    std::lock_guard<std::mutex> g(comps[k].mu);
    bool ordered = comps[k].points.size() == (size_t)rounds;
    for (int r = 0; ordered && r < rounds; r++) ordered = comps[k].points[r] == (uint64_t)r + 1 && comps[k].statuses[r] == MPS_OK;
    CHECK(ordered, "stream %d: points 1..%d in order, all OK", k, rounds);
  }
  // data[k] = 2^(k+1) * seed: each stage doubled its predecessor.
  double worst = 0;
  for (int k = 0; k < streams; k++) {
    double factor = std::ldexp(1.0, k + 1);
    for (size_t i = 0; i < seed.size(); i += 7) {
      worst = std::fmax(worst, std::fabs(host(data[k])[i] - factor * seed[i]) / (factor * seed[i]));
    }
  }
  CHECK(worst < 1e-6, "pipeline results exact (worst relative error %g)", worst);
  MUST(mps_event_query(last, &done, &err));
  CHECK(done == 1, "last event complete");
  double ms = -1;
  MUST(mps_event_elapsed_ms(first, last, &ms, &err));
  CHECK(ms >= 0, "elapsed time is non-negative: %f ms", ms);
  std::printf("multi-stream pipeline: %d streams x %d rounds x %d floats in %.2f ms\n", streams, rounds, n, ms);
  for (int k = 0; k < streams; k++) MUST(mps_buffer_release(data[k], nullptr));
  MUST(mps_event_release(first, nullptr));
  MUST(mps_event_release(last, nullptr));
}

// Many threads, each owning its own stream, hammer encode/commit with kernels that share read-only
// inputs, while others create and release events and streams. Checks counts and that nothing leaks.
void test_concurrent_owners(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  const int threads = 6;
  const int iterations = 150;
  const int rows = 16, cols = 96;
  mps_buffer *x, *gamma, *beta;
  MUST(mps_buffer_alloc(d, rows * cols * 4, &x, nullptr));
  MUST(mps_buffer_alloc(d, cols * 4, &gamma, nullptr));
  MUST(mps_buffer_alloc(d, cols * 4, &beta, nullptr));
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  for (int i = 0; i < rows * cols; i++) host(x)[i] = g(rng);
  for (int i = 0; i < cols; i++) host(gamma)[i] = 1.f + 0.1f * g(rng), host(beta)[i] = 0.1f * g(rng);
  std::atomic<int> failures{0};
  std::vector<std::thread> owners;
  std::vector<Completions> comps(threads);
  for (int t = 0; t < threads; t++) {
    owners.emplace_back([&, t] {
      auto cbs = comps[t].callbacks();
      mps_stream* s = nullptr;
      MUST(mps_stream_create(d, &cbs, &s, nullptr));
      mps_buffer* y = nullptr;
      MUST(mps_buffer_alloc(d, rows * cols * 4, &y, nullptr));
      for (int i = 0; i < iterations; i++) {
        mps_arg ln[] = {buf(x), none(), buf(gamma), buf(beta), buf(y), i64(rows), i64(cols), f64(1e-5)};
        MUST(mps_stream_encode_kernel(s, layernorm, ln, 8, nullptr));
        mps_arg ad[] = {buf(y), buf(x), buf(y), i64(rows * cols)};
        MUST(mps_stream_encode_kernel(s, add, ad, 4, nullptr));
        mps_event* e = nullptr;
        MUST(mps_event_create(d, &e, nullptr));
        MUST(mps_stream_encode_event_record(s, e, nullptr));
        MUST(mps_event_release(e, nullptr));  // released while the record is pending: must not dangle
        MUST(mps_stream_commit(s, nullptr, nullptr));
      }
      if (!comps[t].wait_for_count(iterations)) failures++;
      // y = layernorm(x) + x; check row 0 against a double reference.
      double mean = 0, var = 0;
      for (int c = 0; c < cols; c++) mean += host(x)[c];
      mean /= cols;
      for (int c = 0; c < cols; c++) var += (host(x)[c] - mean) * (host(x)[c] - mean);
      var /= cols;
      for (int c = 0; c < cols; c++) {
        double ref = (host(x)[c] - mean) / std::sqrt(var + 1e-5) * host(gamma)[c] + host(beta)[c] + host(x)[c];
        if (std::fabs(ref - host(y)[c]) > 1e-4 * (1 + std::fabs(ref))) failures++;
      }
      MUST(mps_buffer_release(y, nullptr));
      MUST(mps_stream_release(s, nullptr));
      if (!comps[t].wait_for_stop()) failures++;
    });
  }
  for (auto& t : owners) t.join();
  CHECK(failures.load() == 0, "%d failures across %d owner threads", failures.load(), threads);
  MUST(mps_buffer_release(x, nullptr));
  MUST(mps_buffer_release(gamma, nullptr));
  MUST(mps_buffer_release(beta, nullptr));
}

void test_release_discards_open_commands(mps_device* d, mps_pipeline* add) {
  Completions c;
  auto cbs = c.callbacks();
  mps_stream* s = nullptr;
  MUST(mps_stream_create(d, &cbs, &s, nullptr));
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(d, 64, &b, nullptr));
  mps_arg args[] = {buf(b), buf(b), buf(b), i64(16)};
  MUST(mps_stream_encode_kernel(s, add, args, 4, nullptr));
  MUST(mps_buffer_release(b, nullptr));
  MUST(mps_stream_release(s, nullptr));  // never committed: discarded, its buffer freed
  CHECK(c.wait_for_stop(), "executor stops");
  std::lock_guard<std::mutex> g(c.mu);
  CHECK(c.points.empty(), "no completion for uncommitted work");
}

// An owner undoes a half-failed submission by truncating its open command buffer.
void test_truncate_open(mps_device* d, mps_pipeline* add) {
  Completions c;
  auto cbs = c.callbacks();
  mps_stream* s = nullptr;
  MUST(mps_stream_create(d, &cbs, &s, nullptr));
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(d, 16 * 4, &b, nullptr));
  for (int i = 0; i < 16; i++) host(b)[i] = 1.5f + i;
  mps_arg args[] = {buf(b), buf(b), buf(b), i64(16)};
  for (int i = 0; i < 3; i++) MUST(mps_stream_encode_kernel(s, add, args, 4, nullptr));
  mps_error err{};
  CHECK(mps_stream_truncate_open(s, 4, &err) == MPS_ERR_INVALID_ARGUMENT, "cannot keep more than is open");
  MUST(mps_stream_truncate_open(s, 1, &err));
  CHECK(mps_stream_open_commands(s) == 1, "one command left");
  MUST(mps_stream_commit(s, nullptr, nullptr));
  CHECK(c.wait_for_count(1), "point completes");
  CHECK(host(b)[3] == 2 * (1.5f + 3), "exactly one doubling ran: %f", host(b)[3]);
  MUST(mps_buffer_release(b, nullptr));
  MUST(mps_stream_release(s, nullptr));
  CHECK(c.wait_for_stop(), "executor stops");
}

// Kernel libraries compiled and pipelines created from many threads at once (the kernel cache's shards
// compile concurrently); under TSan this proves the native side shares nothing mutable.
void test_concurrent_library_compiles(mps_device* d) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  const char* sources[] = {"gemm", "gemm softmax", "*", "layernorm,gelu", "add tanh bias_add"};
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; i++) {
        mps_library* lib = nullptr;
        mps_error err{};
        if (mps_library_compile(d, sources[(t + i) % 5], "", &lib, &err) != MPS_OK) {
          failures++;
          continue;
        }
        mps_pipeline* p = nullptr;
        const char* fn = (t + i) % 5 == 3 ? "gelu" : (t + i) % 5 == 4 ? "tanh" : "gemm";
        if (mps_pipeline_create(lib, fn, &p, &err) != MPS_OK) failures++;
        mps_library_release(lib, nullptr);
        if (p) mps_pipeline_release(p, nullptr);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0, "%d concurrent compile failures", failures.load());
}

// An event recorded on two streams is complete once both records ran, whatever their order; a record
// discarded with an uncommitted buffer does not leave the event pending forever.
void test_event_records_settle(mps_device* d, mps_pipeline* add) {
  Completions ca, cb;
  auto a_cb = ca.callbacks(), b_cb = cb.callbacks();
  mps_stream *a, *b;
  MUST(mps_stream_create(d, &a_cb, &a, nullptr));
  MUST(mps_stream_create(d, &b_cb, &b, nullptr));
  mps_event* e = nullptr;
  MUST(mps_event_create(d, &e, nullptr));
  mps_buffer* big = nullptr;
  const int n = 1 << 20;
  MUST(mps_buffer_alloc(d, (uint64_t)n * 4, &big, nullptr));
  std::memset(host(big), 0, (size_t)n * 4);
  // a: slow work then record (encoded first); b: record at once (encoded second, runs first).
  mps_arg args[] = {buf(big), buf(big), buf(big), i64(n)};
  for (int i = 0; i < 20; i++) MUST(mps_stream_encode_kernel(a, add, args, 4, nullptr));
  MUST(mps_stream_encode_event_record(a, e, nullptr));
  MUST(mps_stream_encode_event_record(b, e, nullptr));
  MUST(mps_stream_commit(a, nullptr, nullptr));
  MUST(mps_stream_commit(b, nullptr, nullptr));
  CHECK(ca.wait_for_count(1) && cb.wait_for_count(1), "both points complete");
  int32_t done = 0;
  MUST(mps_event_query(e, &done, nullptr));
  CHECK(done == 1, "complete after records on two streams ran in either order");
  MUST(mps_stream_encode_event_record(a, e, nullptr));
  MUST(mps_event_query(e, &done, nullptr));
  CHECK(done == 0, "a new record is pending");
  MUST(mps_stream_truncate_open(a, 0, nullptr));  // the record is discarded unexecuted
  MUST(mps_event_query(e, &done, nullptr));
  CHECK(done == 1, "a discarded record does not leave the event pending");
  MUST(mps_event_release(e, nullptr));
  MUST(mps_buffer_release(big, nullptr));
  MUST(mps_stream_release(a, nullptr));
  MUST(mps_stream_release(b, nullptr));
  CHECK(ca.wait_for_stop() && cb.wait_for_stop(), "both stop");
}

// The cpu backend split into devices through the C ABI: the count, each device's share of cores and memory,
// ordinals out of the split refused, and each device's objects counted on that device alone.
void test_cpu_split() {
  mps_error err{};
  int32_t count = -1;
  mps_device_options one{"cpu", 0, 1, MPS_MATH_FP32};
  MUST(mps_device_count(&one, &count, &err));
  CHECK(count == 1, "an unsplit cpu backend has one device, got %d", count);
  mps_device_options cuda{"cuda", 0, 1, MPS_MATH_FP32};
  CHECK(mps_device_count(&cuda, &count, &err) == MPS_ERR_NOT_FOUND, "no cuda count in the cpu library");
  CHECK(mps_device_count(&one, nullptr, &err) == MPS_ERR_INVALID_ARGUMENT, "NULL out rejected");

  const int32_t split = 3;
  mps_device_options options{"cpu", 0, 1, MPS_MATH_FP32, split};
  MUST(mps_device_count(&options, &count, &err));
  CHECK(count == split, "split in %d, count %d", split, count);
  mps_device* whole = nullptr;
  MUST(mps_device_open(&one, &whole, &err));
  mps_device_info whole_info{};
  MUST(mps_device_info_get(whole, &whole_info, &err));
  std::vector<mps_device*> devices(split, nullptr);
  int64_t units = 0;
  for (int32_t i = 0; i < split; i++) {
    options.ordinal = i;
    MUST(mps_device_open(&options, &devices[i], &err));
    mps_device_info info{};
    MUST(mps_device_info_get(devices[i], &info, &err));
    CHECK(info.compute_units >= 1, "device %d has %d compute units", i, info.compute_units);
    CHECK(info.memory_bytes == whole_info.memory_bytes / split, "device %d memory %llu is a third of %llu", i,
          (unsigned long long)info.memory_bytes, (unsigned long long)whole_info.memory_bytes);
    char expected[32];
    std::snprintf(expected, sizeof expected, "[device %d of %d]", i, split);
    CHECK(std::strstr(info.name, expected) != nullptr, "name '%s' says %s", info.name, expected);
    units += info.compute_units;
  }
  // The cores are shared out, not multiplied (each device keeps at least one).
  CHECK(units == std::max<int64_t>(whole_info.compute_units, split), "compute units %lld over %d devices of %d cores",
        (long long)units, split, whole_info.compute_units);
  options.ordinal = split;
  mps_device* extra = nullptr;
  CHECK(mps_device_open(&options, &extra, &err) == MPS_ERR_INVALID_ARGUMENT, "ordinal %d of %d rejected", split, split);
  CHECK(std::strstr(err.message, "cpu.devices") != nullptr, "message names the setting: %s", err.message);

  // Objects belong to the device that made them.
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(devices[1], 4096, &b, &err));
  mps_live_objects live0{}, live1{};
  MUST(mps_device_live_objects_get(devices[0], &live0, &err));
  MUST(mps_device_live_objects_get(devices[1], &live1, &err));
  CHECK(live0.buffers == 0 && live1.buffers == 1, "buffer counted on device 1 only (%lld, %lld)",
        (long long)live0.buffers, (long long)live1.buffers);
  CHECK(mps_device_close(devices[1], &err) == MPS_ERR_BUSY, "device 1 busy while its buffer lives");
  MUST(mps_buffer_release(b, &err));
  for (mps_device* d : devices) MUST(mps_device_close(d, &err));
  MUST(mps_device_close(whole, &err));
}

}  // namespace

int main() {
  test_device_errors();
  test_cpu_split();
  mps_device_options options{"cpu", 0, 1, MPS_MATH_FP32};
  mps_device* d = nullptr;
  mps_error err{};
  MUST(mps_device_open(&options, &d, &err));
  mps_device_info info{};
  MUST(mps_device_info_get(d, &info, &err));
  std::printf("device: %s '%s', %d compute units, %llu MiB\n", info.backend, info.name, info.compute_units,
              (unsigned long long)(info.memory_bytes >> 20));
  test_buffers_and_libraries(d);

  mps_library* lib = nullptr;
  MUST(mps_library_compile(d, "*", "", &lib, &err));
  mps_pipeline *add, *layernorm, *embedding;
  MUST(mps_pipeline_create(lib, "add", &add, &err));
  MUST(mps_pipeline_create(lib, "layernorm", &layernorm, &err));
  MUST(mps_pipeline_create(lib, "embedding", &embedding, &err));

  test_single_stream_results(d, add);
  test_kernel_failure_is_contained(d, embedding, add);
  test_wait_validation(d);
  test_multi_stream_pipeline(d, add);
  test_concurrent_owners(d, add, layernorm);
  test_release_discards_open_commands(d, add);
  test_truncate_open(d, add);
  test_event_records_settle(d, add);
  test_concurrent_library_compiles(d);

  MUST(mps_pipeline_release(add, &err));
  MUST(mps_pipeline_release(layernorm, &err));
  MUST(mps_pipeline_release(embedding, &err));
  MUST(mps_library_release(lib, &err));
  CHECK(wait_live_zero(d), "every native object freed");
  CHECK(mps_device_close(d, &err) == MPS_OK, "device closes: %s", err.message);

  return mps_test::summary("test_runtime");
}
