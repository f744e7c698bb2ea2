/*
 * The metal backend's objects. Same shapes and ownership rules as the cpu and cuda backends' (cpu/objects.h,
 * cuda/backend_objects.h), so that the backend-independent code (common/event.c, common/program.c, the
 * validators of cpu/kernels_table.c) runs unchanged: a buffer's `data` is its MTLBuffer's `contents`, a CPU
 * address of the same unified memory the GPU uses, which validation only compares and offsets.
 *
 * This header is plain C (common/ is compiled as C). Metal objects therefore appear as `void*` holding one
 * +1 reference each, taken and dropped explicitly (metal/bridge.h), so their lifetimes follow these
 * structs' reference counts and never an ARC scope.
 */
#ifndef MPS_METAL_BACKEND_OBJECTS_H
#define MPS_METAL_BACKEND_OBJECTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "cpu/error.h"
#include "cpu/kernels.h"
#include "mps/mps.h"

/* Owner: DeviceRuntime. Immutable after open except the live counters (relaxed atomics).
 * copy_pipeline serves the stream copies a blit cannot do: on macOS a blit's offsets and size must be
 * multiples of 4 bytes, the ABI allows any. It is compiled at open from a source of its own (device.m), so
 * it needs no kernel library and the device stays immutable. */
struct mps_device {
  mps_device_info info;
  int32_t ordinal;
  int32_t math_mode;
  void* mtl_device;    /* id<MTLDevice> */
  void* copy_pipeline; /* id<MTLComputePipelineState> of mps_copy_bytes */
  atomic_int_fast64_t live_buffers;
  atomic_int_fast64_t live_buffer_bytes;
  atomic_int_fast64_t live_streams;
  atomic_int_fast64_t live_events;
  atomic_int_fast64_t live_libraries;
  atomic_int_fast64_t live_pipelines;
  atomic_int_fast64_t live_command_buffers;
  atomic_int_fast64_t live_programs;
};

/* As on cpu: refs = owner + every pending command that uses the buffer. The MTLBuffer is in shared storage
 * (one allocation the CPU and the GPU address), so `data` is its contents and the host pointer is real. */
struct mps_buffer {
  atomic_int refs;
  mps_device* device;
  void* data; /* [mtl_buffer contents] */
  uint64_t bytes;
  void* mtl_buffer; /* id<MTLBuffer> */
};

#define MPS_METAL_MAX_KERNELS 32

/* Owner: a KernelLibrary shard. Immutable after compile. The compiled MSL library and one compute pipeline
 * state per chosen kernel (pipeline states are immutable and thread-safe, so every stream may use them). */
struct mps_library {
  atomic_int refs;
  mps_device* device;
  size_t kernel_count;
  const cpu_kernel** kernels;
  void* mtl_library;                            /* id<MTLLibrary> */
  void* pipelines[MPS_METAL_MAX_KERNELS];       /* id<MTLComputePipelineState> by kernel index; NULL for gemm */
  void* gemm_epilogue;                          /* set when the library has gemm: bias + activation after MPS */
  void* gemm_tiled;                             /* set when the library has gemm: layouts MPS cannot express */
};

/* Immutable. `state` is borrowed from the library, which the pipeline keeps alive with its reference. */
struct mps_pipeline {
  atomic_int refs;
  mps_library* library;
  const cpu_kernel* kernel;
  int kernel_index;
  void* state; /* id<MTLComputePipelineState>; NULL for gemm (MPS, or the library's gemm kernels) */
};

/* As on cpu: complete when every record encoded so far has executed or was discarded. */
struct mps_event {
  atomic_int refs;
  mps_device* device;
  atomic_uint_fast64_t records;
  atomic_int_fast64_t pending;
  atomic_uint_fast64_t timestamp_ns;
};

void mps_backend_buffer_retain(mps_buffer* buffer);
void mps_backend_buffer_unref(mps_buffer* buffer);
void mps_backend_event_retain(mps_event* event);
void mps_backend_event_unref(mps_event* event);

/* Nanoseconds on the clock the GPU's timestamps use: mach_absolute_time (CLOCK_UPTIME_RAW), which is also
 * the clock of the JVM's System.nanoTime on macOS (docs/metal.md, "Clocks"). */
uint64_t mps_metal_now_ns(void);

/* Names the backend-independent code uses (common/program.c). */
void mps_backend_pipeline_retain(const mps_pipeline* pipeline);
void mps_backend_pipeline_unref(const mps_pipeline* pipeline);

/* Kernel indices of the shared table (cpu/kernels_table.c order). */
int mps_metal_kernel_index(const cpu_kernel* kernel);

#endif
