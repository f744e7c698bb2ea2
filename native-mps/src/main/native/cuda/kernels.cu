// Built-in kernels of the cuda backend, compiled at run time by NVRTC (cuda/library.c embeds this file).
// The contracts (argument lists, aliasing rules) are the cpu backend's (cpu/kernels.h); host code in
// cuda/launch.c picks the grid and passes exactly these parameters. No #include: NVRTC compiles this
// without the toolkit's headers, so the library needs nothing at run time but libnvrtc.
//
// Every kernel is a pure function of its arguments; the only shared write is the per-commit failure slot
// of mps_embedding (an id out of range), which the stream's completion thread reads after the commit.

#define MPS_WARP 32
#define MPS_NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float mps_warp_sum(float v) {
  for (int offset = MPS_WARP / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float mps_warp_max(float v) {
  for (int offset = MPS_WARP / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Block-wide sum for blockDim.x a multiple of 32, at most 1024; every thread gets the result.
__device__ float mps_block_sum(float v, float* scratch) {
  int lane = threadIdx.x % MPS_WARP, warp = threadIdx.x / MPS_WARP, warps = blockDim.x / MPS_WARP;
  v = mps_warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return mps_warp_sum(v);
}

__device__ float mps_block_max(float v, float* scratch) {
  int lane = threadIdx.x % MPS_WARP, warp = threadIdx.x / MPS_WARP, warps = blockDim.x / MPS_WARP;
  v = mps_warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -3.402823466e38f;
  return mps_warp_max(v);
}

__device__ __forceinline__ float mps_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

extern "C" __global__ void mps_gelu(const float* x, float* y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = mps_gelu_erf(x[i]);
  }
}

extern "C" __global__ void mps_tanh(const float* x, float* y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = tanhf(x[i]);
  }
}

extern "C" __global__ void mps_bias_add(const float* x, const float* bias, float* y, long long rows, long long cols) {
  long long n = rows * cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = x[i] + bias[i % cols];
  }
}

extern "C" __global__ void mps_add(const float* a, const float* b, float* y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    y[i] = a[i] + b[i];
  }
}

// GEMM operands for the fp16 and bf16 math modes: `n` contiguous fp32 values rounded to 16 bits (the
// span of an operand, gaps between its batches included, so its strides stay valid on the copy).
// Inline PTX: NVRTC compiles this file without the toolkit's cuda_fp16.h.
extern "C" __global__ void mps_round_to_half(const float* src, unsigned short* dst, long long n, int bf16) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned short h;
    float v = src[i];
    if (bf16) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
    else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    dst[i] = h;
  }
}

// Operand addresses of a two-level batched GEMM, for cublasGemmBatchedEx: one launch instead of one cuBLAS
// call per outer batch (attention over [batch, seq, heads, head_dim] has batch x heads matrices whose
// addresses are not one stride apart). out holds n A pointers, then n B pointers, then n C pointers.
extern "C" __global__ void mps_batch_pointers(const char* a, const char* b, char* c, long long outer, long long inner,
                                              long long sa_o, long long sa_i, long long sb_o, long long sb_i,
                                              long long sc_o, long long sc_i, int in_elem, int out_elem,
                                              const void** out) {
  long long n = outer * inner;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long o = i / inner, j = i % inner;
    out[i] = a + (o * sa_o + j * sa_i) * in_elem;
    out[n + i] = b + (o * sb_o + j * sb_i) * in_elem;
    out[2 * n + i] = c + (o * sc_o + j * sc_i) * out_elem;
  }
}

// ---- 16-bit storage (gemm16, layernorm16, softmax16, embedding16) -----------------------------------
// Tensors are stored as 16-bit values, IEEE fp16 or bf16 (`bf16`, from the device's GEMM math), and every
// computation runs in fp32: load widens, store rounds to nearest even.

