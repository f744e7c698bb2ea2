/*
 * Host side of the metal kernels: parameter blocks, bindings and grids for each built-in kernel (argument
 * lists: cpu/kernels.h, validated at encode time by cpu/kernels_table.c), GEMMs on MPSMatrixMultiplication,
 * and the encoder bookkeeping of a command buffer. Runs on a stream's launch thread only; everything here
 * encodes and returns, nothing waits for the GPU.
 */
#import <MetalPerformanceShaders/MetalPerformanceShaders.h>

#include <stdio.h>
#include <string.h>

#include "metal/launch.h"

/* Argument positions, as documented in cpu/kernels.h. */
enum { G_A, G_B, G_C, G_BIAS, G_M, G_N, G_K, G_LDA, G_LDB, G_LDC, G_TRANS_A, G_TRANS_B, G_ALPHA, G_BETA, G_ACT,
       G_BATCH_OUTER, G_SA_OUTER, G_SB_OUTER, G_SC_OUTER, G_BATCH_INNER, G_SA_INNER, G_SB_INNER, G_SC_INNER };
enum { L_X, L_RES, L_GAMMA, L_BETA, L_Y, L_ROWS, L_COLS, L_EPS };
enum { S_X, S_MASK, S_BATCH, S_HEADS, S_ROWS, S_COLS, S_SCALE };
enum { U_X, U_Y, U_N };
enum { BA_X, BA_BIAS, BA_Y, BA_ROWS, BA_COLS };
enum { AD_A, AD_B, AD_Y, AD_N };
enum { E_IDS, E_TABLE, E_OUT, E_N_IDS, E_DIM, E_VOCAB, E_ACC };
enum { P_X, P_MASK, P_Y, P_BATCH, P_SEQ, P_HIDDEN, P_MODE, P_NORMALIZE };
enum { BL_X, BL_BIAS };  /* then residual, gamma, beta, y, rows, cols, eps: layernorm's list shifted by one */

/* ---- parameter blocks: the structs of kernels.metal, field for field ------------------------------------ */

typedef struct layernorm_params { int64_t rows, cols; float eps; int32_t has_residual; } layernorm_params;
typedef struct softmax_params { int64_t batch, heads, rows, cols; float scale; int32_t has_mask; } softmax_params;
typedef struct count_params { int64_t n; } count_params;
typedef struct matrix_params { int64_t rows, cols; } matrix_params;
typedef struct embedding_params { int64_t n_ids, dim, vocab; int32_t accumulate, unused; } embedding_params;
typedef struct epilogue_params {
  int64_t m, n, ldc, batch_outer, stride_outer, batch_inner, stride_inner;
  int32_t activation, has_bias;
} epilogue_params;
typedef struct gemm_params {
  int64_t m, n, k, lda, ldb, ldc;
  int64_t batch_outer, stride_a_outer, stride_b_outer, stride_c_outer;
  int64_t batch_inner, stride_a_inner, stride_b_inner, stride_c_inner;
  float alpha, beta;
  int32_t trans_a, trans_b, activation, has_bias;
} gemm_params;
typedef struct pool_params { int64_t batch, seq, hidden; int32_t mode, normalize, has_mask, unused; } pool_params;
typedef struct activation_params { int64_t n; int32_t activation, unused; } activation_params;
typedef struct rel_bias_params { int64_t batch, heads, seq, num_buckets; } rel_bias_params;
typedef struct copy_params { uint64_t src_offset, dst_offset, bytes; } copy_params; /* device.m's COPY_SOURCE */

