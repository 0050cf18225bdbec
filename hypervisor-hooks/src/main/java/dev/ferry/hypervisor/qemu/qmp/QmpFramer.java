package dev.ferry.hypervisor.qemu.qmp;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Splits the byte stream from QEMU into messages. QEMU ends every QMP message with CRLF and never
 * puts a raw newline inside one (JSON escapes it), so a newline is the frame boundary.
 */
final class QmpFramer {
    /** Bigger than any reply QEMU 7.2 sends (query-qmp-schema is ~200 KB); a guard against garbage. */
    static final int MAX_MESSAGE = 16 << 20;

    private byte[] pending = new byte[8192];
    private int length;

    /** Appends {@code bytes} and hands every complete line (without CR/LF, never empty) to {@code sink}. */
    void accept(ByteBuffer bytes, Consumer<byte[]> sink) {
        while (bytes.hasRemaining()) {
            byte b = bytes.get();
            if (b == '\n') {
                int end = length;
                while (end > 0 && (pending[end - 1] == '\r' || pending[end - 1] == ' ')) {
                    end--;
                }
                if (end > 0) {
                    sink.accept(Arrays.copyOf(pending, end));
                }
                length = 0;
                continue;
            }
            if (length == pending.length) {
                if (length >= MAX_MESSAGE) {
                    throw new IllegalArgumentException(
                            "QMP message longer than " + MAX_MESSAGE + " bytes without a newline");
                }
                pending = Arrays.copyOf(pending, Math.min(MAX_MESSAGE, length * 2));
            }
            pending[length++] = b;
        }
    }

    /** Bytes of an unfinished message held back. */
    int buffered() {
        return length;
    }
}
