package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * Key stores for Artery over TLS, made with the JDK's keytool: the cluster's members share one key pair
 * ({@code member.p12}) and trust its certificate ({@code trust.p12}); an outsider has a key pair of its own
 * ({@code outsider.p12}) that no member trusts, while it trusts the members (so only their refusal of its
 * certificate, mutual authentication, keeps it out).
 */
final class ClusterCertificates {
    private static ClusterCertificates shared;

    final Path dir;
    final String password = UUID.randomUUID().toString();

    private ClusterCertificates(Path dir) {
        this.dir = dir;
    }

    /** One set for the whole test run (keytool takes a second or two). */
    static synchronized ClusterCertificates shared() {
        if (shared == null) {
            try {
                Path dir = Files.createTempDirectory("cluster-tls-");
                ClusterCertificates c = new ClusterCertificates(dir);
                c.keyPair("member", "CN=mps-actors cluster member");
                c.keyPair("outsider", "CN=someone else");
                c.keytool("-exportcert", "-alias", "member", "-keystore", c.store("member").toString(),
                        "-storepass", c.password, "-file", dir.resolve("member.crt").toString());
                c.keytool("-importcert", "-noprompt", "-alias", "member", "-file", dir.resolve("member.crt").toString(),
                        "-keystore", c.store("trust").toString(), "-storetype", "PKCS12", "-storepass", c.password);
                shared = c;
            } catch (IOException | InterruptedException e) {
                throw new IllegalStateException("cannot make the test's key stores: " + e, e);
            }
        }
        return shared;
    }

    Path store(String name) {
        return dir.resolve(name + ".p12");
    }

    /** {@code mps-actors.cluster.tls} on, with the key store {@code keyStore} ("member" or "outsider"). */
    Config tls(String keyStore) {
        return ConfigFactory.empty()
                .withValue(ClusterTls.PREFIX + ".enabled", ConfigValueFactory.fromAnyRef(true))
                .withValue(ClusterTls.PREFIX + ".key-store", ConfigValueFactory.fromAnyRef(store(keyStore).toString()))
                .withValue(ClusterTls.PREFIX + ".key-store-password", ConfigValueFactory.fromAnyRef(password))
                .withValue(ClusterTls.PREFIX + ".trust-store", ConfigValueFactory.fromAnyRef(store("trust").toString()))
                .withValue(ClusterTls.PREFIX + ".trust-store-password", ConfigValueFactory.fromAnyRef(password));
    }

    private void keyPair(String name, String dname) throws IOException, InterruptedException {
        keytool("-genkeypair", "-alias", name, "-keyalg", "EC", "-groupname",
                "secp256r1", "-sigalg", "SHA256withECDSA", "-dname", dname, "-validity", "2", "-keystore",
                store(name).toString(), "-storetype", "PKCS12", "-storepass", password, "-keypass", password);
    }

    private void keytool(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("keytool " + String.join(" ", args) + " failed: " + output);
        }
    }
}
