/* JNI side of dev.mpsactors.nativemps.NativeDevice. */
#include "dev_mpsactors_nativemps_NativeDevice.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeDevice_open0(JNIEnv* env, jclass cls, jstring backend,
                                                                        jint ordinal, jint blas_threads,
                                                                        jint math_mode, jint cpu_devices) {
  if (!backend) {
    mps_jni_throw(env, "java/lang/NullPointerException", "backend");
    return 0;
  }
  const char* name = (*env)->GetStringUTFChars(env, backend, NULL);
  if (!name) return 0;
  mps_device_options options = {name, ordinal, blas_threads, math_mode, cpu_devices};
  mps_device* device = NULL;
  mps_error err;
  mps_status s = mps_device_open(&options, &device, &err);
  (*env)->ReleaseStringUTFChars(env, backend, name);
  if (mps_jni_check(env, s, &err)) return 0;
  return MPS_HANDLE(device);
}

JNIEXPORT jint JNICALL Java_dev_mpsactors_nativemps_NativeDevice_count0(JNIEnv* env, jclass cls, jstring backend,
                                                                        jint cpu_devices) {
  if (!backend) {
    mps_jni_throw(env, "java/lang/NullPointerException", "backend");
    return 0;
  }
  const char* name = (*env)->GetStringUTFChars(env, backend, NULL);
  if (!name) return 0;
  mps_device_options options = {name, 0, 1, MPS_MATH_FP32, cpu_devices};
  int32_t count = 0;
  mps_error err;
  mps_status s = mps_device_count(&options, &count, &err);
  (*env)->ReleaseStringUTFChars(env, backend, name);
  if (mps_jni_check(env, s, &err)) return 0;
  return (jint)count;
}

JNIEXPORT jobject JNICALL Java_dev_mpsactors_nativemps_NativeDevice_info0(JNIEnv* env, jclass cls, jlong handle) {
  if (mps_jni_null_handle(env, handle, "device")) return NULL;
  mps_device_info info;
  mps_error err;
  if (mps_jni_check(env, mps_device_info_get(MPS_PTR(mps_device, handle), &info, &err), &err)) return NULL;
  jclass record = (*env)->FindClass(env, "dev/mpsactors/nativemps/DeviceInfo");
  if (!record) return NULL;
  jmethodID ctor = (*env)->GetMethodID(env, record, "<init>", "(Ljava/lang/String;Ljava/lang/String;JJIZ)V");
  jstring backend = (*env)->NewStringUTF(env, info.backend);
  jstring name = (*env)->NewStringUTF(env, info.name);
  if (!ctor || !backend || !name) return NULL;
  return (*env)->NewObject(env, record, ctor, backend, name, (jlong)info.memory_bytes, (jlong)info.max_buffer_bytes,
                           (jint)info.compute_units, (jboolean)(info.host_visible != 0));
}

JNIEXPORT jlongArray JNICALL Java_dev_mpsactors_nativemps_NativeDevice_liveObjects0(JNIEnv* env, jclass cls,
                                                                                   jlong handle) {
  if (mps_jni_null_handle(env, handle, "device")) return NULL;
  mps_live_objects live;
  mps_error err;
  if (mps_jni_check(env, mps_device_live_objects_get(MPS_PTR(mps_device, handle), &live, &err), &err)) return NULL;
  /* Order: the fields of mps_live_objects and the components of LiveObjects. */
  jlong values[8] = {live.buffers, live.buffer_bytes, live.streams, live.events,
                     live.libraries, live.pipelines, live.command_buffers, live.programs};
  jlongArray out = (*env)->NewLongArray(env, 8);
  if (out) (*env)->SetLongArrayRegion(env, out, 0, 8, values);
  return out;
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeDevice_close0(JNIEnv* env, jclass cls, jlong handle) {
  if (mps_jni_null_handle(env, handle, "device")) return;
  mps_error err;
  mps_jni_check(env, mps_device_close(MPS_PTR(mps_device, handle), &err), &err);
}
