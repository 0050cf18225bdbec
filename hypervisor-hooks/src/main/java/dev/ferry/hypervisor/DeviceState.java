package dev.ferry.hypervisor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;

/**
 * The non-RAM state of a VM (vCPUs, devices), moved at switchover. Both ends stream it, so a
 * hypervisor's own migration stream can be tunnelled through the agents unchanged.
 */
public interface DeviceState {
  /** What a save carries. */
  enum Scope {
    /** Device state only; guest RAM is moved by Ferry. The VM must be paused. */
    DEVICES,
    /**
     * The hypervisor's own migration of everything, RAM included, while the VM runs; the
     * hypervisor pauses the VM when its stream ends.
     */
    EVERYTHING
  }

  /** Receives the saved state in order. */
  interface Sink {
    void write(ByteBuffer chunk) throws IOException;
  }

  /** The destination half: takes chunks in order, then loads them into the VM. */
  interface Loader extends AutoCloseable {
    void write(ByteBuffer chunk) throws IOException;

    /** All chunks given: waits until the hypervisor has loaded the state. The VM stays paused. */
    void finish(Duration timeout) throws HypervisorException;

    /** Abandons the load. */
    @Override
    void close();
  }

  /**
   * How a save may run: how long it may take, and, for {@link Scope#EVERYTHING}, the hypervisor's
   * own downtime limit and bandwidth cap (0 for none).
   */
  record SaveLimits(Duration timeout, Duration downtimeLimit, long maxBandwidth) {
    public static SaveLimits of(Duration timeout) {
      return new SaveLimits(timeout, Duration.ofMillis(300), 0);
    }
  }

  /** Streams the state to {@code sink}; returns the byte count once the hypervisor is done. */
  long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException;

  Loader load(Scope scope) throws HypervisorException;
}
