/*
 * The immutable table of built-in cpu kernels: argument signatures, encode-time validation and the
 * executor-side adapters from cpu_arg to the direct entry points (contract: kernels.h).
 *
 * validate() is the only guard between a caller's arguments and raw pointer arithmetic on the executor
 * thread, so it checks, for every buffer, the largest element index the kernel will touch (batch
 * strides included) against the bytes the buffer holds, with every product and sum overflow-checked:
 * an int64 wrap-around would otherwise turn an oversized request into a small "needed" size.
 * All messages name the kernel and the argument ("gemm: buffer C holds 100 bytes but needs 400").
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/kernel_names.h"
#include "cpu/error.h"
#include "cpu/kernels.h"

enum {
  K_GEMM, K_LAYERNORM, K_SOFTMAX, K_GELU, K_TANH, K_BIAS_ADD, K_ADD, K_EMBEDDING,
  /* 16-bit storage (fp16 or bf16, the device's GEMM math decides): same arguments, no cpu implementation */
  K_GEMM16, K_LAYERNORM16, K_SOFTMAX16, K_EMBEDDING16,
  /* Sentence-embedding pooling: pool runs everywhere, pool16 where 16-bit storage runs */
  K_POOL, K_POOL16,
  /* A linear layer's bias, the residual and LayerNorm in one pass */
  K_BIAS_LAYERNORM, K_BIAS_LAYERNORM16,
  /* Attention (scores, masked softmax, P V) in one kernel, 16-bit storage only */
  K_ATTENTION16,
  /* An activation in its own pass (the forms the gemm epilogue lacks), and the relative position bias added to
   * attention scores (MPNet) */
  K_ACTIVATION, K_ACTIVATION16, K_REL_BIAS, K_REL_BIAS16,
  /* A Linear layer over weights packed once at load (cpu only: other backends keep gemm) */
  K_GEMM_PACKED, K_COUNT
};

/* Defined at the end; validators use its names and kinds for their messages. */
static const cpu_kernel KERNELS[K_COUNT];

#define B MPS_ARG_BUFFER
#define I MPS_ARG_INT
#define F MPS_ARG_FLOAT
#define BLAS_INT_MAX INT64_C(2147483647) /* blasint is int in this OpenBLAS build */

/* ------------------------------------------------------------------------------------------------
 * Checks shared by all validators
 * ---------------------------------------------------------------------------------------------- */

/* Kinds, non-null and float-aligned buffers (a misaligned float* is UB), finite floats that survive the
 * conversion to float (alpha = 1e39 would become inf). */
static mps_status check_args(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  for (uint32_t i = 0; i < k->nargs; i++) {
    const char* name = k->arg_names[i];
    if (a[i].kind == MPS_ARG_NONE && (k->optional_buffers >> i & 1u)) continue;
    if (a[i].kind != k->arg_kinds[i]) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: argument %s is a %s but must be a %s", k->name, name,
                      mps_arg_kind_name(a[i].kind), mps_arg_kind_name(k->arg_kinds[i]));
    }
    if (a[i].kind == MPS_ARG_BUFFER) {
      if (a[i].ptr == NULL) return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer %s is null", k->name, name);
      if ((uintptr_t)a[i].ptr % sizeof(float) != 0) {
        return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer %s is not 4-byte aligned (offset %% 4 != 0)",
                        k->name, name);
      }
    }
    if (a[i].kind == MPS_ARG_FLOAT && !(isfinite(a[i].f) && fabs(a[i].f) <= FLT_MAX)) {
      return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: %s is %g but must be a finite float", k->name, name,
                      a[i].f);
    }
  }
  return MPS_OK;
}

static mps_status need_range(const cpu_kernel* k, const cpu_arg* a, int idx, int64_t lo, int64_t hi,
                             mps_error* err) {
  int64_t v = a[idx].i;
  if (v < lo || v > hi) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: %s is %" PRId64 " but must be in [%" PRId64 ", %" PRId64 "]",
                    k->name, k->arg_names[idx], v, lo, hi);
  }
  return MPS_OK;
}

/* Product of n non-negative factors; 0 when it overflows int64 (callers pass positive factors). */
static int checked_product(int64_t* out, const int64_t* f, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) {
    if (__builtin_mul_overflow(p, f[i], &p)) return 0;
  }
  *out = p;
  return 1;
}

static mps_status overflow(const cpu_kernel* k, const char* what, mps_error* err) {
  return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: %s overflows int64", k->name, what);
}

/* Buffer idx must hold `elems` elements of `elem_size` bytes from its pointer. */
static mps_status need_elems(const cpu_kernel* k, const cpu_arg* a, int idx, int64_t elems, int64_t elem_size,
                             mps_error* err) {
  int64_t bytes;
  if (__builtin_mul_overflow(elems, elem_size, &bytes)) return overflow(k, k->arg_names[idx], err);
  if ((uint64_t)bytes > a[idx].bytes) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer %s holds %" PRIu64 " bytes but needs %" PRId64,
                    k->name, k->arg_names[idx], a[idx].bytes, bytes);
  }
  return MPS_OK;
}

/* The kernels read inputs with restrict-qualified or vectorized loops: an output that partially
 * overlaps an input gives garbage (and is UB), so only an exact alias, where the contract allows one,
 * passes. Byte ranges are [ptr, ptr + bytes used). */
static mps_status check_overlap(const cpu_kernel* k, const cpu_arg* a, int out, int64_t out_bytes, int in,
                                int64_t in_bytes, int exact_alias_ok, mps_error* err) {
  if (a[in].kind != MPS_ARG_BUFFER) return MPS_OK;
  uintptr_t o = (uintptr_t)a[out].ptr, i = (uintptr_t)a[in].ptr;
  int disjoint = o + (uint64_t)out_bytes <= i || i + (uint64_t)in_bytes <= o;
  if (disjoint || (exact_alias_ok && o == i)) return MPS_OK;
  return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer %s overlaps buffer %s%s", k->name, k->arg_names[out],
                  k->arg_names[in], exact_alias_ok ? " without being the same memory" : "");
}

