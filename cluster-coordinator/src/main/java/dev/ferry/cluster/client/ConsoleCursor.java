package dev.ferry.cluster.client;

import dev.ferry.proto.agent.ConsoleOpen;
import dev.ferry.proto.agent.ConsoleOutput;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What a console client has seen, across the streams it opens as the VM moves: the history's
 * generation and the offset just past the last byte printed, and where the VM was. Pure: the
 * follower feeds it each output message and prints what it returns.
 *
 * <p>A reattach asks for "generation G from offset N", so the new owner (whose history continues
 * the source's) sends exactly the bytes not yet printed. Overlap is cut, a gap is reported; a new
 * generation (a restart after a failover: the old history died with its host) is printed whole,
 * after a note.
 */
public final class ConsoleCursor {
    /** What to do with one message: bytes to print, notes for stderr, and whether the stream ended and why. */
    public record Step(byte[] data, List<String> notes, String ended, boolean caughtUp) {}

    private String generation = "";
    private long offset;
    private String host = "";
    private long epoch;
    private boolean attachedOnce;

    /** The open request for the next stream: from where this cursor is, or the last {@code tailLines} lines. */
    public ConsoleOpen open(String vm, int tailLines, boolean write, boolean historyOnly) {
        return open(vm, tailLines, 0, write, historyOnly);
    }

    /**
     * As above; with {@code sinceUnixMs} above 0, a first stream starts at the output printed since
     * then instead of the last lines. A reattach always goes on from where this cursor is.
     */
    public ConsoleOpen open(String vm, int tailLines, long sinceUnixMs, boolean write, boolean historyOnly) {
        ConsoleOpen.Builder b = ConsoleOpen.newBuilder()
                .setVm(vm)
                .setTailLines(tailLines)
                .setSinceUnixMs(Math.max(0, sinceUnixMs))
                .setWrite(write)
                .setHistoryOnly(historyOnly);
        if (!generation.isEmpty()) {
            b.setGeneration(generation).setOffset(offset);
        }
        return b.build();
    }

    public Step accept(ConsoleOutput o) {
        List<String> notes = new ArrayList<>();
        if (!o.getHost().isEmpty()) {
            if (attachedOnce && (!o.getHost().equals(host) || o.getEpoch() != epoch)) {
                notes.add("-- now on " + o.getHost() + " (epoch " + o.getEpoch() + ")");
            }
            attachedOnce = true;
            host = o.getHost();
            epoch = o.getEpoch();
        }
        byte[] data = o.getData().toByteArray();
        if (!o.getGeneration().isEmpty()) {
            if (!o.getGeneration().equals(generation)) {
                if (!generation.isEmpty()) {
                    notes.add("-- the console started afresh (the VM restarted elsewhere; what only its old host"
                            + " had is gone)");
                }
                generation = o.getGeneration();
                offset = o.getOffset();
            }
            long missed = o.getOffset() - offset;
            if (o.getSkipped() > 0 || missed > 0) {
                notes.add("-- " + Math.max(o.getSkipped(), missed)
                        + " bytes of console output missed (trimmed from the history before they were read)");
            }
            if (missed < 0) {
                // Already printed (a reattach that asked for less than it had): cut the overlap.
                int overlap = (int) Math.min(data.length, -missed);
                data = Arrays.copyOfRange(data, overlap, data.length);
                offset = Math.max(offset, o.getOffset() + o.getData().size());
            } else {
                offset = o.getOffset() + data.length;
            }
        }
        String ended = o.getEnded().isEmpty() ? null : o.getEnded();
        return new Step(data, notes, ended, o.getCaughtUp());
    }

    public String generation() {
        return generation;
    }

    public long offset() {
        return offset;
    }

    public String host() {
        return host;
    }

    public long epoch() {
        return epoch;
    }
}
