/*
 * Host side of the cuda kernels: grid shapes and parameters for each built-in kernel (argument lists:
 * cpu/kernels.h, validated at encode time by cpu/kernels_table.c), and GEMMs on cuBLAS. Runs on a
 * stream's launch thread only; every call here enqueues and returns.
 */
#include "cuda/launch.h"

#include <stdint.h>
#include <stdio.h>

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
enum { BL_X, BL_BIAS, BL_RES, BL_GAMMA, BL_BETA, BL_Y, BL_ROWS, BL_COLS, BL_EPS };
enum { AT_QKV, AT_BIAS, AT_MASK, AT_OUT, AT_BATCH, AT_SEQ, AT_HEADS, AT_HEAD_DIM, AT_SCALE };
enum { AC_X, AC_Y, AC_N, AC_ACT };
enum { RB_SCORES, RB_TABLE, RB_BUCKETS, RB_BATCH, RB_HEADS, RB_SEQ, RB_NUM_BUCKETS };

#define MPS_ELEMENTWISE_THREADS 256
#define MPS_ROWS_PER_BLOCK 4 /* warp-per-row kernels (layernorm, softmax): as in kernels.cu */
#define MPS_ATT_Q 64         /* attention16: queries a block, 4 warps of 16 (kernels.cu) */

static const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

static void* ptr_or_null(const cpu_arg* a) { return a->kind == MPS_ARG_BUFFER ? a->ptr : NULL; }

/* Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, no more. */
static unsigned elementwise_blocks(const mps_device* device, long long n) {
  long long blocks = (n + MPS_ELEMENTWISE_THREADS - 1) / MPS_ELEMENTWISE_THREADS;
  long long cap = (long long)device->info.compute_units * 16;
  if (blocks > cap) blocks = cap;
  return blocks < 1 ? 1u : (unsigned)blocks;
}

#define MPS_VEC 4   /* values a row kernel moves at once when aligned (kernels.cu) */
#define MPS_VEC16 8 /* 16-bit storage: values moved at once (16 bytes) where the layernorms and the GEMM
                     * epilogue find rows and pointers aligned to it (kernels.cu) */

/* Whether p (absent: NULL) starts a vector of `vec` values of `elem` bytes. */
static int aligned_to(const void* p, int vec, size_t elem) { return p == NULL || (uintptr_t)p % (vec * elem) == 0; }
static int vector_aligned(const void* p, size_t elem) { return aligned_to(p, MPS_VEC, elem); }

static int row_vector_of(int vec, long long cols, size_t elem, const void* a, const void* b, const void* c,
                         const void* d, const void* e, const void* f) {
  return cols % vec == 0 && aligned_to(a, vec, elem) && aligned_to(b, vec, elem) && aligned_to(c, vec, elem) &&
         aligned_to(d, vec, elem) && aligned_to(e, vec, elem) && aligned_to(f, vec, elem);
}

/* MPS_VEC when every row of `cols` values and each pointer given is vector-aligned, else 1 (scalar path). */
static int row_vector(long long cols, size_t elem, const void* a, const void* b, const void* c, const void* d,
                      const void* e, const void* f) {
  return row_vector_of(MPS_VEC, cols, elem, a, b, c, d, e, f) ? MPS_VEC : 1;
}

/* For the layernorms: 16-bit rows take vectors of MPS_VEC16 when aligned to them, then as row_vector. */
static int norm_vector(long long cols, size_t elem, const void* a, const void* b, const void* c, const void* d,
                       const void* e, const void* f) {
  if (elem == 2 && row_vector_of(MPS_VEC16, cols, elem, a, b, c, d, e, f)) return MPS_VEC16;
  return row_vector(cols, elem, a, b, c, d, e, f);
}

/* Blocks for warp-per-row kernels over `rows` rows (validated: rows fit the grid). */
static unsigned row_blocks(long long rows) {
  return (unsigned)((rows + MPS_ROWS_PER_BLOCK - 1) / MPS_ROWS_PER_BLOCK);
}