__device__ __forceinline__ float mps_load16(const unsigned short* p, long long i, int bf16) {
  unsigned short h = p[i];
  if (bf16) return __uint_as_float(((unsigned int)h) << 16);
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ void mps_store16(unsigned short* p, long long i, float v, int bf16) {
  unsigned short h;
  if (bf16) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
  else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  p[i] = h;
}

// ---- Row kernels shared by both storages ----------------------------------------------------------
// Written once over the stored type T (float, or unsigned short holding fp16/bf16 bits): mps_ld widens,
// mps_st rounds. `bf16` only matters for 16-bit storage.

__device__ __forceinline__ float mps_ld(const float* p, long long i, int) { return p[i]; }
__device__ __forceinline__ float mps_ld(const unsigned short* p, long long i, int bf16) { return mps_load16(p, i, bf16); }
__device__ __forceinline__ void mps_st(float* p, long long i, float v, int) { p[i] = v; }
__device__ __forceinline__ void mps_st(unsigned short* p, long long i, float v, int bf16) { mps_store16(p, i, v, bf16); }

// ---- vectors of MPS_VEC values: 16 bytes of fp32, 8 bytes of 16-bit -------------------------------------
// Used where the launcher found the row length a multiple of MPS_VEC and every pointer aligned to a vector
// (`vec` = MPS_VEC); otherwise the same kernels run with vectors of one value (`vec` = 1).
#define MPS_VEC 4

// Own vector types (NVRTC compiles this file without the toolkit's headers).
struct alignas(16) mps_float4 { float x, y, z, w; };
struct alignas(8) mps_half4 { unsigned int x, y; };

__device__ __forceinline__ float mps_half_bits(unsigned int h, int bf16) {
  if (bf16) return __uint_as_float(h << 16);
  float f;
  unsigned short s = (unsigned short)h;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(s));
  return f;
}

__device__ __forceinline__ unsigned int mps_bits_half(float v, int bf16) {
  unsigned short h;
  if (bf16) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
  else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  return h;
}

// V values from p[i], i a multiple of V.
template <int V>
__device__ __forceinline__ void mps_ldv(const float* p, long long i, float* out, int) {
  if (V == 4) {
    mps_float4 f = *reinterpret_cast<const mps_float4*>(p + i);
    out[0] = f.x; out[1] = f.y; out[2] = f.z; out[3] = f.w;
  } else {
    for (int k = 0; k < V; k++) out[k] = p[i + k];
  }
}

template <int V>
__device__ __forceinline__ void mps_ldv(const unsigned short* p, long long i, float* out, int bf16) {
  if (V == 4) {
    mps_half4 u = *reinterpret_cast<const mps_half4*>(p + i);
    out[0] = mps_half_bits(u.x & 0xffffu, bf16); out[1] = mps_half_bits(u.x >> 16, bf16);
    out[2] = mps_half_bits(u.y & 0xffffu, bf16); out[3] = mps_half_bits(u.y >> 16, bf16);
  } else {
    for (int k = 0; k < V; k++) out[k] = mps_load16(p, i + k, bf16);
  }
}

template <int V>
__device__ __forceinline__ void mps_stv(float* p, long long i, const float* v, int) {
  if (V == 4) {
    *reinterpret_cast<mps_float4*>(p + i) = mps_float4{v[0], v[1], v[2], v[3]};
  } else {
    for (int k = 0; k < V; k++) p[i + k] = v[k];
  }
}

template <int V>
__device__ __forceinline__ void mps_stv(unsigned short* p, long long i, const float* v, int bf16) {
  if (V == 4) {
    mps_half4 u{mps_bits_half(v[0], bf16) | (mps_bits_half(v[1], bf16) << 16),
                mps_bits_half(v[2], bf16) | (mps_bits_half(v[3], bf16) << 16)};
    *reinterpret_cast<mps_half4*>(p + i) = u;
  } else {
    for (int k = 0; k < V; k++) mps_store16(p, i + k, v[k], bf16);
  }
}

// ---- row kernels: one warp per row, MPS_ROWS_PER_BLOCK rows a block ---------------------------------------
// A row is cut into vectors of V values; lane l holds vectors l, l + 32, ... in registers (at most N of them,
// so rows of up to 32 * N * V values take one read and one write), and longer rows are re-read pass by pass.
#define MPS_ROWS_PER_BLOCK 4
#define MPS_ROW_VECTORS 8 /* N for V = 4: rows of up to 1024 values in registers */

