/* Device open/close and properties of the cpu backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/checks.h"
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

static mps_status require_cpu(const mps_device_options* options, mps_error* err) {
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "cpu") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (it provides: cpu); "
                    "cuda (libmpsnative_cuda.so) and metal are separate builds for machines that have them", backend);
  }
  return MPS_OK;
}

/* The split the options ask for: 1 unless cpu_devices > 1. */
static int32_t cpu_split(const mps_device_options* options) {
  return options && options->cpu_devices > 1 ? options->cpu_devices : 1;
}

mps_status mps_device_count(const mps_device_options* options, int32_t* out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_count: out is NULL");
  *out = 0;
  mps_status s = require_cpu(options, err);
  if (s != MPS_OK) return s;
  if (options->cpu_devices > 1024) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "cpu backend: %d devices asked, at most 1024",
                    (int)options->cpu_devices);
  }
  *out = cpu_split(options);
  return mps_ok(err);
}

mps_status mps_device_open(const mps_device_options* options, mps_device** out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_open: out is NULL");
  *out = NULL;
  mps_status s = require_cpu(options, err);
  if (s != MPS_OK) return s;
  int32_t ordinal = options ? options->ordinal : 0;
  int32_t split = cpu_split(options);
  if (split > 1024) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "cpu backend: %d devices asked, at most 1024", (int)split);
  }
  if (ordinal < 0 || ordinal >= split) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                    "cpu backend has %d device(s) (ordinals 0 to %d; mps-actors.cpu.devices splits the host), "
                    "not ordinal %d", (int)split, (int)split - 1, (int)ordinal);
  }
  if (options && options->math_mode != MPS_MATH_FP32) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED,
                    "cpu backend computes GEMMs in fp32 only (math mode %d requested; tf32, fp16 and bf16 are "
                    "tensor-core modes of the cuda backend)", (int)options->math_mode);
  }
  mps_device* d = calloc(1, sizeof *d);
  if (!d) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_device_open: out of host memory");
  snprintf(d->info.backend, sizeof d->info.backend, "cpu");
  char model[96];
  read_cpu_model_name(model, sizeof model);
  if (split > 1) {
    snprintf(d->info.name, sizeof d->info.name, "%s [device %d of %d]", model, (int)ordinal, (int)split);
  } else {
    snprintf(d->info.name, sizeof d->info.name, "%s", model);
  }
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGESIZE);
  uint64_t host_bytes = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
  /* A split host gives each device an equal share of the memory and of the cores (the first devices take
   * the remainder of the cores, every device at least one). */
  d->info.memory_bytes = host_bytes / (uint64_t)split;
  /* One buffer may take at most half the device: larger requests are almost surely size bugs. */
  d->info.max_buffer_bytes = d->info.memory_bytes / 2;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int32_t all = cores > 0 ? (int32_t)cores : 1;
  int32_t share = all / split + (ordinal < all % split ? 1 : 0);
  d->info.compute_units = share > 0 ? share : 1;
  d->info.host_visible = 1;
  d->blas_threads = options && options->blas_threads > 0 ? options->blas_threads : 1;
  *out = d;
  return mps_ok(err);
}

mps_status mps_device_close(mps_device* device, mps_error* err) {
  if (!device) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_close: device is NULL");
  mps_status idle = mps_device_require_idle(device, err);
  if (idle != MPS_OK) return idle;
  free(device);
  return mps_ok(err);
}

uint64_t mps_cpu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
