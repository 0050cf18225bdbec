package dev.ferry.cluster.store;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.LeaderTerm;
import dev.ferry.proto.cluster.Maintenance;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.util.function.ToIntFunction;

/**
 * The codec of the cluster's records: protobuf with a schema version that every reader checks.
 * A record of another version is refused with {@link RecordException}, never read half-right.
 */
public final class Records {
    private Records() {}

    /** The one schema version this Ferry writes and reads. */
    public static final int SCHEMA_VERSION = 1;

    public static byte[] encode(Message record) {
        return record.toByteArray();
    }

    public static HostRecord host(String path, byte[] data) {
        return decode(path, data, HostRecord.parser(), HostRecord::getSchemaVersion);
    }

    public static Maintenance maintenance(String path, byte[] data) {
        return decode(path, data, Maintenance.parser(), Maintenance::getSchemaVersion);
    }

    public static VmRecord vm(String path, byte[] data) {
        return decode(path, data, VmRecord.parser(), VmRecord::getSchemaVersion);
    }

    public static RunningRecord running(String path, byte[] data) {
        return decode(path, data, RunningRecord.parser(), RunningRecord::getSchemaVersion);
    }

    public static Intent intent(String path, byte[] data) {
        return decode(path, data, Intent.parser(), Intent::getSchemaVersion);
    }

    public static LeaderTerm leaderTerm(String path, byte[] data) {
        return decode(path, data, LeaderTerm.parser(), LeaderTerm::getSchemaVersion);
    }

    /**
     * A finished migration's record (`ferry report`). It is the agent API's message, with no schema
     * version of its own: it is shown to people and never decided on, so any version parses.
     */
    public static dev.ferry.proto.agent.MigrationRecord report(String path, byte[] data) {
        return decode(path, data, dev.ferry.proto.agent.MigrationRecord.parser(), r -> SCHEMA_VERSION);
    }

    static <T extends Message> T decode(String path, byte[] data, Parser<T> parser, ToIntFunction<T> version) {
        if (data == null || data.length == 0) {
            throw new RecordException(path, "empty record", null);
        }
        T record;
        try {
            record = parser.parseFrom(data);
        } catch (InvalidProtocolBufferException e) {
            throw new RecordException(path, "not a record of this kind (" + e.getMessage() + ")", e);
        }
        int v = version.applyAsInt(record);
        if (v != SCHEMA_VERSION) {
            throw new RecordException(
                    path, "schema version " + v + "; this Ferry reads version " + SCHEMA_VERSION, null);
        }
        return record;
    }
}
