/*
 * Metal objects held in C structs (Objective-C only). A struct field holds one +1 reference, taken with
 * mps_metal_own and dropped with mps_metal_drop, exactly where the owning struct is created and freed; code
 * that uses the object borrows it with MPS_METAL(type, field), which neither retains nor releases.
 *
 * Why not ARC-managed struct fields: the structs are calloc'd and freed by reference-counting code shared
 * with C files, which would never run ARC's release. Explicit references keep one lifetime rule for all.
 */
#ifndef MPS_METAL_BRIDGE_H
#define MPS_METAL_BRIDGE_H

#ifndef __OBJC__
#error "metal/bridge.h is Objective-C only"
#endif

#if !__has_feature(objc_arc)
#error "the metal backend is compiled with -fobjc-arc"
#endif

#import <Foundation/Foundation.h>

/* A +1 reference to `object` for a struct field; NULL for nil. */
static inline void* mps_metal_own(id object) { return object ? (void*)CFBridgingRetain(object) : NULL; }

/* Drops a reference taken with mps_metal_own; NULL is allowed. */
static inline void mps_metal_drop(void* ref) {
  if (ref) CFRelease(ref);
}

/* The object a field refers to, borrowed (no retain, no release). */
#define MPS_METAL(type, ref) ((__bridge type)(ref))

/* An NSError's text for an mps_error message: localizedDescription, which for compiler errors holds the log.
 * The pointer lives as long as the enclosing autorelease pool; callers copy it into the message at once. */
static inline const char* mps_metal_error_text(NSError* error) {
  const char* text = error ? error.localizedDescription.UTF8String : NULL;
  return text ? text : "(no description)";
}

#endif
