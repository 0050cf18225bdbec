package dev.ferry.hypervisor.qemu.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class QmpFramerTest {
    @Test
    void messagesSplitAcrossReadsAreReassembled() {
        QmpFramer f = new QmpFramer();
        List<String> out = new ArrayList<>();
        String stream = "{\"return\": {}, \"id\": 1}\r\n{\"event\": \"STOP\"}\r\n\r\n{\"return\": 2}\r\n";
        byte[] bytes = stream.getBytes(StandardCharsets.UTF_8);
        // Every split point, in chunks of 1..7 bytes.
        for (int i = 0; i < bytes.length; ) {
            int n = Math.min(1 + i % 7, bytes.length - i);
            f.accept(ByteBuffer.wrap(bytes, i, n), b -> out.add(new String(b, StandardCharsets.UTF_8)));
            i += n;
        }
        assertEquals(List.of("{\"return\": {}, \"id\": 1}", "{\"event\": \"STOP\"}", "{\"return\": 2}"), out);
        assertEquals(0, f.buffered());
    }

    @Test
    void anEndlessLineIsRefusedNotBufferedForever() {
        QmpFramer f = new QmpFramer();
        ByteBuffer junk = ByteBuffer.allocate(1 << 20);
        assertThrows(IllegalArgumentException.class, () -> {
            for (int i = 0; i <= QmpFramer.MAX_MESSAGE >> 20; i++) {
                junk.clear();
                f.accept(junk, b -> {});
            }
        });
    }
}