// h = x + bias + residual for the V values at column c of the row at base; bias and residual may be null.
template <int V, typename T>
__device__ __forceinline__ void mps_row_h(const T* x, const T* bias, const T* residual, long long base, long long c,
                                          float* h, int bf16) {
  mps_ldv<V>(x, base + c, h, bf16);
  float t[V];
  if (bias) {
    mps_ldv<V>(bias, c, t, bf16);
    for (int k = 0; k < V; k++) h[k] += t[k];
  }
  if (residual) {
    mps_ldv<V>(residual, base + c, t, bf16);
    for (int k = 0; k < V; k++) h[k] += t[k];
  }
}

// Two passes (mean, then centred variance) keep fp32 accurate for rows whose mean is large against their
// spread. y may alias x: every lane reads its own values before it writes them.
template <int V, int N, typename T>
__device__ void mps_layernorm_row(const T* x, const T* bias, const T* residual, const T* gamma, const T* beta, T* y,
                                  long long base, long long cols, float eps, int lane, int bf16) {
  long long vectors = cols / V;
  float inv_cols = 1.0f / (float)cols;
  if (vectors <= 32LL * N) {
    float h[N][V];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < N; i++) {
      long long j = lane + 32LL * i;
      if (j >= vectors) break;
      mps_row_h<V>(x, bias, residual, base, j * V, h[i], bf16);
      for (int k = 0; k < V; k++) sum += h[i][k];
    }
    float mean = mps_warp_sum(sum) * inv_cols;
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < N; i++) {
      if (lane + 32LL * i >= vectors) break;
      for (int k = 0; k < V; k++) sq += (h[i][k] - mean) * (h[i][k] - mean);
    }
    float inv = rsqrtf(mps_warp_sum(sq) * inv_cols + eps);
#pragma unroll
    for (int i = 0; i < N; i++) {
      long long j = lane + 32LL * i;
      if (j >= vectors) break;
      float g[V], b[V], out[V];
      mps_ldv<V>(gamma, j * V, g, bf16);
      mps_ldv<V>(beta, j * V, b, bf16);
      for (int k = 0; k < V; k++) out[k] = (h[i][k] - mean) * inv * g[k] + b[k];
      mps_stv<V>(y, base + j * V, out, bf16);
    }
    return;
  }
  float sum = 0.0f, h[V];
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    mps_row_h<V>(x, bias, residual, base, j * V, h, bf16);
    for (int k = 0; k < V; k++) sum += h[k];
  }
  float mean = mps_warp_sum(sum) * inv_cols;
  float sq = 0.0f;
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    mps_row_h<V>(x, bias, residual, base, j * V, h, bf16);
    for (int k = 0; k < V; k++) sq += (h[k] - mean) * (h[k] - mean);
  }
  float inv = rsqrtf(mps_warp_sum(sq) * inv_cols + eps);
  __syncwarp();
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    float g[V], b[V];
    mps_row_h<V>(x, bias, residual, base, j * V, h, bf16);
    mps_ldv<V>(gamma, j * V, g, bf16);
    mps_ldv<V>(beta, j * V, b, bf16);
    for (int k = 0; k < V; k++) h[k] = (h[k] - mean) * inv * g[k] + b[k];
    mps_stv<V>(y, base + j * V, h, bf16);
  }
}

template <typename T>
__device__ void mps_layernorm_rows(const T* x, const T* bias, const T* residual, const T* gamma, const T* beta, T* y,
                                   long long rows, long long cols, float eps, int bf16, int vec) {
  int lane = threadIdx.x % MPS_WARP;
  long long row = (long long)blockIdx.x * (blockDim.x / MPS_WARP) + threadIdx.x / MPS_WARP;
  if (row >= rows) return;  // whole warps leave together
  if (vec == MPS_VEC) {
    mps_layernorm_row<MPS_VEC, MPS_ROW_VECTORS>(x, bias, residual, gamma, beta, y, row * cols, cols, eps, lane, bf16);
  } else {
    mps_layernorm_row<1, MPS_ROW_VECTORS * MPS_VEC>(x, bias, residual, gamma, beta, y, row * cols, cols, eps, lane,
                                                     bf16);
  }
}

