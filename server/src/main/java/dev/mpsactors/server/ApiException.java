package dev.mpsactors.server;

import java.util.List;

/**
 * A request answered with an error: its HTTP status, a type (TEI's {@code error_type}: Validation, Tokenizer,
 * Empty, Overloaded, Unhealthy, ...), a one-line message and, where it was about texts, each bad text by
 * index. Rendered as JSON in the style of the route (TEI or OpenAI); never carries a stack trace.
 */
final class ApiException extends RuntimeException {
    final int status;
    final String type;
    /** The request field or setting at fault, when there is one (OpenAI's {@code param}). */
    final String param;
    final List<String> problems;
    /** Seconds for a Retry-After header (429), or 0. */
    final long retryAfterSeconds;

    ApiException(int status, String type, String message) {
        this(status, type, message, null, List.of(), 0);
    }

    ApiException(int status, String type, String message, String param, List<String> problems, long retryAfterSeconds) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.problems = List.copyOf(problems);
        this.retryAfterSeconds = retryAfterSeconds;
    }

    static ApiException badRequest(String message, String param) {
        return new ApiException(400, "Validation", message, param, List.of(), 0);
    }

    static ApiException unprocessable(String message, String param) {
        return new ApiException(422, "Validation", message, param, List.of(), 0);
    }

    /** A configured limit exceeded: 413 naming the setting. */
    static ApiException limit(String message, String key) {
        return new ApiException(413, "Validation", message + " (" + ServerSettings.PREFIX + key + ")", key,
                List.of(), 0);
    }

    static ApiException notFound(String message) {
        return new ApiException(404, "NotFound", message);
    }
}
