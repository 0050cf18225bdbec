package dev.ferry.hypervisor.qemu;

import java.util.HashMap;
import java.util.Map;

/**
 * What the LD_PRELOAD hook inside QEMU reports in its status file: one line, replaced atomically.
 *
 * <pre>
 *   status=loaded pid=P                                   hook loaded, RAM file not mapped yet
 *   status=ok pid=P start=0xA length=N offset=O ...       RAM mapped at [A, A+N) and write-protected
 *   status=error step=S errno=E ... message=TEXT          registration failed at step S
 * </pre>
 *
 * @param kind which of the three
 * @param pid the process that wrote the line (QEMU)
 * @param start address of QEMU's mapping of the RAM file, in QEMU's address space (ok only)
 * @param length length of that mapping in bytes (ok; error when known)
 * @param offset file offset the mapping starts at (ok only)
 * @param step the failed step (error only), e.g. {@code UFFDIO_API}
 * @param errno errno of the failed step (error only)
 * @param message the hook's explanation (error only)
 * @param line the raw line, for logs
 */
public record HookStatus(
        Kind kind,
        long pid,
        long start,
        long length,
        long offset,
        String step,
        int errno,
        String message,
        String line) {

    /** Stage the hook reached. */
    public enum Kind {
        LOADED,
        OK,
        ERROR
    }

    /** Parses the status file's line; throws {@link IllegalArgumentException} for anything else. */
    public static HookStatus parse(String text) {
        String line = text.strip();
        if (line.isEmpty() || line.contains("\n")) {
            throw new IllegalArgumentException("hook status is not one line: '" + text + "'");
        }
        Map<String, String> f = new HashMap<>();
        String rest = line;
        while (!rest.isEmpty()) {
            int eq = rest.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("hook status has a field without '=': '" + line + "'");
            }
            String key = rest.substring(0, eq);
            String value;
            if (key.equals("message")) {
                // The message is free text to the end of the line.
                value = rest.substring(eq + 1);
                rest = "";
            } else {
                int sp = rest.indexOf(' ', eq);
                value = sp < 0 ? rest.substring(eq + 1) : rest.substring(eq + 1, sp);
                rest = sp < 0 ? "" : rest.substring(sp + 1).stripLeading();
            }
            f.put(key, value);
        }
        String status = f.get("status");
        if (status == null) {
            throw new IllegalArgumentException("hook status has no status field: '" + line + "'");
        }
        return switch (status) {
            case "loaded" -> new HookStatus(Kind.LOADED, num(f, "pid", line), 0, 0, 0, null, 0, null, line);
            case "ok" ->
                new HookStatus(
                        Kind.OK,
                        num(f, "pid", line),
                        num(f, "start", line),
                        num(f, "length", line),
                        num(f, "offset", line),
                        null,
                        0,
                        null,
                        line);
            case "error" ->
                new HookStatus(
                        Kind.ERROR,
                        f.containsKey("pid") ? num(f, "pid", line) : 0,
                        0,
                        f.containsKey("length") ? num(f, "length", line) : 0,
                        0,
                        f.getOrDefault("step", "?"),
                        f.containsKey("errno") ? (int) num(f, "errno", line) : 0,
                        f.getOrDefault("message", ""),
                        line);
            default -> throw new IllegalArgumentException("unknown hook status '" + status + "' in '" + line + "'");
        };
    }

    private static long num(Map<String, String> f, String key, String line) {
        String v = f.get(key);
        if (v == null) {
            throw new IllegalArgumentException("hook status lacks " + key + ": '" + line + "'");
        }
        try {
            return v.startsWith("0x") ? Long.parseUnsignedLong(v.substring(2), 16) : Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "hook status field " + key + "=" + v + " is not a number: '" + line + "'");
        }
    }

    /** One sentence for logs and errors. */
    public String describe() {
        return switch (kind) {
            case LOADED -> "hook loaded in pid " + pid + ", RAM file not mapped yet";
            case OK ->
                String.format(
                        "RAM mapped write-protected in pid %d at [0x%x, 0x%x) (%d MiB, file offset %d)",
                        pid, start, start + length, length >> 20, offset);
            case ERROR -> "hook registration failed at " + step + " (errno " + errno + "): " + message;
        };
    }
}
