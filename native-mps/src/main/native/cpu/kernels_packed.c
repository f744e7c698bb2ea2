/*
 * fp32 GEMM over a weight matrix packed once (contract: kernels.h, gemm_packed and mps_cpu_pack_weights).
 *
 * A Linear layer multiplies the same weight matrix W [N, K] by a new activation block on every call.
 * OpenBLAS packs both operands on every call (its oncopy/itcopy passes are ~11 % of a BERT encoder's cpu
 * time) and applies no epilogue, so bias + GELU is another pass over C. Here:
 *
 *  - the weights are packed once, when they are uploaded (mps_cpu_pack_weights here, the same layout written by
 *    the JVM for a model's Linear layers), as panels of NR = 16 columns of op(B) (K x N):
 *    panel j holds, for p = 0..K-1, the 16 values op(B)[p, 16 j .. 16 j + 15] contiguously (the columns past
 *    N zero), so the micro-kernel reads 64 bytes per step of k from one sequential stream;
 *  - gemm_packed computes C = act(A B + bias) in 6 x 16 tiles: 12 vector accumulators, per step of k two
 *    8-float loads of the panel, six broadcasts of A, twelve FMAs. A is read in place (row-major, lda): a
 *    6-row block of it, KC columns wide, stays in L1 while the panel streams from L2. Loops (Goto/BLIS
 *    order): columns in blocks of NCP panels (KC x 16 NCP floats, 1.2 MB at most: that block of the weights
 *    stays in L2/L3 for the whole of A), K in blocks of KC, rows in blocks of MC (that block of A stays in
 *    L2), then each panel of B (KC x 16, in L1), then the 6-row tiles of the row block. The bias and the activation are applied to the
 *    tile in registers after the last block of K, before C is stored, so C is written once per K block and
 *    never read back for an epilogue.
 *
 * GCC's vector extension keeps the tile in registers in every target clone (AVX2+FMA: 15 of 16 ymm
 * registers; AVX-512: the same code in ymm; baseline: two SSE registers per vector, correct but spilling).
 * Sums over k run in the same order for every tile, so results do not depend on the row count or position.
 *
 * Single-threaded per call, like the stream's BLAS (blas-threads defaults to 1: streams give the parallelism).
 */
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/kernels_math.h"

/* Tile and block sizes; MC, KC and NCP chosen by bench_gemm's thread CPU times on MiniLM and BERT-base
 * shapes (AVX2, 32 KiB L1d, 1 MiB L2 per core); the #ifndef lets that benchmark be rebuilt with others. */
#define NR 16
#define MR 6
#ifndef KC
#define KC 384
#endif
#ifndef MC
#define MC 120
#endif
#ifndef NCP
#define NCP 48
#endif

typedef float v8f __attribute__((vector_size(32)));

int64_t mps_cpu_packed_floats(int64_t n, int64_t k) { return (n + NR - 1) / NR * NR * k; }

void mps_cpu_pack_weights(const float* b, int64_t ldb, int trans_b, int64_t n, int64_t k, float* packed) {
  const int64_t panels = (n + NR - 1) / NR;
  for (int64_t jp = 0; jp < panels; jp++) {
    float* dst = packed + jp * NR * k;
    const int64_t j0 = jp * NR, cols = n - j0 < NR ? n - j0 : NR;
    for (int64_t p = 0; p < k; p++) {
      float* row = dst + p * NR;
      /* op(B)[p, j] is b[j * ldb + p] when transposed (a Linear weight [N, K]), else b[p * ldb + j] */
      for (int64_t q = 0; q < cols; q++) row[q] = trans_b ? b[(j0 + q) * ldb + p] : b[p * ldb + j0 + q];
      for (int64_t q = cols; q < NR; q++) row[q] = 0.0f;
    }
  }
}

MPS_ALWAYS_INLINE float packed_act(float v, int activation) {
  return activation == 1 ? mps_geluf(v) : activation == 2 ? mps_tanhf(v) : v;
}

/*
 * One tile: rows [0, rows) x columns [0, cols) of C (rows <= MR and the flags constant after inlining),
 * the products over kc steps of k of A (row stride lda) and the panel bp (NR floats per step).
 * first: C holds nothing yet (else the tile is added to C); last: bias and activation are applied.
 * bias16 is NR floats (the panel's bias, zero padded) or NULL.
 */
