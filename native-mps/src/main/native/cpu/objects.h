/*
 * The cpu backend's objects. Each struct names its owner (the one party that mutates its non-atomic
 * fields) and which fields are shared, and how (atomics with the stated ordering).
 */
#ifndef MPS_CPU_OBJECTS_H
#define MPS_CPU_OBJECTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cpu/error.h"
#include "cpu/kernels.h"
#include "mps/mps.h"

/* Owner: DeviceRuntime. info/blas_threads are immutable after open; the counters are atomics that any
 * owner updates when it creates or frees an object (relaxed: they are statistics and leak checks). */
struct mps_device {
  mps_device_info info;
  int32_t blas_threads;
  atomic_int_fast64_t live_buffers;
  atomic_int_fast64_t live_buffer_bytes;
  atomic_int_fast64_t live_streams;
  atomic_int_fast64_t live_events;
  atomic_int_fast64_t live_libraries;
  atomic_int_fast64_t live_pipelines;
  atomic_int_fast64_t live_command_buffers;
  atomic_int_fast64_t live_programs;
};

/* Owner: AllocatorActor (or a stream's arena). refs counts the owner plus every pending command that
 * uses the buffer, so releasing it while work is in flight defers the free (no use-after-free). */
struct mps_buffer {
  atomic_int refs;
  mps_device* device;
  void* data;
  uint64_t bytes;
};

/* Owner: a KernelLibrary shard. Immutable after compile: pipelines and streams only read it. */
struct mps_library {
  atomic_int refs;
  mps_device* device;
  size_t kernel_count;
  const cpu_kernel** kernels;
};

/* Immutable after create; retained by every pending command that executes it. */
struct mps_pipeline {
  atomic_int refs;
  mps_library* library;
  const cpu_kernel* kernel;
};

/* Owner: EventPoolActor, which has records encoded; the executing streams complete them.
 * An event is complete when every record encoded so far has executed (or was discarded unexecuted):
 * `pending` counts records in flight, so records on several streams, completing in any order, and
 * records dropped with an uncommitted buffer can never leave it incomplete forever. The executor
 * stores timestamp_ns before its release decrement, so a reader that sees pending == 0 (acquire) sees
 * the time of the latest record to execute. */
struct mps_event {
  atomic_int refs;
  mps_device* device;
  atomic_uint_fast64_t records;   /* records ever encoded; 0 = never recorded */
  atomic_int_fast64_t pending;    /* encoded, not yet executed or discarded */
  atomic_uint_fast64_t timestamp_ns;
};

void mps_backend_buffer_retain(mps_buffer* buffer);
void mps_backend_buffer_unref(mps_buffer* buffer);
void mps_backend_pipeline_retain(const mps_pipeline* pipeline);
void mps_backend_pipeline_unref(const mps_pipeline* pipeline);
void mps_backend_event_retain(mps_event* event);
void mps_backend_event_unref(mps_event* event);
uint64_t mps_cpu_now_ns(void);

#endif
