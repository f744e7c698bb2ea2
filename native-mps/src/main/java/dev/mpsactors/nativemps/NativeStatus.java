package dev.mpsactors.nativemps;

/** Status codes of the native C ABI ({@code mps_status} in mps.h), in the same order. */
public enum NativeStatus {
    OK,
    INVALID_ARGUMENT,
    OUT_OF_MEMORY,
    UNSUPPORTED,
    NOT_FOUND,
    BUSY,
    KERNEL_FAILED,
    COMPILE_FAILED,
    BACKEND,
    STATE;

    private static final NativeStatus[] BY_CODE = values();

    public static NativeStatus fromCode(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : BACKEND;
    }
}
