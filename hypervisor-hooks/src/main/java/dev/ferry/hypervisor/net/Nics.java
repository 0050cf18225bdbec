package dev.ferry.hypervisor.net;

import dev.ferry.proto.vm.Nic;
import dev.ferry.proto.vm.NicModel;
import dev.ferry.proto.vm.VmSpec;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.random.RandomGenerator;
import java.util.regex.Pattern;

/**
 * The rules of a VM's network cards, pure: MAC syntax and generation, bridge names, the
 * {@code --nic} option, and the name of a card's tap device on a host.
 *
 * <p>A MAC is fixed once, when the VM is created ({@link #withMacs}), and travels in the spec:
 * the destination of a migration and a restart on another host give the guest the same card, so
 * its neighbours' ARP caches and the guest's own configuration stay right.
 */
public final class Nics {
    private Nics() {}

    /** QEMU's and libvirt's prefix (52:54:00): locally administered, unicast. */
    public static final String GENERATED_PREFIX = "52:54:00";

    private static final Pattern MAC = Pattern.compile("[0-9a-f]{2}(:[0-9a-f]{2}){5}");
    /** A Linux interface name: at most 15 bytes (IFNAMSIZ 16 with the NUL), no '/', ':' or space. */
    private static final Pattern BRIDGE = Pattern.compile("[A-Za-z0-9._-]{1,15}");

    /** Tap names are {@code TAP_PREFIX} + the MAC's 12 hex digits: 14 characters. */
    public static final String TAP_PREFIX = "ft";

    /**
     * The tap device of {@code nic} on whichever host runs its VM: {@code ft} and the MAC's twelve
     * hex digits ({@code ft525400a1b2c3}, 14 characters, within IFNAMSIZ's 15). Deterministic, so
     * an agent (or a restarted one) finds a VM's taps from its spec alone, and unique on a host
     * because MACs are: no two cards of one VM share one ({@link #problem}) and the coordinator
     * refuses a VM whose MAC another VM of the cluster has (two cards with one MAC on one L2
     * segment would break it anyway). The source and the destination of a migration use the same
     * name, each on its own host.
     */
    public static String tapName(Nic nic) {
        return TAP_PREFIX + nic.getMac().replace(":", "");
    }

    /** A MAC in the canonical form (lower case), or an IllegalArgumentException saying what is wrong. */
    public static String normalizeMac(String mac) {
        String m = mac.trim().toLowerCase(Locale.ROOT).replace('-', ':');
        if (!MAC.matcher(m).matches()) {
            throw new IllegalArgumentException("MAC '" + mac + "' is not six hex bytes like 52:54:00:12:34:56");
        }
        int first = Integer.parseInt(m.substring(0, 2), 16);
        if ((first & 1) != 0) {
            throw new IllegalArgumentException("MAC " + m + " is a multicast address (a card needs a unicast one)");
        }
        if (m.equals("00:00:00:00:00:00")) {
            throw new IllegalArgumentException("MAC 00:00:00:00:00:00 is not an address");
        }
        return m;
    }

    /** A fresh MAC under {@link #GENERATED_PREFIX}. */
    public static String generateMac(RandomGenerator random) {
        byte[] tail = new byte[3];
        random.nextBytes(tail);
        return GENERATED_PREFIX + ":" + HexFormat.ofDelimiter(":").formatHex(tail);
    }

    /**
     * {@code spec} with a MAC for every card that has none (not one in {@code taken}, nor one of its
     * other cards) and every given MAC in canonical form; IllegalArgumentException for a bad card.
     */
    public static VmSpec withMacs(VmSpec spec, Set<String> taken, RandomGenerator random) {
        Set<String> used = new HashSet<>(taken);
        for (Nic n : spec.getNicsList()) {
            if (!n.getMac().isEmpty()) {
                used.add(normalizeMac(n.getMac()));
            }
        }
        VmSpec.Builder b = spec.toBuilder();
        for (int i = 0; i < b.getNicsCount(); i++) {
            Nic n = b.getNics(i);
            String mac;
            if (n.getMac().isEmpty()) {
                do {
                    mac = generateMac(random);
                } while (!used.add(mac));
            } else {
                mac = normalizeMac(n.getMac());
            }
            b.setNics(i, n.toBuilder().setMac(mac));
        }
        VmSpec out = b.build();
        problem(out).ifPresent(p -> {
            throw new IllegalArgumentException(p);
        });
        return out;
    }

