package dev.ferry.migration.wire;

/** A frame that does not decode: wrong sizes, bad compression, or a checksum mismatch. */
public final class MalformedFrameException extends Exception {
    public MalformedFrameException(String message) {
        super(message);
    }
}
