#include "cpu/error.h"

#include <stdarg.h>
#include <stdio.h>

mps_status mps_fail(mps_error* err, mps_status status, const char* fmt, ...) {
  if (err) {
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return status;
}

const char* mps_status_name(mps_status status) {
  switch (status) {
    case MPS_OK: return "OK";
    case MPS_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case MPS_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case MPS_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case MPS_ERR_NOT_FOUND: return "NOT_FOUND";
    case MPS_ERR_BUSY: return "BUSY";
    case MPS_ERR_KERNEL_FAILED: return "KERNEL_FAILED";
    case MPS_ERR_COMPILE_FAILED: return "COMPILE_FAILED";
    case MPS_ERR_BACKEND: return "BACKEND";
    case MPS_ERR_STATE: return "STATE";
  }
  return "UNKNOWN";
}
