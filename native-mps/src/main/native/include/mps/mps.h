/*
 * mps-actors native C ABI.
 *
 * One implementation per backend (cpu, cuda, metal) sits behind this header; the JNI layer is the only
 * caller from the JVM. Rules every function follows:
 *  - it returns an mps_status and, on failure, fills the caller's mps_error with the backend's message
 *    (errors live in caller storage, so the library keeps no mutable globals and stays reentrant);
 *  - it never waits for device work: commit enqueues and returns, completion arrives by callback;
 *  - each object names the single owner that may mutate it (an actor in the runtime, a thread in tests).
 *    Objects that several owners may *read* concurrently say which fields are atomic.
 *
 * Lifetime: objects are reference counted. A command buffer retains every buffer, event, pipeline and
 * stream it references, so an owner may release its reference while work is still pending: the memory
 * goes away after the last command that uses it completes (the Metal rule), never under it.
 */
#ifndef MPS_MPS_H
#define MPS_MPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MPS_API __declspec(dllexport)
#else
#define MPS_API __attribute__((visibility("default")))
#endif

typedef enum mps_status {
  MPS_OK = 0,
  MPS_ERR_INVALID_ARGUMENT = 1, /* a null, negative, oversized or mismatched argument */
  MPS_ERR_OUT_OF_MEMORY = 2,    /* the device (or host) could not provide the memory */
  MPS_ERR_UNSUPPORTED = 3,      /* the backend does not offer this (e.g. host pointer of device memory) */
  MPS_ERR_NOT_FOUND = 4,        /* unknown backend, kernel or function name */
  MPS_ERR_BUSY = 5,             /* the object still has live dependants (e.g. closing a device with streams) */
  MPS_ERR_KERNEL_FAILED = 6,    /* a kernel failed while executing (reported through completion) */
  MPS_ERR_COMPILE_FAILED = 7,   /* library source did not compile; message holds the compiler log */
  MPS_ERR_BACKEND = 8,          /* the backend API itself failed (driver error, thread creation, ...) */
  MPS_ERR_STATE = 9             /* the call is not valid in the object's current state */
} mps_status;

#define MPS_ERROR_MESSAGE_CAPACITY 512

/* Caller-owned error slot: the library writes here instead of into a thread-local or global. */
typedef struct mps_error {
  mps_status status;
  char message[MPS_ERROR_MESSAGE_CAPACITY];
} mps_error;

MPS_API const char* mps_status_name(mps_status status);

/* ---------------------------------------------------------------------------------------------
 * Device. Owner: the runtime guardian (DeviceRuntime). Read-only after open except the live-object
 * counters, which are atomics updated by whichever owner creates or frees an object.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_device mps_device;

typedef struct mps_device_options {
  const char* backend;   /* "cpu", "cuda" or "metal"; NULL means "cpu" */
  int32_t ordinal;       /* which device of that backend, 0 for the first */
  int32_t blas_threads;  /* threads one GEMM may use on one stream (cpu); <= 0 means 1: streams give the parallelism */
  /* GEMM arithmetic on tensor cores (cuda): MPS_MATH_FP32 exact fp32, MPS_MATH_TF32, MPS_MATH_FP16 or
   * MPS_MATH_BF16 (fp32 storage, inputs rounded to that format inside the GEMM, fp32 accumulation).
   * The cpu backend always computes in fp32 and accepts only MPS_MATH_FP32. */
  int32_t math_mode;
  /* cpu: how many devices the host's cores are split into (<= 0 means 1). Device i of n gets its share of the
   * cores as compute units and 1/n of the memory, so a runtime with one owner set per device can be tested on
   * one machine. Other backends ignore it: their devices are the GPUs the driver reports. */
  int32_t cpu_devices;
} mps_device_options;

enum { MPS_MATH_FP32 = 0, MPS_MATH_TF32 = 1, MPS_MATH_FP16 = 2, MPS_MATH_BF16 = 3 };

typedef struct mps_device_info {
  char backend[16];
  char name[128];
  uint64_t memory_bytes;      /* memory the device can address (host RAM for cpu) */
  uint64_t max_buffer_bytes;  /* the largest single buffer mps_buffer_alloc accepts */
  int32_t compute_units;      /* cores (cpu) or multiprocessors (gpu) */
  int32_t host_visible;       /* 1 when buffers have a host pointer (cpu, Apple unified memory) */
} mps_device_info;