_Static_assert(sizeof(layernorm_params) == 24, "mps_layernorm_params in kernels.metal");
_Static_assert(sizeof(softmax_params) == 40, "mps_softmax_params in kernels.metal");
_Static_assert(sizeof(count_params) == 8, "mps_count_params in kernels.metal");
_Static_assert(sizeof(matrix_params) == 16, "mps_matrix_params in kernels.metal");
_Static_assert(sizeof(embedding_params) == 32, "mps_embedding_params in kernels.metal");
_Static_assert(sizeof(epilogue_params) == 64, "mps_epilogue_params in kernels.metal");
_Static_assert(sizeof(gemm_params) == 136, "mps_gemm_params in kernels.metal");
_Static_assert(sizeof(pool_params) == 40, "mps_pool_params in kernels.metal");
_Static_assert(sizeof(copy_params) == 24, "mps_copy_params in device.m");

/* ---- encoders ---------------------------------------------------------------------------------------- */

void mps_metal_end_encoding(mps_metal_encoding* e) {
  if (!e->encoder) return;
  [MPS_METAL(id<MTLCommandEncoder>, e->encoder) endEncoding];
  mps_metal_drop(e->encoder);
  e->encoder = NULL;
  e->kind = MPS_METAL_NO_ENCODER;
}

/* Makes `encoder` the open one. A nil encoder (Metal could not make one) is remembered in `failed`: messages
 * to nil do nothing, so without the flag the work would vanish silently. */
static void open_encoder(mps_metal_encoding* e, id<MTLCommandEncoder> encoder, mps_metal_encoder_kind kind) {
  e->encoder = mps_metal_own(encoder);
  e->kind = encoder ? kind : MPS_METAL_NO_ENCODER;
  if (!encoder) e->failed = 1;
}

id<MTLComputeCommandEncoder> mps_metal_compute_encoder(mps_metal_encoding* e) {
  if (e->kind != MPS_METAL_COMPUTE) {
    mps_metal_end_encoding(e);
    /* Serial dispatch (the default): each dispatch sees the writes of the ones before it. */
    open_encoder(e, [MPS_METAL(id<MTLCommandBuffer>, e->command_buffer) computeCommandEncoder], MPS_METAL_COMPUTE);
  }
  return MPS_METAL(id<MTLComputeCommandEncoder>, e->encoder);
}

id<MTLBlitCommandEncoder> mps_metal_blit_encoder(mps_metal_encoding* e) {
  if (e->kind != MPS_METAL_BLIT) {
    mps_metal_end_encoding(e);
    open_encoder(e, [MPS_METAL(id<MTLCommandBuffer>, e->command_buffer) blitCommandEncoder], MPS_METAL_BLIT);
  }
  return MPS_METAL(id<MTLBlitCommandEncoder>, e->encoder);
}

/* ---- grids ------------------------------------------------------------------------------------------- */

/* Kernels walk their index space with strides, so grids are capped: enough threadgroups to fill any Apple
 * GPU many times over, few enough that no grid dimension nears a limit. */
#define MAX_GROUPS_1D 16384u
#define MAX_GROUPS_2D 4096u
#define MAX_GROUPS_Z 1024u

