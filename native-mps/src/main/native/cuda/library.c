/*
 * Kernel libraries of the cuda backend: NVRTC compiles the backend's kernel source (cuda/kernels.cu,
 * embedded at build time) for the device's architecture, and the cubin is loaded as a context-independent
 * CUDA library. The "source" names the kernels wanted, as on cpu, so the get-or-compile protocol of the
 * KernelLibrary shards is the same on both; `options` go to NVRTC verbatim (e.g. "-DMPS_X=1"), and a
 * failed compile returns NVRTC's log.
 */
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernel_names.h"
#include "cuda/backend_objects.h"

extern const char mps_cuda_kernels_source[]; /* generated from cuda/kernels.cu by CMake */

#define MPS_MAX_NVRTC_OPTIONS 32

int mps_cuda_kernel_index(const cpu_kernel* kernel) {
  for (size_t i = 0; i < cpu_kernel_count(); i++) {
    if (cpu_kernel_at(i) == kernel) return (int)i;
  }
  return -1;
}

static mps_status nvrtc_fail(mps_error* err, nvrtcResult r, const char* what) {
  return mps_fail(err, MPS_ERR_BACKEND, "nvrtc: %s: %s", what, nvrtcGetErrorString(r));
}

/* Splits `options` on whitespace into argv-style pointers into `storage` (a copy). */
static int split_options(const char* options, char* storage, size_t capacity, const char** argv, int max) {
  int n = 0;
  if (!options) return 0;
  snprintf(storage, capacity, "%s", options);
  char* save = NULL; /* strtok_r: shard actors compile on several threads at once */
  for (char* tok = strtok_r(storage, " \t\n", &save); tok && n < max; tok = strtok_r(NULL, " \t\n", &save)) {
    argv[n++] = tok;
  }
  return n;
}

static mps_status compile_module(mps_device* device, const char* options, cudaLibrary_t* module, mps_error* err) {
  nvrtcProgram program;
  nvrtcResult r = nvrtcCreateProgram(&program, mps_cuda_kernels_source, "mps_kernels.cu", 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) return nvrtc_fail(err, r, "nvrtcCreateProgram");
  char arch[32];
  snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", device->cc_major, device->cc_minor);
  const char* argv[MPS_MAX_NVRTC_OPTIONS + 2] = {arch, "--std=c++17"};
  char storage[1024];
  int extra = split_options(options, storage, sizeof storage, argv + 2, MPS_MAX_NVRTC_OPTIONS);
  r = nvrtcCompileProgram(program, 2 + extra, argv);
  if (r != NVRTC_SUCCESS) {
    size_t log_size = 0;
    char log[MPS_ERROR_MESSAGE_CAPACITY] = "(no log)";
    if (nvrtcGetProgramLogSize(program, &log_size) == NVRTC_SUCCESS && log_size > 1) {
      char* full = malloc(log_size);
      if (full && nvrtcGetProgramLog(program, full) == NVRTC_SUCCESS) snprintf(log, sizeof log, "%s", full);
      free(full);
    }
    nvrtcDestroyProgram(&program);
    return mps_fail(err, MPS_ERR_COMPILE_FAILED, "nvrtc (%s): %s", nvrtcGetErrorString(r), log);
  }
  size_t cubin_size = 0;
  r = nvrtcGetCUBINSize(program, &cubin_size);
  char* cubin = r == NVRTC_SUCCESS ? malloc(cubin_size) : NULL;
  if (r == NVRTC_SUCCESS && !cubin) {
    nvrtcDestroyProgram(&program);
    return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_library_compile: out of host memory for the cubin");
  }
  if (r == NVRTC_SUCCESS) r = nvrtcGetCUBIN(program, cubin);
  nvrtcDestroyProgram(&program);
  if (r != NVRTC_SUCCESS) {
    free(cubin);
    return nvrtc_fail(err, r, "nvrtcGetCUBIN");
  }
  cudaError_t e = cudaSetDevice(device->ordinal);
  if (e == cudaSuccess) e = cudaLibraryLoadData(module, cubin, NULL, NULL, 0, NULL, NULL, 0);
  free(cubin);
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "cudaLibraryLoadData");
  return MPS_OK;
}

