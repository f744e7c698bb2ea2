package dev.mpsactors.server;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.mpsactors.runtime.InvalidConfigException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The {@code mps-actors.server} settings (documented in this module's reference.conf). An invalid value
 * throws {@link InvalidConfigException} whose message begins with the key.
 */
public record ServerSettings(String host, int port, Duration requestTimeout, Duration maxRequestTimeout,
                             long maxBodyBytes, int maxTexts, int maxTokensPerText, int maxTokensPerRequest,
                             int maxPriority, Duration retryAfter, Duration drainTimeout, Duration shutdownTimeout,
                             List<Integer> warmupBatchSizes, Set<String> apiKeys, Tls tls, String defaultModel) {
    public static final String PREFIX = "mps-actors.server.";

    /** HTTPS from a keystore; {@code enabled} false serves plain HTTP. */
    public record Tls(boolean enabled, Path keystore, String password, String type) {}

    public ServerSettings {
        warmupBatchSizes = List.copyOf(warmupBatchSizes);
        apiKeys = Set.copyOf(apiKeys);
    }

    /** Reads {@code root} (resolved, with reference.conf); API keys also from the environment variable named. */
    public static ServerSettings fromConfig(Config root) {
        return fromConfig(root, System.getenv());
    }

    static ServerSettings fromConfig(Config root, java.util.Map<String, String> env) {
        Config c = root.getConfig("mps-actors.server");
        String host = get("host", () -> c.getString("host"));
        int port = range("port", get("port", () -> c.getInt("port")), 0, 65535);
        Duration timeout = positive("request-timeout", get("request-timeout", () -> c.getDuration("request-timeout")));
        Duration maxTimeout = positive("max-request-timeout",
                get("max-request-timeout", () -> c.getDuration("max-request-timeout")));
        long body = get("max-body-bytes", () -> c.getBytes("max-body-bytes"));
        if (body < 1 || body > Integer.MAX_VALUE) {
            throw new InvalidConfigException(PREFIX + "max-body-bytes", "must be in [1, 2GiB), got " + body);
        }
        int texts = range("max-texts", get("max-texts", () -> c.getInt("max-texts")), 1, 1_000_000);
        int perText = range("max-tokens-per-text", get("max-tokens-per-text", () -> c.getInt("max-tokens-per-text")),
                0, Integer.MAX_VALUE);
        int perRequest = range("max-tokens-per-request",
                get("max-tokens-per-request", () -> c.getInt("max-tokens-per-request")), 1, Integer.MAX_VALUE);
        int priority = range("max-priority", get("max-priority", () -> c.getInt("max-priority")), 0, 1_000_000);
        Duration retry = positive("retry-after", get("retry-after", () -> c.getDuration("retry-after")));
        Duration drain = positive("drain-timeout", get("drain-timeout", () -> c.getDuration("drain-timeout")));
        Duration shutdown = positive("shutdown-timeout", get("shutdown-timeout", () -> c.getDuration("shutdown-timeout")));
        List<Integer> warmup = get("warmup-batch-sizes", () -> c.getIntList("warmup-batch-sizes"));
        for (int b : warmup) {
            range("warmup-batch-sizes", b, 0, 4096);
        }
        Set<String> keys = new LinkedHashSet<>(get("api-keys", () -> c.getStringList("api-keys")));
        String envName = get("api-keys-env", () -> c.getString("api-keys-env"));
        if (!envName.isBlank() && env.get(envName) != null) {
            for (String k : env.get(envName).split(",")) {
                if (!k.isBlank()) {
                    keys.add(k.strip());
                }
            }
        }
        if (keys.stream().anyMatch(String::isBlank)) {
            throw new InvalidConfigException(PREFIX + "api-keys", "keys must not be blank");
        }
        boolean tlsOn = get("tls.enabled", () -> c.getBoolean("tls.enabled"));
        String keystore = get("tls.keystore", () -> c.getString("tls.keystore"));
        if (tlsOn && keystore.isBlank()) {
            throw new InvalidConfigException(PREFIX + "tls.keystore", "HTTPS is enabled but no keystore is given");
        }
        Tls tls = new Tls(tlsOn, keystore.isBlank() ? null : Path.of(keystore),
                get("tls.keystore-password", () -> c.getString("tls.keystore-password")),
                get("tls.keystore-type", () -> c.getString("tls.keystore-type")));
        return new ServerSettings(host, port, timeout, maxTimeout, body, texts, perText, perRequest, priority, retry,
                drain, shutdown, warmup, keys, tls, get("default-model", () -> c.getString("default-model")));
    }

    private static <T> T get(String key, java.util.function.Supplier<T> read) {
        try {
            return read.get();
        } catch (ConfigException e) {
            throw new InvalidConfigException(PREFIX + key, e.getMessage());
        }
    }

    private static int range(String key, int v, int min, int max) {
        if (v < min || v > max) {
            throw new InvalidConfigException(PREFIX + key, "must be in [" + min + ", " + max + "], got " + v);
        }
        return v;
    }

    private static Duration positive(String key, Duration d) {
        if (d.isNegative() || d.isZero()) {
            throw new InvalidConfigException(PREFIX + key, "must be positive, got " + d);
        }
        return d;
    }
}
