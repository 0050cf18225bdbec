package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.qemu.qmp.QmpException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;

/**
 * QEMU's own gdbstub, reached through HMP {@code gdbserver} on a unix socket, used to make QEMU
 * write guest RAM through its own mapping (GDB remote protocol {@code M addr,len:hex}), exactly
 * like a vCPU or a device would, with no guest code at all. Attaching stops the VM.
 *
 * <p>With paging off (a paused VM at reset, or the test guest), a gdb address is a guest physical
 * address, which for the pc machine's low RAM is the offset in the RAM file.
 */
final class GdbStub implements AutoCloseable {
    private static final int CHUNK = 1024;
    private final SocketChannel channel;
    private final ByteBuffer in = ByteBuffer.allocate(16 * 1024).flip();

    private GdbStub(SocketChannel channel) {
        this.channel = channel;
    }

    static GdbStub attach(QemuProcess qemu, Path socket) throws QmpException, IOException {
        String out = qemu.qmp()
                .execute(
                        "human-monitor-command",
                        "{\"command-line\": \"gdbserver unix:" + socket + ",server=on,wait=off\"}",
                        Duration.ofSeconds(5))
                .asText();
        if (!out.contains("Waiting for gdb connection")) {
            throw new IOException("gdbserver did not start: " + out);
        }
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        return new GdbStub(ch);
    }

    /** Writes {@code data} at guest address {@code address} through QEMU. */
    void write(long address, byte[] data) throws IOException {
        for (int off = 0; off < data.length; off += CHUNK) {
            int n = Math.min(CHUNK, data.length - off);
            byte[] part = java.util.Arrays.copyOfRange(data, off, off + n);
            String reply = packet("M" + Long.toHexString(address + off) + "," + Integer.toHexString(n) + ":"
                    + HexFormat.of().formatHex(part));
            if (!reply.equals("OK")) {
                throw new IOException("gdbstub refused a write at 0x" + Long.toHexString(address + off) + ": " + reply);
            }
        }
    }

    byte[] read(long address, int length) throws IOException {
        String reply = packet("m" + Long.toHexString(address) + "," + Integer.toHexString(length));
        if (reply.startsWith("E")) {
            throw new IOException("gdbstub refused a read at 0x" + Long.toHexString(address) + ": " + reply);
        }
        return HexFormat.of().parseHex(reply);
    }

    private String packet(String payload) throws IOException {
        int sum = 0;
        for (byte b : payload.getBytes(StandardCharsets.US_ASCII)) {
            sum += b & 0xff;
        }
        String frame = "$" + payload + "#" + String.format("%02x", sum & 0xff);
        ByteBuffer out = ByteBuffer.wrap(frame.getBytes(StandardCharsets.US_ASCII));
        while (out.hasRemaining()) {
            channel.write(out);
        }
        // The reply: acks ('+') and stop notifications may come first; take the first '$...#xx' packet.
        StringBuilder reply = null;
        int trailer = -1;
        while (true) {
            int c = next();
            if (reply == null) {
                if (c == '$') {
                    reply = new StringBuilder();
                }
                continue;
            }
            if (trailer >= 0) {
                if (++trailer == 2) {
                    channel.write(ByteBuffer.wrap(new byte[] {'+'}));
                    String r = reply.toString();
                    if (r.startsWith("T") || r.startsWith("S")) {
                        // A stop reply from attaching; the answer to our packet follows.
                        reply = null;
                        trailer = -1;
                        continue;
                    }
                    return r;
                }
                continue;
            }
            if (c == '#') {
                trailer = 0;
            } else {
                reply.append((char) c);
            }
        }
    }

    private int next() throws IOException {
        if (!in.hasRemaining()) {
            in.clear();
            if (channel.read(in) < 0) {
                throw new IOException("gdbstub closed the connection");
            }
            in.flip();
        }
        return in.get() & 0xff;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
