// Native tests of programs (mps.h, "Programs"): one immutable kernel list encoded on several streams at
// once with different slot bindings; build-time and encode-time errors name the kernel and argument and
// leave the stream's open command buffer exactly as it was; releasing a program never touches pending
// work. Runs plain, under ASan+UBSan and under TSan (see run-sanitizers.sh).
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using mps_test::kBound;
using mps_test::Completions;
using mps_test::buf;
using mps_test::host;
using mps_test::wait_live_zero;

mps_program_arg slot(uint32_t s, uint64_t offset = 0) { return mps_program_arg{MPS_ARG_BUFFER, s, offset, 0, 0.0}; }
mps_program_arg none() { return mps_program_arg{MPS_ARG_NONE, 0, 0, 0, 0.0}; }
mps_program_arg i64(int64_t v) { return mps_program_arg{MPS_ARG_INT, 0, 0, v, 0.0}; }
mps_program_arg f64(double v) { return mps_program_arg{MPS_ARG_FLOAT, 0, 0, 0, v}; }
mps_arg arg_i64(int64_t v) { return mps_arg{MPS_ARG_INT, nullptr, 0, v, 0.0}; }

mps_buffer* alloc_floats(mps_device* d, size_t n) {
  mps_buffer* b = nullptr;
  MUST(mps_buffer_alloc(d, 4 * n, &b, nullptr));
  std::memset(host(b), 0, 4 * n);
  return b;
}

bool contains(const char* text, const char* part) { return std::strstr(text, part) != nullptr; }

// The program under test: slots 0 = a [rows, cols], 1 = b [rows, cols], 2 = params (gamma then beta,
// cols each), 3 = out [rows, cols].
//   out = a + b;  out = layernorm(out) * gamma + beta  (in place)
constexpr int64_t kRows = 6, kCols = 40;
constexpr double kEps = 1e-5;
constexpr uint32_t kSlots = 4;

mps_program* build_add_layernorm(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  mps_program* p = nullptr;
  mps_error err{};
  MUST(mps_program_create(d, kSlots, &p, &err));
  mps_program_arg add_args[] = {slot(0), slot(1), slot(3), i64(kRows * kCols)};
  MUST(mps_program_add_kernel(p, add, add_args, 4, &err));
  mps_program_arg ln_args[] = {slot(3), none(), slot(2), slot(2, 4 * kCols), slot(3), i64(kRows), i64(kCols),
                               f64(kEps)};
  MUST(mps_program_add_kernel(p, layernorm, ln_args, 8, &err));
  MUST(mps_program_seal(p, &err));
  return p;
}

// Float64 reference of the program, written from the math.
std::vector<double> reference(const float* a, const float* b, const float* params) {
  std::vector<double> out(kRows * kCols);
  for (int64_t r = 0; r < kRows; r++) {
    double mean = 0, var = 0;
    std::vector<double> h(kCols);
    for (int64_t c = 0; c < kCols; c++) {
      // the add kernel's result is a float, and layernorm reads that float
      h[c] = (double)(float)((double)a[r * kCols + c] + (double)b[r * kCols + c]);
      mean += h[c];
    }
    mean /= kCols;
    for (int64_t c = 0; c < kCols; c++) var += (h[c] - mean) * (h[c] - mean);
    var /= kCols;
    for (int64_t c = 0; c < kCols; c++) {
      out[r * kCols + c] = (h[c] - mean) / std::sqrt(var + (double)(float)kEps) * params[c] + params[kCols + c];
    }
  }
  return out;
}

struct Binding {
  mps_buffer* slots[kSlots];
  void fill(std::mt19937& rng) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (uint32_t s = 0; s < 3; s++) {
      float* h = host(slots[s]);
      size_t count = s == 2 ? 2 * kCols : kRows * kCols;
      for (size_t i = 0; i < count; i++) h[i] = n(rng) + (s == 2 && i < (size_t)kCols ? 1.0f : 0.0f);
    }
  }
  double max_error() {
    std::vector<double> want = reference(host(slots[0]), host(slots[1]), host(slots[2]));
    const float* got = host(slots[3]);
    double worst = 0;
    for (size_t i = 0; i < want.size(); i++) worst = std::fmax(worst, std::fabs(got[i] - want[i]));
    return worst;
  }
  void release() {
    for (mps_buffer* b : slots) MUST(mps_buffer_release(b, nullptr));
  }
};

