package dev.ferry.testkit;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.AgentActions;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * Real agent calls, with gates for fault injection and pacing:
 * <ul>
 *   <li>{@link #hold}: a CreateVm the predicate picks never reaches its agent; the calling thread
 *       hangs there (as if its coordinator froze mid-step) until it is interrupted;
 *   <li>{@link #pace}: a CreateVm the predicate picks waits until the test {@link #release}s it,
 *       then goes through; the gate counts how many such calls are in progress at once (waiting
 *       or on their way to the agent) and the most there ever were.
 * </ul>
 * Counts the CreateVm calls that went through.
 */
public final class GatedAgentActions extends ForwardingAgentActions {
    private volatile Predicate<CreateVmRequest> hold = r -> false;
    private volatile Predicate<CreateVmRequest> pace = r -> false;
    private final CountDownLatch held = new CountDownLatch(1);
    private final AtomicInteger creates = new AtomicInteger();
    private final Semaphore releases = new Semaphore(0);
    private final Object paced = new Object();
    private final List<String> arrivals = new ArrayList<>();
    private int waiting;
    private int inFlight;
    private int peakInFlight;

    public GatedAgentActions(AgentActions inner) {
        super(inner);
    }

    public void hold(Predicate<CreateVmRequest> which) {
        this.hold = which;
    }

    public void pace(Predicate<CreateVmRequest> which) {
        this.pace = which;
    }

    /** Lets {@code n} paced calls through (in the order they wait, roughly: a semaphore's). */
    public void release(int n) {
        releases.release(n);
    }

    public CountDownLatch held() {
        return held;
    }

    public int creates() {
        return creates.get();
    }

    /** Paced calls waiting for a release now. */
    public int waiting() {
        synchronized (paced) {
            return waiting;
        }
    }

    /** Paced calls in progress now (waiting, or on their way to the agent). */
    public int inFlight() {
        synchronized (paced) {
            return inFlight;
        }
    }

    /** The most paced calls there ever were in progress at once. */
    public int peakInFlight() {
        synchronized (paced) {
            return peakInFlight;
        }
    }

    /** The VMs of paced calls, in the order they arrived. */
    public List<String> arrivals() {
        synchronized (paced) {
            return List.copyOf(arrivals);
        }
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) {
        if (hold.test(request)) {
            held.countDown();
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new AgentCallException(Status.Code.CANCELLED, "interrupted", null);
        }
        if (pace.test(request)) {
            return paced(host, request);
        }
        creates.incrementAndGet();
        return inner.createVm(host, request);
    }

    private VmStatus paced(HostRecord host, CreateVmRequest request) {
        synchronized (paced) {
            arrivals.add(request.getSpec().getName());
            waiting++;
            inFlight++;
            peakInFlight = Math.max(peakInFlight, inFlight);
        }
        boolean released = false;
        try {
            releases.acquire();
            released = true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            synchronized (paced) {
                waiting--;
                if (!released) {
                    inFlight--;
                }
            }
        }
        if (!released) {
            throw new AgentCallException(Status.Code.CANCELLED, "interrupted", null);
        }
        try {
            creates.incrementAndGet();
            return inner.createVm(host, request);
        } finally {
            synchronized (paced) {
                inFlight--;
            }
        }
    }
}
