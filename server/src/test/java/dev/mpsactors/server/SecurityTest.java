package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.InputStream;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * HTTPS from a keystore made for the test with keytool, API keys from the configuration and from the
 * environment variable it names, and the per-text token limit.
 */
class SecurityTest {
    @TempDir
    static Path dir;
    static MpsServer server;
    static TestServers.Client https;

    @BeforeAll
    static void start() throws Exception {
        Path keystore = dir.resolve("server.p12");
        Process keytool = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
                "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-storetype", "PKCS12",
                "-keystore", keystore.toString(), "-storepass", "test-secret", "-keypass", "test-secret")
                .redirectErrorStream(true).start();
        String output = new String(keytool.getInputStream().readAllBytes());
        assertTrue(keytool.waitFor(60, TimeUnit.SECONDS) && keytool.exitValue() == 0, "keytool: " + output);

        Config c = ConfigFactory.parseString("mps-actors.server { host = \"127.0.0.1\", port = 0,"
                        + " api-keys = [\"key-one\"], api-keys-env = \"TEST_KEYS\", max-tokens-per-text = 6,"
                        + " warmup-batch-sizes = [1], tls { enabled = true, keystore = \"" + keystore
                        + "\", keystore-password = \"test-secret\" } }")
                .withFallback(ConfigFactory.load()).resolve();
        ServerSettings settings = ServerSettings.fromConfig(c, Map.of("TEST_KEYS", "key-two, key-three"));
        MpsRuntime rt = MpsRuntime.start(c);
        server = MpsServer.start(rt, settings, Map.of("tiny", TestServers.tinyFolder(dir, "tiny", 5)));

        KeyStore trusted = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(keystore)) {
            trusted.load(in, "test-secret".toCharArray());
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trusted);
        SSLContext ssl = SSLContext.getInstance("TLS");
        ssl.init(null, tmf.getTrustManagers(), null);
        https = new TestServers.Client(server.url(), HttpClient.newBuilder().sslContext(ssl)
                .connectTimeout(Duration.ofSeconds(10)).build());
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            assertTrue(server.shutdown().isEmpty());
        }
    }

    @Test
    void httpsWithApiKeysFromConfigAndEnvironment() throws Exception {
        assertTrue(server.url().startsWith("https://"), server.url());
        assertEquals(200, https.get("/health").status(), "health is open");
        TestServers.Reply none = https.get("/v1/models");
        ServerRoutesTest.assertError(none, 401, "API key is required", true);
        assertEquals("Bearer", none.headers().firstValue("WWW-Authenticate").orElse(""));
        assertEquals("authentication_error", none.json().path("error").path("type").asText());
        ServerRoutesTest.assertError(https.get("/models", "Authorization", "Bearer key-four"), 401, "not valid", false);
        assertEquals(200, https.get("/v1/models", "Authorization", "Bearer key-one").status());
        assertEquals(200, https.get("/metrics", "Authorization", "Bearer key-three").status());
        TestServers.Reply embed = https.post("/embed", "{\"inputs\": \"secure text\"}", "Authorization", "Bearer key-two");
        assertEquals(200, embed.status(), embed.toString());
        // the same port does not speak plain HTTP
        assertThrows(java.io.IOException.class,
                () -> new TestServers.Client(server.url().replace("https://", "http://")).get("/health"));
    }

    @Test
    void theTokensPerTextLimitIsNamed() throws Exception {
        TestServers.Reply r = https.post("/embed", "{\"inputs\": [\"short\", \"one two three four five six seven\"]}",
                "Authorization", "Bearer key-one");
        ServerRoutesTest.assertError(r, 413, "mps-actors.server.max-tokens-per-text", false);
        assertTrue(r.json().path("error").asText().startsWith("text 1 has 9 tokens"), r.toString());
    }
}
