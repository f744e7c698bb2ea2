// Built-in kernels of the metal backend, compiled at run time by newLibraryWithSource (metal/library.m embeds
// this file). The contracts (argument lists, aliasing rules) are the cpu backend's (cpu/kernels.h); host code
// in metal/launch.m binds exactly these buffers and parameter blocks and picks the grids.
//
// Conventions:
//  - every parameter block is a struct of 64-bit fields first, then 32-bit ones; metal/launch.m declares the
//    same structs and static-asserts their sizes, so a field added on one side only fails the build there;
//  - indices are 64-bit (ulong): a buffer may exceed 4 GiB, and the grids below are capped, so every kernel
//    walks its index space with grid-stride loops instead of assuming one thread per element;
//  - an absent optional buffer is bound to a placeholder and flagged off (has_residual, has_mask, has_bias),
//    so every buffer index the function declares is bound (Metal's API validation requires it);
//  - transcendental functions are precise:: (the library is also compiled without fast math).
//
// Every kernel is a pure function of its arguments; the only shared write is the per-commit failure slot of
// mps_embedding (an id out of range), which the stream's completion thread reads after the commit.
#include <metal_stdlib>
using namespace metal;

#define MPS_FLOAT_LOWEST (-3.402823466e38f)

// ---- parameter blocks (mirrored in metal/launch.m) -----------------------------------------------------

struct mps_layernorm_params { long rows; long cols; float eps; int has_residual; };
struct mps_softmax_params { long batch; long heads; long rows; long cols; float scale; int has_mask; };
struct mps_count_params { long n; };
struct mps_pool_params { long batch; long seq; long hidden; int mode; int normalize; int has_mask; int unused; };
struct mps_matrix_params { long rows; long cols; };
struct mps_embedding_params { long n_ids; long dim; long vocab; int accumulate; int unused; };
struct mps_epilogue_params {
  long m; long n; long ldc; long batch_outer; long stride_outer; long batch_inner; long stride_inner;
  int activation; int has_bias;
};
struct mps_gemm_params {
  long m; long n; long k; long lda; long ldb; long ldc;
  long batch_outer; long stride_a_outer; long stride_b_outer; long stride_c_outer;
  long batch_inner; long stride_a_inner; long stride_b_inner; long stride_c_inner;
  float alpha; float beta; int trans_a; int trans_b; int activation; int has_bias;
};

// ---- math -------------------------------------------------------------------------------------------------

// erfc(z) for z >= 0, as t exp(-z^2 + P(t)) with t = 1 / (1 + z/2) and P the degree-9 Chebyshev fit of
// Numerical Recipes ("erfcc"), whose fractional error is below 1.2e-7 on the whole half line. MSL has no
// erf; this is the same formula as the cpu backend's (cpu/kernels_math.h), so both backends round alike.
// Going through erfc keeps the *relative* accuracy of the tail where 1 - erf(z) would cancel to nothing;
// erf(z) = 1 - erfc(z) then has an absolute error below 1.2e-7 plus float rounding.
inline float mps_erfc_pos(float z) {
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = fma(p, t, -0.82215223f);
  p = fma(p, t, 1.48851587f);
  p = fma(p, t, -1.13520398f);
  p = fma(p, t, 0.27886807f);
  p = fma(p, t, -0.18628806f);
  p = fma(p, t, 0.09678418f);
  p = fma(p, t, 0.37409196f);
  p = fma(p, t, 1.00002368f);
  p = fma(p, t, -1.26551223f);
  return t * precise::exp(p - z * z);
}

// gelu(x) = x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2): 0.5 erfc(|x| / sqrt 2) for x < 0 and its complement
// for x >= 0, so the negative tail keeps relative accuracy. gelu(-inf) = 0 (not -inf * 0), NaN propagates.
inline float mps_gelu_erf(float x) {
  float half_erfc = 0.5f * mps_erfc_pos(fabs(x) * 0.70710678118654752f);
  float phi = x < 0.0f ? half_erfc : 1.0f - half_erfc;
  return x < MPS_FLOAT_LOWEST ? 0.0f : x * phi;
}