/* Objects alive on a device; a clean shutdown brings every counter back to zero. */
typedef struct mps_live_objects {
  int64_t buffers;
  int64_t buffer_bytes;
  int64_t streams;
  int64_t events;
  int64_t libraries;
  int64_t pipelines;
  int64_t command_buffers;
  int64_t programs;
} mps_live_objects;

/* How many devices of options->backend this host offers: cuda asks cudaGetDeviceCount, metal counts
 * MTLCopyAllDevices, cpu reports options->cpu_devices (1 when <= 0). Ordinals 0 .. *out - 1 open. A library that
 * does not provide the backend fails with MPS_ERR_NOT_FOUND, like mps_device_open. */
MPS_API mps_status mps_device_count(const mps_device_options* options, int32_t* out, mps_error* err);
MPS_API mps_status mps_device_open(const mps_device_options* options, mps_device** out, mps_error* err);
MPS_API mps_status mps_device_info_get(const mps_device* device, mps_device_info* out, mps_error* err);
MPS_API mps_status mps_device_live_objects_get(const mps_device* device, mps_live_objects* out, mps_error* err);
/* Fails with MPS_ERR_BUSY (and frees nothing) while any object of the device is alive. */
MPS_API mps_status mps_device_close(mps_device* device, mps_error* err);

/* ---------------------------------------------------------------------------------------------
 * Buffers. Owner: AllocatorActor (or the StreamActor whose arena holds it). Contents are written by
 * the stream that executes commands on it; the host pointer is for the owner's uploads/downloads
 * ordered by timeline points.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_buffer mps_buffer;

MPS_API mps_status mps_buffer_alloc(mps_device* device, uint64_t bytes, mps_buffer** out, mps_error* err);
MPS_API mps_status mps_buffer_size(const mps_buffer* buffer, uint64_t* out, mps_error* err);
/* MPS_ERR_UNSUPPORTED on backends whose memory is not host visible. */
MPS_API mps_status mps_buffer_host_pointer(mps_buffer* buffer, void** out, mps_error* err);
/* Immediate host transfers outside every stream's order, for data no pending command uses (weights at
 * load, a batch's inputs before its commit, outputs after its point completed). cpu: a memcpy. cuda: a
 * synchronous copy on the legacy default stream, which the backend's non-blocking streams never join, so it
 * waits for its own transfer only, not for any kernel. Ordered transfers are stream commands (upload). */
MPS_API mps_status mps_buffer_write(mps_buffer* buffer, uint64_t offset, const void* src, uint64_t bytes, mps_error* err);
MPS_API mps_status mps_buffer_read(const mps_buffer* buffer, uint64_t offset, void* dst, uint64_t bytes, mps_error* err);
/* Drops the owner's reference; memory is freed after the last pending command using it completes. */
MPS_API mps_status mps_buffer_release(mps_buffer* buffer, mps_error* err);

/* ---------------------------------------------------------------------------------------------
 * Libraries and pipelines. Owner: one KernelLibrary shard actor per cache key. Immutable once built,
 * so any stream may execute a pipeline concurrently (kernels are pure functions of their arguments).
 * On cpu the "source" lists built-in kernels by name, separated by whitespace or commas
 * ("gemm layernorm softmax"), or "*" for all of them; cuda compiles CUDA C with NVRTC and metal
 * compiles Metal Shading Language.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_library mps_library;
typedef struct mps_pipeline mps_pipeline;

MPS_API mps_status mps_library_compile(mps_device* device, const char* source, const char* options,
                                       mps_library** out, mps_error* err);
MPS_API mps_status mps_library_release(mps_library* library, mps_error* err);
MPS_API mps_status mps_pipeline_create(mps_library* library, const char* function, mps_pipeline** out,
                                       mps_error* err);
MPS_API mps_status mps_pipeline_arg_count(const mps_pipeline* pipeline, uint32_t* out, mps_error* err);
MPS_API mps_status mps_pipeline_release(mps_pipeline* pipeline, mps_error* err);

/* ---------------------------------------------------------------------------------------------
 * Kernel arguments: a positional list; each kernel documents its list (cpu/kernels.h).
 * ------------------------------------------------------------------------------------------- */
typedef enum mps_arg_kind {
  MPS_ARG_NONE = 0,   /* an absent optional buffer */
  MPS_ARG_BUFFER = 1, /* buffer + byte offset */
  MPS_ARG_INT = 2,
  MPS_ARG_FLOAT = 3
} mps_arg_kind;

