/* JNI side of dev.mpsactors.nativemps.DeviceEvent. */
#include "dev_mpsactors_nativemps_DeviceEvent.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_DeviceEvent_create0(JNIEnv* env, jclass cls, jlong device) {
  if (mps_jni_null_handle(env, device, "device")) return 0;
  mps_event* event = NULL;
  mps_error err;
  if (mps_jni_check(env, mps_event_create(MPS_PTR(mps_device, device), &event, &err), &err)) return 0;
  return MPS_HANDLE(event);
}

JNIEXPORT jboolean JNICALL Java_dev_mpsactors_nativemps_DeviceEvent_query0(JNIEnv* env, jclass cls, jlong event) {
  if (mps_jni_null_handle(env, event, "event")) return JNI_FALSE;
  int32_t complete = 0;
  mps_error err;
  if (mps_jni_check(env, mps_event_query(MPS_PTR(mps_event, event), &complete, &err), &err)) return JNI_FALSE;
  return complete ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jdouble JNICALL Java_dev_mpsactors_nativemps_DeviceEvent_elapsed0(JNIEnv* env, jclass cls, jlong start,
                                                                            jlong end) {
  if (mps_jni_null_handle(env, start, "start event") || mps_jni_null_handle(env, end, "end event")) return 0;
  double ms = 0;
  mps_error err;
  mps_jni_check(env, mps_event_elapsed_ms(MPS_PTR(mps_event, start), MPS_PTR(mps_event, end), &ms, &err), &err);
  return ms;
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceEvent_release0(JNIEnv* env, jclass cls, jlong event) {
  if (mps_jni_null_handle(env, event, "event")) return;
  mps_error err;
  mps_jni_check(env, mps_event_release(MPS_PTR(mps_event, event), &err), &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_DeviceEvent_retain0(JNIEnv* env, jclass cls, jlong event) {
  if (mps_jni_null_handle(env, event, "event")) return;
  mps_error err;
  mps_jni_check(env, mps_event_retain(MPS_PTR(mps_event, event), &err), &err);
}
