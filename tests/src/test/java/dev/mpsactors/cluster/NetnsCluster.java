package dev.mpsactors.cluster;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Cluster nodes as separate JVM processes, each in its own Linux network namespace with its own address on a
 * bridge this class creates: a small network of hosts on one machine. Each node is {@code bin/mps-actors node}
 * (the command line's entry point) started with {@code ip netns exec NS java -cp ...}. The network can
 * cut a node off (its link down) and heal it; a node can be killed with SIGKILL or stopped with SIGTERM.
 *
 * <p>Names are unique per instance (bridge {@code mpsb<tag>}, links {@code mpsv<tag><i>}, namespaces
 * {@code mpsat-<pid>-<tag>-<i>}) so runs in parallel never clash; {@link #close} (also run by a JVM shutdown
 * hook) kills the node processes and deletes the namespaces and the bridge, and a new instance first removes
 * what a run whose JVM has died left behind. Needs root (CAP_NET_ADMIN) and the {@code ip} tool:
 * {@link #unavailable()} says why not where they are missing.
 */
final class NetnsCluster implements AutoCloseable {
    private static final Pattern OURS = Pattern.compile("mpsat-(\\d+)-([0-9a-z]{4})-\\d+");
    private static final long COMMAND_SECONDS = 30;

    private final String tag;
    private final String subnet;
    private final Path logs;
    private final Map<Integer, Process> processes = new ConcurrentHashMap<>();
    private final Map<Integer, Integer> incarnations = new ConcurrentHashMap<>();
    private final List<Integer> namespaces = new ArrayList<>();
    private final Thread hook;
    private boolean closed;

    /** Why namespaces cannot be made here, or null if they can (tries a namespace, a veth pair and a bridge). */
    static String unavailable() {
        String tag = randomTag();
        String ns = "mpsat-" + ProcessHandle.current().pid() + "-" + tag + "-probe";
        try {
            run("ip", "netns", "add", ns);
            try {
                run("ip", "link", "add", "mpsb" + tag, "type", "bridge");
                run("ip", "link", "add", "mpsv" + tag + "p", "type", "veth", "peer", "name", "eth0", "netns", ns);
                return null;
            } finally {
                quietly("ip", "link", "del", "mpsv" + tag + "p");
                quietly("ip", "link", "del", "mpsb" + tag);
                quietly("ip", "netns", "del", ns);
            }
        } catch (Exception e) {
            return "cannot create network namespaces, veth pairs and bridges here (needs root and iproute2): "
                    + e.getMessage();
        }
    }

    NetnsCluster(Path logRoot) throws IOException {
        removeLeftovers();
        this.tag = randomTag();
        SecureRandom r = new SecureRandom();
        String candidate;
        String used = output("ip", "-4", "-o", "addr");
        do {
            candidate = "10." + (200 + r.nextInt(50)) + "." + r.nextInt(250) + ".";
        } while (used.contains(" " + candidate));
        this.subnet = candidate;
        this.logs = Files.createDirectories(logRoot.resolve("netns-" + tag));
        this.hook = new Thread(this::teardown, "netns-cluster-teardown-" + tag);
        Runtime.getRuntime().addShutdownHook(hook);
        run("ip", "link", "add", bridge(), "type", "bridge");
        run("ip", "addr", "add", hostAddress() + "/24", "dev", bridge());
        run("ip", "link", "set", bridge(), "up");
    }

    /** This machine's address on the bridge: where a client in the test's own namespace is reached. */
    String hostAddress() {
        return subnet + "1";
    }

    /** The address of node {@code i} (0-based) in its namespace. */
    String address(int i) {
        return subnet + (i + 2);
    }

    String tag() {
        return tag;
    }

    /**
     * Starts node {@code i}'s JVM in its namespace (made on first use), as {@code java JVM_OPTIONS -cp
     * CLASSPATH MAIN ARGS}; its output goes to a log file. A node started again after it stopped is a new
     * incarnation on the same address.
     */
    synchronized Process start(int i, List<String> jvmOptions, String mainClass, List<String> args) throws IOException {
        if (!namespaces.contains(i)) {
            makeNamespace(i);
        }
        List<String> command = new ArrayList<>(List.of("ip", "netns", "exec", namespace(i),
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", classPath(), mainClass));
        command.addAll(args);
        int incarnation = incarnations.merge(i, 1, Integer::sum);
        Path log = logs.resolve("node-" + i + "-" + incarnation + ".log");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        processes.put(i, p);
        return p;
    }

    /** The log of node {@code i}'s latest incarnation. */
    Path log(int i) {
        return logs.resolve("node-" + i + "-" + incarnations.getOrDefault(i, 0) + ".log");
    }

    /** Waits (bounded) until the latest incarnation's log has a line containing {@code text}; that line. */
    String awaitLine(int i, String text, long seconds) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        Process p = processes.get(i);
        while (System.nanoTime() < deadline) {
            for (String line : Files.readAllLines(log(i), StandardCharsets.UTF_8)) {
                if (line.contains(text)) {
                    return line;
                }
            }
            if (p != null && !p.isAlive()) {
                throw new IllegalStateException("node " + i + " exited (" + p.exitValue() + ") before printing '"
                        + text + "':\n" + tail(i));
            }
            TimeUnit.MILLISECONDS.sleep(100);
        }
        throw new IllegalStateException("node " + i + " printed no '" + text + "' within " + seconds + " s:\n" + tail(i));
    }

    /** The last lines of node {@code i}'s latest log, for failure messages. */
    String tail(int i) {
        try {
            List<String> lines = Files.readAllLines(log(i), StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    Process process(int i) {
        return processes.get(i);
    }

    /** {@code kill -9}: the node's JVM vanishes without a word to anyone. */
    void kill9(int i) throws IOException {
        run("kill", "-9", Long.toString(processes.get(i).pid()));
    }

    /** {@code kill -TERM}: the node leaves the cluster gracefully and exits. */
    void terminate(int i) throws IOException {
        run("kill", "-TERM", Long.toString(processes.get(i).pid()));
    }

    /** Cuts node {@code i} off the network: its link to the bridge goes down (both ways, nothing passes). */
    void cut(int i) throws IOException {
        run("ip", "link", "set", link(i), "down");
    }

    /** Undoes {@link #cut}. */
    void heal(int i) throws IOException {
        run("ip", "link", "set", link(i), "up");
    }

    @Override
    public synchronized void close() {
        teardown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // already shutting down: the hook runs teardown, which is idempotent
        }
    }

    private synchronized void teardown() {
        if (closed) {
            return;
        }
        closed = true;
        for (Process p : processes.values()) {
            p.destroyForcibly();
        }
        for (Process p : processes.values()) {
            try {
                p.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        for (int i : namespaces) {
            killAll(namespace(i));
            quietly("ip", "netns", "del", namespace(i));
        }
        quietly("ip", "link", "del", bridge());
    }

    private void makeNamespace(int i) throws IOException {
        String ns = namespace(i);
        run("ip", "netns", "add", ns);
        namespaces.add(i);
        run("ip", "link", "add", link(i), "type", "veth", "peer", "name", "eth0", "netns", ns);
        run("ip", "link", "set", link(i), "master", bridge());
        run("ip", "link", "set", link(i), "up");
        run("ip", "netns", "exec", ns, "ip", "addr", "add", address(i) + "/24", "dev", "eth0");
        run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up");
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
    }

    private String namespace(int i) {
        return "mpsat-" + ProcessHandle.current().pid() + "-" + tag + "-" + i;
    }

    private String bridge() {
        return "mpsb" + tag;
    }

    private String link(int i) {
        return "mpsv" + tag + i;
    }

    /** Namespaces (and their processes and bridges) of runs whose JVM is gone. */
    private static void removeLeftovers() {
        String list;
        try {
            list = output("ip", "netns", "list");
        } catch (IOException e) {
            return;
        }
        for (String line : list.split("\n")) {
            String name = line.trim().split("\\s+")[0];
            Matcher m = OURS.matcher(name);
            if (m.matches() && ProcessHandle.of(Long.parseLong(m.group(1))).map(h -> !h.isAlive()).orElse(true)) {
                killAll(name);
                quietly("ip", "netns", "del", name);
                quietly("ip", "link", "del", "mpsb" + m.group(2));
            }
        }
    }

    private static void killAll(String ns) {
        try {
            for (String pid : output("ip", "netns", "pids", ns).split("\\s+")) {
                if (!pid.isBlank()) {
                    quietly("kill", "-9", pid.trim());
                }
            }
        } catch (IOException e) {
            // the namespace is already gone
        }
    }

    /**
     * The test JVM's class path (surefire may hand it over as a manifest-only jar, which {@code java -cp}
     * follows as well).
     */
    private static String classPath() {
        return System.getProperty("java.class.path");
    }

    private static String randomTag() {
        SecureRandom r = new SecureRandom();
        StringBuilder s = new StringBuilder();
        for (int k = 0; k < 4; k++) {
            s.append(Character.forDigit(r.nextInt(36), 36));
        }
        return s.toString();
    }

    static void run(String... command) throws IOException {
        output(command);
    }

    private static String output(String... command) throws IOException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(COMMAND_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + " did not finish within " + COMMAND_SECONDS + " s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: " + String.join(" ", command), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed (" + p.exitValue() + "): " + out.trim());
        }
        return out;
    }

    private static void quietly(String... command) {
        try {
            output(command);
        } catch (IOException e) {
            // teardown is best effort: what is already gone is fine
        }
    }
}