Binding new_binding(mps_device* d) {
  return Binding{{alloc_floats(d, kRows * kCols), alloc_floats(d, kRows * kCols), alloc_floats(d, 2 * kCols),
                  alloc_floats(d, kRows * kCols)}};
}

void test_counts_and_live_objects(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  mps_live_objects before{};
  MUST(mps_device_live_objects_get(d, &before, nullptr));
  mps_program* p = build_add_layernorm(d, add, layernorm);
  uint32_t kernels = 0, slots = 0;
  mps_error err{};
  MUST(mps_program_kernel_count(p, &kernels, &err));
  MUST(mps_program_slot_count(p, &slots, &err));
  CHECK(kernels == 2 && slots == kSlots, "kernels %u slots %u", kernels, slots);
  mps_live_objects live{};
  MUST(mps_device_live_objects_get(d, &live, nullptr));
  CHECK(live.programs == before.programs + 1, "a live program is counted (%lld)", (long long)live.programs);
  CHECK(mps_device_close(d, &err) == MPS_ERR_BUSY && contains(err.message, "1 programs"),
        "closing a device with a live program is BUSY and says so: %s", err.message);
  MUST(mps_program_release(p, &err));
  MUST(mps_device_live_objects_get(d, &live, nullptr));
  CHECK(live.programs == before.programs, "release uncounts the program");
}

// One program, three streams on three threads, each with its own binding, many requests each.
void test_concurrent_encodes(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  mps_program* program = build_add_layernorm(d, add, layernorm);
  constexpr int kThreads = 3, kRequests = 25;
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  std::vector<double> worst(kThreads, 0.0);
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Completions done;
      mps_stream_callbacks cb = done.callbacks();
      mps_stream* stream = nullptr;
      MUST(mps_stream_create(d, &cb, &stream, nullptr));
      Binding binding = new_binding(d);
      std::mt19937 rng(1234u + (unsigned)t);
      for (int r = 0; r < kRequests; r++) {
        binding.fill(rng);  // the previous request has completed: the owner may write its inputs
        mps_error err{};
        if (mps_stream_encode_program(stream, program, binding.slots, kSlots, &err) != MPS_OK) {
          CHECK(false, "thread %d encode: %s", t, err.message);
          break;
        }
        CHECK(mps_stream_open_commands(stream) == 2, "both kernels appended (%u)", mps_stream_open_commands(stream));
        uint64_t point = 0;
        MUST(mps_stream_commit(stream, &point, &err));
        if (!done.wait_for_count((size_t)point)) {
          CHECK(false, "thread %d: point %llu did not complete", t, (unsigned long long)point);
          break;
        }
        double e = binding.max_error();
        worst[t] = std::fmax(worst[t], e);
        if (!(e < 2e-5)) mismatches++;
      }
      CHECK(done.all_ok(), "thread %d: every point completed OK", t);
      MUST(mps_stream_release(stream, nullptr));
      CHECK(done.wait_for_stop(), "thread %d: executor stops", t);
      binding.release();
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0, "%d requests differ from the float64 reference", mismatches.load());
  std::printf("concurrent encodes: %d threads x %d requests, max |error| vs float64 %.3g %.3g %.3g\n", kThreads,
              kRequests, worst[0], worst[1], worst[2]);
  MUST(mps_program_release(program, nullptr));
}

