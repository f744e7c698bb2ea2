package dev.mpsactors.server;

import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Where the server's text encoders compute: the runtime of this process ({@link #local}), or the sharded
 * model entities of a Pekko Cluster ({@link ClusterServing}). The routes are the same either way.
 */
interface ModelBackend {
    /** Starts a text encoder for model {@code name} (version {@code runtimeName}) read from {@code folder}. */
    CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, String runtimeName, Path folder);

    /** Stops the version {@code runtimeName} (its encoder and what it computes on); false when unknown. */
    CompletionStage<Boolean> unload(String runtimeName);

    /**
     * Null where {@code PUT} and {@code DELETE /models/{name}} load and unload models; otherwise why they are
     * refused (a cluster node's models are the cluster's configuration).
     */
    String managementRefused();

    /** After the HTTP side has answered what it held: stops what computes and frees the devices. */
    LiveObjects shutdown(Duration timeout) throws java.util.concurrent.TimeoutException, InterruptedException;

    /** Models loaded and unloaded on {@code runtime}, which {@link #shutdown} stops. */
    static ModelBackend local(MpsRuntime runtime) {
        return new ModelBackend() {
            @Override
            public CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, String runtimeName,
                                                                                  Path folder) {
                return runtime.models().loadTextEncoder(runtimeName, folder);
            }

            @Override
            public CompletionStage<Boolean> unload(String runtimeName) {
                return runtime.models().unloadModel(runtimeName);
            }

            @Override
            public String managementRefused() {
                return null;
            }

            @Override
            public LiveObjects shutdown(Duration timeout) throws java.util.concurrent.TimeoutException,
                    InterruptedException {
                return runtime.shutdown(timeout);
            }
        };
    }
}
