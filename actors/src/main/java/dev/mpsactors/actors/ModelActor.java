package dev.mpsactors.actors;

import dev.mpsactors.actors.BatchQueue.Pending;
import dev.mpsactors.model.ModelEngine;
import dev.mpsactors.model.ModelEngine.ShapeProgram;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Command;
import dev.mpsactors.protocol.InferenceProtocol.GetModelStats;
import dev.mpsactors.protocol.InferenceProtocol.Infer;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.Internal;
import dev.mpsactors.protocol.InferenceProtocol.ModelStats;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamPoolProtocol;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.RuntimeSettings;
import dev.mpsactors.runtime.RuntimeSettings.ModelSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * Serves one model. Duties:
 * <ul>
 *   <li>check each request on arrival and fail a bad one alone, naming what is wrong;</li>
 *   <li>batch requests whose sequence lengths round up to the same bucket and that ask for the same kind of
 *       pooled embedding (or none): whenever a batch slot is free,
 *       the oldest bucket's queued requests (up to {@code max-batch} sequences) become one batch, so batches
 *       grow with the load (continuous batching);</li>
 *   <li>run each batch as one compiled program (one native call) on a leased stream, in memory from the
 *       allocator, at most {@code max-in-flight} batches at once, and answer every request of the batch
 *       exactly once when its point completes.</li>
 * </ul>
 * The model's device weights belong to its engine, which outlives restarts of this actor and is closed
 * when the model stops.
 */
public final class ModelActor extends AbstractBehavior<Command> {
    private record PipelineArrived(String function, Pipeline pipeline, String failure) implements Internal {}

    /** The oldest queued request has waited max-delay: dispatch what there is. */
    private enum DelayElapsed implements Internal { INSTANCE }

    /** The earliest deadline among queued requests has passed: answer the expired ones. */
    private enum DeadlineDue implements Internal { INSTANCE }

    private record BatchAllocated(Batch batch, AllocatorProtocol.AllocationReply reply, Throwable failure)
            implements Internal {}

    private record BatchLeased(Batch batch, StreamPoolProtocol.Leased leased, Throwable failure) implements Internal {}

    private record BatchSubmitted(Batch batch, StreamProtocol.SubmitReply reply, Throwable failure)
            implements Internal {}

    /** The outputs of a batch were read and every request of it answered, off the actor's thread. */
    private record BatchDelivered(Batch batch, int succeeded, int failed) implements Internal {}

    /** A stream reported a point; matched to its batch by (stream, point). */
    private record PointDone(StreamProtocol.PointCompleted completed) implements Internal {}

    /** Requests sharing one device batch, and what it holds while it runs. */
    private static final class Batch {
        final List<Pending> requests;
        final int rows;
        final int seq;
        /** The sentence embedding the batch pools (null: none). */
        final InferenceProtocol.Embedding embedding;
        ShapeProgram program;
        AllocatorProtocol.BufferLease memory;
        StreamPoolProtocol.StreamLease stream;
        long point;
        boolean freeAfterPoint;
        CompletableFuture<BatchDelivered> delivery;

        Batch(List<Pending> requests, int rows, int seq, InferenceProtocol.Embedding embedding) {
            this.requests = requests;
            this.rows = rows;
            this.seq = seq;
            this.embedding = embedding;
        }
    }

    private final String name;
    private final ModelEngine engine;
    private final RuntimeRefs runtime;
    private final FaultInjector faults;
    private final ModelSettings settings;
    private final Duration askTimeout;
    private final TimerScheduler<Command> timers;
    private final int maxInFlight;
    /** Batches running at once above which a batch smaller than max-batch waits to fill (0: no limit). */
    private final int partialInFlight;

    private final Map<String, Pipeline> arrived = new HashMap<>();
    private Map<String, Pipeline> pipelines;
    private String pipelineFailure;
    /** The queued requests and the admission count. */
    private final BatchQueue queue;
    private final List<Batch> running = new ArrayList<>();
    /** Batches whose point completed and whose outputs are being read and answered on the outputs executor. */
    private final List<Batch> delivering = new ArrayList<>();
    /** Reads outputs and replies (a GPU batch's outputs are megabytes: not on this actor's thread). */
    private final Executor outputs;
    /** The compiled programs per batch shape. */
    private final ProgramCache programs;
    /** One adapter for every batch (an actor has one adapter per message class): batches are found by point. */
    private final ActorRef<StreamProtocol.PointCompleted> completions;
    private final Map<Long, Batch> submittedByPoint = new HashMap<>();
    /** Completions that overtook their Submitted reply (they travel different paths). */
    private final Map<Long, StreamProtocol.PointCompleted> earlyCompletions = new HashMap<>();

