package dev.mpsactors.bench;

import java.io.PrintStream;

/**
 * Progress of a command over the lines of a file, on stderr: a bar redrawn in place on a terminal; elsewhere a
 * line per tenth of a file of 100 lines or more; then one line with the count, the time and the rate.
 */
final class Progress {
    private final PrintStream out;
    private final int total;
    private final String verb;
    private final boolean terminal = System.console() != null;
    private final long start = System.nanoTime();
    private int done;
    private int lastTenth;

    /** @param verb what was done to the texts: "embedded", "scored", "classified" */
    Progress(PrintStream out, int total, String verb) {
        this.out = out;
        this.total = total;
        this.verb = verb;
    }

    synchronized void advance(int n) {
        done += n;
        int tenth = (int) (10L * done / total);
        if (terminal) {
            int width = 30, filled = (int) ((long) width * done / total);
            out.print("\r[" + "#".repeat(filled) + ".".repeat(width - filled) + "] " + done + "/" + total
                    + " texts, " + rate() + " texts/s");
        } else if (tenth > lastTenth && total >= 100) {
            out.println(verb + " " + done + "/" + total + " texts (" + (tenth * 10) + "%), " + rate() + " texts/s");
        }
        lastTenth = tenth;
    }

    synchronized void done() {
        if (terminal) {
            out.println();
        }
        out.println(verb + " " + done + " texts in " + String.format("%.1f", (System.nanoTime() - start) / 1e9)
                + " s (" + rate() + " texts/s)");
    }

    private String rate() {
        double s = Math.max(1e-9, (System.nanoTime() - start) / 1e9);
        return String.format("%.1f", done / s);
    }
}
