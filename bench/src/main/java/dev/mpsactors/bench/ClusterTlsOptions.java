package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine.Option;

/**
 * The TLS flags of {@code node} and {@code cluster-client}: Artery over TLS with mutual authentication
 * ({@code mps-actors.cluster.tls}). Passwords come from the configuration or the environment
 * ({@code MPS_ACTORS_TLS_KEY_STORE_PASSWORD}, {@code MPS_ACTORS_TLS_TRUST_STORE_PASSWORD}), never from the
 * command line, where other users of the machine could read them.
 */
final class ClusterTlsOptions {
    @Option(names = "--tls", description = "speak Artery over TLS with mutual authentication"
            + " (mps-actors.cluster.tls.enabled)")
    boolean tls;

    @Option(names = "--key-store", paramLabel = "FILE", description = "this member's certificate and key"
            + " (mps-actors.cluster.tls.key-store; password: MPS_ACTORS_TLS_KEY_STORE_PASSWORD)")
    Path keyStore;

    @Option(names = "--trust-store", paramLabel = "FILE", description = "the certificates accepted from peers"
            + " (mps-actors.cluster.tls.trust-store; password: MPS_ACTORS_TLS_TRUST_STORE_PASSWORD)")
    Path trustStore;

    /** The flags as configuration keys, over {@code config}. */
    Config over(Config config) {
        if ((keyStore != null || trustStore != null) && !tls) {
            throw new Cli.UsageException("--key-store and --trust-store go with --tls");
        }
        Map<String, Object> keys = new LinkedHashMap<>();
        if (tls) {
            keys.put("mps-actors.cluster.tls.enabled", true);
        }
        if (keyStore != null) {
            keys.put("mps-actors.cluster.tls.key-store", keyStore.toString());
        }
        if (trustStore != null) {
            keys.put("mps-actors.cluster.tls.trust-store", trustStore.toString());
        }
        return ConfigFactory.parseMap(keys).withFallback(config);
    }
}
