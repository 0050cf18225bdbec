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

    private AccessPolicy(Map<String, Set<Role>> byMethod) {
        this.byMethod = Map.copyOf(byMethod);
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

    ServerInterceptor interceptor() {
        return new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(
                    ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                Optional<Identity> caller = Callers.current();
                Decision d = caller.isEmpty()
                        ? new Decision.Denied("no verified caller")
                        : decide(call.getMethodDescriptor().getFullMethodName(), caller.get());
                if (d instanceof Decision.Denied denied) {
                    call.close(Status.PERMISSION_DENIED.withDescription(denied.reason()), new Metadata());
                    return new ServerCall.Listener<>() {};
                }
                return next.startCall(call, headers);
            }
        };
    }

    public static final class Builder {
        private final Map<String, Set<Role>> byMethod = new HashMap<>();

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

        public AccessPolicy build() {
            return new AccessPolicy(byMethod);
        }
    }
}
