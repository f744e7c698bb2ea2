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

#define MPS_VEC16 8 /* 16-bit storage: 8 values (16 bytes) at once where rows and pointers allow */

// Own vector types (NVRTC compiles this file without the toolkit's headers).
struct alignas(16) mps_float4 { float x, y, z, w; };
struct alignas(8) mps_half4 { unsigned int x, y; };
struct alignas(16) mps_u4 { unsigned int x, y, z, w; };  // 8 halves

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
  if (V == 8) {
    mps_u4 u = *reinterpret_cast<const mps_u4*>(p + i);
    unsigned int w[4] = {u.x, u.y, u.z, u.w};
    for (int k = 0; k < 4; k++) {
      out[2 * k] = mps_half_bits(w[k] & 0xffffu, bf16);
      out[2 * k + 1] = mps_half_bits(w[k] >> 16, bf16);
    }
  } else if (V == 4) {
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
  if (V == 8) {
    unsigned int w[4];
    for (int k = 0; k < 4; k++) w[k] = mps_bits_half(v[2 * k], bf16) | (mps_bits_half(v[2 * k + 1], bf16) << 16);
    *reinterpret_cast<mps_u4*>(p + i) = mps_u4{w[0], w[1], w[2], w[3]};
  } else if (V == 4) {
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
  if (sizeof(T) == 2 && vec == MPS_VEC16) {
    mps_layernorm_row<MPS_VEC16, MPS_ROW_VECTORS / 2>(x, bias, residual, gamma, beta, y, row * cols, cols, eps, lane,
                                                       bf16);
  } else if (vec == MPS_VEC) {
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
// strided layout the gemm contract describes (two batch levels, leading dimension ldc), V columns at a time:
// blocks stride over the rows (a row's place in the batch levels is worked out once per row), the block's
// threads over the row's vectors (coalesced; the bias vector is the same for every row).
template <int V, typename T>
__device__ void mps_epilogue_vectors(T* c, const T* bias, long long m, long long n, long long ldc, int activation,
                                     long long batch_outer, long long stride_outer, long long batch_inner,
                                     long long stride_inner, int bf16) {
  long long per_row = n / V, rows = batch_outer * batch_inner * m;
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    T* p = c + r * ldc;  // one matrix: rows one ldc apart
    if (batch_outer * batch_inner > 1) {
      long long row = r % m, rest = r / m;
      p = c + (rest / batch_inner) * stride_outer + (rest % batch_inner) * stride_inner + row * ldc;
    }
    for (long long j = threadIdx.x; j < per_row; j += blockDim.x) {
      long long col = j * V;
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
}

template <typename T>
__device__ void mps_epilogue_rows(T* c, const T* bias, long long m, long long n, long long ldc, int activation,
                                  long long batch_outer, long long stride_outer, long long batch_inner,
                                  long long stride_inner, int bf16, int vec) {
  if (sizeof(T) == 2 && vec == MPS_VEC16) {
    mps_epilogue_vectors<MPS_VEC16>(c, bias, m, n, ldc, activation, batch_outer, stride_outer, batch_inner,
                                    stride_inner, bf16);
  } else if (vec == MPS_VEC) {
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

// ---- attention16: softmax(scale * Q K^T + mask) V without writing the scores -------------------------------
// qkv is [batch, seq, 3, heads, head_dim] (the rows of one Q|K|V projection, before its bias), bias [3, heads,
// head_dim] (may be null; added to each value as it is loaded, the sum rounded once to the storage type), out [batch, seq, heads, head_dim], the mask fp32 [batch, seq] (additive, per
// key; may be null). One block per (query tile of 64, head,
// sequence): 4 warps of 16 query rows each. Keys and values go through shared memory 64 at a time; scores live
// in registers only, in tensor-core fragments (mma.sync m16n8k16, fp32 accumulation; V's fragments through
// ldmatrix.trans), with the running
// (online) softmax: each new key tile rescales the row's maximum, sum and output. P is rounded to the storage
// type for the P V product, as the unfused path rounds the stored probabilities. A row whose every key is
// masked with -inf gets zeros (as softmax); keys past seq count as -inf.
#define MPS_ATT_Q 64
#define MPS_ATT_K 64
#define MPS_ATT_PAD 8 /* halves of padding per shared row: fragment reads hit 32 distinct banks */
#define MPS_ATT_THREADS 128


__device__ __forceinline__ unsigned int mps_smem_addr(const void* p) {
  unsigned int a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

__device__ __forceinline__ unsigned int mps_pack2(float lo, float hi, int bf16) {
  unsigned int r;
  if (bf16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// A pair of stored values plus a pair of stored biases in one packed instruction, the exact sum rounded once
// to the storage type (fp16: add.rn.f16x2; bf16: fma.rn.bf16x2 with 1.0, sm_80 and later).
__device__ __forceinline__ unsigned int mps_biased2(unsigned int w, unsigned int b, int bf16) {
  unsigned int r;
  if (bf16) asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(w), "r"(0x3f803f80u), "r"(b));
  else asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(w), "r"(b));
  return r;
}

__device__ __forceinline__ void mps_biased8(mps_u4& u, const unsigned int* b, int bf16) {
  u.x = mps_biased2(u.x, b[0], bf16);
  u.y = mps_biased2(u.y, b[1], bf16);
  u.z = mps_biased2(u.z, b[2], bf16);
  u.w = mps_biased2(u.w, b[3], bf16);
}

// Two stored values at p[i], p[i + 1] as one word (p 2-byte aligned only).
__device__ __forceinline__ unsigned int mps_word16(const unsigned short* p, long long i) {
  return (unsigned int)p[i] | ((unsigned int)p[i + 1] << 16);
}

// c += a (16x16, row) * b (16x8, col), fp32 accumulators.
__device__ __forceinline__ void mps_mma16816(float* c, const unsigned int* a, const unsigned int* b, int bf16) {
  if (bf16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

template <int D>
__device__ void mps_attention_tile(const unsigned short* qkv, const unsigned short* bias, const float* mask,
                                   unsigned short* out, long long seq,
                                   long long heads, float scale, int bf16, long long b, long long head,
                                   long long q0) {
  constexpr int KW = (D + MPS_ATT_PAD) / 2;  // 32-bit words of one shared K or V row
  __shared__ alignas(16) unsigned int ks[MPS_ATT_K * KW];  // K tile, [key][d], pairs of halves
  __shared__ alignas(16) unsigned int vs[MPS_ATT_K * KW];  // V tile, [key][d]
  __shared__ float ms[MPS_ATT_K];                          // the tile's mask, -inf past seq
  const int lane = threadIdx.x % MPS_WARP, warp = threadIdx.x / MPS_WARP, g = lane >> 2, t = lane & 3;
  const long long row_stride = 3 * heads * D, hidden = heads * D;
  const unsigned short* base = qkv + b * seq * row_stride + head * D;
  const float log2e = 1.4426950408889634f;

  // This warp's 16 query rows as A fragments: rows r0 + g and r0 + g + 8, columns 2t.. of each 16-wide step.
  unsigned int qa[D / 16][4];
  long long r_lo = q0 + warp * 16 + g, r_hi = r_lo + 8;
  const unsigned short* hb = bias ? bias + head * D : nullptr;  // this head's Q bias; K's at + hidden, V's at + 2 hidden
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    int c = kk * 16 + 2 * t;
    qa[kk][0] = r_lo < seq ? *reinterpret_cast<const unsigned int*>(base + r_lo * row_stride + c) : 0u;
    qa[kk][1] = r_hi < seq ? *reinterpret_cast<const unsigned int*>(base + r_hi * row_stride + c) : 0u;
    qa[kk][2] = r_lo < seq ? *reinterpret_cast<const unsigned int*>(base + r_lo * row_stride + c + 8) : 0u;
    qa[kk][3] = r_hi < seq ? *reinterpret_cast<const unsigned int*>(base + r_hi * row_stride + c + 8) : 0u;
    if (hb) {
      unsigned int b0 = mps_word16(hb, c), b8 = mps_word16(hb, c + 8);
      if (r_lo < seq) qa[kk][0] = mps_biased2(qa[kk][0], b0, bf16);
      if (r_hi < seq) qa[kk][1] = mps_biased2(qa[kk][1], b0, bf16);
      if (r_lo < seq) qa[kk][2] = mps_biased2(qa[kk][2], b8, bf16);
      if (r_hi < seq) qa[kk][3] = mps_biased2(qa[kk][3], b8, bf16);
    }
  }
  // The head's K and V biases as stored (pairs of 16-bit values) in shared memory, read 8 values at a time
  // as each tile's chunks are biased (the loop's first barrier publishes them).
  __shared__ alignas(16) unsigned int kvb[D];  // K's D / 2 words, then V's
  if (hb) {
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
      kvb[i] = mps_word16(hb, (i < D / 2 ? hidden : 2 * hidden) + 2 * (i % (D / 2)));
    }
  }
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m_lo = MPS_NEG_INF, m_hi = MPS_NEG_INF, l_lo = 0.0f, l_hi = 0.0f;

  for (long long k0 = 0; k0 < seq; k0 += MPS_ATT_K) {
    __syncthreads();  // the previous tile's readers are done
    // K and V rows 16 bytes a thread, consecutive threads along a row (coalesced); every load of the tile is
    // issued before the first store (a fixed trip count, unrolled), so the tile costs one memory latency.
    constexpr int CHUNKS = MPS_ATT_K * D / 8 / MPS_ATT_THREADS;
    mps_u4 kv[CHUNKS], vv[CHUNKS];
#pragma unroll
    for (int u = 0; u < CHUNKS; u++) {
      int i = threadIdx.x + u * MPS_ATT_THREADS, key = i / (D / 8), c = i % (D / 8);
      long long kr = k0 + key;
      kv[u] = vv[u] = mps_u4{0u, 0u, 0u, 0u};
      if (kr < seq) {
        kv[u] = *reinterpret_cast<const mps_u4*>(base + kr * row_stride + hidden + 8 * c);
        vv[u] = *reinterpret_cast<const mps_u4*>(base + kr * row_stride + 2 * hidden + 8 * c);
      }
    }
#pragma unroll
    for (int u = 0; u < CHUNKS; u++) {
      int i = threadIdx.x + u * MPS_ATT_THREADS, key = i / (D / 8), c = i % (D / 8);
      if (hb && k0 + key < seq) {  // keys past seq stay zero (masked)
        mps_u4 kb = *reinterpret_cast<const mps_u4*>(kvb + 4 * c), vb = *reinterpret_cast<const mps_u4*>(kvb + D / 2 + 4 * c);
        mps_biased8(kv[u], &kb.x, bf16);
        mps_biased8(vv[u], &vb.x, bf16);
      }
      *reinterpret_cast<mps_u4*>(ks + key * KW + 4 * c) = kv[u];
      *reinterpret_cast<mps_u4*>(vs + key * KW + 4 * c) = vv[u];
    }
    for (int i = threadIdx.x; i < MPS_ATT_K; i += blockDim.x) {
      long long kr = k0 + i;
      ms[i] = kr < seq ? (mask ? mask[b * seq + kr] : 0.0f) : MPS_NEG_INF;
    }
    __syncthreads();

    // S = Q K^T for 8 column blocks of 8 keys.
    float s[MPS_ATT_K / 8][4];
#pragma unroll
    for (int j = 0; j < MPS_ATT_K / 8; j++) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        const unsigned int* kp = ks + (j * 8 + g) * KW + kk * 8 + t;
        unsigned int bfr[2] = {kp[0], kp[4]};
        mps_mma16816(s[j], qa[kk], bfr, bf16);
      }
    }
    // scale and mask; the tile's row maxima (a row's values are spread over the 4 threads of a quad)
    float tm_lo = MPS_NEG_INF, tm_hi = MPS_NEG_INF;
#pragma unroll
    for (int j = 0; j < MPS_ATT_K / 8; j++) {
      float mk0 = ms[j * 8 + 2 * t], mk1 = ms[j * 8 + 2 * t + 1];
      s[j][0] = s[j][0] * scale + mk0;
      s[j][1] = s[j][1] * scale + mk1;
      s[j][2] = s[j][2] * scale + mk0;
      s[j][3] = s[j][3] * scale + mk1;
      tm_lo = fmaxf(tm_lo, fmaxf(s[j][0], s[j][1]));
      tm_hi = fmaxf(tm_hi, fmaxf(s[j][2], s[j][3]));
    }
    for (int off = 1; off < 4; off <<= 1) {
      tm_lo = fmaxf(tm_lo, __shfl_xor_sync(0xffffffffu, tm_lo, off));
      tm_hi = fmaxf(tm_hi, __shfl_xor_sync(0xffffffffu, tm_hi, off));
    }
    float n_lo = fmaxf(m_lo, tm_lo), n_hi = fmaxf(m_hi, tm_hi);
    // a row with no finite score yet keeps everything at zero
    float a_lo = n_lo == MPS_NEG_INF ? 1.0f : exp2f((m_lo - n_lo) * log2e);
    float a_hi = n_hi == MPS_NEG_INF ? 1.0f : exp2f((m_hi - n_hi) * log2e);
    float sub_lo = n_lo == MPS_NEG_INF ? 0.0f : n_lo, sub_hi = n_hi == MPS_NEG_INF ? 0.0f : n_hi;
    m_lo = n_lo;
    m_hi = n_hi;
    l_lo *= a_lo;
    l_hi *= a_hi;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
      o[j][0] *= a_lo; o[j][1] *= a_lo; o[j][2] *= a_hi; o[j][3] *= a_hi;
    }
#pragma unroll
    for (int j = 0; j < MPS_ATT_K / 8; j++) {
      s[j][0] = exp2f((s[j][0] - sub_lo) * log2e);
      s[j][1] = exp2f((s[j][1] - sub_lo) * log2e);
      s[j][2] = exp2f((s[j][2] - sub_hi) * log2e);
      s[j][3] = exp2f((s[j][3] - sub_hi) * log2e);
      l_lo += s[j][0] + s[j][1];
      l_hi += s[j][2] + s[j][3];
    }
    // O += P V: two adjacent 8-key blocks of S are one A fragment over 16 keys.
#pragma unroll
    for (int kk = 0; kk < MPS_ATT_K / 16; kk++) {
      unsigned int pa[4] = {mps_pack2(s[2 * kk][0], s[2 * kk][1], bf16), mps_pack2(s[2 * kk][2], s[2 * kk][3], bf16),
                            mps_pack2(s[2 * kk + 1][0], s[2 * kk + 1][1], bf16),
                            mps_pack2(s[2 * kk + 1][2], s[2 * kk + 1][3], bf16)};
      // B fragments of two 8-column blocks of V at once: lanes 0-15 address keys kk*16 + 0..15 at column
      // 16 jj, lanes 16-31 the same keys at 16 jj + 8; .trans hands each lane its (2 keys, 1 column) pairs.
      int key = kk * 16 + (lane & 15), col = (lane >> 4) * 8;
#pragma unroll
      for (int jj = 0; jj < D / 16; jj++) {
        unsigned int r[4];
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(mps_smem_addr(vs + key * KW + (jj * 16 + col) / 2)));
        mps_mma16816(o[2 * jj], pa, r, bf16);
        mps_mma16816(o[2 * jj + 1], pa, r + 2, bf16);
      }
    }
  }
  for (int off = 1; off < 4; off <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
  float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
  unsigned short* ob = out + b * seq * hidden + head * D;
#pragma unroll
  for (int j = 0; j < D / 8; j++) {
    int c = j * 8 + 2 * t;
    unsigned int lo = mps_pack2(o[j][0] * inv_lo, o[j][1] * inv_lo, bf16);
    unsigned int hi = mps_pack2(o[j][2] * inv_hi, o[j][3] * inv_hi, bf16);
    if (r_lo < seq) *reinterpret_cast<unsigned int*>(ob + r_lo * hidden + c) = lo;
    if (r_hi < seq) *reinterpret_cast<unsigned int*>(ob + r_hi * hidden + c) = hi;
  }
}

// Grid: one block of 128 threads per (query tile, head, sequence), query tiles fastest; head_dim 32, 64 or 128
// (validated at encode).
#define MPS_ATTENTION_ENTRY(D, MIN_BLOCKS)                                                                   \
  extern "C" __global__ void __launch_bounds__(MPS_ATT_THREADS, MIN_BLOCKS) mps_attention16_d##D(           \
      const unsigned short* qkv, const unsigned short* bias, const float* mask, unsigned short* out,          \
      long long batch, long long seq,                                                                        \
      long long heads, float scale, int bf16) {                                                              \
    long long tiles = (seq + MPS_ATT_Q - 1) / MPS_ATT_Q, blk = blockIdx.x;                                   \
    long long q_tile = blk % tiles, rest = blk / tiles;                                                      \
    mps_attention_tile<D>(qkv, bias, mask, out, seq, heads, scale, bf16, rest / heads, rest % heads,         \
                          q_tile * MPS_ATT_Q);                                                               \
  }
// Blocks an SM keeps resident (registers capped to fit): 4 and 3 for the smaller heads, whatever 128 needs.
MPS_ATTENTION_ENTRY(32, 4)
MPS_ATTENTION_ENTRY(64, 3)
MPS_ATTENTION_ENTRY(128, 1)

// ---- activation and rel_bias: an activation in its own pass, the relative position bias (MPNet) -----------
// Contracts: cpu/kernels.h (mps_cpu_activation, mps_cpu_rel_bias). fp32 and 16-bit storage, computed in fp32.

__device__ __forceinline__ float mps_activate(float v, int activation) {
  switch (activation) {
    case 1: return mps_gelu_erf(v);
    case 2: return tanhf(v);
    case 3: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case 4: return v < 0.0f ? 0.0f : v;
    default: return v;
  }
}

template <typename T>
__device__ void mps_activation_elems(const T* x, T* y, long long n, int activation, int bf16) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    mps_st(y, i, mps_activate(mps_ld(x, i, bf16), activation), bf16);
  }
}

// scores [batch, heads, seq, seq] += table[bucket, head], bucket = buckets[j - i + seq - 1] clamped to the table.
template <typename T>
__device__ void mps_rel_bias_elems(T* scores, const T* table, const int* buckets, long long batch, long long heads,
                                   long long seq, long long num_buckets, int bf16) {
  long long n = batch * heads * seq * seq;
  for (long long at = blockIdx.x * (long long)blockDim.x + threadIdx.x; at < n;
       at += (long long)gridDim.x * blockDim.x) {
    long long j = at % seq, rest = at / seq;
    long long i = rest % seq, h = (rest / seq) % heads;
    long long k = buckets[j - i + seq - 1];
    k = k < 0 ? 0 : k >= num_buckets ? num_buckets - 1 : k;
    mps_st(scores, at, mps_ld(scores, at, bf16) + mps_ld(table, k * heads + h, bf16), bf16);
  }
}

extern "C" __global__ void mps_activation(const float* x, float* y, long long n, int activation, int bf16) {
  mps_activation_elems(x, y, n, activation, bf16);
}
extern "C" __global__ void mps_activation16(const unsigned short* x, unsigned short* y, long long n, int activation,
                                            int bf16) {
  mps_activation_elems(x, y, n, activation, bf16);
}
extern "C" __global__ void mps_rel_bias(float* scores, const float* table, const int* buckets, long long batch,
                                        long long heads, long long seq, long long num_buckets, int bf16) {
  mps_rel_bias_elems(scores, table, buckets, batch, heads, seq, num_buckets, bf16);
}
extern "C" __global__ void mps_rel_bias16(unsigned short* scores, const unsigned short* table, const int* buckets,
                                          long long batch, long long heads, long long seq, long long num_buckets,
                                          int bf16) {
  mps_rel_bias_elems(scores, table, buckets, batch, heads, seq, num_buckets, bf16);
}
