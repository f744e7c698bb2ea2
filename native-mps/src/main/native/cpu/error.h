/* Error reporting into caller-owned mps_error slots (no globals, no thread-locals). */
#ifndef MPS_CPU_ERROR_H
#define MPS_CPU_ERROR_H

#include "mps/mps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills err (when non-NULL) with status and a printf-style message; returns status for `return mps_fail(...)`. */
mps_status mps_fail(mps_error* err, mps_status status, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline mps_status mps_ok(mps_error* err) {
  if (err) {
    err->status = MPS_OK;
    err->message[0] = '\0';
  }
  return MPS_OK;
}

#ifdef __cplusplus
}
#endif
#endif
