#include "jni_util.h"

#include <stdio.h>

void mps_jni_throw(JNIEnv* env, const char* class_name, const char* message) {
  if ((*env)->ExceptionCheck(env)) return;
  jclass cls = (*env)->FindClass(env, class_name);
  if (cls) {
    (*env)->ThrowNew(env, cls, message);
    (*env)->DeleteLocalRef(env, cls);
  }
}

int mps_jni_check(JNIEnv* env, mps_status status, const mps_error* err) {
  if (status == MPS_OK) return 0;
  if ((*env)->ExceptionCheck(env)) return 1;
  /* Looked up per throw rather than cached: failures are rare and the module keeps no mutable globals. */
  jclass cls = (*env)->FindClass(env, "dev/mpsactors/nativemps/NativeException");
  if (!cls) return 1;
  jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "(ILjava/lang/String;)V");
  if (ctor) {
    jstring message = (*env)->NewStringUTF(env, err && err->message[0] ? err->message : mps_status_name(status));
    if (message) {
      jobject ex = (*env)->NewObject(env, cls, ctor, (jint)status, message);
      if (ex) (*env)->Throw(env, (jthrowable)ex);
    }
  }
  (*env)->DeleteLocalRef(env, cls);
  return 1;
}

int mps_jni_null_handle(JNIEnv* env, jlong handle, const char* what) {
  if (handle != 0) return 0;
  char message[128];
  snprintf(message, sizeof message, "%s is closed", what);
  mps_jni_throw(env, "java/lang/IllegalStateException", message);
  return 1;
}

char* mps_jni_direct_range(JNIEnv* env, jobject bb, jint position, jint length) {
  char* base = (*env)->GetDirectBufferAddress(env, bb);
  jlong capacity = (*env)->GetDirectBufferCapacity(env, bb);
  if (!base || capacity < 0) {
    mps_jni_throw(env, "java/lang/IllegalArgumentException", "not a direct ByteBuffer");
    return NULL;
  }
  if (position < 0 || length < 0 || (jlong)position + length > capacity) {
    mps_jni_throw(env, "java/lang/IndexOutOfBoundsException", "ByteBuffer range is outside its capacity");
    return NULL;
  }
  return base + position;
}

