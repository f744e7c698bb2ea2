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

// Rows of up to 32 x MPS_ROW_REGS values are held in registers (one read, one write); longer rows are
// re-read from memory (L1/L2) pass by pass.
#define MPS_ROW_REGS 32
#define MPS_ROWS_PER_BLOCK 4

// One warp per row, MPS_ROWS_PER_BLOCK rows per block; two passes over the row held in registers (mean,
// then centred variance) keep fp32 accurate for rows whose mean is large against their spread. y may
// alias x: every lane reads its own elements before it writes them.
// h = x + bias + residual at column c of the row starting at base; bias and residual may be null.
template <typename T>
__device__ __forceinline__ float mps_row_h(const T* x, const T* bias, const T* residual, long long base, long long c,
                                           int bf16) {
  return mps_ld(x, base + c, bf16) + (bias ? mps_ld(bias, c, bf16) : 0.0f) +
         (residual ? mps_ld(residual, base + c, bf16) : 0.0f);
}

// bias (a linear layer's, per column) may be null: plain layernorm.
template <typename T>
__device__ void mps_layernorm_rows(const T* x, const T* bias, const T* residual, const T* gamma, const T* beta, T* y,
                                   long long rows, long long cols, float eps, int bf16) {
  int lane = threadIdx.x % MPS_WARP;
  long long row = (long long)blockIdx.x * (blockDim.x / MPS_WARP) + threadIdx.x / MPS_WARP;
  if (row >= rows) return;  // whole warps leave together
  long long base = row * cols;
  float inv_cols = 1.0f / (float)cols;
  if (cols <= MPS_WARP * MPS_ROW_REGS) {
    float v[MPS_ROW_REGS];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      v[i] = 0.0f;
      if (c < cols) {
        v[i] = mps_ld(x, base + c, bf16) + (bias ? mps_ld(bias, c, bf16) : 0.0f) +
               (residual ? mps_ld(residual, base + c, bf16) : 0.0f);
        sum += v[i];
      }
    }
    float mean = mps_warp_sum(sum) * inv_cols;
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      if (c < cols) sq += (v[i] - mean) * (v[i] - mean);
    }
    float inv = rsqrtf(mps_warp_sum(sq) * inv_cols + eps);
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      if (c < cols) mps_st(y, base + c, (v[i] - mean) * inv * mps_ld(gamma, c, bf16) + mps_ld(beta, c, bf16), bf16);
    }
    return;
  }
  float sum = 0.0f;
  for (long long c = lane; c < cols; c += MPS_WARP) sum += mps_row_h(x, bias, residual, base, c, bf16);
  float mean = mps_warp_sum(sum) * inv_cols;
  float sq = 0.0f;
  for (long long c = lane; c < cols; c += MPS_WARP) {
    float d = mps_row_h(x, bias, residual, base, c, bf16) - mean;
    sq += d * d;
  }
  float inv = rsqrtf(mps_warp_sum(sq) * inv_cols + eps);
  __syncwarp();
  for (long long c = lane; c < cols; c += MPS_WARP) {
    float h = mps_row_h(x, bias, residual, base, c, bf16);
    mps_st(y, base + c, (h - mean) * inv * mps_ld(gamma, c, bf16) + mps_ld(beta, c, bf16), bf16);
  }
}

// x is [batch, heads, rows, cols]; one warp per (batch, head, row). A row whose every position is masked
// with -inf attends to nothing: zeros (as on cpu), not NaN.
template <typename T>
__device__ void mps_softmax_rows(T* x, const float* mask, long long batch, long long heads, long long rows,
                                 long long cols, float scale, int bf16) {
  int lane = threadIdx.x % MPS_WARP;
  long long r = (long long)blockIdx.x * (blockDim.x / MPS_WARP) + threadIdx.x / MPS_WARP;
  if (r >= batch * heads * rows) return;
  long long b = r / (heads * rows);
  long long base = r * cols;
  const float* mr = mask ? mask + b * cols : nullptr;
  if (cols <= MPS_WARP * MPS_ROW_REGS) {
    float v[MPS_ROW_REGS];
    float m = MPS_NEG_INF;
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      v[i] = MPS_NEG_INF;
      if (c < cols) {
        v[i] = scale * mps_ld(x, base + c, bf16) + (mr ? mr[c] : 0.0f);
        m = fmaxf(m, v[i]);
      }
    }
    m = mps_warp_max(m);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      if (c < cols) {
        v[i] = m == MPS_NEG_INF ? 0.0f : expf(v[i] - m);
        sum += v[i];
      }
    }
    sum = mps_warp_sum(sum);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int i = 0; i < MPS_ROW_REGS; i++) {
      long long c = lane + (long long)MPS_WARP * i;
      if (c < cols) mps_st(x, base + c, v[i] * inv, bf16);
    }
    return;
  }
  float m = MPS_NEG_INF;
  for (long long c = lane; c < cols; c += MPS_WARP) m = fmaxf(m, scale * mps_ld(x, base + c, bf16) + (mr ? mr[c] : 0.0f));
  m = mps_warp_max(m);
  float sum = 0.0f;
  if (m != MPS_NEG_INF) {
    for (long long c = lane; c < cols; c += MPS_WARP) sum += expf(scale * mps_ld(x, base + c, bf16) + (mr ? mr[c] : 0.0f) - m);
  }
  sum = mps_warp_sum(sum);
  float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  __syncwarp();
  for (long long c = lane; c < cols; c += MPS_WARP) {
    float e = m == MPS_NEG_INF ? 0.0f : expf(scale * mps_ld(x, base + c, bf16) + (mr ? mr[c] : 0.0f) - m);
    mps_st(x, base + c, e * inv, bf16);
  }
}

