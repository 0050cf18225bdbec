package dev.ferry.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.migration.MigrationStep;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/** JSON output for --json: stable keys, numbers as numbers. */
public final class Json {
    public static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private Json() {}

    public static String write(Object o) {
        try {
            return MAPPER.writeValueAsString(o);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The migration object of `ferry migrate --json` and `ferry demo --json`. */
    public static Map<String, Object> migration(MigrationSummary s) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vm", s.getVm());
        m.put("source", s.getSource());
        m.put("target", s.getTarget());
        m.put("status", status(s));
        m.put("totalMs", s.getTotalMs());
        m.put("downtimeMs", s.getDowntimeMs());
        m.put("rounds", s.getRounds());
        m.put("bytesTransferred", s.getBytesTransferred());
        m.put("memoryVerified", s.getMemoryVerified());
        m.put("migrationId", s.getMigrationId());
        m.put(
                "mode",
                s.getMode()
                        .name()
                        .replace("TRANSFER_MODE_", "")
                        .toLowerCase(Locale.ROOT)
                        .replace('_', '-'));
        m.put("ramBytes", s.getRamBytes());
        m.put("pagesSent", s.getPagesSent());
        m.put("epoch", s.getEpoch());
        m.put("verifyMs", s.getVerifyMs());
        m.put("forcedSwitchover", s.getForcedSwitchover());
        Map<String, Object> downtime = new LinkedHashMap<>();
        downtime.put("finalPagesMs", s.getFinalPagesMs());
        downtime.put("deviceStateMs", s.getDeviceStateMs());
        downtime.put("commitMs", s.getCommitMs());
        downtime.put("resumeMs", s.getResumeMs());
        m.put("downtime", downtime);
        m.put("deviceStateBytes", s.getDeviceStateBytes());
        if (s.getFailedStep() != MigrationStep.MIGRATION_STEP_INVALID) {
            m.put(
                    "failedStep",
                    s.getFailedStep().name().replace("MIGRATION_STEP_", "").toLowerCase(Locale.ROOT));
        }
        if (!s.getError().isEmpty()) {
            m.put("error", s.getError());
        }
        return m;
    }

    public static String status(MigrationSummary s) {
        return switch (s.getStatus()) {
            case MIGRATION_PHASE_COMPLETED -> "completed";
            case MIGRATION_PHASE_CANCELLED -> "cancelled";
            default -> "failed";
        };
    }
}
