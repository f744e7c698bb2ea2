package dev.mpsactors.runtime;

import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.util.Objects;

/** One element of an {@link InferenceFlow}: a request id and its inputs. */
public record InferenceRequest(String requestId, InferenceInputs inputs) {
    public InferenceRequest {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(inputs, "inputs");
    }
}
