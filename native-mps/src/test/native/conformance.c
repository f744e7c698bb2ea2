/*
 * Conformance of a backend over the C ABI: every built-in kernel against a float64 reference computed here,
 * on random non-zero data, with the same program whatever the backend. The backend (and its GEMM math mode)
 * comes from the command line:
 *
 *   conformance BACKEND [fp32|tf32|fp16|bf16]
 *
 * Data moves by upload/download commands only (a GPU's buffers are not host visible). The fp32 kernels run
 * on every backend; the 16-bit storage kernels where the backend offers them (fp16/bf16 math on a GPU): a
 * backend that refuses them is reported as not offering them, with its message. Also checked: an embedding id
 * out of range fails its commit naming the id and position while the stream serves the next commit, a bad
 * argument is refused at encode time naming it, and every object is released at the end. Exit status 0 when
 * every check passed; 1 otherwise; 2 when the backend cannot be opened.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mps/mps.h"

static int g_passed, g_failed;

#define CHECK(cond, ...)                   \
  do {                                     \
    if (cond) {                            \
      g_passed++;                          \
    } else {                               \
      g_failed++;                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);        \
      fputc('\n', stderr);                 \
    }                                      \
  } while (0)

static void must(mps_status s, const mps_error* err, const char* what) {
  if (s != MPS_OK) {
    fprintf(stderr, "FATAL %s: %s: %s\n", what, mps_status_name(s), err ? err->message : "");
    exit(1);
  }
}

/* ---- completions: one stream, its points waited for with a bound ------------------------------- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t completed;
  mps_status last_status;
  char last_message[MPS_ERROR_MESSAGE_CAPACITY];
  int stopped;
} completions;

static void on_start(void* user) { (void)user; }

static void on_complete(void* user, uint64_t point, mps_status status, const char* message, uint64_t s, uint64_t f) {
  completions* c = user;
  (void)s;
  (void)f;
  pthread_mutex_lock(&c->mu);
  c->completed = point;
  c->last_status = status;
  snprintf(c->last_message, sizeof c->last_message, "%s", message ? message : "");
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void on_stop(void* user) {
  completions* c = user;
  pthread_mutex_lock(&c->mu);
  c->stopped = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static struct timespec deadline_in(int seconds) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += seconds;
  return t;
}

static mps_device* g_device;
static mps_stream* g_stream;
static completions g_done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, MPS_OK, "", 0};

/* Commits what was encoded and waits (at most 120 s) for it; the commit's status, its message in `message`. */
static mps_status run(char* message, size_t capacity) {
  uint64_t point = 0;
  mps_error err = {0};
  must(mps_stream_commit(g_stream, &point, &err), &err, "commit");
  struct timespec until = deadline_in(120);
  pthread_mutex_lock(&g_done.mu);
  int rc = 0;
  while (g_done.completed < point && rc == 0) rc = pthread_cond_timedwait(&g_done.cv, &g_done.mu, &until);
  mps_status s = g_done.completed >= point ? g_done.last_status : MPS_ERR_STATE;
  if (message) snprintf(message, capacity, "%s", g_done.completed >= point ? g_done.last_message : "timed out");
  pthread_mutex_unlock(&g_done.mu);
  return s;
}

/* ---- buffers and data ---------------------------------------------------------------------------- */

#define MAX_BUFFERS 64
static mps_buffer* g_buffers[MAX_BUFFERS];
static int g_nbuffers;

static mps_buffer* upload(const void* data, size_t bytes) {
  mps_buffer* b = NULL;
  mps_error err = {0};
  must(mps_buffer_alloc(g_device, bytes, &b, &err), &err, "buffer alloc");
  if (data) must(mps_stream_encode_upload(g_stream, data, b, 0, bytes, &err), &err, "upload");
  if (g_nbuffers == MAX_BUFFERS) {
    fprintf(stderr, "FATAL: more than %d buffers\n", MAX_BUFFERS);
    exit(1);
  }
  g_buffers[g_nbuffers++] = b;
  return b;
}

static void download(mps_buffer* b, void* dst, size_t bytes) {
  mps_error err = {0};
  must(mps_stream_encode_download(g_stream, b, 0, dst, bytes, &err), &err, "download");
  char msg[MPS_ERROR_MESSAGE_CAPACITY];
  mps_status s = run(msg, sizeof msg);
  if (s != MPS_OK) {
    fprintf(stderr, "FATAL download: %s %s\n", mps_status_name(s), msg);
    exit(1);
  }
}

static void release_buffers(void) {
  for (int i = 0; i < g_nbuffers; i++) mps_buffer_release(g_buffers[i], NULL);
  g_nbuffers = 0;
}

static uint64_t g_rng = 0x2545F4914F6CDD1DULL;
/* uniform in [lo, hi), never exactly zero */
static float uniform(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  float v = lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
  return v == 0.0f ? 0.5f * hi : v;
}

static float* random_floats(size_t n, float lo, float hi) {
  float* v = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) v[i] = uniform(lo, hi);
  return v;
}

static double rel_l2(const double* got, const double* want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

static double rel_l2_f(const float* got, const double* want, size_t n) {
  double* g = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) g[i] = got[i];
  double e = rel_l2(g, want, n);
  free(g);
  return e;
}

/* ---- 16-bit storage: IEEE fp16 or bf16 bit patterns, round to nearest even ------------------------------ */

