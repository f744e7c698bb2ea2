/* Host-memory buffers of the cpu backend. */
#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "cpu/objects.h"

/* 64 bytes: one cache line and a full AVX-512 vector, so kernels never straddle lines at a buffer start. */
#define MPS_CPU_BUFFER_ALIGNMENT 64u

mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: NULL argument");
  *out = NULL;
  if (bytes == 0) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: size must be > 0 bytes");
  if (bytes > device->info.max_buffer_bytes) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                    "mps_buffer_alloc: %llu bytes requested, the device's limit for one buffer is %llu bytes",
                    (unsigned long long)bytes, (unsigned long long)device->info.max_buffer_bytes);
  }
  uint64_t rounded = (bytes + MPS_CPU_BUFFER_ALIGNMENT - 1) / MPS_CPU_BUFFER_ALIGNMENT * MPS_CPU_BUFFER_ALIGNMENT;
  mps_buffer* b = calloc(1, sizeof *b);
  void* data = NULL;
  if (!b || posix_memalign(&data, MPS_CPU_BUFFER_ALIGNMENT, (size_t)rounded) != 0) {
    free(b);
    return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: out of host memory for %llu bytes",
                    (unsigned long long)bytes);
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
  *out = buffer->data;
  return mps_ok(err);
}

mps_status mps_buffer_write(mps_buffer* buffer, uint64_t offset, const void* src, uint64_t bytes, mps_error* err) {
  mps_status s = mps_check_host_range("mps_buffer_write", buffer, offset, src, bytes, err);
  if (s != MPS_OK) return s;
  if (bytes) memcpy((char*)buffer->data + offset, src, (size_t)bytes);
  return mps_ok(err);
}

mps_status mps_buffer_read(const mps_buffer* buffer, uint64_t offset, void* dst, uint64_t bytes, mps_error* err) {
  mps_status s = mps_check_host_range("mps_buffer_read", buffer, offset, dst, bytes, err);
  if (s != MPS_OK) return s;
  if (bytes) memcpy(dst, (const char*)buffer->data + offset, (size_t)bytes);
  return mps_ok(err);
}
void mps_cpu_buffer_retain
(mps_buffer* buffer) {
  atomic_fetch_add_explicit(&buffer->refs, 1, memory_order_relaxed);
}

void mps_cpu_buffer_unref(mps_buffer* buffer) {
  if (atomic_fetch_sub_explicit(&buffer->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = buffer->device;
  uint64_t bytes = buffer->bytes;
  free(buffer->data);
  free(buffer);
  atomic_fetch_sub_explicit(&device->live_buffer_bytes, (int_fast64_t)bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&device->live_buffers, 1, memory_order_release);
}

mps_status mps_buffer_release(mps_buffer* buffer, mps_error* err) {
  if (!buffer) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_release: buffer is NULL");
  mps_cpu_buffer_unref(buffer);
  return mps_ok(err);
}