static NSUInteger cap(uint64_t wanted, NSUInteger max) {
  return wanted < 1 ? 1 : wanted > max ? max : (NSUInteger)wanted;
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Threads per threadgroup: `wanted` bounded by what the pipeline allows, a multiple of the SIMD width. */
static NSUInteger group_size(id<MTLComputePipelineState> state, NSUInteger wanted) {
  NSUInteger width = state.threadExecutionWidth;
  NSUInteger n = wanted < state.maxTotalThreadsPerThreadgroup ? wanted : state.maxTotalThreadsPerThreadgroup;
  n = n / width * width;
  return n ? n : width;
}

static void dispatch_1d(id<MTLComputeCommandEncoder> enc, id<MTLComputePipelineState> state, uint64_t n) {
  NSUInteger threads = group_size(state, 256);
  [enc dispatchThreadgroups:MTLSizeMake(cap(ceil_div(n, threads), MAX_GROUPS_1D), 1, 1)
      threadsPerThreadgroup:MTLSizeMake(threads, 1, 1)];
}

/* One threadgroup per row of `cols`: a multiple of 32 threads, at most `max`. */
static void dispatch_rows(id<MTLComputeCommandEncoder> enc, id<MTLComputePipelineState> state, uint64_t rows,
                          uint64_t cols, NSUInteger max) {
  NSUInteger threads = group_size(state, cols >= max ? max : (NSUInteger)ceil_div(cols, 32) * 32);
  [enc dispatchThreadgroups:MTLSizeMake(cap(rows, MAX_GROUPS_1D), 1, 1)
      threadsPerThreadgroup:MTLSizeMake(threads, 1, 1)];
}

/* x over `cols`, y over `rows`, z over `depth`, threadgroups of 32 x 8. */
static void dispatch_3d(id<MTLComputeCommandEncoder> enc, id<MTLComputePipelineState> state, uint64_t cols,
                        uint64_t rows, uint64_t depth) {
  NSUInteger height = group_size(state, 256) / 32;
  if (height == 0) height = 1;
  MTLSize groups = MTLSizeMake(cap(ceil_div(cols, 32), MAX_GROUPS_2D), cap(ceil_div(rows, height), MAX_GROUPS_2D),
                               cap(depth, MAX_GROUPS_Z));
  [enc dispatchThreadgroups:groups threadsPerThreadgroup:MTLSizeMake(32, height, 1)];
}

/* ---- bindings ---------------------------------------------------------------------------------------- */

static void bind(id<MTLComputeCommandEncoder> enc, const mps_metal_call* call, int arg, NSUInteger index) {
  [enc setBuffer:MPS_METAL(id<MTLBuffer>, call->buffers[arg]->mtl_buffer) offset:(NSUInteger)call->offsets[arg]
         atIndex:index];
}

/* An optional buffer argument, or `placeholder`'s binding when absent (the kernel's flag says which). */
static int bind_optional(id<MTLComputeCommandEncoder> enc, const mps_metal_call* call, int arg, int placeholder,
                         NSUInteger index) {
  int present = call->args[arg].kind == MPS_ARG_BUFFER;
  bind(enc, call, present ? arg : placeholder, index);
  return present;
}

static id<MTLComputeCommandEncoder> start(const mps_metal_launch_context* ctx, id<MTLComputePipelineState> state) {
  id<MTLComputeCommandEncoder> enc = mps_metal_compute_encoder(ctx->encoding);
  [enc setComputePipelineState:state];
  return enc;
}

/* ---- copies ------------------------------------------------------------------------------------------ */

void mps_metal_encode_copy(mps_metal_encoding* e, const mps_device* device, id<MTLBuffer> src, uint64_t src_offset,
                           id<MTLBuffer> dst, uint64_t dst_offset, uint64_t bytes) {
  if (bytes == 0) return;
  if ((src_offset | dst_offset | bytes) % 4 == 0) {
    [mps_metal_blit_encoder(e) copyFromBuffer:src sourceOffset:(NSUInteger)src_offset toBuffer:dst
                            destinationOffset:(NSUInteger)dst_offset size:(NSUInteger)bytes];
    return;
  }
  id<MTLComputePipelineState> state = MPS_METAL(id<MTLComputePipelineState>, device->copy_pipeline);
  id<MTLComputeCommandEncoder> enc = mps_metal_compute_encoder(e);
  [enc setComputePipelineState:state];
  copy_params p = {src_offset, dst_offset, bytes};
  [enc setBuffer:src offset:0 atIndex:0];
  [enc setBuffer:dst offset:0 atIndex:1];
  [enc setBytes:&p length:sizeof p atIndex:2];
  dispatch_1d(enc, state, bytes);
}

/* ---- gemm -------------------------------------------------------------------------------------------- */

void mps_metal_gemm_cache_clear(mps_metal_gemm_cache* cache) {
  for (unsigned i = 0; i < MPS_METAL_GEMM_CACHE; i++) {
    mps_metal_drop(cache->kernels[i]);
    cache->kernels[i] = NULL;
  }
  cache->next = 0;
}

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The stream's MPSMatrixMultiplication for this shape and these scalars, made on first use. */
static MPSMatrixMultiplication* gemm_kernel(const mps_metal_launch_context* ctx, const mps_metal_gemm_key* key,
                                            float alpha, float beta) {
  mps_metal_gemm_cache* cache = ctx->gemm_cache;
  for (unsigned i = 0; i < MPS_METAL_GEMM_CACHE; i++) {
    if (cache->kernels[i] && memcmp(&cache->keys[i], key, sizeof *key) == 0) {
      return MPS_METAL(MPSMatrixMultiplication*, cache->kernels[i]);
    }
  }
  MPSMatrixMultiplication* kernel =
      [[MPSMatrixMultiplication alloc] initWithDevice:MPS_METAL(id<MTLDevice>, ctx->device->mtl_device)
                                        transposeLeft:key->trans_a != 0
                                       transposeRight:key->trans_b != 0
                                           resultRows:(NSUInteger)key->m
                                        resultColumns:(NSUInteger)key->n
                                      interiorColumns:(NSUInteger)key->k
                                                alpha:(double)alpha
                                                 beta:(double)beta];
  if (!kernel) return nil;
  unsigned slot = cache->next;
  cache->next = (slot + 1) % MPS_METAL_GEMM_CACHE;
  mps_metal_drop(cache->kernels[slot]);
  cache->keys[slot] = *key;
  cache->kernels[slot] = mps_metal_own(kernel);
  return kernel;
}

/* How the two batch levels map onto MPS encodes: `calls` encodes of `per_call` matrices each; per operand
 * (A, B, C) the elements from one call to the next and from one matrix to the next within a call. */
typedef struct gemm_plan {
  int64_t calls, per_call;
  int64_t call_step[3];
  int64_t matrix_step[3];
} gemm_plan;

/* Operand shapes as stored (before transposition): rows, columns, leading dimension. */
typedef struct gemm_operands {
  int64_t rows[3], cols[3], ld[3];
} gemm_operands;

/* MPS addresses matrix i of an operand at i * matrixBytes + row * rowBytes, with matrixBytes a multiple of
 * rowBytes and at least rows * rowBytes (MPSMatrixDescriptor). */
static int plan_fits_mps(const gemm_plan* plan, const gemm_operands* ops) {
  if (plan->calls > 64) return 0; /* more encodes than a strided kernel is worth */
  if (plan->per_call == 1) return 1;
  for (int op = 0; op < 3; op++) {
    int64_t step = plan->matrix_step[op], ld = ops->ld[op];
    if (step % ld != 0 || step < ops->rows[op] * ld) return 0;
  }
  return 1;
}

/* The fitting plan with the fewest encodes, in the order: both levels folded into one batch (the outer
 * stride continues the inner one), inner level batched, outer level batched. 0 when none fits. */
static int choose_plan(const cpu_arg* a, const gemm_operands* ops, gemm_plan* out) {
  int64_t bo = a[G_BATCH_OUTER].i, bi = a[G_BATCH_INNER].i;
  int64_t so[3] = {a[G_SA_OUTER].i, a[G_SB_OUTER].i, a[G_SC_OUTER].i};
  int64_t si[3] = {a[G_SA_INNER].i, a[G_SB_INNER].i, a[G_SC_INNER].i};
  gemm_plan candidates[3];
  int count = 0;
  int64_t total;
  int folds = !__builtin_mul_overflow(bo, bi, &total);
  for (int op = 0; op < 3 && folds && bo > 1; op++) {
    int64_t continued;
    folds = !__builtin_mul_overflow(bi, si[op], &continued) && continued == so[op];
  }
  if (folds) candidates[count++] = (gemm_plan){1, total, {0, 0, 0}, {si[0], si[1], si[2]}};
  candidates[count++] = (gemm_plan){bo, bi, {so[0], so[1], so[2]}, {si[0], si[1], si[2]}};
  candidates[count++] = (gemm_plan){bi, bo, {si[0], si[1], si[2]}, {so[0], so[1], so[2]}};
  int best = -1;
  for (int c = 0; c < count; c++) {
    if (plan_fits_mps(&candidates[c], ops) && (best < 0 || candidates[c].calls < candidates[best].calls)) best = c;
  }
  if (best < 0) return 0;
  *out = candidates[best];
  return 1;
}

/* One operand of one call as an MPSMatrix. A single matrix uses the descriptor without a matrix stride,
 * whose documented buffer requirement is the touched extent only: (rows - 1) * rowBytes + columns * 4. */
static MPSMatrix* operand_matrix(id<MTLBuffer> buffer, uint64_t offset, const gemm_operands* ops, int op,
                                 const gemm_plan* plan) {
  NSUInteger rows = (NSUInteger)ops->rows[op], cols = (NSUInteger)ops->cols[op];
  NSUInteger row_bytes = (NSUInteger)ops->ld[op] * sizeof(float);
  MPSMatrixDescriptor* d;
  if (plan->per_call == 1) {
    d = [MPSMatrixDescriptor matrixDescriptorWithRows:rows columns:cols rowBytes:row_bytes dataType:MPSDataTypeFloat32];
  } else {
    d = [MPSMatrixDescriptor matrixDescriptorWithRows:rows
                                              columns:cols
                                             matrices:(NSUInteger)plan->per_call
                                             rowBytes:row_bytes
                                          matrixBytes:(NSUInteger)plan->matrix_step[op] * sizeof(float)
                                             dataType:MPSDataTypeFloat32];
  }
  return [[MPSMatrix alloc] initWithBuffer:buffer offset:(NSUInteger)offset descriptor:d];
}

static mps_status gemm_mps(const mps_metal_call* call, const mps_metal_launch_context* ctx, const gemm_operands* ops,
                           const gemm_plan* plan, mps_error* err) {
  const cpu_arg* a = call->args;
  mps_metal_gemm_key key = {a[G_M].i, a[G_N].i, a[G_K].i, a[G_TRANS_A].i != 0, a[G_TRANS_B].i != 0,
                            float_bits((float)a[G_ALPHA].f), float_bits((float)a[G_BETA].f)};
  MPSMatrixMultiplication* kernel = gemm_kernel(ctx, &key, (float)a[G_ALPHA].f, (float)a[G_BETA].f);
  if (!kernel) {
    return mps_fail(err, MPS_ERR_BACKEND, "gemm: MPSMatrixMultiplication init failed (M=%lld N=%lld K=%lld)",
                    (long long)key.m, (long long)key.n, (long long)key.k);
  }
  kernel.batchStart = 0;
  kernel.batchSize = (NSUInteger)plan->per_call;
  /* MPS encodes into the command buffer, not into our encoder. */
  mps_metal_end_encoding(ctx->encoding);
  id<MTLCommandBuffer> cb = MPS_METAL(id<MTLCommandBuffer>, ctx->encoding->command_buffer);
  const int args[3] = {G_A, G_B, G_C};
  for (int64_t c = 0; c < plan->calls; c++) {
    MPSMatrix* m[3];
    for (int op = 0; op < 3; op++) {
      uint64_t offset = call->offsets[args[op]] + (uint64_t)(c * plan->call_step[op]) * sizeof(float);
      m[op] = operand_matrix(MPS_METAL(id<MTLBuffer>, call->buffers[args[op]]->mtl_buffer), offset, ops, op, plan);
      if (!m[op]) return mps_fail(err, MPS_ERR_BACKEND, "gemm: MPSMatrix init failed for operand %c", "ABC"[op]);
    }
    [kernel encodeToCommandBuffer:cb leftMatrix:m[0] rightMatrix:m[1] resultMatrix:m[2]];
  }
  return MPS_OK;
}

/* bias and activation over C after MPS, in the library's epilogue kernel. */
static void gemm_epilogue(const mps_metal_call* call, const mps_metal_launch_context* ctx) {
  const cpu_arg* a = call->args;
  id<MTLComputePipelineState> state = MPS_METAL(id<MTLComputePipelineState>, call->pipeline->library->gemm_epilogue);
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  epilogue_params p = {a[G_M].i, a[G_N].i, a[G_LDC].i, a[G_BATCH_OUTER].i, a[G_SC_OUTER].i, a[G_BATCH_INNER].i,
                       a[G_SC_INNER].i, (int32_t)a[G_ACT].i, 0};
  bind(enc, call, G_C, 0);
  p.has_bias = bind_optional(enc, call, G_BIAS, G_C, 1);
  [enc setBytes:&p length:sizeof p atIndex:2];
  dispatch_3d(enc, state, (uint64_t)p.n, (uint64_t)p.m, (uint64_t)(p.batch_outer * p.batch_inner));
}

/* The whole contract in the library's tiled kernel (layouts MPS cannot describe), epilogue fused. */
static mps_status gemm_tiled(const mps_metal_call* call, const mps_metal_launch_context* ctx, int64_t batches,
                             mps_error* err) {
  const cpu_arg* a = call->args;
  id<MTLComputePipelineState> state = MPS_METAL(id<MTLComputePipelineState>, call->pipeline->library->gemm_tiled);
  if (state.maxTotalThreadsPerThreadgroup < 256) {
    return mps_fail(err, MPS_ERR_BACKEND, "gemm: the tiled kernel allows %lu threads per threadgroup, it needs 256",
                    (unsigned long)state.maxTotalThreadsPerThreadgroup);
  }
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  gemm_params p = {a[G_M].i, a[G_N].i, a[G_K].i, a[G_LDA].i, a[G_LDB].i, a[G_LDC].i,
                   a[G_BATCH_OUTER].i, a[G_SA_OUTER].i, a[G_SB_OUTER].i, a[G_SC_OUTER].i,
                   a[G_BATCH_INNER].i, a[G_SA_INNER].i, a[G_SB_INNER].i, a[G_SC_INNER].i,
                   (float)a[G_ALPHA].f, (float)a[G_BETA].f, a[G_TRANS_A].i != 0, a[G_TRANS_B].i != 0,
                   (int32_t)a[G_ACT].i, 0};
  bind(enc, call, G_A, 0);
  bind(enc, call, G_B, 1);
  bind(enc, call, G_C, 2);
  p.has_bias = bind_optional(enc, call, G_BIAS, G_C, 3);
  [enc setBytes:&p length:sizeof p atIndex:4];
  MTLSize groups = MTLSizeMake(cap(ceil_div((uint64_t)p.n, 16), MAX_GROUPS_2D),
                               cap(ceil_div((uint64_t)p.m, 16), MAX_GROUPS_2D), cap((uint64_t)batches, MAX_GROUPS_Z));
  [enc dispatchThreadgroups:groups threadsPerThreadgroup:MTLSizeMake(16, 16, 1)];
  return MPS_OK;
}

static mps_status gemm(const mps_metal_call* call, const mps_metal_launch_context* ctx, mps_error* err) {
  const cpu_arg* a = call->args;
  int64_t m = a[G_M].i, n = a[G_N].i, k = a[G_K].i;
  int ta = a[G_TRANS_A].i != 0, tb = a[G_TRANS_B].i != 0;
  int64_t batches;
  if (__builtin_mul_overflow(a[G_BATCH_OUTER].i, a[G_BATCH_INNER].i, &batches)) {
    return mps_fail(err, MPS_ERR_UNSUPPORTED, "gemm: batch_outer * batch_inner overflows int64");
  }
  gemm_operands ops = {{ta ? k : m, tb ? n : k, m}, {ta ? m : k, tb ? k : n, n}, {a[G_LDA].i, a[G_LDB].i, a[G_LDC].i}};
  gemm_plan plan;
  if (!choose_plan(a, &ops, &plan)) return gemm_tiled(call, ctx, batches, err);
  mps_status s = gemm_mps(call, ctx, &ops, &plan, err);
  if (s == MPS_OK && (a[G_BIAS].kind == MPS_ARG_BUFFER || a[G_ACT].i != 0)) gemm_epilogue(call, ctx);
  return s;
}

/* ---- the other kernels ------------------------------------------------------------------------------- */

/* layernorm and bias_layernorm: argument positions differ (bias_layernorm has the bias second); the buffer
 * indices are the same, the bias at 6 (bias < 0: plain layernorm). */
static void layernorm_rows(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                           id<MTLComputePipelineState> state, int first, int bias) {
  const cpu_arg* a = call->args;
  int x = first, res = x + 1 + (bias >= 0), gamma = res + 1, beta = gamma + 1, y = beta + 1;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  layernorm_params p = {a[y + 1].i, a[y + 2].i, (float)a[y + 3].f, 0};
  bind(enc, call, x, 0);
  p.has_residual = bind_optional(enc, call, res, x, 1);
  bind(enc, call, gamma, 2);
  bind(enc, call, beta, 3);
  bind(enc, call, y, 4);
  [enc setBytes:&p length:sizeof p atIndex:5];
  if (bias >= 0) bind(enc, call, bias, 6);
  dispatch_rows(enc, state, (uint64_t)p.rows, (uint64_t)p.cols, 256);
}

static void softmax(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                    id<MTLComputePipelineState> state) {
  const cpu_arg* a = call->args;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  softmax_params p = {a[S_BATCH].i, a[S_HEADS].i, a[S_ROWS].i, a[S_COLS].i, (float)a[S_SCALE].f, 0};
  bind(enc, call, S_X, 0);
  p.has_mask = bind_optional(enc, call, S_MASK, S_X, 1);
  [enc setBytes:&p length:sizeof p atIndex:2];
  /* batch * heads * rows fits: the validator checked the product against the buffer's size. */
  dispatch_rows(enc, state, (uint64_t)(p.batch * p.heads * p.rows), (uint64_t)p.cols, 128);
}

/* gelu, tanh (x y n) and add (a b y n): bindings in argument order, then the count. */
static void elementwise(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                        id<MTLComputePipelineState> state, int buffers) {
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  for (int i = 0; i < buffers; i++) bind(enc, call, i, (NSUInteger)i);
  count_params p = {call->args[buffers].i};
  [enc setBytes:&p length:sizeof p atIndex:(NSUInteger)buffers];
  dispatch_1d(enc, state, (uint64_t)p.n);
}

static void bias_add(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                     id<MTLComputePipelineState> state) {
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  matrix_params p = {call->args[BA_ROWS].i, call->args[BA_COLS].i};
  bind(enc, call, BA_X, 0);
  bind(enc, call, BA_BIAS, 1);
  bind(enc, call, BA_Y, 2);
  [enc setBytes:&p length:sizeof p atIndex:3];
  dispatch_3d(enc, state, (uint64_t)p.cols, (uint64_t)p.rows, 1);
}

static mps_status embedding(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                            id<MTLComputePipelineState> state, mps_error* err) {
  if (!ctx->failure) return mps_fail(err, MPS_ERR_BACKEND, "embedding: the commit has no failure slot");
  const cpu_arg* a = call->args;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  embedding_params p = {a[E_N_IDS].i, a[E_DIM].i, a[E_VOCAB].i, a[E_ACC].i != 0, 0};
  bind(enc, call, E_IDS, 0);
  bind(enc, call, E_TABLE, 1);
  bind(enc, call, E_OUT, 2);
  [enc setBuffer:MPS_METAL(id<MTLBuffer>, ctx->failure) offset:0 atIndex:3];
  [enc setBuffer:MPS_METAL(id<MTLBuffer>, ctx->failure) offset:16 atIndex:4];
  [enc setBytes:&p length:sizeof p atIndex:5];
  dispatch_3d(enc, state, (uint64_t)p.dim, (uint64_t)p.n_ids, 1);
  return MPS_OK;
}

static void pool(const mps_metal_call* call, const mps_metal_launch_context* ctx, id<MTLComputePipelineState> state) {
  const cpu_arg* a = call->args;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  pool_params p = {a[P_BATCH].i, a[P_SEQ].i, a[P_HIDDEN].i, (int32_t)a[P_MODE].i, (int32_t)a[P_NORMALIZE].i, 0, 0};
  bind(enc, call, P_X, 0);
  p.has_mask = bind_optional(enc, call, P_MASK, P_X, 1);
  bind(enc, call, P_Y, 2);
  [enc setBytes:&p length:sizeof p atIndex:3];
  dispatch_rows(enc, state, (uint64_t)p.batch, (uint64_t)p.hidden, 256);
}

/* Argument positions of activation and rel_bias (cpu/kernels.h). */
enum { AC_X, AC_Y, AC_N, AC_ACT };
enum { RB_SCORES, RB_TABLE, RB_BUCKETS, RB_BATCH, RB_HEADS, RB_SEQ, RB_NUM_BUCKETS };

static void activation(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                       id<MTLComputePipelineState> state) {
  const cpu_arg* a = call->args;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  activation_params p = {a[AC_N].i, (int32_t)a[AC_ACT].i, 0};
  bind(enc, call, AC_X, 0);
  bind(enc, call, AC_Y, 1);
  [enc setBytes:&p length:sizeof p atIndex:2];
  dispatch_1d(enc, state, (uint64_t)p.n);
}

static void rel_bias(const mps_metal_call* call, const mps_metal_launch_context* ctx,
                     id<MTLComputePipelineState> state) {
  const cpu_arg* a = call->args;
  id<MTLComputeCommandEncoder> enc = start(ctx, state);
  rel_bias_params p = {a[RB_BATCH].i, a[RB_HEADS].i, a[RB_SEQ].i, a[RB_NUM_BUCKETS].i};
  bind(enc, call, RB_SCORES, 0);
  bind(enc, call, RB_TABLE, 1);
  bind(enc, call, RB_BUCKETS, 2);
  [enc setBytes:&p length:sizeof p atIndex:3];
  dispatch_3d(enc, state, (uint64_t)p.seq, (uint64_t)(p.batch * p.heads * p.seq), 1);
}

mps_status mps_metal_launch(const mps_metal_call* call, const mps_metal_launch_context* ctx, mps_error* err) {
  const mps_pipeline* p = call->pipeline;
  id<MTLComputePipelineState> state = MPS_METAL(id<MTLComputePipelineState>, p->state);
  switch (p->kernel_index) {
    case MPS_METAL_K_GEMM: return gemm(call, ctx, err);
    case MPS_METAL_K_LAYERNORM: layernorm_rows(call, ctx, state, L_X, -1); return MPS_OK;
    case MPS_METAL_K_SOFTMAX: softmax(call, ctx, state); return MPS_OK;
    case MPS_METAL_K_GELU:
    case MPS_METAL_K_TANH: elementwise(call, ctx, state, 2); return MPS_OK;
    case MPS_METAL_K_ADD: elementwise(call, ctx, state, 3); return MPS_OK;
    case MPS_METAL_K_BIAS_ADD: bias_add(call, ctx, state); return MPS_OK;
    case MPS_METAL_K_EMBEDDING: return embedding(call, ctx, state, err);
    case MPS_METAL_K_POOL: pool(call, ctx, state); return MPS_OK;
    case MPS_METAL_K_BIAS_LAYERNORM: layernorm_rows(call, ctx, state, BL_X, BL_BIAS); return MPS_OK;
    case MPS_METAL_K_ACTIVATION: activation(call, ctx, state); return MPS_OK;
    case MPS_METAL_K_REL_BIAS: rel_bias(call, ctx, state); return MPS_OK;
    default: return mps_fail(err, MPS_ERR_NOT_FOUND, "metal: kernel %s has no launcher", p->kernel->name);
  }
}
