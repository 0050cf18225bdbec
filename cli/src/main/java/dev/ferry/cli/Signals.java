package dev.ferry.cli;

import sun.misc.Signal;

/**
 * The terminal's signals as `ferry migrate` treats them. A hang-up (SIGHUP: the SSH session
 * dropped) must not cancel a migration, which the JVM's default (run the shutdown hooks, where the
 * cancel lives) would do; and a Ctrl-C on a terminal asks before cancelling. {@code sun.misc.Signal}
 * is the JDK's supported way to handle them (jdk.unsupported, in the release runtime).
 */
final class Signals {
    private Signals() {}

    /** Runs {@code action} on SIGHUP instead of the JVM's default. */
    static void onHangup(Runnable action) {
        Signal.handle(new Signal("HUP"), s -> action.run());
    }

    /**
     * A first SIGINT runs {@code ask}; a second one within {@code windowNanos} exits the JVM as the
     * default handler would (130), which runs the shutdown hooks: the cancel.
     */
    static void confirmInterrupt(long windowNanos, Runnable ask) {
        long[] first = {0};
        Signal.handle(new Signal("INT"), s -> {
            long now = System.nanoTime();
            synchronized (first) {
                if (first[0] != 0 && now - first[0] < windowNanos) {
                    System.exit(130);
                }
                first[0] = now;
            }
            ask.run();
        });
    }
}
