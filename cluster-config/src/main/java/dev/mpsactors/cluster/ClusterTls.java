package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Artery over TLS with mutual authentication, from {@code mps-actors.cluster.tls}: when {@code enabled}, the
 * transport becomes {@code tls-tcp} and Pekko's {@code ConfigSSLEngineProvider} gets this member's key store (its
 * own certificate and key) and the trust store (the certificates it accepts from peers), with mutual
 * authentication on: a member whose certificate the others do not trust cannot connect, so it cannot join.
 * The stores are opened here first, so a missing file or a wrong password is refused at start with the key
 * that names it instead of failing every connection later.
 */
public final class ClusterTls {
    /** The configuration section. */
    public static final String PREFIX = ClusterSettings.PREFIX + ".tls";
    private static final String ENGINE = "pekko.remote.artery.ssl.config-ssl-engine.";

    private ClusterTls() {}

    /** {@code config} with Artery's TLS settings applied when {@code mps-actors.cluster.tls.enabled}; else as is. */
    static Config apply(Config config) {
        if (!config.hasPath(PREFIX + ".enabled") || !config.getBoolean(PREFIX + ".enabled")) {
            return config;
        }
        String keyStore = store(config, "key-store");
        String trustStore = store(config, "trust-store");
        String keyStorePassword = config.getString(PREFIX + ".key-store-password");
        String keyPassword = config.getString(PREFIX + ".key-password");
        if (keyPassword.isEmpty()) {
            keyPassword = keyStorePassword;
        }
        String trustStorePassword = config.getString(PREFIX + ".trust-store-password");
        open(keyStore, keyStorePassword, "key-store");
        open(trustStore, trustStorePassword, "trust-store");
        Map<String, Object> keys = new LinkedHashMap<>();
        keys.put("pekko.remote.artery.transport", "tls-tcp");
        keys.put(ENGINE + "key-store", keyStore);
        keys.put(ENGINE + "key-store-password", keyStorePassword);
        keys.put(ENGINE + "key-password", keyPassword);
        keys.put(ENGINE + "trust-store", trustStore);
        keys.put(ENGINE + "trust-store-password", trustStorePassword);
        keys.put(ENGINE + "protocol", config.getString(PREFIX + ".protocol"));
        keys.put(ENGINE + "require-mutual-authentication", true);
        keys.put(ENGINE + "hostname-verification", config.getBoolean(PREFIX + ".hostname-verification"));
        return ConfigFactory.parseMap(keys).withFallback(config);
    }

    private static String store(Config config, String key) {
        String file = config.getString(PREFIX + "." + key).trim();
        if (file.isEmpty()) {
            throw new IllegalArgumentException(PREFIX + "." + key + " is not set (TLS is on: "
                    + PREFIX + ".enabled)");
        }
        if (!Files.isReadable(Path.of(file))) {
            throw new IllegalArgumentException(PREFIX + "." + key + ": cannot read " + file);
        }
        return file;
    }

    private static void open(String file, String password, String key) {
        try (InputStream in = Files.newInputStream(Path.of(file))) {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(in, password.toCharArray());
            if (store.size() == 0) {
                throw new IllegalArgumentException(PREFIX + "." + key + ": " + file + " holds no entry");
            }
        } catch (IllegalArgumentException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalArgumentException(PREFIX + "." + key + ": cannot open " + file + " with "
                    + PREFIX + "." + key + "-password: " + e.getMessage(), e);
        }
    }
}