static mps_status get_kernel(mps_library* lib, const char* name, cudaKernel_t* out, mps_error* err) {
  cudaError_t e = cudaLibraryGetKernel(out, lib->module, name);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "cudaLibraryGetKernel(%s)", name);
    return mps_cuda_fail(err, e, what);
  }
  return MPS_OK;
}

static void library_free(mps_library* lib) {
  cudaSetDevice(lib->device->ordinal);
  if (lib->module) cudaLibraryUnload(lib->module);
  free(lib->kernels);
  free(lib);
}

/* Every kernel of the table but the cpu_only ones (gemm_packed: its weights are in a cpu layout). */
static int cuda_runs(const cpu_kernel* kernel) { return !kernel->cpu_only; }

mps_status mps_library_compile(mps_device* device, const char* source, const char* options, mps_library** out,
                               mps_error* err) {
  if (!device || !source || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_library_compile: NULL argument");
  *out = NULL;
  const cpu_kernel** chosen = NULL;
  size_t count = 0;
  mps_status s = mps_parse_kernel_names(source, "cuda", cuda_runs, &chosen, &count, err);
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
  s = compile_module(device, options, &lib->module, err);
  for (size_t i = 0; s == MPS_OK && i < count; i++) {
    int index = mps_cuda_kernel_index(chosen[i]);
    char name[64];
    snprintf(name, sizeof name, "mps_%s", chosen[i]->name);
    if (strcmp(chosen[i]->name, "gemm") == 0 || strcmp(chosen[i]->name, "gemm16") == 0) {
      int sixteen = chosen[i]->value_bytes == 2;
      s = get_kernel(lib, sixteen ? "mps_gemm_epilogue16" : "mps_gemm_epilogue",
                     sixteen ? &lib->gemm_epilogue16 : &lib->gemm_epilogue, err);
      if (s == MPS_OK && !lib->round_to_half) s = get_kernel(lib, "mps_round_to_half", &lib->round_to_half, err);
      if (s == MPS_OK && !lib->batch_pointers) s = get_kernel(lib, "mps_batch_pointers", &lib->batch_pointers, err);
    } else if (strcmp(chosen[i]->name, "attention16") == 0) {
      /* one entry point per head size (the fragments are sized at compile time) */
      s = get_kernel(lib, "mps_attention16_d32", &lib->attention16[0], err);
      if (s == MPS_OK) s = get_kernel(lib, "mps_attention16_d64", &lib->attention16[1], err);
      if (s == MPS_OK) s = get_kernel(lib, "mps_attention16_d128", &lib->attention16[2], err);
    } else {
      s = get_kernel(lib, name, &lib->functions[index], err);
    }
  }
  if (s != MPS_OK) {
    library_free(lib);
    return s;
  }
  atomic_fetch_add_explicit(&device->live_libraries, 1, memory_order_relaxed);
  *out = lib;
  return mps_ok(err);
}

static mps_status pipeline_allowed(const mps_library* library, const cpu_kernel* kernel, mps_error* err) {
  int32_t math = library->device->math_mode;
  if (kernel->value_bytes == 2 && math != MPS_MATH_FP16 && math != MPS_MATH_BF16) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED,
                    "%s stores tensors in 16 bits, fp16 or bf16 after the device's GEMM math, which is %s here; "
                    "open the device with gemm-math fp16 or bf16", kernel->name, math == MPS_MATH_TF32 ? "tf32" : "fp32");
  }
  return MPS_OK;
}

static void pipeline_bind(mps_pipeline* p) {
  p->kernel_index = mps_cuda_kernel_index(p->kernel);
  p->function = p->library->functions[p->kernel_index];
}

#include "common/library_owner.inc"
