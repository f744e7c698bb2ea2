/*
 * Programs of the cpu backend: kernel invocations recorded once with slot-relative buffer arguments,
 * then encoded any number of times with a slot -> buffer binding (contract: mps.h).
 *
 * Encoding goes through mps_stream_encode_kernel for each invocation, so a program call is resolved,
 * validated and retained exactly like a hand-encoded kernel (one set of checks, no second copy that
 * could drift). All-or-nothing comes from mps_stream_truncate_open: on the first failure the commands
 * this encode appended are dropped again, so the open command buffer is as it was before the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernel_names.h"

#include "backend_objects.h" /* the backend's objects: cpu/ or cuda/ is on the include path */

typedef struct program_call {
  const mps_pipeline* pipeline; /* retained by the program */
  uint32_t nargs;
  mps_program_arg args[MPS_MAX_KERNEL_ARGS];
} program_call;

/* Owner: the builder until sealed; afterwards immutable and read by every encoding stream owner. */
struct mps_program {
  mps_device* device;
  uint32_t slot_count;
  int sealed;
  uint32_t count;
  uint32_t capacity;
  program_call* calls;
};

mps_status mps_program_create(mps_device* device, uint32_t slot_count, mps_program** out, mps_error* err) {
  if (!device || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_create: NULL argument");
  *out = NULL;
  mps_program* p = calloc(1, sizeof *p);
  if (!p) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_program_create: out of host memory");
  p->device = device;
  p->slot_count = slot_count;
  atomic_fetch_add_explicit(&device->live_programs, 1, memory_order_relaxed);
  *out = p;
  return mps_ok(err);
}

mps_status mps_program_add_kernel(mps_program* program, const mps_pipeline* pipeline, const mps_program_arg* args,
                                  uint32_t nargs, mps_error* err) {
  if (!program || !pipeline || (nargs && !args)) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_add_kernel: NULL argument");
  }
  const cpu_kernel* k = pipeline->kernel;
  uint32_t index = program->count;
  if (program->sealed) {
    return mps_fail(err, MPS_ERR_STATE, "mps_program_add_kernel: the program is sealed (%u kernels); build a new one",
                    program->count);
  }
  if (pipeline->library->device != program->device) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "program kernel %u (%s): pipeline belongs to another device", index,
                    k->name);
  }
  if (nargs != k->nargs) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "program kernel %u (%s): expects %u arguments, got %u", index,
                    k->name, k->nargs, nargs);
  }
  for (uint32_t i = 0; i < nargs; i++) {
    const mps_program_arg* a = &args[i];
    int32_t expected = k->arg_kinds[i];
    int optional = (k->optional_buffers >> i) & 1u;
    if (a->kind != expected && !(optional && a->kind == MPS_ARG_NONE)) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "program kernel %u (%s): argument %u (%s) must be %s%s, got %s",
                      index, k->name, i, k->arg_names[i], mps_arg_kind_name(expected), optional ? " or none" : "",
                      mps_arg_kind_name(a->kind));
    }
    if (a->kind == MPS_ARG_BUFFER && a->slot >= program->slot_count) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                      "program kernel %u (%s): argument %u (%s) names slot %u but the program has %u slots", index,
                      k->name, i, k->arg_names[i], a->slot, program->slot_count);
    }
  }
  if (program->count == program->capacity) {
    uint32_t capacity = program->capacity ? program->capacity * 2 : 16;
    program_call* grown = realloc(program->calls, (size_t)capacity * sizeof *grown);
    if (!grown) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_program_add_kernel: out of host memory");
    program->calls = grown;
    program->capacity = capacity;
  }
  program_call* c = &program->calls[program->count];
  memset(c, 0, sizeof *c);
  c->nargs = nargs;
  for (uint32_t i = 0; i < nargs; i++) {
    c->args[i] = args[i];
    /* Only the fields of the argument's kind mean anything; clear the rest so encode copies no junk. */
    if (args[i].kind != MPS_ARG_BUFFER) {
      c->args[i].slot = 0;
      c->args[i].offset = 0;
    }
  }
  mps_backend_pipeline_retain(pipeline);
  c->pipeline = pipeline;
  program->count++;
  return mps_ok(err);
}