void test_build_errors(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  mps_program* p = nullptr;
  mps_error err{};
  MUST(mps_program_create(d, 2, &p, &err));

  mps_program_arg out_of_range[] = {slot(0), slot(1), slot(2), i64(4)};
  CHECK(mps_program_add_kernel(p, add, out_of_range, 4, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "add") && contains(err.message, "(y)") && contains(err.message, "slot 2") &&
            contains(err.message, "2 slots"),
        "slot out of range names kernel, argument and slot: %s", err.message);

  mps_program_arg wrong_kind[] = {slot(0), i64(3), slot(1), i64(4)};
  CHECK(mps_program_add_kernel(p, add, wrong_kind, 4, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "add") && contains(err.message, "(b)") && contains(err.message, "must be buffer"),
        "wrong kind names kernel and argument: %s", err.message);

  mps_program_arg missing_optional_ok[] = {slot(0), none(), slot(1), slot(1), slot(0), i64(1), i64(1), f64(1e-5)};
  mps_program_arg none_not_optional[] = {slot(0), none(), slot(1), i64(4)};
  CHECK(mps_program_add_kernel(p, add, none_not_optional, 4, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "(b)"),
        "none for a required buffer is rejected: %s", err.message);

  mps_program_arg too_few[] = {slot(0), slot(1), slot(0)};
  CHECK(mps_program_add_kernel(p, add, too_few, 3, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "expects 4 arguments, got 3"),
        "argument count: %s", err.message);

  uint32_t kernels = 99;
  MUST(mps_program_kernel_count(p, &kernels, &err));
  CHECK(kernels == 0, "rejected kernels are not added (%u)", kernels);

  CHECK(mps_program_add_kernel(p, layernorm, missing_optional_ok, 8, &err) == MPS_OK, "optional none: %s",
        err.message);
  MUST(mps_program_seal(p, &err));
  MUST(mps_program_seal(p, &err));  // idempotent
  mps_program_arg fine[] = {slot(0), slot(1), slot(1), i64(4)};
  CHECK(mps_program_add_kernel(p, add, fine, 4, &err) == MPS_ERR_STATE && contains(err.message, "sealed"),
        "adding to a sealed program is a state error: %s", err.message);

  // A pipeline of another device.
  mps_device_options options{"cpu", 0, 1, MPS_MATH_FP32};
  mps_device* other = nullptr;
  mps_library* other_lib = nullptr;
  mps_pipeline* other_add = nullptr;
  MUST(mps_device_open(&options, &other, &err));
  MUST(mps_library_compile(other, "add", "", &other_lib, &err));
  MUST(mps_pipeline_create(other_lib, "add", &other_add, &err));
  mps_program* q = nullptr;
  MUST(mps_program_create(d, 3, &q, &err));
  CHECK(mps_program_add_kernel(q, other_add, fine, 4, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "another device"),
        "pipeline of another device: %s", err.message);
  CHECK(mps_program_add_kernel(nullptr, add, fine, 4, &err) == MPS_ERR_INVALID_ARGUMENT, "NULL program");
  CHECK(mps_program_create(d, 1, nullptr, &err) == MPS_ERR_INVALID_ARGUMENT, "NULL out");
  MUST(mps_program_release(q, &err));
  MUST(mps_pipeline_release(other_add, &err));
  MUST(mps_library_release(other_lib, &err));
  CHECK(mps_device_close(other, &err) == MPS_OK, "other device closes: %s", err.message);
  MUST(mps_program_release(p, &err));
}

