/* Helpers shared by the JNI files: status -> Java exception, handle casts. One file per Java class. */
#ifndef MPS_JNI_UTIL_H
#define MPS_JNI_UTIL_H

#include <jni.h>
#include <stdint.h>

#include "mps/mps.h"

#define MPS_PTR(type, handle) ((type*)(intptr_t)(handle))
#define MPS_HANDLE(ptr) ((jlong)(intptr_t)(ptr))

/* Throws dev.mpsactors.nativemps.NativeException(status, message) when status != MPS_OK; returns 1 if thrown. */
int mps_jni_check(JNIEnv* env, mps_status status, const mps_error* err);
void mps_jni_throw(JNIEnv* env, const char* class_name, const char* message);
/* Throws IllegalStateException when the handle is 0 (a closed object); returns 1 if thrown. */
int mps_jni_null_handle(JNIEnv* env, jlong handle, const char* what);

/* Address of [position, position + length) of a direct ByteBuffer; throws and returns NULL otherwise. */
char* mps_jni_direct_range(JNIEnv* env, jobject buffer, jint position, jint length);

#endif
