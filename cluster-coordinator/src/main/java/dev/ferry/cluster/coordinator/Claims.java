package dev.ferry.cluster.coordinator;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** One intent per VM at a time, within one leader's term. */
final class Claims {
    private final Map<String, String> busy = new ConcurrentHashMap<>();

    /** Claims {@code vm} for intent {@code id}; false if another intent has it. */
    boolean claim(String vm, String id) {
        String holder = busy.putIfAbsent(vm, id);
        return holder == null || holder.equals(id);
    }

    void unclaim(String vm, String id) {
        busy.remove(vm, id);
    }

    /** The intent that has {@code vm}, or null. */
    String claimedBy(String vm) {
        return busy.get(vm);
    }

    /** What a request on a busy VM is told. */
    String busy(String vm) {
        String by = claimedBy(vm);
        return "VM '" + vm + "' is busy" + (by == null ? "" : " with intent " + by) + "; try again when it is done";
    }
}
