//! Wall-clock time as Unix nanoseconds, and the few formats plainsight
//! reads and writes: RFC 3339 timestamps, durations like `1h`, and "12s ago".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NS: i64 = 1_000_000_000;

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// RFC 3339 UTC with second precision, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(ts_ns: i64) -> String {
    rfc3339_secs(ts_ns.div_euclid(NS))
}

/// `rfc3339` of a time `i64` nanoseconds cannot hold (a policy rule's
/// expiry can be any date up to year 9999).
pub fn rfc3339_wide(ts_ns: i128) -> String {
    let secs = ts_ns.div_euclid(i128::from(NS));
    rfc3339_secs(i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }))
}

fn rfc3339_secs(secs: i64) -> String {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01 (the inverse).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `90s`, `30m`, `1h`, `7d`: a positive whole number and one unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"90s\", \"30m\", \"1h\" or \"7d\""))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{s:?} is not a duration: the unit must be s, m, h or d"
            ));
        }
    };
    if n == 0 {
        return Err(format!("{s:?}: the duration must be more than zero"));
    }
    Ok(Duration::from_secs(n.saturating_mul(unit_secs)))
}

/// How long ago `then_ns` was, for people: `12s ago`, `5m ago`, `3h ago`,
/// `2d ago`.
pub fn ago(then_ns: i64, now_ns: i64) -> String {
    let s = (now_ns - then_ns).max(0) / NS;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Parses the subset of RFC 3339 the API emits (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some((days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?) * NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999_999_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        let t = 1_700_000_000 * NS;
        assert_eq!(parse_rfc3339_utc(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339_utc("2023-11-14 22:13:20"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("1").unwrap_err().contains("unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("1.5h").is_err());
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(0, 12 * NS), "12s ago");
        assert_eq!(ago(0, 125 * NS), "2m ago");
        assert_eq!(ago(0, 7200 * NS), "2h ago");
        assert_eq!(ago(0, 3 * 86_400 * NS), "3d ago");
        assert_eq!(ago(5 * NS, 0), "0s ago", "clock skew is not negative");
    }
}