static mps_status launch(const void* fn, const char* name, unsigned blocks, unsigned threads, void** params,
                         cudaStream_t stream, mps_error* err) {
  if (blocks == 0) return MPS_OK; /* empty work: nothing to launch */
  dim3 grid = {blocks, 1, 1}, block = {threads, 1, 1};
  cudaError_t e = cudaLaunchKernel(fn, grid, block, params, 0, stream);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "launching %s", name);
    return mps_cuda_fail(err, e, what);
  }
  return MPS_OK;
}

/* fp32 and tf32 multiply the fp32 operands directly. fp16 and bf16 first round both operands to 16 bits
 * into the stream's scratch (cuBLAS's FAST_16F compute types only *allow* down-conversion, and on an
 * H100 they gave tf32's results to the last digit), then multiply on tensor cores with fp32 accumulation
 * and fp32 output, so the mode does what its name says. */
static cublasComputeType_t compute_type(int32_t math_mode) {
  switch (math_mode) {
    case MPS_MATH_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MPS_MATH_FP16:
    case MPS_MATH_BF16: return CUBLAS_COMPUTE_32F;
    /* The handle keeps CUBLAS_DEFAULT_MATH, which never lowers fp32's precision (no TF32); PEDANTIC would also
     * rule out cuBLAS's faster fp32 algorithms. */
    default: return CUBLAS_COMPUTE_32F;
  }
}

/* Elements from an operand's first to its last touched element (validated at encode, so no overflow). */
static long long operand_span(long long rows, long long cols, long long ld, long long bo, long long so, long long bi,
                              long long si) {
  return (bo - 1) * so + (bi - 1) * si + (rows - 1) * ld + cols;
}

/* Grows one of the stream's scratch areas, stream-ordered: the old area is freed after the work already
 * enqueued that uses it, the new one is ready for what comes next on this stream. */
static mps_status ensure_scratch(const mps_cuda_launch_context* ctx, void** scratch, size_t* have, size_t bytes,
                                 const char* what, mps_error* err) {
  if (*have >= bytes) return MPS_OK;
  if (*scratch) cudaFreeAsync(*scratch, ctx->stream);
  *scratch = NULL;
  *have = 0;
  size_t grown = bytes + bytes / 4; /* headroom: activation spans grow with the batch */
  cudaError_t e = cudaMallocAsync(scratch, grown, ctx->stream);
  if (e != cudaSuccess) {
    *scratch = NULL;
    cudaGetLastError();
    return mps_cuda_fail(err, e, what);
  }
  *have = grown;
  return MPS_OK;
}

