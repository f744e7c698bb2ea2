/*
 * Kernel libraries of the cpu backend. The "source" is a list of built-in kernel names, so the
 * get-or-compile protocol (and its failures, reported like a compiler's log) is the same one the cuda
 * (NVRTC) and metal (newLibraryWithSource) backends serve.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/objects.h"

static int is_separator(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ','; }

static void append_available(char* log, size_t capacity) {
  size_t used = strlen(log);
  for (size_t i = 0; i < cpu_kernel_count() && used < capacity; i++) {
    int n = snprintf(log + used, capacity - used, "%s%s", i ? ", " : "", cpu_kernel_at(i)->name);
    if (n < 0) break;
    used += (size_t)n;
  }
}

mps_status mps_library_compile(mps_device* device, const char* source, const char* options, mps_library** out,
                               mps_error* err) {
  if (!device || !source || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_library_compile: NULL argument");
  *out = NULL;
  size_t total = cpu_kernel_count();
  const cpu_kernel** chosen = calloc(total ? total : 1, sizeof *chosen);
  if (!chosen) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_library_compile: out of host memory");
  size_t count = 0;
  char log[MPS_ERROR_MESSAGE_CAPACITY] = {0};
  const char* p = source;
  while (*p) {
    while (*p && is_separator(*p)) p++;
    const char* start = p;
    while (*p && !is_separator(*p)) p++;
    size_t len = (size_t)(p - start);
    if (len == 0) continue;
    if (len == 1 && start[0] == '*') {
      for (size_t i = 0; i < total; i++) chosen[i] = cpu_kernel_at(i);
      count = total;
      continue;
    }
    const cpu_kernel* found = NULL;
    for (size_t i = 0; i < total; i++) {
      const char* name = cpu_kernel_at(i)->name;
      if (strlen(name) == len && strncmp(name, start, len) == 0) found = cpu_kernel_at(i);
    }
    if (!found) {
      snprintf(log, sizeof log, "error: unknown cpu kernel '%.*s'; built-in kernels are: ", (int)(len > 64 ? 64 : len),
               start);
      append_available(log, sizeof log);
      free(chosen);
      return mps_fail(err, MPS_ERR_COMPILE_FAILED, "%s", log);
    }
    int duplicate = 0;
    for (size_t i = 0; i < count; i++) duplicate |= chosen[i] == found;
    if (!duplicate) chosen[count++] = found;
  }
  if (count == 0) {
    free(chosen);
    return mps_fail(err, MPS_ERR_COMPILE_FAILED, "error: library source names no kernel (give names or '*')");
  }
  mps_library* lib = calloc(1, sizeof *lib);
  if (!lib) {
    free(chosen);
    return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_library_compile: out of host memory");
  }
  atomic_init(&lib->refs, 1);
  lib->device = device;
  lib->kernels = chosen;
  lib->kernel_count = count;
  atomic_fetch_add_explicit(&device->live_libraries, 1, memory_order_relaxed);
  *out = lib;
  return mps_ok(err);
}

static void library_unref(mps_library* lib) {
  if (atomic_fetch_sub_explicit(&lib->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = lib->device;
  free(lib->kernels);
  free(lib);
  atomic_fetch_sub_explicit(&device->live_libraries, 1, memory_order_release);
}

mps_status mps_library_release(mps_library* library, mps_error* err) {
  if (!library) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_library_release: library is NULL");
  library_unref(library);
  return mps_ok(err);
}

mps_status mps_pipeline_create(mps_library* library, const char* function, mps_pipeline** out, mps_error* err) {
  if (!library || !function || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_pipeline_create: NULL argument");
  *out = NULL;
  const cpu_kernel* kernel = NULL;
  for (size_t i = 0; i < library->kernel_count; i++) {
    if (strcmp(library->kernels[i]->name, function) == 0) kernel = library->kernels[i];
  }
  if (!kernel) {
    char names[MPS_ERROR_MESSAGE_CAPACITY / 2] = {0};
    size_t used = 0;
    for (size_t i = 0; i < library->kernel_count && used < sizeof names; i++) {
      int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", library->kernels[i]->name);
      if (n < 0) break;
      used += (size_t)n;
    }
    return mps_fail(err, MPS_ERR_NOT_FOUND, "function '%.64s' is not in this library (it has: %s)", function, names);
  }
  mps_pipeline* p = calloc(1, sizeof *p);
  if (!p) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_pipeline_create: out of host memory");
  atomic_init(&p->refs, 1);
  atomic_fetch_add_explicit(&library->refs, 1, memory_order_relaxed);
  p->library = library;
  p->kernel = kernel;
  atomic_fetch_add_explicit(&library->device->live_pipelines, 1, memory_order_relaxed);
  *out = p;
  return mps_ok(err);
}

mps_status mps_pipeline_arg_count(const mps_pipeline* pipeline, uint32_t* out, mps_error* err) {
  if (!pipeline || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_pipeline_arg_count: NULL argument");
  *out = pipeline->kernel->nargs;
  return mps_ok(err);
}

void mps_cpu_pipeline_retain(const mps_pipeline* pipeline) {
  atomic_fetch_add_explicit(&((mps_pipeline*)pipeline)->refs, 1, memory_order_relaxed);
}

void mps_cpu_pipeline_unref(const mps_pipeline* pipeline) {
  mps_pipeline* p = (mps_pipeline*)pipeline;
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) return;
  mps_library* lib = p->library;
  mps_device* device = lib->device;
  free(p);
  atomic_fetch_sub_explicit(&device->live_pipelines, 1, memory_order_release);
  library_unref(lib);
}

mps_status mps_pipeline_release(mps_pipeline* pipeline, mps_error* err) {
  if (!pipeline) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_pipeline_release: pipeline is NULL");
  mps_cpu_pipeline_unref(pipeline);
  return mps_ok(err);
}
