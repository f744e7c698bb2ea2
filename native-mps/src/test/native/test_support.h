// What every native test executable shares: pass/fail counting that is safe from any thread, a MUST for
// setup calls that cannot fail, and the bound no wait may exceed (a deadlock is a failure, not a hang).
#ifndef MPS_TEST_SUPPORT_H
#define MPS_TEST_SUPPORT_H

#include <chrono>
#include <condition_variable>
#include <string>
#include <thread>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <mutex>

extern "C" {
#include "mps/mps.h"
}

namespace mps_test {
inline int passed = 0;
inline int failed = 0;
inline std::mutex count_mu;  // CHECK runs on worker and executor threads too
constexpr auto kBound = std::chrono::seconds(60);

inline int summary(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, passed, failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace mps_test

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    bool ok_ = (cond);                                                      \
    std::lock_guard<std::mutex> g_(mps_test::count_mu);                     \
    if (ok_) {                                                              \
      mps_test::passed++;                                                   \
    } else {                                                                \
      mps_test::failed++;                                                   \
      std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
      std::fprintf(stderr, __VA_ARGS__);                                    \
      std::fprintf(stderr, "\n");                                           \
    }                                                                       \
  } while (0)

#define MUST(call)                                                                                    \
  do {                                                                                                \
    mps_status s_ = (call);                                                                           \
    if (s_ != MPS_OK) {                                                                               \
      std::fprintf(stderr, "FATAL %s:%d: %s -> %s\n", __FILE__, __LINE__, #call, mps_status_name(s_)); \
      std::exit(2);                                                                                   \
    }                                                                                                 \
  } while (0)


namespace mps_test {

// One stream's completions, collected from its executor thread; test threads wait on them with the bound.
// With `gated`, the callback of point 1 blocks until open_gate(), so a test can hold the executor and know
// that the stream's later buffers are still pending.
struct Completions {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> points;
  std::vector<mps_status> statuses;
  std::vector<std::string> messages;
  bool thread_started = false;
  bool thread_stopped = false;
  int started_calls = 0;
  bool gated = false;
  bool gate_open = false;

  static void on_start(void* user) {
    auto* c = static_cast<Completions*>(user);
    std::lock_guard<std::mutex> g(c->mu);
    c->thread_started = true;
    c->started_calls++;
  }
  static void on_complete(void* user, uint64_t point, mps_status status, const char* message, uint64_t started,
                          uint64_t finished) {
    auto* c = static_cast<Completions*>(user);
    std::unique_lock<std::mutex> l(c->mu);
    c->points.push_back(point);
    c->statuses.push_back(finished < started ? MPS_ERR_BACKEND : status);  // the clock must be monotonic
    c->messages.push_back(message ? message : "");
    c->cv.notify_all();
    if (c->gated && point == 1) c->cv.wait_for(l, kBound, [&] { return c->gate_open; });
  }
  static void on_stop(void* user) {
    auto* c = static_cast<Completions*>(user);
    std::lock_guard<std::mutex> g(c->mu);
    c->thread_stopped = true;
    c->cv.notify_all();
  }
  mps_stream_callbacks callbacks() { return {this, on_start, on_complete, on_stop}; }

  bool wait_for_count(size_t n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, kBound, [&] { return points.size() >= n; });
  }
  bool wait_for_stop() {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, kBound, [&] { return thread_stopped; });
  }
  void open_gate() {
    std::lock_guard<std::mutex> g(mu);
    gate_open = true;
    cv.notify_all();
  }
  bool all_ok() {
    std::lock_guard<std::mutex> g(mu);
    for (mps_status s : statuses)
      if (s != MPS_OK) return false;
    return true;
  }
};

inline mps_arg buf(mps_buffer* b, uint64_t offset = 0) { return mps_arg{MPS_ARG_BUFFER, b, offset, 0, 0.0}; }

inline float* host(mps_buffer* b) {
  void* p = nullptr;
  MUST(mps_buffer_host_pointer(b, &p, nullptr));
  return static_cast<float*>(p);
}

// Native frees are asynchronous (executors free what their last commands held): poll with the bound.
inline bool wait_live_zero(mps_device* d) {
  auto deadline = std::chrono::steady_clock::now() + kBound;
  while (std::chrono::steady_clock::now() < deadline) {
    mps_live_objects live{};
    MUST(mps_device_live_objects_get(d, &live, nullptr));
    if (!live.buffers && !live.streams && !live.events && !live.libraries && !live.pipelines &&
        !live.command_buffers && !live.buffer_bytes && !live.programs)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

}  // namespace mps_test

#endif