mps_status mps_program_seal(mps_program* program, mps_error* err) {
  if (!program) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_seal: program is NULL");
  program->sealed = 1;
  return mps_ok(err);
}

mps_status mps_program_kernel_count(const mps_program* program, uint32_t* out, mps_error* err) {
  if (!program || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_kernel_count: NULL argument");
  *out = program->count;
  return mps_ok(err);
}

mps_status mps_program_slot_count(const mps_program* program, uint32_t* out, mps_error* err) {
  if (!program || !out) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_slot_count: NULL argument");
  *out = program->slot_count;
  return mps_ok(err);
}

/* "A=slot 3+0, C=slot 5+4096": where the failed invocation's buffer arguments point, for the message. */
static void describe_bindings(const program_call* c, char* out, size_t capacity) {
  size_t used = 0;
  out[0] = '\0';
  for (uint32_t i = 0; i < c->nargs && used < capacity; i++) {
    const mps_program_arg* a = &c->args[i];
    if (a->kind != MPS_ARG_BUFFER) continue;
    int n = snprintf(out + used, capacity - used, "%s%s=slot %u+%llu", used ? ", " : "",
                     c->pipeline->kernel->arg_names[i], a->slot, (unsigned long long)a->offset);
    if (n < 0) break;
    used += (size_t)n;
  }
}

mps_status mps_stream_encode_program(mps_stream* stream, const mps_program* program, mps_buffer* const* slots,
                                     uint32_t slot_count, mps_error* err) {
  if (!stream || !program || (slot_count && !slots)) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_encode_program: NULL argument");
  }
  if (slot_count != program->slot_count) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_encode_program: %u slots bound, the program has %u",
                    slot_count, program->slot_count);
  }
  for (uint32_t s = 0; s < slot_count; s++) {
    if (!slots[s]) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_stream_encode_program: slot %u is not bound", s);
    if (slots[s]->device != program->device) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                      "mps_stream_encode_program: the buffer bound to slot %u belongs to another device", s);
    }
  }
  uint32_t keep = mps_stream_open_commands(stream);
  for (uint32_t n = 0; n < program->count; n++) {
    const program_call* c = &program->calls[n];
    mps_arg args[MPS_MAX_KERNEL_ARGS];
    for (uint32_t i = 0; i < c->nargs; i++) {
      const mps_program_arg* a = &c->args[i];
      args[i].kind = a->kind;
      args[i].buffer = a->kind == MPS_ARG_BUFFER ? slots[a->slot] : NULL;
      args[i].offset = a->offset;
      args[i].i = a->i;
      args[i].f = a->f;
    }
    mps_error inner = {MPS_OK, {0}};
    mps_status s = mps_stream_encode_kernel(stream, c->pipeline, args, c->nargs, &inner);
    if (s != MPS_OK) {
      /* Cannot fail: keep <= the open count, which only grew since it was read. */
      mps_stream_truncate_open(stream, keep, NULL);
      char bindings[MPS_ERROR_MESSAGE_CAPACITY / 2];
      describe_bindings(c, bindings, sizeof bindings);
      return mps_fail(err, s, "program kernel %u of %u (%s): %s [%s]", n, program->count, c->pipeline->kernel->name,
                      inner.message, bindings);
    }
  }
  return mps_ok(err);
}

mps_status mps_program_release(mps_program* program, mps_error* err) {
  if (!program) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "mps_program_release: program is NULL");
  mps_device* device = program->device;
  for (uint32_t n = 0; n < program->count; n++) mps_backend_pipeline_unref(program->calls[n].pipeline);
  free(program->calls);
  free(program);
  atomic_fetch_sub_explicit(&device->live_programs, 1, memory_order_release);
  return mps_ok(err);
}
