package dev.ferry.rpc;

import com.google.protobuf.DescriptorProtos.FileOptions;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Message;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Finds the generated Java class of a protobuf message descriptor, by protoc's naming rules. */
final class MessageTypes {
    private static final Map<String, Message> DEFAULTS = new ConcurrentHashMap<>();

    private MessageTypes() {}

    static Message defaultInstance(Descriptors.Descriptor type) {
        return DEFAULTS.computeIfAbsent(type.getFullName(), n -> load(type));
    }

    static String javaClassName(Descriptors.Descriptor type) {
        Descriptors.FileDescriptor file = type.getFile();
        FileOptions options = file.getOptions();
        String pkg = options.hasJavaPackage() ? options.getJavaPackage() : file.getPackage();
        StringBuilder nested = new StringBuilder(type.getName());
        for (Descriptors.Descriptor outer = type.getContainingType();
                outer != null;
                outer = outer.getContainingType()) {
            nested.insert(0, outer.getName() + "$");
        }
        String prefix = pkg.isEmpty() ? "" : pkg + ".";
        if (options.getJavaMultipleFiles()) {
            return prefix + nested;
        }
        return prefix + outerClassName(file) + "$" + nested;
    }

    private static String outerClassName(Descriptors.FileDescriptor file) {
        if (file.getOptions().hasJavaOuterClassname()) {
            return file.getOptions().getJavaOuterClassname();
        }
        String base = file.getName();
        base = base.substring(base.lastIndexOf('/') + 1);
        if (base.endsWith(".proto")) {
            base = base.substring(0, base.length() - ".proto".length());
        }
        StringBuilder camel = new StringBuilder();
        boolean upper = true;
        for (char c : base.toCharArray()) {
            if (c == '_' || c == '-' || c == '.') {
                upper = true;
            } else if (upper) {
                camel.append(String.valueOf(c).toUpperCase(Locale.ROOT));
                upper = false;
            } else {
                camel.append(c);
            }
        }
        String name = camel.toString();
        for (Descriptors.Descriptor m : file.getMessageTypes()) {
            if (m.getName().equals(name)) {
                return name + "OuterClass";
            }
        }
        return name;
    }

    private static Message load(Descriptors.Descriptor type) {
        String name = javaClassName(type);
        try {
            Class<?> cls = Class.forName(name, true, MessageTypes.class.getClassLoader());
            Object instance = cls.getMethod("getDefaultInstance").invoke(null);
            Message message = (Message) instance;
            if (!message.getDescriptorForType().getFullName().equals(type.getFullName())) {
                throw new IllegalStateException(
                        name + " describes " + message.getDescriptorForType().getFullName());
            }
            return message;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("no generated class " + name + " for message " + type.getFullName(), e);
        }
    }
}