inline float mps_activation(float v, int activation) {
  if (activation == 1) return mps_gelu_erf(v);
  if (activation == 2) return precise::tanh(v);
  return v;
}

// ---- threadgroup reductions ----------------------------------------------------------------------------

// Sum over the threadgroup, every thread gets the result. Up to 32 SIMD-groups (1024 threads). The first
// barrier keeps this reduction from overwriting `scratch` while a previous one still reads it.
inline float mps_group_sum(float v, threadgroup float* scratch, uint lane, uint sg, uint sgs) {
  v = simd_sum(v);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (lane == 0) scratch[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = lane < sgs ? scratch[lane] : 0.0f;
  return simd_sum(v);
}

inline float mps_group_max(float v, threadgroup float* scratch, uint lane, uint sg, uint sgs) {
  v = simd_max(v);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (lane == 0) scratch[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = lane < sgs ? scratch[lane] : MPS_FLOAT_LOWEST;
  return simd_max(v);
}

// ---- row kernels: one threadgroup per row ----------------------------------------------------------------

// Two passes over the row (mean, then centred variance), both on h - pivot with the row's first element as
// the pivot: for rows whose mean is large against their spread (activations around 100 +- 1, say) the shifted
// values are exact and small, so the fp32 sums keep the digits a plain sum of h would round away (measured in
// a CPU emulation of this kernel, rows of 768 values in [99, 101]: relative L2 error 1.0e-5 unshifted, the
// contract's bound, 8e-8 shifted; 2.3e-6 with a residual in [-1, 1], where forming x + residual in fp32 rounds).
// y may alias x: every thread reads the pivot before the first reduction's barriers, and afterwards each
// element is read and written by the same thread only. bias (per column, has_bias) is bias_layernorm's.
inline void mps_layernorm_rows(device const float* x, device const float* bias, bool has_bias,
                               device const float* residual, device const float* gamma, device const float* beta,
                               device float* y, constant mps_layernorm_params& p, threadgroup float* scratch,
                               uint tid, uint threads, uint group, uint groups, uint lane, uint sg, uint sgs) {
  const ulong cols = (ulong)p.cols;
  for (ulong row = group; row < (ulong)p.rows; row += groups) {
    device const float* xr = x + row * cols;
    device const float* rr = residual + row * cols;
    device float* yr = y + row * cols;
    const float pivot = xr[0] + (has_bias ? bias[0] : 0.0f) + (p.has_residual ? rr[0] : 0.0f);
    float sum = 0.0f;
    for (ulong c = tid; c < cols; c += threads) {
      sum += (xr[c] + (has_bias ? bias[c] : 0.0f) + (p.has_residual ? rr[c] : 0.0f)) - pivot;
    }
    float shift = mps_group_sum(sum, scratch, lane, sg, sgs) / (float)p.cols; // mean - pivot
    float sq = 0.0f;
    for (ulong c = tid; c < cols; c += threads) {
      float d = ((xr[c] + (has_bias ? bias[c] : 0.0f) + (p.has_residual ? rr[c] : 0.0f)) - pivot) - shift;
      sq += d * d;
    }
    float inv = 1.0f / precise::sqrt(mps_group_sum(sq, scratch, lane, sg, sgs) / (float)p.cols + p.eps);
    for (ulong c = tid; c < cols; c += threads) {
      float d = ((xr[c] + (has_bias ? bias[c] : 0.0f) + (p.has_residual ? rr[c] : 0.0f)) - pivot) - shift;
      yr[c] = d * inv * gamma[c] + beta[c];
    }
  }
}

kernel void mps_layernorm(device const float* x [[buffer(0)]], device const float* residual [[buffer(1)]],
                          device const float* gamma [[buffer(2)]], device const float* beta [[buffer(3)]],
                          device float* y [[buffer(4)]], constant mps_layernorm_params& p [[buffer(5)]],
                          uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]],
                          uint group [[threadgroup_position_in_grid]], uint groups [[threadgroups_per_grid]],
                          uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                          uint sgs [[simdgroups_per_threadgroup]]) {
  threadgroup float scratch[32];
  mps_layernorm_rows(x, x, false, residual, gamma, beta, y, p, scratch, tid, threads, group, groups, lane, sg, sgs);
}

