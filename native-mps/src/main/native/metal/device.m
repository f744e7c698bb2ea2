/* Device open/close and properties of the metal backend. */
#import <IOKit/IOKitLib.h>
#import <Metal/Metal.h>
#import <MetalPerformanceShaders/MetalPerformanceShaders.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/checks.h"
#include "metal/backend_objects.h"
#include "metal/bridge.h"

/* Byte copies for stream copies, uploads and downloads whose offsets or size are not multiples of 4 (a blit
 * needs them to be on macOS). Offsets travel as parameters, so both buffers bind at offset 0 and no binding
 * alignment rule applies. Kept out of kernels.metal so that streams need no kernel library to copy. */
static const char COPY_SOURCE[] =
    "#include <metal_stdlib>\n"
    "using namespace metal;\n"
    "struct mps_copy_params { ulong src_offset; ulong dst_offset; ulong bytes; };\n"
    "kernel void mps_copy_bytes(device const uchar* src [[buffer(0)]], device uchar* dst [[buffer(1)]],\n"
    "                           constant mps_copy_params& p [[buffer(2)]],\n"
    "                           uint gid [[thread_position_in_grid]], uint grid [[threads_per_grid]]) {\n"
    "  for (ulong i = gid; i < p.bytes; i += grid) dst[p.dst_offset + i] = src[p.src_offset + i];\n"
    "}\n";

uint64_t mps_metal_now_ns(void) { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

/* GPU cores of `device` from the IORegistry entry Metal names (registryID): Metal has no public API for the
 * count. 0 where the entry has no "gpu-core-count" (GPUs other than Apple silicon). */
static int32_t gpu_core_count(id<MTLDevice> device) {
  io_service_t service = IOServiceGetMatchingService(MACH_PORT_NULL, IORegistryEntryIDMatching(device.registryID));
  if (!service) return 0;
  int32_t cores = 0;
  CFTypeRef value = IORegistryEntrySearchCFProperty(service, kIOServicePlane, CFSTR("gpu-core-count"),
                                                    kCFAllocatorDefault, kIORegistryIterateRecursively);
  if (value && CFGetTypeID(value) == CFNumberGetTypeID()) CFNumberGetValue(value, kCFNumberSInt32Type, &cores);
  if (value) CFRelease(value);
  IOObjectRelease(service);
  return cores > 0 ? cores : 0;
}

static mps_status compile_copy_pipeline(id<MTLDevice> device, void** out, mps_error* err) {
  NSError* error = nil;
  MTLCompileOptions* options = [MTLCompileOptions new];
  id<MTLLibrary> library = [device newLibraryWithSource:@(COPY_SOURCE) options:options error:&error];
  id<MTLFunction> function = library ? [library newFunctionWithName:@"mps_copy_bytes"] : nil;
  id<MTLComputePipelineState> state =
      function ? [device newComputePipelineStateWithFunction:function error:&error] : nil;
  if (!state) {
    return mps_fail(err, MPS_ERR_BACKEND, "metal: building the copy kernel: %s", mps_metal_error_text(error));
  }
  *out = mps_metal_own(state);
  return MPS_OK;
}

static mps_status pick_device(int32_t ordinal, id<MTLDevice>* out, mps_error* err) {
  NSArray<id<MTLDevice>>* devices = MTLCopyAllDevices();
  if (devices.count == 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND, "metal: this machine has no Metal device (MTLCopyAllDevices is empty)");
  }
  if (ordinal < 0 || (NSUInteger)ordinal >= devices.count) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "metal: ordinal %d, but this machine has %lu Metal device(s)",
                    (int)ordinal, (unsigned long)devices.count);
  }
  id<MTLDevice> device = devices[(NSUInteger)ordinal];
  if (!MPSSupportsMTLDevice(device)) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED, "metal: %s is not supported by Metal Performance Shaders",
                    device.name.UTF8String);
  }
  *out = device;
  return MPS_OK;
}

static void fill_info(mps_device* d, id<MTLDevice> device) {
  snprintf(d->info.backend, sizeof d->info.backend, "metal");
  snprintf(d->info.name, sizeof d->info.name, "%.120s", device.name.UTF8String);
  /* What Metal recommends the process keep resident without paging: the usable share of unified memory. */
  d->info.memory_bytes = (uint64_t)device.recommendedMaxWorkingSetSize;
  d->info.max_buffer_bytes = (uint64_t)device.maxBufferLength;
  d->info.compute_units = gpu_core_count(device);
  d->info.host_visible = 1; /* shared storage: one allocation both processors address */
}

mps_status mps_device_count(const mps_device_options* options, int32_t* out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_count: out is NULL");
  *out = 0;
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "metal") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (libmpsnative_metal.dylib provides: metal)", backend);
  }
  @autoreleasepool {
    NSArray<id<MTLDevice>>* devices = MTLCopyAllDevices();
    *out = (int32_t)devices.count;
  }
  return mps_ok(err);
}

mps_status mps_device_open(const mps_device_options* options, mps_device** out, mps_error* err) {
  if (!out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_open: out is NULL");
  *out = NULL;
  const char* backend = options && options->backend ? options->backend : "cpu";
  if (strcmp(backend, "metal") != 0) {
    return mps_fail(err, MPS_ERR_NOT_FOUND,
                    "backend '%s' is not in this native library (libmpsnative_metal.dylib provides: metal); "
                    "the cpu backend is libmpsnative, loaded when a JVM's first device is a cpu one", backend);
  }
  int32_t ordinal = options ? options->ordinal : 0;
  if (options && options->math_mode != MPS_MATH_FP32) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED,
                    "metal backend computes GEMMs in fp32 only (math mode %d requested; tf32, fp16 and bf16 are "
                    "tensor-core modes of the cuda backend)", (int)options->math_mode);
  }
  @autoreleasepool {
    id<MTLDevice> device = nil;
    mps_status s = pick_device(ordinal, &device, err);
    if (s != MPS_OK) return s;
    mps_device* d = calloc(1, sizeof *d);
    if (!d) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_device_open: out of host memory");
    s = compile_copy_pipeline(device, &d->copy_pipeline, err);
    if (s != MPS_OK) {
      free(d);
      return s;
    }
    fill_info(d, device);
    d->ordinal = ordinal;
    d->math_mode = MPS_MATH_FP32;
    d->mtl_device = mps_metal_own(device);
    *out = d;
    return mps_ok(err);
  }
}

mps_status mps_device_close(mps_device* device, mps_error* err) {
  if (!device) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_close: device is NULL");
  mps_status idle = mps_device_require_idle(device, err);
  if (idle != MPS_OK) return idle;
  /* No stream is alive, so no command buffer uses the copy pipeline any more. */
  mps_metal_drop(device->copy_pipeline);
  mps_metal_drop(device->mtl_device);
  free(device);
  return mps_ok(err);
}
