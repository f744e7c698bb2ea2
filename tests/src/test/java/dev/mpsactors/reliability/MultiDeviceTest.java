package dev.mpsactors.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.FaultInjector;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.ReplicaProtocol.ReplicaStats;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeDevice;
import dev.mpsactors.runtime.RuntimeSettings;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.Test;

/**
 * The cpu backend split into two devices through the C ABI ({@code mps-actors.cpu.devices = 2}): one runtime per
 * device, the model replicated on both behind one ref, each request sent to the least-loaded replica. Every
 * request is answered exactly once (one receiver records every message, so a second reply would be counted), each
 * device's allocator is back to zero, and the devices close with nothing alive. Counts and orderings decide, never
 * elapsed time: a slowed device is one held on a latch, a crashed device one whose runtime was made to throw.
 */
class MultiDeviceTest {
    private static final String SPLIT = "mps-actors { cpu.devices = 2, streams = 2, model { max-batch = 4 },"
            + " dispatchers.owners.thread-pool-executor.fixed-pool-size = 4 }";

    @Test
    void aHostSplitInTwoUsesBothDevicesByDefaultAndSpreadsTheRequests() throws Exception {
        try (ServedModel served = new ServedModel(SPLIT, ordinal -> FaultInjector.off())) {
            MpsRuntime rt = served.runtime;
            assertEquals(List.of(0, 1), rt.devices().stream().map(RuntimeDevice::ordinal).toList(),
                    "mps-actors.devices defaults to every device the backend reports");
            for (RuntimeDevice d : rt.devices()) {
                assertTrue(d.info().name().contains("[device " + d.ordinal() + " of 2]"), d.info().name());
                assertEquals(2, d.streams().count(), "each device has its own stream owners");
            }
            assertFalse(rt.device(0).refs().allocator().equals(rt.device(1).refs().allocator()),
                    "each device has its own allocator");
            ReplicaStats before = replicas(served);
            assertEquals(2, before.replicas().size(), "the model is replicated on both devices: " + before);

            int requests = 400;
            ServedModel.Replies replies = served.send(requests, 16, 5, null);
            ReplicaStats after = replicas(served);
            long d0 = after.device(0).routed(), d1 = after.device(1).routed();
            System.out.printf("two cpu devices, 400 requests from 16 clients: device 0 served %d, device 1 %d%n",
                    after.device(0).succeeded(), after.device(1).succeeded());
            assertEveryOneOnce(replies, requests);
            assertEquals(requests, replies.count(InferResult.class), "every request succeeded: " + replies.failureReasons());
            assertEquals(requests, d0 + d1, "each request went to one replica once: " + after);
            assertTrue(d0 >= requests / 5 && d1 >= requests / 5, "both devices took a share: " + after);
            assertEquals(0, after.inFlight());

            // The same input on either device gives the same output.
            assertTrue(sameResultOnEveryReplica(served), "a request gives the same embedding on both devices");
            assertAllocatorsSettle(served.runtime);
            assertClosedClean(served);
        }
    }

