// Built-in kernels of the cuda backend, compiled at run time by NVRTC (cuda/library.c embeds this file).
// The contracts (argument lists, aliasing rules) are the cpu backend's (cpu/kernels.h); host code in
// cuda/launch.c picks the grid and passes exactly these parameters. No #include: NVRTC compiles this
// without the toolkit's headers, so the library needs nothing at run time but libnvrtc.
//
// Every kernel is a pure function of its arguments; the only shared write is the per-commit failure slot
// of mps_embedding (an id out of range), which the stream's completion thread reads after the commit.

#define MPS_WARP 32

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

// One block per row; two passes over the row (mean, then centred variance) keep fp32 accurate for
// rows whose mean is large against their spread.
extern "C" __global__ void mps_layernorm(const float* x, const float* residual, const float* gamma,
                                         const float* beta, float* y, long long rows, long long cols, float eps) {
  __shared__ float scratch[MPS_WARP];
  long long row = blockIdx.x;
  if (row >= rows) return;
  const float* xr = x + row * cols;
  const float* rr = residual ? residual + row * cols : nullptr;
  float* yr = y + row * cols;
  float sum = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) sum += xr[c] + (rr ? rr[c] : 0.0f);
  float mean = mps_block_sum(sum, scratch) / (float)cols;
  float sq = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    float d = xr[c] + (rr ? rr[c] : 0.0f) - mean;
    sq += d * d;
  }
  float inv = rsqrtf(mps_block_sum(sq, scratch) / (float)cols + eps);
  // Every thread has read its elements before any writes: y may alias x, and each element is read and
  // written by the same thread.
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    float h = xr[c] + (rr ? rr[c] : 0.0f);
    yr[c] = (h - mean) * inv * gamma[c] + beta[c];
  }
}

// x is [batch, heads, rows, cols]; one block per (batch, head, row).
extern "C" __global__ void mps_softmax(float* x, const float* mask, long long batch, long long heads,
                                       long long rows, long long cols, float scale) {
  __shared__ float scratch[MPS_WARP];
  long long r = blockIdx.x;
  if (r >= batch * heads * rows) return;
  long long b = r / (heads * rows);
  float* xr = x + r * cols;
  const float* mr = mask ? mask + b * cols : nullptr;
  float m = -3.402823466e38f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, scale * xr[c] + (mr ? mr[c] : 0.0f));
  m = mps_block_max(m, scratch);
  float sum = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(scale * xr[c] + (mr ? mr[c] : 0.0f) - m);
  float inv = 1.0f / mps_block_sum(sum, scratch);
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    xr[c] = expf(scale * xr[c] + (mr ? mr[c] : 0.0f) - m) * inv;
  }
}

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

// failure: this commit's slot in the stream's host-mapped failure ring: {flag, position, id}. The first
// offending thread wins the flag; the completion thread reports position and id.
extern "C" __global__ void mps_embedding(const int* ids, const float* table, float* out, long long n_ids,
                                         long long dim, long long vocab, int accumulate, long long* failure) {
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
    float v = table[(long long)id * dim + col];
    out[i] = accumulate ? out[i] + v : v;
  }
}

// cuBLAS computes alpha * op(A) op(B) + beta * C; this adds the bias and applies the activation over the
// same strided layout the gemm contract describes (two batch levels, leading dimension ldc).
extern "C" __global__ void mps_gemm_epilogue(float* c, const float* bias, long long m, long long n, long long ldc,
                                             int activation, long long batch_outer, long long stride_outer,
                                             long long batch_inner, long long stride_inner) {
  long long total = batch_outer * batch_inner * m * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long col = i % n, rest = i / n;
    long long row = rest % m;
    rest /= m;
    long long inner = rest % batch_inner, outer = rest / batch_inner;
    float* p = c + outer * stride_outer + inner * stride_inner + row * ldc + col;
    float v = *p + (bias ? bias[col] : 0.0f);
    if (activation == 1) v = mps_gelu_erf(v);
    else if (activation == 2) v = tanhf(v);
    *p = v;
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

extern "C" __global__ void mps_layernorm16(const unsigned short* x, const unsigned short* residual,
                                           const unsigned short* gamma, const unsigned short* beta,
                                           unsigned short* y, long long rows, long long cols, float eps, int bf16) {
  __shared__ float scratch[MPS_WARP];
  long long row = blockIdx.x;
  if (row >= rows) return;
  long long base = row * cols;
  float sum = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    sum += mps_load16(x, base + c, bf16) + (residual ? mps_load16(residual, base + c, bf16) : 0.0f);
  }
  float mean = mps_block_sum(sum, scratch) / (float)cols;
  float sq = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    float d = mps_load16(x, base + c, bf16) + (residual ? mps_load16(residual, base + c, bf16) : 0.0f) - mean;
    sq += d * d;
  }
  float inv = rsqrtf(mps_block_sum(sq, scratch) / (float)cols + eps);
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    float h = mps_load16(x, base + c, bf16) + (residual ? mps_load16(residual, base + c, bf16) : 0.0f);
    mps_store16(y, base + c, (h - mean) * inv * mps_load16(gamma, c, bf16) + mps_load16(beta, c, bf16), bf16);
  }
}

extern "C" __global__ void mps_softmax16(unsigned short* x, const float* mask, long long batch, long long heads,
                                         long long rows, long long cols, float scale, int bf16) {
  __shared__ float scratch[MPS_WARP];
  long long r = blockIdx.x;
  if (r >= batch * heads * rows) return;
  long long b = r / (heads * rows);
  long long base = r * cols;
  const float* mr = mask ? mask + b * cols : nullptr;
  float m = -3.402823466e38f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    m = fmaxf(m, scale * mps_load16(x, base + c, bf16) + (mr ? mr[c] : 0.0f));
  }
  m = mps_block_max(m, scratch);
  float sum = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    sum += expf(scale * mps_load16(x, base + c, bf16) + (mr ? mr[c] : 0.0f) - m);
  }
  float inv = 1.0f / mps_block_sum(sum, scratch);
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
    mps_store16(x, base + c, expf(scale * mps_load16(x, base + c, bf16) + (mr ? mr[c] : 0.0f) - m) * inv, bf16);
  }
}

extern "C" __global__ void mps_embedding16(const int* ids, const unsigned short* table, unsigned short* out,
                                           long long n_ids, long long dim, long long vocab, int accumulate,
                                           long long* failure, int bf16) {
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
    float v = mps_load16(table, (long long)id * dim + col, bf16);
    mps_store16(out, i, accumulate ? mps_load16(out, i, bf16) + v : v, bf16);
  }
}

extern "C" __global__ void mps_gemm_epilogue16(unsigned short* c, const unsigned short* bias, long long m, long long n,
                                               long long ldc, int activation, long long batch_outer,
                                               long long stride_outer, long long batch_inner, long long stride_inner,
                                               int bf16) {
  long long total = batch_outer * batch_inner * m * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long col = i % n, rest = i / n;
    long long row = rest % m;
    rest /= m;
    long long inner = rest % batch_inner, outer = rest / batch_inner;
    long long at = outer * stride_outer + inner * stride_inner + row * ldc + col;
    float v = mps_load16(c, at, bf16) + (bias ? mps_load16(bias, col, bf16) : 0.0f);
    if (activation == 1) v = mps_gelu_erf(v);
    else if (activation == 2) v = tanhf(v);
    mps_store16(c, at, v, bf16);
  }
}