#define TRY(expr)                          \
  do {                                     \
    mps_status try_status_ = (expr);       \
    if (try_status_ != MPS_OK) return try_status_; \
  } while (0)

/* Bytes of one stored value: 4 (fp32), or 2 for the 16-bit storage kernels. Ids and masks stay 32-bit. */
static int64_t vbytes(const cpu_kernel* k) { return k->value_bytes ? (int64_t)k->value_bytes : (int64_t)sizeof(float); }

/* ------------------------------------------------------------------------------------------------
 * gemm
 * ---------------------------------------------------------------------------------------------- */

enum {
  G_A, G_B, G_C, G_BIAS, G_M, G_N, G_K, G_LDA, G_LDB, G_LDC, G_TRANS_A, G_TRANS_B, G_ALPHA, G_BETA, G_ACT,
  G_BATCH_OUTER, G_SA_OUTER, G_SB_OUTER, G_SC_OUTER, G_BATCH_INNER, G_SA_INNER, G_SB_INNER, G_SC_INNER, G_NARGS
};
static const char* const GEMM_NAMES[G_NARGS] = {
    "A", "B", "C", "bias", "M", "N", "K", "lda", "ldb", "ldc", "trans_a", "trans_b", "alpha", "beta",
    "activation", "batch_outer", "stride_a_outer", "stride_b_outer", "stride_c_outer", "batch_inner",
    "stride_a_inner", "stride_b_inner", "stride_c_inner"};
static const int32_t GEMM_KINDS[G_NARGS] = {B, B, B, B, I, I, I, I, I, I, I, I, F, F, I, I, I, I, I, I, I, I, I};

/* One matrix operand stored as `rows` x `cols` (after accounting for its transpose flag) with leading
 * dimension ld, repeated over the two batch levels: checks ld and that the buffer holds the last
 * element touched, (bo-1)*so + (bi-1)*si + (rows-1)*ld + cols - 1. */
static mps_status gemm_operand(const cpu_kernel* k, const cpu_arg* a, int buf, int64_t rows, int64_t cols, int ld,
                               int so, int si, mps_error* err) {
  if (a[ld].i < cols) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT,
                    "%s: %s is %" PRId64 " but must be >= %" PRId64 " (the columns of %s as stored)", k->name,
                    k->arg_names[ld], a[ld].i, cols, k->arg_names[buf]);
  }
  const int64_t terms[3][2] = {
      {a[G_BATCH_OUTER].i - 1, a[so].i}, {a[G_BATCH_INNER].i - 1, a[si].i}, {rows - 1, a[ld].i}};
  int64_t count = cols;
  for (int t = 0; t < 3; t++) {
    int64_t prod;
    if (__builtin_mul_overflow(terms[t][0], terms[t][1], &prod) || __builtin_add_overflow(count, prod, &count)) {
      char what[48];
      snprintf(what, sizeof what, "the extent of buffer %s", k->arg_names[buf]);
      return overflow(k, what, err);
    }
  }
  return need_elems(k, a, buf, count, vbytes(k), err);
}

static mps_status gemm_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  for (int idx = G_M; idx <= G_LDC; idx++) TRY(need_range(k, a, idx, 1, BLAS_INT_MAX, err));
  TRY(need_range(k, a, G_ACT, 0, 2, err));
  TRY(need_range(k, a, G_BATCH_OUTER, 1, INT64_MAX, err));
  TRY(need_range(k, a, G_BATCH_INNER, 1, INT64_MAX, err));
  const int strides[] = {G_SA_OUTER, G_SB_OUTER, G_SC_OUTER, G_SA_INNER, G_SB_INNER, G_SC_INNER};
  for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
    TRY(need_range(k, a, strides[s], 0, INT64_MAX, err));
  }
  int64_t m = a[G_M].i, n = a[G_N].i, kk = a[G_K].i;
  int ta = a[G_TRANS_A].i != 0, tb = a[G_TRANS_B].i != 0;
  TRY(gemm_operand(k, a, G_A, ta ? kk : m, ta ? m : kk, G_LDA, G_SA_OUTER, G_SA_INNER, err));
  TRY(gemm_operand(k, a, G_B, tb ? n : kk, tb ? kk : n, G_LDB, G_SB_OUTER, G_SB_INNER, err));
  TRY(gemm_operand(k, a, G_C, m, n, G_LDC, G_SC_OUTER, G_SC_INNER, err));
  if (a[G_BIAS].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, G_BIAS, n, vbytes(k), err));
  return mps_ok(err);
}

