package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** Everything one stress run measured, printed as tables and written as JSON. */
record StressReport(String date, Machine machine, String command, String backend, String model, String mix,
                    int seq, String lengths, int batchPerRequest, String outputs, List<Point> points,
                    List<GemmCeiling.Rate> gemm, Double gemmCeilingGflops, Double endToEndFractionOfGemm) {

    record Machine(int nproc, String cpu) {}

    /** One client count: mps-actors first, then the baselines, and mps-actors ÷ each baseline. */
    record Point(int clients, List<Measurement> measurements, Map<String, Double> throughputRatios,
                 Map<String, Double> cpuEfficiencyRatios) {
        Measurement actors() {
            return measurements.get(0);
        }
    }

    long lost() {
        return points.stream().flatMap(p -> p.measurements().stream()).mapToLong(Measurement::lost).sum();
    }

    void writeJson(Path file) throws IOException {
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(file.toFile(), this);
    }

    void print(PrintStream out) {
        out.printf("%nstress: %s, %s backend, model %s, mix %s, %s, %d sequence(s) per request asking for %s%n",
                machine.cpu(), backend, model, mix, lengths == null ? "seq " + seq : "lengths " + lengths,
                batchPerRequest, outputs);
        for (Point p : points) {
            out.printf("%n== %d clients ==%n", p.clients());
            out.println("run         streams   req/s   seq/s   p50 ms   p90 ms   p99 ms   max ms  GFLOP/s"
                    + "  req/CPU-s  stream utilisation");
            for (Measurement m : p.measurements()) {
                out.printf("%-11s %7d %7.1f %7.1f %8.1f %8.1f %8.1f %8.1f %8.2f  %9.2f  %s%n", m.name(), m.streams(),
                        m.requestsPerSecond(), m.sequencesPerSecond(), m.p50Ms(), m.p90Ms(), m.p99Ms(), m.maxMs(),
                        m.gflops(), m.requestsPerCpuSecond(), percents(m.streamUtilisation()));
            }
            for (Measurement m : p.measurements()) {
                if (m.devices() != null && m.devices().size() > 1) {
                    long total = m.devices().stream().mapToLong(Measurement.DeviceLoad::served).sum();
                    for (Measurement.DeviceLoad d : m.devices()) {
                        out.printf("%-11s device %d: stream utilisation %3.0f%%, served %d requests (%.0f%%), "
                                        + "restarts %d  [%s]%n", m.name(), d.ordinal(), 100 * d.utilisation(), d.served(),
                                100.0 * d.served() / Math.max(1, total), d.restarts(), d.name());
                    }
                }
            }
            out.println("run         batches  mean batch  largest  peak reserved MiB  peak allocated MiB    sent"
                    + "  succeeded  failed  lost");
            for (Measurement m : p.measurements()) {
                Measurement.Batching b = m.batching();
                Measurement.Allocator a = m.allocator();
                out.printf("%-11s %7s  %10s  %7s  %17s  %18s  %6d  %9d  %6d  %4d%n", m.name(),
                        b == null ? "-" : b.batches(), b == null ? "-" : String.format("%.2f", b.meanBatch()),
                        b == null ? "-" : b.largestBatch(), a == null ? "-" : mib(a.peakReservedBytes()),
                        a == null ? "-" : mib(a.peakAllocatedBytes()), m.sent(), m.succeeded(), m.failed(), m.lost());
            }
            if (p.measurements().size() > 1) {
                out.println("baseline    req/s    p99 ms   mps-actors ÷ baseline (req/s)   (req/CPU-s)");
                for (Measurement m : p.measurements().subList(1, p.measurements().size())) {
                    out.printf("%-11s %7.1f %8.1f   %.2fx%30.2fx%n", m.name(), m.requestsPerSecond(), m.p99Ms(),
                            p.throughputRatios().get(m.name()), p.cpuEfficiencyRatios().get(m.name()));
                }
            }
        }
        if (gemmCeilingGflops != null) {
            out.printf("%nGEMM alone (same BLAS, cpu backend): best %.1f GFLOP/s; mps-actors end to end %.2f GFLOP/s"
                    + " = %.0f%% of it%n", gemmCeilingGflops, points.get(points.size() - 1).actors().gflops(),
                    100 * endToEndFractionOfGemm);
        }
    }

    private static String mib(long bytes) {
        return String.format("%.1f", bytes / (1024.0 * 1024.0));
    }

    private static String percents(List<Double> u) {
        StringBuilder sb = new StringBuilder();
        for (double v : u) {
            sb.append(sb.length() == 0 ? "" : " ").append(String.format("%.0f%%", 100 * v));
        }
        return sb.toString();
    }
}
