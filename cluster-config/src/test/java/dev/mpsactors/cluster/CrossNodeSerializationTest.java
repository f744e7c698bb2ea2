package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferFailure;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.DisabledJavaSerializer;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.apache.pekko.serialization.jackson.JacksonCborSerializer;
import org.junit.jupiter.api.Test;

/** Every cross-node message of a model entity travels as Jackson CBOR; Java serialization is off. */
class CrossNodeSerializationTest {

    @Test
    void modelEntityMessagesRoundTripThroughJacksonCborAndJavaSerializationIsOff() throws Exception {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "mps-actors", ClusterNode.resolve(
                ConfigFactory.parseString("pekko.remote.artery.canonical.port = 0\npekko.loglevel = WARNING")));
        try {
            Serialization serialization = SerializationExtension.get(Adapter.toClassic(system));
            ActorRef<ClusterInferReply> replyTo = system.systemActorOf(Behaviors.ignore(), "reply-to", Props.empty());

            ClusterInfer request = new ClusterInfer("r-1", new int[][] {{1, 2, 3}, {4, 5, 0}},
                    new int[][] {{1, 1, 1}, {1, 1, 0}}, null, replyTo);
            ClusterInfer request2 = roundTrip(serialization, request);
            assertEquals("r-1", request2.requestId());
            assertArrayEquals(request.inputIds(), request2.inputIds());
            assertArrayEquals(request.attentionMask(), request2.attentionMask());
            assertNull(request2.tokenTypeIds());
            assertEquals(replyTo, request2.replyTo());

            ClusterInferResult result = new ClusterInferResult("r-1",
                    new float[][][] {{{0.5f, -1.25f}, {3e-8f, Float.MAX_VALUE}}}, new float[][] {{0.125f, -7f}},
                    "tiny#2", "pekko://mps-actors@10.0.0.2:25520");
            ClusterInferResult result2 = roundTrip(serialization, result);
            assertArrayEquals(result.lastHiddenState()[0][0], result2.lastHiddenState()[0][0]);
            assertArrayEquals(result.lastHiddenState()[0][1], result2.lastHiddenState()[0][1]);
            assertArrayEquals(result.poolerOutput()[0], result2.poolerOutput()[0]);
            assertEquals(result.entityId(), result2.entityId());
            assertEquals(result.node(), result2.node());

            // a text encoder's request: only the pooled embedding (or the head's logits) crosses back
            ClusterInfer pooled = ClusterInfer.of("r-2", new dev.mpsactors.protocol.InferenceProtocol.InferenceInputs(
                    new int[][] {{7, 8}}, new int[][] {{1, 1}}, new int[][] {{0, 0}}),
                    dev.mpsactors.protocol.InferenceProtocol.OutputSpec.embedding(
                            dev.mpsactors.protocol.InferenceProtocol.Pooling.MEAN, true), 1500L, -3, replyTo);
            ClusterInfer pooled2 = roundTrip(serialization, pooled);
            assertEquals(pooled.outputs(), pooled2.outputs());
            assertEquals(1500L, pooled2.timeoutMillis(), "the time left to the deadline crosses");
            assertEquals(-3, pooled2.priority(), "the priority crosses");
            assertNull(request2.timeoutMillis());
            assertEquals(0, request2.priority());
            assertArrayEquals(pooled.tokenTypeIds(), pooled2.tokenTypeIds());
            assertNull(request2.outputs());
            ClusterInferResult embedded = new ClusterInferResult("r-2", null, null, new float[][] {{0.6f, -0.8f}},
                    new float[][] {{2.5f}}, "tiny#0", "pekko://mps-actors@10.0.0.3:25520");
            ClusterInferResult embedded2 = roundTrip(serialization, embedded);
            assertNull(embedded2.lastHiddenState());
            assertArrayEquals(embedded.embedding()[0], embedded2.embedding()[0]);
            assertArrayEquals(embedded.logits()[0], embedded2.logits()[0]);

            ClusterInferFailure failure = new ClusterInferFailure("r-1", FailureKind.OVERLOADED, "queue full", true,
                    "tiny#2");
            assertEquals(failure, roundTrip(serialization, failure));
            ModelEntity.ClusterCancel cancel = new ModelEntity.ClusterCancel("r-1@3.1", replyTo);
            assertEquals(cancel, roundTrip(serialization, cancel));

            assertInstanceOf(DisabledJavaSerializer.class, serialization.findSerializerFor(new java.util.Date()),
                    "java.io.Serializable messages without a binding are refused, not sent with Java serialization");
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        }
    }

    @SuppressWarnings("unchecked")
    private static <T> T roundTrip(Serialization serialization, T message) {
        Serializer serializer = serialization.findSerializerFor(message);
        assertInstanceOf(JacksonCborSerializer.class, serializer, message.getClass().getSimpleName());
        byte[] bytes = serialization.serialize(message).get();
        String manifest = Serializers.manifestFor(serializer, message);
        return (T) serialization.deserialize(bytes, serializer.identifier(), manifest).get();
    }
}