MPS_ALWAYS_INLINE void packed_tile(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc,
                                   int rows, int64_t cols, int first, int last, const float* bias16,
                                   int activation) {
  v8f acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = (v8f){0};
  for (int64_t p = 0; p < kc; p++) {
    v8f b0, b1;
    memcpy(&b0, bp + p * NR, sizeof b0);
    memcpy(&b1, bp + p * NR + 8, sizeof b1);
    for (int r = 0; r < rows; r++) {
      const float av = a[r * lda + p];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  v8f bias0 = (v8f){0}, bias1 = (v8f){0};
  if (last && bias16 != NULL) {
    memcpy(&bias0, bias16, sizeof bias0);
    memcpy(&bias1, bias16 + 8, sizeof bias1);
  }
  for (int r = 0; r < rows; r++) {
    float* cr = c + r * ldc;
    float out[NR];
    v8f v0 = acc[r][0], v1 = acc[r][1];
    if (cols == NR) {
      if (!first) {
        v8f o0, o1;
        memcpy(&o0, cr, sizeof o0);
        memcpy(&o1, cr + 8, sizeof o1);
        v0 += o0;
        v1 += o1;
      }
      if (last) {
        v0 += bias0;
        v1 += bias1;
      }
      if (!last || activation == 0) {
        memcpy(cr, &v0, sizeof v0);
        memcpy(cr + 8, &v1, sizeof v1);
        continue;
      }
      memcpy(out, &v0, sizeof v0);
      memcpy(out + 8, &v1, sizeof v1);
      for (int q = 0; q < NR; q++) out[q] = packed_act(out[q], activation);
      memcpy(cr, out, sizeof out);
      continue;
    }
    memcpy(out, &v0, sizeof v0);
    memcpy(out + 8, &v1, sizeof v1);
    for (int64_t q = 0; q < cols; q++) {
      float v = first ? out[q] : out[q] + cr[q];
      if (last) v = packed_act(bias16 != NULL ? v + bias16[q] : v, activation);
      cr[q] = v;
    }
  }
}

/* All tiles of one panel over rows [0, mc): full 6-row tiles, then the remaining rows one tile. */
MPS_ALWAYS_INLINE void packed_panel(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc,
                                    int64_t mc, int64_t cols, int first, int last, const float* bias16,
                                    int activation) {
  int64_t i = 0;
  for (; i + MR <= mc; i += MR) {
    packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, MR, cols, first, last, bias16, activation);
  }
  switch (mc - i) {
    case 5: packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, 5, cols, first, last, bias16, activation); break;
    case 4: packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, 4, cols, first, last, bias16, activation); break;
    case 3: packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, 3, cols, first, last, bias16, activation); break;
    case 2: packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, 2, cols, first, last, bias16, activation); break;
    case 1: packed_tile(a + i * lda, lda, bp, kc, c + i * ldc, ldc, 1, cols, first, last, bias16, activation); break;
    default: break;
  }
}

/* The flags as constants: one specialised loop nest per (first, last, activation). */
MPS_ALWAYS_INLINE void packed_block(const float* a, int64_t lda, const float* packed, int64_t k, int64_t pc,
                                    int64_t kc, float* c, int64_t ldc, const float* bias, int64_t mc, int64_t n,
                                    int64_t jp_begin, int64_t jp_end, int first, int last, int activation) {
  for (int64_t jp = jp_begin; jp < jp_end; jp++) {
    const int64_t j0 = jp * NR, cols = n - j0 < NR ? n - j0 : NR;
    float bias16[NR];
    const float* bias_here = NULL;
    if (last && bias != NULL) {
      for (int64_t q = 0; q < NR; q++) bias16[q] = q < cols ? bias[j0 + q] : 0.0f;
      bias_here = bias16;
    }
    packed_panel(a + pc, lda, packed + jp * NR * k + pc * NR, kc, c + j0, ldc, mc, cols, first, last, bias_here,
                 activation);
  }
}

/* One row block against panels [jb, je) and one block of K: the flags made constants. */
MPS_ALWAYS_INLINE void packed_dispatch(const float* ai, int64_t lda, const float* packed, int64_t k, int64_t pc,
                                       int64_t kc, float* ci, int64_t ldc, const float* bias, int64_t mc, int64_t n,
                                       int64_t jb, int64_t je, int activation) {
  const int first = pc == 0, last = pc + kc == k;
  if (first && last) {
    switch (activation) {
      case 1: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 1, 1, 1); break;
      case 2: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 1, 1, 2); break;
      default: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 1, 1, 0); break;
    }
  } else if (first) {
    packed_block(ai, lda, packed, k, pc, kc, ci, ldc, NULL, mc, n, jb, je, 1, 0, 0);
  } else if (!last) {
    packed_block(ai, lda, packed, k, pc, kc, ci, ldc, NULL, mc, n, jb, je, 0, 0, 0);
  } else {
    switch (activation) {
      case 1: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 0, 1, 1); break;
      case 2: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 0, 1, 2); break;
      default: packed_block(ai, lda, packed, k, pc, kc, ci, ldc, bias, mc, n, jb, je, 0, 1, 0); break;
    }
  }
}

MPS_HOT void mps_cpu_gemm_packed(const float* a, int64_t lda, const float* packed, float* c, int64_t ldc,
                                 const float* bias, int64_t m, int64_t n, int64_t k, int activation) {
  const int64_t panels = (n + NR - 1) / NR;
  for (int64_t jb = 0; jb < panels; jb += NCP) {
    const int64_t je = panels - jb < NCP ? panels : jb + NCP;
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = k - pc < KC ? k - pc : KC;
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = m - ic < MC ? m - ic : MC;
        packed_dispatch(a + ic * lda, lda, packed, k, pc, kc, c + ic * ldc, ldc, bias, mc, n, jb, je, activation);
      }
    }
  }
}