static int g_bf16; /* the 16-bit kernels' format: bf16 under bf16 math, fp16 otherwise */

static double from16(uint16_t h) {
  if (g_bf16) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  _Float16 v;
  memcpy(&v, &h, 2);
  return (double)v;
}

/* finite inputs only (the data here is) */
static uint16_t to16(float f) {
  if (g_bf16) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  _Float16 v = (_Float16)f; /* IEEE conversion: round to nearest even */
  uint16_t h;
  memcpy(&h, &v, 2);
  return h;
}

/* n random values rounded to 16 bits: the stored bits, and their exact values for the reference */
static uint16_t* random16(size_t n, float lo, float hi, double** exact) {
  uint16_t* h = malloc(n * 2);
  *exact = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    h[i] = to16(uniform(lo, hi));
    (*exact)[i] = from16(h[i]);
  }
  return h;
}

static double rel_l2_16(const uint16_t* got, const double* want, size_t n) {
  double* g = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) g[i] = from16(got[i]);
  double e = rel_l2(g, want, n);
  free(g);
  return e;
}

/* ---- arguments ------------------------------------------------------------------------------------- */

static mps_arg B(mps_buffer* b) { return (mps_arg){MPS_ARG_BUFFER, b, 0, 0, 0.0}; }
static mps_arg NONE(void) { return (mps_arg){MPS_ARG_NONE, NULL, 0, 0, 0.0}; }
static mps_arg I(int64_t v) { return (mps_arg){MPS_ARG_INT, NULL, 0, v, 0.0}; }
static mps_arg F(double v) { return (mps_arg){MPS_ARG_FLOAT, NULL, 0, 0, v}; }

static mps_library* g_library;   /* the fp32 kernels */
static mps_library* g_library16; /* the 16-bit kernels, where offered */
#define MAX_PIPELINES 32
static mps_pipeline* g_pipelines[MAX_PIPELINES];
static int g_npipelines;

static mps_pipeline* pipeline(mps_library* lib, const char* name) {
  mps_pipeline* p = NULL;
  mps_error err = {0};
  must(mps_pipeline_create(lib, name, &p, &err), &err, name);
  if (g_npipelines == MAX_PIPELINES) {
    fprintf(stderr, "FATAL: more than %d pipelines\n", MAX_PIPELINES);
    exit(1);
  }
  g_pipelines[g_npipelines++] = p;
  return p;
}

/* Encodes one kernel and runs it; MPS_OK or the commit's failure. */
static mps_status kernel(mps_pipeline* p, const char* name, mps_arg* args, uint32_t n) {
  mps_error err = {0};
  must(mps_stream_encode_kernel(g_stream, p, args, n, &err), &err, name);
  char msg[MPS_ERROR_MESSAGE_CAPACITY];
  mps_status s = run(msg, sizeof msg);
  CHECK(s == MPS_OK, "%s completes: %s %s", name, mps_status_name(s), msg);
  return s;
}

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static void report(const char* name, double e, double limit) {
  CHECK(e < limit, "%s: rel L2 %.3e over %.1e", name, e, limit);
  printf("[conformance] %-40s rel L2 %.3e (limit %.0e)\n", name, e, limit);
}

/* ---- fp32 kernels ---------------------------------------------------------------------------------- */

/* C[o, i] = act(alpha op(A) op(B) + beta C + bias) over two batch levels (the inner one not folding into
 * the outer), each transpose combination. */
static void check_gemm(double gemm_limit, int trans_a, int trans_b, int act) {
  const int64_t m = 19, n = 24, k = 33, bo = 2, bi = 3;
  const int64_t lda = trans_a ? m + 3 : k + 1, ldb = trans_b ? k + 2 : n + 5, ldc = n + 4;
  const int64_t a_rows = trans_a ? k : m, b_rows = trans_b ? n : k;
  const int64_t sa_i = a_rows * lda, sb_i = b_rows * ldb, sc_i = m * ldc;
  const int64_t sa_o = bi * sa_i + 7, sb_o = bi * sb_i + 5, sc_o = bi * sc_i + 3; /* gaps: no folding */
  size_t na = (size_t)(bo * sa_o), nb = (size_t)(bo * sb_o), nc = (size_t)(bo * sc_o);
  float *a = random_floats(na, -1, 1), *b = random_floats(nb, -1, 1), *c = random_floats(nc, -1, 1);
  float* bias = random_floats((size_t)n, -1, 1);
  const double alpha = 0.75, beta = 0.5;
  mps_buffer *ba = upload(a, na * 4), *bb = upload(b, nb * 4), *bc = upload(c, nc * 4), *bbias = upload(bias, n * 4);
  mps_arg args[] = {B(ba), B(bb), B(bc), B(bbias), I(m), I(n), I(k), I(lda), I(ldb), I(ldc), I(trans_a), I(trans_b),
                    F(alpha), F(beta), I(act), I(bo), I(sa_o), I(sb_o), I(sc_o), I(bi), I(sa_i), I(sb_i), I(sc_i)};
  kernel(pipeline(g_library, "gemm"), "gemm", args, 23);
  float* got = malloc(nc * 4);
  download(bc, got, nc * 4);
  size_t count = (size_t)(bo * bi * m * n);
  double *gw = malloc(count * sizeof(double)), *want = malloc(count * sizeof(double));
  size_t idx = 0;
  for (int64_t o = 0; o < bo; o++)
    for (int64_t i = 0; i < bi; i++)
      for (int64_t r = 0; r < m; r++)
        for (int64_t col = 0; col < n; col++, idx++) {
          double acc = 0;
          for (int64_t x = 0; x < k; x++) {
            double av = a[o * sa_o + i * sa_i + (trans_a ? x * lda + r : r * lda + x)];
            double bv = b[o * sb_o + i * sb_i + (trans_b ? col * ldb + x : x * ldb + col)];
            acc += av * bv;
          }
          int64_t ci = o * sc_o + i * sc_i + r * ldc + col;
          double v = alpha * acc + beta * c[ci] + bias[col];
          want[idx] = act == 1 ? gelu(v) : act == 2 ? tanh(v) : v;
          gw[idx] = got[ci];
        }
  char name[64];
  snprintf(name, sizeof name, "gemm %s%s %s", trans_a ? "T" : "N", trans_b ? "T" : "N",
           act == 1 ? "bias+GELU" : act == 2 ? "bias+tanh" : "bias");
  report(name, rel_l2(gw, want, count), gemm_limit);
  /* the gaps between batches are never written */
  int gaps_kept = 1;
  for (int64_t o = 0; o < bo; o++)
    for (int64_t x = bi * sc_i; x < sc_o; x++) gaps_kept = gaps_kept && got[o * sc_o + x] == c[o * sc_o + x];
  CHECK(gaps_kept, "gemm leaves the gaps between batches as they were");
  free(a), free(b), free(c), free(bias), free(got), free(gw), free(want);
}