// x is [batch, heads, rows, cols]; the mask row (fp32) is the batch's. A row whose every position is masked
// with -inf attends to nothing: zeros (as on cpu), not NaN.
template <int V>
__device__ __forceinline__ void mps_scores(const float* x16, const float* mr, long long c, float scale, float* v) {
  float m[V];
  if (mr) mps_ldv<V>(mr, c, m, 0);
  for (int k = 0; k < V; k++) v[k] = scale * x16[k] + (mr ? m[k] : 0.0f);
}

template <int V, int N, typename T>
__device__ void mps_softmax_row(T* x, const float* mr, long long base, long long cols, float scale, int lane, int bf16) {
  long long vectors = cols / V;
  if (vectors <= 32LL * N) {
    float v[N][V];
    float m = MPS_NEG_INF;
#pragma unroll
    for (int i = 0; i < N; i++) {
      long long j = lane + 32LL * i;
      if (j >= vectors) break;
      float raw[V];
      mps_ldv<V>(x, base + j * V, raw, bf16);
      mps_scores<V>(raw, mr, j * V, scale, v[i]);
      for (int k = 0; k < V; k++) m = fmaxf(m, v[i][k]);
    }
    m = mps_warp_max(m);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < N; i++) {
      if (lane + 32LL * i >= vectors) break;
      for (int k = 0; k < V; k++) {
        v[i][k] = m == MPS_NEG_INF ? 0.0f : expf(v[i][k] - m);
        sum += v[i][k];
      }
    }
    sum = mps_warp_sum(sum);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int i = 0; i < N; i++) {
      long long j = lane + 32LL * i;
      if (j >= vectors) break;
      for (int k = 0; k < V; k++) v[i][k] *= inv;
      mps_stv<V>(x, base + j * V, v[i], bf16);
    }
    return;
  }
  float m = MPS_NEG_INF, raw[V], v[V];
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    mps_ldv<V>(x, base + j * V, raw, bf16);
    mps_scores<V>(raw, mr, j * V, scale, v);
    for (int k = 0; k < V; k++) m = fmaxf(m, v[k]);
  }
  m = mps_warp_max(m);
  float sum = 0.0f;
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    mps_ldv<V>(x, base + j * V, raw, bf16);
    mps_scores<V>(raw, mr, j * V, scale, v);
    for (int k = 0; k < V; k++) sum += m == MPS_NEG_INF ? 0.0f : expf(v[k] - m);
  }
  sum = mps_warp_sum(sum);
  float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  __syncwarp();
  for (long long j = lane; j < vectors; j += MPS_WARP) {
    mps_ldv<V>(x, base + j * V, raw, bf16);
    mps_scores<V>(raw, mr, j * V, scale, v);
    for (int k = 0; k < V; k++) v[k] = m == MPS_NEG_INF ? 0.0f : expf(v[k] - m) * inv;
    mps_stv<V>(x, base + j * V, v, bf16);
  }
}

template <typename T>
__device__ void mps_softmax_rows(T* x, const float* mask, long long batch, long long heads, long long rows,
                                 long long cols, float scale, int bf16, int vec) {
  int lane = threadIdx.x % MPS_WARP;
  long long r = (long long)blockIdx.x * (blockDim.x / MPS_WARP) + threadIdx.x / MPS_WARP;
  if (r >= batch * heads * rows) return;
  const float* mr = mask ? mask + (r / (heads * rows)) * cols : nullptr;
  if (vec == MPS_VEC) mps_softmax_row<MPS_VEC, MPS_ROW_VECTORS>(x, mr, r * cols, cols, scale, lane, bf16);
  else mps_softmax_row<1, MPS_ROW_VECTORS * MPS_VEC>(x, mr, r * cols, cols, scale, lane, bf16);
}

