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

/* Back to the pool, ordered on the memory stream: cudaFree would synchronize the whole device. */
static void buffer_free_memory(mps_buffer* buffer) {
  cudaSetDevice(buffer->device->ordinal);
  cudaFreeAsync(buffer->data, buffer->device->memory_stream);
}

#include "common/buffer_owner.inc"

mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: NULL argument");
  *out = NULL;
  mps_status size_ok = check_alloc_size(device, bytes, err);
  if (size_ok != MPS_OK) return size_ok;
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
  b->data = data;
  buffer_publish(device, b, bytes);
  *out = b;
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
