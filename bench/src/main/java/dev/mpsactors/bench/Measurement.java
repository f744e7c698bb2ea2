package dev.mpsactors.bench;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.List;

/**
 * One measured configuration (mps-actors or a baseline) at one client count. Latencies in milliseconds;
 * {@code batching} and {@code allocator} only for runs through the actor runtime. {@code requestsPerCpuSecond}:
 * requests completed in the measured window per second of CPU time the whole process used in it (clients,
 * runtime, native threads, JIT and GC included): what a run gets out of the CPU it was given, which stays
 * comparable between runs when other processes take a varying share of the machine.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
record Measurement(String name, String description, int clients, int streams, double seconds, long sent,
                   long succeeded, long failed, long lost, double requestsPerSecond, double sequencesPerSecond,
                   double p50Ms, double p90Ms, double p99Ms, double maxMs, double gflops,
                   List<Double> streamUtilisation, Batching batching, Allocator allocator,
                   double requestsPerCpuSecond, List<DeviceLoad> devices) {

    /** ModelStats over the whole run (warm-up included: the model actor counts from its start). */
    record Batching(long batches, double meanBatch, int largestBatch) {}

    record Allocator(long peakReservedBytes, long peakAllocatedBytes) {}

    /**
     * One device of an actor-runtime run: the mean utilisation of its streams over the measured window, the
     * requests its replica of the model served over the whole run (warm-up included), and its restarts.
     */
    record DeviceLoad(int ordinal, String name, int streams, double utilisation, long served, int restarts) {}
}