// cuBLAS computes alpha * op(A) op(B) + beta * C; this adds the bias and applies the activation over the
// strided layout the gemm contract describes (two batch levels, leading dimension ldc), V columns at a time
// (a grid-stride loop over vectors: the row's place in the batch levels costs two divisions per vector).
template <int V, typename T>
__device__ void mps_epilogue_vectors(T* c, const T* bias, long long m, long long n, long long ldc, int activation,
                                     long long batch_outer, long long stride_outer, long long batch_inner,
                                     long long stride_inner, int bf16) {
  long long per_row = n / V, total = batch_outer * batch_inner * m * per_row;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long col = (i % per_row) * V, r = i / per_row;
    T* p = c + r * ldc;  // one matrix: rows one ldc apart
    if (batch_outer * batch_inner > 1) {
      long long row = r % m, rest = r / m;
      p = c + (rest / batch_inner) * stride_outer + (rest % batch_inner) * stride_inner + row * ldc;
    }
    float v[V], b[V];
    mps_ldv<V>(p, col, v, bf16);
    if (bias) {
      mps_ldv<V>(bias, col, b, bf16);
      for (int k = 0; k < V; k++) v[k] += b[k];
    }
    for (int k = 0; k < V; k++) {
      if (activation == 1) v[k] = mps_gelu_erf(v[k]);
      else if (activation == 2) v[k] = tanhf(v[k]);
    }
    mps_stv<V>(p, col, v, bf16);
  }
}

template <typename T>
__device__ void mps_epilogue_rows(T* c, const T* bias, long long m, long long n, long long ldc, int activation,
                                  long long batch_outer, long long stride_outer, long long batch_inner,
                                  long long stride_inner, int bf16, int vec) {
  if (vec == MPS_VEC) {
    mps_epilogue_vectors<MPS_VEC>(c, bias, m, n, ldc, activation, batch_outer, stride_outer, batch_inner,
                                  stride_inner, bf16);
  } else {
    mps_epilogue_vectors<1>(c, bias, m, n, ldc, activation, batch_outer, stride_outer, batch_inner, stride_inner,
                            bf16);
  }
}

// failure: this commit's slot in the stream's host-mapped failure ring: {flag, position, id}. The first
// offending thread wins the flag; the completion thread reports position and id.
template <typename T>
__device__ void mps_embedding_rows(const int* ids, const T* table, T* out, long long n_ids, long long dim,
                                   long long vocab, int accumulate, long long* failure, int bf16) {
  long long n = n_ids * dim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    long long row = i / dim, col = i % dim;
    int id = ids[row];
    if (id < 0 || id >= vocab) {
      if (col == 0 && atomicCAS((unsigned long long*)failure, 0ull, 1ull) == 0ull) {
        failure[1] = row;
        failure[2] = id;
        __threadfence_system();
      }
      continue;
    }
    float v = mps_ld(table, (long long)id * dim + col, bf16);
    mps_st(out, i, accumulate ? mps_ld(out, i, bf16) + v : v, bf16);
  }
}

// One block per sequence, threads over the hidden columns (coalesced across the block), tokens counted from
// the additive mask (0 = token); the token loop has no branch (a masked token adds nothing), so its loads
// pipeline. With at most one column per thread (the launcher's usual block) each value is pooled once and
// kept for the norm; otherwise a first pass computes the norm and the second pools again, so 16-bit storage
// rounds once.
template <typename T>
__device__ __forceinline__ float mps_pool_column(const T* xb, const float* mb, long long seq, long long hidden,
                                                 long long c, long long tokens, int mode, float scale, int bf16) {
  if (mode == 0) return mps_ld(xb, c, bf16);
  if (tokens == 0) return 0.0f;
  float acc = mode == 2 ? MPS_NEG_INF : 0.0f;
#pragma unroll 8
  for (long long t = 0; t < seq; t++) {
    bool token = !mb || mb[t] == 0.0f;
    float e = mps_ld(xb, t * hidden + c, bf16);
    acc = mode == 2 ? (token ? fmaxf(acc, e) : acc) : acc + (token ? e : 0.0f);
  }
  return acc * scale;
}