// layernorm of x + bias + residual: a linear layer's bias, the residual connection and the normalization in
// one pass (contract: bias_layernorm).
kernel void mps_bias_layernorm(device const float* x [[buffer(0)]], device const float* residual [[buffer(1)]],
                               device const float* gamma [[buffer(2)]], device const float* beta [[buffer(3)]],
                               device float* y [[buffer(4)]], constant mps_layernorm_params& p [[buffer(5)]],
                               device const float* bias [[buffer(6)]],
                               uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]],
                               uint group [[threadgroup_position_in_grid]], uint groups [[threadgroups_per_grid]],
                               uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                               uint sgs [[simdgroups_per_threadgroup]]) {
  threadgroup float scratch[32];
  mps_layernorm_rows(x, bias, true, residual, gamma, beta, y, p, scratch, tid, threads, group, groups, lane, sg, sgs);
}

// x is [batch, heads, rows, cols], softmax in place over cols of scale * x + mask[b, col].
kernel void mps_softmax(device float* x [[buffer(0)]], device const float* mask [[buffer(1)]],
                        constant mps_softmax_params& p [[buffer(2)]],
                        uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]],
                        uint group [[threadgroup_position_in_grid]], uint groups [[threadgroups_per_grid]],
                        uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                        uint sgs [[simdgroups_per_threadgroup]]) {
  threadgroup float scratch[32];
  const ulong cols = (ulong)p.cols;
  const ulong per_batch = (ulong)p.heads * (ulong)p.rows;
  const ulong total = (ulong)p.batch * per_batch;
  for (ulong row = group; row < total; row += groups) {
    device float* xr = x + row * cols;
    device const float* mr = mask + (row / per_batch) * cols;
    float m = MPS_FLOAT_LOWEST;
    for (ulong c = tid; c < cols; c += threads) m = max(m, p.scale * xr[c] + (p.has_mask ? mr[c] : 0.0f));
    m = mps_group_max(m, scratch, lane, sg, sgs);
    float sum = 0.0f;
    for (ulong c = tid; c < cols; c += threads) sum += precise::exp(p.scale * xr[c] + (p.has_mask ? mr[c] : 0.0f) - m);
    float inv = 1.0f / mps_group_sum(sum, scratch, lane, sg, sgs);
    for (ulong c = tid; c < cols; c += threads) {
      xr[c] = precise::exp(p.scale * xr[c] + (p.has_mask ? mr[c] : 0.0f) - m) * inv;
    }
  }
}

// ---- elementwise kernels (y may alias an input: each element is read then written by one thread) ----------

kernel void mps_gelu(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                     constant mps_count_params& p [[buffer(2)]],
                     uint gid [[thread_position_in_grid]], uint grid [[threads_per_grid]]) {
  for (ulong i = gid; i < (ulong)p.n; i += grid) y[i] = mps_gelu_erf(x[i]);
}

kernel void mps_tanh(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                     constant mps_count_params& p [[buffer(2)]],
                     uint gid [[thread_position_in_grid]], uint grid [[threads_per_grid]]) {
  for (ulong i = gid; i < (ulong)p.n; i += grid) y[i] = precise::tanh(x[i]);
}