static mps_status gemm_validate(const cpu_arg* a, mps_error* err) { return gemm_check(&KERNELS[K_GEMM], a, err); }
static mps_status gemm16_validate(const cpu_arg* a, mps_error* err) { return gemm_check(&KERNELS[K_GEMM16], a, err); }

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status gemm_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_gemm((const float*)a[G_A].ptr, (const float*)a[G_B].ptr, (float*)a[G_C].ptr,
               a[G_BIAS].kind == MPS_ARG_BUFFER ? (const float*)a[G_BIAS].ptr : NULL, a[G_M].i, a[G_N].i,
               a[G_K].i, a[G_LDA].i, a[G_LDB].i, a[G_LDC].i, a[G_TRANS_A].i != 0, a[G_TRANS_B].i != 0,
               (float)a[G_ALPHA].f, (float)a[G_BETA].f, (int)a[G_ACT].i, a[G_BATCH_OUTER].i, a[G_SA_OUTER].i,
               a[G_SB_OUTER].i, a[G_SC_OUTER].i, a[G_BATCH_INNER].i, a[G_SA_INNER].i, a[G_SB_INNER].i,
               a[G_SC_INNER].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * layernorm
 * ---------------------------------------------------------------------------------------------- */

enum { L_X, L_RES, L_GAMMA, L_BETA, L_Y, L_ROWS, L_COLS, L_EPS, L_NARGS };
static const char* const LAYERNORM_NAMES[L_NARGS] = {"x", "residual", "gamma", "beta", "y", "rows", "cols", "eps"};
static const int32_t LAYERNORM_KINDS[L_NARGS] = {B, B, B, B, B, I, I, F};

static mps_status layernorm_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, L_ROWS, 1, INT64_MAX, err));
  TRY(need_range(k, a, L_COLS, 1, INT64_MAX, err));
  if (a[L_EPS].f < 0.0) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: eps is %g but must be >= 0", k->name, a[L_EPS].f);
  }
  int64_t total;
  if (!checked_product(&total, (const int64_t[]){a[L_ROWS].i, a[L_COLS].i}, 2)) return overflow(k, "rows * cols", err);
  int64_t cols = a[L_COLS].i, bytes = total * (int64_t)vbytes(k), row_bytes = cols * (int64_t)vbytes(k);
  TRY(need_elems(k, a, L_X, total, vbytes(k), err));
  if (a[L_RES].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, L_RES, total, vbytes(k), err));
  TRY(need_elems(k, a, L_GAMMA, cols, vbytes(k), err));
  TRY(need_elems(k, a, L_BETA, cols, vbytes(k), err));
  TRY(need_elems(k, a, L_Y, total, vbytes(k), err));
  TRY(check_overlap(k, a, L_Y, bytes, L_X, bytes, 1, err));
  TRY(check_overlap(k, a, L_Y, bytes, L_RES, bytes, 1, err));
  TRY(check_overlap(k, a, L_Y, bytes, L_GAMMA, row_bytes, 0, err));
  TRY(check_overlap(k, a, L_Y, bytes, L_BETA, row_bytes, 0, err));
  return mps_ok(err);
}

