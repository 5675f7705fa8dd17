//! The standard `process_*` metrics (CPU, RSS, start time, open fds), read
//! from /proc/self at each scrape. prometheus-client has no process
//! collector; dashboards and `kubectl top`-style panels expect these names.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

#[derive(Debug)]
pub struct ProcessCollector;

/// What /proc/self/stat says, in clock ticks and pages as the kernel keeps them.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    start_ticks_after_boot: u64,
    rss_pages: u64,
}

/// Parses /proc/PID/stat. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest starts at field 3 (state): field N is rest[N - 3].
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks_after_boot: field(22)?,
        rss_pages: field(24)?,
    })
}

/// The `btime` line of /proc/stat: boot time in seconds since the epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

#[derive(Debug, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    start_time_seconds: f64,
    open_fds: u64,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "tick counts stay far below 2^52"
)]
fn sample() -> Option<Sample> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let ticks = sysconf(libc::_SC_CLK_TCK)? as f64;
    let page = sysconf(libc::_SC_PAGESIZE)?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(Sample {
        cpu_seconds: (stat.utime_ticks + stat.stime_ticks) as f64 / ticks,
        resident_bytes: stat.rss_pages * page,
        start_time_seconds: boot as f64 + stat.start_ticks_after_boot as f64 / ticks,
        open_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // /proc unreadable (an odd sandbox): no process metrics rather than
        // a failed scrape.
        let Some(s) = sample() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            // The counter encoder appends `_total`.
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        #[expect(
            clippy::cast_possible_wrap,
            reason = "byte and fd counts stay far below 2^63"
        )]
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes as i64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds as i64,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let start = ConstGauge::new(s.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/stat of a real python3 that renamed itself `a) b` with
    /// prctl(PR_SET_NAME), read on Linux 6.18.
    const STAT: &str = "30843 (a) b) R 30841 30841 23886 0 -1 4194304 912 0 4 0 1 0 0 0 20 0 1 0 \
                        995454 14508032 2169 18446744073709551615 4321280 7148169 \
                        140735987372304 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0 9723336 \
                        11027064 193720320 140735987374692 140735987374828 140735987374828 \
                        140735987376103 0\n";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                utime_ticks: 1,
                stime_ticks: 0,
                start_ticks_after_boot: 995_454,
                rss_pages: 2169,
            })
        );
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(parse_stat(&STAT[..60]), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_comes_from_btime() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764230400\nprocesses 9\n"),
            Some(1_764_230_400)
        );
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let s = sample().expect("/proc/self is readable");
        assert!(s.resident_bytes > 1 << 20, "RSS {} bytes", s.resident_bytes);
        assert!(s.open_fds >= 3, "stdin, stdout, stderr: {}", s.open_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 3600.0,
            "started at {} (now {now})",
            s.start_time_seconds
        );
        assert!(s.cpu_seconds >= 0.0);
    }
}