// A binding that fails validation appends nothing, wherever in the program the failure is.
void test_encode_errors_append_nothing(mps_device* d, mps_pipeline* add, mps_pipeline* layernorm) {
  mps_program* program = build_add_layernorm(d, add, layernorm);
  Completions done;
  mps_stream_callbacks cb = done.callbacks();
  mps_stream* stream = nullptr;
  MUST(mps_stream_create(d, &cb, &stream, nullptr));
  mps_error err{};

  // One hand-encoded command already open: out2 = 1 + 1.
  mps_buffer* ones = alloc_floats(d, 4);
  mps_buffer* out2 = alloc_floats(d, 4);
  for (int i = 0; i < 4; i++) host(ones)[i] = 1.0f;
  mps_arg add_args[] = {buf(ones), buf(ones), buf(out2), arg_i64(4)};
  MUST(mps_stream_encode_kernel(stream, add, add_args, 4, &err));
  CHECK(mps_stream_open_commands(stream) == 1, "one command open");

  Binding good = new_binding(d);
  std::mt19937 rng(7);
  good.fill(rng);

  // The params slot is too small for beta: the first kernel (add) resolves, the second (layernorm) fails.
  mps_buffer* small_params = alloc_floats(d, kCols + kCols / 2);
  mps_buffer* bad[kSlots] = {good.slots[0], good.slots[1], small_params, good.slots[3]};
  mps_status s = mps_stream_encode_program(stream, program, bad, kSlots, &err);
  CHECK(s == MPS_ERR_INVALID_ARGUMENT, "too-small binding is rejected (%s)", mps_status_name(s));
  CHECK(contains(err.message, "program kernel 1 of 2") && contains(err.message, "layernorm") &&
            contains(err.message, "buffer beta") && contains(err.message, "beta=slot 2+160"),
        "message names the invocation, kernel, argument and slot: %s", err.message);
  std::printf("too-small binding: %s\n", err.message);
  CHECK(mps_stream_open_commands(stream) == 1, "nothing appended (open commands %u)", mps_stream_open_commands(stream));

  // The first kernel's output too small: fails at invocation 0.
  mps_buffer* small_out = alloc_floats(d, kRows * kCols - 1);
  mps_buffer* bad_out[kSlots] = {good.slots[0], good.slots[1], good.slots[2], small_out};
  CHECK(mps_stream_encode_program(stream, program, bad_out, kSlots, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "program kernel 0 of 2 (add)") && contains(err.message, "buffer y"),
        "first invocation's failure: %s", err.message);
  CHECK(mps_stream_open_commands(stream) == 1, "nothing appended (open commands %u)", mps_stream_open_commands(stream));

  // Binding errors caught before any invocation is resolved.
  mps_buffer* wrong_count[3] = {good.slots[0], good.slots[1], good.slots[2]};
  CHECK(mps_stream_encode_program(stream, program, wrong_count, 3, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "3 slots bound, the program has 4"),
        "slot count mismatch: %s", err.message);
  mps_buffer* unbound[kSlots] = {good.slots[0], nullptr, good.slots[2], good.slots[3]};
  CHECK(mps_stream_encode_program(stream, program, unbound, kSlots, &err) == MPS_ERR_INVALID_ARGUMENT &&
            contains(err.message, "slot 1 is not bound"),
        "unbound slot: %s", err.message);
  CHECK(mps_stream_open_commands(stream) == 1, "nothing appended (open commands %u)", mps_stream_open_commands(stream));

  // The stream still works, and runs exactly the hand-encoded command plus one good program.
  MUST(mps_stream_encode_program(stream, program, good.slots, kSlots, &err));
  CHECK(mps_stream_open_commands(stream) == 3, "good program appended (%u)", mps_stream_open_commands(stream));
  uint64_t point = 0;
  MUST(mps_stream_commit(stream, &point, &err));
  CHECK(done.wait_for_count(1) && done.all_ok(), "point completes OK");
  CHECK(host(out2)[0] == 2.0f && host(out2)[3] == 2.0f, "hand-encoded command ran");
  CHECK(good.max_error() < 2e-5, "program result (max error %.3g)", good.max_error());

  MUST(mps_stream_release(stream, &err));
  CHECK(done.wait_for_stop(), "executor stops");
  for (mps_buffer* b : {ones, out2, small_params, small_out}) MUST(mps_buffer_release(b, &err));
  good.release();
  MUST(mps_program_release(program, &err));
}