kernel void mps_add(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                    device float* y [[buffer(2)]], constant mps_count_params& p [[buffer(3)]],
                    uint gid [[thread_position_in_grid]], uint grid [[threads_per_grid]]) {
  for (ulong i = gid; i < (ulong)p.n; i += grid) y[i] = a[i] + b[i];
}

// 2D grid (x: columns, y: rows), so no thread divides a 64-bit index by cols.
kernel void mps_bias_add(device const float* x [[buffer(0)]], device const float* bias [[buffer(1)]],
                         device float* y [[buffer(2)]], constant mps_matrix_params& p [[buffer(3)]],
                         uint3 gid [[thread_position_in_grid]], uint3 grid [[threads_per_grid]]) {
  const ulong cols = (ulong)p.cols;
  for (ulong r = gid.y; r < (ulong)p.rows; r += grid.y) {
    for (ulong c = gid.x; c < cols; c += grid.x) y[r * cols + c] = x[r * cols + c] + bias[c];
  }
}

// 2D grid (x: the embedding dimension, y: ids). `failed` is this commit's failure flag and `failure` its
// {position low, position high, id}: the thread of column 0 that first sets the flag records its id; the
// completion thread reports it (MPS_ERR_KERNEL_FAILED). Other ids of the batch are still looked up.
kernel void mps_embedding(device const int* ids [[buffer(0)]], device const float* table [[buffer(1)]],
                          device float* out [[buffer(2)]], device atomic_uint* failed [[buffer(3)]],
                          device uint* failure [[buffer(4)]], constant mps_embedding_params& p [[buffer(5)]],
                          uint3 gid [[thread_position_in_grid]], uint3 grid [[threads_per_grid]]) {
  const ulong dim = (ulong)p.dim;
  for (ulong r = gid.y; r < (ulong)p.n_ids; r += grid.y) {
    int id = ids[r];
    if (id < 0 || (long)id >= p.vocab) {
      if (gid.x == 0 && atomic_fetch_or_explicit(failed, 1u, memory_order_relaxed) == 0u) {
        failure[0] = (uint)(r & 0xffffffffu);
        failure[1] = (uint)(r >> 32);
        failure[2] = as_type<uint>(id);
      }
      continue;
    }
    device const float* src = table + (ulong)id * dim;
    device float* dst = out + r * dim;
    for (ulong c = gid.x; c < dim; c += grid.x) dst[c] = p.accumulate ? dst[c] + src[c] : src[c];
  }
}

// ---- gemm ---------------------------------------------------------------------------------------------------

// MPSMatrixMultiplication computes alpha * op(A) op(B) + beta * C; this adds the bias and applies the
// activation over the same strided layout the gemm contract describes (two batch levels, leading dimension
// ldc). 3D grid: x columns, y rows, z batches (outer * inner).
kernel void mps_gemm_epilogue(device float* c [[buffer(0)]], device const float* bias [[buffer(1)]],
                              constant mps_epilogue_params& p [[buffer(2)]],
                              uint3 gid [[thread_position_in_grid]], uint3 grid [[threads_per_grid]]) {
  const ulong batches = (ulong)p.batch_outer * (ulong)p.batch_inner;
  for (ulong b = gid.z; b < batches; b += grid.z) {
    ulong outer = b / (ulong)p.batch_inner, inner = b % (ulong)p.batch_inner;
    device float* cb = c + outer * (ulong)p.stride_outer + inner * (ulong)p.stride_inner;
    for (ulong r = gid.y; r < (ulong)p.m; r += grid.y) {
      for (ulong col = gid.x; col < (ulong)p.n; col += grid.x) {
        device float* at = cb + r * (ulong)p.ldc + col;
        *at = mps_activation(*at + (p.has_bias ? bias[col] : 0.0f), p.activation);
      }
    }
  }
}

