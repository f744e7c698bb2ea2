/*
 * Streams of the metal backend: an MTLCommandQueue per mps_stream, driven by two threads of the stream's
 * own, never by its owner. Same split as the cuda backend (cuda/stream.c), with Metal's objects in CUDA's
 * places:
 *
 *  owner (StreamActor) --commit--> launch thread --commit--> Metal queue --completed handler--+
 *                                                                                            |
 *                                          JVM <--on_complete-- completion thread <--signal--+
 *
 * The owner records commands and hands each committed command buffer over (a pointer swap under the queue
 * lock), exactly as on cpu and cuda; recording instead of encoding at once is what lets the owner truncate an
 * open buffer. The launch thread turns one commit into one or more MTLCommandBuffers ("segments", below),
 * encodes its kernels (consecutive dispatches share one compute encoder), copies and cross-stream waits,
 * signals the stream's MTLSharedEvent with the commit's point at the end, and commits to Metal. Metal calls
 * each segment's completed handler on a thread of its own; the handler only counts down and wakes the
 * completion thread, which delivers commits strictly in point order from this one thread: it reads GPU times
 * and errors, finishes downloads, settles recorded events, frees the buffer (dropping its references) and
 * calls back. So on_thread_start and on_thread_stop bracket every callback of the stream on one thread, no
 * caller of the C ABI ever waits for the GPU, and nothing on any runtime path calls waitUntilCompleted.
 * The launch thread can block only inside Metal, when the queue has MPS_METAL_IN_FLIGHT uncompleted command
 * buffers (Metal's back-pressure; the owner keeps committing meanwhile).
 *
 * Timelines: point p of a stream is "its shared event reached p". Another stream waits with
 * encodeWaitForEvent(event, p) after its launch thread saw p launched (the point is committed, so this always
 * ends; the GPU then never waits on a signal that was not yet submitted). A command buffer that fails on the
 * GPU stops short of its signal, so the completion thread raises the event to p itself when the GPU did not
 * (ensure_signaled): a failed point still releases its waiters, as on cpu and cuda.
 *
 * Segments: an event record that follows work in the same commit ends the segment, so its timestamp is that
 * segment's GPUEndTime (the time the work before it finished); a record before any work of a segment takes
 * the segment's GPUStartTime. Commits without event records are one MTLCommandBuffer.
 */
#import <Metal/Metal.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checks.h"
#include "metal/launch.h"

/* Uncompleted command buffers (segments) one stream's queue may hold; Metal blocks the launch thread beyond. */
#define MPS_METAL_IN_FLIGHT 256u

typedef enum command_kind { CMD_KERNEL, CMD_WAIT, CMD_EVENT, CMD_COPY, CMD_UPLOAD, CMD_DOWNLOAD } command_kind;

typedef struct command {
  command_kind kind;
  struct command* next;
  /* CMD_KERNEL: the validated arguments; buffers[i] (retained) and offsets[i] bind buffer argument i */
  const mps_pipeline* pipeline;
  uint32_t nargs;
  cpu_arg args[MPS_MAX_KERNEL_ARGS];
  mps_buffer* buffers[MPS_MAX_KERNEL_ARGS];
  uint64_t offsets[MPS_MAX_KERNEL_ARGS];
  /* CMD_WAIT */
  mps_stream* other;
  uint64_t wait_point;
  /* CMD_EVENT: where the launch thread placed the record, read at completion for its timestamp */
  mps_event* event;
  int event_done;
  int32_t segment; /* index into the commit's segments; -1 when it could not be placed */
  int at_segment_start;
  /* CMD_COPY: src -> dst; CMD_UPLOAD: host_src -> dst; CMD_DOWNLOAD: src -> host_dst (buffers retained) */
  mps_buffer* src;
  uint64_t src_offset;
  mps_buffer* dst;
  uint64_t dst_offset;
  const void* host_src;
  void* host_dst;
  uint64_t bytes;
  void* staging; /* id<MTLBuffer>: an upload's copy of the host bytes, a download's landing place */
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
  void** segments; /* id<MTLCommandBuffer> each (own references), in commit order */
  uint32_t nsegments;
  uint32_t segment_capacity;
  void* failure; /* id<MTLBuffer>: the embedding failure slot, NULL when the commit has no embedding */
  /* Segments not yet completed, plus one guard the launch thread drops after its last commit; whoever brings
   * it to zero sets `finished` (under the stream's done_lock) and wakes the completion thread. */
  atomic_uint pending;
  int finished;
} command_buffer;

