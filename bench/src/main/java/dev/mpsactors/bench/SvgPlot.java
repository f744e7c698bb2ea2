package dev.mpsactors.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * Throughput and p99 latency against concurrency as an SVG: two panels sharing a log2 x axis (clients),
 * one line per run (mps-actors and each baseline), one legend. Hand-written so the build needs no
 * charting library.
 */
final class SvgPlot {
    private static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"};
    private static final int WIDTH = 760, PANEL_H = 250, LEFT = 80, RIGHT = 170, TOP = 60, GAP = 70;

    private SvgPlot() {}

    static void write(StressReport report, Path file) throws IOException {
        Files.writeString(file, render(report), StandardCharsets.UTF_8);
    }

    static String render(StressReport report) {
        Map<String, List<double[]>> rps = series(report, Measurement::requestsPerSecond);
        Map<String, List<double[]>> p99 = series(report, Measurement::p99Ms);
        List<Integer> xs = report.points().stream().map(StressReport.Point::clients).toList();
        int height = TOP + 2 * PANEL_H + GAP + 50;
        StringBuilder svg = new StringBuilder();
        svg.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                + "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">%n", WIDTH, height, WIDTH, height));
        svg.append(String.format("<rect width=\"%d\" height=\"%d\" fill=\"white\"/>%n", WIDTH, height));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"22\" font-size=\"16\" font-weight=\"bold\" "
                + "text-anchor=\"middle\">%s</text>%n", WIDTH / 2, escape("mps-actors stress: throughput and p99 "
                + "against concurrency (" + report.mix() + ", seq " + report.seq() + ")")));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"40\" fill=\"#555\" text-anchor=\"middle\">%s"
                + "</text>%n", WIDTH / 2, escape(report.model() + ", " + report.backend() + " backend")));
        panel(svg, rps, xs, TOP, "requests/s", false);
        panel(svg, p99, xs, TOP + PANEL_H + GAP, "p99 latency (ms)", true);
        legend(svg, new ArrayList<>(rps.keySet()));
        svg.append("</svg>\n");
        return svg.toString();
    }

    private static Map<String, List<double[]>> series(StressReport report, ToDoubleFunction<Measurement> y) {
        Map<String, List<double[]>> out = new LinkedHashMap<>();
        for (StressReport.Point p : report.points()) {
            for (Measurement m : p.measurements()) {
                out.computeIfAbsent(m.name(), k -> new ArrayList<>()).add(new double[] {p.clients(), y.applyAsDouble(m)});
            }
        }
        return out;
    }

    private static void panel(StringBuilder svg, Map<String, List<double[]>> series, List<Integer> xs, int top,
                              String yLabel, boolean showXLabel) {
        int plotW = WIDTH - LEFT - RIGHT, bottom = top + PANEL_H;
        double xMin = log2(xs.stream().mapToInt(Integer::intValue).min().orElse(1));
        double xMax = log2(xs.stream().mapToInt(Integer::intValue).max().orElse(1));
        if (xMax - xMin < 1e-9) {
            xMin -= 1;
            xMax += 1;
        }
        double yMax = niceCeiling(series.values().stream().flatMap(List::stream).mapToDouble(v -> v[1]).max().orElse(1));
        double fxMin = xMin, fxMax = xMax;
        java.util.function.DoubleUnaryOperator px = x -> LEFT + (log2(x) - fxMin) / (fxMax - fxMin) * plotW;
        java.util.function.DoubleUnaryOperator py = y -> bottom - y / yMax * PANEL_H;
        // grid, ticks and tick labels
        for (int i = 0; i <= 5; i++) {
            double y = yMax * i / 5;
            double yy = py.applyAsDouble(y);
            svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>%n",
                    LEFT, yy, LEFT + plotW, yy));
            svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>%n", LEFT - 8,
                    yy + 4, format(y)));
        }
        for (int x : xs) {
            double xx = px.applyAsDouble(x);
            svg.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\"/>%n",
                    xx, bottom, xx, bottom + 5));
            svg.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>%n", xx,
                    bottom + 18, x));
        }
        svg.append(String.format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>%n", LEFT, top, LEFT,
                bottom));
        svg.append(String.format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>%n", LEFT, bottom,
                LEFT + plotW, bottom));
        svg.append(String.format(Locale.ROOT, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\">"
                + "%s</text>%n", 22, top + PANEL_H / 2, escape(yLabel)));
        svg.append(String.format("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">concurrent clients (log scale)</text>%n",
                LEFT + plotW / 2, bottom + 36));
        int c = 0;
        for (Map.Entry<String, List<double[]>> e : series.entrySet()) {
            String color = COLORS[c++ % COLORS.length];
            StringBuilder points = new StringBuilder();
            for (double[] v : e.getValue()) {
                points.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(v[0]), py.applyAsDouble(v[1])));
            }
            svg.append(String.format("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>%n", color,
                    points.toString().trim()));
            for (double[] v : e.getValue()) {
                svg.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>%n",
                        px.applyAsDouble(v[0]), py.applyAsDouble(v[1]), color));
            }
        }
    }

    private static void legend(StringBuilder svg, List<String> names) {
        int x = WIDTH - RIGHT + 20, y = TOP + 10;
        for (int i = 0; i < names.size(); i++) {
            String color = COLORS[i % COLORS.length];
            int yy = y + i * 22;
            svg.append(String.format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>%n",
                    x, yy, x + 24, yy, color));
            svg.append(String.format("<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"%s\"/>%n", x + 12, yy, color));
            svg.append(String.format("<text x=\"%d\" y=\"%d\">%s</text>%n", x + 32, yy + 4, escape(names.get(i))));
        }
    }

    private static double log2(double v) {
        return Math.log(v) / Math.log(2);
    }

    /** 1, 2 or 5 times a power of ten, at least {@code v}: round tick values. */
    static double niceCeiling(double v) {
        if (v <= 0) {
            return 1;
        }
        double p = Math.pow(10, Math.floor(Math.log10(v)));
        for (double m : new double[] {1, 2, 5, 10}) {
            if (m * p >= v) {
                return m * p;
            }
        }
        return 10 * p;
    }

    private static String format(double v) {
        return v == Math.rint(v) ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
