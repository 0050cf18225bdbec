package dev.ferry.agent;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.proto.vm.VmSpec;
import java.nio.file.Path;
import java.time.Duration;

/** Real device state of a paused sim guest, for hand-driven senders whose destination must load it. */
final class SimDeviceState {
    private SimDeviceState() {}

    /** The device state of a sim guest of {@code spec}, made in {@code scratch} (a directory that is left behind). */
    static ByteString of(VmSpec spec, Path scratch) throws Exception {
        SimDriver driver = new SimDriver();
        VmInstance vm = driver.create(spec, new VmPaths(scratch.resolve("state-run"), scratch.resolve("state.ram")));
        try {
            vm.start();
            vm.pause();
            ByteString.Output bytes = ByteString.newOutput();
            vm.deviceState()
                    .save(
                            DeviceState.Scope.DEVICES,
                            chunk -> {
                                byte[] b = new byte[chunk.remaining()];
                                chunk.get(b);
                                bytes.write(b);
                            },
                            DeviceState.SaveLimits.of(Duration.ofSeconds(5)));
            return bytes.toByteString();
        } finally {
            vm.close();
            driver.close();
        }
    }
}
