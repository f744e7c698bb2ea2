/*
 * Streams of the cuda backend: a non-blocking CUDA stream per mps_stream, driven by two threads of the
 * stream's own, never by its owner.
 *
 *  owner (StreamActor) --commit--> launch thread --launched--> completion thread --on_complete--> JVM
 *
 * The owner builds command buffers and hands them over (a pointer swap under the queue lock), exactly as
 * on cpu. The launch thread enqueues each buffer's kernels, copies and cross-stream waits on the CUDA
 * stream, bracketed by two events of the buffer's ring slot. The completion thread waits for the end
 * event (a blocking-sync event: it sleeps, it does not spin), reads the commit's failure slot, settles
 * recorded events, frees the buffer (dropping its references) and calls back. So no caller of the C ABI
 * ever waits for the device; only these two threads do, and neither holds a lock while it waits.
 *
 * Cross-stream waits: the waiting stream's launch thread waits until the other stream has *launched* the
 * point (it is committed, so this always ends), then, under the other stream's timeline lock, enqueues
 * cudaStreamWaitEvent on that point's end event unless the point has already completed. A ring slot is
 * reused only once its point completed, and `completed` advances under that lock, so the event waited
 * on is the point's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "cuda/launch.h"

/* Commits one stream may have launched and not completed; the launch thread waits beyond this. */
#define MPS_CUDA_RING 256u

typedef enum command_kind { CMD_KERNEL, CMD_WAIT, CMD_EVENT, CMD_COPY, CMD_UPLOAD, CMD_DOWNLOAD } command_kind;

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
  /* CMD_EVENT: `marker` is recorded on the CUDA stream at launch; its time is read at completion */
  mps_event* event;
  int event_done;
  cudaEvent_t marker;
  /* CMD_COPY, CMD_UPLOAD, CMD_DOWNLOAD */
  void* copy_dst;
  const void* copy_src;
  uint64_t copy_bytes;
  uint32_t nretained;
  mps_buffer* retained[MPS_MAX_RETAINED];
} command;

typedef struct command_buffer {
  command* head;
  command* tail;
  uint32_t count;
  uint64_t point;
  struct command_buffer* next;
  /* Written by the launch thread before it hands the buffer on; read by the completion thread. */
  mps_status launch_status;
  mps_error launch_error;
} command_buffer;

struct mps_stream {
  /* owner + launch thread + completion thread + timeline holders + pending wait commands naming it */
  atomic_int refs;
  mps_device* device;
  mps_stream_callbacks callbacks;

  /* Created at stream create; used by the launch thread only; destroyed by the completion thread when
   * it finishes (after the launch thread has). The ring events outlive it: other streams may still
   * enqueue waits on them, so they go with the last reference. */
  cudaStream_t cuda_stream;
  cublasHandle_t blas;
  long long* failures_host;   /* MPS_CUDA_RING slots of {flag, position, id}, host-mapped */
  long long* failures_device; /* the same memory, as the kernels address it */
  void* half_scratch;         /* 16-bit GEMM operands (fp16/bf16 math), stream-ordered on cuda_stream */
  size_t half_scratch_bytes;
  void* pointer_scratch;      /* operand pointers of two-level batched GEMMs, stream-ordered too */
  size_t pointer_scratch_bytes;
  cudaEvent_t start_events[MPS_CUDA_RING];
  cudaEvent_t end_events[MPS_CUDA_RING];

  /* Owner-only. */
  command_buffer* open;
  uint64_t last_committed;

  atomic_uint_fast64_t committed; /* owner (release) at commit */
  atomic_uint_fast64_t launched;  /* launch thread, under timeline_lock */
  atomic_uint_fast64_t completed; /* completion thread, under timeline_lock */

  /* owner -> launch thread */
  pthread_mutex_t queue_lock;
  pthread_cond_t queue_ready;
  command_buffer* queue_head;
  command_buffer* queue_tail;
  int released;

  /* launch thread -> completion thread */
  pthread_mutex_t done_lock;
  pthread_cond_t done_ready;
  command_buffer* done_head;
  command_buffer* done_tail;
  int launcher_finished;

  /* launched/completed progress: waiters on other streams and the ring window sleep here */
  pthread_mutex_t timeline_lock;
  pthread_cond_t timeline_advanced;
};

