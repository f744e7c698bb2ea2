package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The layers of a node's configuration, highest first: the command line's flags, -D system properties, the
 * operator's application.conf, mps-actors-cluster.conf, the reference.conf files. Pekko's reference.conf says
 * {@code provider = local}; it must never hide mps-actors-cluster.conf, also when the caller hands in
 * {@link ConfigFactory#load()}, which already holds it.
 */
class ClusterNodeConfigTest {
    private static final String STABLE_AFTER = "pekko.cluster.split-brain-resolver.stable-after";
    private static final List<String> PROPERTIES = List.of("config.resource", STABLE_AFTER,
            "mps-actors.cluster.replicas", "pekko.remote.artery.canonical.hostname");

    @AfterEach
    void clearProperties() {
        PROPERTIES.forEach(System::clearProperty);
        ConfigFactory.invalidateCaches();
    }

    @Test
    void theCommandLineWithNothingElseGivesAClusterNode() {
        Config c = ClusterNode.resolve(ClusterNode.configFor(new ClusterNode.NodeFlags("10.1.2.3", 25599,
                "10.1.2.3:25599,10.1.2.4:25599", Map.of("tiny", "models/tiny-bert"), 1)));
        assertEquals("cluster", c.getString("pekko.actor.provider"));
        assertEquals("10.1.2.3", c.getString("pekko.remote.artery.canonical.hostname"));
        assertEquals(25599, c.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(List.of("pekko://mps-actors@10.1.2.3:25599", "pekko://mps-actors@10.1.2.4:25599"),
                c.getStringList("pekko.cluster.seed-nodes"));
        assertEquals(List.of("mps-node"), c.getStringList("pekko.cluster.roles"));
        assertEquals(Duration.ofSeconds(20), c.getDuration(STABLE_AFTER));
        ClusterSettings s = ClusterSettings.fromConfig(c);
        assertEquals(1, s.replicas());
        assertEquals(Map.of("tiny", java.nio.file.Path.of("models/tiny-bert")), s.models());
    }

    @Test
    void configFactoryLoadDoesNotHideTheClusterSettings() {
        Config c = ClusterNode.resolve(ConfigFactory.load());
        assertEquals("cluster", c.getString("pekko.actor.provider"));
        assertEquals("org.apache.pekko.cluster.sbr.SplitBrainResolverProvider",
                c.getString("pekko.cluster.downing-provider-class"));
        assertEquals("off", c.getString("pekko.actor.allow-java-serialization"));
        assertEquals(Duration.ofSeconds(20), c.getDuration(STABLE_AFTER));
    }

    @Test
    void flagsOverSystemPropertiesOverApplicationConfOverClusterConf() {
        System.setProperty("config.resource", "node-application.conf");
        System.setProperty(STABLE_AFTER, "7s");
        System.setProperty("mps-actors.cluster.replicas", "5");
        System.setProperty("pekko.remote.artery.canonical.hostname", "10.9.9.9");
        ConfigFactory.invalidateCaches();

        Config c = ClusterNode.resolve(ClusterNode.configFor(new ClusterNode.NodeFlags("10.1.2.3", null,
                "10.1.2.3:25520", null, null)));
        assertEquals("10.1.2.3", c.getString("pekko.remote.artery.canonical.hostname"), "flag over -D");
        assertEquals(Duration.ofSeconds(7), c.getDuration(STABLE_AFTER), "-D over application.conf");
        assertEquals(5, c.getInt("mps-actors.cluster.replicas"), "-D over application.conf");
        assertEquals(Duration.ofSeconds(4), c.getDuration("pekko.cluster.failure-detector.acceptable-heartbeat-pause"),
                "application.conf over reference.conf");
        assertEquals(17, c.getInt("mps-actors.cluster.pending-capacity"), "application.conf over reference.conf");
        assertEquals("cluster", c.getString("pekko.actor.provider"), "cluster conf over reference.conf");

        Config flags = ClusterNode.resolve(ClusterNode.configFor(new ClusterNode.NodeFlags(null, null, null, null, 2)));
        assertEquals(2, flags.getInt("mps-actors.cluster.replicas"), "flag over -D");

        // The same layers through ConfigFactory.load(), as an embedding application passes them.
        Config loaded = ClusterNode.resolve(ConfigFactory.load());
        assertEquals(Duration.ofSeconds(7), loaded.getDuration(STABLE_AFTER));
        assertEquals(17, loaded.getInt("mps-actors.cluster.pending-capacity"));
        assertEquals("10.9.9.9", loaded.getString("pekko.remote.artery.canonical.hostname"));
        assertEquals("cluster", loaded.getString("pekko.actor.provider"));
    }

    @Test
    void badSeedsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClusterNode.resolve(
                ClusterNode.configFor(new ClusterNode.NodeFlags(null, null,
                        "10.0.0.1:25520,pekko://mps-actors@10.0.0.2:25520:25520", null, null))));
        assertEquals("seed 'pekko://mps-actors@10.0.0.2:25520:25520' (mps-actors.cluster.seeds) is not host:port or "
                + "pekko://mps-actors@host:port", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ClusterNode.resolve(ClusterNode.configFor(
                new ClusterNode.NodeFlags(null, null, "10.0.0.1", null, null))));
        assertTrue(e.getMessage().startsWith("seed '10.0.0.1' "), e.getMessage());
    }

    @Test
    void tlsIsOffUnlessEnabledAndThenNamesAStoreItCannotRead() {
        Config plain = ClusterNode.resolve(ConfigFactory.load());
        assertEquals("tcp", plain.getString("pekko.remote.artery.transport"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClusterNode.resolve(
                ConfigFactory.parseString("mps-actors.cluster.tls.enabled = on").withFallback(ConfigFactory.load())));
        assertEquals("mps-actors.cluster.tls.key-store is not set (TLS is on: mps-actors.cluster.tls.enabled)",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ClusterNode.resolve(ConfigFactory.parseString(
                "mps-actors.cluster.tls { enabled = on, key-store = /nonexistent/node.p12, trust-store = x }")
                .withFallback(ConfigFactory.load())));
        assertEquals("mps-actors.cluster.tls.key-store: cannot read /nonexistent/node.p12", e.getMessage());
    }
}