static mps_status layernorm_validate(const cpu_arg* a, mps_error* err) {
  return layernorm_check(&KERNELS[K_LAYERNORM], a, err);
}
static mps_status layernorm16_validate(const cpu_arg* a, mps_error* err) {
  return layernorm_check(&KERNELS[K_LAYERNORM16], a, err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status layernorm_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_layernorm((const float*)a[L_X].ptr, a[L_RES].kind == MPS_ARG_BUFFER ? (const float*)a[L_RES].ptr : NULL,
                    (const float*)a[L_GAMMA].ptr, (const float*)a[L_BETA].ptr, (float*)a[L_Y].ptr, a[L_ROWS].i,
                    a[L_COLS].i, (float)a[L_EPS].f);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * softmax
 * ---------------------------------------------------------------------------------------------- */

enum { S_X, S_MASK, S_BATCH, S_HEADS, S_ROWS, S_COLS, S_SCALE, S_NARGS };
static const char* const SOFTMAX_NAMES[S_NARGS] = {"x", "mask", "batch", "heads", "rows", "cols", "scale"};
static const int32_t SOFTMAX_KINDS[S_NARGS] = {B, B, I, I, I, I, F};

static mps_status softmax_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  for (int idx = S_BATCH; idx <= S_COLS; idx++) TRY(need_range(k, a, idx, 1, INT64_MAX, err));
  int64_t total, mask_total;
  if (!checked_product(&total, (const int64_t[]){a[S_BATCH].i, a[S_HEADS].i, a[S_ROWS].i, a[S_COLS].i}, 4)) {
    return overflow(k, "batch * heads * rows * cols", err);
  }
  if (!checked_product(&mask_total, (const int64_t[]){a[S_BATCH].i, a[S_COLS].i}, 2)) {
    return overflow(k, "batch * cols", err);
  }
  TRY(need_elems(k, a, S_X, total, vbytes(k), err));
  if (a[S_MASK].kind == MPS_ARG_BUFFER) {
    TRY(need_elems(k, a, S_MASK, mask_total, sizeof(float), err));
    TRY(check_overlap(k, a, S_X, total * vbytes(k), S_MASK, mask_total * (int64_t)sizeof(float), 0,
                      err));
  }
  return mps_ok(err);
}

static mps_status softmax_validate(const cpu_arg* a, mps_error* err) { return softmax_check(&KERNELS[K_SOFTMAX], a, err); }
static mps_status softmax16_validate(const cpu_arg* a, mps_error* err) {
  return softmax_check(&KERNELS[K_SOFTMAX16], a, err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status softmax_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_softmax((float*)a[S_X].ptr, a[S_MASK].kind == MPS_ARG_BUFFER ? (const float*)a[S_MASK].ptr : NULL,
                  a[S_BATCH].i, a[S_HEADS].i, a[S_ROWS].i, a[S_COLS].i, (float)a[S_SCALE].f);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * gelu, tanh (x y n)
 * ---------------------------------------------------------------------------------------------- */

enum { U_X, U_Y, U_N, U_NARGS };
static const char* const UNARY_NAMES[U_NARGS] = {"x", "y", "n"};
static const int32_t UNARY_KINDS[U_NARGS] = {B, B, I};

static mps_status unary_validate(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, U_N, 1, INT64_MAX, err));
  TRY(need_elems(k, a, U_X, a[U_N].i, sizeof(float), err));
  TRY(need_elems(k, a, U_Y, a[U_N].i, sizeof(float), err));
  int64_t bytes = a[U_N].i * (int64_t)sizeof(float); /* cannot overflow: need_elems checked it */
  TRY(check_overlap(k, a, U_Y, bytes, U_X, bytes, 1, err));
  return mps_ok(err);
}

static mps_status gelu_validate(const cpu_arg* a, mps_error* err) { return unary_validate(&KERNELS[K_GELU], a, err); }
static mps_status tanh_validate(const cpu_arg* a, mps_error* err) { return unary_validate(&KERNELS[K_TANH], a, err); }

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status gelu_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_gelu((const float*)a[U_X].ptr, (float*)a[U_Y].ptr, a[U_N].i);
  return mps_ok(err);
}
#endif

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status tanh_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_tanh((const float*)a[U_X].ptr, (float*)a[U_Y].ptr, a[U_N].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * bias_add
 * ---------------------------------------------------------------------------------------------- */

enum { BA_X, BA_BIAS, BA_Y, BA_ROWS, BA_COLS, BA_NARGS };
static const char* const BIAS_ADD_NAMES[BA_NARGS] = {"x", "bias", "y", "rows", "cols"};
static const int32_t BIAS_ADD_KINDS[BA_NARGS] = {B, B, B, I, I};

static mps_status bias_add_validate(const cpu_arg* a, mps_error* err) {
  const cpu_kernel* k = &KERNELS[K_BIAS_ADD];
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, BA_ROWS, 1, INT64_MAX, err));
  TRY(need_range(k, a, BA_COLS, 1, INT64_MAX, err));
  int64_t total;
  if (!checked_product(&total, (const int64_t[]){a[BA_ROWS].i, a[BA_COLS].i}, 2)) return overflow(k, "rows * cols", err);
  TRY(need_elems(k, a, BA_X, total, sizeof(float), err));
  TRY(need_elems(k, a, BA_BIAS, a[BA_COLS].i, sizeof(float), err));
  TRY(need_elems(k, a, BA_Y, total, sizeof(float), err));
  int64_t bytes = total * (int64_t)sizeof(float);
  TRY(check_overlap(k, a, BA_Y, bytes, BA_X, bytes, 1, err));
  TRY(check_overlap(k, a, BA_Y, bytes, BA_BIAS, a[BA_COLS].i * (int64_t)sizeof(float), 0, err));
  return mps_ok(err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status bias_add_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_bias_add((const float*)a[BA_X].ptr, (const float*)a[BA_BIAS].ptr, (float*)a[BA_Y].ptr, a[BA_ROWS].i,
                   a[BA_COLS].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * add
 * ---------------------------------------------------------------------------------------------- */

enum { AD_A, AD_B, AD_Y, AD_N, AD_NARGS };
static const char* const ADD_NAMES[AD_NARGS] = {"a", "b", "y", "n"};
static const int32_t ADD_KINDS[AD_NARGS] = {B, B, B, I};

static mps_status add_validate(const cpu_arg* a, mps_error* err) {
  const cpu_kernel* k = &KERNELS[K_ADD];
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, AD_N, 1, INT64_MAX, err));
  for (int idx = AD_A; idx <= AD_Y; idx++) TRY(need_elems(k, a, idx, a[AD_N].i, sizeof(float), err));
  int64_t bytes = a[AD_N].i * (int64_t)sizeof(float);
  TRY(check_overlap(k, a, AD_Y, bytes, AD_A, bytes, 1, err));
  TRY(check_overlap(k, a, AD_Y, bytes, AD_B, bytes, 1, err));
  return mps_ok(err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status add_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_add((const float*)a[AD_A].ptr, (const float*)a[AD_B].ptr, (float*)a[AD_Y].ptr, a[AD_N].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * embedding
 * ---------------------------------------------------------------------------------------------- */

enum { E_IDS, E_TABLE, E_OUT, E_N_IDS, E_DIM, E_VOCAB, E_ACC, E_NARGS };
static const char* const EMBEDDING_NAMES[E_NARGS] = {"ids", "table", "out", "n_ids", "dim", "vocab", "accumulate"};
static const int32_t EMBEDDING_KINDS[E_NARGS] = {B, B, B, I, I, I, I};

static mps_status embedding_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, E_N_IDS, 1, INT64_MAX, err));
  TRY(need_range(k, a, E_DIM, 1, INT64_MAX, err));
  TRY(need_range(k, a, E_VOCAB, 1, INT64_MAX, err));
  int64_t table_total, out_total;
  if (!checked_product(&table_total, (const int64_t[]){a[E_VOCAB].i, a[E_DIM].i}, 2)) {
    return overflow(k, "vocab * dim", err);
  }
  if (!checked_product(&out_total, (const int64_t[]){a[E_N_IDS].i, a[E_DIM].i}, 2)) {
    return overflow(k, "n_ids * dim", err);
  }
  TRY(need_elems(k, a, E_IDS, a[E_N_IDS].i, sizeof(int32_t), err));
  TRY(need_elems(k, a, E_TABLE, table_total, vbytes(k), err));
  TRY(need_elems(k, a, E_OUT, out_total, vbytes(k), err));
  int64_t out_bytes = out_total * vbytes(k);
  TRY(check_overlap(k, a, E_OUT, out_bytes, E_IDS, a[E_N_IDS].i * (int64_t)sizeof(int32_t), 0, err));
  TRY(check_overlap(k, a, E_OUT, out_bytes, E_TABLE, table_total * vbytes(k), 0, err));
  return mps_ok(err);
}

static mps_status embedding_validate(const cpu_arg* a, mps_error* err) {
  return embedding_check(&KERNELS[K_EMBEDDING], a, err);
}
static mps_status embedding16_validate(const cpu_arg* a, mps_error* err) {
  return embedding_check(&KERNELS[K_EMBEDDING16], a, err);
}

