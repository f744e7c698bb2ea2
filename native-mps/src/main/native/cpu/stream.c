/*
 * Streams of the cpu backend: one executor thread per stream runs committed command buffers in order.
 *
 * Duties of the owner (one StreamActor, the only caller of encode/commit/release): build the open
 * command buffer, assign timeline points, hand buffers over. Duties of the executor thread: execute
 * buffers, advance the `completed` point, wake executors of other streams waiting on this timeline,
 * and call back. The only lock is the hand-over queue's, held for a pointer swap, never while
 * executing; nothing the owner calls waits for work (seed hazards 3, 5 and 7 came from waiting while
 * holding a lock).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "cpu/objects.h"

typedef enum command_kind { CMD_KERNEL, CMD_WAIT, CMD_EVENT, CMD_COPY } command_kind;

#define MPS_MAX_RETAINED MPS_MAX_KERNEL_ARGS

typedef struct command {
  command_kind kind;
  struct command* next;
  /* CMD_KERNEL */
  const mps_pipeline* pipeline;
  uint32_t nargs;
  cpu_arg args[MPS_MAX_KERNEL_ARGS];
  /* CMD_WAIT */
  mps_stream* other;
  uint64_t wait_point;
  /* CMD_EVENT */
  mps_event* event;
  int event_done; /* executed: its pending count was settled */
  /* CMD_COPY (device copy, upload and download all resolve to two host-visible pointers) */
  void* copy_dst;
  const void* copy_src;
  uint64_t copy_bytes;
  /* buffers this command keeps alive until it has executed */
  uint32_t nretained;
  mps_buffer* retained[MPS_MAX_RETAINED];
} command;

typedef struct command_buffer {
  command* head;
  command* tail;
  uint32_t count;
  uint64_t point;
  struct command_buffer* next; /* link in the hand-over queue */
} command_buffer;

struct mps_stream {
  /* owner + executor thread + timeline holders + each pending wait command of another stream naming this one */
  atomic_int refs;
  mps_device* device;
  mps_stream_callbacks callbacks; /* immutable after create */

  /* Owner-only (the StreamActor): never read by the executor. */
  command_buffer* open;
  uint64_t last_committed;

  /* Written by the owner (release) at commit; read by other owners validating waits (acquire). */
  atomic_uint_fast64_t committed;
  /* Written by the executor (release) after a buffer's effects; read by anyone (acquire). */
  atomic_uint_fast64_t completed;

  /* Hand-over queue: owner pushes, executor pops; released says no more buffers will come. */
  pthread_mutex_t queue_lock;
  pthread_cond_t queue_ready;
  command_buffer* queue_head;
  command_buffer* queue_tail;
  int released;

  /* Executors of other streams wait here for `completed` to reach their point. */
  pthread_mutex_t timeline_lock;
  pthread_cond_t timeline_advanced;
};

