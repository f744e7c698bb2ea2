package dev.mpsactors.runtime;

import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.OutputSpec;
import java.util.Objects;

/** One element of an {@link InferenceFlow}: a request id, its inputs and the outputs it asks for. */
public record InferenceRequest(String requestId, InferenceInputs inputs, OutputSpec outputs) {
    public InferenceRequest {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(inputs, "inputs");
        outputs = outputs == null ? OutputSpec.HF_DEFAULT : outputs;
    }

    /** A request for Hugging Face's default outputs. */
    public InferenceRequest(String requestId, InferenceInputs inputs) {
        this(requestId, inputs, null);
    }
}
