package dev.ferry.cli;

import dev.ferry.rpc.Endpoint;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.Locale;

/**
 * The rule for the endpoint a daemon registers in ZooKeeper (an agent with --zk, every coordinator):
 * the address other hosts will dial, so it must be one they can reach.
 *
 * <ul>
 *   <li>{@code --advertise HOST:PORT} when given (a real port, not 0), otherwise the {@code --listen}
 *       address with the port actually bound.
 *   <li>Never a wildcard ({@code 0.0.0.0}, {@code ::}): that is where a daemon listens, not an
 *       address; listening on one needs {@code --advertise}.
 *   <li>Never loopback ({@code 127.0.0.0/8}, {@code ::1}, or a name that resolves only to loopback
 *       here, such as {@code localhost} or Debian's {@code 127.0.1.1} host name), unless
 *       {@code --single-machine} says every daemon of the cluster runs on this machine (what
 *       {@code ferry cluster up} starts). A loopback endpoint in ZooKeeper sends every other host
 *       to itself.
 *   <li>A name that does not resolve here passes (other hosts may resolve it).
 * </ul>
 */
final class AdvertisedEndpoint {
    private AdvertisedEndpoint() {}

    /**
     * The endpoint to advertise instead of the bound one, or null to advertise the bound one
     * (the listen address with the bound port). Throws a usage error when the rule refuses it.
     *
     * @param daemon "agent" or "coordinator", for the message
     */
    static Endpoint choose(String daemon, String listen, String advertise, boolean singleMachine) {
        Endpoint.Tcp listenAt = tcp("--listen", listen);
        if (advertise != null) {
            Endpoint.Tcp at = tcp("--advertise", advertise);
            if (at.port() == 0) {
                throw new CliException("--advertise needs the port other hosts connect to, not 0", 2);
            }
            check(daemon, "--advertise " + advertise, at.host(), singleMachine);
            return at;
        }
        if (isWildcard(listenAt.host())) {
            throw new CliException(
                    daemon + " listens on every address (--listen " + listen + "): pass --advertise HOST:PORT, the "
                            + "address other hosts reach this one at",
                    2);
        }
        check(daemon, "--listen " + listen, listenAt.host(), singleMachine);
        return null;
    }

    private static Endpoint.Tcp tcp(String option, String text) {
        Endpoint e;
        try {
            e = Endpoint.parse(text);
        } catch (IllegalArgumentException ex) {
            throw new CliException(option + ": " + ex.getMessage(), 2);
        }
        if (!(e instanceof Endpoint.Tcp t)) {
            throw new CliException(option + " must be HOST:PORT, got '" + text + "'", 2);
        }
        return t;
    }

    private static void check(String daemon, String what, String host, boolean singleMachine) {
        if (isWildcard(host)) {
            throw new CliException(
                    what + " is a wildcard address, not one other hosts can connect to: advertise this " + daemon
                            + "'s own address",
                    2);
        }
        if (!singleMachine && isLoopback(host)) {
            throw new CliException(
                    what + " is a loopback address: other hosts of the cluster would connect to themselves. "
                            + "Advertise an address they reach this " + daemon + " at (--advertise HOST:PORT), or "
                            + "pass --single-machine if every daemon of this cluster runs on this machine",
                    2);
        }
    }

    static boolean isWildcard(String host) {
        String h = host.toLowerCase(Locale.ROOT);
        if (h.equals("0.0.0.0") || h.equals("::") || h.equals("*") || h.isEmpty()) {
            return true;
        }
        InetAddress literal = literal(h);
        return literal != null && literal.isAnyLocalAddress();
    }

    /** Loopback literal, {@code localhost}, or a name whose every address here is loopback. */
    static boolean isLoopback(String host) {
        String h = host.toLowerCase(Locale.ROOT);
        if (h.equals("localhost") || h.endsWith(".localhost")) {
            return true;
        }
        InetAddress literal = literal(h);
        if (literal != null) {
            return literal.isLoopbackAddress();
        }
        try {
            InetAddress[] all = InetAddress.getAllByName(h);
            return all.length > 0 && Arrays.stream(all).allMatch(InetAddress::isLoopbackAddress);
        } catch (UnknownHostException e) {
            return false; // not known here; other hosts may know it
        }
    }

    /** The address when {@code h} is an IPv4 or IPv6 literal (no name lookup), else null. */
    private static InetAddress literal(String h) {
        boolean v4 = h.matches("[0-9.]+");
        boolean v6 = h.indexOf(':') >= 0 && h.matches("[0-9a-f:.%]+");
        if (!v4 && !v6) {
            return null;
        }
        try {
            return InetAddress.getByName(h); // a literal: parsed, never looked up
        } catch (UnknownHostException e) {
            return null;
        }
    }
}