static void stream_retain(mps_stream* s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

static void stream_unref(mps_stream* s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = s->device;
  pthread_mutex_destroy(&s->queue_lock);
  pthread_cond_destroy(&s->queue_ready);
  pthread_mutex_destroy(&s->timeline_lock);
  pthread_cond_destroy(&s->timeline_advanced);
  free(s);
  atomic_fetch_sub_explicit(&device->live_streams, 1, memory_order_release);
}

static void settle_event(command* c) {
  if (c->event_done) return;
  c->event_done = 1;
  atomic_fetch_sub_explicit(&c->event->pending, 1, memory_order_release);
}

static void command_free(command* c) {
  for (uint32_t i = 0; i < c->nretained; i++) mps_backend_buffer_unref(c->retained[i]);
  if (c->pipeline) mps_backend_pipeline_unref(c->pipeline);
  if (c->event) {
    settle_event(c); /* a record discarded unexecuted must not leave the event pending forever */
    mps_backend_event_unref(c->event);
  }
  if (c->other) stream_unref(c->other);
  free(c);
}

static void command_buffer_free(mps_device* device, command_buffer* cb) {
  command* c = cb->head;
  while (c) {
    command* next = c->next;
    command_free(c);
    c = next;
  }
  free(cb);
  atomic_fetch_sub_explicit(&device->live_command_buffers, 1, memory_order_release);
}

/* ---- executor ------------------------------------------------------------------------------- */

static void wait_for_point(mps_stream* other, uint64_t point) {
  if (atomic_load_explicit(&other->completed, memory_order_acquire) >= point) return;
  pthread_mutex_lock(&other->timeline_lock);
  while (atomic_load_explicit(&other->completed, memory_order_acquire) < point) {
    pthread_cond_wait(&other->timeline_advanced, &other->timeline_lock);
  }
  pthread_mutex_unlock(&other->timeline_lock);
}

/* Times of a buffer's execution as its completion reports them: from the start of its first kernel or
 * copy to the end of its last one (kernel-level timestamps; a buffer of one kernel reports exactly that
 * kernel). A buffer with no kernel or copy reports the time it was reached, twice. */
typedef struct execution_times {
  uint64_t started;
  uint64_t finished;
} execution_times;

static void time_command(execution_times* t, uint64_t started, uint64_t finished) {
  if (t->started == 0) t->started = started;
  t->finished = finished;
}

#ifdef MPS_MUTANTS
#include "mutants/mutants.h"
#endif

/* One kernel, timed from the moment it starts computing to the moment it returns. */
static mps_status execute_kernel(const command* c, execution_times* t, mps_error* err) {
#ifdef MPS_MUTANTS
  mps_mutant_kernel_enter(c->pipeline->kernel->name);
#endif
  uint64_t started = mps_cpu_now_ns();
  mps_status status = c->pipeline->kernel->execute(c->args, err);
  time_command(t, started, mps_cpu_now_ns());
#ifdef MPS_MUTANTS
  mps_mutant_kernel_exit(c->pipeline->kernel->name);
#endif
  return status;
}

/* Runs one buffer. After the first failure, kernels and copies are skipped, but waits still execute
 * (later buffers rely on their ordering) and events still complete (their holders would hang). */
static mps_status execute_buffer(command_buffer* cb, execution_times* t, mps_error* err) {
  mps_status status = MPS_OK;
  for (command* c = cb->head; c; c = c->next) {
    switch (c->kind) {
      case CMD_KERNEL:
        if (status == MPS_OK) status = execute_kernel(c, t, err);
        break;
      case CMD_COPY:
        if (status == MPS_OK) {
          uint64_t started = mps_cpu_now_ns();
          memmove(c->copy_dst, c->copy_src, (size_t)c->copy_bytes);
          time_command(t, started, mps_cpu_now_ns());
        }
        break;
      case CMD_WAIT:
        wait_for_point(c->other, c->wait_point);
        break;
      case CMD_EVENT:
        atomic_store_explicit(&c->event->timestamp_ns, mps_cpu_now_ns(), memory_order_relaxed);
        settle_event(c);
        break;
    }
  }
  if (t->started == 0) {
    t->started = t->finished = mps_cpu_now_ns();
  }
  return status;
}

static void* executor_main(void* arg) {
  mps_stream* s = arg;
  /* Per-thread BLAS width: parallelism comes from streams, and a thread-local setting keeps the
   * library free of a process-wide knob that two devices would fight over. */
  openblas_set_num_threads_local(s->device->blas_threads);
  if (s->callbacks.on_thread_start) s->callbacks.on_thread_start(s->callbacks.user);
  for (;;) {
    pthread_mutex_lock(&s->queue_lock);
    while (!s->queue_head && !s->released) pthread_cond_wait(&s->queue_ready, &s->queue_lock);
    command_buffer* cb = s->queue_head;
    if (cb) {
      s->queue_head = cb->next;
      if (!s->queue_head) s->queue_tail = NULL;
    }
    pthread_mutex_unlock(&s->queue_lock);
    if (!cb) break; /* released and drained */

    mps_error err = {MPS_OK, {0}};
    execution_times times = {0, 0};
    mps_status status = execute_buffer(cb, &times, &err);
    uint64_t point = cb->point;
    command_buffer_free(s->device, cb);

    atomic_store_explicit(&s->completed, point, memory_order_release);
    pthread_mutex_lock(&s->timeline_lock);
    pthread_cond_broadcast(&s->timeline_advanced);
    pthread_mutex_unlock(&s->timeline_lock);
    if (s->callbacks.on_complete) {
      s->callbacks.on_complete(s->callbacks.user, point, status, status == MPS_OK ? NULL : err.message,
                               times.started, times.finished);
    }
  }
  if (s->callbacks.on_thread_stop) s->callbacks.on_thread_stop(s->callbacks.user);
  stream_unref(s);
  return NULL;
}

/* ---- owner API ------------------------------------------------------------------------------ */

mps_status mps_stream_create(mps_device* device, const mps_stream_callbacks* callbacks, mps_stream** out,
                             mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_create: NULL argument");
  *out = NULL;
  mps_stream* s = calloc(1, sizeof *s);
  if (!s) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_stream_create: out of host memory");
  atomic_init(&s->refs, 2); /* owner + executor */
  s->device = device;
  if (callbacks) s->callbacks = *callbacks;
  pthread_mutex_init(&s->queue_lock, NULL);
  pthread_cond_init(&s->queue_ready, NULL);
  pthread_mutex_init(&s->timeline_lock, NULL);
  pthread_cond_init(&s->timeline_advanced, NULL);
  atomic_fetch_add_explicit(&device->live_streams, 1, memory_order_relaxed);
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, executor_main, s);
  if (rc != 0) {
    atomic_store(&s->refs, 1);
    stream_unref(s);
    return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: could not start the executor thread (error %d)", rc);
  }
  /* Detached: release must never join (wait for) an executor that may still run committed work. */
  pthread_detach(thread);
  *out = s;
  return mps_ok(err);
}