static void layernorm_ref(const double* h, const double* g, const double* b, double* y, int64_t rows, int64_t cols,
                          double eps) {
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) mean += h[r * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; c++) var += (h[r * cols + c] - mean) * (h[r * cols + c] - mean);
    var /= cols;
    for (int64_t c = 0; c < cols; c++) y[r * cols + c] = (h[r * cols + c] - mean) / sqrt(var + eps) * g[c] + b[c];
  }
}

/* layernorm (with a residual, rows of mean ~100), then bias_layernorm in place; widths that take the vector
 * path, the one-value path and rows longer than a GPU keeps in registers. */
static void check_layernorms(void) {
  for (int w = 0; w < 3; w++) {
    const int64_t rows = 13, cols = w == 0 ? 768 : w == 1 ? 771 : 1500;
    size_t n = (size_t)(rows * cols);
    float *x = random_floats(n, 99, 101), *res = random_floats(n, -1, 1), *g = random_floats(cols, 0.5f, 1.5f);
    float *b = random_floats(cols, -1, 1), *bias = random_floats(cols, -1, 1);
    mps_buffer *bx = upload(x, n * 4), *br = upload(res, n * 4), *bg = upload(g, cols * 4), *bb = upload(b, cols * 4);
    mps_buffer *by = upload(NULL, n * 4), *bbias = upload(bias, cols * 4);
    mps_arg la[] = {B(bx), B(br), B(bg), B(bb), B(by), I(rows), I(cols), F(1e-5)};
    kernel(pipeline(g_library, "layernorm"), "layernorm", la, 8);
    float* got = malloc(n * 4);
    download(by, got, n * 4);
    double *h = malloc(n * sizeof(double)), *want = malloc(n * sizeof(double));
    double *gd = malloc(cols * sizeof(double)), *bd = malloc(cols * sizeof(double));
    for (int64_t c = 0; c < cols; c++) gd[c] = g[c], bd[c] = b[c];
    for (size_t i = 0; i < n; i++) h[i] = (double)x[i] + res[i];
    layernorm_ref(h, gd, bd, want, rows, cols, 1e-5);
    char name[64];
    snprintf(name, sizeof name, "layernorm +residual, %lld wide", (long long)cols);
    /* h = x + residual is rounded to fp32 near 100 (ulp 7.6e-6) against a spread of about 0.6: ~1e-5 is
     * fp32's own limit here, whatever the backend */
    report(name, rel_l2_f(got, want, n), 5e-5);
    /* bias_layernorm over y (in place), with the bias and the residual */
    mps_arg bla[] = {B(by), B(bbias), B(br), B(bg), B(bb), B(by), I(rows), I(cols), F(1e-5)};
    kernel(pipeline(g_library, "bias_layernorm"), "bias_layernorm", bla, 9);
    float* got2 = malloc(n * 4);
    download(by, got2, n * 4);
    for (size_t i = 0; i < n; i++) h[i] = (double)got[i] + bias[i % cols] + res[i];
    layernorm_ref(h, gd, bd, want, rows, cols, 1e-5);
    snprintf(name, sizeof name, "bias_layernorm in place, %lld wide", (long long)cols);
    report(name, rel_l2_f(got2, want, n), 1e-5);
    free(x), free(res), free(g), free(b), free(bias), free(got), free(got2), free(h), free(want), free(gd), free(bd);
  }
}

/* softmax over [batch, heads, rows, cols] with a mask that drops some columns of batch 1 and every column of
 * batch 2 with -inf (zeros, not NaN) */
