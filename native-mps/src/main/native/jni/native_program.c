/* JNI side of dev.mpsactors.nativemps.NativeProgram, including the one-call encode NativeStream uses. */
#include <stdlib.h>

#include "dev_mpsactors_nativemps_NativeProgram.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeProgram_create0(JNIEnv* env, jclass cls, jlong device,
                                                                           jint slot_count) {
  if (mps_jni_null_handle(env, device, "device")) return 0;
  if (slot_count < 0) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "slot count must be >= 0");
    return 0;
  }
  mps_program* program = NULL;
  mps_error err;
  if (mps_jni_check(env, mps_program_create(MPS_PTR(mps_device, device), (uint32_t)slot_count, &program, &err), &err)) {
    return 0;
  }
  return MPS_HANDLE(program);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeProgram_addKernel0(JNIEnv* env, jclass cls, jlong program,
                                                                             jlong pipeline, jint count,
                                                                             jintArray kinds, jintArray slots,
                                                                             jlongArray ints, jdoubleArray floats) {
  if (mps_jni_null_handle(env, program, "program") || mps_jni_null_handle(env, pipeline, "pipeline")) return;
  if (count < 0 || count > MPS_MAX_KERNEL_ARGS || (*env)->GetArrayLength(env, kinds) < count ||
      (*env)->GetArrayLength(env, slots) < count || (*env)->GetArrayLength(env, ints) < count ||
      (*env)->GetArrayLength(env, floats) < count) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "program argument arrays are inconsistent");
    return;
  }
  jint k[MPS_MAX_KERNEL_ARGS], s[MPS_MAX_KERNEL_ARGS];
  jlong n[MPS_MAX_KERNEL_ARGS];
  jdouble f[MPS_MAX_KERNEL_ARGS];
  (*env)->GetIntArrayRegion(env, kinds, 0, count, k);
  (*env)->GetIntArrayRegion(env, slots, 0, count, s);
  (*env)->GetLongArrayRegion(env, ints, 0, count, n);
  (*env)->GetDoubleArrayRegion(env, floats, 0, count, f);
  mps_program_arg args[MPS_MAX_KERNEL_ARGS];
  for (jint i = 0; i < count; i++) {
    int is_slot = k[i] == MPS_ARG_BUFFER;
    if (is_slot && (s[i] < 0 || n[i] < 0)) {
      mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative slot or byte offset");
      return;
    }
    args[i].kind = k[i];
    args[i].slot = is_slot ? (uint32_t)s[i] : 0;
    args[i].offset = is_slot ? (uint64_t)n[i] : 0;
    args[i].i = n[i];
    args[i].f = f[i];
  }
  mps_error err;
  mps_jni_check(env,
                mps_program_add_kernel(MPS_PTR(mps_program, program), MPS_PTR(mps_pipeline, pipeline), args,
                                       (uint32_t)count, &err),
                &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeProgram_seal0(JNIEnv* env, jclass cls, jlong program) {
  if (mps_jni_null_handle(env, program, "program")) return;
  mps_error err;
  mps_jni_check(env, mps_program_seal(MPS_PTR(mps_program, program), &err), &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeProgram_release0(JNIEnv* env, jclass cls, jlong program) {
  if (mps_jni_null_handle(env, program, "program")) return;
  mps_error err;
  mps_jni_check(env, mps_program_release(MPS_PTR(mps_program, program), &err), &err);
}

/* Slot handles are copied out of the Java array (no critical section held across the encode). */
JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeProgram_encode0(JNIEnv* env, jclass cls, jlong stream,
                                                                          jlong program, jlongArray slot_buffers) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, program, "program")) return;
  if (!slot_buffers) {
    mps_jni_throw(env, "java/lang/NullPointerException", "slots");
    return;
  }
  jsize count = (*env)->GetArrayLength(env, slot_buffers);
  enum { ON_STACK = 32 };
  jlong stack_handles[ON_STACK];
  mps_buffer* stack_slots[ON_STACK];
  jlong* handles = count <= ON_STACK ? stack_handles : malloc((size_t)count * sizeof *handles);
  mps_buffer** slots = count <= ON_STACK ? stack_slots : malloc((size_t)count * sizeof *slots);
  if (!handles || !slots) {
    if (handles != stack_handles) free(handles);
    if (slots != stack_slots) free(slots);
    mps_jni_throw(env, "java/lang/OutOfMemoryError", "program slot binding");
    return;
  }
  (*env)->GetLongArrayRegion(env, slot_buffers, 0, count, handles);
  for (jsize i = 0; i < count; i++) slots[i] = MPS_PTR(mps_buffer, handles[i]);
  mps_error err;
  mps_status s = mps_stream_encode_program(MPS_PTR(mps_stream, stream), MPS_PTR(mps_program, program), slots,
                                           (uint32_t)count, &err);
  if (handles != stack_handles) free(handles);
  if (slots != stack_slots) free(slots);
  mps_jni_check(env, s, &err);
}
