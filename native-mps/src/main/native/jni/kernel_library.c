/* JNI side of dev.mpsactors.nativemps.KernelLibrary. */
#include "dev_mpsactors_nativemps_KernelLibrary.h"
#include "jni_util.h"

JNIEXPORT jlong JNICALL Java_dev_mpsactors_nativemps_KernelLibrary_compile0(JNIEnv* env, jclass cls, jlong device,
                                                                            jstring source, jstring options) {
  if (mps_jni_null_handle(env, device, "device")) return 0;
  const char* src = (*env)->GetStringUTFChars(env, source, NULL);
  if (!src) return 0;
  const char* opts = options ? (*env)->GetStringUTFChars(env, options, NULL) : NULL;
  mps_library* library = NULL;
  mps_error err;
  mps_status s = mps_library_compile(MPS_PTR(mps_device, device), src, opts, &library, &err);
  (*env)->ReleaseStringUTFChars(env, source, src);
  if (opts) (*env)->ReleaseStringUTFChars(env, options, opts);
  if (mps_jni_check(env, s, &err)) return 0;
  return MPS_HANDLE(library);
}

JNIEXPORT void JNICALL Java_dev_mpsactors_nativemps_KernelLibrary_release0(JNIEnv* env, jclass cls, jlong library) {
  if (mps_jni_null_handle(env, library, "kernel library")) return;
  mps_error err;
  mps_jni_check(env, mps_library_release(MPS_PTR(mps_library, library), &err), &err);
}
