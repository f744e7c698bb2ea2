/* JNI side of dev.mpsactors.nativemps.DeviceBuffer. */
#include <stdlib.h>
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

/* Host transfers go through mps_buffer_write/read, so they work whether or not the memory is host visible. */
static void transfer(JNIEnv* env, jlong handle, jlong offset, void* host, jlong bytes, int to_device) {
  if (mps_jni_null_handle(env, handle, "buffer")) return;
  if (offset < 0 || bytes < 0) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative host copy offset or size");
    return;
  }
  mps_error err;
  mps_buffer* buffer = MPS_PTR(mps_buffer, handle);
  mps_status s = to_device ? mps_buffer_write(buffer, (uint64_t)offset, host, (uint64_t)bytes, &err)
                           : mps_buffer_read(buffer, (uint64_t)offset, host, (uint64_t)bytes, &err);
  if (s == MPS_ERR_INVALID_ARGUMENT) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", err.message);
    return;
  }
  mps_jni_check(env, s, &err);
}

/* The bytes [offset, offset + bytes) of a host-visible buffer (cpu, Apple's unified memory), so an array
 * region is copied straight in or out; NULL with no exception pending when the memory is not host visible. */
static char* host_visible(JNIEnv* env, jlong handle, jlong offset, jlong bytes) {
  mps_buffer* buffer = MPS_PTR(mps_buffer, handle);
  void* base = NULL;
  if (mps_buffer_host_pointer(buffer, &base, NULL) != MPS_OK) return NULL;
  uint64_t size = 0;
  mps_buffer_size(buffer, &size, NULL);
  if (offset < 0 || bytes < 0 || (uint64_t)offset > size || (uint64_t)bytes > size - (uint64_t)offset) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "host copy range is outside the buffer");
    return NULL;
  }
  return (char*)base + offset;
}

/* Arrays: one copy into or out of host-visible memory; otherwise through a temporary, so that no JNI
 * critical region spans a device copy. */
static void transfer_array(JNIEnv* env, jlong buffer, jlong offset, jarray array, int is_float, int to_device) {
  if (mps_jni_null_handle(env, buffer, "buffer")) return;
  jsize n = (*env)->GetArrayLength(env, array);
  size_t bytes = (size_t)n * 4u; /* jfloat and jint are both 4 bytes */
  char* direct = host_visible(env, buffer, offset, (jlong)bytes);
  if ((*env)->ExceptionCheck(env)) return;
  void* tmp = direct ? direct : malloc(bytes ? bytes : 1);
  if (!tmp) {
    mps_jni_throw(env, "java/lang/OutOfMemoryError", "host staging for a buffer copy");
    return;
  }
  if (to_device) {
    if (is_float) {
      (*env)->GetFloatArrayRegion(env, (jfloatArray)array, 0, n, tmp);
    } else {
      (*env)->GetIntArrayRegion(env, (jintArray)array, 0, n, tmp);
    }
    if (!direct) transfer(env, buffer, offset, tmp, (jlong)bytes, 1);
  } else {
    if (!direct) transfer(env, buffer, offset, tmp, (jlong)bytes, 0);
    if (!(*env)->ExceptionCheck(env)) {
      if (is_float) {
        (*env)->SetFloatArrayRegion(env, (jfloatArray)array, 0, n, tmp);
      } else {
        (*env)->SetIntArrayRegion(env, (jintArray)array, 0, n, tmp);
      }
    }
  }
  if (!direct) free(tmp);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeFloats0(JNIEnv* env, jclass cls, jlong buffer,
                                                                              jlong offset, jfloatArray src) {
  transfer_array(env, buffer, offset, src, 1, 1);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readFloats0(JNIEnv* env, jclass cls, jlong buffer,
                                                                             jlong offset, jfloatArray dst) {
  transfer_array(env, buffer, offset, dst, 1, 0);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeInts0(JNIEnv* env, jclass cls, jlong buffer,
                                                                            jlong offset, jintArray src) {
  transfer_array(env, buffer, offset, src, 0, 1);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readInts0(JNIEnv* env, jclass cls, jlong buffer,
                                                                           jlong offset, jintArray dst) {
  transfer_array(env, buffer, offset, dst, 0, 0);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_writeBytes0(JNIEnv* env, jclass cls, jlong buffer,
                                                                             jlong offset, jobject src, jint position,
                                                                             jint length) {
  char* from = mps_jni_direct_range(env, src, position, length);
  if (from) transfer(env, buffer, offset, from, length, 1);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceBuffer_readBytes0(JNIEnv* env, jclass cls, jlong buffer,
                                                                            jlong offset, jobject dst, jint position,
                                                                            jint length) {
  char* to = mps_jni_direct_range(env, dst, position, length);
  if (to) transfer(env, buffer, offset, to, length, 0);
}