static mps_status round_operand(const mps_pipeline* p, const mps_cuda_launch_context* ctx, const float* src,
                                unsigned short* dst, long long n, mps_error* err) {
  int bf16 = ctx->math_mode == MPS_MATH_BF16;
  void* params[] = {&src, &dst, &n, &bf16};
  return launch((const void*)p->library->round_to_half, "gemm operand rounding", elementwise_blocks(ctx->device, n),
                MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
}

static mps_status gemm(const mps_pipeline* p, const cpu_arg* a, const mps_cuda_launch_context* ctx, mps_error* err) {
  long long m = a[G_M].i, n = a[G_N].i, k = a[G_K].i;
  long long bo = a[G_BATCH_OUTER].i, bi = a[G_BATCH_INNER].i;
  if (m == 0 || n == 0 || bo == 0 || bi == 0) return MPS_OK;
  if (k == 0 && (ctx->math_mode == MPS_MATH_FP16 || ctx->math_mode == MPS_MATH_BF16)) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "gemm: K = 0 is not supported in the fp16/bf16 math modes");
  }
  float alpha = (float)a[G_ALPHA].f, beta = (float)a[G_BETA].f;
  cublasOperation_t op_a = a[G_TRANS_A].i ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = a[G_TRANS_B].i ? CUBLAS_OP_T : CUBLAS_OP_N;
  long long sa_o = a[G_SA_OUTER].i, sb_o = a[G_SB_OUTER].i, sc_o = a[G_SC_OUTER].i;
  long long sa_i = a[G_SA_INNER].i, sb_i = a[G_SB_INNER].i, sc_i = a[G_SC_INNER].i;
  /* When the outer level continues the inner one (e.g. plain batched GEMM), one strided call covers both;
   * otherwise (calls > 1) one pointer-array call does. */
  long long calls = bo, per_call = bi;
  if (bo > 1 && sa_o == bi * sa_i && sb_o == bi * sb_i && sc_o == bi * sc_i && bo * bi <= 2147483647LL) {
    calls = 1;
    per_call = bo * bi;
  }
  const float* A = a[G_A].ptr;
  const float* B = a[G_B].ptr;
  void* C = a[G_C].ptr;
  const char* A_op = (const char*)A;
  const char* B_op = (const char*)B;
  size_t elem = sizeof(float);
  cudaDataType in_type = CUDA_R_32F, out_type = CUDA_R_32F;
  int out_elem = 4;
  int stored16 = p->kernel->value_bytes == 2;
  int bf16 = ctx->math_mode == MPS_MATH_BF16;
  if (stored16) {
    /* gemm16: operands and result are already 16-bit tensors; tensor cores, fp32 accumulation. */
    elem = 2;
    out_elem = 2;
    in_type = out_type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  } else if (ctx->math_mode == MPS_MATH_FP16 || ctx->math_mode == MPS_MATH_BF16) {
    long long span_a = operand_span(a[G_TRANS_A].i ? k : m, a[G_TRANS_A].i ? m : k, a[G_LDA].i, bo, sa_o, bi, sa_i);
    long long span_b = operand_span(a[G_TRANS_B].i ? n : k, a[G_TRANS_B].i ? k : n, a[G_LDB].i, bo, sb_o, bi, sb_i);
    size_t offset_b = ((size_t)span_a * 2 + 255) / 256 * 256;
    mps_status st = ensure_scratch(ctx, ctx->half_scratch, ctx->half_scratch_bytes, offset_b + (size_t)span_b * 2,
                                   "gemm: scratch for 16-bit operands", err);
    unsigned short* half_a = *ctx->half_scratch;
    unsigned short* half_b = (unsigned short*)((char*)*ctx->half_scratch + offset_b);
    if (st == MPS_OK) st = round_operand(p, ctx, A, half_a, span_a, err);
    if (st == MPS_OK) st = round_operand(p, ctx, B, half_b, span_b, err);
    if (st != MPS_OK) return st;
    A_op = (const char*)half_a;
    B_op = (const char*)half_b;
    elem = 2;
    in_type = ctx->math_mode == MPS_MATH_FP16 ? CUDA_R_16F : CUDA_R_16BF;
  }
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. */
  if (calls == 1) {
    status = cublasGemmStridedBatchedEx(ctx->blas, op_b, op_a, (int)n, (int)m, (int)k, &alpha, B_op, in_type,
                                        (int)a[G_LDB].i, sb_i, A_op, in_type, (int)a[G_LDA].i, sa_i, &beta, C,
                                        out_type, (int)a[G_LDC].i, sc_i, (int)per_call,
                                        stored16 ? CUBLAS_COMPUTE_32F : compute_type(ctx->math_mode),
                                        CUBLAS_GEMM_DEFAULT);
  } else {
    /* Two levels that do not fold into one stride: the bo x bi operand addresses are written on the device by
     * one small kernel and the whole set runs as one batched GEMM (one launch instead of bo). */
    long long count = bo * bi;
    if (count > 2147483647LL) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "gemm: %lld batched matrices, at most 2^31 - 1", count);
    }
    size_t bytes = (size_t)count * 3 * sizeof(void*);
    mps_status st = ensure_scratch(ctx, ctx->pointer_scratch, ctx->pointer_scratch_bytes, bytes,
                                   "gemm: scratch for batched operand pointers", err);
    if (st != MPS_OK) return st;
    const void** arrays = (const void**)*ctx->pointer_scratch;
    int in_elem = (int)elem;
    void* params[] = {&A_op, &B_op, &C, &bo, &bi, &sa_o, &sa_i, &sb_o, &sb_i, &sc_o, &sc_i, &in_elem, &out_elem,
                      &arrays};
    st = launch((const void*)p->library->batch_pointers, "gemm batch pointers", elementwise_blocks(ctx->device, count),
                MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    if (st != MPS_OK) return st;
    status = cublasGemmBatchedEx(ctx->blas, op_b, op_a, (int)n, (int)m, (int)k, &alpha, arrays + count, in_type,
                                 (int)a[G_LDB].i, arrays, in_type, (int)a[G_LDA].i, &beta, (void* const*)(arrays + 2 * count),
                                 out_type, (int)a[G_LDC].i, (int)count,
                                 stored16 ? CUBLAS_COMPUTE_32F : compute_type(ctx->math_mode), CUBLAS_GEMM_DEFAULT);
  }
  if (status != CUBLAS_STATUS_SUCCESS) {
    return mps_fail(err, MPS_ERR_KERNEL_FAILED, "gemm: cuBLAS (M=%lld N=%lld K=%lld, %lld x %lld batches): %s", m, n, k,
                    bo, bi, cublas_status_name(status));
  }
  void* bias = ptr_or_null(&a[G_BIAS]);
  int activation = (int)a[G_ACT].i;
  if (!bias && activation == 0) return MPS_OK;
  long long ldc = a[G_LDC].i;
  /* Vectors of `vec` columns when rows, strides and pointers allow (16 bytes: 8 16-bit values, 4 fp32), then
   * 4, then one column. */
  int vec = 1;
  for (int v = stored16 ? MPS_VEC16 : MPS_VEC; v > 1 && vec == 1; v = v == MPS_VEC16 ? MPS_VEC : 1) {
    if (n % v == 0 && ldc % v == 0 && (bo * bi == 1 || (sc_o % v == 0 && sc_i % v == 0)) &&
        aligned_to(C, v, (size_t)out_elem) && aligned_to(bias, v, (size_t)out_elem)) {
      vec = v;
    }
  }
  void* params[] = {&C, &bias, &m, &n, &ldc, &activation, &bo, &sc_o, &bi, &sc_i, &bf16, &vec};
  /* A block per row (blocks stride over the rows), threads over the row's vectors: as many as a row has,
   * rounded to warps, 64 to 512. */
  long long rows = bo * bi * m, per_row = n / vec, cap = (long long)ctx->device->info.compute_units * 64;
  long long threads = (per_row + 31) / 32 * 32;
  threads = threads < 64 ? 64 : threads > 512 ? 512 : threads;
  return launch((const void*)(stored16 ? p->library->gemm_epilogue16 : p->library->gemm_epilogue),
                stored16 ? "gemm16 epilogue" : "gemm epilogue", (unsigned)(rows < cap ? rows : cap), (unsigned)threads,
                params, ctx->stream, err);
}

