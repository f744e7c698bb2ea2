// What every native test executable shares: pass/fail counting that is safe from any thread, a MUST for
// setup calls that cannot fail, and the bound no wait may exceed (a deadlock is a failure, not a hang).
#ifndef MPS_TEST_SUPPORT_H
#define MPS_TEST_SUPPORT_H

#include <chrono>
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

#endif
