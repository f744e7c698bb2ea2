/* Host-memory buffers of the cpu backend. */
#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "cpu/objects.h"

/* 64 bytes: one cache line and a full AVX-512 vector, so kernels never straddle lines at a buffer start. */
#define MPS_CPU_BUFFER_ALIGNMENT 64u

/* Host memory: nothing can still be using it once the last reference is gone. */
static void buffer_free_memory(mps_buffer* buffer) { free(buffer->data); }

#include "common/buffer_owner.inc"

mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: NULL argument");
  *out = NULL;
  mps_status size_ok = check_alloc_size(device, bytes, err);
  if (size_ok != MPS_OK) return size_ok;
  uint64_t rounded = (bytes + MPS_CPU_BUFFER_ALIGNMENT - 1) / MPS_CPU_BUFFER_ALIGNMENT * MPS_CPU_BUFFER_ALIGNMENT;
  mps_buffer* b = calloc(1, sizeof *b);
  void* data = NULL;
  if (!b || posix_memalign(&data, MPS_CPU_BUFFER_ALIGNMENT, (size_t)rounded) != 0) {
    free(b);
    return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: out of host memory for %llu bytes",
                    (unsigned long long)bytes);
  }
  b->data = data;
  buffer_publish(device, b, bytes);
  *out = b;
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
