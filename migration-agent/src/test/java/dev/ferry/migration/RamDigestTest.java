package dev.ferry.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.GuestMemory;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;
import org.junit.jupiter.api.Test;

class RamDigestTest {
    private static final int MIB = 1 << 20;

    private static GuestMemory memory(byte[] ram) {
        return new ArrayGuestMemory(ram);
    }

    /** The digest is what both hosts compare: its definition must not change with where it runs. */
    @Test
    void theDigestIsTheRootOfSixteenKibLeavesUnderSixteenMibRegions() {
        byte[] ram = new byte[20 * MIB];
        new SplittableRandom(3).nextBytes(ram);
        XXHash64 xxh = XXHashFactory.fastestInstance().hash64();
        int leaf = 16 << 10;
        int leaves = ram.length / leaf; // 1280: region 0 has 1024, region 1 has 256
        ByteBuffer roots = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        for (int r = 0; r < 2; r++) {
            int first = r * 1024;
            int count = Math.min(1024, leaves - first);
            ByteBuffer region = ByteBuffer.allocate(count * 8).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = first; i < first + count; i++) {
                region.putLong(xxh.hash(ram, i * leaf, leaf, i));
            }
            roots.putLong(xxh.hash(region.array(), 0, count * 8, r));
        }
        assertEquals(xxh.hash(roots.array(), 0, 16, ram.length), RamDigest.of(memory(ram)));
    }

    /**
     * Found by ReceiverFuzzTest: a destination digests on its switchover thread, one per migration,
     * and each such thread kept a direct buffer (then 16 MiB) that stayed in native memory until a full GC
     * (480 MiB of them between two GCs in a fuzz run).
     */
    @Test
    void digestsFromShortLivedThreadsDoNotEachLeaveADirectBufferBehind() throws Exception {
        GuestMemory m = memory(new byte[4 * MIB]);
        RamDigest.of(m); // the pool's own buffers, made once
        long before = directBuffers();
        for (int i = 0; i < 8; i++) {
            Thread t = Thread.ofPlatform().start(() -> RamDigest.of(m));
            t.join();
        }
        long added = directBuffers() - before;
        assertTrue(added < 8, added + " direct buffers left by 8 threads that are gone");
    }

    private static long directBuffers() {
        return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
                .filter(b -> b.getName().equals("direct"))
                .mapToLong(BufferPoolMXBean::getCount)
                .sum();
    }
}