typedef struct mps_arg {
  int32_t kind;        /* mps_arg_kind */
  mps_buffer* buffer;  /* MPS_ARG_BUFFER */
  uint64_t offset;     /* MPS_ARG_BUFFER: bytes from the buffer's start */
  int64_t i;           /* MPS_ARG_INT */
  double f;            /* MPS_ARG_FLOAT */
} mps_arg;

#define MPS_MAX_KERNEL_ARGS 32

/* ---------------------------------------------------------------------------------------------
 * Events. Owner: EventPoolActor. Recording is a command on a stream; query/elapsed read atomics
 * written by that stream's executor, so they never wait.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_event mps_event;

MPS_API mps_status mps_event_create(mps_device* device, mps_event** out, mps_error* err);
/* *complete = 1 when the latest record has executed; MPS_ERR_STATE if never recorded. */
MPS_API mps_status mps_event_query(const mps_event* event, int32_t* complete, mps_error* err);
/* Milliseconds between two completed records; MPS_ERR_STATE if either is pending or unrecorded. */
MPS_API mps_status mps_event_elapsed_ms(const mps_event* start, const mps_event* end, double* out, mps_error* err);
MPS_API mps_status mps_event_release(mps_event* event, mps_error* err);
/* Another reference for a second holder (e.g. an event handed to a stream's owner for one record):
 * each holder releases its own, so no holder can free the event under another (seed hazard 2). */
MPS_API mps_status mps_event_retain(mps_event* event, mps_error* err);

/* ---------------------------------------------------------------------------------------------
 * Streams and timeline points. Owner: one StreamActor per stream; it alone encodes and commits.
 * The stream's executor (a worker thread on cpu, the GPU elsewhere) runs committed command buffers in
 * order. Point p names "everything committed up to and including the p-th commit"; points start at 1.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_stream mps_stream;

typedef struct mps_stream_callbacks {
  void* user;
  /* Called once on each native thread that will deliver completions, before the first (JNI attaches here). */
  void (*on_thread_start)(void* user);
  /* Called in point order, once per commit. status != MPS_OK carries the first failure's message
   * (NULL when MPS_OK). started_ns/finished_ns bound the buffer's execution on the executor, from the
   * start of its first kernel or copy to the end of its last (cpu: kernel-level timestamps, so a buffer
   * of one kernel reports that kernel's execution; a buffer of waits and records only reports the moment
   * it was reached, twice), on the host's monotonic clock that System.nanoTime reads (CLOCK_MONOTONIC nanoseconds on Linux,
   * CLOCK_UPTIME_RAW on macOS), device timestamps mapped to it. */
  void (*on_complete)(void* user, uint64_t point, mps_status status, const char* message,
                      uint64_t started_ns, uint64_t finished_ns);
  /* The last call for this stream: no callback follows, the user pointer may be freed (JNI detaches). */
  void (*on_thread_stop)(void* user);
} mps_stream_callbacks;

MPS_API mps_status mps_stream_create(mps_device* device, const mps_stream_callbacks* callbacks,
                                     mps_stream** out, mps_error* err);
/* Appends to the stream's open command buffer (opening one if none). Arguments are validated here,
 * so a bad argument is an error of this call, never a crash on the executor. */
MPS_API mps_status mps_stream_encode_kernel(mps_stream* stream, const mps_pipeline* pipeline,
                                            const mps_arg* args, uint32_t nargs, mps_error* err);
/* The executor of `stream` waits until `other` reaches `point`; point must already be committed on
 * `other` (so waits cannot form a cycle). */
MPS_API mps_status mps_stream_encode_wait(mps_stream* stream, mps_stream* other, uint64_t point, mps_error* err);
MPS_API mps_status mps_stream_encode_event_record(mps_stream* stream, mps_event* event, mps_error* err);
MPS_API mps_status mps_stream_encode_copy(mps_stream* stream, mps_buffer* src, uint64_t src_offset,
                                          mps_buffer* dst, uint64_t dst_offset, uint64_t bytes, mps_error* err);
/* Host memory must stay valid until the command's point completes (the JNI layer keeps it reachable). */
MPS_API mps_status mps_stream_encode_upload(mps_stream* stream, const void* host_src, mps_buffer* dst,
                                            uint64_t dst_offset, uint64_t bytes, mps_error* err);
MPS_API mps_status mps_stream_encode_download(mps_stream* stream, mps_buffer* src, uint64_t src_offset,
                                              void* host_dst, uint64_t bytes, mps_error* err);
