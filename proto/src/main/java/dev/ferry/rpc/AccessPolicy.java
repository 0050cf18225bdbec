package dev.ferry.rpc;

import dev.ferry.pki.Identity;
import dev.ferry.pki.Role;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Which roles may call which method of a server. A server built by {@link Transport} refuses to
 * start unless its policy names every method of its services, so a method added later is closed
 * until someone decides who may call it. Checked against the role in the caller's verified
 * certificate; finer checks that depend on a request (only the source host the prepare named)
 * stay in the handlers, through {@link Callers}.
 */
public final class AccessPolicy {
    /** The outcome for one call: allowed, or denied with a reason the caller sees. */
    public sealed interface Decision {
        record Allowed() implements Decision {}

        record Denied(String reason) implements Decision {}
    }

    private final Map<String, Set<Role>> byMethod;
    /** Methods whose calls count against each caller's one budget, and that budget. */
    private final Set<String> limited;

    private final RateLimit limit;

    private AccessPolicy(Map<String, Set<Role>> byMethod, Set<String> limited, RateLimit limit) {
        this.byMethod = Map.copyOf(byMethod);
        this.limited = Set.copyOf(limited);
        this.limit = limit;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Pure: whether {@code caller} may call {@code fullMethodName}. */
    public Decision decide(String fullMethodName, Identity caller) {
        Set<Role> roles = byMethod.get(fullMethodName);
        if (roles == null) {
            return new Decision.Denied(fullMethodName + " is open to nobody");
        }
        if (!roles.contains(caller.role())) {
            return new Decision.Denied(fullMethodName + " needs the role "
                    + roles.stream().map(Role::token).sorted().toList() + "; " + caller + " is "
                    + caller.role().token());
        }
        return new Decision.Allowed();
    }

    /** The roles allowed to call {@code fullMethodName}, empty when it is not in the policy. */
    public Set<Role> rolesOf(String fullMethodName) {
        return byMethod.getOrDefault(fullMethodName, Set.of());
    }

    /** Throws when a method of {@code services} is not in this policy (checked at server start). */
    void requireCovers(List<ServerServiceDefinition> services) {
        List<String> missing = new ArrayList<>();
        for (ServerServiceDefinition s : services) {
            for (ServerMethodDefinition<?, ?> m : s.getMethods()) {
                if (!byMethod.containsKey(m.getMethodDescriptor().getFullMethodName())) {
                    missing.add(m.getMethodDescriptor().getFullMethodName());
                }
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalStateException("the access policy does not say who may call " + missing);
        }
    }

    /** Whether calls of {@code fullMethodName} count against the caller's rate limit. */
    public boolean limits(String fullMethodName) {
        return limited.contains(fullMethodName);
    }

    /** The rate limit on this policy's limited methods, per caller identity; empty when none. */
    public Optional<RateLimit> rateLimit() {
        return limited.isEmpty() ? Optional.empty() : Optional.ofNullable(limit);
    }

    /**
     * The check a server runs on every call: the role first, then (for limited methods) the
     * caller's own bucket. Each server gets its own buckets, keyed by the verified identity, so
     * one operator's loop does not lock out another operator or the agents.
     */
    ServerInterceptor interceptor() {
        Map<Identity, RateLimit.Bucket> buckets = new java.util.concurrent.ConcurrentHashMap<>();
        return new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(
                    ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                Optional<Identity> caller = Callers.current();
                String method = call.getMethodDescriptor().getFullMethodName();
                Decision d =
                        caller.isEmpty() ? new Decision.Denied("no verified caller") : decide(method, caller.get());
                if (d instanceof Decision.Denied denied) {
                    call.close(Status.PERMISSION_DENIED.withDescription(denied.reason()), new Metadata());
                    return new ServerCall.Listener<>() {};
                }
                if (limit != null && limited.contains(method)) {
                    long now = System.nanoTime();
                    long waitNanos = buckets.computeIfAbsent(caller.get(), id -> new RateLimit.Bucket(limit, now))
                            .take(now);
                    if (waitNanos > 0) {
                        call.close(
                                Status.RESOURCE_EXHAUSTED.withDescription(caller.get() + " made more than " + limit
                                        + " requests that change the cluster; retry in "
                                        + String.format(java.util.Locale.ROOT, "%.1f s", waitNanos / 1e9)),
                                new Metadata());
                        return new ServerCall.Listener<>() {};
                    }
                }
                return next.startCall(call, headers);
            }
        };
    }

    public static final class Builder {
        private final Map<String, Set<Role>> byMethod = new HashMap<>();
        private final Set<String> limited = new java.util.HashSet<>();
        private RateLimit limit;

        private Builder() {}

        /** {@code roles} may call {@code method} (adds to roles already allowed). */
        public Builder allow(MethodDescriptor<?, ?> method, Role first, Role... rest) {
            return allow(method.getFullMethodName(), first, rest);
        }

        /** {@code roles} may call each of {@code methods} of {@code service}. */
        public Builder allow(GrpcService service, List<String> methods, Role first, Role... rest) {
            for (String m : methods) {
                allow(service.fullMethodName(m), first, rest);
            }
            return this;
        }

        private Builder allow(String fullMethodName, Role first, Role... rest) {
            byMethod.merge(fullMethodName, EnumSet.of(first, rest), (a, b) -> {
                EnumSet<Role> all = EnumSet.copyOf(a);
                all.addAll(b);
                return all;
            });
            return this;
        }

        /** {@code roles} may call every method of {@code service}. */
        public Builder allowAll(GrpcService service, Role first, Role... rest) {
            for (MethodDescriptor<?, ?> m : service.descriptor().getMethods()) {
                allow(m, first, rest);
            }
            return this;
        }

        /**
         * Calls of {@code methods} count against one budget per caller identity, {@code limit}
         * (the same budget for every limited method of this policy). Enforced with mutual TLS,
         * where callers have identities; a plaintext (--insecure) server has none to key on.
         */
        public Builder limit(GrpcService service, List<String> methods, RateLimit limit) {
            if (this.limit != null && !this.limit.equals(limit)) {
                throw new IllegalArgumentException(
                        "one rate limit per policy: " + this.limit + " already, not " + limit);
            }
            this.limit = java.util.Objects.requireNonNull(limit, "limit");
            for (String m : methods) {
                limited.add(service.fullMethodName(m));
            }
            return this;
        }

        public AccessPolicy build() {
            for (String m : limited) {
                if (!byMethod.containsKey(m)) {
                    throw new IllegalStateException("rate limit on " + m + ", which nobody may call");
                }
            }
            return new AccessPolicy(byMethod, limited, limit);
        }
    }
}