static void check_softmax(void) {
  const int64_t batch = 3, heads = 2, rows = 5, cols = 130;
  size_t n = (size_t)(batch * heads * rows * cols);
  float *x = random_floats(n, -4, 4), *mask = calloc((size_t)(batch * cols), 4);
  for (int64_t c = cols - 17; c < cols; c++) mask[1 * cols + c] = -3.4028234663852886e38f;
  for (int64_t c = 0; c < cols; c++) mask[2 * cols + c] = -INFINITY;
  mps_buffer *bx = upload(x, n * 4), *bm = upload(mask, batch * cols * 4);
  mps_arg sa[] = {B(bx), B(bm), I(batch), I(heads), I(rows), I(cols), F(0.125)};
  kernel(pipeline(g_library, "softmax"), "softmax", sa, 7);
  float* got = malloc(n * 4);
  download(bx, got, n * 4);
  double* want = calloc(n, sizeof(double));
  for (int64_t r = 0; r < batch * heads * rows; r++) {
    int64_t bb = r / (heads * rows);
    if (bb == 2) continue; /* every key -inf: zeros */
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < cols; c++) mx = fmax(mx, 0.125 * x[r * cols + c] + mask[bb * cols + c]);
    for (int64_t c = 0; c < cols; c++) sum += exp(0.125 * x[r * cols + c] + mask[bb * cols + c] - mx);
    for (int64_t c = 0; c < cols; c++) want[r * cols + c] = exp(0.125 * x[r * cols + c] + mask[bb * cols + c] - mx) / sum;
  }
  report("softmax masked (finfo.min and -inf)", rel_l2_f(got, want, n), 1e-5);
  int zeros = 1;
  for (size_t i = (size_t)(2 * heads * rows * cols); i < n; i++) zeros = zeros && got[i] == 0.0f;
  CHECK(zeros, "softmax: a row masked with -inf everywhere is zeros");
  free(x), free(mask), free(got), free(want);
}

/* gelu, tanh, bias_add, add (in place where the contract allows) */
static void check_elementwise(void) {
  const int64_t rows = 37, cols = 101, n = rows * cols;
  float *x = random_floats(n, -3, 3), *y = random_floats(n, -3, 3), *bias = random_floats(cols, -1, 1);
  mps_buffer *bx = upload(x, n * 4), *by = upload(y, n * 4), *bo = upload(NULL, n * 4), *bb = upload(bias, cols * 4);
  float* got = malloc(n * 4);
  double* want = malloc(n * sizeof(double));
  mps_arg ga[] = {B(bx), B(bo), I(n)};
  kernel(pipeline(g_library, "gelu"), "gelu", ga, 3);
  download(bo, got, n * 4);
  for (int64_t i = 0; i < n; i++) want[i] = gelu(x[i]);
  report("gelu (erf)", rel_l2_f(got, want, n), 1e-5);
  kernel(pipeline(g_library, "tanh"), "tanh", ga, 3);
  download(bo, got, n * 4);
  for (int64_t i = 0; i < n; i++) want[i] = tanh(x[i]);
  report("tanh", rel_l2_f(got, want, n), 1e-5);
  mps_arg ba[] = {B(bx), B(bb), B(bo), I(rows), I(cols)};
  kernel(pipeline(g_library, "bias_add"), "bias_add", ba, 5);
  download(bo, got, n * 4);
  for (int64_t i = 0; i < n; i++) want[i] = (double)x[i] + bias[i % cols];
  report("bias_add", rel_l2_f(got, want, n), 1e-6);
  mps_arg aa[] = {B(bx), B(by), B(bx), I(n)};
  kernel(pipeline(g_library, "add"), "add", aa, 4);
  download(bx, got, n * 4);
  for (int64_t i = 0; i < n; i++) want[i] = (double)x[i] + y[i];
  report("add in place", rel_l2_f(got, want, n), 1e-6);
  free(x), free(y), free(bias), free(got), free(want);
}

/* embedding, then accumulating a second lookup; an id out of range fails the commit naming it, and the
 * stream serves the next commit */
static void check_embedding(void) {
  const int64_t vocab = 97, dim = 40, n = 57;
  float* table = random_floats(vocab * dim, -1, 1);
  int32_t *ids = malloc(n * 4), *ids2 = malloc(n * 4);
  for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 31) % vocab), ids2[i] = (int32_t)((i * 7 + 3) % vocab);
  mps_buffer *bt = upload(table, vocab * dim * 4), *bi = upload(ids, n * 4), *bi2 = upload(ids2, n * 4);
  mps_buffer* bo = upload(NULL, n * dim * 4);
  mps_pipeline* p = pipeline(g_library, "embedding");
  mps_arg ea[] = {B(bi), B(bt), B(bo), I(n), I(dim), I(vocab), I(0)};
  kernel(p, "embedding", ea, 7);
  mps_arg acc[] = {B(bi2), B(bt), B(bo), I(n), I(dim), I(vocab), I(1)};
  kernel(p, "embedding accumulate", acc, 7);
  float* got = malloc(n * dim * 4);
  download(bo, got, n * dim * 4);
  int exact = 1;
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < dim; c++)
      exact = exact && got[i * dim + c] == table[ids[i] * dim + c] + table[ids2[i] * dim + c];
  CHECK(exact, "embedding and accumulate are exact");
  printf("[conformance] %-40s exact\n", "embedding (+ accumulate)");
  ids[23] = 1007;
  mps_buffer* bbad = upload(ids, n * 4);
  mps_arg bad[] = {B(bbad), B(bt), B(bo), I(n), I(dim), I(vocab), I(0)};
  mps_error err = {0};
  must(mps_stream_encode_kernel(g_stream, p, bad, 7, &err), &err, "embedding (bad id)");
  char msg[MPS_ERROR_MESSAGE_CAPACITY];
  mps_status s = run(msg, sizeof msg);
  CHECK(s == MPS_ERR_KERNEL_FAILED && strstr(msg, "1007") && strstr(msg, "23"),
        "an id out of range fails the commit naming the id and its position: %s %s", mps_status_name(s), msg);
  kernel(p, "embedding after a failed commit", ea, 7);
  free(table), free(ids), free(ids2), free(got);
}

