package dev.ferry.cluster.coordinator;

import com.google.protobuf.Message;
import dev.ferry.proto.cluster.Intent;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/**
 * One intent being carried out in this leader's term: its outcome, and the progress events
 * (migration events, drain progress) for whoever watches. Watchers joining late miss earlier
 * progress, never the outcome.
 */
final class IntentRun {
    final String id;
    final CompletableFuture<Intent> outcome = new CompletableFuture<>();
    private final List<Consumer<Message>> watchers = new CopyOnWriteArrayList<>();

    IntentRun(String id) {
        this.id = id;
    }

    void watch(Consumer<Message> watcher) {
        watchers.add(watcher);
    }

    void unwatch(Consumer<Message> watcher) {
        watchers.remove(watcher);
    }

    void emit(Message event) {
        for (Consumer<Message> w : watchers) {
            try {
                w.accept(event);
            } catch (RuntimeException e) {
                watchers.remove(w);
            }
        }
    }

    /** A run that already ended (a retried request finding a finished intent). */
    static IntentRun finished(Intent intent) {
        IntentRun r = new IntentRun(intent.getId());
        r.outcome.complete(intent);
        return r;
    }
}
