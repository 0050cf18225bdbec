package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.console.ConsoleHistory;
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
 * The agent's end of a QEMU guest's serial console: one connection to QEMU's console socket
 * ({@code -chardev socket,server=on,wait=off}, see {@link QemuCommand#consoleSocket()}), whose
 * output goes into the VM's {@link ConsoleHistory} and whose input comes from console clients.
 *
 * <p>Why a socket that the agent reads rather than QEMU's file chardev: a file takes no input, and
 * QEMU holds it open, so it can neither be trimmed without losing bytes nor renamed into segments.
 * One reader, here, at disk speed, means a slow console client never slows the guest (clients
 * read the history file at their own pace) and the history is bounded by rotation. What it costs:
 * while no agent is connected (between an agent's exit and the next one adopting the QEMU, or in
 * the moment between QEMU's start and the connection) QEMU drops the guest's output (a socket
 * chardev without a client discards what it is given rather than stall the guest).
 */
final class ConsolePump implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ConsolePump.class);
    /** Input waiting for QEMU to take it: keystrokes and pasted lines, not bulk transfers. */
    static final int INPUT_CHUNKS = 256;

    private final String vm;
    private final SocketChannel channel;
    private final ConsoleHistory history;
    private final BlockingQueue<byte[]> input = new ArrayBlockingQueue<>(INPUT_CHUNKS);
    private final Thread reader;
    private final Thread writer;
    private volatile boolean closed;

    private ConsolePump(String vm, SocketChannel channel, ConsoleHistory history) {
        this.vm = vm;
        this.channel = channel;
        this.history = history;
        this.reader = Thread.ofPlatform().daemon().name("ferry-console-" + vm).unstarted(this::pumpOutput);
        this.writer =
                Thread.ofPlatform().daemon().name("ferry-console-in-" + vm).unstarted(this::pumpInput);
    }

    /** Connects to QEMU's console socket (retrying until {@code timeoutMs}: QEMU creates it as it starts). */
    static ConsolePump connect(String vm, Path socket, ConsoleHistory history, long timeoutMs)
            throws HypervisorException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (true) {
            try {
                SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
                ConsolePump p = new ConsolePump(vm, ch, history);
                p.reader.start();
                p.writer.start();
                return p;
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw new HypervisorException(
                            "connect the console", "cannot connect to " + socket + ": " + e.getMessage(), e);
                }
                try {
                    Thread.sleep(20);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new HypervisorException("connect the console", "interrupted", ie);
                }
            }
        }
    }

    private void pumpOutput() {
        ByteBuffer b = ByteBuffer.allocate(64 << 10);
        try {
            while (!closed) {
                b.clear();
                int n = channel.read(b);
                if (n < 0) {
                    break;
                }
                history.append(b.array(), 0, n);
            }
        } catch (IOException e) {
            if (!closed) {
                log.warn("console of VM {}: {}", vm, e.getMessage());
            }
        }
    }

    private void pumpInput() {
        try {
            while (!closed) {
                byte[] next = input.poll(1, TimeUnit.SECONDS);
                if (next == null) {
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
    }

    /** Queues {@code data} for the guest; refuses when the guest is not taking its input. */
    void write(byte[] data) throws HypervisorException {
        if (closed) {
            throw new HypervisorException("console input", "the console of VM " + vm + " is closed");
        }
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
