package dev.ferry.chaos.history;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A VM's record as a {@link Observations#RECORD} observation carries it: "owner=h epoch=e
 * desired=RUNNING phase=P", or "absent" when there is none.
 */
public record RecordView(boolean present, String owner, long epoch, String desired, String phase) {
    public static final RecordView ABSENT = new RecordView(false, "", 0, "", "");

    public static RecordView parse(String value) {
        if (value.equals("absent")) {
            return ABSENT;
        }
        Map<String, String> kv = new LinkedHashMap<>();
        for (String part : value.split(" ")) {
            int eq = part.indexOf('=');
            if (eq > 0) {
                kv.put(part.substring(0, eq), part.substring(eq + 1));
            }
        }
        return new RecordView(
                true,
                kv.getOrDefault("owner", ""),
                Long.parseLong(kv.getOrDefault("epoch", "0")),
                kv.getOrDefault("desired", ""),
                kv.getOrDefault("phase", ""));
    }

    public boolean desiredRunning() {
        return present && desired.equals("RUNNING");
    }

    public String value() {
        return present ? "owner=" + owner + " epoch=" + epoch + " desired=" + desired + " phase=" + phase : "absent";
    }
}
