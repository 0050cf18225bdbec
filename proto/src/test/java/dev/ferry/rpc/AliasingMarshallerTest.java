package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.SenderFrame;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayInputStream;
import java.lang.management.ManagementFactory;
import java.util.Random;
import org.junit.jupiter.api.Test;

class AliasingMarshallerTest {
    private static final int DATA = 1 << 20;
    private final AliasingMarshaller<SenderFrame> marshaller =
            new AliasingMarshaller<>(SenderFrame.getDefaultInstance());

    private static SenderFrame frame() {
        byte[] data = new byte[DATA];
        new Random(7).nextBytes(data);
        return SenderFrame.newBuilder()
                .setPages(PageBatch.newBuilder()
                        .setRound(3)
                        .setBasePage(42)
                        .setRawLength(DATA)
                        .setData(ByteString.copyFrom(data)))
                .build();
    }

    @Test
    void parsesWhatItSerialized() throws Exception {
        SenderFrame f = frame();
        assertEquals(f, marshaller.parse(marshaller.stream(f)));
    }

    /**
     * The regression: aliasing was enabled on a decoder that did not know its buffer was immutable,
     * so every page batch's data was copied a second time on the receiver (a tenth of its CPU).
     * Reading the message costs one copy of it; parsing must not add another.
     */
    @Test
    void pageDataIsNotCopiedAgainWhenParsed() throws Exception {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        SenderFrame f = frame();
        byte[] wire = f.toByteArray();
        for (int i = 0; i < 3; i++) {
            marshaller.parse(new ByteArrayInputStream(wire));
        }
        long before = threads.getCurrentThreadAllocatedBytes();
        SenderFrame parsed = marshaller.parse(new ByteArrayInputStream(wire));
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertEquals(DATA, parsed.getPages().getData().size());
        assertTrue(allocated < DATA * 3L / 2, "parsing a " + DATA + "-byte batch allocated " + allocated + " bytes");
    }

    @Test
    void malformedMessageIsAnInternalErrorNotACrash() {
        byte[] wire = frame().toByteArray();
        byte[] truncated = java.util.Arrays.copyOf(wire, wire.length / 2);
        StatusRuntimeException e =
                assertThrows(StatusRuntimeException.class, () -> marshaller.parse(new ByteArrayInputStream(truncated)));
        assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
        assertTrue(
                e.getStatus().getDescription().startsWith("malformed protobuf message"),
                e.getStatus().getDescription());
    }
}
