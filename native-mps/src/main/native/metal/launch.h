/* Encoding one built-in kernel into a stream's Metal command buffer (metal/launch.m). Objective-C only. */
#ifndef MPS_METAL_LAUNCH_H
#define MPS_METAL_LAUNCH_H

#import <Metal/Metal.h>

#include "metal/backend_objects.h"
#include "metal/bridge.h"

/* Kernel indices of the shared table, in cpu/kernels_table.c's order. */
enum {
  MPS_METAL_K_GEMM, MPS_METAL_K_LAYERNORM, MPS_METAL_K_SOFTMAX, MPS_METAL_K_GELU, MPS_METAL_K_TANH,
  MPS_METAL_K_BIAS_ADD, MPS_METAL_K_ADD, MPS_METAL_K_EMBEDDING,
  MPS_METAL_K_POOL = 12, /* after the 16-bit kernels, which metal does not run */
  MPS_METAL_K_BIAS_LAYERNORM = 14,
  MPS_METAL_K_ACTIVATION = 17, MPS_METAL_K_REL_BIAS = 19
};

/* MPSMatrixMultiplication objects of one stream, by shape and scalars (they are fixed at init). MPS kernels
 * are not thread-safe, so each stream's launch thread has its own; only that thread touches this. */
#define MPS_METAL_GEMM_CACHE 16

typedef struct mps_metal_gemm_key {
  int64_t m, n, k;
  int32_t trans_a, trans_b;
  uint32_t alpha_bits, beta_bits;
} mps_metal_gemm_key;

typedef struct mps_metal_gemm_cache {
  mps_metal_gemm_key keys[MPS_METAL_GEMM_CACHE];
  void* kernels[MPS_METAL_GEMM_CACHE]; /* MPSMatrixMultiplication, NULL when the entry is empty */
  unsigned next;                       /* the entry replaced next (round robin) */
} mps_metal_gemm_cache;

void mps_metal_gemm_cache_clear(mps_metal_gemm_cache* cache);

typedef enum mps_metal_encoder_kind { MPS_METAL_NO_ENCODER, MPS_METAL_COMPUTE, MPS_METAL_BLIT } mps_metal_encoder_kind;

/* The encoder of the command buffer being built (one "segment" of a commit, metal/stream.m). Consecutive
 * dispatches share one compute encoder; it is ended before a blit, an MPS encode (MPS encodes into the
 * command buffer itself), a wait or an event. Owned by the stream's launch thread. */
typedef struct mps_metal_encoding {
  void* command_buffer; /* id<MTLCommandBuffer>, borrowed from the segment list that owns it */
  void* encoder;        /* the open encoder (own reference), NULL when none */
  mps_metal_encoder_kind kind;
  int failed; /* Metal returned no encoder: what was to be encoded is missing, the commit must fail */
} mps_metal_encoding;

id<MTLComputeCommandEncoder> mps_metal_compute_encoder(mps_metal_encoding* e);
id<MTLBlitCommandEncoder> mps_metal_blit_encoder(mps_metal_encoding* e);
void mps_metal_end_encoding(mps_metal_encoding* e);

/* Copies `bytes` between two MTLBuffers in stream order: a blit when offsets and size are multiples of 4
 * (macOS's blit rule), the device's byte-copy kernel otherwise. */
void mps_metal_encode_copy(mps_metal_encoding* e, const mps_device* device, id<MTLBuffer> src, uint64_t src_offset,
                           id<MTLBuffer> dst, uint64_t dst_offset, uint64_t bytes);

/* What a launch needs from its stream; owned by that stream's launch thread. */
typedef struct mps_metal_launch_context {
  const mps_device* device;
  mps_metal_encoding* encoding;
  mps_metal_gemm_cache* gemm_cache;
  /* This commit's embedding failure slot (NULL when the commit has no embedding): a shared MTLBuffer with
   * the flag at byte 0 and {position low, position high, id} as uint32 from byte 16. */
  void* failure;
} mps_metal_launch_context;

/* One kernel invocation as encoded: the validated arguments, and for each buffer argument its mps_buffer and
 * byte offset (the binding; args[i].ptr is the same address as seen by the CPU). */
typedef struct mps_metal_call {
  const mps_pipeline* pipeline;
  const cpu_arg* args;
  mps_buffer* const* buffers;
  const uint64_t* offsets;
} mps_metal_call;

mps_status mps_metal_launch(const mps_metal_call* call, const mps_metal_launch_context* ctx, mps_error* err);

#endif
