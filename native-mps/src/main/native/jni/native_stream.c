/*
 * JNI side of dev.mpsactors.nativemps.NativeStream, including the completion sink: the stream's native
 * executor thread attaches to the JVM once as a daemon, calls NativeStream.onNativeCompletion for each
 * point, and detaches after its last callback (when the sink is freed).
 */
#include <stdio.h>
#include <stdlib.h>

#include "dev_mpsactors_nativemps_NativeStream.h"
#include "jni_util.h"

/* Owned by the stream's executor thread after create; env is only valid on that thread. */
typedef struct completion_sink {
  JavaVM* vm;
  jobject target; /* global ref to the NativeStream: keeps it reachable until the last completion */
  jmethodID on_completion;
  JNIEnv* env;
  int attached_here; /* 1 when this sink attached the thread and must detach it */
} completion_sink;

static void sink_thread_start(void* user) {
  completion_sink* sink = user;
  JavaVMAttachArgs args = {JNI_VERSION_1_8, (char*)"mps-stream-executor", NULL};
  void* env = NULL;
  if ((*sink->vm)->GetEnv(sink->vm, &env, JNI_VERSION_1_8) == JNI_OK) {
    sink->env = env;
    return;
  }
  if ((*sink->vm)->AttachCurrentThreadAsDaemon(sink->vm, &env, &args) == JNI_OK) {
    sink->env = env;
    sink->attached_here = 1;
  } else {
    fprintf(stderr, "mps-actors: stream executor could not attach to the JVM; completions will be lost\n");
  }
}

static void sink_complete(void* user, uint64_t point, mps_status status, const char* message, uint64_t started_ns,
                          uint64_t finished_ns) {
  completion_sink* sink = user;
  JNIEnv* env = sink->env;
  if (!env) return;
  jstring text = message ? (*env)->NewStringUTF(env, message) : NULL;
  (*env)->CallVoidMethod(env, sink->target, sink->on_completion, (jlong)point, (jint)status, text, (jlong)started_ns,
                         (jlong)finished_ns);
  if ((*env)->ExceptionCheck(env)) {
    /* onNativeCompletion already routes listener failures; anything here is an Error such as OOM. */
    (*env)->ExceptionDescribe(env);
    (*env)->ExceptionClear(env);
  }
  if (text) (*env)->DeleteLocalRef(env, text);
}