// The whole gemm contract in one kernel, for the layouts MPSMatrix cannot describe (a batch stride that is
// not a multiple of the leading dimension, e.g. attention heads interleaved in [batch, seq, heads, head_dim]).
// Classic 16 x 16 shared-memory tiling, one output per thread, fp32 fma accumulation in k order, epilogue
// fused. beta == 0 does not read C (BLAS semantics: C may hold NaN). Threadgroups: (16, 16, 1); grid: x
// column tiles, y row tiles, z batches, each walked with a stride so the grid may be capped.
#define MPS_TILE 16
kernel void mps_gemm_tiled(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                           device float* c [[buffer(2)]], device const float* bias [[buffer(3)]],
                           constant mps_gemm_params& p [[buffer(4)]],
                           uint3 tid [[thread_position_in_threadgroup]], uint3 group [[threadgroup_position_in_grid]],
                           uint3 groups [[threadgroups_per_grid]]) {
  threadgroup float a_tile[MPS_TILE][MPS_TILE + 1]; // +1: no bank conflicts on the column reads
  threadgroup float b_tile[MPS_TILE][MPS_TILE + 1];
  const ulong m = (ulong)p.m, n = (ulong)p.n, k = (ulong)p.k;
  const ulong lda = (ulong)p.lda, ldb = (ulong)p.ldb, ldc = (ulong)p.ldc;
  const ulong tiles_m = (m + MPS_TILE - 1) / MPS_TILE, tiles_n = (n + MPS_TILE - 1) / MPS_TILE;
  const ulong batches = (ulong)p.batch_outer * (ulong)p.batch_inner;
  for (ulong batch = group.z; batch < batches; batch += groups.z) {
    ulong outer = batch / (ulong)p.batch_inner, inner = batch % (ulong)p.batch_inner;
    device const float* ab = a + outer * (ulong)p.stride_a_outer + inner * (ulong)p.stride_a_inner;
    device const float* bb = b + outer * (ulong)p.stride_b_outer + inner * (ulong)p.stride_b_inner;
    device float* cb = c + outer * (ulong)p.stride_c_outer + inner * (ulong)p.stride_c_inner;
    for (ulong tm = group.y; tm < tiles_m; tm += groups.y) {
      for (ulong tn = group.x; tn < tiles_n; tn += groups.x) {
        const ulong row = tm * MPS_TILE + tid.y, col = tn * MPS_TILE + tid.x;
        float acc = 0.0f;
        for (ulong k0 = 0; k0 < k; k0 += MPS_TILE) {
          ulong ka = k0 + tid.x; // op(A)[row, ka]
          a_tile[tid.y][tid.x] = row < m && ka < k ? (p.trans_a ? ab[ka * lda + row] : ab[row * lda + ka]) : 0.0f;
          ulong kb = k0 + tid.y; // op(B)[kb, col]
          b_tile[tid.y][tid.x] = kb < k && col < n ? (p.trans_b ? bb[col * ldb + kb] : bb[kb * ldb + col]) : 0.0f;
          threadgroup_barrier(mem_flags::mem_threadgroup);
          for (uint kk = 0; kk < MPS_TILE; kk++) acc = fma(a_tile[tid.y][kk], b_tile[kk][tid.x], acc);
          threadgroup_barrier(mem_flags::mem_threadgroup);
        }
        if (row < m && col < n) {
          device float* at = cb + row * ldc + col;
          float v = p.alpha * acc;
          if (p.beta != 0.0f) v = fma(p.beta, *at, v);
          if (p.has_bias) v += bias[col];
          *at = mps_activation(v, p.activation);
        }
      }
    }
  }
}

// ---- sentence-embedding pooling ------------------------------------------------------------------------

