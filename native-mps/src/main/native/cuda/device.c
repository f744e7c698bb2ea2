/* Device open/close and properties of the cuda backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/checks.h"
#include "cuda/backend_objects.h"

mps_status mps_cuda_fail(mps_error* err, cudaError_t e, const char* what) {
  mps_status status = e == cudaErrorMemoryAllocation ? MPS_ERR_OUT_OF_MEMORY : MPS_ERR_BACKEND;
  return mps_fail(err, status, "%s: %s: %s", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

uint64_t mps_cuda_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

mps_status mps_device_count(const mps_device_options* options, int32_t* out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_count: out is NULL");
  *out = 0;
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "cuda") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (libmpsnative_cuda.so provides: cuda)", backend);
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "cuda: no usable CUDA driver or device (cudaGetDeviceCount)");
  *out = (int32_t)count;
  return mps_ok(err);
}

mps_status mps_device_open(const mps_device_options* options, mps_device** out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_open: out is NULL");
  *out = NULL;
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "cuda") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (libmpsnative_cuda.so provides: cuda); "
                    "the cpu backend is libmpsnative.so, loaded when a JVM's first device is a cpu one", backend);
  }
  int32_t ordinal = options ? options->ordinal : 0;
  int32_t math = options ? options->math_mode : MPS_MATH_FP32;
  if (math < MPS_MATH_FP32 || math > MPS_MATH_BF16) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "cuda: math mode %d is not one of 0 fp32, 1 tf32, 2 fp16, 3 bf16",
                    (int)math);
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "cuda: no usable CUDA driver or device (cudaGetDeviceCount)");
  if (ordinal < 0 || ordinal >= count) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "cuda: ordinal %d, but this machine has %d CUDA device(s)",
                    (int)ordinal, count);
  }
  struct cudaDeviceProp prop;
  if ((e = cudaGetDeviceProperties(&prop, ordinal)) != cudaSuccess) {
    return mps_cuda_fail(err, e, "cuda: cudaGetDeviceProperties");
  }
  if (prop.major < 7) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED, "cuda: %s has compute capability %d.%d; the backend needs 7.0 or newer",
                    prop.name, prop.major, prop.minor);
  }
  if ((e = cudaSetDevice(ordinal)) != cudaSuccess) return mps_cuda_fail(err, e, "cuda: cudaSetDevice");
  size_t free_bytes = 0, total_bytes = 0;
  if ((e = cudaMemGetInfo(&free_bytes, &total_bytes)) != cudaSuccess) return mps_cuda_fail(err, e, "cuda: cudaMemGetInfo");
  mps_device* d = calloc(1, sizeof *d);
  if (!d) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_device_open: out of host memory");
  if ((e = cudaStreamCreateWithFlags(&d->memory_stream, cudaStreamNonBlocking)) != cudaSuccess) {
    free(d);
    return mps_cuda_fail(err, e, "cuda: creating the allocation stream");
  }
  snprintf(d->info.backend, sizeof d->info.backend, "cuda");
  snprintf(d->info.name, sizeof d->info.name, "%.100s (sm_%d%d)", prop.name, prop.major, prop.minor);
  d->info.memory_bytes = (uint64_t)total_bytes;
  /* One buffer may take at most the memory free at open: larger requests are size bugs or cannot succeed. */
  d->info.max_buffer_bytes = (uint64_t)free_bytes;
  d->info.compute_units = prop.multiProcessorCount;
  d->info.host_visible = 0;
  d->ordinal = ordinal;
  d->math_mode = math;
  d->cc_major = prop.major;
  d->cc_minor = prop.minor;
  *out = d;
  return mps_ok(err);
}

mps_status mps_device_close(mps_device* device, mps_error* err) {
  if (!device) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_close: device is NULL");
  mps_status idle = mps_device_require_idle(device, err);
  if (idle != MPS_OK) return idle;
  cudaSetDevice(device->ordinal);
  /* Every buffer is gone, so the allocation stream holds at most frees; destroying it does not wait. */
  cudaStreamDestroy(device->memory_stream);
  free(device);
  return mps_ok(err);
}