    private long requests, succeeded, failed, batches, sequences, overloaded, expired, partialWhileBusy;
    private int largestBatch;

    public static Behavior<Command> create(String name, ModelEngine engine, RuntimeRefs runtime,
                                           ModelSettings settings, Duration askTimeout) {
        return create(name, engine, runtime, settings, askTimeout, FaultInjector.off());
    }

    /** @param faults its batch-preparation hold, if any, runs before each batch's inputs are written */
    public static Behavior<Command> create(String name, ModelEngine engine, RuntimeRefs runtime,
                                           ModelSettings settings, Duration askTimeout, FaultInjector faults) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers ->
                new ModelActor(ctx, timers, name, engine, runtime, settings, askTimeout, faults)));
    }

    private ModelActor(ActorContext<Command> ctx, TimerScheduler<Command> timers, String name, ModelEngine engine,
                       RuntimeRefs runtime, ModelSettings settings, Duration askTimeout, FaultInjector faults) {
        super(ctx);
        this.faults = faults;
        this.timers = timers;
        this.name = name;
        this.engine = engine;
        this.runtime = runtime;
        this.settings = settings;
        this.askTimeout = askTimeout;
        this.maxInFlight = settings.maxInFlight() > 0 ? settings.maxInFlight() : runtime.streams().size();
        this.partialInFlight = settings.partialInFlight();
        this.queue = new BatchQueue(settings.maxBatch(), settings.maxQueued(), settings.seqBucket(),
                engine.maxSequenceLength());
        this.programs = new ProgramCache(settings.programCache(), this::inUse);
        this.completions = ctx.messageAdapter(StreamProtocol.PointCompleted.class, PointDone::new);
        this.outputs = ctx.getSystem().dispatchers().lookup(
                DispatcherSelector.fromConfig(RuntimeSettings.OUTPUTS_DISPATCHER));
        fetchPipelines();
    }

    private void fetchPipelines() {
        for (String function : engine.requiredFunctions()) {
            KernelCacheProtocol.KernelKey key = KernelCacheProtocol.KernelKey.of("*", function);
            Ask.ask(getContext(), KernelCacheProtocol.PipelineReply.class, runtime.kernels().shardFor(key), askTimeout,
                    replyTo -> new KernelCacheProtocol.GetPipeline(key, true, replyTo), (reply, failure) ->
                            reply instanceof KernelCacheProtocol.PipelineReady r
                                    ? new PipelineArrived(function, r.pipeline(), null)
                                    : new PipelineArrived(function, null, reply instanceof KernelCacheProtocol.PipelineFailed f
                                            ? f.reason() : String.valueOf(failure)));
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Infer.class, this::onInfer)
                .onMessage(InferenceProtocol.Cancel.class, this::onCancel)
                .onMessage(PipelineArrived.class, this::onPipelineArrived)
                .onMessage(DelayElapsed.class, m -> {
                    dispatch();
                    return this;
                })
                .onMessage(DeadlineDue.class, m -> {
                    expireQueued();
                    return this;
                })
                .onMessage(BatchAllocated.class, this::onAllocated)
                .onMessage(BatchLeased.class, this::onLeased)
                .onMessage(BatchSubmitted.class, this::onSubmitted)
                .onMessage(PointDone.class, this::onPointDone)
                .onMessage(BatchDelivered.class, this::onDelivered)
                .onMessage(GetModelStats.class, this::onStats)
                .onSignal(PreRestart.class, s -> stopped("restarted after a failure", false))
                .onSignal(PostStop.class, s -> stopped("stopped", true))
                .build();
    }

    // ---- admission and batching ---------------------------------------------------------------------

    private Behavior<Command> onInfer(Infer request) {
        requests++;
        // The default (Hugging Face's outputs) leaves out pooler_output for a model without a pooler.
        Infer m = request.outputs().equals(InferenceProtocol.OutputSpec.HF_DEFAULT)
                ? new Infer(request.requestId(), request.inputs(), request.replyTo(), request.deadline(),
                        engine.defaultOutputs(), request.priority())
                : request;
        String problem = engine.validate(m.inputs());
        if (problem != null) {
            fail(m, FailureKind.INVALID_REQUEST, problem);
            return this;
        }
        problem = engine.validateOutputs(m.outputs());
        if (problem != null) {
            fail(m, FailureKind.UNSUPPORTED, problem);
            return this;
        }
        if (pipelineFailure != null) {
            fail(m, FailureKind.UNAVAILABLE, "model " + name + " cannot run: " + pipelineFailure);
            return this;
        }
        if (m.deadline() != null && !m.deadline().isAfter(java.time.Instant.now())) {
            expire(m, "on arrival");
            return this;
        }
        if (!queue.offer(m, System.nanoTime())) {
            // Admission control: refused at once, nothing kept, so memory stays bounded however hard clients push.
            overloaded++;
            m.replyTo().tell(new InferenceProtocol.Overloaded(m.requestId(), "model " + name + " holds "
                    + queue.held() + " requests, its limit (mps-actors.model.max-queued); retry later"));
            return this;
        }
        dispatch();
        if (m.deadline() != null) {
            scheduleDeadlineCheck();
        }
        return this;
    }

    /** A queued request whose caller went away is answered now and never reaches the device. */
    private Behavior<Command> onCancel(InferenceProtocol.Cancel m) {
        Pending p = queue.cancel(m.requestId());
        if (p != null) {
            fail(p.request(), FailureKind.CANCELLED, "cancelled by the caller before it reached the device; it was not run");
        }
        return this;
    }

    // ---- deadlines: a request whose caller gave up never reaches the device -------------------------

    private void expire(Infer m, String when) {
        expired++;
        fail(m, FailureKind.DEADLINE_EXCEEDED, "deadline exceeded " + when + ": the caller's deadline " + m.deadline()
                + " passed before the request reached the device; it was not run");
    }

    /** Answers queued requests whose deadline passed (they hold no device memory yet), then re-arms. */
    private void expireQueued() {
        for (Pending p : queue.expire(java.time.Instant.now())) {
            expire(p.request(), "while queued");
        }
        scheduleDeadlineCheck();
    }

    private void scheduleDeadlineCheck() {
        java.time.Instant earliest = queue.earliestDeadline();
        if (earliest == null) {
            timers.cancel(DeadlineDue.INSTANCE);
            return;
        }
        Duration in = Duration.between(java.time.Instant.now(), earliest);
        timers.startSingleTimer(DeadlineDue.INSTANCE, DeadlineDue.INSTANCE, in.isNegative() ? Duration.ZERO : in);
    }

    /**
     * Continuous batching: whenever a batch slot is free (fewer than max-in-flight batches running), the
     * bucket whose head request is oldest becomes a batch of up to max-batch sequences. Under light load
     * batches are small and start at once; under heavy load requests queue while every stream is busy and
     * the batches grow. With max-delay > 0, a batch smaller than max-batch waits up to that long for company.
     * With partial-in-flight > 0, a batch smaller than max-batch starts only while fewer than that many
     * batches run: while the device is busy the next batch fills up instead of taking another stream, and
     * the streams in use follow the load (full batches start whenever a stream is free).
     */
    private void dispatch() {
        if (pipelines == null) {
            return; // dispatched again once the pipelines are ready
        }
        // Batches being delivered still hold their memory: bound them too, so a slow reader cannot make the
        // runtime take memory for ever more batches.
        while (running.size() < maxInFlight && delivering.size() < maxInFlight) {
            // While partial-in-flight batches run, the device is busy: only a full bucket starts, and a short batch
            // waits to fill up (it is dispatched again when a running batch completes) rather than take a stream.
            Integer bucket = queue.nextBucket(partialInFlight > 0 && running.size() >= partialInFlight);
            if (bucket == null) {
                return;
            }
            long waited = System.nanoTime() - queue.headArrivedNanos(bucket);
            long delay = settings.maxDelay().toNanos();
            if (!queue.isFull(bucket) && waited < delay) {
                if (!timers.isTimerActive(DelayElapsed.INSTANCE)) {
                    timers.startSingleTimer(DelayElapsed.INSTANCE, DelayElapsed.INSTANCE,
                            java.time.Duration.ofNanos(delay - waited));
                }
                return;
            }
            BatchQueue.Taken taken = queue.take(bucket, java.time.Instant.now());
            for (Pending p : taken.expired()) {
                expire(p.request(), "while queued");
            }
            if (taken.members().isEmpty()) {
                continue; // every request taken had expired
            }
            Batch batch = new Batch(taken.members(), taken.rows(), taken.seq(), taken.embedding());
            if (batch.rows < settings.maxBatch() && !running.isEmpty()) {
                partialWhileBusy++;
            }
            running.add(batch);
            launch(batch);
        }
    }

    // ---- one batch: memory, stream, submit, complete ------------------------------------------------

    private void launch(Batch batch) {
        try {
            batch.program = programs.get(batch.rows, batch.seq, batch.embedding,
                    (rows, seq, embedding) -> engine.compile(pipelines, rows, seq, embedding));
        } catch (RuntimeException e) {
            finish(batch, "could not compile the model for batch " + batch.rows + " x " + batch.seq + ": " + e.getMessage());
            return;
        }
        Ask.ask(getContext(), AllocatorProtocol.AllocationReply.class, runtime.allocator(), askTimeout,
                replyTo -> new AllocatorProtocol.Allocate(batch.program.bufferBytes(), replyTo),
                (reply, failure) -> new BatchAllocated(batch, reply, failure));
    }

    private Behavior<Command> onAllocated(BatchAllocated m) {
        Batch batch = m.batch();
        if (!(m.reply() instanceof AllocatorProtocol.Allocated allocated)) {
            finish(batch, "no memory for the batch: " + reason(m.reply(), m.failure()), m.failure() != null);
            return this;
        }
        batch.memory = allocated.lease();
        faults.holdBatchPreparation();
        try {
            List<InferenceInputs> inputs = new ArrayList<>(batch.requests.size());
            for (Pending p : batch.requests) {
                inputs.add(p.request().inputs());
            }
            batch.program.writeInputs(batch.memory.buffer(), inputs);
        } catch (RuntimeException e) {
            finish(batch, "could not write the batch's inputs: " + e.getMessage());
            return this;
        }
        Ask.ask(getContext(), StreamPoolProtocol.Leased.class, runtime.streamPool(), askTimeout,
                StreamPoolProtocol.Lease::new, (leased, failure) -> new BatchLeased(batch, leased, failure));
        return this;
    }

    private Behavior<Command> onLeased(BatchLeased m) {
        Batch batch = m.batch();
        if (m.leased() == null) {
            finish(batch, "no stream for the batch: " + m.failure(), true);
            return this;
        }
        batch.stream = m.leased().lease();
        Ask.ask(getContext(), StreamProtocol.SubmitReply.class, batch.stream.stream().owner(), askTimeout,
                replyTo -> new StreamProtocol.Submit(List.of(batch.program.work(batch.memory.buffer())), true, replyTo,
                        completions), (reply, failure) -> new BatchSubmitted(batch, reply, failure));
        return this;
    }

    private Behavior<Command> onSubmitted(BatchSubmitted m) {
        Batch batch = m.batch();
        if (!(m.reply() instanceof StreamProtocol.Submitted submitted)) {
            finish(batch, "the stream refused the batch: " + reason(m.reply(), m.failure()), m.failure() != null);
            return this;
        }
        batch.point = submitted.point();
        long key = pointKey(submitted.stream().id(), submitted.point());
        StreamProtocol.PointCompleted early = earlyCompletions.remove(key);
        if (early != null) {
            completed(batch, early);
        } else {
            submittedByPoint.put(key, batch);
        }
        return this;
    }

    private Behavior<Command> onPointDone(PointDone m) {
        if (m.completed().point() == 0) {
            return this; // a refused submission: its SubmitFailed reply fails the batch
        }
        long key = pointKey(m.completed().stream().id(), m.completed().point());
        Batch batch = submittedByPoint.remove(key);
        if (batch == null) {
            earlyCompletions.put(key, m.completed());
        } else {
            completed(batch, m.completed());
        }
        return this;
    }

    private static long pointKey(int stream, long point) {
        return ((long) stream << 48) ^ point;
    }

    private void completed(Batch batch, StreamProtocol.PointCompleted completion) {
        if (!running.contains(batch)) {
            return; // already answered
        }
        if (!completion.succeeded()) {
            // The device outcome is unknown (a failed or unconfirmed point): the memory may only be closed
            // after that point, never handed out again before it (the allocator decides via FreeAfter).
            batch.freeAfterPoint = true;
            finish(batch, "the batch failed on the device: " + completion.failure());
            return;
        }
        // The stream's work is done: it may take the next batch at once, while the outputs are read elsewhere.
        // Its requests leave the admission count now, before their replies go out: a client that sends its
        // next request on a reply (the Streams flow does) must find the slot free.
        running.remove(batch);
        queue.leave(batch.requests.size());
        // Counted before any of its replies goes out: whoever saw a reply and then asks for the stats finds the
        // batch counted.
        batches++;
        sequences += batch.rows;
        largestBatch = Math.max(largestBatch, batch.rows);
        if (batch.stream != null) {
            runtime.streamPool().tell(new StreamPoolProtocol.Release(batch.stream));
            batch.stream = null;
        }
        delivering.add(batch);
        CompletableFuture<BatchDelivered> task;
        try {
            task = CompletableFuture.supplyAsync(() -> deliver(batch), outputs);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            task = CompletableFuture.completedFuture(deliver(batch)); // the system is stopping: answer here
        }
        getContext().pipeToSelf(task, (delivered, failure) -> {
            if (delivered != null) {
                return delivered;
            }
            // Only an Error escapes deliver(); what it answered before is unknown, so nothing is answered twice.
            getContext().getLog().error("delivering a batch of model {} failed", name, failure);
            return new BatchDelivered(batch, 0, batch.requests.size());
        });
        batch.delivery = task;
        dispatch();
    }

    /**
     * On the outputs executor: reads the batch's outputs (one native read) and replies, exactly once per
     * request; if the read fails, every request of the batch is failed here, so nobody else has to answer.
     */
    private BatchDelivered deliver(Batch batch) {
        int row = 0, ok = 0, bad = 0;
        String failure = null;
        ModelEngine.Outputs outputs = null;
        boolean hidden = false, pooler = false, embedding = false, logits = false;
        for (Pending p : batch.requests) {
            hidden |= p.request().outputs().lastHiddenState();
            pooler |= p.request().outputs().poolerOutput();
            embedding |= p.request().outputs().embedding() != null;
            logits |= p.request().outputs().logits();
        }
        try {
            outputs = batch.program.readOutputs(batch.memory.buffer(), hidden, pooler, embedding, logits);
        } catch (IllegalStateException e) {
            // The batch holds its memory until this task reports back, so a closed buffer means the runtime
            // is stopping and its allocator closed every lease.
            failure = "model " + name + " stopped before the batch's outputs were read (" + e.getMessage() + ")";
        } catch (RuntimeException e) {
            failure = "could not read the batch's outputs: " + e;
        }
        for (Pending p : batch.requests) {
            if (failure != null) {
                p.request().replyTo().tell(new InferFailure(p.request().requestId(), FailureKind.UNAVAILABLE, failure));
                bad++;
                continue;
            }
            InferenceProtocol.OutputSpec wants = p.request().outputs();
            float[][][] states = wants.lastHiddenState() ? new float[p.sequences()][][] : null;
            float[][] pooled = wants.poolerOutput() ? new float[p.sequences()][] : null;
            float[][] embedded = wants.embedding() != null ? new float[p.sequences()][] : null;
            float[][] scored = wants.logits() ? new float[p.sequences()][] : null;
            for (int s = 0; s < p.sequences(); s++, row++) {
                if (states != null) {
                    states[s] = outputs.lastHiddenState(row, p.length());
                }
                if (pooled != null) {
                    pooled[s] = outputs.poolerOutput(row);
                }
                if (embedded != null) {
                    embedded[s] = outputs.embedding(row);
                }
                if (scored != null) {
                    scored[s] = outputs.logits(row);
                }
            }
            p.request().replyTo().tell(new InferResult(p.request().requestId(), states, pooled, embedded, scored));
            ok++;
        }
        return new BatchDelivered(batch, ok, bad);
    }

    private Behavior<Command> onDelivered(BatchDelivered m) {
        Batch batch = m.batch();
        if (batch.memory != null) {
            runtime.allocator().tell(new AllocatorProtocol.Free(batch.memory));
            batch.memory = null;
        }
        if (!delivering.remove(batch)) {
            return this; // delivered for a predecessor of this actor: its requests were answered by the task
        }
        succeeded += m.succeeded();
        failed += m.failed();
        dispatch();
        return this;
    }

    /** Fails every request of the batch that has not been answered and returns what it held. */
    private void finish(Batch batch, String why) {
        finish(batch, why, false);
    }

    /**
     * {@code retryable}: the batch never reached the device and an owner did not answer (the runtime stopping
     * or gone), so another replica may serve its requests.
     */
    private void finish(Batch batch, String why, boolean retryable) {
        for (Pending p : batch.requests) {
            fail(p.request(), FailureKind.UNAVAILABLE, why, retryable);
        }
        queue.leave(batch.requests.size());
        release(batch);
        dispatch();
    }

    private void release(Batch batch) {
        running.remove(batch);
        if (batch.memory != null) {
            // After a completion the program's work has executed: the memory is free at once. After a
            // failure before submission nothing used it; after a failed submission nothing was encoded.
            runtime.allocator().tell(batch.freeAfterPoint && batch.stream != null
                    ? new AllocatorProtocol.FreeAfter(batch.memory, batch.stream.stream(), batch.point)
                    : new AllocatorProtocol.Free(batch.memory));
            batch.memory = null;
        }
        if (batch.stream != null) {
            runtime.streamPool().tell(new StreamPoolProtocol.Release(batch.stream));
            batch.stream = null;
        }
    }

    private boolean inUse(ShapeProgram program) {
        for (Batch b : delivering) {
            if (b.program == program) {
                return true;
            }
        }
        for (Batch b : running) {
            if (b.program == program) {
                return true;
            }
        }
        return false;
    }

    private Behavior<Command> onPipelineArrived(PipelineArrived m) {
        if (m.failure() != null) {
            pipelineFailure = "kernel " + m.function() + " unavailable: " + m.failure();
            for (Pending p : queue.drain()) {
                fail(p.request(), FailureKind.UNAVAILABLE, "model " + name + " cannot run: " + pipelineFailure);
            }
            return this;
        }
        arrived.put(m.function(), m.pipeline());
        if (pipelines == null && arrived.size() == engine.requiredFunctions().size()) {
            pipelines = Map.copyOf(arrived);
            dispatch();
        }
        return this;
    }

    private Behavior<Command> onStats(GetModelStats m) {
        m.replyTo().tell(new ModelStats(name, requests, succeeded, failed, batches, sequences, largestBatch,
                overloaded, expired, partialWhileBusy));
        return this;
    }

    private Behavior<Command> stopped(String why, boolean terminal) {
        String reason = "model " + name + " " + why;
        for (Pending p : queue.clear()) {
            fail(p.request(), FailureKind.UNAVAILABLE, reason, terminal); // queued: never reached the device
        }
        for (Batch b : new ArrayList<>(running)) {
            for (Pending p : b.requests) {
                // Not yet submitted: nothing of it ran, so another replica may serve it.
                fail(p.request(), FailureKind.UNAVAILABLE, reason + " while its batch ran", terminal && b.point == 0);
            }
            if (b.memory != null && !terminal) {
                // Its work may still be running: the memory goes back only after its point.
                runtime.allocator().tell(b.point > 0
                        ? new AllocatorProtocol.FreeAfter(b.memory, b.stream.stream(), b.point)
                        : new AllocatorProtocol.Free(b.memory));
            }
            if (b.stream != null) {
                runtime.streamPool().tell(new StreamPoolProtocol.Release(b.stream));
            }
        }
        running.clear();
        // Batches being delivered are answered by their tasks, which still read through their programs: such a
        // program is closed when the last of those tasks is done.
        programs.closeAll(p -> {
            List<CompletableFuture<?>> readers = new ArrayList<>();
            for (Batch b : delivering) {
                if (b.program == p && b.delivery != null) {
                    readers.add(b.delivery);
                }
            }
            return readers;
        });
        delivering.clear();
        if (terminal) {
            engine.close();
        }
        return this;
    }

    private void fail(Infer m, FailureKind kind, String reason) {
        fail(m, kind, reason, false);
    }

    private void fail(Infer m, FailureKind kind, String reason, boolean retryable) {
        failed++;
        m.replyTo().tell(new InferFailure(m.requestId(), kind, reason, retryable));
    }

    private static String reason(Object reply, Throwable failure) {
        if (reply instanceof AllocatorProtocol.AllocationFailed f) {
            return f.reason();
        }
        if (reply instanceof StreamProtocol.SubmitFailed f) {
            return f.reason();
        }
        return failure == null ? String.valueOf(reply) : failure.toString();
    }
}
