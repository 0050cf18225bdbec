package dev.ferry.migration.wire;

/**
 * Decides whether a lane compresses its next batch. Compression must pay twice: in bytes (LZ4
 * saves at least an eighth) and in time (compressing costs less than sending the bytes it
 * saves). On a fast link with a busy CPU, sending raw wins; on a slow link, compressing wins;
 * the lane measures both and follows what it sees.
 *
 * <p>After a batch that did not pay, the next attempts are skipped, exponentially longer (up to
 * 64 batches) while it stays that way; one batch that pays resets it. Pure: the caller supplies
 * every measurement, so every branch is unit-tested.
 */
public final class CompressionGovernor {
    static final int MAX_SKIP = 64;
    /** Weight of the newest sample in the running averages. */
    private static final double ALPHA = 0.25;

    private int skip;
    private int skipLeft;
    /** Nanoseconds to compress one raw byte, and compressed/raw, from batches that were compressed. */
    private double compressNanosPerByte;

    private double ratio;
    /** Nanoseconds the lane spends sending one wire byte (encoding excluded, flow-control waits included). */
    private double sendNanosPerByte;

    /** A batch pays in bytes when LZ4 saves at least an eighth of it. */
    public static boolean pays(int rawLength, int compressedLength) {
        return compressedLength <= rawLength - (rawLength >>> 3);
    }

    /** True when the next batch should be compressed. */
    public boolean shouldTry() {
        if (skipLeft > 0) {
            skipLeft--;
            return false;
        }
        return true;
    }

    /** Records one compression attempt: sizes and how long LZ4 took. */
    public void recordCompression(int rawLength, int compressedLength, long nanos) {
        if (rawLength <= 0) {
            return;
        }
        double cost = (double) nanos / rawLength;
        double r = (double) compressedLength / rawLength;
        compressNanosPerByte = compressNanosPerByte == 0 ? cost : (1 - ALPHA) * compressNanosPerByte + ALPHA * cost;
        ratio = ratio == 0 ? r : (1 - ALPHA) * ratio + ALPHA * r;
        if (pays(rawLength, compressedLength) && paysInTime()) {
            skip = 0;
        } else {
            backOff();
        }
    }

    /** Records how long sending {@code wireBytes} took the lane (time blocked on the stream included). */
    public void recordSend(long wireBytes, long nanos) {
        if (wireBytes <= 0) {
            return;
        }
        double cost = (double) nanos / wireBytes;
        sendNanosPerByte = sendNanosPerByte == 0 ? cost : (1 - ALPHA) * sendNanosPerByte + ALPHA * cost;
    }

    /**
     * Compressing B bytes costs B*c; it saves sending B*(1-r) bytes at s each. Without a send
     * measurement yet, assume it pays (the first batches decide).
     */
    boolean paysInTime() {
        if (sendNanosPerByte == 0 || compressNanosPerByte == 0) {
            return true;
        }
        return compressNanosPerByte < sendNanosPerByte * (1 - ratio);
    }

    /** Whether the last attempt's result should be used for this batch. */
    public boolean useCompressed(int rawLength, int compressedLength) {
        return pays(rawLength, compressedLength) && paysInTime();
    }

    private void backOff() {
        skip = skip == 0 ? 1 : Math.min(MAX_SKIP, skip * 2);
        skipLeft = skip;
    }
}
