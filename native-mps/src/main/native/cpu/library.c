/*
 * Kernel libraries of the cpu backend. The "source" is a list of built-in kernel names, so the
 * get-or-compile protocol (and its failures, reported like a compiler's log) is the same one the cuda
 * (NVRTC) and metal (newLibraryWithSource) backends serve.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernel_names.h"
#include "cpu/objects.h"

/* The cpu backend runs the kernels it has an implementation of (not the 16-bit storage ones). */
static int cpu_runs(const cpu_kernel* kernel) { return kernel->execute != NULL; }

mps_status mps_library_compile(mps_device* device, const char* source, const char* options, mps_library** out,
                               mps_error* err) {
  if (!device || !source || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_library_compile: NULL argument");
  *out = NULL;
  const cpu_kernel** chosen = NULL;
  size_t count = 0;
  mps_status s = mps_parse_kernel_names(source, "cpu", cpu_runs, &chosen, &count, err);
  if (s != MPS_OK) return s;
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
  mps_status s = mps_find_library_kernel(library->kernels, library->kernel_count, function, &kernel, err);
  if (s != MPS_OK) return s;
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

void mps_backend_pipeline_retain(const mps_pipeline* pipeline) {
  atomic_fetch_add_explicit(&((mps_pipeline*)pipeline)->refs, 1, memory_order_relaxed);
}

void mps_backend_pipeline_unref(const mps_pipeline* pipeline) {
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
  mps_backend_pipeline_unref(pipeline);
  return mps_ok(err);
}
