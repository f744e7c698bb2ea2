/*
 * Kernel libraries of the metal backend: Metal compiles the backend's kernel source (metal/kernels.metal,
 * embedded at build time) with newLibraryWithSource, and each chosen kernel becomes a compute pipeline state.
 * The "source" names the kernels wanted, as on cpu and cuda, so the get-or-compile protocol of the
 * KernelLibrary shards is the same on every backend. `options` carries preprocessor macros
 * ("-DNAME=VALUE -DFLAG"); a failed compile returns Metal's message (the compiler log).
 *
 * Compiling is synchronous and takes long (tens to hundreds of milliseconds); the runtime calls it off the
 * shard actors' threads (reference.conf, kernel compilation dispatcher).
 */
#import <Metal/Metal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernel_names.h"
#include "metal/backend_objects.h"
#include "metal/bridge.h"

extern const char mps_metal_kernels_source[]; /* generated from metal/kernels.metal by CMake */

int mps_metal_kernel_index(const cpu_kernel* kernel) {
  for (size_t i = 0; i < cpu_kernel_count(); i++) {
    if (cpu_kernel_at(i) == kernel) return (int)i;
  }
  return -1;
}

/* One "-DNAME[=VALUE]" (or "-D" followed by "NAME[=VALUE]") into `macros`. */
static mps_status add_macro(NSMutableDictionary<NSString*, NSObject*>* macros, NSString* definition, mps_error* err) {
  if (definition.length == 0) {
    return mps_fail(err, MPS_ERR_COMPILE_FAILED, "metal: option -D without a macro name");
  }
  NSRange equals = [definition rangeOfString:@"="];
  if (equals.location == NSNotFound) {
    macros[definition] = @"1"; /* what a compiler's -DNAME means */
  } else {
    macros[[definition substringToIndex:equals.location]] = [definition substringFromIndex:equals.location + 1];
  }
  return MPS_OK;
}

/* Metal has no command line: the only compiler input `options` can carry is preprocessor macros. Anything
 * else fails like an unknown compiler flag would (the NVRTC backend passes options verbatim). */
static mps_status parse_options(const char* options, MTLCompileOptions* out, mps_error* err) {
  NSMutableDictionary<NSString*, NSObject*>* macros = [NSMutableDictionary dictionary];
  NSArray<NSString*>* tokens = [@(options ? options : "")
      componentsSeparatedByCharactersInSet:[NSCharacterSet whitespaceAndNewlineCharacterSet]];
  BOOL definition_next = NO;
  for (NSString* token in tokens) {
    if (token.length == 0) continue;
    mps_status s = MPS_OK;
    if (definition_next) {
      s = add_macro(macros, token, err);
      definition_next = NO;
    } else if ([token isEqualToString:@"-D"]) {
      definition_next = YES;
    } else if ([token hasPrefix:@"-D"]) {
      s = add_macro(macros, [token substringFromIndex:2], err);
    } else {
      s = mps_fail(err, MPS_ERR_COMPILE_FAILED,
                   "metal: unsupported compile option '%.64s' (only preprocessor macros: -DNAME or -DNAME=VALUE)",
                   token.UTF8String);
    }
    if (s != MPS_OK) return s;
  }
  if (definition_next) return mps_fail(err, MPS_ERR_COMPILE_FAILED, "metal: option -D without a macro name");
  out.preprocessorMacros = macros;
  return MPS_OK;
}

/* IEEE float arithmetic: fast math may reassociate the reductions and flush denormals, and the accuracy the
 * backend documents (docs/metal.md) assumes it does not. The kernels also call precise:: functions. */
static void use_precise_math(MTLCompileOptions* options) {
#if defined(__MAC_15_0) && __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_15_0 /* mathMode is in the macOS 15 SDK */
  if (@available(macOS 15.0, *)) {
    options.mathMode = MTLMathModeSafe;
    return;
  }
#endif
  options.fastMathEnabled = NO;
}

