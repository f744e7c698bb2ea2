package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client retries what another attempt may fix and nothing else: a replica that cannot take a request
 * yet is asked again until it can; a request the model rejects fails at once, after one attempt.
 */
class ClusterInferenceRetryTest {

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void retryableFailuresAreRetriedAndRequestFailuresAreNot() throws Exception {
        Path folder = Files.createTempDirectory("cluster-retry-");
        BertFolderGenerator.write(folder, ThreeNodeClusterTest.CONFIG, 3);
        int port = ClusterTestNodes.freePorts(1)[0];
        // One node, its own seed; pending-capacity 0 makes a loading replica refuse (retryably) what arrives.
        ClusterNode node = ClusterNode.start(ThreeNodeClusterTest.nodeConfig(port, port, folder)
                .withValue("mps-actors.cluster.pending-capacity", ConfigValueFactory.fromAnyRef(0))
                .withValue("mps-actors.cluster.replicas", ConfigValueFactory.fromAnyRef(1))
                .withValue("mps-actors.cluster.client.attempts", ConfigValueFactory.fromAnyRef(50)));
        try {
            ClusterTestNodes.awaitUp(node, 1, ThreeNodeClusterTest.BOUND);
            ClusterInferResult ok = node.inference().infer(ThreeNodeClusterTest.MODEL, "while-loading",
                    InferenceInputs.of(new int[][] {{1, 2, 3}})).toCompletableFuture().get(30, TimeUnit.SECONDS);
            assertEquals("while-loading", ok.requestId());
            long retries = node.inference().retries();
            assertTrue(retries >= 1, "the request that met a loading replica was retried: " + retries);

            ExecutionException bad = assertThrows(ExecutionException.class,
                    () -> node.inference().infer(ThreeNodeClusterTest.MODEL, "out-of-vocabulary",
                                    InferenceInputs.of(new int[][] {{1, ThreeNodeClusterTest.CONFIG.vocabSize()}}))
                            .toCompletableFuture().get(30, TimeUnit.SECONDS));
            ClusterInferenceException failure = assertInstanceOf(ClusterInferenceException.class, bad.getCause());
            assertEquals(1, failure.attempts(), failure.getMessage());
            assertTrue(failure.getMessage().contains("vocab_size"), failure.getMessage());
            assertEquals(retries, node.inference().retries(), "a request failure is not retried");
        } finally {
            node.close();
        }
    }
}