#include "common/stream_owner.inc"

static void retain_into(command* c, mps_buffer* b) {
  mps_backend_buffer_retain(b);
  c->retained[c->nretained++] = b;
}

mps_status mps_stream_encode_kernel(mps_stream* stream, const mps_pipeline* pipeline, const mps_arg* args,
                                    uint32_t nargs, mps_error* err) {
  if (!stream || !pipeline || (nargs && !args)) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_encode_kernel: NULL argument");
  }
  if (nargs > MPS_MAX_KERNEL_ARGS) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_encode_kernel: %u arguments, at most %d", nargs,
                    MPS_MAX_KERNEL_ARGS);
  }
  if (pipeline->library->device != stream->device) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: pipeline belongs to another device", pipeline->kernel->name);
  }
  cpu_arg resolved[MPS_MAX_KERNEL_ARGS];
  mps_status s = mps_resolve_kernel_args(pipeline->kernel, stream->device, args, nargs, resolved, err);
  if (s != MPS_OK) return s;
  command* c = NULL;
  s = open_command(stream, CMD_KERNEL, &c, err);
  if (s != MPS_OK) return s;
  c->nargs = nargs;
  memcpy(c->args, resolved, nargs * sizeof *resolved);
  mps_backend_pipeline_retain(pipeline);
  c->pipeline = pipeline;
  for (uint32_t i = 0; i < nargs; i++) {
    if (args[i].kind == MPS_ARG_BUFFER) retain_into(c, args[i].buffer);
  }
  append_command(stream, c);
  return mps_ok(err);
}

/* One transfer, already validated by common/stream_owner.inc; the buffers it names stay alive until it ran. */
static mps_status encode_transfer(mps_stream* stream, mps_transfer_direction direction, mps_buffer* src,
                                  uint64_t src_offset, const void* host_src, mps_buffer* dst, uint64_t dst_offset,
                                  void* host_dst, uint64_t bytes, mps_error* err) {
  (void)direction; /* host memory is the device's memory here: every transfer is a memmove */
  command* c = NULL;
  mps_status s = open_command(stream, CMD_COPY, &c, err);
  if (s != MPS_OK) return s;
  c->copy_src = src ? (const char*)src->data + src_offset : host_src;
  c->copy_dst = dst ? (char*)dst->data + dst_offset : host_dst;
  c->copy_bytes = bytes;
  if (src) retain_into(c, src);
  if (dst) retain_into(c, dst);
  append_command(stream, c);
  return mps_ok(err);
}

