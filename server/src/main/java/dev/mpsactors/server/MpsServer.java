package dev.mpsactors.server;

import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.TextSettings;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.http.javadsl.ConnectionContext;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.IncomingConnection;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.ServerBuilder;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Sink;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HTTP server: Pekko HTTP in the runtime's own ActorSystem, in front of the text encoders of the models
 * it serves ({@link Api} holds the routes). Each connection is watched: when a client goes away, the
 * requests it had in flight are cancelled (dropped before they reach the device when still queued).
 * {@link #shutdown()} stops accepting, answers what is in flight, then stops the runtime and frees the device.
 */
public final class MpsServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MpsServer.class);

    private final MpsRuntime runtime;
    private final ModelBackend backend;
    private final ServerSettings settings;
    private final ModelRegistry registry;
    private final ServerMetrics metrics;
    private final Api api;
    private final ServerBinding binding;
    private final String scheme;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final CompletableFuture<Void> idle = new CompletableFuture<>();
    private volatile boolean stopping;
    private LiveObjects left;

    private MpsServer(MpsRuntime runtime, ModelBackend backend, ServerSettings settings, Map<String, Path> models)
            throws Exception {
        this.runtime = runtime;
        this.backend = backend;
        this.settings = settings;
        this.metrics = new ServerMetrics(runtime);
        Executor blocking = runtime.system().dispatchers().lookup(DispatcherSelector.blocking());
        Executor tokenize = runtime.system().dispatchers().lookup(
                DispatcherSelector.fromConfig(TextSettings.TOKENIZE_DISPATCHER));
        this.registry = new ModelRegistry(runtime, backend, settings, blocking, metrics::modelServing, metrics::modelRetired);
        for (Map.Entry<String, Path> m : models.entrySet()) {
            ServedModel served = await(registry.load(m.getKey(), m.getValue()).toCompletableFuture(),
                    Duration.ofMinutes(30), "loading model " + m.getKey());
            LOG.info("serving model {} from {} ({} shapes warmed)", served.name, served.folder, served.warmedShapes);
        }
        this.api = new Api(this, runtime, settings, registry, metrics, tokenize);
        Materializer materializer = Materializer.matFromSystem(runtime.system());
        ServerBuilder builder = Http.get(runtime.system()).newServerAt(settings.host(), settings.port());
        if (settings.tls().enabled()) {
            builder = builder.enableHttps(ConnectionContext.httpsServer(sslContext(settings.tls())));
        }
        this.scheme = settings.tls().enabled() ? "https" : "http";
        this.binding = await(builder.connectionSource()
                .to(Sink.foreach((IncomingConnection c) -> c.handleWith(connectionFlow(), materializer)))
                .run(materializer).toCompletableFuture(), Duration.ofSeconds(30), "binding "
                + settings.host() + ":" + settings.port());
        LOG.info("listening on {}", url());
    }

    /**
     * Loads {@code models} (name to folder; each warmed before the server takes traffic), then binds.
     * The server owns {@code runtime} from now on: {@link #shutdown()} stops it.
     */
    public static MpsServer start(MpsRuntime runtime, ServerSettings settings, Map<String, Path> models) {
        return start(runtime, ModelBackend.local(runtime), settings, models);
    }

    /** {@link #start(MpsRuntime, ServerSettings, Map)} with the encoders computing on {@code backend}. */
    static MpsServer start(MpsRuntime runtime, ModelBackend backend, ServerSettings settings,
                           Map<String, Path> models) {
        try {
            return new MpsServer(runtime, backend, settings, new LinkedHashMap<>(models));
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    /** Where it listens, e.g. {@code http://127.0.0.1:8080} (the bound port when 0 was configured). */
    public String url() {
        String host = binding.localAddress().getHostString();
        return scheme + "://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port();
    }

    public int port() {
        return binding.localAddress().getPort();
    }

    public MpsRuntime runtime() {
        return runtime;
    }

    /** One flow per connection: its requests go through the routes; its end cancels what it still waits for. */
    private Flow<HttpRequest, HttpResponse, NotUsed> connectionFlow() {
        Api.Connection connection = new Api.Connection();
        return Flow.of(HttpRequest.class)
                .watchTermination((NotUsed mat, java.util.concurrent.CompletionStage<org.apache.pekko.Done> done) -> {
                    done.whenComplete((d, e) -> api.connectionClosed(connection));
                    return mat;
                })
                .via(api.routes(connection).flow(runtime.system()));
    }

    /** Counts a request in; false when the server is stopping (it is answered 503). */
    boolean enter() {
        inFlight.incrementAndGet();
        if (stopping) {
            leave();
            return false;
        }
        return true;
    }

    void leave() {
        if (inFlight.decrementAndGet() == 0 && stopping) {
            idle.complete(null);
        }
    }

    boolean stopping() {
        return stopping;
    }

    /**
     * Stops accepting connections and requests (new ones on open connections are answered 503), waits for
     * every request in flight to be answered (at most {@code shutdown-timeout}), then stops the runtime.
     * Returns what was still alive natively (nothing after a clean run).
     */
    public synchronized LiveObjects shutdown() throws TimeoutException, InterruptedException {
        if (left != null) {
            return left;
        }
        stopServing();
        left = backend.shutdown(settings.shutdownTimeout());
        return left;
    }

    /**
     * The first half of {@link #shutdown()}: stops accepting, and answers every request in flight (at most
     * {@code shutdown-timeout}, then the models under them are stopped); the runtime (or the cluster node)
     * keeps running. A cluster node runs it as a task of its coordinated shutdown, before it leaves.
     */
    public synchronized void stopServing() throws InterruptedException {
        if (stopping) {
            return;
        }
        stopping = true;
        if (inFlight.get() == 0) {
            idle.complete(null);
        }
        try {
            binding.unbind().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warn("unbinding {} failed: {}", url(), e.toString());
        }
        try {
            idle.get(settings.shutdownTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            // Still queued (a long deadline, a long max-delay): the models stop now and answer them with the
            // stop, while the HTTP side still runs to deliver those answers.
            LOG.warn("{} requests still in flight after {}: stopping the models under them", inFlight.get(),
                    settings.shutdownTimeout());
            try {
                registry.stopAll().toCompletableFuture().get(60, TimeUnit.SECONDS);
                idle.get(30, TimeUnit.SECONDS);
            } catch (TimeoutException | java.util.concurrent.ExecutionException again) {
                LOG.warn("{} requests still in flight: the runtime stops under them", inFlight.get());
            }
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException(e);
        }
        for (ServedModel m : registry.list()) {
            m.tokenizer.close();
        }
    }

    @Override
    public void close() throws Exception {
        shutdown();
    }

    int inFlight() {
        return inFlight.get();
    }

    private static SSLContext sslContext(ServerSettings.Tls tls) throws Exception {
        KeyStore store = KeyStore.getInstance(tls.type());
        char[] password = tls.password().toCharArray();
        try (InputStream in = Files.newInputStream(tls.keystore())) {
            store.load(in, password);
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException(ServerSettings.PREFIX + "tls.keystore: cannot read " + tls.keystore()
                    + ": " + e.getMessage(), e);
        }
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(store, password);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys.getKeyManagers(), null, new SecureRandom());
        return context;
    }

    private static <T> T await(CompletableFuture<T> f, Duration bound, String what) throws Exception {
        try {
            return f.get(bound.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable cause = ModelRegistry.unwrap(e);
            throw new IllegalStateException(what + ": " + cause.getMessage(), cause);
        } catch (TimeoutException e) {
            throw new IllegalStateException(what + ": no answer within " + bound);
        }
    }

}
