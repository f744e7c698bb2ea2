/* JNI side of dev.mpsactors.nativemps.DeviceBuffer. */
#include <string.h>

#include "dev_mpsactors_nativemps_DeviceBuffer.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_alloc0(JNIEnv* env, jclass cls, jlong device,
                                                                         jlong bytes) {
  if (mps_jni_null_handle(env, device, "device")) return 0;
  if (bytes <= 0) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "buffer size must be > 0 bytes");
    return 0;
  }
  mps_buffer* buffer = NULL;
  mps_error err;
  if (mps_jni_check(env, mps_buffer_alloc(MPS_PTR(mps_device, device), (uint64_t)bytes, &buffer, &err), &err)) return 0;
  return MPS_HANDLE(buffer);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_release0(JNIEnv* env, jclass cls, jlong buffer) {
  if (mps_jni_null_handle(env, buffer, "buffer")) return;
  mps_error err;
  mps_jni_check(env, mps_buffer_release(MPS_PTR(mps_buffer, buffer), &err), &err);
}

/* Resolves [offset, offset + bytes) of a host-visible buffer; throws and returns NULL otherwise. */
static char* host_range(JNIEnv* env, jlong handle, jlong offset, jlong bytes) {
  if (mps_jni_null_handle(env, handle, "buffer")) return NULL;
  mps_buffer* buffer = MPS_PTR(mps_buffer, handle);
  uint64_t size = 0;
  void* base = NULL;
  mps_error err;
  if (mps_jni_check(env, mps_buffer_size(buffer, &size, &err), &err)) return NULL;
  if (offset < 0 || bytes < 0 || (uint64_t)offset > size || (uint64_t)bytes > size - (uint64_t)offset) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "host copy range is outside the buffer");
    return NULL;
  }
  if (mps_jni_check(env, mps_buffer_host_pointer(buffer, &base, &err), &err)) return NULL;
  return (char*)base + offset;
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeFloats0(JNIEnv* env, jclass cls, jlong buffer,
                                                                              jlong offset, jfloatArray src) {
  jsize n = (*env)->GetArrayLength(env, src);
  char* p = host_range(env, buffer, offset, (jlong)n * 4);
  if (p) (*env)->GetFloatArrayRegion(env, src, 0, n, (jfloat*)p);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readFloats0(JNIEnv* env, jclass cls, jlong buffer,
                                                                             jlong offset, jfloatArray dst) {
  jsize n = (*env)->GetArrayLength(env, dst);
  char* p = host_range(env, buffer, offset, (jlong)n * 4);
  if (p) (*env)->SetFloatArrayRegion(env, dst, 0, n, (const jfloat*)p);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeInts0(JNIEnv* env, jclass cls, jlong buffer,
                                                                            jlong offset, jintArray src) {
  jsize n = (*env)->GetArrayLength(env, src);
  char* p = host_range(env, buffer, offset, (jlong)n * 4);
  if (p) (*env)->GetIntArrayRegion(env, src, 0, n, (jint*)p);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readInts0(JNIEnv* env, jclass cls, jlong buffer,
                                                                           jlong offset, jintArray dst) {
  jsize n = (*env)->GetArrayLength(env, dst);
  char* p = host_range(env, buffer, offset, (jlong)n * 4);
  if (p) (*env)->SetIntArrayRegion(env, dst, 0, n, (const jint*)p);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeBytes0(JNIEnv* env, jclass cls, jlong buffer,
                                                                             jlong offset, jobject src, jint position,
                                                                             jint length) {
  char* from = mps_jni_direct_range(env, src, position, length);
  if (!from) return;
  char* to = host_range(env, buffer, offset, length);
  if (to) memcpy(to, from, (size_t)length);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readBytes0(JNIEnv* env, jclass cls, jlong buffer,
                                                                            jlong offset, jobject dst, jint position,
                                                                            jint length) {
  char* to = mps_jni_direct_range(env, dst, position, length);
  if (!to) return;
  char* from = host_range(env, buffer, offset, length);
  if (from) memcpy(to, from, (size_t)length);
}