/* Ids are data the encoder cannot see, so a bad one is a kernel failure on the executor, not UB. */
#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status embedding_execute(const cpu_arg* a, mps_error* err) {
  const int32_t* ids = (const int32_t*)a[E_IDS].ptr;
  int64_t bad = mps_cpu_embedding(ids, (const float*)a[E_TABLE].ptr, (float*)a[E_OUT].ptr, a[E_N_IDS].i,
                                  a[E_DIM].i, a[E_VOCAB].i, a[E_ACC].i != 0);
  if (bad >= 0) {
    return mps_fail(err, MPS_ERR_KERNEL_FAILED, "embedding: id %" PRId32 " at position %" PRId64
                    " is outside [0, %" PRId64 ")", ids[bad], bad, a[E_VOCAB].i);
  }
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * pool
 * ---------------------------------------------------------------------------------------------- */

enum { P_X, P_MASK, P_Y, P_BATCH, P_SEQ, P_HIDDEN, P_MODE, P_NORMALIZE, P_NARGS };
static const char* const POOL_NAMES[P_NARGS] = {"x", "mask", "y", "batch", "seq", "hidden", "mode", "normalize"};
static const int32_t POOL_KINDS[P_NARGS] = {B, B, B, I, I, I, I, I};

static mps_status pool_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, P_BATCH, 1, INT64_MAX, err));
  TRY(need_range(k, a, P_SEQ, 1, INT64_MAX, err));
  TRY(need_range(k, a, P_HIDDEN, 1, INT64_MAX, err));
  TRY(need_range(k, a, P_MODE, 0, 3, err));
  TRY(need_range(k, a, P_NORMALIZE, 0, 1, err));
  int64_t x_total, y_total, mask_total;
  if (!checked_product(&x_total, (const int64_t[]){a[P_BATCH].i, a[P_SEQ].i, a[P_HIDDEN].i}, 3)) {
    return overflow(k, "batch * seq * hidden", err);
  }
  if (!checked_product(&y_total, (const int64_t[]){a[P_BATCH].i, a[P_HIDDEN].i}, 2)) {
    return overflow(k, "batch * hidden", err);
  }
  if (!checked_product(&mask_total, (const int64_t[]){a[P_BATCH].i, a[P_SEQ].i}, 2)) {
    return overflow(k, "batch * seq", err);
  }
  TRY(need_elems(k, a, P_X, x_total, vbytes(k), err));
  TRY(need_elems(k, a, P_Y, y_total, vbytes(k), err));
  int64_t y_bytes = y_total * vbytes(k);
  TRY(check_overlap(k, a, P_Y, y_bytes, P_X, x_total * vbytes(k), 0, err));
  if (a[P_MASK].kind == MPS_ARG_BUFFER) {
    TRY(need_elems(k, a, P_MASK, mask_total, sizeof(float), err));
    TRY(check_overlap(k, a, P_Y, y_bytes, P_MASK, mask_total * (int64_t)sizeof(float), 0, err));
  }
  return mps_ok(err);
}

static mps_status pool_validate(const cpu_arg* a, mps_error* err) { return pool_check(&KERNELS[K_POOL], a, err); }
static mps_status pool16_validate(const cpu_arg* a, mps_error* err) { return pool_check(&KERNELS[K_POOL16], a, err); }

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status pool_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_pool((const float*)a[P_X].ptr, a[P_MASK].kind == MPS_ARG_BUFFER ? (const float*)a[P_MASK].ptr : NULL,
               (float*)a[P_Y].ptr, a[P_BATCH].i, a[P_SEQ].i, a[P_HIDDEN].i, (int)a[P_MODE].i, (int)a[P_NORMALIZE].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * bias_layernorm
 * ---------------------------------------------------------------------------------------------- */

enum { BL_X, BL_BIAS, BL_RES, BL_GAMMA, BL_BETA, BL_Y, BL_ROWS, BL_COLS, BL_EPS, BL_NARGS };
static const char* const BIAS_LAYERNORM_NAMES[BL_NARGS] = {"x", "bias", "residual", "gamma", "beta",
                                                           "y", "rows", "cols", "eps"};
static const int32_t BIAS_LAYERNORM_KINDS[BL_NARGS] = {B, B, B, B, B, B, I, I, F};

static mps_status bias_layernorm_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, BL_ROWS, 1, INT64_MAX, err));
  TRY(need_range(k, a, BL_COLS, 1, INT64_MAX, err));
  if (a[BL_EPS].f < 0.0) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: eps is %g but must be >= 0", k->name, a[BL_EPS].f);
  }
  int64_t total;
  if (!checked_product(&total, (const int64_t[]){a[BL_ROWS].i, a[BL_COLS].i}, 2)) return overflow(k, "rows * cols", err);
  int64_t cols = a[BL_COLS].i, bytes = total * vbytes(k), row_bytes = cols * vbytes(k);
  TRY(need_elems(k, a, BL_X, total, vbytes(k), err));
  TRY(need_elems(k, a, BL_BIAS, cols, vbytes(k), err));
  if (a[BL_RES].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, BL_RES, total, vbytes(k), err));
  TRY(need_elems(k, a, BL_GAMMA, cols, vbytes(k), err));
  TRY(need_elems(k, a, BL_BETA, cols, vbytes(k), err));
  TRY(need_elems(k, a, BL_Y, total, vbytes(k), err));
  TRY(check_overlap(k, a, BL_Y, bytes, BL_X, bytes, 1, err));
  TRY(check_overlap(k, a, BL_Y, bytes, BL_RES, bytes, 0, err));
  TRY(check_overlap(k, a, BL_Y, bytes, BL_BIAS, row_bytes, 0, err));
  TRY(check_overlap(k, a, BL_Y, bytes, BL_GAMMA, row_bytes, 0, err));
  TRY(check_overlap(k, a, BL_Y, bytes, BL_BETA, row_bytes, 0, err));
  return mps_ok(err);
}