static void pool_ref(const double* x, const float* mask, double* y, int64_t batch, int64_t seq, int64_t hidden,
                     int mode, int normalize) {
  for (int64_t b = 0; b < batch; b++) {
    int64_t tokens = 0;
    for (int64_t t = 0; t < seq; t++) tokens += mask[b * seq + t] == 0.0f;
    double norm = 0;
    for (int64_t c = 0; c < hidden; c++) {
      double acc = mode == 2 ? -INFINITY : 0;
      if (mode == 0) {
        acc = x[b * seq * hidden + c];
      } else if (tokens == 0) {
        acc = 0;
      } else {
        for (int64_t t = 0; t < seq; t++) {
          if (mask[b * seq + t] != 0.0f) continue;
          double e = x[(b * seq + t) * hidden + c];
          acc = mode == 2 ? fmax(acc, e) : acc + e;
        }
        if (mode == 1) acc /= tokens;
        if (mode == 3) acc /= sqrt((double)tokens);
      }
      y[b * hidden + c] = acc;
      norm += acc * acc;
    }
    if (normalize) {
      double inv = 1.0 / fmax(sqrt(norm), 1e-12);
      for (int64_t c = 0; c < hidden; c++) y[b * hidden + c] *= inv;
    }
  }
}

/* a ragged batch: sequence b keeps seq - 5b tokens, the rest padded with finfo(float32).min */
static float* ragged_mask(int64_t batch, int64_t seq) {
  float* m = calloc((size_t)(batch * seq), 4);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t t = seq - 5 * b; t < seq; t++)
      if (t >= 0) m[b * seq + t] = -3.4028234663852886e38f;
  return m;
}

/* pool: every mode, with and without normalization, over a ragged batch */
static void check_pool(void) {
  const int64_t batch = 4, seq = 23, hidden = 300;
  size_t n = (size_t)(batch * seq * hidden);
  float* x = random_floats(n, -2, 2);
  float* mask = ragged_mask(batch, seq);
  mps_buffer *bx = upload(x, n * 4), *bm = upload(mask, batch * seq * 4), *by = upload(NULL, batch * hidden * 4);
  double *xd = malloc(n * sizeof(double)), *want = malloc(batch * hidden * sizeof(double));
  for (size_t i = 0; i < n; i++) xd[i] = x[i];
  float* got = malloc(batch * hidden * 4);
  mps_pipeline* p = pipeline(g_library, "pool");
  const char* modes[] = {"cls", "mean", "max", "mean_sqrt_len"};
  for (int mode = 0; mode < 4; mode++)
    for (int normalize = 0; normalize < 2; normalize++) {
      mps_arg pa[] = {B(bx), B(bm), B(by), I(batch), I(seq), I(hidden), I(mode), I(normalize)};
      kernel(p, "pool", pa, 8);
      download(by, got, batch * hidden * 4);
      pool_ref(xd, mask, want, batch, seq, hidden, mode, normalize);
      char name[64];
      snprintf(name, sizeof name, "pool %s%s", modes[mode], normalize ? " normalized" : "");
      report(name, rel_l2_f(got, want, batch * hidden), 1e-5);
    }
  free(x), free(mask), free(xd), free(want), free(got);
}

/* a bad argument is refused at encode time, naming it; nothing runs */
static void check_validation(void) {
  mps_buffer* small = upload(NULL, 16);
  mps_arg ga[] = {B(small), B(small), B(small), I(5)};
  mps_error err = {0};
  mps_status s = mps_stream_encode_kernel(g_stream, pipeline(g_library, "add"), ga, 4, &err);
  CHECK(s == MPS_ERR_INVALID_ARGUMENT && strstr(err.message, "add") && strstr(err.message, "20"),
        "add over 5 floats in 16 bytes is refused at encode, naming the sizes: %s", err.message);
  mps_arg three[] = {B(small), B(small), B(small)};
  s = mps_stream_encode_kernel(g_stream, pipeline(g_library, "add"), three, 3, &err);
  CHECK(s == MPS_ERR_INVALID_ARGUMENT, "add with 3 of its 4 arguments is refused: %s", err.message);
}

/* ---- 16-bit storage kernels ---------------------------------------------------------------------------- */

