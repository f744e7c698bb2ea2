package dev.mpsactors.runtime;

import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import java.util.List;

/**
 * A text request (embed, rerank, classify) was answered with a {@link TextFailure}: its {@link #kind()},
 * and {@link #problems()} naming the bad texts when that was the reason.
 */
public final class TextRequestFailedException extends MpsRuntimeException {
    private static final long serialVersionUID = 1L;
    private final FailureKind kind;
    private final transient List<TextProblem> problems;

    public TextRequestFailedException(FailureKind kind, String message, List<TextProblem> problems) {
        super(message);
        this.kind = kind;
        this.problems = List.copyOf(problems);
    }

    public TextRequestFailedException(TextFailure failure) {
        this(failure.kind(), failure.reason(), failure.problems());
    }

    public FailureKind kind() {
        return kind;
    }

    public List<TextProblem> problems() {
        return problems;
    }
}
