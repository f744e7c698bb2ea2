/* Argument checks every backend makes the same way, so each bad input gets one message whatever the
 * backend (kernel arguments, buffer ranges, host transfers), and the device queries and close check that
 * read the live-object counters all backends keep. Needs the backend's objects (backend_objects.h). */
#ifndef MPS_COMMON_CHECKS_H
#define MPS_COMMON_CHECKS_H

#include "backend_objects.h"

/* Which way a stream transfer goes (common/stream_owner.inc hands it to the backend's encode_transfer). */
typedef enum mps_transfer_direction {
  MPS_TRANSFER_DEVICE,   /* buffer to buffer */
  MPS_TRANSFER_UPLOAD,   /* host to buffer */
  MPS_TRANSFER_DOWNLOAD  /* buffer to host */
} mps_transfer_direction;

/* Resolves a kernel's arguments against its signature (kinds, optional buffers, device, offsets) into
 * buffer address + bytes available, then runs the kernel's validator. */
mps_status mps_resolve_kernel_args(const cpu_kernel* k, const mps_device* device, const mps_arg* args, uint32_t nargs,
                                   cpu_arg* out, mps_error* err);

/* [offset, offset + bytes) must lie inside buffer b (a stream copy, upload or download). */
mps_status mps_check_buffer_range(const char* what, const mps_buffer* b, uint64_t offset, uint64_t bytes,
                                  mps_error* err);

/* The same for an immediate host transfer (mps_buffer_write/read), whose host pointer must be set. */
mps_status mps_check_host_range(const char* what, const mps_buffer* buffer, uint64_t offset, const void* host,
                                uint64_t bytes, mps_error* err);

/* MPS_OK when no object of the device is alive; otherwise MPS_ERR_BUSY listing what is. Acquire loads:
 * each object's last touch of the device happens-before a close that follows. */
mps_status mps_device_require_idle(mps_device* device, mps_error* err);

#endif
