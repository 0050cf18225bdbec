package dev.ferry.pki;

import java.time.Duration;
import java.time.Instant;

/**
 * Where a certificate stands in its lifetime, and what to tell the operator. A pure function of
 * the certificate's dates and the time, so `cluster status`, the daemons' start-up check and tests
 * agree.
 */
public enum Validity {
    NOT_YET_VALID,
    VALID,
    EXPIRING_SOON,
    EXPIRED;

    /** How long before expiry operators are warned by default (enough for a monthly rotation). */
    public static final Duration DEFAULT_WARNING = Duration.ofDays(30);

    public static Validity of(Instant notBefore, Instant notAfter, Instant now, Duration warnWithin) {
        if (now.isBefore(notBefore)) {
            return NOT_YET_VALID;
        }
        if (!now.isBefore(notAfter)) {
            return EXPIRED;
        }
        return now.plus(warnWithin).isBefore(notAfter) ? VALID : EXPIRING_SOON;
    }

    public boolean usable() {
        return this == VALID || this == EXPIRING_SOON;
    }

    /** One line for an operator, or the empty string when there is nothing to say. */
    public static String describe(String what, Instant notBefore, Instant notAfter, Instant now, Duration warnWithin) {
        return switch (of(notBefore, notAfter, now, warnWithin)) {
            case VALID -> "";
            case NOT_YET_VALID -> what + " is not valid before " + notBefore + " (is this host's clock right?)";
            case EXPIRED -> what + " expired at " + notAfter + "; issue a new one (ferry pki issue)";
            case EXPIRING_SOON ->
                what + " expires at " + notAfter + ", in "
                        + Duration.between(now, notAfter).toDays()
                        + " days; issue a new one (ferry pki issue) and restart its holder";
        };
    }
}
