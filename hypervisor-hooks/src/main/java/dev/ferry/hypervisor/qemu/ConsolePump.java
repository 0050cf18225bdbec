package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.HypervisorException;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Input for a QEMU guest's serial console: a connection to COM1's socket ({@code -chardev
 * socket,server=on,wait=off,logfile=console.log,logappend=on}, see {@link QemuCommand}), made
 * when a console client first writes and dropped after {@link #IDLE_MS} without input.
 *
 * <p>Why this shape. QEMU's file chardev takes no input, so COM1 is a socket. QEMU writes what
 * the guest prints to the chardev's log file whether a client is connected or not, so the file is
 * the history (the agent's {@link dev.ferry.hypervisor.console.ConsoleHistory} reads and trims
 * it) and a record of the guest's output that needs no agent: it goes on while the agent is
 * stopped, frozen or restarting, which is what the fencing tests watch. A connected client must
 * read what QEMU sends it, or the guest's serial port stalls once the socket's buffer is full;
 * hence the connection only while someone types, a reader that discards (the bytes are in the log
 * already), and input through a bounded queue so that a guest that does not read its console makes
 * input fail rather than the agent block.
 */
final class ConsolePump implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ConsolePump.class);
    /** Input waiting for QEMU to take it: keystrokes and pasted lines, not bulk transfers. */
    static final int INPUT_CHUNKS = 256;
    /** Without input for this long, the connection goes (nobody types; nothing must be drained). */
    static final long IDLE_MS = 30_000;

    private final String vm;
    private final SocketChannel channel;
    private final BlockingQueue<byte[]> input = new ArrayBlockingQueue<>(INPUT_CHUNKS);
    private final Thread reader;
    private final Thread writer;
    private volatile boolean closed;
    private volatile long lastInput = System.nanoTime();

    private ConsolePump(String vm, SocketChannel channel) {
        this.vm = vm;
        this.channel = channel;
        this.reader =
                Thread.ofPlatform().daemon().name("ferry-console-drain-" + vm).unstarted(this::drain);
        this.writer =
                Thread.ofPlatform().daemon().name("ferry-console-in-" + vm).unstarted(this::pumpInput);
    }

    /** Connects to QEMU's console socket (retrying until {@code timeoutMs}: QEMU creates it as it starts). */
    static ConsolePump connect(String vm, Path socket, long timeoutMs) throws HypervisorException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (true) {
            try {
                SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
                ConsolePump p = new ConsolePump(vm, ch);
                p.reader.start();
                p.writer.start();
                return p;
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw new HypervisorException(
                            "console input", "cannot connect to " + socket + ": " + e.getMessage(), e);
                }
                try {
                    Thread.sleep(20);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new HypervisorException("console input", "interrupted", ie);
                }
            }
        }
    }

    boolean isOpen() {
        return !closed;
    }

    /** What QEMU sends to the connected client is in its log file already: read and dropped. */
    private void drain() {
        ByteBuffer b = ByteBuffer.allocate(16 << 10);
        try {
            while (!closed) {
                b.clear();
                if (channel.read(b) < 0) {
                    break;
                }
            }
        } catch (IOException e) {
            if (!closed) {
                log.debug("console of VM {}: {}", vm, e.getMessage());
            }
        }
        closed = true;
    }

    private void pumpInput() {
        try {
            while (!closed) {
                byte[] next = input.poll(1, TimeUnit.SECONDS);
                if (next == null) {
                    if (System.nanoTime() - lastInput > TimeUnit.MILLISECONDS.toNanos(IDLE_MS)) {
                        break;
                    }
                    continue;
                }
                ByteBuffer b = ByteBuffer.wrap(next);
                while (b.hasRemaining()) {
                    channel.write(b);
                }
            }
        } catch (IOException e) {
            if (!closed) {
                log.warn("console input of VM {}: {}", vm, e.getMessage());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        close();
    }

    /** Queues {@code data} for the guest; refuses when the guest is not taking its input. */
    void write(byte[] data) throws HypervisorException {
        if (closed) {
            throw new HypervisorException("console input", "the console connection of VM " + vm + " is closed");
        }
        lastInput = System.nanoTime();
        if (data.length > 0 && !input.offer(data.clone())) {
            throw new HypervisorException(
                    "console input", "the guest of VM " + vm + " is not reading its console (input buffer full)");
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            channel.close();
        } catch (IOException e) {
            // closing: nothing to do
        }
        writer.interrupt();
    }
}
