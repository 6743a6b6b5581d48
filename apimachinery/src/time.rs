//! RFC 3339 times as Kubernetes writes them (`metav1.Time`: whole seconds, `Z`; `MicroTime` for
//! events and leases; nanoseconds in logs) and parses them (fractions and offsets allowed).

use std::time::SystemTime;

use jiff::fmt::temporal::DateTimePrinter;
use jiff::Timestamp;

fn print(t: SystemTime, precision: u8) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => DateTimePrinter::new()
            .precision(Some(precision))
            .timestamp_to_string(&ts),
        // Past jiff's range (years -9999..=9999) only through arithmetic on a hostile duration
        // (a grace period of i64::MAX seconds): clamp to the last representable instant, as
        // Kubernetes' own formatting does, rather than fail.
        Err(_) if t > SystemTime::UNIX_EPOCH => {
            let fraction = if precision == 0 {
                String::new()
            } else {
                format!(".{}", "9".repeat(usize::from(precision)))
            };
            format!("9999-12-31T23:59:59{fraction}Z")
        }
        Err(_) => print(SystemTime::UNIX_EPOCH, precision),
    }
}

/// `2026-11-24T21:49:09Z`: whole seconds, truncated (`metav1.Time`).
pub fn rfc3339(t: SystemTime) -> String {
    print(t, 0)
}

/// `2026-11-24T21:49:09.123456Z`: microseconds (`metav1.MicroTime`).
pub fn rfc3339_micros(t: SystemTime) -> String {
    print(t, 6)
}

/// `2026-11-24T21:49:09.123456789Z`: nanoseconds (container log lines).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    print(t, 9)
}

/// Parses an RFC 3339 timestamp (`2026-11-24T21:49:09Z`; fractional seconds and offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    s.trim().parse::<Timestamp>().ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_as_kubernetes_does() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_764_020_949, 123_456_789);
        assert_eq!(rfc3339(t), "2025-11-24T21:49:09Z");
        assert_eq!(rfc3339_micros(t), "2025-11-24T21:49:09.123456Z");
        assert_eq!(rfc3339_nanos(t), "2025-11-24T21:49:09.123456789Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn parses_what_clients_send() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_020_949);
        assert_eq!(parse_rfc3339("2025-11-24T21:49:09Z"), Some(t));
        assert_eq!(parse_rfc3339("2025-11-24t21:49:09z"), Some(t));
        assert_eq!(parse_rfc3339("2025-11-24T22:49:09+01:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2025-11-24T21:49:09.5Z"),
            Some(t + Duration::from_millis(500))
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-11-24T21:49:09",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        for secs in [0u64, 1, 59, 86_399, 951_782_400, 4_102_444_800] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
    }
}