    /** What is wrong with the cards of {@code spec} as a host would run them, or empty. */
    public static Optional<String> problem(VmSpec spec) {
        Set<String> macs = new HashSet<>();
        List<Nic> nics = spec.getNicsList();
        for (int i = 0; i < nics.size(); i++) {
            Nic n = nics.get(i);
            String which = "NIC " + i;
            if (!BRIDGE.matcher(n.getBridge()).matches()) {
                return Optional.of(which + ": bridge '" + n.getBridge()
                        + "' is not an interface name (1-15 letters, digits, '.', '_', '-')");
            }
            if (n.getMac().isEmpty()) {
                return Optional.of(which + " has no MAC (the coordinator assigns one when the VM is created)");
            }
            String mac;
            try {
                mac = normalizeMac(n.getMac());
            } catch (IllegalArgumentException e) {
                return Optional.of(which + ": " + e.getMessage());
            }
            if (!mac.equals(n.getMac())) {
                return Optional.of(which + ": MAC " + n.getMac() + " must be written " + mac);
            }
            if (!macs.add(mac)) {
                return Optional.of(which + ": MAC " + mac + " is already used by another NIC of " + spec.getName());
            }
            if (n.getModel() == NicModel.UNRECOGNIZED) {
                return Optional.of(which + ": unknown model");
            }
        }
        return Optional.empty();
    }

    /** The bridges {@code spec}'s cards need on a host. */
    public static Set<String> bridges(VmSpec spec) {
        Set<String> out = new java.util.TreeSet<>();
        spec.getNicsList().forEach(n -> out.add(n.getBridge()));
        return out;
    }

    /**
     * One {@code --nic} value: {@code bridge=BR[,mac=MAC][,model=virtio|e1000]}; the MAC, if given,
     * is checked here, and left empty for the coordinator to assign otherwise.
     */
    public static Nic parse(String option) {
        Nic.Builder b = Nic.newBuilder();
        for (String part : option.split(",", -1)) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException(
                        "--nic " + option + ": expected key=value parts (bridge=BR[,mac=MAC][,model=virtio|e1000])");
            }
            String key = part.substring(0, eq).trim();
            String value = part.substring(eq + 1).trim();
            switch (key) {
                case "bridge" -> {
                    if (!BRIDGE.matcher(value).matches()) {
                        throw new IllegalArgumentException("--nic " + option + ": bridge '" + value
                                + "' is not an interface name (1-15 letters, digits, '.', '_', '-')");
                    }
                    b.setBridge(value);
                }
                case "mac" -> b.setMac(normalizeMac(value));
                case "model" ->
                    b.setModel(
                            switch (value.toLowerCase(Locale.ROOT)) {
                                case "virtio", "virtio-net", "virtio-net-pci" -> NicModel.NIC_MODEL_VIRTIO;
                                case "e1000" -> NicModel.NIC_MODEL_E1000;
                                default ->
                                    throw new IllegalArgumentException(
                                            "--nic " + option + ": model must be virtio or e1000, not '" + value + "'");
                            });
                default ->
                    throw new IllegalArgumentException(
                            "--nic " + option + ": unknown key '" + key + "' (bridge, mac, model)");
            }
        }
        if (b.getBridge().isEmpty()) {
            throw new IllegalArgumentException("--nic " + option + ": bridge=BR is required");
        }
        return b.build();
    }

    /** QEMU's device name for a card's model. */
    public static String qemuDevice(NicModel model) {
        return model == NicModel.NIC_MODEL_E1000 ? "e1000" : "virtio-net-pci";
    }
}