struct mps_stream {
  /* owner + launch thread + completion thread + timeline holders + pending wait commands naming it */
  atomic_int refs;
  mps_device* device;
  mps_stream_callbacks callbacks;

  /* Metal objects. The queue is used by the launch thread and dropped by the completion thread when it
   * finishes (every command buffer has completed by then). The timeline goes with the last reference:
   * other streams encode waits on it. */
  void* queue;    /* id<MTLCommandQueue> */
  void* timeline; /* id<MTLSharedEvent> */

  mps_metal_gemm_cache gemm_cache; /* launch thread only */
  uint64_t last_finished_ns;       /* completion thread only */

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

  /* launch thread -> completion thread, and Metal's completed handlers -> completion thread */
  pthread_mutex_t done_lock;
  pthread_cond_t done_ready;
  command_buffer* done_head;
  command_buffer* done_tail;
  int launcher_finished;

  /* launched/completed progress: waiters on other streams sleep here */
  pthread_mutex_t timeline_lock;
  pthread_cond_t timeline_advanced;
};

static void stream_retain(mps_stream* s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

static void stream_unref(mps_stream* s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  mps_device* device = s->device;
  mps_metal_drop(s->queue); /* NULL unless stream creation failed half-way */
  mps_metal_drop(s->timeline);
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
  for (uint32_t i = 0; i < c->nargs; i++) {
    if (c->buffers[i]) mps_backend_buffer_unref(c->buffers[i]);
  }
  if (c->src) mps_backend_buffer_unref(c->src);
  if (c->dst) mps_backend_buffer_unref(c->dst);
  if (c->pipeline) mps_backend_pipeline_unref(c->pipeline);
  if (c->event) {
    settle_event(c);
    mps_backend_event_unref(c->event);
  }
  if (c->other) stream_unref(c->other);
  mps_metal_drop(c->staging);
  free(c);
}

static void command_buffer_free(mps_device* device, command_buffer* cb) {
  command* c = cb->head;
  while (c) {
    command* next = c->next;
    command_free(c);
    c = next;
  }
  for (uint32_t i = 0; i < cb->nsegments; i++) mps_metal_drop(cb->segments[i]);
  free(cb->segments);
  mps_metal_drop(cb->failure);
  free(cb);
  atomic_fetch_sub_explicit(&device->live_command_buffers, 1, memory_order_release);
}

static void advance(mps_stream* s, atomic_uint_fast64_t* which, uint64_t point) {
  pthread_mutex_lock(&s->timeline_lock);
  atomic_store_explicit(which, point, memory_order_release);
  pthread_cond_broadcast(&s->timeline_advanced);
  pthread_mutex_unlock(&s->timeline_lock);
}

/* One segment (or the launch thread's guard) of `cb` is done. Runs on Metal's handler threads: it touches
 * neither cb nor s after the unlock, since the completion thread may free both from then on. */
static void segment_done(mps_stream* s, command_buffer* cb) {
  if (atomic_fetch_sub_explicit(&cb->pending, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_lock(&s->done_lock);
  cb->finished = 1;
  pthread_cond_broadcast(&s->done_ready);
  pthread_mutex_unlock(&s->done_lock);
}

/* ---- launch thread ------------------------------------------------------------------------------- */

/* One commit being turned into Metal command buffers. */
typedef struct launch_state {
  mps_stream* s;
  command_buffer* cb;
  mps_metal_encoding enc; /* the open segment's command buffer and encoder */
  int segment_open;
  int segment_has_work; /* anything but event records since the segment opened */
  int split_pending;    /* an event record ended the segment's timing: the next work opens a new segment */
  mps_status status;    /* the first failure; later kernels and copies are skipped, waits and events are not */
} launch_state;

static void launch_fail(launch_state* st, mps_status status, const char* what, const char* detail) {
  if (st->status != MPS_OK) return;
  st->status = mps_fail(&st->cb->launch_error, status, "metal: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static int add_segment_slot(command_buffer* cb) {
  if (cb->nsegments < cb->segment_capacity) return 1;
  uint32_t capacity = cb->segment_capacity ? cb->segment_capacity * 2 : 2;
  void** grown = realloc(cb->segments, capacity * sizeof *grown);
  if (!grown) return 0;
  cb->segments = grown;
  cb->segment_capacity = capacity;
  return 1;
}

static int open_segment(launch_state* st) {
  mps_stream* s = st->s;
  command_buffer* cb = st->cb;
  if (!add_segment_slot(cb)) {
    launch_fail(st, MPS_ERR_OUT_OF_MEMORY, "out of host memory for a command buffer", NULL);
    return 0;
  }
  /* Retained references (the default): MPS encodes objects of its own that only the command buffer keeps
   * alive. Our own buffers, pipelines and events are held by the commands until completion regardless. */
  id<MTLCommandBuffer> segment = [MPS_METAL(id<MTLCommandQueue>, s->queue) commandBuffer];
  if (!segment) {
    launch_fail(st, MPS_ERR_BACKEND, "the queue returned no command buffer", NULL);
    return 0;
  }
  segment.label = [NSString stringWithFormat:@"mps-actors point %llu segment %u", (unsigned long long)cb->point,
                                             cb->nsegments];
  atomic_fetch_add_explicit(&cb->pending, 1, memory_order_relaxed);
  [segment addCompletedHandler:^(id<MTLCommandBuffer> done) {
    (void)done;
    segment_done(s, cb);
  }];
  cb->segments[cb->nsegments++] = mps_metal_own(segment);
  st->enc = (mps_metal_encoding){cb->segments[cb->nsegments - 1], NULL, MPS_METAL_NO_ENCODER, 0};
  st->segment_open = 1;
  st->segment_has_work = 0;
  return 1;
}

/* Ends the open segment and hands it to Metal; the last one of a commit signals the stream's timeline. */
static void close_segment(launch_state* st, int last) {
  mps_metal_end_encoding(&st->enc);
  id<MTLCommandBuffer> segment = MPS_METAL(id<MTLCommandBuffer>, st->enc.command_buffer);
  if (last) [segment encodeSignalEvent:MPS_METAL(id<MTLSharedEvent>, st->s->timeline) value:st->cb->point];
  [segment commit];
  st->segment_open = 0;
  st->enc.command_buffer = NULL;
}

/* Makes sure a segment is open for the next command; `work` is anything but an event record. */
static int begin(launch_state* st, int work) {
  if (st->split_pending && work) {
    close_segment(st, 0);
    st->split_pending = 0;
  }
  if (!st->segment_open && !open_segment(st)) return 0;
  if (work) st->segment_has_work = 1;
  return 1;
}

static id<MTLCommandBuffer> segment_buffer(const launch_state* st) {
  return MPS_METAL(id<MTLCommandBuffer>, st->enc.command_buffer);
}

static void launch_kernel(launch_state* st, const mps_metal_launch_context* ctx, command* c) {
  if (st->status != MPS_OK || !begin(st, 1)) return;
  mps_metal_call call = {c->pipeline, c->args, c->buffers, c->offsets};
  mps_error err = {MPS_OK, {0}};
  mps_status s = mps_metal_launch(&call, ctx, &err);
  if (s != MPS_OK && st->status == MPS_OK) {
    st->status = s;
    st->cb->launch_error = err;
  }
}

/* The other stream's point is committed; once its launch thread has submitted it, the GPU may wait on it. */
static void launch_wait(launch_state* st, command* c) {
  mps_stream* other = c->other;
  pthread_mutex_lock(&other->timeline_lock);
  while (atomic_load_explicit(&other->launched, memory_order_acquire) < c->wait_point) {
    pthread_cond_wait(&other->timeline_advanced, &other->timeline_lock);
  }
  int reached = atomic_load_explicit(&other->completed, memory_order_acquire) >= c->wait_point;
  pthread_mutex_unlock(&other->timeline_lock);
  if (reached || !begin(st, 1)) return;
  mps_metal_end_encoding(&st->enc); /* a wait goes between passes, not inside one */
  [segment_buffer(st) encodeWaitForEvent:MPS_METAL(id<MTLSharedEvent>, other->timeline) value:c->wait_point];
}

static void launch_event(launch_state* st, command* c) {
  c->segment = -1;
  if (!begin(st, 0)) return;
  c->segment = (int32_t)st->cb->nsegments - 1;
  c->at_segment_start = !st->segment_has_work;
  if (st->segment_has_work) st->split_pending = 1;
}

static void launch_copy(launch_state* st, command* c) {
  if (st->status != MPS_OK || c->bytes == 0 || !begin(st, 1)) return;
  id<MTLDevice> device = MPS_METAL(id<MTLDevice>, st->s->device->mtl_device);
  id<MTLBuffer> src = c->src ? MPS_METAL(id<MTLBuffer>, c->src->mtl_buffer) : nil;
  id<MTLBuffer> dst = c->dst ? MPS_METAL(id<MTLBuffer>, c->dst->mtl_buffer) : nil;
  uint64_t src_offset = c->src_offset, dst_offset = c->dst_offset;
  if (c->kind == CMD_UPLOAD) {
    /* The host bytes are copied here, into memory the GPU orders like any buffer; the caller's memory is
     * never touched by the GPU. */
    src = [device newBufferWithBytes:c->host_src length:(NSUInteger)c->bytes options:MTLResourceStorageModeShared];
    src_offset = 0;
    c->staging = mps_metal_own(src);
  } else if (c->kind == CMD_DOWNLOAD) {
    dst = [device newBufferWithLength:(NSUInteger)c->bytes options:MTLResourceStorageModeShared];
    dst_offset = 0;
    c->staging = mps_metal_own(dst); /* copied to host_dst by the completion thread */
  }
  if (!src || !dst) {
    launch_fail(st, MPS_ERR_OUT_OF_MEMORY, "no memory for a transfer's staging buffer", NULL);
    return;
  }
  mps_metal_encode_copy(&st->enc, st->s->device, src, src_offset, dst, dst_offset, c->bytes);
}

static int has_embedding(const command_buffer* cb) {
  for (const command* c = cb->head; c; c = c->next) {
    if (c->kind == CMD_KERNEL && c->pipeline->kernel_index == MPS_METAL_K_EMBEDDING) return 1;
  }
  return 0;
}

/* The commit's embedding failure slot: a flag word, then {position low, position high, id} from byte 16. */
static void make_failure_slot(launch_state* st) {
  id<MTLDevice> device = MPS_METAL(id<MTLDevice>, st->s->device->mtl_device);
  id<MTLBuffer> slot = [device newBufferWithLength:32 options:MTLResourceStorageModeShared];
  if (!slot) {
    launch_fail(st, MPS_ERR_OUT_OF_MEMORY, "no memory for the embedding failure slot", NULL);
    return;
  }
  memset(slot.contents, 0, 32);
  st->cb->failure = mps_metal_own(slot);
}

/* Encodes and commits one command buffer. After the first failure, kernels and copies are skipped, but waits,
 * event records and the timeline signal still go to the GPU (later points rely on the ordering, event
 * holders on completion). */
static void launch_buffer(mps_stream* s, command_buffer* cb) {
  atomic_init(&cb->pending, 1); /* the launch thread's guard, dropped by launcher_main */
  launch_state st = {s, cb, {NULL, NULL, MPS_METAL_NO_ENCODER, 0}, 0, 0, 0, MPS_OK};
  if (has_embedding(cb)) make_failure_slot(&st);
  mps_metal_launch_context ctx = {s->device, &st.enc, &s->gemm_cache, cb->failure};
  for (command* c = cb->head; c; c = c->next) {
    switch (c->kind) {
      case CMD_KERNEL: launch_kernel(&st, &ctx, c); break;
      case CMD_WAIT: launch_wait(&st, c); break;
      case CMD_EVENT: launch_event(&st, c); break;
      case CMD_COPY:
      case CMD_UPLOAD:
      case CMD_DOWNLOAD: launch_copy(&st, c); break;
    }
    if (st.enc.failed) {
      launch_fail(&st, MPS_ERR_BACKEND, "Metal returned no command encoder", NULL);
      st.enc.failed = 0;
    }
  }
  if (st.segment_open || open_segment(&st)) close_segment(&st, 1);
  cb->launch_status = st.status;
}

static command_buffer* next_committed(mps_stream* s) {
  pthread_mutex_lock(&s->queue_lock);
  while (!s->queue_head && !s->released) pthread_cond_wait(&s->queue_ready, &s->queue_lock);
  command_buffer* cb = s->queue_head;
  if (cb) {
    s->queue_head = cb->next;
    if (!s->queue_head) s->queue_tail = NULL;
    cb->next = NULL;
  }
  pthread_mutex_unlock(&s->queue_lock);
  return cb;
}

static void* launcher_main(void* arg) {
  mps_stream* s = arg;
  command_buffer* cb;
  while ((cb = next_committed(s)) != NULL) {
    @autoreleasepool {
      launch_buffer(s, cb);
    }
    uint64_t point = cb->point;
    pthread_mutex_lock(&s->done_lock);
    if (s->done_tail) s->done_tail->next = cb;
    else s->done_head = cb;
    s->done_tail = cb;
    pthread_mutex_unlock(&s->done_lock);
    advance(s, &s->launched, point);
    segment_done(s, cb); /* drops the guard: cb belongs to the completion thread from here on */
  }
  mps_metal_gemm_cache_clear(&s->gemm_cache);
  pthread_mutex_lock(&s->done_lock);
  s->launcher_finished = 1;
  pthread_cond_broadcast(&s->done_ready);
  pthread_mutex_unlock(&s->done_lock);
  stream_unref(s);
  return NULL;
}

/* ---- completion thread --------------------------------------------------------------------------- */

/* GPU timestamps are host seconds on the mach_absolute_time clock, the clock of mps_metal_now_ns. */
static uint64_t gpu_time_ns(CFTimeInterval seconds) { return seconds > 0 ? (uint64_t)llround(seconds * 1e9) : 0; }

static id<MTLCommandBuffer> segment_at(const command_buffer* cb, uint32_t i) {
  return MPS_METAL(id<MTLCommandBuffer>, cb->segments[i]);
}

/* started/finished of the commit: its first segment's GPU start and last segment's GPU end. Metal may start
 * a command buffer before the previous one of the queue has finished when they share no resource; the
 * stream reports its commits one after another (as its executor runs them on cpu), so a start inside the
 * previous commit is moved to that commit's end. Host time at completion where the GPU gave none. */
static void commit_times(mps_stream* s, const command_buffer* cb, uint64_t* started, uint64_t* finished) {
  uint64_t now = mps_metal_now_ns();
  uint64_t t0 = cb->nsegments ? gpu_time_ns(segment_at(cb, 0).GPUStartTime) : 0;
  uint64_t t1 = cb->nsegments ? gpu_time_ns(segment_at(cb, cb->nsegments - 1).GPUEndTime) : 0;
  *finished = t1 ? t1 : now;
  if (*finished < s->last_finished_ns) *finished = s->last_finished_ns;
  *started = t0 ? t0 : *finished;
  if (*started < s->last_finished_ns) *started = s->last_finished_ns;
  if (*started > *finished) *started = *finished;
  s->last_finished_ns = *finished;
}

/* Metal's MTLCommandBufferError codes, by value (names differ between SDKs). Faults of a kernel's execution
 * are KERNEL_FAILED; the rest are the backend's. */
static mps_status execution_failure(NSInteger code, const char** name) {
  switch (code) {
    case 2: *name = "Timeout"; return MPS_ERR_KERNEL_FAILED;
    case 3: *name = "PageFault"; return MPS_ERR_KERNEL_FAILED;
    case 9: *name = "InvalidResource"; return MPS_ERR_KERNEL_FAILED;
    case 12: *name = "StackOverflow"; return MPS_ERR_KERNEL_FAILED;
    case 1: *name = "Internal"; return MPS_ERR_BACKEND;
    case 4: *name = "AccessRevoked"; return MPS_ERR_BACKEND;
    case 7: *name = "NotPermitted"; return MPS_ERR_BACKEND;
    case 8: *name = "OutOfMemory"; return MPS_ERR_BACKEND;
    case 10: *name = "Memoryless"; return MPS_ERR_BACKEND;
    case 11: *name = "DeviceRemoved"; return MPS_ERR_BACKEND;
    default: *name = "unknown"; return MPS_ERR_BACKEND;
  }
}

static mps_status execution_status(const command_buffer* cb, mps_error* err) {
  for (uint32_t i = 0; i < cb->nsegments; i++) {
    id<MTLCommandBuffer> segment = segment_at(cb, i);
    if (segment.status != MTLCommandBufferStatusError) continue;
    NSError* error = segment.error;
    const char* name = NULL;
    mps_status status = execution_failure(error.code, &name);
    return mps_fail(err, status, "metal: point %llu failed on the GPU (MTLCommandBufferError %s, code %ld): %s",
                    (unsigned long long)cb->point, name, (long)error.code, mps_metal_error_text(error));
  }
  return MPS_OK;
}

/* Each record's time: its segment's GPU start or end (see "Segments" above), the commit's end where the GPU
 * gave none. Kept inside the commit's [started, finished] and never before the previous record, so records
 * of one stream are in stream order even where Metal overlapped consecutive command buffers. */
static void settle_events(const command_buffer* cb, uint64_t started, uint64_t finished) {
  uint64_t previous = started;
  for (command* c = cb->head; c; c = c->next) {
    if (c->kind != CMD_EVENT) continue;
    uint64_t t = 0;
    if (c->segment >= 0 && (uint32_t)c->segment < cb->nsegments) {
      id<MTLCommandBuffer> segment = segment_at(cb, (uint32_t)c->segment);
      t = gpu_time_ns(c->at_segment_start ? segment.GPUStartTime : segment.GPUEndTime);
    }
    if (!t || t > finished) t = finished;
    if (t < previous) t = previous;
    previous = t;
    /* Stored before the release decrement of settle_event, so a reader that sees pending == 0 sees it. */
    atomic_store_explicit(&c->event->timestamp_ns, t, memory_order_relaxed);
    settle_event(c);
  }
}

static void finish_downloads(const command_buffer* cb) {
  for (const command* c = cb->head; c; c = c->next) {
    if (c->kind == CMD_DOWNLOAD && c->staging) {
      memcpy(c->host_dst, MPS_METAL(id<MTLBuffer>, c->staging).contents, (size_t)c->bytes);
    }
  }
}

static mps_status embedding_status(const command_buffer* cb, mps_error* err) {
  if (!cb->failure) return MPS_OK;
  const volatile uint32_t* slot = MPS_METAL(id<MTLBuffer>, cb->failure).contents;
  if (!slot[0]) return MPS_OK;
  uint64_t position = (uint64_t)slot[4] | (uint64_t)slot[5] << 32;
  return mps_fail(err, MPS_ERR_KERNEL_FAILED, "embedding: id %d at position %llu is outside [0, vocab)",
                  (int)(int32_t)slot[6], (unsigned long long)position);
}

static mps_status complete_buffer(mps_stream* s, command_buffer* cb, uint64_t* started, uint64_t* finished,
                                  mps_error* err) {
  commit_times(s, cb, started, finished);
  settle_events(cb, *started, *finished);
  if (cb->launch_status != MPS_OK) {
    *err = cb->launch_error;
    return cb->launch_status;
  }
  mps_status status = execution_status(cb, err);
  if (status != MPS_OK) return status;
  finish_downloads(cb);
  return embedding_status(cb, err);
}

/* Point p's signal is the last command of its last segment; a segment that failed on the GPU (or was never
 * created) stops short of it. Raise the event from the CPU so waiters on p are released. The GPU may have
 * signalled a later point meanwhile, which this can lower until that point's own completion raises it
 * again here: waiters are delayed at worst, never stranded. */
static void ensure_signaled(mps_stream* s, uint64_t point) {
  id<MTLSharedEvent> timeline = MPS_METAL(id<MTLSharedEvent>, s->timeline);
  if (timeline.signaledValue < point) timeline.signaledValue = point;
}

static command_buffer* next_finished(mps_stream* s) {
  pthread_mutex_lock(&s->done_lock);
  for (;;) {
    if (s->done_head && s->done_head->finished) break;
    if (!s->done_head && s->launcher_finished) break;
    pthread_cond_wait(&s->done_ready, &s->done_lock);
  }
  command_buffer* cb = s->done_head;
  if (cb) {
    s->done_head = cb->next;
    if (!s->done_head) s->done_tail = NULL;
    cb->next = NULL;
  }
  pthread_mutex_unlock(&s->done_lock);
  return cb;
}

static void* completer_main(void* arg) {
  mps_stream* s = arg;
  if (s->callbacks.on_thread_start) s->callbacks.on_thread_start(s->callbacks.user);
  command_buffer* cb;
  while ((cb = next_finished(s)) != NULL) {
    mps_error err = {MPS_OK, {0}};
    uint64_t started = 0, finished = 0, point = cb->point;
    mps_status status;
    @autoreleasepool {
      status = complete_buffer(s, cb, &started, &finished, &err);
      ensure_signaled(s, point);
      command_buffer_free(s->device, cb);
    }
    advance(s, &s->completed, point);
    if (s->callbacks.on_complete) {
      s->callbacks.on_complete(s->callbacks.user, point, status, status == MPS_OK ? NULL : err.message, started,
                               finished);
    }
  }
  /* The launch thread has finished and every launched buffer has completed: nothing uses the queue. */
  mps_metal_drop(s->queue);
  s->queue = NULL;
  if (s->callbacks.on_thread_stop) s->callbacks.on_thread_stop(s->callbacks.user);
  stream_unref(s);
  return NULL;
}

/* ---- owner API ----------------------------------------------------------------------------------- */

static mps_status create_metal_resources(mps_stream* s, mps_error* err) {
  @autoreleasepool {
    id<MTLDevice> device = MPS_METAL(id<MTLDevice>, s->device->mtl_device);
    id<MTLCommandQueue> queue = [device newCommandQueueWithMaxCommandBufferCount:MPS_METAL_IN_FLIGHT];
    if (!queue) return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: Metal returned no command queue");
    queue.label = @"mps-actors stream";
    id<MTLSharedEvent> timeline = [device newSharedEvent];
    if (!timeline) return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: Metal returned no shared event");
    timeline.label = @"mps-actors stream timeline";
    s->queue = mps_metal_own(queue);
    s->timeline = mps_metal_own(timeline);
    return MPS_OK;
  }
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
  mps_status status = create_metal_resources(s, err);
  if (status != MPS_OK) {
    stream_unref(s); /* drops what was created */
    return status;
  }
  /* Both threads detached: release never joins (waits for) work still in flight. */
  pthread_t launcher, completer;
  atomic_store(&s->refs, 3); /* owner + launch thread + completion thread */
  int rc = pthread_create(&completer, NULL, completer_main, s);
  if (rc != 0) {
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
    pthread_cond_broadcast(&s->done_ready);
    pthread_mutex_unlock(&s->done_lock);
    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed); /* the launch thread's */
    stream_unref(s);
    return mps_fail(err, MPS_ERR_BACKEND, "mps_stream_create: could not start the launch thread (error %d)", rc);
  }
  pthread_detach(launcher);
  *out = s;
  return mps_ok(err);
}

/* Event records start unassigned to a segment (the launch thread assigns it). */
#define MPS_INIT_EVENT_COMMAND(c) ((c)->segment = -1)
#include "common/stream_owner.inc"

static mps_status resolve_args(const cpu_kernel* k, const mps_device* device, const mps_arg* args, uint32_t nargs,
                               command* c, mps_error* err) {
  mps_status s = mps_resolve_kernel_args(k, device, args, nargs, c->args, err);
  if (s != MPS_OK) return s;
  for (uint32_t i = 0; i < nargs; i++) {
    c->offsets[i] = args[i].kind == MPS_ARG_BUFFER ? args[i].offset : 0; /* the MTLBuffer binding offset */
  }
  return MPS_OK;
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
  /* Resolved into a scratch command first, so a rejected call leaves the open buffer untouched. */
  command scratch;
  memset(&scratch, 0, sizeof scratch);
  mps_status s = resolve_args(pipeline->kernel, stream->device, args, nargs, &scratch, err);
  if (s != MPS_OK) return s;
  command* c = NULL;
  s = open_command(stream, CMD_KERNEL, &c, err);
  if (s != MPS_OK) return s;
  c->nargs = nargs;
  memcpy(c->args, scratch.args, nargs * sizeof *c->args);
  memcpy(c->offsets, scratch.offsets, nargs * sizeof *c->offsets);
  mps_backend_pipeline_retain(pipeline);
  c->pipeline = pipeline;
  for (uint32_t i = 0; i < nargs; i++) {
    if (args[i].kind != MPS_ARG_BUFFER) continue;
    mps_backend_buffer_retain(args[i].buffer);
    c->buffers[i] = args[i].buffer;
  }
  append_command(stream, c);
  return mps_ok(err);
}

/* One transfer command; `src`/`dst` are retained when given (a host side has none). */
static mps_status encode_transfer(mps_stream* stream, mps_transfer_direction direction, mps_buffer* src,
                                  uint64_t src_offset, const void* host_src, mps_buffer* dst, uint64_t dst_offset,
                                  void* host_dst, uint64_t bytes, mps_error* err) {
  command_kind kind = direction == MPS_TRANSFER_UPLOAD     ? CMD_UPLOAD
                      : direction == MPS_TRANSFER_DOWNLOAD ? CMD_DOWNLOAD
                                                           : CMD_COPY;
  command* c = NULL;
  mps_status s = open_command(stream, kind, &c, err);
  if (s != MPS_OK) return s;
  if (src) mps_backend_buffer_retain(src);
  if (dst) mps_backend_buffer_retain(dst);
  c->src = src;
  c->src_offset = src_offset;
  c->host_src = host_src;
  c->dst = dst;
  c->dst_offset = dst_offset;
  c->host_dst = host_dst;
  c->bytes = bytes;
  append_command(stream, c);
  return mps_ok(err);
}

