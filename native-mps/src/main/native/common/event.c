/* Events, shared by the backends: a count of records in flight plus the executing stream's timestamp, all atomics. */
#include <stdlib.h>

#include "backend_objects.h" /* the backend's objects: cpu/ or cuda/ is on the include path */

mps_status mps_event_create(mps_device* device, mps_event** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_event_create: NULL argument");
  mps_event* e = calloc(1, sizeof *e);
  if (!e) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_event_create: out of host memory");
  atomic_init(&e->refs, 1);
  e->device = device;
  atomic_fetch_add_explicit(&device->live_events, 1, memory_order_relaxed);
  *out = e;
  return mps_ok(err);
}

mps_status mps_event_query(const mps_event* event, int32_t* complete, mps_error* err) {
  if (!event || !complete) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_event_query: NULL argument");
  mps_event* e = (mps_event*)event;
  if (atomic_load_explicit(&e->records, memory_order_relaxed) == 0) {
    return mps_fail(err, MPS_ERR_STATE, "event was never recorded");
  }
  *complete = atomic_load_explicit(&e->pending, memory_order_acquire) == 0;
  return mps_ok(err);
}

static mps_status completed_timestamp(const mps_event* event, const char* which, uint64_t* out, mps_error* err) {
  mps_event* e = (mps_event*)event;
  if (atomic_load_explicit(&e->records, memory_order_relaxed) == 0) {
    return mps_fail(err, MPS_ERR_STATE, "%s event was never recorded", which);
  }
  if (atomic_load_explicit(&e->pending, memory_order_acquire) != 0) {
    return mps_fail(err, MPS_ERR_STATE, "%s event's latest record has not completed yet", which);
  }
  *out = atomic_load_explicit(&e->timestamp_ns, memory_order_relaxed);
  return MPS_OK;
}

mps_status mps_event_elapsed_ms(const mps_event* start, const mps_event* end, double* out, mps_error* err) {
  if (!start || !end || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_event_elapsed_ms: NULL argument");
  uint64_t t0 = 0, t1 = 0;
  mps_status s = completed_timestamp(start, "start", &t0, err);
  if (s != MPS_OK) return s;
  s = completed_timestamp(end, "end", &t1, err);
  if (s != MPS_OK) return s;
  *out = ((double)t1 - (double)t0) / 1e6;
  return mps_ok(err);
}

void mps_backend_event_retain(mps_event* event) {
  atomic_fetch_add_explicit(&event->refs, 1, memory_order_relaxed);
}

void mps_backend_event_unref(mps_event* event) {
  if (atomic_fetch_sub_explicit(&event->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = event->device;
  free(event);
  atomic_fetch_sub_explicit(&device->live_events, 1, memory_order_release);
}

mps_status mps_event_release(mps_event* event, mps_error* err) {
  if (!event) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_event_release: event is NULL");
  mps_backend_event_unref(event);
  return mps_ok(err);
}

mps_status mps_event_retain(mps_event* event, mps_error* err) {
  if (!event) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_event_retain: event is NULL");
  mps_backend_event_retain(event);
  return mps_ok(err);
}
