package dev.ferry.chaos.history;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a guest's console from outside: the test guest (QEMU's serial console) and the sim guest
 * both print {@code FERRY-GUEST hb=N gen=W stale=S} lines, and the test guest a
 * {@code FERRY-GUEST STALE ...} line for every stale page it finds.
 */
public final class Consoles {
    private static final Pattern BEAT = Pattern.compile("FERRY-GUEST hb=(\\d+)(?: gen=\\d+)?(?: stale=(\\d+))?");
    private static final int TAIL = 4096;

    /** The last complete heartbeat line's counter (-1: none), its stale counter, and whether a STALE line is in view. */
    public record Tail(long heartbeat, long stale, String staleLine) {
        static final Tail NONE = new Tail(-1, 0, "");
    }

    private Consoles() {}

    public static Tail read(Path console) {
        String text;
        try (RandomAccessFile f = new RandomAccessFile(console.toFile(), "r")) {
            long len = f.length();
            int n = (int) Math.min(len, TAIL);
            byte[] b = new byte[n];
            f.seek(len - n);
            f.readFully(b);
            text = new String(b, StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            return Tail.NONE;
        }
        int lastNewline = text.lastIndexOf('\n');
        if (lastNewline < 0) {
            return Tail.NONE;
        }
        text = text.substring(0, lastNewline + 1); // complete lines only
        Matcher m = BEAT.matcher(text);
        long hb = -1;
        long stale = 0;
        while (m.find()) {
            hb = Long.parseLong(m.group(1));
            if (m.group(2) != null) {
                stale = Math.max(stale, Long.parseLong(m.group(2)));
            }
        }
        int s = text.indexOf("FERRY-GUEST STALE");
        String staleLine = "";
        if (s >= 0) {
            int e = text.indexOf('\n', s);
            staleLine = text.substring(s, e < 0 ? text.length() : e);
        }
        return new Tail(hb, stale, staleLine);
    }
}