static void stream_retain(mps_stream* s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

static void stream_unref(mps_stream* s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = s->device;
  cudaSetDevice(device->ordinal);
  for (unsigned i = 0; i < MPS_CUDA_RING; i++) {
    if (s->start_events[i]) cudaEventDestroy(s->start_events[i]);
    if (s->end_events[i]) cudaEventDestroy(s->end_events[i]);
  }
  pthread_mutex_destroy(&s->queue_lock);
  pthread_cond_destroy(&s->queue_ready);
  pthread_mutex_destroy(&s->done_lock);
  pthread_cond_destroy(&s->done_ready);
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
    settle_event(c);
    mps_backend_event_unref(c->event);
  }
  if (c->marker) cudaEventDestroy(c->marker);
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

static void advance(mps_stream* s, atomic_uint_fast64_t* which, uint64_t point) {
  pthread_mutex_lock(&s->timeline_lock);
  atomic_store_explicit(which, point, memory_order_release);
  pthread_cond_broadcast(&s->timeline_advanced);
  pthread_mutex_unlock(&s->timeline_lock);
}

/* ---- launch thread ------------------------------------------------------------------------- */

static mps_status enqueue_wait(mps_stream* s, mps_stream* other, uint64_t point, mps_error* err) {
  pthread_mutex_lock(&other->timeline_lock);
  while (atomic_load_explicit(&other->launched, memory_order_acquire) < point) {
    pthread_cond_wait(&other->timeline_advanced, &other->timeline_lock);
  }
  cudaError_t e = cudaSuccess;
  if (atomic_load_explicit(&other->completed, memory_order_acquire) < point) {
    e = cudaStreamWaitEvent(s->cuda_stream, other->end_events[point % MPS_CUDA_RING], 0);
  }
  pthread_mutex_unlock(&other->timeline_lock);
  return e == cudaSuccess ? MPS_OK : mps_cuda_fail(err, e, "cross-stream wait (cudaStreamWaitEvent)");
}

/* Enqueues one buffer. After the first failure, kernels and copies are skipped, but waits and event
 * records are still enqueued (later buffers rely on the ordering, and event holders on completion). */
static void launch_buffer(mps_stream* s, command_buffer* cb) {
  mps_error* err = &cb->launch_error;
  mps_status status = MPS_OK;
  unsigned slot = (unsigned)(cb->point % MPS_CUDA_RING);
  long long* failure = s->failures_host + 3 * slot;
  failure[0] = failure[1] = failure[2] = 0; /* the slot's previous point has completed: nothing writes it */
  mps_cuda_launch_context ctx = {s->device, s->cuda_stream, s->blas, s->device->math_mode,
                                 s->failures_device + 3 * slot, &s->half_scratch, &s->half_scratch_bytes,
                                 &s->pointer_scratch, &s->pointer_scratch_bytes};
  cudaError_t e = cudaEventRecord(s->start_events[slot], s->cuda_stream);
  if (e != cudaSuccess) status = mps_cuda_fail(err, e, "recording the commit's start event");
  for (command* c = cb->head; c; c = c->next) {
    switch (c->kind) {
      case CMD_KERNEL:
        if (status == MPS_OK) status = mps_cuda_launch(c->pipeline, c->args, &ctx, err);
        break;
      case CMD_COPY:
      case CMD_UPLOAD:
      case CMD_DOWNLOAD:
        if (status == MPS_OK && c->copy_bytes) {
          enum cudaMemcpyKind kind = c->kind == CMD_COPY     ? cudaMemcpyDeviceToDevice
                                     : c->kind == CMD_UPLOAD ? cudaMemcpyHostToDevice
                                                             : cudaMemcpyDeviceToHost;
          /* Pageable host memory: an upload is staged and returns; a download returns once copied, so
           * this thread (not the owner) waits for the stream to reach it. */
          e = cudaMemcpyAsync(c->copy_dst, c->copy_src, (size_t)c->copy_bytes, kind, s->cuda_stream);
          if (e != cudaSuccess) status = mps_cuda_fail(err, e, "cudaMemcpyAsync");
        }
        break;
      case CMD_WAIT: {
        mps_error wait_err = {MPS_OK, {0}};
        mps_status w = enqueue_wait(s, c->other, c->wait_point, &wait_err);
        if (w != MPS_OK && status == MPS_OK) {
          status = w;
          *err = wait_err;
        }
        break;
      }
      case CMD_EVENT:
        e = cudaEventCreate(&c->marker);
        if (e == cudaSuccess) e = cudaEventRecord(c->marker, s->cuda_stream);
        if (e != cudaSuccess && status == MPS_OK) status = mps_cuda_fail(err, e, "recording an event");
        break;
    }
  }
  e = cudaEventRecord(s->end_events[slot], s->cuda_stream);
  if (e != cudaSuccess && status == MPS_OK) status = mps_cuda_fail(err, e, "recording the commit's end event");
  cb->launch_status = status;
}

static void* launcher_main(void* arg) {
  mps_stream* s = arg;
  cudaSetDevice(s->device->ordinal);
  for (;;) {
    pthread_mutex_lock(&s->queue_lock);
    while (!s->queue_head && !s->released) pthread_cond_wait(&s->queue_ready, &s->queue_lock);
    command_buffer* cb = s->queue_head;
    if (cb) {
      s->queue_head = cb->next;
      if (!s->queue_head) s->queue_tail = NULL;
      cb->next = NULL;
    }
    pthread_mutex_unlock(&s->queue_lock);
    if (!cb) break;

    /* Ring window: slot point % RING is free once point - RING has completed. */
    if (cb->point > MPS_CUDA_RING) {
      uint64_t needed = cb->point - MPS_CUDA_RING;
      pthread_mutex_lock(&s->timeline_lock);
      while (atomic_load_explicit(&s->completed, memory_order_acquire) < needed) {
        pthread_cond_wait(&s->timeline_advanced, &s->timeline_lock);
      }
      pthread_mutex_unlock(&s->timeline_lock);
    }
    launch_buffer(s, cb);
    uint64_t point = cb->point;
    pthread_mutex_lock(&s->done_lock);
    if (s->done_tail) s->done_tail->next = cb;
    else s->done_head = cb;
    s->done_tail = cb;
    pthread_cond_signal(&s->done_ready);
    pthread_mutex_unlock(&s->done_lock);
    advance(s, &s->launched, point); /* cb belongs to the completion thread now: use the copy */
  }
  pthread_mutex_lock(&s->done_lock);
  s->launcher_finished = 1;
  pthread_cond_signal(&s->done_ready);
  pthread_mutex_unlock(&s->done_lock);
  stream_unref(s);
  return NULL;
}

/* ---- completion thread --------------------------------------------------------------------- */

static mps_status complete_buffer(mps_stream* s, command_buffer* cb, uint64_t* started, uint64_t* finished,
                                  mps_error* err) {
  unsigned slot = (unsigned)(cb->point % MPS_CUDA_RING);
  cudaError_t e = cudaEventSynchronize(s->end_events[slot]);
  *finished = mps_cuda_now_ns();
  *started = *finished;
  float ms = 0.0f;
  if (e == cudaSuccess && cudaEventElapsedTime(&ms, s->start_events[slot], s->end_events[slot]) == cudaSuccess) {
    uint64_t ns = (uint64_t)((double)ms * 1e6);
    *started = ns < *finished ? *finished - ns : 0;
  }
  for (command* c = cb->head; c; c = c->next) {
    if (c->kind != CMD_EVENT) continue;
    float before_end = 0.0f;
    if (e == cudaSuccess && c->marker && cudaEventElapsedTime(&before_end, c->marker, s->end_events[slot]) == cudaSuccess) {
      uint64_t ns = (uint64_t)((double)before_end * 1e6);
      atomic_store_explicit(&c->event->timestamp_ns, ns < *finished ? *finished - ns : 0, memory_order_relaxed);
    } else {
      atomic_store_explicit(&c->event->timestamp_ns, *finished, memory_order_relaxed);
    }
    settle_event(c);
  }
  if (cb->launch_status != MPS_OK) {
    *err = cb->launch_error;
    return cb->launch_status;
  }
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "executing the commit");
  volatile long long* failure = s->failures_host + 3 * slot;
  if (failure[0]) {
    return mps_fail(err, MPS_ERR_KERNEL_FAILED, "embedding: id %lld at position %lld is outside [0, vocab)",
                    (long long)failure[2], (long long)failure[1]);
  }
  return MPS_OK;
}

