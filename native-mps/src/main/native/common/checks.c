#include "common/checks.h"

#include <string.h>

#include "common/kernel_names.h"

mps_status mps_resolve_kernel_args(const cpu_kernel* k, const mps_device* device, const mps_arg* args, uint32_t nargs,
                                   cpu_arg* out, mps_error* err) {
  if (nargs != k->nargs) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: expects %u arguments, got %u", k->name, k->nargs, nargs);
  }
  for (uint32_t i = 0; i < nargs; i++) {
    const mps_arg* a = &args[i];
    cpu_arg* r = &out[i];
    memset(r, 0, sizeof *r);
    int32_t expected = k->arg_kinds[i];
    int optional = (k->optional_buffers >> i) & 1u;
    if (a->kind != expected && !(optional && a->kind == MPS_ARG_NONE)) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: argument %u (%s) must be %s%s, got %s", k->name, i,
                      k->arg_names[i], mps_arg_kind_name(expected), optional ? " or none" : "",
                      mps_arg_kind_name(a->kind));
    }
    r->kind = a->kind;
    if (a->kind == MPS_ARG_BUFFER) {
      if (!a->buffer) {
        return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: argument %u (%s) is a NULL buffer", k->name, i,
                        k->arg_names[i]);
      }
      if (a->buffer->device != device) {
        return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer %s belongs to another device", k->name,
                        k->arg_names[i]);
      }
      if (a->offset > a->buffer->bytes) {
        return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: offset %llu of buffer %s is past its end (%llu bytes)",
                        k->name, (unsigned long long)a->offset, k->arg_names[i],
                        (unsigned long long)a->buffer->bytes);
      }
      r->ptr = (char*)a->buffer->data + a->offset;
      r->bytes = a->buffer->bytes - a->offset;
    } else if (a->kind == MPS_ARG_INT) {
      r->i = a->i;
    } else if (a->kind == MPS_ARG_FLOAT) {
      r->f = a->f;
    }
  }
  return k->validate(out, err);
}

static mps_status range_inside(const char* what, const mps_buffer* b, uint64_t offset, uint64_t bytes, mps_error* err) {
  if (offset > b->bytes || bytes > b->bytes - offset) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: range [%llu, %llu + %llu) is outside the buffer's %llu bytes",
                    what, (unsigned long long)offset, (unsigned long long)offset, (unsigned long long)bytes,
                    (unsigned long long)b->bytes);
  }
  return MPS_OK;
}

mps_status mps_check_buffer_range(const char* what, const mps_buffer* b, uint64_t offset, uint64_t bytes,
                                  mps_error* err) {
  if (!b) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
  return range_inside(what, b, offset, bytes, err);
}

mps_status mps_check_host_range(const char* what, const mps_buffer* buffer, uint64_t offset, const void* host,
                                uint64_t bytes, mps_error* err) {
  if (!buffer || (!host && bytes)) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: NULL argument", what);
  return range_inside(what, buffer, offset, bytes, err);
}

static void load_live(mps_device* d, mps_live_objects* out, memory_order order) {
  out->buffers = atomic_load_explicit(&d->live_buffers, order);
  out->buffer_bytes = atomic_load_explicit(&d->live_buffer_bytes, order);
  out->streams = atomic_load_explicit(&d->live_streams, order);
  out->events = atomic_load_explicit(&d->live_events, order);
  out->libraries = atomic_load_explicit(&d->live_libraries, order);
  out->pipelines = atomic_load_explicit(&d->live_pipelines, order);
  out->command_buffers = atomic_load_explicit(&d->live_command_buffers, order);
  out->programs = atomic_load_explicit(&d->live_programs, order);
}

mps_status mps_device_info_get(const mps_device* device, mps_device_info* out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_info_get: NULL argument");
  *out = device->info;
  return mps_ok(err);
}

mps_status mps_device_live_objects_get(const mps_device* device, mps_live_objects* out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_device_live_objects_get: NULL argument");
  /* atomics are only read here; C11 atomic_load needs a non-const pointer */
  load_live((mps_device*)device, out, memory_order_relaxed);
  return mps_ok(err);
}

mps_status mps_device_require_idle(mps_device* device, mps_error* err) {
  mps_live_objects live;
  load_live(device, &live, memory_order_acquire);
  if (live.buffers || live.streams || live.events || live.libraries || live.pipelines || live.command_buffers ||
      live.programs) {
    return mps_fail(err, MPS_ERR_BUSY,
                    "device still has live objects: %lld buffers (%lld bytes), %lld streams, %lld events, "
                    "%lld libraries, %lld pipelines, %lld command buffers, %lld programs",
                    (long long)live.buffers, (long long)live.buffer_bytes, (long long)live.streams,
                    (long long)live.events, (long long)live.libraries, (long long)live.pipelines,
                    (long long)live.command_buffers, (long long)live.programs);
  }
  return MPS_OK;
}
