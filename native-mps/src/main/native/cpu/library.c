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

static void library_free(mps_library* lib) {
  free(lib->kernels);
  free(lib);
}

/* Every kernel a cpu library holds has a cpu implementation (cpu_runs chose them). */
static mps_status pipeline_allowed(const mps_library* library, const cpu_kernel* kernel, mps_error* err) {
  (void)library, (void)kernel, (void)err;
  return MPS_OK;
}

/* The cpu executor calls kernel->execute: nothing to bind. */
static void pipeline_bind(mps_pipeline* p) { (void)p; }

#include "common/library_owner.inc"
