package dev.ferry.hypervisor;

import java.lang.foreign.MemorySegment;

/**
 * Guest RAM as the agent sees it: the same file the hypervisor maps, mapped again by the agent,
 * so pages are read and written in place without the hypervisor's involvement.
 */
public interface GuestMemory {
  long sizeBytes();

  int pageSize();

  default long pageCount() {
    return sizeBytes() / pageSize();
  }

  /** The agent's read-write mapping of all of guest RAM. */
  MemorySegment segment();

  /** Makes pages read as zero and frees their backing memory. */
  void discard(long firstPage, long pages);

  /** Faults the backing memory in ahead of use, so that receiving pages does not pay first-touch cost. */
  void populate();
}