static mps_status compile_source(id<MTLDevice> device, const char* options, id<MTLLibrary>* out, mps_error* err) {
  MTLCompileOptions* compile = [MTLCompileOptions new];
  use_precise_math(compile);
  mps_status s = parse_options(options, compile, err);
  if (s != MPS_OK) return s;
  NSError* error = nil;
  id<MTLLibrary> library = [device newLibraryWithSource:@(mps_metal_kernels_source) options:compile error:&error];
  /* A library with an error object carries warnings only; nil means the compile failed. */
  if (!library) return mps_fail(err, MPS_ERR_COMPILE_FAILED, "metal: %s", mps_metal_error_text(error));
  *out = library;
  return MPS_OK;
}

static mps_status make_pipeline(id<MTLLibrary> library, const char* name, void** out, mps_error* err) {
  id<MTLFunction> function = [library newFunctionWithName:@(name)];
  if (!function) return mps_fail(err, MPS_ERR_COMPILE_FAILED, "metal: the library has no function %s", name);
  NSError* error = nil;
  id<MTLComputePipelineState> state = [library.device newComputePipelineStateWithFunction:function error:&error];
  if (!state) {
    return mps_fail(err, MPS_ERR_COMPILE_FAILED, "metal: pipeline state for %s: %s", name, mps_metal_error_text(error));
  }
  *out = mps_metal_own(state);
  return MPS_OK;
}

/* gemm runs on MPS plus two kernels of the library; every other kernel is the MSL function mps_<name>. */
static mps_status make_pipelines(mps_library* lib, id<MTLLibrary> library, mps_error* err) {
  for (size_t i = 0; i < lib->kernel_count; i++) {
    const cpu_kernel* k = lib->kernels[i];
    mps_status s;
    if (strcmp(k->name, "gemm") == 0) {
      s = make_pipeline(library, "mps_gemm_epilogue", &lib->gemm_epilogue, err);
      if (s == MPS_OK) s = make_pipeline(library, "mps_gemm_tiled", &lib->gemm_tiled, err);
    } else {
      char name[64];
      snprintf(name, sizeof name, "mps_%s", k->name);
      s = make_pipeline(library, name, &lib->pipelines[mps_metal_kernel_index(k)], err);
    }
    if (s != MPS_OK) return s;
  }
  return MPS_OK;
}

static void library_free(mps_library* lib) {
  for (int i = 0; i < MPS_METAL_MAX_KERNELS; i++) mps_metal_drop(lib->pipelines[i]);
  mps_metal_drop(lib->gemm_epilogue);
  mps_metal_drop(lib->gemm_tiled);
  mps_metal_drop(lib->mtl_library);
  free(lib->kernels);
  free(lib);
}

/* The 16-bit storage kernels (value_bytes 2) exist only on cuda so far; cpu_only ones (gemm_packed) only on cpu. */
static int metal_runs(const cpu_kernel* kernel) { return kernel->value_bytes != 2 && !kernel->cpu_only; }

mps_status mps_library_compile(mps_device* device, const char* source, const char* options, mps_library** out,
                               mps_error* err) {
  if (!device || !source || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_library_compile: NULL argument");
  *out = NULL;
  const cpu_kernel** chosen = NULL;
  size_t count = 0;
  mps_status s = mps_parse_kernel_names(source, "metal", metal_runs, &chosen, &count, err);
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
  @autoreleasepool {
    id<MTLLibrary> library = nil;
    s = compile_source(MPS_METAL(id<MTLDevice>, device->mtl_device), options, &library, err);
    if (s == MPS_OK) {
      lib->mtl_library = mps_metal_own(library);
      s = make_pipelines(lib, library, err);
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

/* metal_runs kept the 16-bit kernels out of every metal library. */
static mps_status pipeline_allowed(const mps_library* library, const cpu_kernel* kernel, mps_error* err) {
  (void)library, (void)kernel, (void)err;
  return MPS_OK;
}

static void pipeline_bind(mps_pipeline* p) {
  p->kernel_index = mps_metal_kernel_index(p->kernel);
  p->state = p->library->pipelines[p->kernel_index];
}

#include "common/library_owner.inc"
