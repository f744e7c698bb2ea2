/*
 * Built-in fp32 kernels of the cpu backend.
 *
 * Every kernel is a pure, reentrant function of its arguments: no globals, no locks, so any number of
 * streams may run the same kernel at once (seed hazard 6 was a process-wide LayerNorm lock).
 * Matrices are row-major; strides and leading dimensions are in elements; sizes are int64.
 *
 * Each kernel has two entry points used by the stream runtime:
 *  - validate: runs at encode time on the owner's thread; checks every size, stride and that each
 *    buffer argument holds every element the kernel will touch, so bad input is an error of the
 *    encode call, never an out-of-bounds access on the executor;
 *  - execute: runs on the stream's executor; may still fail on data it cannot see at encode time
 *    (e.g. an embedding id out of range) and then returns MPS_ERR_KERNEL_FAILED with a message.
 *
 * Positional argument lists (B = buffer, B? = optional buffer (MPS_ARG_NONE allowed), I = int, F = float):
 *
 *  gemm       A:B B:B C:B bias:B? M:I N:I K:I lda:I ldb:I ldc:I trans_a:I trans_b:I alpha:F beta:F
 *             activation:I batch_outer:I stride_a_outer:I stride_b_outer:I stride_c_outer:I
 *             batch_inner:I stride_a_inner:I stride_b_inner:I stride_c_inner:I
 *             For o < batch_outer, i < batch_inner, with offsets o*stride_x_outer + i*stride_x_inner:
 *             C = act(alpha * op(A) op(B) + beta * C + bias[n]), op = transpose when trans_x != 0,
 *             bias (length N) broadcast over rows, act: 0 none, 1 GELU (erf), 2 tanh.
 *             Two batch levels express attention over [batch, seq, heads, head_dim] without copies.
 *  layernorm  x:B residual:B? gamma:B beta:B y:B rows:I cols:I eps:F
 *             y = (h - mean(h)) / sqrt(var(h) + eps) * gamma + beta per row, h = x + residual;
 *             y may alias x (in place).
 *  softmax    x:B mask:B? batch:I heads:I rows:I cols:I scale:F
 *             x is [batch, heads, rows, cols]; in place x = softmax_over_cols(scale * x + mask[b, col]),
 *             mask is an additive [batch, cols] tensor (0 keeps, a large negative value drops).
 *  gelu       x:B y:B n:I              y = x * 0.5 * (1 + erf(x / sqrt(2)))   (y may alias x)
 *  tanh       x:B y:B n:I              y = tanh(x)                            (y may alias x)
 *  bias_add   x:B bias:B y:B rows:I cols:I   y[r, c] = x[r, c] + bias[c]      (y may alias x)
 *  add        a:B b:B y:B n:I          y = a + b                              (y may alias a or b)
 *  embedding  ids:B table:B out:B n_ids:I dim:I vocab:I accumulate:I
 *             ids are int32; out[i, :] = (accumulate ? out[i, :] : 0) + table[ids[i], :];
 *             an id outside [0, vocab) fails the kernel naming the id and its position.
 *  bias_layernorm x:B bias:B residual:B? gamma:B beta:B y:B rows:I cols:I eps:F
 *             layernorm with h = x + bias[c] + residual: a linear layer's bias, the residual connection
 *             and the normalization in one pass; y may alias x, not residual.
 *  pool       x:B mask:B? y:B batch:I seq:I hidden:I mode:I normalize:I
 *             x is [batch, seq, hidden], y [batch, hidden]; one sentence embedding per sequence over its
 *             tokens, the positions whose additive attention mask mask[b, t] is 0 (padding carries a
 *             negative value; no mask: every position): mode 0 cls (position 0), 1 mean, 2 max (per
 *             column), 3 mean_sqrt_len (sum / sqrt(tokens)). A sequence without tokens pools to zeros
 *             (cls excepted). normalize 1: y /= max(||y||_2, 1e-12) per sequence.
 *
 *  gemm_packed A:B W:B C:B bias:B? M:I N:I K:I lda:I ldc:I activation:I          (cpu only)
 *             C[M, N] = act(A[M, K] op(B) + bias[n]) with A and C row-major (lda >= K, ldc >= N), act as gemm's,
 *             op(B) (K x N) stored in W packed: panels of 16 columns, panel j holding for p = 0..K-1 the 16
 *             values op(B)[p, 16 j .. 16 j + 15] one after another (columns past N zero), ceil(N / 16) * 16 * K
 *             floats in all. A Linear weight w [N, K] (op(B) = w^T) is packed once when it is uploaded
 *             (mps_cpu_pack_weights, or the same layout written by the host); C may not overlap A, W or bias.
 *
 * 16-bit storage: gemm16, layernorm16, softmax16 and embedding16 take the same arguments with every float
 * tensor stored in 16 bits (IEEE fp16, or bf16 when the device's GEMM math is bf16) and computed in fp32;
 * ids stay int32 and softmax16's mask stays fp32. They have no cpu implementation (execute is NULL).
 * pool16 and bias_layernorm16 likewise (pool16's mask fp32).
 *  attention16 qkv:B bias:B? mask:B? out:B batch:I seq:I heads:I head_dim:I scale:F
 *             16-bit storage only (no fp32 variant, no cpu implementation): qkv is [batch, seq, 3, heads,
 *             head_dim] (one Q|K|V projection's rows), bias [3, heads, head_dim] (that projection's bias, added
 *             to every row as it is read and rounded to the storage type; absent: none), out [batch, seq,
 *             heads, head_dim]; out[b, i, h] = sum_j softmax_j(scale * q[b, i, h] . k[b, j, h] + mask[b, j])
 *             v[b, j, h], the mask an fp32 additive [batch, seq] tensor. A row whose every key is masked with
 *             -inf gets zeros. head_dim is 32, 64 or 128; qkv is 16-byte aligned; out may not overlap qkv,
 *             bias or mask.
 */
