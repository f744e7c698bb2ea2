package dev.mpsactors.runtime;

import dev.mpsactors.protocol.TextProtocol.TextProblem;
import java.util.List;

/** An Embed was answered with a failure; {@link #problems()} names the bad texts when that was the reason. */
public final class EmbedFailedException extends MpsRuntimeException {
    private static final long serialVersionUID = 1L;
    private final transient List<TextProblem> problems;

    public EmbedFailedException(String message, List<TextProblem> problems) {
        super(message);
        this.problems = List.copyOf(problems);
    }

    public List<TextProblem> problems() {
        return problems;
    }
}
