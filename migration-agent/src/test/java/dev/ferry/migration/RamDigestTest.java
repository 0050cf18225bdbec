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
    void theDigestIsXxHashOfTheSixteenMebibyteChunkDigests() {
        byte[] ram = new byte[20 * MIB];
        new SplittableRandom(3).nextBytes(ram);
        XXHash64 xxh = XXHashFactory.fastestInstance().hash64();
        ByteBuffer all = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        all.putLong(xxh.hash(ram, 0, 16 * MIB, 0));
        all.putLong(xxh.hash(ram, 16 * MIB, 4 * MIB, 1));
        assertEquals(xxh.hash(all.array(), 0, 16, ram.length), RamDigest.of(memory(ram)));
    }

    /**
     * Found by ReceiverFuzzTest: a destination digests on its switchover thread, one per migration,
     * and each such thread kept a 16 MiB direct buffer that stayed in native memory until a full GC
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
