package dev.mpsactors.server;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The HTTP load driver of {@code stress --url}: N connections in closed loop (each sends its next request when
 * its answer arrives) against a running server's {@code POST /v1/embeddings} with token-id inputs, counting
 * through a {@link Recorder} exactly as the in-process clients do. An API key, when the server wants one,
 * comes from the environment variable {@code MPS_ACTORS_API_KEY}.
 */
public final class HttpLoad {
    /** What the driver reports to: who may send next, and each answer once. */
    public interface Recorder {
        boolean trySend();

        void completed(long sentAtNanos, boolean ok, String failure);
    }

    private final URI base;
    private final HttpClient http;
    private final String apiKey = System.getenv("MPS_ACTORS_API_KEY");

    public HttpLoad(URI base) {
        this.base = base;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(30)).build();
    }

    private HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofMinutes(5));
        if (apiKey != null && !apiKey.isBlank()) {
            b.header("Authorization", "Bearer " + apiKey);
        }
        return b;
    }

    /** The model the server's TEI routes default to ({@code GET /info}). */
    public String defaultModel() throws Exception {
        HttpResponse<String> r = http.send(request("/info").GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IllegalStateException(base + "/info answered " + r.statusCode() + ": " + r.body());
        }
        return JsonBodies.MAPPER.readTree(r.body()).path("model_id").asText();
    }

    private static final Pattern BUSY = Pattern.compile(
            "mps_stream_busy_seconds_total\\{[^}]*stream=\"(\\d+)\"[^}]*\\} ([0-9.eE+-]+)");

    /** Each stream's busy time so far, from the server's {@code /metrics} (stream utilisation over a run). */
    public long[] streamBusyNanos() {
        try {
            HttpResponse<String> r = http.send(request("/metrics").GET().build(), HttpResponse.BodyHandlers.ofString());
            Map<Integer, Long> busy = new TreeMap<>();
            Matcher m = BUSY.matcher(r.body());
            while (m.find()) {
                busy.put(Integer.parseInt(m.group(1)), (long) (Double.parseDouble(m.group(2)) * 1e9));
            }
            return busy.values().stream().mapToLong(Long::longValue).toArray();
        } catch (Exception e) {
            return new long[0];
        }
    }

    /**
     * Starts one closed-loop client per entry of {@code requests} (each cycling through its own token-id
     * requests, [sequences][tokens]); the future completes when every client was told to stop.
     */
    public CompletableFuture<Void> start(String model, List<List<int[][]>> requests, Recorder recorder) {
        List<CompletableFuture<Void>> clients = new ArrayList<>();
        for (List<int[][]> mine : requests) {
            List<byte[]> bodies = new ArrayList<>();
            for (int[][] ids : mine) {
                try {
                    bodies.add(JsonBodies.MAPPER.writeValueAsBytes(Map.of("model", model, "input", ids)));
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
            CompletableFuture<Void> done = new CompletableFuture<>();
            clients.add(done);
            next(bodies, 0, recorder, done);
        }
        return CompletableFuture.allOf(clients.toArray(CompletableFuture[]::new));
    }

    private void next(List<byte[]> bodies, long n, Recorder recorder, CompletableFuture<Void> done) {
        if (!recorder.trySend()) {
            done.complete(null);
            return;
        }
        long sentAt = System.nanoTime();
        HttpRequest req = request("/v1/embeddings").header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(bodies.get((int) (n % bodies.size())))).build();
        http.sendAsync(req, HttpResponse.BodyHandlers.ofString()).whenComplete((r, e) -> {
            String failure = e != null ? "no answer: " + e : r.statusCode() != 200 ? r.statusCode() + " "
                    + JsonBodies.oneLine(r.body()) : null;
            recorder.completed(sentAt, failure == null, failure);
            next(bodies, n + 1, recorder, done);
        });
    }

    /** One answer of {@link #send}: its status and its body's error message (null on success). */
    public record Outcome(int status, String error) {}

    /** One request with {@code body} (JSON text) to {@code /v1/embeddings}, waited for (not from a dispatcher). */
    public Outcome send(String body) throws Exception {
        HttpResponse<String> r = http.send(request("/v1/embeddings").header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() == 200) {
            return new Outcome(200, null);
        }
        String error;
        try {
            JsonNode j = JsonBodies.MAPPER.readTree(r.body());
            error = j.path("error").path("message").asText(r.body());
        } catch (Exception e) {
            error = "not JSON: " + JsonBodies.oneLine(r.body());
        }
        return new Outcome(r.statusCode(), error);
    }
}
