package dev.ferry.agent;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.wire.HostileBatches;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.Commit;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.DeviceStateChunk;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.rpc.Transport;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One seeded change to a recorded, valid migration's frames, as a hostile or broken sender (or a
 * corrupting network) would make it. A case is a list of these drawn from one seed, so a failing
 * case is replayed from its seed alone, and its list says what was done.
 *
 * <p>{@link #forges} tells the fuzz test's oracle which changes a sender could make on purpose with
 * a valid checksum (pages, counts, its own commit): after those, the destination may well hold other
 * memory than the source's, and only the source's own verification (the digest in Ready) stops the
 * guest from resuming with it. Every other change must never end in memory other than the source's.
 */
sealed interface FrameMutation {
    int PAGE_SIZE = 4096;
    int WINDOW = MigrationStreamRpc.WINDOW_PAGES;

    /** One frame of a migration's script: the lane that sends it, the frame, or bytes that replaced it. */
    record Step(int lane, SenderFrame frame, byte[] raw, byte[] pageData) {
        /** Lanes 0 and 1 are the migration's; lane 2 is a third call that no hello opened. */
        static final int STRANGER = 2;

        byte[] bytes() {
            return raw != null ? raw : frame.toByteArray();
        }

        Step withFrame(SenderFrame f) {
            return new Step(lane, f, null, pageData);
        }

        Step withRaw(byte[] bytes) {
            return new Step(lane, frame, bytes, pageData);
        }

        Step onLane(int l) {
            return new Step(l, frame, raw, pageData);
        }

        @Override
        public String toString() {
            return "lane " + lane + " " + (raw != null ? raw.length + " raw bytes" : frame.getBodyCase());
        }
    }

    /** The script being changed and what the sender does at its end. */
    final class Script {
        final List<Step> steps;
        /** The sender stays connected and silent at the end instead of closing its lanes. */
        boolean silent;
        /** The sender resets its lanes at the end instead of closing them. */
        boolean reset;
        /** Some change could have made the destination's memory differ on purpose (see {@link #forges}). */
        boolean forged;

        Script(List<Step> steps) {
            this.steps = new ArrayList<>(steps);
        }

        int at(int index) {
            return Math.floorMod(index, steps.size());
        }
    }

    void apply(Script s);

    /** True when a sender could make this change deliberately, checksums and counts included. */
    default boolean forges() {
        return false;
    }

    /** Sets one field of a frame (a path such as {@code pages.zero_runs[0].count}); resealed batches keep a valid checksum. */
    record SetField(int step, String path, Object value, boolean reseal) implements FrameMutation {
        @Override
        public void apply(Script s) {
            int i = s.at(step);
            Step st = s.steps.get(i);
            SenderFrame.Builder b = st.frame().toBuilder();
            if (!set(b, path, value)) {
                return; // the field is not there any more (an earlier change replaced the frame)
            }
            s.steps.set(i, st.withFrame(sealed(b, st, reseal)));
        }

        @Override
        public boolean forges() {
            return reseal
                    || path.startsWith("round_end.")
                    || path.startsWith("commit.")
                    || path.startsWith("switchover.");
        }
    }

    /** Removes, repeats, or adds a default element of a repeated field (a batch's zero runs). */
    record EditRepeated(int step, String path, int index, Edit edit, boolean reseal) implements FrameMutation {
        enum Edit {
            REMOVE,
            REPEAT,
            ADD_DEFAULT
        }

        @Override
        public void apply(Script s) {
            int i = s.at(step);
            Step st = s.steps.get(i);
            SenderFrame.Builder b = st.frame().toBuilder();
            int dot = path.lastIndexOf('.');
            Message.Builder owner = dot < 0 ? b : walk(b, path.substring(0, dot));
            if (owner == null) {
                return;
            }
            FieldDescriptor fd = owner.getDescriptorForType().findFieldByName(path.substring(dot + 1));
            if (fd == null || !fd.isRepeated()) {
                return;
            }
            int n = owner.getRepeatedFieldCount(fd);
            switch (edit) {
                case REMOVE -> {
                    if (n == 0) {
                        return;
                    }
                    List<Object> kept = new ArrayList<>();
                    for (int k = 0; k < n; k++) {
                        if (k != Math.floorMod(index, n)) {
                            kept.add(owner.getRepeatedField(fd, k));
                        }
                    }
                    owner.clearField(fd);
                    kept.forEach(v -> owner.addRepeatedField(fd, v));
                }
                case REPEAT -> {
                    if (n == 0) {
                        return;
                    }
                    owner.addRepeatedField(fd, owner.getRepeatedField(fd, Math.floorMod(index, n)));
                }
                case ADD_DEFAULT ->
                    owner.addRepeatedField(
                            fd,
                            fd.getJavaType() == FieldDescriptor.JavaType.MESSAGE
                                    ? owner.newBuilderForField(fd).build()
                                    : fd.getDefaultValue());
            }
            s.steps.set(i, st.withFrame(sealed(b, st, reseal)));
        }

        @Override
        public boolean forges() {
            return reseal;
        }
    }

    /** Changes a frame's bytes on the wire: cut short, a byte flipped, bytes appended. */
    record Garble(int step, Kind kind, int at, int value) implements FrameMutation {
        enum Kind {
            TRUNCATE,
            FLIP,
            APPEND
        }

        @Override
        public void apply(Script s) {
            int i = s.at(step);
            Step st = s.steps.get(i);
            byte[] b = st.bytes();
            byte[] out = switch (kind) {
                case TRUNCATE -> java.util.Arrays.copyOf(b, Math.floorMod(at, Math.max(1, b.length)));
                case FLIP -> {
                    byte[] c = b.clone();
                    if (c.length > 0) {
                        c[Math.floorMod(at, c.length)] ^= (byte) (value == 0 ? 1 : value);
                    }
                    yield c;
                }
                case APPEND -> {
                    byte[] c = java.util.Arrays.copyOf(b, b.length + 1 + Math.floorMod(at, 64));
                    SplittableRandom r = new SplittableRandom(value);
                    for (int k = b.length; k < c.length; k++) {
                        c[k] = (byte) r.nextInt(256);
                    }
                    yield c;
                }
            };
            s.steps.set(i, st.withRaw(out));
        }
    }

    record Drop(int step) implements FrameMutation {
        @Override
        public void apply(Script s) {
            s.steps.remove(s.at(step));
        }
    }

    record Duplicate(int step, int to) implements FrameMutation {
        @Override
        public void apply(Script s) {
            Step st = s.steps.get(s.at(step));
            s.steps.add(Math.floorMod(to, s.steps.size() + 1), st);
        }
    }

    record Move(int step, int to) implements FrameMutation {
        @Override
        public void apply(Script s) {
            Step st = s.steps.remove(s.at(step));
            s.steps.add(Math.floorMod(to, s.steps.size() + 1), st);
        }
    }

    /** Sends a frame on another lane, or on a third call that never said hello. */
    record Relane(int step, int lane) implements FrameMutation {
        @Override
        public void apply(Script s) {
            int i = s.at(step);
            s.steps.set(i, s.steps.get(i).onLane(lane));
        }
    }

    /** A frame the recorded migration never had, anywhere in the script: sent as it is, never held back. */
    record Inject(int at, int lane, SenderFrame frame) implements FrameMutation {
        @Override
        public void apply(Script s) {
            s.steps.add(Math.floorMod(at, s.steps.size() + 1), new Step(lane, frame, frame.toByteArray(), null));
        }

        @Override
        public boolean forges() {
            // A sender that commits on its own, or switches over without verification, could resume its
            // guest with whatever memory it sent.
            return frame.hasCommit() || frame.hasSwitchover();
        }
    }

    /** New contents for one page of a batch, raw, with a checksum that matches them: a lying sender. */
    record ForgePage(int step, int offset, int xor) implements FrameMutation {
        @Override
        public void apply(Script s) {
            int i = s.at(step);
            Step st = s.steps.get(i);
            if (st.pageData() == null
                    || st.pageData().length == 0
                    || !st.frame().hasPages()) {
                return;
            }
            byte[] forged = st.pageData().clone();
            forged[Math.floorMod(offset, forged.length)] ^= (byte) (xor == 0 ? 1 : xor);
            PageBatch.Builder pb = st.frame().getPages().toBuilder()
                    .setCompression(Compression.COMPRESSION_RAW)
                    .setData(ByteString.copyFrom(forged));
            PageBatch batch = HostileBatches.seal(pb, PAGE_SIZE, WINDOW, forged);
            s.steps.set(
                    i,
                    new Step(st.lane(), SenderFrame.newBuilder().setPages(batch).build(), null, forged));
        }

        @Override
        public boolean forges() {
            return true;
        }
    }

    /** Replaces a frame with one over the transport's message limit. */
    record Oversize(int step) implements FrameMutation {
        /** Made once: a device-state chunk one byte over the limit (the largest thing any case allocates). */
        static final byte[] FRAME = SenderFrame.newBuilder()
                .setDeviceState(DeviceStateChunk.newBuilder()
                        .setData(ByteString.copyFrom(new byte[Transport.MAX_MESSAGE_BYTES + 1])))
                .build()
                .toByteArray();

        @Override
        public void apply(Script s) {
            int i = s.at(step);
            s.steps.set(i, s.steps.get(i).withRaw(FRAME));
        }
    }

    /** The sender stops at a frame: it closes (or resets) its lanes there. */
    record EndAt(int step, boolean reset) implements FrameMutation {
        @Override
        public void apply(Script s) {
            int i = s.at(step);
            s.steps.subList(i, s.steps.size()).clear();
            s.reset |= reset;
        }
    }

    /** The sender stays connected and says nothing more: only the destination's deadlines end it. */
    record Silent() implements FrameMutation {
        @Override
        public void apply(Script s) {
            s.silent = true;
        }
    }

    /** Draws one change for {@code s} from {@code r}; rare ones (oversize, silence) cost the most time. */
    static FrameMutation draw(SplittableRandom r, Script s) {
        int n = s.steps.size();
        if (n == 0) {
            return new Inject(0, r.nextInt(3), injected(r));
        }
        int step = r.nextInt(n);
        int pick = r.nextInt(1000);
        if (pick < 330) {
            return setField(r, step, s.steps.get(step));
        }
        if (pick < 380) {
            boolean pages =
                    s.steps.get(step).raw() == null && s.steps.get(step).frame().hasPages();
            return new EditRepeated(
                    step,
                    pages ? "pages.zero_runs" : "hello.spec.disks",
                    r.nextInt(4),
                    EditRepeated.Edit.values()[r.nextInt(3)],
                    r.nextBoolean());
        }
        if (pick < 530) {
            return new Garble(step, Garble.Kind.values()[r.nextInt(3)], r.nextInt(1 << 20), r.nextInt(1, 256));
        }
        if (pick < 600) {
            return new Drop(step);
        }
        if (pick < 670) {
            return new Duplicate(step, r.nextInt(n + 1));
        }
        if (pick < 740) {
            return new Move(step, r.nextInt(n + 1));
        }
        if (pick < 780) {
            return new Relane(step, r.nextInt(3));
        }
        if (pick < 880) {
            return new Inject(r.nextInt(n + 1), r.nextInt(10) == 0 ? Step.STRANGER : r.nextInt(2), injected(r));
        }
        if (pick < 930) {
            return new ForgePage(step, r.nextInt(1 << 20), r.nextInt(1, 256));
        }
        if (pick < 985) {
            return new EndAt(step, r.nextBoolean());
        }
        if (pick < 992) {
            return new Oversize(step);
        }
        if (pick < 994) {
            return new Silent();
        }
        return new Relane(step, Step.STRANGER);
    }

    private static SenderFrame injected(SplittableRandom r) {
        SenderFrame.Builder f = SenderFrame.newBuilder();
        switch (r.nextInt(8)) {
            case 0 -> {} // no body at all
            case 1 ->
                f.setAbort(Abort.newBuilder()
                        .setStep(MigrationStep.MIGRATION_STEP_PRECOPY)
                        .setReason("fuzz")
                        .setCancelled(r.nextBoolean()));
            case 2 -> f.setCommit(Commit.newBuilder().setEpoch((long) u64(r, 2)));
            case 3 ->
                f.setSwitchover(
                        Switchover.newBuilder().setFinalRound((int) u32(r, 1)).setVerify(r.nextBoolean()));
            case 4 ->
                f.setRoundEnd(RoundEnd.newBuilder()
                        .setRound((int) u32(r, 1))
                        .setBatches((long) u64(r, 2))
                        .setPages((long) u64(r, 512))
                        .setFinal(r.nextBoolean()));
            case 5 -> {
                byte[] junk = new byte[r.nextInt(4096)];
                r.nextBytes(junk);
                f.setDeviceState(DeviceStateChunk.newBuilder()
                        .setData(ByteString.copyFrom(junk))
                        .setLast(r.nextBoolean()));
            }
            case 6 -> f.setPages(PageBatch.getDefaultInstance());
            default ->
                f.setPages(PageBatch.newBuilder()
                        .setRound((int) u32(r, 0))
                        .setBasePage((long) u64(r, 0))
                        .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                        .setCompression(Compression.COMPRESSION_RAW));
        }
        return f.build();
    }

    private static SetField setField(SplittableRandom r, int step, Step st) {
        List<String> leaves = new ArrayList<>();
        leaves(st.frame(), "", leaves);
        if (leaves.isEmpty()) {
            return new SetField(step, "commit.epoch", u64(r, 2), false);
        }
        String path = leaves.get(r.nextInt(leaves.size()));
        Object old = get(st.frame(), path);
        FieldDescriptor fd = leaf(st.frame(), path);
        Object value = switch (fd.getType()) {
            case UINT32, INT32 -> (int) u32(r, old instanceof Integer i ? i : 0);
            case UINT64, INT64 -> u64(r, old instanceof Long l ? l : 0);
            case BOOL -> !(old instanceof Boolean b && b);
            case STRING -> string(r, old instanceof String s ? s : "");
            case BYTES -> bytes(r, old instanceof ByteString b ? b : ByteString.EMPTY);
            case ENUM -> new int[] {0, 1, 2, 3, -1, 99}[r.nextInt(6)];
            default -> 0;
        };
        return new SetField(step, path, value, st.frame().hasPages() && r.nextBoolean());
    }

    /** Values that break unsigned and bounds checks: 0, ±1 around windows and guest size, 2^31, 2^32 - 1. */
    private static long u32(SplittableRandom r, long old) {
        long[] v = {0, 1, 2, 255, 256, 257, 1023, 1024, 1L << 31, (1L << 31) - 1, (1L << 32) - 1, old + 1, old - 1};
        return r.nextInt(8) == 0 ? r.nextInt() : v[r.nextInt(v.length)];
    }

    private static Object u64(SplittableRandom r, long old) {
        long[] v = {
            0,
            1,
            255,
            256,
            512,
            768,
            1023,
            1024,
            1280,
            1L << 31,
            1L << 32,
            1L << 40,
            Long.MIN_VALUE,
            -1L,
            -256L,
            old + 1,
            old - 1,
            old + WINDOW
        };
        return r.nextInt(8) == 0 ? r.nextLong() : v[r.nextInt(v.length)];
    }

    private static String string(SplittableRandom r, String old) {
        return switch (r.nextInt(5)) {
            case 0 -> "";
            case 1 -> old + "x";
            case 2 -> "other-vm";
            case 3 -> "x".repeat(10_000);
            default -> old.isEmpty() ? "\u0000" : old.substring(0, old.length() - 1) + "\u00e9";
        };
    }

    private static ByteString bytes(SplittableRandom r, ByteString old) {
        int n = old.size();
        return switch (r.nextInt(5)) {
            case 0 -> ByteString.EMPTY;
            case 1 -> old.substring(0, n == 0 ? 0 : r.nextInt(n));
            case 2 -> old.concat(ByteString.copyFrom(new byte[1 + r.nextInt(PAGE_SIZE)]));
            case 3 -> {
                byte[] b = old.toByteArray();
                if (b.length > 0) {
                    b[r.nextInt(b.length)] ^= (byte) r.nextInt(1, 256);
                }
                yield ByteString.copyFrom(b);
            }
            default -> {
                byte[] b = new byte[n];
                r.nextBytes(b);
                yield ByteString.copyFrom(b);
            }
        };
    }

    /** Paths of the scalar fields set in {@code m} and its sub-messages, repeated elements by index. */
    private static void leaves(Message m, String prefix, List<String> out) {
        for (FieldDescriptor fd : m.getDescriptorForType().getFields()) {
            String name = prefix + fd.getName();
            boolean message = fd.getJavaType() == FieldDescriptor.JavaType.MESSAGE;
            if (fd.isRepeated()) {
                for (int k = 0; k < m.getRepeatedFieldCount(fd); k++) {
                    if (message) {
                        leaves((Message) m.getRepeatedField(fd, k), name + "[" + k + "].", out);
                    }
                }
            } else if (message) {
                if (m.hasField(fd)) {
                    leaves((Message) m.getField(fd), name + ".", out);
                }
            } else {
                out.add(name);
            }
        }
    }

    private static FieldDescriptor leaf(Message m, String path) {
        int dot = path.lastIndexOf('.');
        Message owner = dot < 0 ? m : (Message) resolve(m, path.substring(0, dot));
        return owner.getDescriptorForType().findFieldByName(path.substring(dot + 1));
    }

    private static Object get(Message m, String path) {
        return resolve(m, path);
    }

    private static Object resolve(Message m, String path) {
        Object at = m;
        for (String part : path.split("\\.")) {
            Message cur = (Message) at;
            int bracket = part.indexOf('[');
            String name = bracket < 0 ? part : part.substring(0, bracket);
            FieldDescriptor fd = cur.getDescriptorForType().findFieldByName(name);
            at = bracket < 0
                    ? cur.getField(fd)
                    : cur.getRepeatedField(fd, Integer.parseInt(part.substring(bracket + 1, part.length() - 1)));
        }
        return at;
    }

    /** The builder of the message at {@code path} inside {@code b}, or null when it is not there. */
    private static Message.Builder walk(Message.Builder b, String path) {
        Message.Builder at = b;
        for (String part : path.split("\\.")) {
            int bracket = part.indexOf('[');
            String name = bracket < 0 ? part : part.substring(0, bracket);
            FieldDescriptor fd = at.getDescriptorForType().findFieldByName(name);
            if (fd == null || fd.getJavaType() != FieldDescriptor.JavaType.MESSAGE) {
                return null;
            }
            if (bracket < 0) {
                if (!fd.isRepeated() && !at.hasField(fd)) {
                    return null;
                }
                at = at.getFieldBuilder(fd);
            } else {
                int k = Integer.parseInt(part.substring(bracket + 1, part.length() - 1));
                if (k >= at.getRepeatedFieldCount(fd)) {
                    return null;
                }
                at = at.getRepeatedFieldBuilder(fd, k);
            }
        }
        return at;
    }

    private static boolean set(SenderFrame.Builder b, String path, Object value) {
        int dot = path.lastIndexOf('.');
        Message.Builder owner = dot < 0 ? b : walk(b, path.substring(0, dot));
        if (owner == null) {
            return false;
        }
        FieldDescriptor fd = owner.getDescriptorForType().findFieldByName(path.substring(dot + 1));
        if (fd == null) {
            return false;
        }
        Object v = fd.getType() == FieldDescriptor.Type.ENUM
                ? fd.getEnumType().findValueByNumberCreatingIfUnknown((Integer) value)
                : value;
        try {
            owner.setField(fd, v);
        } catch (IllegalArgumentException | ClassCastException e) {
            return false; // a value of another type than an earlier change left there
        }
        return true;
    }

    /** The frame built from {@code b}: a page batch with its checksum recomputed when {@code reseal}. */
    private static SenderFrame sealed(SenderFrame.Builder b, Step st, boolean reseal) {
        if (!reseal || !b.hasPages()) {
            return b.build();
        }
        byte[] data = st.pageData() == null ? new byte[0] : st.pageData();
        return b.setPages(HostileBatches.seal(b.getPagesBuilder(), PAGE_SIZE, WINDOW, data))
                .build();
    }
}