static void* completer_main(void* arg) {
  mps_stream* s = arg;
  cudaSetDevice(s->device->ordinal);
  if (s->callbacks.on_thread_start) s->callbacks.on_thread_start(s->callbacks.user);
  for (;;) {
    pthread_mutex_lock(&s->done_lock);
    while (!s->done_head && !s->launcher_finished) pthread_cond_wait(&s->done_ready, &s->done_lock);
    command_buffer* cb = s->done_head;
    if (cb) {
      s->done_head = cb->next;
      if (!s->done_head) s->done_tail = NULL;
    }
    pthread_mutex_unlock(&s->done_lock);
    if (!cb) break;

    mps_error err = {MPS_OK, {0}};
    uint64_t started = 0, finished = 0;
    mps_status status = complete_buffer(s, cb, &started, &finished, &err);
    uint64_t point = cb->point;
    command_buffer_free(s->device, cb);
    advance(s, &s->completed, point);
    if (s->callbacks.on_complete) {
      s->callbacks.on_complete(s->callbacks.user, point, status, status == MPS_OK ? NULL : err.message, started,
                               finished);
    }
  }
  /* The launch thread has finished and every launched buffer has completed: nothing uses the stream,
   * the BLAS handle or the failure ring any more. cublasDestroy synchronizes the device, which is
   * why it happens here, on this thread, and never on an owner's. */
  if (s->half_scratch) cudaFreeAsync(s->half_scratch, s->cuda_stream);
  if (s->pointer_scratch) cudaFreeAsync(s->pointer_scratch, s->cuda_stream);
  cublasDestroy(s->blas);
  cudaStreamDestroy(s->cuda_stream);
  cudaFreeHost(s->failures_host);
  if (s->callbacks.on_thread_stop) s->callbacks.on_thread_stop(s->callbacks.user);
  stream_unref(s);
  return NULL;
}