#ifndef MPS_CPU_KERNELS_H
#define MPS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "mps/mps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An argument resolved at encode time: buffer base + offset and the bytes available from there. */
typedef struct cpu_arg {
  int32_t kind;   /* mps_arg_kind; MPS_ARG_NONE for an absent optional buffer */
  void* ptr;      /* buffer memory + offset; NULL for MPS_ARG_NONE */
  uint64_t bytes; /* bytes from ptr to the end of the buffer */
  int64_t i;
  double f;
} cpu_arg;

typedef struct cpu_kernel {
  const char* name;
  uint32_t nargs;
  const char* const* arg_names; /* nargs names, used in error messages */
  const int32_t* arg_kinds;     /* nargs kinds: MPS_ARG_BUFFER, MPS_ARG_INT or MPS_ARG_FLOAT */
  uint32_t optional_buffers;    /* bit i set: argument i may be MPS_ARG_NONE */
  mps_status (*validate)(const cpu_arg* args, mps_error* err);
  mps_status (*execute)(const cpu_arg* args, mps_error* err); /* NULL: no cpu implementation */
  uint32_t value_bytes; /* bytes of one stored value of its float tensors: 0 or 4 (fp32), 2 (16-bit storage) */
  uint32_t cpu_only;    /* 1: only the cpu backend runs it (its operands are in a cpu layout); others refuse it */
} cpu_kernel;

/* The table of built-in kernels; immutable. */
size_t cpu_kernel_count(void);
const cpu_kernel* cpu_kernel_at(size_t index);
const cpu_kernel* cpu_kernel_find(const char* name);

/* Direct entry points (also used by the native tests). Sizes are validated by the callers above. */
void mps_cpu_gemm(const float* a, const float* b, float* c, const float* bias, int64_t m, int64_t n, int64_t k,
                  int64_t lda, int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha, float beta,
                  int activation, int64_t batch_outer, int64_t stride_a_outer, int64_t stride_b_outer,
                  int64_t stride_c_outer, int64_t batch_inner, int64_t stride_a_inner, int64_t stride_b_inner,
                  int64_t stride_c_inner);
void mps_cpu_layernorm(const float* x, const float* residual, const float* gamma, const float* beta, float* y,
                       int64_t rows, int64_t cols, float eps);
void mps_cpu_softmax(float* x, const float* mask, int64_t batch, int64_t heads, int64_t rows, int64_t cols,
                     float scale);
void mps_cpu_gelu(const float* x, float* y, int64_t n);
void mps_cpu_tanh(const float* x, float* y, int64_t n);
void mps_cpu_bias_add(const float* x, const float* bias, float* y, int64_t rows, int64_t cols);
void mps_cpu_add(const float* a, const float* b, float* y, int64_t n);
void mps_cpu_bias_layernorm(const float* x, const float* bias, const float* residual, const float* gamma,
                            const float* beta, float* y, int64_t rows, int64_t cols, float eps);
void mps_cpu_pool(const float* x, const float* mask, float* y, int64_t batch, int64_t seq, int64_t hidden, int mode,
                  int normalize);
/* y = f(x) elementwise (y may be x): activation 0 identity, 1 GELU (erf), 2 tanh, 3 GELU (tanh form, Hugging
 * Face's gelu_new), 4 ReLU. */
void mps_cpu_activation(const float* x, float* y, int64_t n, int activation);
/* Relative position bias, in place: scores[b, h, i, j] += table[bucket * heads + h] with
 * bucket = buckets[j - i + seq - 1] clamped to [0, num_buckets); scores [batch, heads, seq, seq], table
 * [num_buckets, heads], buckets int32 [2 seq - 1]. */
void mps_cpu_rel_bias(float* scores, const float* table, const int32_t* buckets, int64_t batch, int64_t heads,
                      int64_t seq, int64_t num_buckets);
/* The packed form of a weight operand (kernels_packed.c): floats it takes for op(B) of K x N, the packing
 * (trans_b: b is [N, K] with leading dimension ldb, a Linear weight; else [K, N]), and C[m, n] = act(A[m, k]
 * packed + bias) with A row-major (lda), C row-major (ldc), bias (length n) or NULL, activation 0 none,
 * 1 GELU (erf), 2 tanh. */
int64_t mps_cpu_packed_floats(int64_t n, int64_t k);
void mps_cpu_pack_weights(const float* b, int64_t ldb, int trans_b, int64_t n, int64_t k, float* packed);
void mps_cpu_gemm_packed(const float* a, int64_t lda, const float* packed, float* c, int64_t ldc, const float* bias,
                         int64_t m, int64_t n, int64_t k, int activation);
/* Returns -1 on success, else the position of the first id outside [0, vocab). */
int64_t mps_cpu_embedding(const int32_t* ids, const float* table, float* out, int64_t n_ids, int64_t dim,
                          int64_t vocab, int accumulate);

#ifdef __cplusplus
}
#endif
#endif
