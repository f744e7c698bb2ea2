package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigValue;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The {@code mps-actors.cluster} section, read once (reference.conf documents each key).
 *
 * @param models folder of each model name, the same path on every node
 */
public record ClusterSettings(String systemName, String seeds, Map<String, Path> models, int replicas,
                              Duration loadTimeout, int pendingCapacity, Duration attemptTimeout, int attempts,
                              Duration retryBackoff) {
    public static final String PREFIX = "mps-actors.cluster";

    public ClusterSettings {
        models = Map.copyOf(models);
        if (replicas < 1) {
            throw new IllegalArgumentException(PREFIX + ".replicas must be at least 1, was " + replicas);
        }
        if (attempts < 1) {
            throw new IllegalArgumentException(PREFIX + ".client.attempts must be at least 1, was " + attempts);
        }
        if (pendingCapacity < 0) {
            throw new IllegalArgumentException(PREFIX + ".pending-capacity must not be negative");
        }
    }

    public static ClusterSettings fromConfig(Config config) {
        Config c = config.getConfig(PREFIX);
        Map<String, Path> models = new LinkedHashMap<>();
        for (Map.Entry<String, ConfigValue> e : c.getObject("models").entrySet()) {
            models.put(e.getKey(), Path.of(String.valueOf(e.getValue().unwrapped())));
        }
        return new ClusterSettings(c.getString("system-name"), c.getString("seeds"), models, c.getInt("replicas"),
                c.getDuration("load-timeout"), c.getInt("pending-capacity"), c.getDuration("client.attempt-timeout"),
                c.getInt("client.attempts"), c.getDuration("client.retry-backoff"));
    }
}