static mps_status bias_layernorm_validate(const cpu_arg* a, mps_error* err) {
  return bias_layernorm_check(&KERNELS[K_BIAS_LAYERNORM], a, err);
}
static mps_status bias_layernorm16_validate(const cpu_arg* a, mps_error* err) {
  return bias_layernorm_check(&KERNELS[K_BIAS_LAYERNORM16], a, err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status bias_layernorm_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_bias_layernorm((const float*)a[BL_X].ptr, (const float*)a[BL_BIAS].ptr,
                         a[BL_RES].kind == MPS_ARG_BUFFER ? (const float*)a[BL_RES].ptr : NULL,
                         (const float*)a[BL_GAMMA].ptr, (const float*)a[BL_BETA].ptr, (float*)a[BL_Y].ptr, a[BL_ROWS].i,
                         a[BL_COLS].i, (float)a[BL_EPS].f);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * attention16
 * ---------------------------------------------------------------------------------------------- */

enum { AT_QKV, AT_BIAS, AT_MASK, AT_OUT, AT_BATCH, AT_SEQ, AT_HEADS, AT_HEAD_DIM, AT_SCALE, AT_NARGS };
static const char* const ATTENTION_NAMES[AT_NARGS] = {"qkv", "bias", "mask", "out", "batch", "seq", "heads",
                                                      "head_dim", "scale"};
static const int32_t ATTENTION_KINDS[AT_NARGS] = {B, B, B, B, I, I, I, I, F};

static mps_status attention16_validate(const cpu_arg* a, mps_error* err) {
  const cpu_kernel* k = &KERNELS[K_ATTENTION16];
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, AT_BATCH, 1, INT32_MAX, err));
  TRY(need_range(k, a, AT_SEQ, 1, INT32_MAX, err));
  TRY(need_range(k, a, AT_HEADS, 1, INT32_MAX, err));
  int64_t d = a[AT_HEAD_DIM].i;
  if (d != 32 && d != 64 && d != 128) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: head_dim is %" PRId64 " but must be 32, 64 or 128", k->name, d);
  }
  int64_t out_elems, tiles;
  if (!checked_product(&out_elems, (const int64_t[]){a[AT_BATCH].i, a[AT_SEQ].i, a[AT_HEADS].i, d}, 4)) {
    return overflow(k, "batch * seq * heads * head_dim", err);
  }
  if (out_elems > INT64_MAX / 3) return overflow(k, "3 * batch * seq * heads * head_dim", err);
  /* one block per (64-query tile, head, sequence) on a one-dimensional grid */
  if (!checked_product(&tiles, (const int64_t[]){(a[AT_SEQ].i + 63) / 64, a[AT_HEADS].i, a[AT_BATCH].i}, 3) ||
      tiles > INT32_MAX) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: ceil(seq / 64) * heads * batch must be at most 2^31 - 1",
                    k->name);
  }
  if ((uintptr_t)a[AT_QKV].ptr % 16 != 0) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: buffer qkv is not 16-byte aligned (it is read 8 values a load)",
                    k->name);
  }
  TRY(need_elems(k, a, AT_QKV, 3 * out_elems, vbytes(k), err));
  TRY(need_elems(k, a, AT_OUT, out_elems, vbytes(k), err));
  if (a[AT_MASK].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, AT_MASK, a[AT_BATCH].i * a[AT_SEQ].i, 4, err));
  int64_t bias_elems = 3 * a[AT_HEADS].i * d; /* heads <= 2^31 - 1, d <= 128: no overflow */
  if (a[AT_BIAS].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, AT_BIAS, bias_elems, vbytes(k), err));
  TRY(check_overlap(k, a, AT_OUT, out_elems * vbytes(k), AT_QKV, 3 * out_elems * vbytes(k), 0, err));
  TRY(check_overlap(k, a, AT_OUT, out_elems * vbytes(k), AT_BIAS, bias_elems * vbytes(k), 0, err));
  TRY(check_overlap(k, a, AT_OUT, out_elems * vbytes(k), AT_MASK, a[AT_BATCH].i * a[AT_SEQ].i * 4, 0, err));
  return mps_ok(err);
}

/* ------------------------------------------------------------------------------------------------
 * activation
 * ---------------------------------------------------------------------------------------------- */

enum { AC_X, AC_Y, AC_N, AC_ACT, AC_NARGS };
static const char* const ACTIVATION_NAMES[AC_NARGS] = {"x", "y", "n", "activation"};
static const int32_t ACTIVATION_KINDS[AC_NARGS] = {B, B, I, I};

static mps_status activation_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  TRY(need_range(k, a, AC_N, 1, INT64_MAX, err));
  TRY(need_range(k, a, AC_ACT, 0, 4, err));
  TRY(need_elems(k, a, AC_X, a[AC_N].i, vbytes(k), err));
  TRY(need_elems(k, a, AC_Y, a[AC_N].i, vbytes(k), err));
  int64_t bytes = a[AC_N].i * vbytes(k);
  TRY(check_overlap(k, a, AC_Y, bytes, AC_X, bytes, 1, err));
  return mps_ok(err);
}