mps_status mps_cuda_launch(const mps_pipeline* p, const cpu_arg* a, const mps_cuda_launch_context* ctx,
                           mps_error* err) {
  const void* fn = (const void*)p->function;
  const char* name = p->kernel->name;
  const mps_device* d = ctx->device;
  int bf16 = ctx->math_mode == MPS_MATH_BF16; /* the 16-bit storage format (value_bytes 2 kernels) */
  switch (p->kernel_index) {
    case MPS_CUDA_K_GEMM:
    case MPS_CUDA_K_GEMM16:
      return gemm(p, a, ctx, err);
    case MPS_CUDA_K_LAYERNORM:
    case MPS_CUDA_K_LAYERNORM16: {
      void *x = a[L_X].ptr, *res = ptr_or_null(&a[L_RES]), *g = a[L_GAMMA].ptr, *b = a[L_BETA].ptr, *y = a[L_Y].ptr;
      long long rows = a[L_ROWS].i, cols = a[L_COLS].i;
      float eps = (float)a[L_EPS].f;
      int vec = norm_vector(cols, p->kernel->value_bytes ? p->kernel->value_bytes : 4, x, res, g, b, y, NULL);
      void* params[] = {&x, &res, &g, &b, &y, &rows, &cols, &eps, &bf16, &vec};
      return launch(fn, name, row_blocks(rows), 32 * MPS_ROWS_PER_BLOCK, params, ctx->stream, err);
    }
    case MPS_CUDA_K_SOFTMAX:
    case MPS_CUDA_K_SOFTMAX16: {
      void *x = a[S_X].ptr, *mask = ptr_or_null(&a[S_MASK]);
      long long batch = a[S_BATCH].i, heads = a[S_HEADS].i, rows = a[S_ROWS].i, cols = a[S_COLS].i;
      float scale = (float)a[S_SCALE].f;
      /* the mask is fp32: a vector of it is 16 bytes whatever the storage */
      int vec = row_vector(cols, p->kernel->value_bytes ? p->kernel->value_bytes : 4, x, NULL, NULL, NULL, NULL, NULL);
      if (!vector_aligned(mask, sizeof(float))) vec = 1;
      void* params[] = {&x, &mask, &batch, &heads, &rows, &cols, &scale, &bf16, &vec};
      return launch(fn, name, row_blocks(batch * heads * rows), 32 * MPS_ROWS_PER_BLOCK, params, ctx->stream, err);
    }
    case MPS_CUDA_K_GELU:
    case MPS_CUDA_K_TANH: {
      void *x = a[U_X].ptr, *y = a[U_Y].ptr;
      long long n = a[U_N].i;
      void* params[] = {&x, &y, &n};
      return launch(fn, name, n ? elementwise_blocks(d, n) : 0, MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    }
    case MPS_CUDA_K_BIAS_ADD: {
      void *x = a[BA_X].ptr, *bias = a[BA_BIAS].ptr, *y = a[BA_Y].ptr;
      long long rows = a[BA_ROWS].i, cols = a[BA_COLS].i;
      void* params[] = {&x, &bias, &y, &rows, &cols};
      long long n = rows * cols;
      return launch(fn, name, n ? elementwise_blocks(d, n) : 0, MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    }
    case MPS_CUDA_K_ADD: {
      void *x = a[AD_A].ptr, *b = a[AD_B].ptr, *y = a[AD_Y].ptr;
      long long n = a[AD_N].i;
      void* params[] = {&x, &b, &y, &n};
      return launch(fn, name, n ? elementwise_blocks(d, n) : 0, MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    }
    case MPS_CUDA_K_EMBEDDING:
    case MPS_CUDA_K_EMBEDDING16: {
      void *ids = a[E_IDS].ptr, *table = a[E_TABLE].ptr, *out = a[E_OUT].ptr;
      long long n_ids = a[E_N_IDS].i, dim = a[E_DIM].i, vocab = a[E_VOCAB].i;
      int accumulate = a[E_ACC].i != 0;
      long long* failure = ctx->failure_slot;
      void* params[] = {&ids, &table, &out, &n_ids, &dim, &vocab, &accumulate, &failure, &bf16};
      long long n = n_ids * dim;
      return launch(fn, name, n ? elementwise_blocks(d, n) : 0, MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    }
    case MPS_CUDA_K_BIAS_LAYERNORM:
    case MPS_CUDA_K_BIAS_LAYERNORM16: {
      void *x = a[BL_X].ptr, *bias = a[BL_BIAS].ptr, *res = ptr_or_null(&a[BL_RES]), *g = a[BL_GAMMA].ptr;
      void *b = a[BL_BETA].ptr, *y = a[BL_Y].ptr;
      long long rows = a[BL_ROWS].i, cols = a[BL_COLS].i;
      float eps = (float)a[BL_EPS].f;
      int vec = norm_vector(cols, p->kernel->value_bytes ? p->kernel->value_bytes : 4, x, bias, res, g, b, y);
      void* params[] = {&x, &bias, &res, &g, &b, &y, &rows, &cols, &eps, &bf16, &vec};
      return launch(fn, name, row_blocks(rows), 32 * MPS_ROWS_PER_BLOCK, params, ctx->stream, err);
    }
    case MPS_CUDA_K_POOL:
    case MPS_CUDA_K_POOL16: {
      void *x = a[P_X].ptr, *mask = ptr_or_null(&a[P_MASK]), *y = a[P_Y].ptr;
      long long batch = a[P_BATCH].i, seq = a[P_SEQ].i, hidden = a[P_HIDDEN].i;
      int mode = (int)a[P_MODE].i, normalize = (int)a[P_NORMALIZE].i;
      void* params[] = {&x, &mask, &y, &batch, &seq, &hidden, &mode, &normalize, &bf16};
      /* a thread per hidden column up to 1024 (then each value is pooled once), 32 at least */
      long long threads = (hidden + 31) / 32 * 32;
      return launch(fn, name, (unsigned)batch, (unsigned)(threads > 1024 ? 1024 : threads), params, ctx->stream, err);
    }
    case MPS_CUDA_K_ATTENTION16: {
      void *qkv = a[AT_QKV].ptr, *bias = ptr_or_null(&a[AT_BIAS]), *mask = ptr_or_null(&a[AT_MASK]);
      void* out = a[AT_OUT].ptr;
      long long batch = a[AT_BATCH].i, seq = a[AT_SEQ].i, heads = a[AT_HEADS].i, head_dim = a[AT_HEAD_DIM].i;
      float scale = (float)a[AT_SCALE].f;
      const void* entry = p->library->attention16[head_dim == 32 ? 0 : head_dim == 64 ? 1 : 2];
      void* params[] = {&qkv, &bias, &mask, &out, &batch, &seq, &heads, &scale, &bf16};
      /* validated: the block count fits 2^31 - 1 */
      long long blocks = (seq + MPS_ATT_Q - 1) / MPS_ATT_Q * heads * batch;
      return launch(entry, name, (unsigned)blocks, 128, params, ctx->stream, err);
    }
    case MPS_CUDA_K_ACTIVATION:
    case MPS_CUDA_K_ACTIVATION16: {
      void *x = a[AC_X].ptr, *y = a[AC_Y].ptr;
      long long n = a[AC_N].i;
      int activation = (int)a[AC_ACT].i;
      void* params[] = {&x, &y, &n, &activation, &bf16};
      return launch(fn, name, elementwise_blocks(d, n), MPS_ELEMENTWISE_THREADS, params, ctx->stream, err);
    }
    case MPS_CUDA_K_REL_BIAS:
    case MPS_CUDA_K_REL_BIAS16: {
      void *scores = a[RB_SCORES].ptr, *table = a[RB_TABLE].ptr, *buckets = a[RB_BUCKETS].ptr;
      long long batch = a[RB_BATCH].i, heads = a[RB_HEADS].i, seq = a[RB_SEQ].i, nb = a[RB_NUM_BUCKETS].i;
      void* params[] = {&scores, &table, &buckets, &batch, &heads, &seq, &nb, &bf16};
      return launch(fn, name, elementwise_blocks(d, batch * heads * seq * seq), MPS_ELEMENTWISE_THREADS, params,
                    ctx->stream, err);
    }
    default:
      return mps_fail(err, MPS_ERR_NOT_FOUND, "cuda: kernel %s has no launcher", name);
  }
}