static void sink_thread_stop(void* user) {
  completion_sink* sink = user;
  if (sink->env) {
    (*sink->env)->DeleteGlobalRef(sink->env, sink->target);
    if (sink->attached_here) (*sink->vm)->DetachCurrentThread(sink->vm);
  }
  free(sink);
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeStream_create0(JNIEnv* env, jclass cls, jlong device,
                                                                          jobject target) {
  if (mps_jni_null_handle(env, device, "device")) return 0;
  completion_sink* sink = calloc(1, sizeof *sink);
  if (!sink) {
    mps_jni_throw(env, "java/lang/OutOfMemoryError", "completion sink");
    return 0;
  }
  if ((*env)->GetJavaVM(env, &sink->vm) != JNI_OK) {
    free(sink);
    mps_jni_throw(env, "java/lang/IllegalStateException", "GetJavaVM failed");
    return 0;
  }
  sink->on_completion = (*env)->GetMethodID(env, cls, "onNativeCompletion", "(JILjava/lang/String;JJ)V");
  if (!sink->on_completion) {
    free(sink);
    return 0;
  }
  sink->target = (*env)->NewGlobalRef(env, target);
  if (!sink->target) {
    free(sink);
    return 0;
  }
  mps_stream_callbacks callbacks = {sink, sink_thread_start, sink_complete, sink_thread_stop};
  mps_stream* stream = NULL;
  mps_error err;
  mps_status s = mps_stream_create(MPS_PTR(mps_device, device), &callbacks, &stream, &err);
  if (s != MPS_OK) {
    (*env)->DeleteGlobalRef(env, sink->target);
    free(sink);
    mps_jni_check(env, s, &err);
    return 0;
  }
  return MPS_HANDLE(stream);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeKernel0(JNIEnv* env, jclass cls, jlong stream,
                                                                               jlong pipeline, jint count,
                                                                               jintArray kinds, jlongArray buffers,
                                                                               jlongArray ints, jdoubleArray floats) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, pipeline, "pipeline")) return;
  if (count < 0 || count > MPS_MAX_KERNEL_ARGS || (*env)->GetArrayLength(env, kinds) < count ||
      (*env)->GetArrayLength(env, buffers) < count || (*env)->GetArrayLength(env, ints) < count ||
      (*env)->GetArrayLength(env, floats) < count) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "kernel argument arrays are inconsistent");
    return;
  }
  jint k[MPS_MAX_KERNEL_ARGS];
  jlong b[MPS_MAX_KERNEL_ARGS], n[MPS_MAX_KERNEL_ARGS];
  jdouble f[MPS_MAX_KERNEL_ARGS];
  (*env)->GetIntArrayRegion(env, kinds, 0, count, k);
  (*env)->GetLongArrayRegion(env, buffers, 0, count, b);
  (*env)->GetLongArrayRegion(env, ints, 0, count, n);
  (*env)->GetDoubleArrayRegion(env, floats, 0, count, f);
  mps_arg args[MPS_MAX_KERNEL_ARGS];
  for (jint i = 0; i < count; i++) {
    args[i].kind = k[i];
    args[i].buffer = k[i] == MPS_ARG_BUFFER ? MPS_PTR(mps_buffer, b[i]) : NULL;
    if (k[i] == MPS_ARG_BUFFER && n[i] < 0) {
      mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative buffer offset");
      return;
    }
    args[i].offset = k[i] == MPS_ARG_BUFFER ? (uint64_t)n[i] : 0;
    args[i].i = n[i];
    args[i].f = f[i];
  }
  mps_error err;
  mps_jni_check(env,
                mps_stream_encode_kernel(MPS_PTR(mps_stream, stream), MPS_PTR(mps_pipeline, pipeline), args,
                                         (uint32_t)count, &err),
                &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeWait0(JNIEnv* env, jclass cls, jlong stream,
                                                                             jlong other, jlong point) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, other, "other stream")) return;
  if (point <= 0) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "timeline points start at 1");
    return;
  }
  mps_error err;
  mps_jni_check(env, mps_stream_encode_wait(MPS_PTR(mps_stream, stream), MPS_PTR(mps_stream, other), (uint64_t)point, &err),
                &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeEventRecord0(JNIEnv* env, jclass cls,
                                                                                    jlong stream, jlong event) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, event, "event")) return;
  mps_error err;
  mps_jni_check(env, mps_stream_encode_event_record(MPS_PTR(mps_stream, stream), MPS_PTR(mps_event, event), &err), &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeCopy0(JNIEnv* env, jclass cls, jlong stream,
                                                                             jlong src, jlong src_offset, jlong dst,
                                                                             jlong dst_offset, jlong bytes) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, src, "source buffer") ||
      mps_jni_null_handle(env, dst, "destination buffer")) {
    return;
  }
  if (src_offset < 0 || dst_offset < 0 || bytes < 0) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative copy offset or size");
    return;
  }
  mps_error err;
  mps_jni_check(env,
                mps_stream_encode_copy(MPS_PTR(mps_stream, stream), MPS_PTR(mps_buffer, src), (uint64_t)src_offset,
                                       MPS_PTR(mps_buffer, dst), (uint64_t)dst_offset, (uint64_t)bytes, &err),
                &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeUpload0(JNIEnv* env, jclass cls, jlong stream,
                                                                               jobject src, jint position,
                                                                               jint length, jlong dst,
                                                                               jlong dst_offset) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, dst, "destination buffer")) return;
  char* from = mps_jni_direct_range(env, src, position, length);
  if (!from) return;
  if (dst_offset < 0) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative upload offset");
    return;
  }
  mps_error err;
  mps_jni_check(env,
                mps_stream_encode_upload(MPS_PTR(mps_stream, stream), from, MPS_PTR(mps_buffer, dst),
                                         (uint64_t)dst_offset, (uint64_t)length, &err),
                &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_encodeDownload0(JNIEnv* env, jclass cls, jlong stream,
                                                                                 jlong src, jlong src_offset,
                                                                                 jobject dst, jint position,
                                                                                 jint length) {
  if (mps_jni_null_handle(env, stream, "stream") || mps_jni_null_handle(env, src, "source buffer")) return;
  char* to = mps_jni_direct_range(env, dst, position, length);
  if (!to) return;
  if (src_offset < 0) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "negative download offset");
    return;
  }
  mps_error err;
  mps_jni_check(env,
                mps_stream_encode_download(MPS_PTR(mps_stream, stream), MPS_PTR(mps_buffer, src), (uint64_t)src_offset,
                                           to, (uint64_t)length, &err),
                &err);
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeStream_commit0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return 0;
  uint64_t point = 0;
  mps_error err;
  if (mps_jni_check(env, mps_stream_commit(MPS_PTR(mps_stream, stream), &point, &err), &err)) return 0;
  return (jlong)point;
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeStream_committedPoint0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return 0;
  return (jlong)mps_stream_committed_point(MPS_PTR(mps_stream, stream));
}

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_NativeStream_completedPoint0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return 0;
  return (jlong)mps_stream_completed_point(MPS_PTR(mps_stream, stream));
}

JNIEXPORT jint JNICALL Java_dev_mpsactors_nativemps_NativeStream_openCommands0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return 0;
  return (jint)mps_stream_open_commands(MPS_PTR(mps_stream, stream));
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_release0(JNIEnv* env, jclass cls, jlong stream) {
  if (mps_jni_null_handle(env, stream, "stream")) return;
  mps_error err;
  mps_jni_check(env, mps_stream_release(MPS_PTR(mps_stream, stream), &err), &err);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_NativeStream_truncateOpen0(JNIEnv* env, jclass cls, jlong stream,
                                                                               jint keep) {
  if (mps_jni_null_handle(env, stream, "stream")) return;
  if (keep < 0) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "keep must be >= 0");
    return;
  }
  mps_error err;
  mps_jni_check(env, mps_stream_truncate_open(MPS_PTR(mps_stream, stream), (uint32_t)keep, &err), &err);
}
