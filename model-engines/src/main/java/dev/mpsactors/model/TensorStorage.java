package dev.mpsactors.model;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.GemmMath;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * How a model's float tensors (weights, activations, outputs) are stored on the device: fp32, or 16-bit
 * (IEEE fp16 or bf16) for the cuda backend's gemm16/layernorm16/softmax16/embedding16 kernels, which compute
 * in fp32 and round on store. Token ids stay int32 and the attention mask fp32 in every storage.
 */
public enum TensorStorage {
    FP32(4, ""), FP16(2, "16"), BF16(2, "16");

    private final int bytes;
    private final String kernelSuffix;

    TensorStorage(int bytes, String kernelSuffix) {
        this.bytes = bytes;
        this.kernelSuffix = kernelSuffix;
    }

    /**
     * The storage of {@code mps-actors.model.storage}: "fp32", "fp16", "bf16", or "auto" — fp16 with fp16 GEMM
     * math, fp32 otherwise (bf16 storage costs accuracy: 1.3e-2 relative error on BERT-base, so bf16 math keeps
     * fp32 tensors unless bf16 storage is asked for).
     */
    public static TensorStorage of(String setting, GemmMath math) {
        return switch (setting) {
            case "fp16" -> FP16;
            case "bf16" -> BF16;
            case "fp32" -> FP32;
            default -> math == GemmMath.FP16 ? FP16 : FP32;
        };
    }

    /** Bytes of one stored value. */
    public int bytes() {
        return bytes;
    }

    /** The kernel that works on this storage: "gemm" or "gemm16". */
    public String kernel(String fp32Name) {
        return fp32Name + kernelSuffix;
    }

    /** Writes {@code values} at {@code byteOffset}, rounded to nearest even when stored in 16 bits. */
    public void write(DeviceBuffer buffer, long byteOffset, float[] values) {
        if (this == FP32) {
            buffer.write(byteOffset, values);
            return;
        }
        ByteBuffer bits = ByteBuffer.allocateDirect(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            bits.putShort(this == FP16 ? SafetensorsWriter.floatToF16(v) : SafetensorsWriter.floatToBf16(v));
        }
        bits.flip();
        buffer.write(byteOffset, bits);
    }

    /** Reads {@code out.length} values from {@code byteOffset}, widened to float. */
    public void read(DeviceBuffer buffer, long byteOffset, float[] out) {
        if (this == FP32) {
            buffer.read(byteOffset, out);
            return;
        }
        ByteBuffer bits = ByteBuffer.allocateDirect(out.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        buffer.read(byteOffset, bits);
        for (int i = 0; i < out.length; i++) {
            int h = bits.getShort(2 * i) & 0xffff;
            out[i] = this == FP16 ? SafetensorsFile.f16ToFloat(h) : SafetensorsFile.bf16ToFloat(h);
        }
    }
}