static void check_storage16(double limit) {
  /* gemm16: y = GELU(x W^T + b), the BERT FFN shape in small, widths for each vector path */
  mps_pipeline *g = pipeline(g_library16, "gemm16"), *bln = pipeline(g_library16, "bias_layernorm16");
  for (int w = 0; w < 3; w++) {
    const int64_t m = 21, k = 48, n = w == 0 ? 64 : w == 1 ? 36 : 13;
    double *ax, *wx, *bx, *gx, *btx;
    uint16_t *a = random16(m * k, -1, 1, &ax), *wt = random16(n * k, -1, 1, &wx), *bias = random16(n, -1, 1, &bx);
    uint16_t *gam = random16(n, 0.5f, 1.5f, &gx), *bet = random16(n, -1, 1, &btx);
    mps_buffer *ba = upload(a, m * k * 2), *bw = upload(wt, n * k * 2), *bb = upload(bias, n * 2);
    mps_buffer *bc = upload(NULL, m * n * 2), *bg = upload(gam, n * 2), *bbt = upload(bet, n * 2);
    mps_arg lin[] = {B(ba), B(bw), B(bc), B(bb), I(m), I(n), I(k), I(k), I(k), I(n), I(0), I(1), F(1.0), F(0.0), I(1),
                     I(1), I(0), I(0), I(0), I(1), I(0), I(0), I(0)};
    kernel(g, "gemm16", lin, 23);
    uint16_t* got = malloc(m * n * 2);
    download(bc, got, m * n * 2);
    double* want = malloc(m * n * sizeof(double));
    for (int64_t r = 0; r < m; r++)
      for (int64_t c = 0; c < n; c++) {
        double acc = bx[c];
        for (int64_t x = 0; x < k; x++) acc += ax[r * k + x] * wx[c * k + x];
        want[r * n + c] = gelu(acc);
      }
    char name[64];
    snprintf(name, sizeof name, "gemm16 bias+GELU, %lld wide", (long long)n);
    report(name, rel_l2_16(got, want, m * n), limit);
    /* bias_layernorm16 in place over it, residual = the input's first n columns is not needed: none */
    mps_arg la[] = {B(bc), B(bb), NONE(), B(bg), B(bbt), B(bc), I(m), I(n), F(1e-5)};
    kernel(bln, "bias_layernorm16", la, 9);
    uint16_t* got2 = malloc(m * n * 2);
    download(bc, got2, m * n * 2);
    double* h = malloc(m * n * sizeof(double));
    for (int64_t i = 0; i < m * n; i++) h[i] = from16(got[i]) + bx[i % n];
    layernorm_ref(h, gx, btx, want, m, n, 1e-5);
    snprintf(name, sizeof name, "bias_layernorm16, %lld wide", (long long)n);
    report(name, rel_l2_16(got2, want, m * n), limit);
    free(ax), free(wx), free(bx), free(gx), free(btx), free(a), free(wt), free(bias), free(gam), free(bet);
    free(got), free(got2), free(want), free(h);
  }
  /* layernorm16 with a residual, softmax16 with a mask, embedding16, pool16 */
  {
    const int64_t rows = 9, cols = 200;
    double *xx, *rx, *gx, *bx;
    uint16_t *x = random16(rows * cols, 1, 3, &xx), *r = random16(rows * cols, -1, 1, &rx);
    uint16_t *gam = random16(cols, 0.5f, 1.5f, &gx), *bet = random16(cols, -1, 1, &bx);
    mps_buffer *bxb = upload(x, rows * cols * 2), *brb = upload(r, rows * cols * 2);
    mps_buffer *bg = upload(gam, cols * 2), *bb = upload(bet, cols * 2), *by = upload(NULL, rows * cols * 2);
    mps_arg la[] = {B(bxb), B(brb), B(bg), B(bb), B(by), I(rows), I(cols), F(1e-5)};
    kernel(pipeline(g_library16, "layernorm16"), "layernorm16", la, 8);
    uint16_t* got = malloc(rows * cols * 2);
    download(by, got, rows * cols * 2);
    double *h = malloc(rows * cols * sizeof(double)), *want = malloc(rows * cols * sizeof(double));
    for (int64_t i = 0; i < rows * cols; i++) h[i] = xx[i] + rx[i];
    layernorm_ref(h, gx, bx, want, rows, cols, 1e-5);
    report("layernorm16 +residual", rel_l2_16(got, want, rows * cols), limit);
    /* softmax16 over x as [1, 1, rows, cols] scores, the last 9 columns masked */
    float* mask = calloc(cols, 4);
    for (int64_t c = cols - 9; c < cols; c++) mask[c] = -10000.0f;
    mps_buffer* bm = upload(mask, cols * 4);
    mps_arg sa[] = {B(bxb), B(bm), I(1), I(1), I(rows), I(cols), F(0.5)};
    kernel(pipeline(g_library16, "softmax16"), "softmax16", sa, 7);
    download(bxb, got, rows * cols * 2);
    for (int64_t rr = 0; rr < rows; rr++) {
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < cols; c++) mx = fmax(mx, 0.5 * xx[rr * cols + c] + mask[c]);
      for (int64_t c = 0; c < cols; c++) sum += exp(0.5 * xx[rr * cols + c] + mask[c] - mx);
      for (int64_t c = 0; c < cols; c++) want[rr * cols + c] = exp(0.5 * xx[rr * cols + c] + mask[c] - mx) / sum;
    }
    report("softmax16 masked", rel_l2_16(got, want, rows * cols), limit);
    free(xx), free(rx), free(gx), free(bx), free(x), free(r), free(gam), free(bet), free(got), free(h), free(want);
    free(mask);
  }
  {
    const int64_t vocab = 50, dim = 32, n = 20;
    double* tx;
    uint16_t* table = random16(vocab * dim, -1, 1, &tx);
    int32_t ids[20];
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 7) % vocab);
    mps_buffer *bt = upload(table, vocab * dim * 2), *bi = upload(ids, n * 4), *bo = upload(NULL, n * dim * 2);
    mps_arg ea[] = {B(bi), B(bt), B(bo), I(n), I(dim), I(vocab), I(0)};
    kernel(pipeline(g_library16, "embedding16"), "embedding16", ea, 7);
    uint16_t* got = malloc(n * dim * 2);
    download(bo, got, n * dim * 2);
    int exact = 1;
    for (int64_t i = 0; i < n * dim; i++) exact = exact && got[i] == table[ids[i / dim] * dim + i % dim];
    CHECK(exact, "embedding16 copies the stored rows exactly");
    printf("[conformance] %-40s exact\n", "embedding16");
    free(tx), free(table), free(got);
  }
  {
    const int64_t batch = 4, seq = 29, hidden = 200;
    double* px;
    uint16_t* x = random16(batch * seq * hidden, -2, 2, &px);
    float* mask = ragged_mask(batch, seq);
    mps_buffer *bx = upload(x, batch * seq * hidden * 2), *bm = upload(mask, batch * seq * 4);
    mps_buffer* by = upload(NULL, batch * hidden * 2);
    mps_pipeline* p = pipeline(g_library16, "pool16");
    uint16_t* got = malloc(batch * hidden * 2);
    double* want = malloc(batch * hidden * sizeof(double));
    for (int mode = 1; mode <= 2; mode++) {
      mps_arg pa[] = {B(bx), B(bm), B(by), I(batch), I(seq), I(hidden), I(mode), I(mode == 1)};
      kernel(p, "pool16", pa, 8);
      download(by, got, batch * hidden * 2);
      pool_ref(px, mask, want, batch, seq, hidden, mode, mode == 1);
      report(mode == 1 ? "pool16 mean normalized" : "pool16 max", rel_l2_16(got, want, batch * hidden), limit);
    }
    free(px), free(x), free(mask), free(got), free(want);
  }
  /* attention16 at each head size, lengths that leave partial 64-query and 64-key tiles up to 512, with and
   * without the projection's bias; sequence 1 padded with finfo(float32).min, sequence 2 masked with -inf
   * everywhere (zeros). MPS_TEST_LIGHT (under compute-sanitizer) keeps the shapes small. */
  struct shape { int64_t batch, seq, heads, d; };
  const struct shape full[] = {{3, 130, 2, 64}, {3, 77, 3, 32}, {3, 40, 2, 128}, {1, 512, 2, 64}};
  const struct shape light[] = {{3, 70, 1, 64}, {3, 20, 1, 32}, {3, 9, 1, 128}};
  const int is_light = getenv("MPS_TEST_LIGHT") != NULL;
  const struct shape* shapes = is_light ? light : full;
  mps_pipeline* at = pipeline(g_library16, "attention16");
  for (int si = 0; si < (is_light ? 3 : 4); si++) {
    const int64_t batch = shapes[si].batch, seq = shapes[si].seq, heads = shapes[si].heads, d = shapes[si].d;
    const int64_t row = 3 * heads * d;
    const int biased = si % 2 == 0;
    double *x, *bx;
    uint16_t *qkv = random16(batch * seq * row, -2, 2, &x), *bias = random16(row, -1, 1, &bx);
    float* mask = calloc((size_t)(batch * seq), 4);
    for (int64_t t = seq - 11; batch > 1 && t < seq; t++) mask[1 * seq + t] = -3.4028234663852886e38f;
    for (int64_t t = 0; batch > 2 && t < seq; t++) mask[2 * seq + t] = -INFINITY;
    mps_buffer *bq = upload(qkv, batch * seq * row * 2), *bb = upload(bias, row * 2), *bm = upload(mask, batch * seq * 4);
    mps_buffer* bo = upload(NULL, batch * seq * heads * d * 2);
    double scale = 1.0 / sqrt((double)d);
    mps_arg aa[] = {B(bq), biased ? B(bb) : NONE(), B(bm), B(bo), I(batch), I(seq), I(heads), I(d), F(scale)};
    kernel(at, "attention16", aa, 9);
    size_t n = (size_t)(batch * seq * heads * d);
    uint16_t* got = malloc(n * 2);
    download(bo, got, n * 2);
    double *want = calloc(n, sizeof(double)), *p = malloc(seq * sizeof(double));
    for (int64_t i = 0; biased && i < batch * seq * row; i++) x[i] += bx[i % row];
    for (int64_t b = 0; b < batch; b++)
      for (int64_t hh = 0; hh < heads; hh++)
        for (int64_t i = 0; i < seq; i++) {
          const double* q = &x[(b * seq + i) * row + hh * d];
          double mx = -INFINITY, sum = 0;
          for (int64_t j = 0; j < seq; j++) {
            const double* kk = &x[(b * seq + j) * row + heads * d + hh * d];
            double dot = 0;
            for (int64_t c = 0; c < d; c++) dot += q[c] * kk[c];
            p[j] = scale * dot + mask[b * seq + j];
            mx = fmax(mx, p[j]);
          }
          if (mx == -INFINITY) continue;
          for (int64_t j = 0; j < seq; j++) sum += (p[j] = exp(p[j] - mx));
          double* o = &want[(b * seq + i) * heads * d + hh * d];
          for (int64_t j = 0; j < seq; j++)
            for (int64_t c = 0; c < d; c++) o[c] += p[j] / sum * x[(b * seq + j) * row + 2 * heads * d + hh * d + c];
        }
    char name[64];
    snprintf(name, sizeof name, "attention16 d%lld seq %lld%s", (long long)d, (long long)seq, biased ? " +bias" : "");
    report(name, rel_l2_16(got, want, n), limit);
    int zeros = 1;
    for (size_t i = (size_t)(2 * seq * heads * d); batch > 2 && i < n; i++) zeros = zeros && got[i] == 0;
    CHECK(zeros, "attention16: a sequence masked with -inf everywhere attends to nothing");
    free(x), free(bx), free(qkv), free(bias), free(mask), free(got), free(want), free(p);
  }
}

