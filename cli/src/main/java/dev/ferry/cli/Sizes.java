package dev.ferry.cli;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Sizes and rates as operators write them: {@code 512M}, {@code 4G}, {@code 1.5GiB}, {@code 64MB/s}.
 * Suffixes are binary (K = 1024); a bare number is bytes.
 */
public final class Sizes {
    private static final Pattern SIZE =
            Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([KMGT]?)(I?B)?", Pattern.CASE_INSENSITIVE);

    private Sizes() {}

    public static long parseSize(String text) {
        if (text == null) {
            throw new IllegalArgumentException("missing size");
        }
        Matcher m = SIZE.matcher(text.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException(
                    "bad size '" + text + "': write a number with an optional K, M, G or T suffix, like 512M");
        }
        double n = Double.parseDouble(m.group(1));
        long unit = switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 1L << 10;
            case "M" -> 1L << 20;
            case "G" -> 1L << 30;
            case "T" -> 1L << 40;
            default -> 1;
        };
        double bytes = n * unit;
        if (bytes > Long.MAX_VALUE / 2) {
            throw new IllegalArgumentException("size '" + text + "' is too large");
        }
        return (long) bytes;
    }

    /** A rate in bytes per second: a size with an optional {@code /s}. */
    public static long parseRate(String text) {
        if (text == null) {
            throw new IllegalArgumentException("missing rate");
        }
        String t = text.trim();
        if (t.toLowerCase(Locale.ROOT).endsWith("/s")) {
            t = t.substring(0, t.length() - 2);
        }
        try {
            return parseSize(t);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad rate '" + text + "': write bytes per second like 64M or 1G/s");
        }
    }

    public static String format(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int i = -1;
        while (v >= 1024 && i < units.length - 1) {
            v /= 1024;
            i++;
        }
        return String.format(Locale.ROOT, v >= 100 ? "%.0f %s" : "%.1f %s", v, units[i]);
    }

    public static String formatRate(double bytesPerSecond) {
        return format((long) bytesPerSecond) + "/s";
    }
}
