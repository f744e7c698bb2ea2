/* JNI side of dev.mpsactors.nativemps.StreamTimeline. */
#include "dev_mpsactors_nativemps_StreamTimeline.h"
#include "jni_util.h"

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_StreamTimeline_retain0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return;
  mps_error err;
  mps_jni_check(env, mps_stream_timeline_retain(MPS_PTR(mps_stream, stream), &err), &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_StreamTimeline_release0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream timeline")) return;
  mps_error err;
  mps_jni_check(env, mps_stream_timeline_release(MPS_PTR(mps_stream, stream), &err), &err);
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_StreamTimeline_committedPoint0(JNIEnv* env, jclass cls,
                                                                                    jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream timeline")) return 0;
  return (jlong)mps_stream_committed_point(MPS_PTR(mps_stream, stream));
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_StreamTimeline_completedPoint0(JNIEnv* env, jclass cls,
                                                                                    jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream timeline")) return 0;
  return (jlong)mps_stream_completed_point(MPS_PTR(mps_stream, stream));
}
