package dev.ferry.agent;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Remembers the outcome of recent requests by id, so a retried request (same id) runs once and
 * gets the first attempt's answer.
 */
final class RequestLog<T> {
    /** The work of one request. */
    interface Work<T> {
        T run() throws AgentException;
    }

    private final int capacity;
    private final Map<String, CompletableFuture<T>> recent;

    RequestLog(int capacity) {
        this.capacity = capacity;
        this.recent = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, CompletableFuture<T>> eldest) {
                return size() > RequestLog.this.capacity;
            }
        };
    }

    T once(String requestId, Work<T> work) throws AgentException {
        if (requestId == null || requestId.isBlank()) {
            return work.run();
        }
        CompletableFuture<T> mine = new CompletableFuture<>();
        CompletableFuture<T> existing;
        synchronized (recent) {
            existing = recent.putIfAbsent(requestId, mine);
        }
        if (existing == null) {
            try {
                T result = work.run();
                mine.complete(result);
                return result;
            } catch (AgentException | RuntimeException e) {
                mine.completeExceptionally(e);
                throw e;
            }
        }
        try {
            return existing.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AgentException(io.grpc.Status.Code.CANCELLED, "interrupted");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof AgentException ae) {
                throw ae;
            }
            throw (RuntimeException) e.getCause();
        }
    }
}