template <typename T>
__device__ void mps_pool_rows(const T* x, const float* mask, T* y, long long batch, long long seq, long long hidden,
                              int mode, int normalize, int bf16) {
  __shared__ float scratch[MPS_WARP];
  long long b = blockIdx.x;
  if (b >= batch) return;
  const T* xb = x + b * seq * hidden;
  const float* mb = mask ? mask + b * seq : nullptr;
  long long tokens = 0;
  for (long long t = 0; t < seq; t++) tokens += (!mb || mb[t] == 0.0f) ? 1 : 0;
  float scale = mode == 1 ? 1.0f / (float)tokens : mode == 3 ? rsqrtf((float)tokens) : 1.0f;
  if (hidden <= (long long)blockDim.x) {
    long long c = threadIdx.x;
    float v = c < hidden ? mps_pool_column(xb, mb, seq, hidden, c, tokens, mode, scale, bf16) : 0.0f;
    float inv_norm = normalize ? 1.0f / fmaxf(sqrtf(mps_block_sum(v * v, scratch)), 1e-12f) : 1.0f;
    if (c < hidden) mps_st(y, b * hidden + c, v * inv_norm, bf16);
    return;
  }
  float inv_norm = 1.0f;
  for (int pass = normalize ? 0 : 1; pass < 2; pass++) {
    float sq = 0.0f;
    for (long long c = threadIdx.x; c < hidden; c += blockDim.x) {
      float v = mps_pool_column(xb, mb, seq, hidden, c, tokens, mode, scale, bf16);
      if (pass == 0) sq += v * v;
      else mps_st(y, b * hidden + c, v * inv_norm, bf16);
    }
    if (pass == 0) inv_norm = 1.0f / fmaxf(sqrtf(mps_block_sum(sq, scratch)), 1e-12f);
  }
}

#define MPS_ROW_KERNELS(SUFFIX, T)                                                                               \
  extern "C" __global__ void mps_layernorm##SUFFIX(const T* x, const T* residual, const T* gamma, const T* beta,   \
                                                   T* y, long long rows, long long cols, float eps, int bf16,    \
                                                   int vec) {                                                    \
    mps_layernorm_rows(x, (const T*)nullptr, residual, gamma, beta, y, rows, cols, eps, bf16, vec);              \
  }                                                                                                              \
  extern "C" __global__ void mps_bias_layernorm##SUFFIX(const T* x, const T* bias, const T* residual, const T* gamma, \
                                                        const T* beta, T* y, long long rows, long long cols,          \
                                                        float eps, int bf16, int vec) {                               \
    mps_layernorm_rows(x, bias, residual, gamma, beta, y, rows, cols, eps, bf16, vec);                           \
  }                                                                                                              \
  extern "C" __global__ void mps_softmax##SUFFIX(T* x, const float* mask, long long batch, long long heads,        \
                                                 long long rows, long long cols, float scale, int bf16, int vec) { \
    mps_softmax_rows(x, mask, batch, heads, rows, cols, scale, bf16, vec);                                       \
  }                                                                                                              \
  extern "C" __global__ void mps_gemm_epilogue##SUFFIX(T* c, const T* bias, long long m, long long n, long long ldc, \
                                                       int activation, long long batch_outer, long long stride_outer, \
                                                       long long batch_inner, long long stride_inner, int bf16,      \
                                                       int vec) {                                                    \
    mps_epilogue_rows(c, bias, m, n, ldc, activation, batch_outer, stride_outer, batch_inner, stride_inner, bf16, vec); \
  }                                                                                                              \
  extern "C" __global__ void mps_embedding##SUFFIX(const int* ids, const T* table, T* out, long long n_ids,         \
                                                   long long dim, long long vocab, int accumulate,               \
                                                   long long* failure, int bf16) {                               \
    mps_embedding_rows(ids, table, out, n_ids, dim, vocab, accumulate, failure, bf16);                           \
  }                                                                                                              \
  extern "C" __global__ void mps_pool##SUFFIX(const T* x, const float* mask, T* y, long long batch, long long seq,  \
                                              long long hidden, int mode, int normalize, int bf16) {              \
    mps_pool_rows(x, mask, y, batch, seq, hidden, mode, normalize, bf16);                                        \
  }

// Every entry point takes `bf16` (ignored by the fp32 ones), so the launcher passes one argument list.
MPS_ROW_KERNELS(, float)
MPS_ROW_KERNELS(16, unsigned short)
