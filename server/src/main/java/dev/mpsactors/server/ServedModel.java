package dev.mpsactors.server;

import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.text.TextTokenizer;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * One loaded version of a named model: its text encoder on the runtime (loaded under {@code runtimeName},
 * unique per version, so a reload can warm a new version beside the old one), what the encoder says it is,
 * the server's own tokenizer instance (token counts and limits before anything reaches the device), and
 * the requests in flight on it, which an unload or reload drains before stopping it.
 */
final class ServedModel {
    final String name;
    final int version;
    final String runtimeName;
    final Path folder;
    final ActorRef<TextProtocol.Command> encoder;
    final TextProtocol.EncoderInfo info;
    final TextTokenizer tokenizer;
    final int vocabSize;
    final Instant loadedAt = Instant.now();
    final int warmedShapes;

    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile boolean draining;
    private final CompletableFuture<Integer> drained = new CompletableFuture<>();
    private final AtomicInteger servedWhileDraining = new AtomicInteger();

    ServedModel(String name, int version, String runtimeName, Path folder, ActorRef<TextProtocol.Command> encoder,
                TextProtocol.EncoderInfo info, TextTokenizer tokenizer, int vocabSize, int warmedShapes) {
        this.name = name;
        this.version = version;
        this.runtimeName = runtimeName;
        this.folder = folder;
        this.encoder = encoder;
        this.info = info;
        this.tokenizer = tokenizer;
        this.vocabSize = vocabSize;
        this.warmedShapes = warmedShapes;
    }

    /** Takes a request on this version; false once it drains (the caller looks the name up again). */
    boolean tryAcquire() {
        inFlight.incrementAndGet();
        if (draining) {
            release();
            return false;
        }
        return true;
    }

    void release() {
        int left = inFlight.decrementAndGet();
        if (draining) {
            servedWhileDraining.incrementAndGet();
            if (left == 0) {
                drained.complete(servedWhileDraining.get());
            }
        }
    }

    int inFlight() {
        return Math.max(0, inFlight.get());
    }

    boolean draining() {
        return draining;
    }

    /**
     * Takes no new request from now on; completes when every request it had taken was answered, with the
     * number answered while it drained.
     */
    CompletableFuture<Integer> drain() {
        draining = true;
        if (inFlight.get() == 0) {
            drained.complete(servedWhileDraining.get());
        }
        return drained;
    }
}
