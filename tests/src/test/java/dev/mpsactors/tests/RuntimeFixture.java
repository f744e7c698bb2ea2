package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * A runtime spawned inside a test ActorSystem (the embedding path for users with their own system), plus
 * the facade over it. Closing stops the runtime and asserts the device closed with nothing alive.
 */
final class RuntimeFixture implements AutoCloseable {
    final ActorTestKit kit;
    final MpsRuntime runtime;
    final RuntimeSettings settings;
    private final ActorRef<RuntimeProtocol.Command> guardian;
    private final CompletableFuture<LiveObjects> deviceClosed = new CompletableFuture<>();

    RuntimeFixture(String overrides) throws Exception {
        Config config = ConfigFactory.parseString(overrides).withFallback(ConfigFactory.load()).resolve();
        this.settings = RuntimeSettings.fromConfig(config);
        this.kit = ActorTestKit.create("hazards", config);
        this.guardian = kit.spawn(DeviceRuntime.create(settings, deviceClosed), "mps-runtime");
        this.runtime = MpsRuntime.attach(kit.system(), guardian, Duration.ofSeconds(30)).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws java.util.concurrent.ExecutionException, java.util.concurrent.TimeoutException {
        kit.stop(guardian, Duration.ofSeconds(Math.min(30, Await.BOUND_SECONDS)));
        LiveObjects left;
        try {
            left = deviceClosed.get(Await.BOUND_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while the runtime stopped", e);
        } finally {
            kit.shutdownTestKit();
        }
        assertTrue(left.isEmpty(), "native objects left after the runtime stopped: " + left);
    }
}