/* ---- main ---------------------------------------------------------------------------------------------- */

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: %s BACKEND [fp32|tf32|fp16|bf16]   (BACKEND: cpu, cuda, metal)\n", argv[0]);
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  const char* math = argc == 3 ? argv[2] : "fp32";
  int32_t mode = strcmp(math, "fp32") == 0   ? MPS_MATH_FP32
                 : strcmp(math, "tf32") == 0 ? MPS_MATH_TF32
                 : strcmp(math, "fp16") == 0 ? MPS_MATH_FP16
                 : strcmp(math, "bf16") == 0 ? MPS_MATH_BF16
                                             : -1;
  if (mode < 0) {
    fprintf(stderr, "unknown math mode '%s': fp32, tf32, fp16 or bf16\n", math);
    return 2;
  }
  g_bf16 = mode == MPS_MATH_BF16;
  mps_device_options options = {argv[1], 0, 1, mode};
  mps_error err = {0};
  if (mps_device_open(&options, &g_device, &err) != MPS_OK) {
    fprintf(stderr, "conformance: cannot open backend '%s' (math %s): %s\n", argv[1], math, err.message);
    return 2;
  }
  mps_device_info info;
  must(mps_device_info_get(g_device, &info, &err), &err, "device info");
  printf("conformance: backend %s, device '%s', math %s\n", info.backend, info.name, math);
  mps_stream_callbacks cb = {&g_done, on_start, on_complete, on_stop};
  must(mps_stream_create(g_device, &cb, &g_stream, &err), &err, "stream");
  must(mps_library_compile(g_device, "gemm layernorm softmax gelu tanh bias_add add embedding pool bias_layernorm",
                           NULL, &g_library, &err),
       &err, "library");

  /* the fp32 GEMM's arithmetic follows the math mode (operands rounded to 16 bits under fp16/bf16) */
  double gemm_limit = mode == MPS_MATH_FP32 ? 1e-5 : mode == MPS_MATH_TF32 ? 2e-3 : mode == MPS_MATH_FP16 ? 2e-3 : 1.5e-2;
  for (int t = 0; t < 4; t++) check_gemm(gemm_limit, t & 1, t >> 1, t == 3 ? 2 : t == 1 ? 0 : 1);
  check_layernorms();
  check_softmax();
  check_elementwise();
  check_embedding();
  check_pool();
  check_validation();
  release_buffers();

  mps_error err16 = {0};
  mps_status s16 = mps_library_compile(g_device,
                                       "gemm16 layernorm16 softmax16 embedding16 pool16 bias_layernorm16 attention16",
                                       NULL, &g_library16, &err16);
  mps_pipeline* probe = NULL;
  if (s16 == MPS_OK) s16 = mps_pipeline_create(g_library16, "gemm16", &probe, &err16);
  if (s16 == MPS_OK) {
    mps_pipeline_release(probe, NULL);
    check_storage16(g_bf16 ? 1.5e-2 : 2e-3);
    release_buffers();
  } else {
    printf("[conformance] 16-bit storage kernels not offered by %s (math %s): %s\n", info.backend, math,
           err16.message);
  }

  for (int i = 0; i < g_npipelines; i++) mps_pipeline_release(g_pipelines[i], NULL);
  if (g_library16) mps_library_release(g_library16, NULL);
  mps_library_release(g_library, NULL);
  must(mps_stream_release(g_stream, &err), &err, "stream release");
  struct timespec until = deadline_in(60);
  pthread_mutex_lock(&g_done.mu);
  while (!g_done.stopped && pthread_cond_timedwait(&g_done.cv, &g_done.mu, &until) == 0) {
  }
  int stopped = g_done.stopped;
  pthread_mutex_unlock(&g_done.mu);
  CHECK(stopped, "the stream's completion thread stops after its release");
  /* frees are asynchronous on some backends: poll, bounded */
  int clean = 0;
  for (int tries = 0; tries < 6000 && !clean; tries++) {
    mps_live_objects live;
    must(mps_device_live_objects_get(g_device, &live, &err), &err, "live objects");
    clean = !live.buffers && !live.buffer_bytes && !live.streams && !live.events && !live.libraries &&
            !live.pipelines && !live.command_buffers && !live.programs;
    if (!clean) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  CHECK(clean, "every object released: none live on the device");
  CHECK(mps_device_close(g_device, &err) == MPS_OK, "device closes: %s", err.message);
  printf("conformance %s (%s): %d passed, %d failed\n", argv[1], math, g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
