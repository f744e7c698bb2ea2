/*
 * Device-memory buffers of the cuda backend, from CUDA's stream-ordered pool (cudaMallocAsync).
 *
 * cudaFree synchronizes the whole device, which would make the last release of a buffer wait for every
 * stream's work (seed hazard 7 in another form). Allocation and free are therefore ordered on the
 * device's memory stream, which never carries kernels: a free is enqueued and returns; an allocation is
 * enqueued and its stream synchronized, which waits only for the pool, not for any stream's work.
 * Reuse by size class and the memory limit live above this, in AllocatorActor.
 */
#include <stdlib.h>

#include "common/checks.h"
#include "cuda/backend_objects.h"

/* 256 bytes: cudaMalloc's own alignment, and what vectorized kernels and cuBLAS expect at a buffer start. */
#define MPS_CUDA_BUFFER_ALIGNMENT 256u

mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: NULL argument");
  *out = NULL;
  if (bytes == 0) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: size must be > 0 bytes");
  if (bytes > device->info.max_buffer_bytes) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                    "mps_buffer_alloc: %llu bytes requested, the device's limit for one buffer is %llu bytes",
                    (unsigned long long)bytes, (unsigned long long)device->info.max_buffer_bytes);
  }
  uint64_t rounded = (bytes + MPS_CUDA_BUFFER_ALIGNMENT - 1) / MPS_CUDA_BUFFER_ALIGNMENT * MPS_CUDA_BUFFER_ALIGNMENT;
  mps_buffer* b = calloc(1, sizeof *b);
  if (!b) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: out of host memory");
  cudaError_t e = cudaSetDevice(device->ordinal);
  void* data = NULL;
  if (e == cudaSuccess) e = cudaMallocAsync(&data, (size_t)rounded, device->memory_stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(device->memory_stream);
  if (e != cudaSuccess) {
    if (data) cudaFreeAsync(data, device->memory_stream);
    free(b);
    cudaGetLastError(); /* an allocation failure is not sticky; clear it so later calls do not report it */
    mps_status s = mps_cuda_fail(err, e, "mps_buffer_alloc");
    if (e == cudaErrorMemoryAllocation) {
      return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: the GPU has no %llu bytes free (%s)",
                      (unsigned long long)bytes, cudaGetErrorString(e));
    }
    return s;
  }
  atomic_init(&b->refs, 1);
  b->device = device;
  b->data = data;
  b->bytes = bytes;
  atomic_fetch_add_explicit(&device->live_buffers, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&device->live_buffer_bytes, (int_fast64_t)bytes, memory_order_relaxed);
  *out = b;
  return mps_ok(err);
}

mps_status mps_buffer_size(const mps_buffer* buffer, uint64_t* out, mps_error* err) {
  if (!buffer || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_size: NULL argument");
  *out = buffer->bytes;
  return mps_ok(err);
}

mps_status mps_buffer_host_pointer(mps_buffer* buffer, void** out, mps_error* err) {
  if (!buffer || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_host_pointer: NULL argument");
  *out = NULL;
  return mps_fail(err, MPS_ERR_UNSUPPORTED,
                  "cuda buffers live in GPU memory and have no host pointer; move data with upload/download on a "
                  "stream");
}

static mps_status host_copy(const char* what, const mps_device* device, void* dst, const void* src, uint64_t bytes,
                            enum cudaMemcpyKind kind, mps_error* err) {
  if (!bytes) return mps_ok(err);
  cudaError_t e = cudaSetDevice(device->ordinal);
  if (e == cudaSuccess) e = cudaMemcpy(dst, src, (size_t)bytes, kind);
  return e == cudaSuccess ? mps_ok(err) : mps_cuda_fail(err, e, what);
}

mps_status mps_buffer_write(mps_buffer* buffer, uint64_t offset, const void* src, uint64_t bytes, mps_error* err) {
  mps_status s = mps_check_host_range("mps_buffer_write", buffer, offset, src, bytes, err);
  if (s != MPS_OK) return s;
  return host_copy("mps_buffer_write", buffer->device, (char*)buffer->data + offset, src, bytes,
                   cudaMemcpyHostToDevice, err);
}

mps_status mps_buffer_read(const mps_buffer* buffer, uint64_t offset, void* dst, uint64_t bytes, mps_error* err) {
  mps_status s = mps_check_host_range("mps_buffer_read", buffer, offset, dst, bytes, err);
  if (s != MPS_OK) return s;
  return host_copy("mps_buffer_read", buffer->device, dst, (const char*)buffer->data + offset, bytes,
                   cudaMemcpyDeviceToHost, err);
}
void mps_cuda_buffer_retain
(mps_buffer* buffer) {
  atomic_fetch_add_explicit(&buffer->refs, 1, memory_order_relaxed);
}

void mps_cuda_buffer_unref(mps_buffer* buffer) {
  if (atomic_fetch_sub_explicit(&buffer->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = buffer->device;
  uint64_t bytes = buffer->bytes;
  /* The last command using it has completed (it held a reference), so the memory may go back to the pool
   * at once; the free is ordered on the memory stream and does not wait. */
  cudaSetDevice(device->ordinal);
  cudaFreeAsync(buffer->data, device->memory_stream);
  free(buffer);
  atomic_fetch_sub_explicit(&device->live_buffer_bytes, (int_fast64_t)bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&device->live_buffers, 1, memory_order_release);
}

mps_status mps_buffer_release(mps_buffer* buffer, mps_error* err) {
  if (!buffer) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_release: buffer is NULL");
  mps_cuda_buffer_unref(buffer);
  return mps_ok(err);
}
