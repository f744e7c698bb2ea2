/*
 * Buffers of the metal backend: MTLBuffers in shared storage. On Apple silicon the CPU and the GPU address
 * the same memory, so the host pointer is the buffer's contents and mps_buffer_write/read are memcpy: no
 * staging, no command buffer, nothing to wait for. Their contract (mps.h) is that no pending command uses
 * the range, which is what makes a plain memcpy correct here; ordered transfers are stream commands.
 *
 * Allocation is newBufferWithLength, which Metal zero-fills. Reuse by size class and the memory limit live
 * above this, in AllocatorActor.
 */
#import <Metal/Metal.h>

#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "metal/backend_objects.h"
#include "metal/bridge.h"

/* Releasing an MTLBuffer does not wait for anything. */
static void buffer_free_memory(mps_buffer* buffer) { mps_metal_drop(buffer->mtl_buffer); }

#include "common/buffer_owner.inc"

mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_buffer_alloc: NULL argument");
  *out = NULL;
  mps_status size_ok = check_alloc_size(device, bytes, err);
  if (size_ok != MPS_OK) return size_ok;
  mps_buffer* b = calloc(1, sizeof *b);
  if (!b) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: out of host memory");
  @autoreleasepool {
    /* Tracked hazards (the default for device buffers): Metal orders the passes of one queue that touch the
     * buffer; other queues are ordered by the streams' shared-event waits. */
    id<MTLDevice> mtl_device = MPS_METAL(id<MTLDevice>, device->mtl_device);
    id<MTLBuffer> buffer = [mtl_device newBufferWithLength:(NSUInteger)bytes options:MTLResourceStorageModeShared];
    if (!buffer) {
      free(b);
      return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_buffer_alloc: the GPU could not provide %llu bytes",
                      (unsigned long long)bytes);
    }
    b->data = buffer.contents;
    b->mtl_buffer = mps_metal_own(buffer);
  }
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

