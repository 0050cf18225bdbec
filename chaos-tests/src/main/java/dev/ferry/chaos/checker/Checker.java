package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.History;
import java.util.List;

/** Reads a history and says which invariant it breaks; never looks at anything but the history. */
public interface Checker {
    /** I1 .. I5. */
    String invariant();

    List<Violation> check(History history);

    static String seconds(long nanos) {
        return String.format("%.3f s", nanos / 1e9);
    }
}