// cuBLAS computes alpha * op(A) op(B) + beta * C; this adds the bias and applies the activation over the
// strided layout the gemm contract describes (two batch levels, leading dimension ldc). Rows run along
// gridDim.y (the row's matrix position is worked out once per row), columns along x, coalesced.
template <typename T>
__device__ void mps_epilogue_rows(T* c, const T* bias, long long m, long long n, long long ldc, int activation,
                                  long long batch_outer, long long stride_outer, long long batch_inner,
                                  long long stride_inner, int bf16) {
  long long total_rows = batch_outer * batch_inner * m;
  for (long long r = blockIdx.y; r < total_rows; r += gridDim.y) {
    long long row = r % m, rest = r / m;
    long long inner = rest % batch_inner, outer = rest / batch_inner;
    T* p = c + outer * stride_outer + inner * stride_inner + row * ldc;
    for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < n; col += (long long)gridDim.x * blockDim.x) {
      float v = mps_ld(p, col, bf16) + (bias ? mps_ld(bias, col, bf16) : 0.0f);
      if (activation == 1) v = mps_gelu_erf(v);
      else if (activation == 2) v = tanhf(v);
      mps_st(p, col, v, bf16);
    }
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

// One block per sequence, threads over the hidden columns (coalesced across the block), tokens counted
// from the additive mask (0 = token). Normalization takes a first pass for the norm, so 16-bit storage
// rounds once.
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
  float inv_norm = 1.0f;
  for (int pass = normalize ? 0 : 1; pass < 2; pass++) {
    float sq = 0.0f;
    for (long long c = threadIdx.x; c < hidden; c += blockDim.x) {
      float v = 0.0f;
      if (mode == 0) {
        v = mps_ld(xb, c, bf16);
      } else if (tokens > 0) {
        float acc = mode == 2 ? MPS_NEG_INF : 0.0f;
        for (long long t = 0; t < seq; t++) {
          if (mb && mb[t] != 0.0f) continue;
          float e = mps_ld(xb, t * hidden + c, bf16);
          acc = mode == 2 ? fmaxf(acc, e) : acc + e;
        }
        v = acc * scale;
      }
      if (pass == 0) sq += v * v;
      else mps_st(y, b * hidden + c, v * inv_norm, bf16);
    }
    if (pass == 0) inv_norm = 1.0f / fmaxf(sqrtf(mps_block_sum(sq, scratch)), 1e-12f);
  }
}

#define MPS_ROW_KERNELS(SUFFIX, T, BF16_PARAM, BF16)                                                              \
  extern "C" __global__ void mps_layernorm##SUFFIX(const T* x, const T* residual, const T* gamma, const T* beta,   \
                                                   T* y, long long rows, long long cols, float eps BF16_PARAM) {   \
    mps_layernorm_rows(x, (const T*)nullptr, residual, gamma, beta, y, rows, cols, eps, BF16);                   \
  }                                                                                                              \
  extern "C" __global__ void mps_bias_layernorm##SUFFIX(const T* x, const T* bias, const T* residual, const T* gamma, \
                                                        const T* beta, T* y, long long rows, long long cols,          \
                                                        float eps BF16_PARAM) {                                       \
    mps_layernorm_rows(x, bias, residual, gamma, beta, y, rows, cols, eps, BF16);                                \
  }                                                                                                              \
  extern "C" __global__ void mps_softmax##SUFFIX(T* x, const float* mask, long long batch, long long heads,        \
                                                 long long rows, long long cols, float scale BF16_PARAM) {       \
    mps_softmax_rows(x, mask, batch, heads, rows, cols, scale, BF16);                                            \
  }                                                                                                              \
  extern "C" __global__ void mps_gemm_epilogue##SUFFIX(T* c, const T* bias, long long m, long long n, long long ldc, \
                                                       int activation, long long batch_outer, long long stride_outer, \
                                                       long long batch_inner, long long stride_inner BF16_PARAM) {   \
    mps_epilogue_rows(c, bias, m, n, ldc, activation, batch_outer, stride_outer, batch_inner, stride_inner, BF16);  \
  }                                                                                                              \
  extern "C" __global__ void mps_embedding##SUFFIX(const int* ids, const T* table, T* out, long long n_ids,         \
                                                   long long dim, long long vocab, int accumulate,               \
                                                   long long* failure BF16_PARAM) {                              \
    mps_embedding_rows(ids, table, out, n_ids, dim, vocab, accumulate, failure, BF16);                           \
  }                                                                                                              \
  extern "C" __global__ void mps_pool##SUFFIX(const T* x, const float* mask, T* y, long long batch, long long seq,  \
                                              long long hidden, int mode, int normalize BF16_PARAM) {             \
    mps_pool_rows(x, mask, y, batch, seq, hidden, mode, normalize, BF16);                                        \
  }

#define MPS_COMMA ,
MPS_ROW_KERNELS(, float, , 0)
MPS_ROW_KERNELS(16, unsigned short, MPS_COMMA int bf16, bf16)
