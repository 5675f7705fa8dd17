use super::*;

/// A registry with every family populated, as a running agent has it.
fn populated() -> Registry {
    let mut reg = Registry::default();
    let m = Metrics::register(&mut reg);
    m.flows
        .get_or_create(&FlowLabels {
            client: "checkout".into(),
            server: "rds-billing".into(),
            server_port: 5432,
            protocol: "postgres",
            encryption: "plaintext",
            policy: "violation",
        })
        .inc();
    m.tls_flows
        .get_or_create(&TlsLabels {
            client: "fd77::1".into(),
            server: "fd77::2".into(),
            server_port: 8443,
            version: "1.3",
        })
        .inc();
    m.flow_reasons
        .get_or_create(&ReasonLabels {
            client: "other".into(),
            server: "other".into(),
            server_port: 0,
            protocol: "postgres",
            encryption: "plaintext",
            reason: "cleartext_credentials",
        })
        .inc();
    m.kernel
        .get_or_create(&KernelLabels { counter: "packets" })
        .inc_by(7);
    m.programs_attached
        .get_or_create(&HookLabels { hook: "cgroup" })
        .set(2);
    m.policy_rules
        .get_or_create(&PolicyRuleLabels { state: "active" })
        .set(1);
    m.edges.set(3);
    m.edges_dropped.inc();
    reg
}

#[test]
fn prometheus_text_is_the_contract() {
    let text = prometheus_text(&openmetrics_text(&populated()).expect("encode"));
    for line in [
        "# TYPE plainsight_flows_total counter",
        r#"plainsight_flows_total{client="checkout",server="rds-billing",server_port="5432",protocol="postgres",encryption="plaintext",policy="violation"} 1"#,
        "# TYPE plainsight_tls_flows_total counter",
        r#"plainsight_tls_flows_total{client="fd77::1",server="fd77::2",server_port="8443",version="1.3"} 1"#,
        r#"plainsight_flow_reasons_total{client="other",server="other",server_port="0",protocol="postgres",encryption="plaintext",reason="cleartext_credentials"} 1"#,
        "plainsight_events_received_total 0",
        "plainsight_events_lost_total 0",
        "plainsight_events_malformed_total 0",
        r#"plainsight_kernel_total{counter="packets"} 7"#,
        "plainsight_flow_table_capacity 0",
        r#"plainsight_programs_attached{hook="cgroup"} 2"#,
        "# TYPE plainsight_edges gauge",
        "plainsight_edges 3",
        "# TYPE plainsight_edges_dropped_total counter",
        "plainsight_edges_dropped_total 1",
        "# TYPE plainsight_edges_recycled_total counter",
        "plainsight_edges_recycled_total 0",
        r#"plainsight_policy_rules{state="active"} 1"#,
        "# TYPE plainsight_alerts_total counter",
        r#"plainsight_alerts_total{outcome="logged"} 0"#,
        r#"plainsight_alerts_total{outcome="suppressed"} 0"#,
        "# TYPE plainsight_build_info gauge",
        &format!(
            r#"plainsight_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("# EOF"), "OpenMetrics only");
}

/// `promtool check metrics` on `text` (Debian's `prometheus`, installed
/// by `cargo xtask setup`).
fn promtool_check(text: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running promtool (cargo xtask setup installs Debian's `prometheus`)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    child.wait_with_output().expect("promtool")
}

/// promtool parses and lints the text a scraper without OpenMetrics gets.
#[test]
fn promtool_accepts_the_prometheus_text() {
    let text = prometheus_text(&openmetrics_text(&populated()).expect("encode"));
    let out = promtool_check(&text);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// And the check is real: it rejects the OpenMetrics text as 0.0.4.
#[test]
fn promtool_rejects_openmetrics_served_as_prometheus_text() {
    let text = openmetrics_text(&populated()).expect("encode");
    assert!(!promtool_check(&text).status.success());
}

/// The kernel's readings become counter deltas: the eviction count is a
/// running maximum, so a reading that repeats it (or lags) adds nothing.
#[test]
fn kernel_readings_are_published_as_deltas() {
    let m = Metrics::register(&mut Registry::default());
    let evicted = || {
        m.kernel
            .get_or_create(&KernelLabels {
                counter: FLOWS_EVICTED,
            })
            .get()
    };
    m.publish_flow_table(10, 4);
    m.publish_flow_table(12, 4);
    m.publish_flow_table(3, 9);
    assert_eq!(m.flow_table_entries.get(), 3);
    assert_eq!(m.flow_table_evictions.get(), 9);
    assert_eq!(evicted(), 9);

    let mut last = [0u64; Stat::COUNT as usize];
    let mut now = last;
    now[Stat::EventsLost as usize] = 5;
    m.publish_kernel_stats(&now, &mut last);
    now[Stat::EventsLost as usize] = 7;
    m.publish_kernel_stats(&now, &mut last);
    assert_eq!(m.events_lost.get(), 7);
    assert_eq!(last, now);

    m.publish_ring_reading(3, 1);
    m.publish_ring_reading(2, 0);
    assert_eq!((m.events_received.get(), m.events_malformed.get()), (5, 1));
}
