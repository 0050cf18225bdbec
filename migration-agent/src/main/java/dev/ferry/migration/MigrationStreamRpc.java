package dev.ferry.migration;

import dev.ferry.proto.migration.MigrationProto;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.rpc.GrpcService;
import io.grpc.MethodDescriptor;

/** The agent-to-agent migration service, from migration.proto. */
public final class MigrationStreamRpc {
    public static final int PROTOCOL_VERSION = 1;
    /** Pages per window: a batch carries at most one window, 1 MiB of 4 KiB pages. */
    public static final int WINDOW_PAGES = 256;
    /** Most lanes one migration may open. */
    public static final int MAX_LANES = 64;

    public static final GrpcService SERVICE = GrpcService.of(MigrationProto.getDescriptor(), "MigrationStream");
    public static final MethodDescriptor<SenderFrame, ReceiverFrame> TRANSFER =
            SERVICE.method("Transfer", SenderFrame.class, ReceiverFrame.class);

    private MigrationStreamRpc() {}
}