/* Closes the open command buffer (an empty one is a pure timeline marker), assigns it the next point
 * and hands it to the executor. Returns at once. */
MPS_API mps_status mps_stream_commit(mps_stream* stream, uint64_t* point_out, mps_error* err);
MPS_API uint64_t mps_stream_committed_point(const mps_stream* stream);
MPS_API uint64_t mps_stream_completed_point(const mps_stream* stream);
/* Encoded but not yet committed commands, 0 when no command buffer is open. */
MPS_API uint32_t mps_stream_open_commands(const mps_stream* stream);
/* Drops the open command buffer's commands after the first `keep` (the owner undoes a submission that
 * failed half-way, so a request is encoded whole or not at all). */
MPS_API mps_status mps_stream_truncate_open(mps_stream* stream, uint32_t keep, mps_error* err);
/* Drops the owner's reference without waiting: uncommitted commands are discarded, committed ones still
 * execute and report completion, then on_thread_stop is called and the stream frees itself. */
MPS_API mps_status mps_stream_release(mps_stream* stream, mps_error* err);
/* A reference to the stream's timeline for parties other than the owner: keeps committed/completed
 * readable and lets other streams encode waits on it even after the owner released the stream.
 * It does not keep the executor running; drop it with mps_stream_timeline_release. */
MPS_API mps_status mps_stream_timeline_retain(mps_stream* stream, mps_error* err);
MPS_API mps_status mps_stream_timeline_release(mps_stream* stream, mps_error* err);

/* ---------------------------------------------------------------------------------------------
 * Programs: a fixed list of kernel invocations, so that one request is one encode call instead of one
 * per kernel. Buffer arguments name *slots* (an index into a binding given at encode time, plus a byte
 * offset) instead of buffers; each encode binds its own buffers to the slots (its activations, its
 * inputs, shared weights).
 * Owner: the builder (e.g. the model actor) while it adds kernels; after mps_program_seal the program is
 * immutable and any number of stream owners may encode it at once, each with its own binding. Encoding an
 * unsealed program is allowed, but never while the builder adds to it. The owner releases the program
 * once no encode of it is in progress; commands already encoded do not reference the program (they
 * retain the pipelines and buffers they use), so pending work is unaffected by the release.
 * ------------------------------------------------------------------------------------------- */
typedef struct mps_program mps_program;

/* mps_arg with a slot in place of the buffer. */
typedef struct mps_program_arg {
  int32_t kind;    /* mps_arg_kind */
  uint32_t slot;   /* MPS_ARG_BUFFER: index into the encode's binding, < the program's slot_count */
  uint64_t offset; /* MPS_ARG_BUFFER: bytes from the bound buffer's start */
  int64_t i;       /* MPS_ARG_INT */
  double f;        /* MPS_ARG_FLOAT */
} mps_program_arg;

MPS_API mps_status mps_program_create(mps_device* device, uint32_t slot_count, mps_program** out, mps_error* err);
/* Appends one kernel invocation (the program retains the pipeline). Checked here: the pipeline's
 * device, the argument count and every argument's kind against the kernel's list, slot < slot_count.
 * Sizes, strides and bounds depend on the bound buffers and are checked at each encode. */
MPS_API mps_status mps_program_add_kernel(mps_program* program, const mps_pipeline* pipeline,
                                          const mps_program_arg* args, uint32_t nargs, mps_error* err);
/* Ends building: later adds fail with MPS_ERR_STATE. Idempotent. */
MPS_API mps_status mps_program_seal(mps_program* program, mps_error* err);
MPS_API mps_status mps_program_kernel_count(const mps_program* program, uint32_t* out, mps_error* err);
MPS_API mps_status mps_program_slot_count(const mps_program* program, uint32_t* out, mps_error* err);
/* Appends the program's kernels to the stream's open command buffer with slots[s] bound to slot s
 * (slot_count must equal the program's; every slot must be bound). Each invocation is resolved and
 * validated as mps_stream_encode_kernel would; on any failure nothing is appended (the open command
 * buffer keeps exactly the commands it had) and the message names the invocation's index and kernel,
 * the argument, and the slots of its buffer arguments. Reads the program only, so several stream owners
 * may encode one program at once. */
MPS_API mps_status mps_stream_encode_program(mps_stream* stream, const mps_program* program,
                                             mps_buffer* const* slots, uint32_t slot_count, mps_error* err);
MPS_API mps_status mps_program_release(mps_program* program, mps_error* err);

#ifdef __cplusplus
}
#endif
#endif /* MPS_MPS_H */
