package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertFolderGenerator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Artery over TLS with mutual authentication keeps out a host without the cluster's certificate. A member
 * starts; then, at the same time, a second member (the cluster's key pair) and an outsider (a key pair of its
 * own, trusting the members' certificate, seeded with the first member) try to join. The second member gets
 * in (the control: TLS between members works); the first member refuses the outsider's certificate (counted by
 * its trust manager: the outsider did try), and the outsider is never a member, in anyone's view.
 */
class ClusterTlsTest {
    private static final Duration BOUND = Duration.ofSeconds(60);
    private static final String COUNTING = "pekko.remote.artery.ssl.ssl-engine-provider = "
            + RefusalCountingSslEngineProvider.class.getName();

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aHostWithoutTheClustersCertificateCannotJoin() throws Exception {
        Path folder = Files.createTempDirectory("cluster-tls-model-");
        BertFolderGenerator.write(folder, ThreeNodeClusterTest.CONFIG, 7);
        int[] ports = ClusterTestNodes.freePorts(3);
        ClusterCertificates certs = ClusterCertificates.shared();
        List<ClusterNode> nodes = new ArrayList<>();
        try {
            ClusterNode first = start(nodes, ConfigFactory.parseString(COUNTING)
                    .withFallback(ThreeNodeClusterTest.nodeConfig(ports[0], ports[0], folder)));
            await("the first member is up", () -> upMembers(first).size() == 1);

            ClusterNode outsider = start(nodes, certs.tls("outsider")
                    .withFallback(ThreeNodeClusterTest.plainNodeConfig(ports[1], ports[0], folder)));
            assertEquals("tls-tcp", outsider.system().settings().config().getString("pekko.remote.artery.transport"));
            ClusterNode second = start(nodes, ThreeNodeClusterTest.nodeConfig(ports[2], ports[0], folder));

            String firstAddress = first.system().address().toString();
            String secondAddress = second.system().address().toString();
            Set<String> members = Set.of(firstAddress, secondAddress);
            await("the second member joins, in both members' views",
                    () -> upMembers(first).equals(members) && upMembers(second).equals(members));
            await("the first member refuses the outsider's certificate",
                    () -> RefusalCountingSslEngineProvider.refusedBy(ports[0]) > 0);

            String outsiderAddress = outsider.system().address().toString();
            assertEquals(members, upMembers(first), "members in the first's view");
            assertEquals(members, upMembers(second), "members in the second's view");
            for (Member m : first.cluster().state().getMembers()) {
                assertNotEquals(outsiderAddress, m.address().toString(), "the outsider is known to the cluster");
            }
            assertNotEquals(MemberStatus.up(), outsider.cluster().selfMember().status(), "the outsider is up");
            assertTrue(upMembers(outsider).isEmpty(), "the outsider sees no member up: " + upMembers(outsider));
            System.out.printf("cluster over TLS: %s and %s up; the outsider %s refused %d time(s), never a member%n",
                    firstAddress, secondAddress, outsiderAddress, RefusalCountingSslEngineProvider.refusedBy(ports[0]));
        } finally {
            for (ClusterNode node : nodes) {
                node.close();
            }
        }
    }

    private static ClusterNode start(List<ClusterNode> nodes, Config config) {
        ClusterNode node = ClusterNode.start(config);
        nodes.add(node);
        return node;
    }

    private static Set<String> upMembers(ClusterNode node) {
        Set<String> up = new TreeSet<>();
        for (Member m : node.cluster().state().getMembers()) {
            if (m.status() == MemberStatus.up()) {
                up.add(m.address().toString());
            }
        }
        return up;
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what + " within " + BOUND);
            Thread.sleep(50);
        }
    }
}
