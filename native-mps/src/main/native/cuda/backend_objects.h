/*
 * The cuda backend's objects. Same shapes and ownership rules as the cpu backend's (cpu/objects.h), so
 * that the backend-independent code (common/program.c, the validators of cpu/kernels_table.c) runs on
 * both: a buffer's `data` is a device address here, which validation only compares and offsets.
 */
#ifndef MPS_CUDA_BACKEND_OBJECTS_H
#define MPS_CUDA_BACKEND_OBJECTS_H

#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cpu/error.h"
#include "cpu/kernels.h"
#include "mps/mps.h"


/* Owner: DeviceRuntime. Immutable after open except the live counters (relaxed atomics).
 * memory_stream carries only stream-ordered allocations and frees (never kernels), so synchronizing it
 * after an allocation waits for no device work. */
struct mps_device {
  mps_device_info info;
  int32_t ordinal;
  int32_t math_mode;
  int32_t cc_major, cc_minor;
  cudaStream_t memory_stream;
  atomic_int_fast64_t live_buffers;
  atomic_int_fast64_t live_buffer_bytes;
  atomic_int_fast64_t live_streams;
  atomic_int_fast64_t live_events;
  atomic_int_fast64_t live_libraries;
  atomic_int_fast64_t live_pipelines;
  atomic_int_fast64_t live_command_buffers;
  atomic_int_fast64_t live_programs;
};

/* As on cpu: refs = owner + every pending command that uses the buffer; data is device memory. */
struct mps_buffer {
  atomic_int refs;
  mps_device* device;
  void* data;
  uint64_t bytes;
};

#define MPS_CUDA_MAX_KERNELS 32

/* Owner: a KernelLibrary shard. Immutable after compile. `module` holds the NVRTC-compiled kernels
 * (NULL when the library needs none, e.g. only gemm without bias or activation). */
struct mps_library {
  atomic_int refs;
  mps_device* device;
  size_t kernel_count;
  const cpu_kernel** kernels;
  cudaLibrary_t module;
  cudaKernel_t functions[MPS_CUDA_MAX_KERNELS]; /* by kernel index; NULL for gemm and unchosen kernels */
  cudaKernel_t gemm_epilogue;                   /* set when the library has gemm */
  cudaKernel_t round_to_half;                   /* set when the library has gemm: fp16/bf16 operands */
  cudaKernel_t batch_pointers;                  /* set when the library has gemm: two-level batches */
  cudaKernel_t gemm_epilogue16;                 /* set when the library has gemm16 */
  cudaKernel_t attention16[3];                  /* head_dim 32, 64, 128: set when the library has attention16 */
};

/* Immutable; `function` is the compiled kernel (NULL for gemm, which runs on cuBLAS plus the library's
 * epilogue). */
struct mps_pipeline {
  atomic_int refs;
  mps_library* library;
  const cpu_kernel* kernel;
  int kernel_index;
  cudaKernel_t function;
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
uint64_t mps_cuda_now_ns(void);
/* Fills err from a CUDA runtime error: "<what>: <cudaGetErrorName>: <cudaGetErrorString>". */
mps_status mps_cuda_fail(mps_error* err, cudaError_t e, const char* what);

/* Names the backend-independent code uses (common/program.c). */
void mps_backend_pipeline_retain(const mps_pipeline* pipeline);
void mps_backend_pipeline_unref(const mps_pipeline* pipeline);

/* Kernel indices of the shared table (cpu/kernels_table.c order). */
int mps_cuda_kernel_index(const cpu_kernel* kernel);

#endif
