/* Device open/close and properties of the cpu backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/objects.h"

static void read_cpu_model_name(char* out, size_t capacity) {
  snprintf(out, capacity, "cpu");
  FILE* f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char* colon = strchr(line, ':');
      if (colon) {
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        snprintf(out, capacity, "%s", colon);
        size_t n = strlen(out);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
      }
      break;
    }
  }
  fclose(f);
}

mps_status mps_device_open(const mps_device_options* options, mps_device** out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_open: out is NULL");
  *out = NULL;
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "cpu") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (it provides: cpu); "
                    "cuda (libmpsnative_cuda.so) and metal are separate builds for machines that have them", backend);
  }
  int32_t ordinal = options ? options->ordinal : 0;
  if (ordinal != 0) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "cpu backend has one device (ordinal 0), not ordinal %d",
                    (int)ordinal);
  }
  if (options && options->math_mode != MPS_MATH_FP32) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED,
                    "cpu backend computes GEMMs in fp32 only (math mode %d requested; tf32, fp16 and bf16 are "
                    "tensor-core modes of the cuda backend)", (int)options->math_mode);
  }
  mps_device* d = calloc(1, sizeof *d);
  if (!d) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_device_open: out of host memory");
  snprintf(d->info.backend, sizeof d->info.backend, "cpu");
  read_cpu_model_name(d->info.name, sizeof d->info.name);
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGESIZE);
  d->info.memory_bytes = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
  /* One buffer may take at most half the machine: larger requests are almost surely size bugs. */
  d->info.max_buffer_bytes = d->info.memory_bytes / 2;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  d->info.compute_units = cores > 0 ? (int32_t)cores : 1;
  d->info.host_visible = 1;
  d->blas_threads = options && options->blas_threads > 0 ? options->blas_threads : 1;
  *out = d;
  return mps_ok(err);
}

mps_status mps_device_info_get(const mps_device* device, mps_device_info* out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_info_get: NULL argument");
  *out = device->info;
  return mps_ok(err);
}

static void load_live(mps_device* d, mps_live_objects* out, memory_order order) {
  out->buffers = atomic_load_explicit(&d->live_buffers, order);
  out->buffer_bytes = atomic_load_explicit(&d->live_buffer_bytes, order);
  out->streams = atomic_load_explicit(&d->live_streams, order);
  out->events = atomic_load_explicit(&d->live_events, order);
  out->libraries = atomic_load_explicit(&d->live_libraries, order);
  out->pipelines = atomic_load_explicit(&d->live_pipelines, order);
  out->command_buffers = atomic_load_explicit(&d->live_command_buffers, order);
  out->programs = atomic_load_explicit(&d->live_programs, order);
}

mps_status mps_device_live_objects_get(const mps_device* device, mps_live_objects* out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_live_objects_get: NULL argument");
  /* atomics are only read here; C11 atomic_load needs a non-const pointer */
  load_live((mps_device*)device, out, memory_order_relaxed);
  return mps_ok(err);
}

mps_status mps_device_close(mps_device* device, mps_error* err) {
  if (!device) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_close: device is NULL");
  mps_live_objects live;
  /* acquire pairs with the release decrement each object makes as its last act, so an object's final
   * touch of the device happens-before the free below */
  load_live(device, &live, memory_order_acquire);
  if (live.buffers || live.streams || live.events || live.libraries || live.pipelines || live.command_buffers ||
      live.programs) {
    return mps_fail(err, MPS_ERR_BUSY,
                    "device still has live objects: %lld buffers (%lld bytes), %lld streams, %lld events, "
                    "%lld libraries, %lld pipelines, %lld command buffers, %lld programs",
                    (long long)live.buffers, (long long)live.buffer_bytes, (long long)live.streams,
                    (long long)live.events, (long long)live.libraries, (long long)live.pipelines,
                    (long long)live.command_buffers, (long long)live.programs);
  }
  free(device);
  return mps_ok(err);
}

uint64_t mps_cpu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
