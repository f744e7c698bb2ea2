/* Library "sources" that name built-in kernels, shared by the backends whose kernels are built in (cpu) or
 * compiled from the project's own source (cuda): parsing the list, and finding a function in a library. */
#ifndef MPS_COMMON_KERNEL_NAMES_H
#define MPS_COMMON_KERNEL_NAMES_H

#include <stddef.h>

#include "cpu/kernels.h"
#include "mps/mps.h"

/* Whether a backend runs a kernel of the shared table (cpu: those with an execute function). */
typedef int (*mps_kernel_filter)(const cpu_kernel* kernel);

/* Names separated by whitespace or commas, or "*" for every kernel the backend runs. On success *chosen is a
 * malloc'd array of *count distinct kernels (the caller frees it); an unknown name, one the backend does not
 * run, or an empty list fails with MPS_ERR_COMPILE_FAILED and a compiler-style message naming the backend and
 * the kernels it has. */
mps_status mps_parse_kernel_names(const char* source, const char* backend, mps_kernel_filter runs,
                                  const cpu_kernel*** chosen, size_t* count, mps_error* err);

/* "none", "buffer", "int", "float" for an mps_arg_kind, for messages. */
const char* mps_arg_kind_name(int32_t kind);

/* The kernel called `function` among a library's kernels, or MPS_ERR_NOT_FOUND listing the ones it has. */
mps_status mps_find_library_kernel(const cpu_kernel* const* kernels, size_t count, const char* function,
                                   const cpu_kernel** out, mps_error* err);

#endif