    @Test
    void theLeastLoadedReplicaTakesTheWorkWhileTheOtherDeviceIsHeld() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        AtomicBoolean holding = new AtomicBoolean(true);
        AtomicInteger held = new AtomicInteger();
        IntFunction<FaultInjector> faults = ordinal -> ordinal == 1
                ? FaultInjector.off().holdingBatchPreparation(() -> {
                    if (holding.get()) {
                        held.incrementAndGet();
                        try {
                            gate.await(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                })
                : FaultInjector.off();
        try (ServedModel served = new ServedModel(SPLIT, faults)) {
            int requests = 300;
            int clients = 8;
            CompletableFuture<ServedModel.Replies> run = sendLater(served, requests, clients, 7);
            // Device 1 completes nothing while it is held. Round-robin would have given it every other request and
            // stalled all 8 clients within 16 requests; least-loaded keeps the fast device busy.
            int fastTarget = 200;
            await(() -> replicas(served).device(0).succeeded() >= fastTarget,
                    "the fast device served " + fastTarget + " requests while the other was held");
            ReplicaStats whileHeld = replicas(served);
            long slowRouted = whileHeld.device(1).routed();
            System.out.printf("device 1 held: device 0 served %d, device 1 was given %d (held %d batches); "
                            + "round-robin would have given it %d of %d%n", whileHeld.device(0).succeeded(), slowRouted,
                    held.get(), requests / 2, requests);
            assertEquals(0, whileHeld.device(1).succeeded(), "the held device completed nothing");
            assertTrue(slowRouted >= 1, "the held device was given work before it looked busy");
            assertTrue(slowRouted <= clients, "the held device got no more than the clients that could wait on it: "
                    + slowRouted);
            holding.set(false);
            gate.countDown();
            ServedModel.Replies replies = run.get(ServedModel.BOUND.toSeconds() * 3, TimeUnit.SECONDS);
            assertEveryOneOnce(replies, requests);
            assertEquals(requests, replies.count(InferResult.class), "every request succeeded: " + replies.failureReasons());
            ReplicaStats after = replicas(served);
            assertTrue(after.device(1).succeeded() >= slowRouted, "what the held device took it served once released");
            assertTrue(after.device(1).routed() < requests / 2, "fewer than round-robin's half: " + after);
            assertAllocatorsSettle(served.runtime);
            assertClosedClean(served);
        } finally {
            gate.countDown();
        }
    }

    @Test
    void oneDeviceCrashedMidRunAnswersEveryRequestTheSurvivorCarriesOnAndTheReplicaComesBack() throws Exception {
        String config = "mps-actors { fault-injection.enabled = true, device-restart.min-backoff = 50ms }\n" + SPLIT;
        try (ServedModel served = new ServedModel(config, ordinal -> FaultInjector.crashesOnly())) {
            MpsRuntime rt = served.runtime;
            int requests = 600;
            CompletableFuture<ServedModel.Replies> run = sendLater(served, requests, 16, 9);
            await(() -> replicas(served).device(1).succeeded() >= 40, "device 1 served 40 requests");
            long survivorBefore = replicas(served).device(0).succeeded();
            rt.crashDevice(1);
            ServedModel.Replies replies = run.get(ServedModel.BOUND.toSeconds() * 3, TimeUnit.SECONDS);
            ReplicaStats after = replicas(served);
            System.out.printf("device 1 crashed mid-run: %d requests, %d succeeded, %d failed (%s); device 0 served "
                            + "%d after the crash; %d moved to another replica, %d stale replies dropped%n",
                    requests, replies.count(InferResult.class), replies.count(InferFailure.class), replies.failureReasons(),
                    after.device(0).succeeded() - survivorBefore, after.retried(), after.stale());
            assertEveryOneOnce(replies, requests);
            for (String reason : replies.failureReasons()) {
                // Only requests whose batch was already on the crashed device may fail; they say so.
                assertTrue(reason.contains("stopped"), reason);
            }
            assertTrue(replies.count(InferResult.class) >= requests - 16,
                    "at most one batch per client in flight was lost with the device: " + replies.failureReasons());
            assertTrue(after.device(0).succeeded() > survivorBefore, "the survivor carried the load");

            await(() -> {
                RuntimeProtocol.DeviceState d1 = status(served).devices().get(1);
                return d1.up() && replicas(served).device(1).up();
            }, "device 1 and its replica were started again");
            RuntimeProtocol.DeviceState d1 = status(served).devices().get(1);
            assertEquals(1, d1.restarts(), "device 1 restarted once: " + d1);
            assertTrue(d1.lastFailure() != null && d1.lastFailure().contains("injected crash"), "" + d1);
            assertEquals(2, replicas(served).device(1).incarnations(), "a second replica on device 1");
            assertEquals(1L, get(rt.faultCounts()).crashes(), "the one injected crash counted");

            long routedBefore = replicas(served).device(1).routed();
            ServedModel.Replies again = served.send(200, 16, 11, null);
            assertEveryOneOnce(again, 200);
            assertEquals(200, again.count(InferResult.class), "all served after the restart: " + again.failureReasons());
            assertTrue(replicas(served).device(1).routed() > routedBefore, "the restarted replica takes requests");
            get(rt.refreshDevices());
            assertAllocatorsSettle(served.runtime);
            assertClosedClean(served);
        }
    }

    @Test
    void aModelCanBePlacedOnSomeDevicesOnly() throws Exception {
        try (ServedModel served = new ServedModel(SPLIT, ordinal -> FaultInjector.off())) {
            ActorRef<InferenceProtocol.Command> onlyOne = get(served.runtime.models()
                    .loadModel("only-one", served.folder, List.of(1)));
            ReplicaStats stats = get(served.runtime.models().replicaStats(onlyOne));
            assertEquals(List.of(1), stats.replicas().stream().map(r -> r.ordinal()).toList());
            InferResult r = get(served.runtime.models().infer(onlyOne, "x",
                    ServedModel.randomRequest(new Random(1))));
            assertEquals("x", r.requestId(), "the caller's id comes back");
            assertEquals(1, get(served.runtime.models().replicaStats(onlyOne)).device(1).succeeded());
            String refused = assertFailure(served.runtime.models().loadModel("nowhere", served.folder, List.of(2)));
            assertTrue(refused.contains("devices [2]") && refused.contains("[0, 1]"), refused);
            assertClosedClean(served);
        }
    }

    @Test
    void aLoadThatFailsOnOneDeviceLeavesNothingOnTheOthers() throws Exception {
        try (ServedModel served = new ServedModel(SPLIT, ordinal -> FaultInjector.off())) {
            MpsRuntime rt = served.runtime;
            ActorRef<RuntimeProtocol.Command> device1 = rt.devices().get(1).runtime();
            // The name taken on device 1 alone (straight to its runtime, past the host): a load of that name on
            // both devices then succeeds on device 0 and fails on device 1.
            RuntimeProtocol.ModelLoadReply direct = get(AskPattern.ask(device1,
                    (ActorRef<RuntimeProtocol.ModelLoadReply> r) ->
                            new RuntimeProtocol.LoadModel("clash", served.folder, List.of(1), r),
                    ServedModel.BOUND, rt.system().scheduler()));
            assertTrue(direct instanceof RuntimeProtocol.ModelLoaded, "loaded on device 1 alone: " + direct);
            String failed = assertFailure(rt.models().loadModel("clash", served.folder));
            assertTrue(failed.contains("device 1") && failed.contains("already loaded"), failed);
            // All or nothing: device 0's replica was unloaded again. Once device 1 lets the name go, the same
            // load succeeds on both (device 0 would refuse it, the name still taken there, had it been kept).
            RuntimeProtocol.ModelUnloaded gone = get(AskPattern.ask(device1,
                    (ActorRef<RuntimeProtocol.ModelUnloaded> r) ->
                            new RuntimeProtocol.UnloadModel("clash", r),
                    ServedModel.BOUND, rt.system().scheduler()));
            assertTrue(gone.found(), "unloaded from device 1");
            ActorRef<InferenceProtocol.Command> both = get(rt.models().loadModel("clash", served.folder));
            assertEquals(List.of(0, 1), get(rt.models().replicaStats(both)).replicas().stream()
                    .map(r -> r.ordinal()).toList(), "the second load runs on both devices");
            assertClosedClean(served);
        }
    }

    @Test
    void aDeviceSelectionTheBackendCannotSatisfyIsRefusedNamingTheKey() {
        for (String bad : List.of("devices = 3", "devices = [0, 2]", "devices = [1, 1]", "devices = 0",
                "devices = \"some\"", "devices = []", "cpu.devices = 0")) {
            Config c = ConfigFactory.parseString("mps-actors { cpu.devices = 2, " + bad + " }")
                    .withFallback(ConfigFactory.load()).resolve();
            Exception e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> MpsRuntime.start(c).close(), bad);
            String key = bad.startsWith("cpu.") ? "mps-actors.cpu.devices" : "mps-actors.devices";
            assertTrue(e.getMessage().startsWith(key + ":"), bad + " -> " + e.getMessage());
        }
        RuntimeSettings first = RuntimeSettings.fromConfig(ConfigFactory.parseString(
                "mps-actors { cpu.devices = 3, devices = 2 }").withFallback(ConfigFactory.load()));
        assertEquals(List.of(0, 1), first.devices().resolve(3, "cpu"));
        RuntimeSettings fromEnvironmentForm = RuntimeSettings.fromConfig(ConfigFactory.parseString(
                "mps-actors { devices = \"2,0\" }").withFallback(ConfigFactory.load()));
        assertEquals(List.of(2, 0), fromEnvironmentForm.devices().resolve(3, "cpu"));
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static <T> T get(java.util.concurrent.CompletionStage<T> stage) throws Exception {
        return stage.toCompletableFuture().get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    private static String assertFailure(java.util.concurrent.CompletionStage<?> stage) throws Exception {
        try {
            get(stage);
        } catch (java.util.concurrent.ExecutionException e) {
            return e.getCause().getMessage();
        }
        throw new AssertionError("expected a failure");
    }

    @FunctionalInterface
    interface Condition {
        boolean holds() throws Exception;
    }

    private static void assertEveryOneOnce(ServedModel.Replies replies, int requests) {
        assertEquals(requests, replies.byId.size(), "every request answered");
        assertEquals(0, replies.duplicates.get(), "none answered twice");
    }

    private static ReplicaStats replicas(ServedModel served) throws Exception {
        return get(served.runtime.models().replicaStats(served.model));
    }

    private static RuntimeProtocol.DeviceStatus status(ServedModel served) throws Exception {
        return get(served.runtime.deviceStatus());
    }

    private static void await(Condition condition, String what) throws Exception {
        long deadline = System.nanoTime() + ServedModel.BOUND.toNanos();
        while (!condition.holds()) {
            assertTrue(System.nanoTime() < deadline, what + " within " + ServedModel.BOUND);
            Thread.sleep(5);
        }
    }

    /** {@link ServedModel#send} in the background. */
    private static CompletableFuture<ServedModel.Replies> sendLater(ServedModel served, int requests, int clients,
                                                                  long seed) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return served.send(requests, clients, seed, null);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    /** One input sent 24 times: every reply (from both devices) is the same to float precision. */
    private static boolean sameResultOnEveryReplica(ServedModel served) throws Exception {
        InferenceInputs in = ServedModel.randomRequest(new Random(3));
        InferenceProtocol.OutputSpec spec = InferenceProtocol.OutputSpec.embedding(InferenceProtocol.Pooling.MEAN,
                false);
        ReplicaStats before = replicas(served);
        List<CompletableFuture<InferResult>> all = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            all.add(served.runtime.models().infer(served.model, "same-" + i, in, spec).toCompletableFuture());
        }
        float[][] first = get(all.get(0)).embedding();
        for (CompletableFuture<InferResult> f : all) {
            float[][] e = get(f).embedding();
            for (int b = 0; b < first.length; b++) {
                for (int h = 0; h < first[b].length; h++) {
                    if (Math.abs(first[b][h] - e[b][h]) > 1e-5f * Math.max(1f, Math.abs(first[b][h]))) {
                        return false;
                    }
                }
            }
        }
        ReplicaStats after = replicas(served);
        // Both devices answered some of these 24.
        return after.device(0).succeeded() > before.device(0).succeeded()
                && after.device(1).succeeded() > before.device(1).succeeded();
    }

    /** Every device's allocator back to zero (replies may go out just before a batch's memory is freed). */
    private static void assertAllocatorsSettle(MpsRuntime rt) throws Exception {
        for (RuntimeDevice d : rt.devices()) {
            long deadline = System.nanoTime() + ServedModel.BOUND.toNanos();
            AllocatorStats s = get(d.memory().stats());
            while ((s.allocatedBytes() != 0 || s.liveLeases() != 0) && System.nanoTime() < deadline) {
                Thread.sleep(5);
                s = get(d.memory().stats());
            }
            assertEquals(0, s.allocatedBytes(), "device " + d.ordinal() + " allocator back to zero: " + s);
            assertEquals(0, s.liveLeases(), "device " + d.ordinal() + " holds no lease: " + s);
        }
    }

    /** Shuts the runtime down: every device, crashed incarnations included, closed with nothing alive. */
    private static void assertClosedClean(ServedModel served) throws Exception {
        LiveObjects left = served.shutdown();
        assertTrue(left.isEmpty(), "every device closed with nothing alive: " + left);
    }
}
