package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import org.junit.jupiter.api.Test;

class RecordsTest {
    @Test
    void recordsOfThisSchemaVersionRoundTrip() {
        VmRecord vm = VmRecord.newBuilder()
                .setSchemaVersion(1)
                .setSpec(VmSpec.newBuilder().setName("web").setMemoryBytes(1 << 20))
                .setOwner("h1")
                .setEpoch(7)
                .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                .build();
        assertEquals(vm, Records.vm("/vms/web", Records.encode(vm)));
        HostRecord h = HostRecord.newBuilder()
                .setSchemaVersion(1)
                .setHostId("h1")
                .setEndpoint("127.0.0.1:1")
                .build();
        assertEquals(h, Records.host("/hosts/h1", Records.encode(h)));
        RunningRecord r = RunningRecord.newBuilder()
                .setSchemaVersion(1)
                .setHostId("h1")
                .setEpoch(7)
                .build();
        assertEquals(r, Records.running("/running/web", Records.encode(r)));
        Intent i = Intent.newBuilder()
                .setSchemaVersion(1)
                .setId("x")
                .setKind(IntentKind.INTENT_KIND_DRAIN)
                .build();
        assertEquals(i, Records.intent("/intents/x", Records.encode(i)));
    }

    @Test
    void aRecordOfAnotherSchemaVersionIsRefusedNotGuessedAt() {
        VmRecord future = VmRecord.newBuilder()
                .setSchemaVersion(2)
                .setOwner("h1")
                .setEpoch(3)
                .build();
        RecordException e = assertThrows(RecordException.class, () -> Records.vm("/vms/web", Records.encode(future)));
        assertEquals("cannot read /vms/web: schema version 2; this Ferry reads version 1", e.getMessage());
        VmRecord unversioned = VmRecord.newBuilder().setOwner("h1").build();
        assertThrows(RecordException.class, () -> Records.vm("/vms/web", Records.encode(unversioned)));
    }

    @Test
    void garbageAndEmptyNodesAreRefused() {
        RecordException garbage = assertThrows(
                RecordException.class,
                () -> Records.host("/hosts/h1", new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff}));
        assertTrue(
                garbage.getMessage().startsWith("cannot read /hosts/h1: not a record of this kind"),
                garbage.getMessage());
        assertThrows(RecordException.class, () -> Records.intent("/intents/x", new byte[0]));
    }

    @Test
    void namesThatCannotBePathSegmentsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ClusterPaths.vm("../x"));
        assertThrows(IllegalArgumentException.class, () -> ClusterPaths.host(""));
        assertThrows(IllegalArgumentException.class, () -> ClusterPaths.intent("a/b"));
        assertEquals("/intents/" + "a".repeat(200), ClusterPaths.intent("a".repeat(200)));
        assertEquals("ferry/prod", ClusterPaths.namespace("prod"));
    }
}
