/* Enqueuing one built-in kernel on a CUDA stream (cuda/launch.c). */
#ifndef MPS_CUDA_LAUNCH_H
#define MPS_CUDA_LAUNCH_H

#include <cublas_v2.h>

#include "cuda/backend_objects.h"

/* Kernel indices of the shared table, in cpu/kernels_table.c's order. */
enum {
  MPS_CUDA_K_GEMM, MPS_CUDA_K_LAYERNORM, MPS_CUDA_K_SOFTMAX, MPS_CUDA_K_GELU, MPS_CUDA_K_TANH, MPS_CUDA_K_BIAS_ADD,
  MPS_CUDA_K_ADD, MPS_CUDA_K_EMBEDDING, MPS_CUDA_K_GEMM16, MPS_CUDA_K_LAYERNORM16, MPS_CUDA_K_SOFTMAX16,
  MPS_CUDA_K_EMBEDDING16, MPS_CUDA_K_POOL, MPS_CUDA_K_POOL16, MPS_CUDA_K_BIAS_LAYERNORM, MPS_CUDA_K_BIAS_LAYERNORM16,
  MPS_CUDA_K_ATTENTION16, MPS_CUDA_K_ACTIVATION, MPS_CUDA_K_ACTIVATION16, MPS_CUDA_K_REL_BIAS, MPS_CUDA_K_REL_BIAS16,
  MPS_CUDA_K_GEMM_PACKED /* cpu only: cuda_runs refuses it */
};

/* What a launch needs from its stream; owned by that stream's launch thread. */
typedef struct mps_cuda_launch_context {
  const mps_device* device;
  cudaStream_t stream;
  cublasHandle_t blas;
  int32_t math_mode;
  long long* failure_slot; /* device address of this commit's slot in the host-mapped failure ring */
  /* The stream's scratch for 16-bit GEMM operands, grown stream-ordered (cudaMallocAsync on the stream). */
  void** half_scratch;
  size_t* half_scratch_bytes;
  /* The stream's scratch for the operand pointers of two-level batched GEMMs, grown the same way. */
  void** pointer_scratch;
  size_t* pointer_scratch_bytes;
} mps_cuda_launch_context;

mps_status mps_cuda_launch(const mps_pipeline* pipeline, const cpu_arg* args, const mps_cuda_launch_context* ctx,
                           mps_error* err);

#endif