static mps_status activation_validate(const cpu_arg* a, mps_error* err) {
  return activation_check(&KERNELS[K_ACTIVATION], a, err);
}
static mps_status activation16_validate(const cpu_arg* a, mps_error* err) {
  return activation_check(&KERNELS[K_ACTIVATION16], a, err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status activation_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_activation((const float*)a[AC_X].ptr, (float*)a[AC_Y].ptr, a[AC_N].i, (int)a[AC_ACT].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * rel_bias
 * ---------------------------------------------------------------------------------------------- */

enum { RB_SCORES, RB_TABLE, RB_BUCKETS, RB_BATCH, RB_HEADS, RB_SEQ, RB_NUM_BUCKETS, RB_NARGS };
static const char* const REL_BIAS_NAMES[RB_NARGS] = {"scores", "table", "buckets", "batch", "heads", "seq",
                                                     "num_buckets"};
static const int32_t REL_BIAS_KINDS[RB_NARGS] = {B, B, B, I, I, I, I};

static mps_status rel_bias_check(const cpu_kernel* k, const cpu_arg* a, mps_error* err) {
  TRY(check_args(k, a, err));
  for (int idx = RB_BATCH; idx <= RB_NUM_BUCKETS; idx++) TRY(need_range(k, a, idx, 1, INT32_MAX, err));
  int64_t scores, table;
  if (!checked_product(&scores, (const int64_t[]){a[RB_BATCH].i, a[RB_HEADS].i, a[RB_SEQ].i, a[RB_SEQ].i}, 4)) {
    return overflow(k, "batch * heads * seq * seq", err);
  }
  if (!checked_product(&table, (const int64_t[]){a[RB_NUM_BUCKETS].i, a[RB_HEADS].i}, 2)) {
    return overflow(k, "num_buckets * heads", err);
  }
  int64_t distances = 2 * a[RB_SEQ].i - 1;
  TRY(need_elems(k, a, RB_SCORES, scores, vbytes(k), err));
  TRY(need_elems(k, a, RB_TABLE, table, vbytes(k), err));
  TRY(need_elems(k, a, RB_BUCKETS, distances, sizeof(int32_t), err));
  int64_t bytes = scores * vbytes(k);
  TRY(check_overlap(k, a, RB_SCORES, bytes, RB_TABLE, table * vbytes(k), 0, err));
  TRY(check_overlap(k, a, RB_SCORES, bytes, RB_BUCKETS, distances * (int64_t)sizeof(int32_t), 0, err));
  return mps_ok(err);
}

static mps_status rel_bias_validate(const cpu_arg* a, mps_error* err) {
  return rel_bias_check(&KERNELS[K_REL_BIAS], a, err);
}
static mps_status rel_bias16_validate(const cpu_arg* a, mps_error* err) {
  return rel_bias_check(&KERNELS[K_REL_BIAS16], a, err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status rel_bias_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_rel_bias((float*)a[RB_SCORES].ptr, (const float*)a[RB_TABLE].ptr, (const int32_t*)a[RB_BUCKETS].ptr,
                   a[RB_BATCH].i, a[RB_HEADS].i, a[RB_SEQ].i, a[RB_NUM_BUCKETS].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * gemm_packed
 * ---------------------------------------------------------------------------------------------- */

enum { GP_A, GP_W, GP_C, GP_BIAS, GP_M, GP_N, GP_K, GP_LDA, GP_LDC, GP_ACT, GP_NARGS };
static const char* const GEMM_PACKED_NAMES[GP_NARGS] = {"A", "W", "C", "bias", "M", "N", "K", "lda", "ldc",
                                                        "activation"};
static const int32_t GEMM_PACKED_KINDS[GP_NARGS] = {B, B, B, B, I, I, I, I, I, I};

/* Elements of a row-major rows x cols block with leading dimension ld, overflow-checked: 0 on overflow. */
static int block_elems(int64_t* out, int64_t rows, int64_t cols, int64_t ld) {
  int64_t prod;
  if (__builtin_mul_overflow(rows - 1, ld, &prod) || __builtin_add_overflow(prod, cols, out)) return 0;
  return 1;
}

static mps_status gemm_packed_validate(const cpu_arg* a, mps_error* err) {
  const cpu_kernel* k = &KERNELS[K_GEMM_PACKED];
  TRY(check_args(k, a, err));
  for (int idx = GP_M; idx <= GP_LDC; idx++) TRY(need_range(k, a, idx, 1, INT32_MAX, err));
  TRY(need_range(k, a, GP_ACT, 0, 2, err));
  const int64_t m = a[GP_M].i, n = a[GP_N].i, kk = a[GP_K].i;
  if (a[GP_LDA].i < kk) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: lda is %" PRId64 " but must be >= K (%" PRId64 ")", k->name,
                    a[GP_LDA].i, kk);
  }
  if (a[GP_LDC].i < n) {
    return mps_fail(err, MPS_ERR_INVALID_ARGUMENT, "%s: ldc is %" PRId64 " but must be >= N (%" PRId64 ")", k->name,
                    a[GP_LDC].i, n);
  }
  int64_t a_elems, c_elems, w_elems = 0;
  if (!block_elems(&a_elems, m, kk, a[GP_LDA].i)) return overflow(k, "the extent of buffer A", err);
  if (!block_elems(&c_elems, m, n, a[GP_LDC].i)) return overflow(k, "the extent of buffer C", err);
  if (!checked_product(&w_elems, (const int64_t[]){(n + 15) / 16 * 16, kk}, 2)) {
    return overflow(k, "the packed extent of buffer W", err);
  }
  TRY(need_elems(k, a, GP_A, a_elems, sizeof(float), err));
  TRY(need_elems(k, a, GP_W, w_elems, sizeof(float), err));
  TRY(need_elems(k, a, GP_C, c_elems, sizeof(float), err));
  if (a[GP_BIAS].kind == MPS_ARG_BUFFER) TRY(need_elems(k, a, GP_BIAS, n, sizeof(float), err));
  /* C is written block by block while A, W and bias are still read: no overlap at all */
  const int64_t c_bytes = c_elems * (int64_t)sizeof(float);
  TRY(check_overlap(k, a, GP_C, c_bytes, GP_A, a_elems * (int64_t)sizeof(float), 0, err));
  TRY(check_overlap(k, a, GP_C, c_bytes, GP_W, w_elems * (int64_t)sizeof(float), 0, err));
  TRY(check_overlap(k, a, GP_C, c_bytes, GP_BIAS, n * (int64_t)sizeof(float), 0, err));
  return mps_ok(err);
}

#ifndef MPS_KERNEL_TABLE_VALIDATE_ONLY
static mps_status gemm_packed_execute(const cpu_arg* a, mps_error* err) {
  mps_cpu_gemm_packed((const float*)a[GP_A].ptr, a[GP_LDA].i, (const float*)a[GP_W].ptr, (float*)a[GP_C].ptr,
                      a[GP_LDC].i, a[GP_BIAS].kind == MPS_ARG_BUFFER ? (const float*)a[GP_BIAS].ptr : NULL,
                      a[GP_M].i, a[GP_N].i, a[GP_K].i, (int)a[GP_ACT].i);
  return mps_ok(err);
}
#endif

/* ------------------------------------------------------------------------------------------------
 * The table
 * ---------------------------------------------------------------------------------------------- */

/* The cuda backend compiles this file for its validators and signatures only (it executes on the GPU). */
#ifdef MPS_KERNEL_TABLE_VALIDATE_ONLY
#define EXEC(f) NULL
#else
#define EXEC(f) f
#endif

static const cpu_kernel KERNELS[K_COUNT] = {
    [K_GEMM] = {"gemm", G_NARGS, GEMM_NAMES, GEMM_KINDS, 1u << G_BIAS, gemm_validate, EXEC(gemm_execute)},
    [K_LAYERNORM] = {"layernorm", L_NARGS, LAYERNORM_NAMES, LAYERNORM_KINDS, 1u << L_RES, layernorm_validate,
                     EXEC(layernorm_execute)},
    [K_SOFTMAX] = {"softmax", S_NARGS, SOFTMAX_NAMES, SOFTMAX_KINDS, 1u << S_MASK, softmax_validate, EXEC(softmax_execute)},
    [K_GELU] = {"gelu", U_NARGS, UNARY_NAMES, UNARY_KINDS, 0, gelu_validate, EXEC(gelu_execute)},
    [K_TANH] = {"tanh", U_NARGS, UNARY_NAMES, UNARY_KINDS, 0, tanh_validate, EXEC(tanh_execute)},
    [K_BIAS_ADD] = {"bias_add", BA_NARGS, BIAS_ADD_NAMES, BIAS_ADD_KINDS, 0, bias_add_validate, EXEC(bias_add_execute)},
    [K_ADD] = {"add", AD_NARGS, ADD_NAMES, ADD_KINDS, 0, add_validate, EXEC(add_execute)},
    [K_EMBEDDING] = {"embedding", E_NARGS, EMBEDDING_NAMES, EMBEDDING_KINDS, 0, embedding_validate,
                     EXEC(embedding_execute)},
    /* Run only where a backend implements them (cuda); a cpu library naming one fails to compile. */
    [K_GEMM16] = {"gemm16", G_NARGS, GEMM_NAMES, GEMM_KINDS, 1u << G_BIAS, gemm16_validate, NULL, 2},
    [K_LAYERNORM16] = {"layernorm16", L_NARGS, LAYERNORM_NAMES, LAYERNORM_KINDS, 1u << L_RES, layernorm16_validate,
                       NULL, 2},
    [K_SOFTMAX16] = {"softmax16", S_NARGS, SOFTMAX_NAMES, SOFTMAX_KINDS, 1u << S_MASK, softmax16_validate, NULL, 2},
    [K_EMBEDDING16] = {"embedding16", E_NARGS, EMBEDDING_NAMES, EMBEDDING_KINDS, 0, embedding16_validate, NULL, 2},
    [K_POOL] = {"pool", P_NARGS, POOL_NAMES, POOL_KINDS, 1u << P_MASK, pool_validate, EXEC(pool_execute)},
    [K_POOL16] = {"pool16", P_NARGS, POOL_NAMES, POOL_KINDS, 1u << P_MASK, pool16_validate, NULL, 2},
    [K_BIAS_LAYERNORM] = {"bias_layernorm", BL_NARGS, BIAS_LAYERNORM_NAMES, BIAS_LAYERNORM_KINDS, 1u << BL_RES,
                          bias_layernorm_validate, EXEC(bias_layernorm_execute)},
    [K_BIAS_LAYERNORM16] = {"bias_layernorm16", BL_NARGS, BIAS_LAYERNORM_NAMES, BIAS_LAYERNORM_KINDS, 1u << BL_RES,
                            bias_layernorm16_validate, NULL, 2},
    [K_ATTENTION16] = {"attention16", AT_NARGS, ATTENTION_NAMES, ATTENTION_KINDS, (1u << AT_BIAS) | (1u << AT_MASK),
                       attention16_validate, NULL, 2},
    [K_ACTIVATION] = {"activation", AC_NARGS, ACTIVATION_NAMES, ACTIVATION_KINDS, 0, activation_validate,
                      EXEC(activation_execute)},
    [K_ACTIVATION16] = {"activation16", AC_NARGS, ACTIVATION_NAMES, ACTIVATION_KINDS, 0, activation16_validate, NULL, 2},
    [K_REL_BIAS] = {"rel_bias", RB_NARGS, REL_BIAS_NAMES, REL_BIAS_KINDS, 0, rel_bias_validate, EXEC(rel_bias_execute)},
    [K_REL_BIAS16] = {"rel_bias16", RB_NARGS, REL_BIAS_NAMES, REL_BIAS_KINDS, 0, rel_bias16_validate, NULL, 2},
    [K_GEMM_PACKED] = {"gemm_packed", GP_NARGS, GEMM_PACKED_NAMES, GEMM_PACKED_KINDS, 1u << GP_BIAS,
                       gemm_packed_validate, EXEC(gemm_packed_execute), 4, 1},
};

size_t cpu_kernel_count(void) { return K_COUNT; }

const cpu_kernel* cpu_kernel_at(size_t index) { return index < K_COUNT ? &KERNELS[index] : NULL; }

const cpu_kernel* cpu_kernel_find(const char* name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < K_COUNT; i++) {
    if (strcmp(KERNELS[i].name, name) == 0) return &KERNELS[i];
  }
  return NULL;
}
