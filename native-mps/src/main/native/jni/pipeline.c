/* JNI side of dev.mpsactors.nativemps.Pipeline. */
#include "dev_mpsactors_nativemps_Pipeline.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_Pipeline_create0(JNIEnv* env, jclass cls, jlong library,
                                                                      jstring function) {
  if (mps_jni_null_handle(env, library, "kernel library")) return 0;
  const char* name = (*env)->GetStringUTFChars(env, function, NULL);
  if (!name) return 0;
  mps_pipeline* pipeline = NULL;
  mps_error err;
  mps_status s = mps_pipeline_create(MPS_PTR(mps_library, library), name, &pipeline, &err);
  (*env)->ReleaseStringUTFChars(env, function, name);
  if (mps_jni_check(env, s, &err)) return 0;
  return MPS_HANDLE(pipeline);
}

JNIEXPORT jint JNICALL Java_dev_mpsactors_nativemps_Pipeline_argCount0(JNIEnv* env, jclass cls, jlong pipeline) {
  if (mps_jni_null_handle(env, pipeline, "pipeline")) return 0;
  uint32_t count = 0;
  mps_error err;
  if (mps_jni_check(env, mps_pipeline_arg_count(MPS_PTR(mps_pipeline, pipeline), &count, &err), &err)) return 0;
  return (jint)count;
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_Pipeline_release0(JNIEnv* env, jclass cls, jlong pipeline) {
  if (mps_jni_null_handle(env, pipeline, "pipeline")) return;
  mps_error err;
  mps_jni_check(env, mps_pipeline_release(MPS_PTR(mps_pipeline, pipeline), &err), &err);
}