// The program (and the pipelines, library and buffers) released while encoded work is provably pending:
// the commands hold their own references, so the work runs correctly afterwards.
void test_release_while_pending(mps_device* d) {
  mps_error err{};
  mps_library* lib = nullptr;
  mps_pipeline *add = nullptr, *layernorm = nullptr;
  MUST(mps_library_compile(d, "add layernorm", "", &lib, &err));
  MUST(mps_pipeline_create(lib, "add", &add, &err));
  MUST(mps_pipeline_create(lib, "layernorm", &layernorm, &err));
  mps_program* program = build_add_layernorm(d, add, layernorm);

  // Stream `gate`: its point 2 cannot complete until the test opens the gate in point 1's callback.
  Completions gate_done;
  gate_done.gated = true;
  mps_stream_callbacks gate_cb = gate_done.callbacks();
  mps_stream* gate = nullptr;
  MUST(mps_stream_create(d, &gate_cb, &gate, &err));
  uint64_t p1 = 0, p2 = 0;
  MUST(mps_stream_commit(gate, &p1, &err));
  MUST(mps_stream_commit(gate, &p2, &err));

  Completions done;
  mps_stream_callbacks cb = done.callbacks();
  mps_stream* stream = nullptr;
  MUST(mps_stream_create(d, &cb, &stream, &err));
  Binding binding = new_binding(d);
  std::mt19937 rng(99);
  binding.fill(rng);
  std::vector<double> want = reference(host(binding.slots[0]), host(binding.slots[1]), host(binding.slots[2]));
  MUST(mps_stream_encode_wait(stream, gate, p2, &err));
  MUST(mps_stream_encode_program(stream, program, binding.slots, kSlots, &err));
  uint64_t point = 0;
  MUST(mps_stream_commit(stream, &point, &err));

  // Everything but the output buffer goes while the work waits behind the gate.
  MUST(mps_program_release(program, &err));
  MUST(mps_pipeline_release(add, &err));
  MUST(mps_pipeline_release(layernorm, &err));
  MUST(mps_library_release(lib, &err));
  for (uint32_t s = 0; s < 3; s++) MUST(mps_buffer_release(binding.slots[s], &err));
  mps_live_objects live{};
  MUST(mps_device_live_objects_get(d, &live, nullptr));
  CHECK(mps_stream_completed_point(stream) == 0, "the program's work is still pending");
  CHECK(live.programs == 0 && live.pipelines == 2, "program gone, its pipelines kept by pending commands (%lld)",
        (long long)live.pipelines);

  gate_done.open_gate();
  CHECK(done.wait_for_count(1) && done.all_ok(), "pending work completes OK after the release");
  const float* got = host(binding.slots[3]);
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) worst = std::fmax(worst, std::fabs(got[i] - want[i]));
  CHECK(worst < 2e-5, "result after release matches float64 (max error %.3g)", worst);

  MUST(mps_stream_release(stream, &err));
  MUST(mps_stream_release(gate, &err));
  CHECK(done.wait_for_stop() && gate_done.wait_for_stop(), "executors stop");
  MUST(mps_buffer_release(binding.slots[3], &err));
}

}  // namespace

int main() {
  mps_device_options options{"cpu", 0, 1, MPS_MATH_FP32};
  mps_device* d = nullptr;
  mps_error err{};
  MUST(mps_device_open(&options, &d, &err));
  mps_library* lib = nullptr;
  MUST(mps_library_compile(d, "*", "", &lib, &err));
  mps_pipeline *add, *layernorm;
  MUST(mps_pipeline_create(lib, "add", &add, &err));
  MUST(mps_pipeline_create(lib, "layernorm", &layernorm, &err));

  test_counts_and_live_objects(d, add, layernorm);
  test_concurrent_encodes(d, add, layernorm);
  test_build_errors(d, add, layernorm);
  test_encode_errors_append_nothing(d, add, layernorm);

  MUST(mps_pipeline_release(add, &err));
  MUST(mps_pipeline_release(layernorm, &err));
  MUST(mps_library_release(lib, &err));
  test_release_while_pending(d);

  CHECK(wait_live_zero(d), "every native object freed");
  CHECK(mps_device_close(d, &err) == MPS_OK, "device closes: %s", err.message);

  return mps_test::summary("test_program");
}
