#include "common/kernel_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/error.h"

const char* mps_arg_kind_name(int32_t kind) {
  switch (kind) {
    case MPS_ARG_NONE: return "none";
    case MPS_ARG_BUFFER: return "buffer";
    case MPS_ARG_INT: return "int";
    case MPS_ARG_FLOAT: return "float";
    default: return "unknown";
  }
}

static int is_separator(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ','; }

/* The names of `kernels` (or of the table's kernels that `runs` accepts, when kernels is NULL). */
static void append_names(char* log, size_t capacity, const cpu_kernel* const* kernels, size_t count,
                         mps_kernel_filter runs) {
  size_t used = strlen(log);
  int listed = 0;
  for (size_t i = 0; i < count && used < capacity; i++) {
    const cpu_kernel* k = kernels ? kernels[i] : cpu_kernel_at(i);
    if (!kernels && runs && !runs(k)) continue;
    int n = snprintf(log + used, capacity - used, "%s%s", listed++ ? ", " : "", k->name);
    if (n < 0) break;
    used += (size_t)n;
  }
}

mps_status mps_parse_kernel_names(const char* source, const char* backend, mps_kernel_filter runs,
                                  const cpu_kernel*** chosen_out, size_t* count_out, mps_error* err) {
  size_t total = cpu_kernel_count();
  const cpu_kernel** chosen = calloc(total ? total : 1, sizeof *chosen);
  if (!chosen) return mps_fail(err, MPS_ERR_OUT_OF_MEMORY, "mps_library_compile: out of host memory");
  size_t count = 0;
  const char* p = source;
  while (*p) {
    while (*p && is_separator(*p)) p++;
    const char* start = p;
    while (*p && !is_separator(*p)) p++;
    size_t len = (size_t)(p - start);
    if (len == 0) continue;
    if (len == 1 && start[0] == '*') {
      count = 0;
      for (size_t i = 0; i < total; i++) {
        if (!runs || runs(cpu_kernel_at(i))) chosen[count++] = cpu_kernel_at(i);
      }
      continue;
    }
    const cpu_kernel* found = NULL;
    for (size_t i = 0; i < total; i++) {
      const char* name = cpu_kernel_at(i)->name;
      if (strlen(name) == len && strncmp(name, start, len) == 0) found = cpu_kernel_at(i);
    }
    if (!found || (runs && !runs(found))) {
      char log[MPS_ERROR_MESSAGE_CAPACITY] = {0};
      if (found) {
        snprintf(log, sizeof log, "error: the %s backend has no implementation of kernel '%s'; its kernels are: ",
                 backend, found->name);
      } else {
        snprintf(log, sizeof log, "error: unknown %s kernel '%.*s'; built-in kernels are: ", backend,
                 (int)(len > 64 ? 64 : len), start);
      }
      append_names(log, sizeof log, NULL, total, runs);
      free(chosen);
      return mps_fail(err, MPS_ERR_COMPILE_FAILED, "%s", log);
    }
    int duplicate = 0;
    for (size_t i = 0; i < count; i++) duplicate |= chosen[i] == found;
    if (!duplicate) chosen[count++] = found;
  }
  if (count == 0) {
    free(chosen);
    return mps_fail(err, MPS_ERR_COMPILE_FAILED, "error: library source names no kernel (give names or '*')");
  }
  *chosen_out = chosen;
  *count_out = count;
  return MPS_OK;
}

mps_status mps_find_library_kernel(const cpu_kernel* const* kernels, size_t count, const char* function,
                                   const cpu_kernel** out, mps_error* err) {
  for (size_t i = 0; i < count; i++) {
    if (strcmp(kernels[i]->name, function) == 0) {
      *out = kernels[i];
      return MPS_OK;
    }
  }
  char names[MPS_ERROR_MESSAGE_CAPACITY / 2] = {0};
  append_names(names, sizeof names, kernels, count, NULL);
  return mps_fail(err, MPS_ERR_NOT_FOUND, "function '%.64s' is not in this library (it has: %s)", function, names);
}