// One threadgroup per sequence (grid-stride over sequences), threads over the hidden columns. A token is a
// position whose additive mask is 0; mode 0 cls, 1 mean, 2 max, 3 mean_sqrt_len; a sequence without tokens
// pools to zeros. normalize: a first pass computes the norm, the second writes y / max(norm, 1e-12).
kernel void mps_pool(device const float* x [[buffer(0)]], device const float* mask [[buffer(1)]],
                     device float* y [[buffer(2)]], constant mps_pool_params& p [[buffer(3)]],
                     uint tid [[thread_index_in_threadgroup]], uint threads [[threads_per_threadgroup]],
                     uint group [[threadgroup_position_in_grid]], uint groups [[threadgroups_per_grid]],
                     uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                     uint sgs [[simdgroups_per_threadgroup]]) {
  threadgroup float scratch[32];
  const ulong seq = (ulong)p.seq, hidden = (ulong)p.hidden;
  for (ulong b = group; b < (ulong)p.batch; b += groups) {
    device const float* xb = x + b * seq * hidden;
    device const float* mb = mask + b * seq;
    ulong tokens = 0;
    for (ulong t = 0; t < seq; t++) tokens += (!p.has_mask || mb[t] == 0.0f) ? 1 : 0;
    float scale = p.mode == 1 ? 1.0f / (float)tokens : p.mode == 3 ? 1.0f / precise::sqrt((float)tokens) : 1.0f;
    float inv_norm = 1.0f;
    for (int pass = p.normalize ? 0 : 1; pass < 2; pass++) {
      float sq = 0.0f;
      for (ulong c = tid; c < hidden; c += threads) {
        float v = 0.0f;
        if (p.mode == 0) {
          v = xb[c];
        } else if (tokens > 0) {
          float acc = p.mode == 2 ? -INFINITY : 0.0f;
          for (ulong t = 0; t < seq; t++) {
            if (p.has_mask && mb[t] != 0.0f) continue;
            float e = xb[t * hidden + c];
            acc = p.mode == 2 ? max(acc, e) : acc + e;
          }
          v = acc * scale;
        }
        if (pass == 0) sq += v * v;
        else y[b * hidden + c] = v * inv_norm;
      }
      if (pass == 0) inv_norm = 1.0f / max(precise::sqrt(mps_group_sum(sq, scratch, lane, sg, sgs)), 1e-12f);
    }
  }
}

// ---- activation and rel_bias (contracts: cpu/kernels.h, mps_cpu_activation and mps_cpu_rel_bias) ----------

struct mps_activation_params { long n; int activation; int unused; };
struct mps_rel_bias_params { long batch; long heads; long seq; long num_buckets; };

kernel void mps_activation(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                           constant mps_activation_params& p [[buffer(2)]],
                           uint gid [[thread_position_in_grid]], uint grid [[threads_per_grid]]) {
  for (ulong i = gid; i < (ulong)p.n; i += grid) {
    float v = x[i];
    switch (p.activation) {
      case 1: v = mps_gelu_erf(v); break;
      case 2: v = precise::tanh(v); break;
      case 3: v = 0.5f * v * (1.0f + precise::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))); break;
      case 4: v = v < 0.0f ? 0.0f : v; break;
      default: break;
    }
    y[i] = v;
  }
}

// 2D grid (x: key column j, y: the (batch, head, query row) rows of the scores).
kernel void mps_rel_bias(device float* scores [[buffer(0)]], device const float* table [[buffer(1)]],
                         device const int* buckets [[buffer(2)]], constant mps_rel_bias_params& p [[buffer(3)]],
                         uint3 gid [[thread_position_in_grid]], uint3 grid [[threads_per_grid]]) {
  const ulong seq = (ulong)p.seq, rows = (ulong)(p.batch * p.heads) * seq;
  for (ulong r = gid.y; r < rows; r += grid.y) {
    const long i = (long)(r % seq), h = (long)((r / seq) % (ulong)p.heads);
    for (ulong j = gid.x; j < seq; j += grid.x) {
      long k = buckets[(long)j - i + p.seq - 1];
      k = k < 0 ? 0 : k >= p.num_buckets ? p.num_buckets - 1 : k;
      scores[r * seq + j] += table[k * p.heads + h];
    }
  }
}