/* ---- owner API ----------------------------------------------------------------------------- */

static mps_status create_cuda_resources(mps_stream* s, mps_error* err) {
  cudaError_t e = cudaSetDevice(s->device->ordinal);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s->cuda_stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "mps_stream_create: cudaStreamCreate");
  cublasStatus_t bs = cublasCreate(&s->blas);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(s->blas, s->cuda_stream);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: cuBLAS handle (status %d)", (int)bs);
  }
  e = cudaHostAlloc((void**)&s->failures_host, 3 * MPS_CUDA_RING * sizeof(long long), cudaHostAllocMapped);
  if (e == cudaSuccess) e = cudaHostGetDevicePointer((void**)&s->failures_device, s->failures_host, 0);
  if (e != cudaSuccess) return mps_cuda_fail(err, e, "mps_stream_create: failure ring (cudaHostAlloc)");
  memset(s->failures_host, 0, 3 * MPS_CUDA_RING * sizeof(long long));
  for (unsigned i = 0; i < MPS_CUDA_RING; i++) {
    e = cudaEventCreateWithFlags(&s->start_events[i], cudaEventBlockingSync);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->end_events[i], cudaEventBlockingSync);
    if (e != cudaSuccess) return mps_cuda_fail(err, e, "mps_stream_create: cudaEventCreate");
  }
  return MPS_OK;
}

static void destroy_cuda_resources(mps_stream* s) {
  if (s->blas) cublasDestroy(s->blas);
  if (s->cuda_stream) cudaStreamDestroy(s->cuda_stream);
  if (s->failures_host) cudaFreeHost(s->failures_host);
  s->blas = NULL;
  s->cuda_stream = NULL;
  s->failures_host = NULL;
}

mps_status mps_stream_create(mps_device* device, const mps_stream_callbacks* callbacks, mps_stream** out,
                             mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_create: NULL argument");
  *out = NULL;
  mps_stream* s = calloc(1, sizeof *s);
  if (!s) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_stream_create: out of host memory");
  atomic_init(&s->refs, 1);
  s->device = device;
  if (callbacks) s->callbacks = *callbacks;
  pthread_mutex_init(&s->queue_lock, NULL);
  pthread_cond_init(&s->queue_ready, NULL);
  pthread_mutex_init(&s->done_lock, NULL);
  pthread_cond_init(&s->done_ready, NULL);
  pthread_mutex_init(&s->timeline_lock, NULL);
  pthread_cond_init(&s->timeline_advanced, NULL);
  atomic_fetch_add_explicit(&device->live_streams, 1, memory_order_relaxed);
  mps_status status = create_cuda_resources(s, err);
  if (status != MPS_OK) {
    destroy_cuda_resources(s);
    stream_unref(s);
    return status;
  }
  /* Both threads detached: release never joins (waits for) work still in flight. */
  pthread_t launcher, completer;
  atomic_store(&s->refs, 3); /* owner + launch thread + completion thread */
  int rc = pthread_create(&completer, NULL, completer_main, s);
  if (rc != 0) {
    destroy_cuda_resources(s);
    atomic_store(&s->refs, 1);
    stream_unref(s);
    return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: could not start the completion thread (error %d)", rc);
  }
  pthread_detach(completer);
  rc = pthread_create(&launcher, NULL, launcher_main, s);
  if (rc != 0) {
    /* The completion thread runs: tell it no buffer will come; it cleans up and drops its reference. */
    pthread_mutex_lock(&s->done_lock);
    s->launcher_finished = 1;
    pthread_cond_signal(&s->done_ready);
    pthread_mutex_unlock(&s->done_lock);
    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed); /* the launch thread's */
    stream_unref(s);
    return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: could not start the launch thread (error %d)", rc);
  }
  pthread_detach(launcher);
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
  command* c = NULL;
  mps_status s = open_command(stream, direction == MPS_TRANSFER_UPLOAD     ? CMD_UPLOAD
                                     : direction == MPS_TRANSFER_DOWNLOAD ? CMD_DOWNLOAD
                                                                          : CMD_COPY, &c, err);
  if (s != MPS_OK) return s;
  c->copy_src = src ? (const char*)src->data + src_offset : host_src;
  c->copy_dst = dst ? (char*)dst->data + dst_offset : host_dst;
  c->copy_bytes = bytes;
  if (src) retain_into(c, src);
  if (dst) retain_into(c, dst);
  append_command(stream, c);
  return mps_ok(err);
}

