package dev.ferry.migration.wire;

/**
 * Decides whether a lane tries LZ4 on its next batch. Trying on incompressible memory costs a
 * full compression pass for nothing, so after a batch that did not pay, the next attempts are
 * skipped, exponentially longer while memory stays incompressible; one batch that pays resets
 * it. A pure state machine: no clock, no randomness.
 */
public final class CompressionGovernor {
  /** A batch pays when LZ4 saves at least an eighth of its bytes. */
  public static boolean pays(int rawLength, int compressedLength) {
    return compressedLength <= rawLength - (rawLength >>> 3);
  }

  static final int MAX_SKIP = 64;
  private int skip;
  private int skipLeft;

  /** True when the next batch should be compressed. */
  public boolean shouldTry() {
    if (skipLeft > 0) {
      skipLeft--;
      return false;
    }
    return true;
  }

  /** Records what compressing a batch achieved. */
  public void record(int rawLength, int compressedLength) {
    if (pays(rawLength, compressedLength)) {
      skip = 0;
    } else {
      skip = skip == 0 ? 1 : Math.min(MAX_SKIP, skip * 2);
      skipLeft = skip;
    }
  }
}
