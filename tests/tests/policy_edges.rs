//! Identities, policy, edges and alerts end to end: the real agent with a
//! configuration file, real servers and `curl` in network namespaces; one
//! plaintext flow allowed by a rule, one violating (its rule expired), one
//! TLS flow, read back through /metrics, /api/v1/edges, `plainsight edges`
//! and the alert log line.

use plainsight_tests::{
    Agent, Proc, Topology,
    agent::{Sample, cgroup_programs, free_port},
    capabilities::effective_caps,
    http,
    servers::{HTTP_PORT, HTTPS_PORT, HttpAndTls},
};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A config file in a temporary directory, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plainsight-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("config dir");
        let path = dir.join("plainsight.toml");
        std::fs::write(&path, text).expect("writing config");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn config(t: &Topology) -> String {
    format!(
        r#"
[identities]
"{client}/32" = "shop"
"{server}" = "web"

[[policy.allow]]
name = "web-plain-http"
owner = "team-web"
reason = "internal status page, TLS planned"
client = "shop"
server = "web"
ports = [{http}]
protocols = ["http"]

[[policy.allow]]
name = "old-v6-exception"
owner = "team-net"
reason = "was allowed during the v6 rollout"
server = "{server6}/128"
ports = [{http}]
expires = 2020-01-01

[log]
format = "json"
"#,
        client = t.client_ip,
        server = t.server_ip,
        server6 = t.server_ip6,
        http = HTTP_PORT,
    )
}

fn plainsight(args: &[&str]) -> Output {
    Command::new(plainsight_tests::plainsight_bin())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running plainsight")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    plainsight_tests::agent::find(samples, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .value
}

/// Waits until the agent has `n` live edges.
fn wait_edges(agent: &Agent, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = agent.get("/api/v1/edges").expect("GET /api/v1/edges");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("edges JSON");
        if v["edges"].as_array().map(Vec::len) == Some(n) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not {n} edges after 10 s: {body}\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn policy_names_allows_and_flags_flows_on_every_surface() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let cfg = ConfigFile::new("policy", &config(&t));
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(
        None,
        free_port(),
        &["--config", cfg.path(), "--cgroup", &cg],
    );

    // Attached, then down to no capability at all (cgroup hook, kernel >= 6.5).
    assert_eq!(cgroup_programs(&t.cgroup), 2);
    assert_eq!(
        effective_caps(agent.proc.pid()),
        0,
        "CapEff after attaching"
    );

    // Before any flow: one line that says why there is nothing, not a
    // bare header.
    let empty = text(&plainsight(&[
        "edges",
        "--addr",
        &format!("http://{}", agent.addr),
    ]));
    assert!(
        empty.starts_with("no edges yet: agent up for ")
            && empty.ends_with(
                " s, 0 flows classified (loopback excluded unless the agent runs with \
                 --include-loopback)\n"
            ),
        "{empty:?}"
    );

    let (server6, client6) = (t.server_ip6.to_string(), t.client_ip6.to_string());
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));
    t.curl(&format!("http://[{server6}]:{HTTP_PORT}/"));
    t.curl(&format!("https://{}:{HTTPS_PORT}/", t.server_ip));
    let edges = wait_edges(&agent, 3);

    // /metrics: identities, policy, rules; valid Prometheus text.
    // Kernel counters are still read without capabilities (map lookups on
    // held file descriptors); the series appears once its count is > 0.
    agent.wait_sample("plainsight_kernel_total", &[("counter", "tcp_packets")]);
    let http = HTTP_PORT.to_string();
    let m = agent.metrics();
    let flows = |client: &str, server: &str, port: &str, policy: &str| {
        value(
            &m,
            "plainsight_flows_total",
            &[
                ("client", client),
                ("server", server),
                ("server_port", port),
                ("policy", policy),
            ],
        )
    };
    assert_eq!(flows("shop", "web", &http, "allowed"), 1.0);
    assert_eq!(flows(&client6, &server6, &http, "violation"), 1.0);
    assert_eq!(flows("shop", "web", &HTTPS_PORT.to_string(), "ok"), 1.0);
    assert_eq!(value(&m, "plainsight_edges", &[]), 3.0);
    assert_eq!(value(&m, "plainsight_edges_dropped_total", &[]), 0.0);
    assert_eq!(
        value(&m, "plainsight_policy_rules", &[("state", "active")]),
        1.0
    );
    assert_eq!(
        value(&m, "plainsight_policy_rules", &[("state", "expired")]),
        1.0
    );
    let (_, body) = agent.get("/metrics").expect("metrics");
    plainsight_tests::prometheus::promtool_check_metrics(&body);

    // /api/v1/edges: the contract shape, violations first.
    let list = edges["edges"].as_array().expect("edges");
    let v = &list[0];
    assert_eq!(v["policy"], "violation");
    assert_eq!(
        (v["client"].as_str(), v["server"].as_str()),
        (Some(&*client6), Some(&*server6))
    );
    assert_eq!(
        (v["server_port"].as_u64(), v["protocol"].as_str()),
        (Some(u64::from(HTTP_PORT)), Some("http"))
    );
    assert_eq!(
        (v["encryption"].as_str(), v["flows"].as_u64()),
        (Some("plaintext"), Some(1))
    );
    assert_eq!(v["rule"], serde_json::Value::Null);
    assert_eq!(v["expired_rule"]["name"], "old-v6-exception");
    assert_eq!(v["client_addrs"], serde_json::json!([client6]));
    let a = &list[1];
    assert_eq!(
        (
            a["policy"].as_str(),
            a["client"].as_str(),
            a["server"].as_str()
        ),
        (Some("allowed"), Some("shop"), Some("web"))
    );
    assert_eq!(
        a["rule"],
        serde_json::json!({"name": "web-plain-http", "owner": "team-web",
            "reason": "internal status page, TLS planned", "expires": null})
    );
    assert_eq!(
        a["server_addrs"],
        serde_json::json!([t.server_ip.to_string()])
    );
    let ok = &list[2];
    assert_eq!(
        (ok["policy"].as_str(), ok["encryption"].as_str()),
        (Some("ok"), Some("tls"))
    );
    assert_eq!(ok["tls_versions"], serde_json::json!({"1.3": 1}));
    assert_eq!(ok["client_auth"], serde_json::json!({"server_only": 1}));
    assert_eq!(edges["dropped_flows"], 0);
    for key in ["reasons", "midstream_flows", "first_seen", "last_seen"] {
        assert!(!v[key].is_null(), "{key} in {v}");
    }
    let (_, only) = agent.get("/api/v1/edges?violations=true").expect("filter");
    let only: serde_json::Value = serde_json::from_str(&only).expect("json");
    assert_eq!(only["edges"].as_array().map(Vec::len), Some(1));

    // `plainsight edges`: the table, the JSON, the filter.
    let url = format!("http://{}", agent.addr);
    let out = plainsight(&["edges", "--addr", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = text(&out);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "CLIENT",
            "SERVER",
            "PORT",
            "PROTOCOL",
            "ENCRYPTION",
            "AUTH",
            "POLICY",
            "FLOWS",
            "LAST-SEEN"
        ]
    );
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!(
        rows[1][..8],
        [
            &*client6,
            &*server6,
            &*http,
            "http",
            "plaintext",
            "-",
            "violation",
            "1"
        ]
    );
    assert_eq!(
        rows[2][..8],
        [
            "shop",
            "web",
            &*http,
            "http",
            "plaintext",
            "-",
            "allowed",
            "1"
        ]
    );
    // curl without a client certificate, to a server that asks for none.
    assert_eq!(rows[3][5..7], ["server_only", "ok"], "{table}");
    for r in &rows[1..] {
        assert_eq!(r[9], "ago", "relative LAST-SEEN: {table}");
        assert!(r[8].ends_with('s'), "seconds ago: {table}");
    }
    let json = plainsight(&["edges", "--addr", &url, "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json");
    assert_eq!(parsed["edges"].as_array().map(Vec::len), Some(3));
    assert_eq!(parsed["edges"][1]["rule"]["name"], "web-plain-http");
    let viol = text(&plainsight(&["edges", "--addr", &url, "--violations"]));
    assert_eq!(viol.lines().count(), 2, "{viol}");
    assert!(viol.lines().nth(1).is_some_and(|l| l.contains("violation")));

    // The alert: one JSON line for the one violating edge, naming the
    // expired rule; and the startup warning about that rule.
    let log = agent.log_text();
    let alerts: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["event"] == "policy_violation")
        .collect();
    assert_eq!(alerts.len(), 1, "{log}");
    let al = &alerts[0];
    assert_eq!(
        (al["client"].as_str(), al["server"].as_str()),
        (Some(&*client6), Some(&*server6))
    );
    assert_eq!(
        (al["server_port"].as_u64(), al["protocol"].as_str()),
        (Some(u64::from(HTTP_PORT)), Some("http"))
    );
    assert_eq!(
        (al["encryption"].as_str(), al["rule"].as_str()),
        (Some("plaintext"), Some("old-v6-exception"))
    );
    assert_eq!(al["rule_expired"], "2020-01-01T00:00:00Z");
    assert_eq!(al["level"], "WARN");
    let warned = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|j| {
            j["msg"].as_str().is_some_and(|m| {
                m.starts_with(
                    r#"allow-rule "old-v6-exception" (owner team-net) expired at 2020-01-01T00:00:00Z"#,
                )
            })
        });
    assert!(warned, "no startup warning about the expired rule:\n{log}");

    let status = agent.terminate();
    assert!(
        status.success(),
        "SIGTERM exits 0 after dropping capabilities: {status}"
    );
}

#[test]
fn a_bad_config_stops_run_before_anything_is_attached() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let cfg = ConfigFile::new(
        "bad",
        "[identities]\n\"10.0.0.0/33\" = \"x\"\n[[policy.allow]]\nname = \"r\"\nowner = \"o\"\nreason = \"\"\nports = [80]\n",
    );
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    let port = free_port().to_string();
    let out = plainsight(&[
        "run",
        "--config",
        cfg.path(),
        "--cgroup",
        &cg,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(r#"identities."10.0.0.0/33": "10.0.0.0/33" is not a CIDR"#),
        "{err}"
    );
    assert!(err.contains("policy.allow[0].reason: is required"), "{err}");
    assert_eq!(cgroup_programs(&t.cgroup), 0, "nothing attached");
    assert!(!err.contains("attached"), "{err}");

    let check = plainsight(&["check-config", cfg.path()]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&check.stderr),
        err,
        "check-config and run say the same"
    );
    let good = plainsight(&[
        "check-config",
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/config/plainsight.toml")
            .display()
            .to_string(),
    ]);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

#[test]
fn edges_says_when_no_agent_answers() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = plainsight(&["edges", "--addr", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the plainsight agent at {url}")),
        "{err}"
    );
}

/// Logging into a closed pipe (a dead log shipper) must not stop the
/// agent: every line fails with EPIPE, classification and the API go on.
#[test]
fn a_dead_log_sink_does_not_stop_the_agent() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = Command::new(plainsight_tests::plainsight_bin())
        .args(["run", "--cgroup", &cg, "--listen", &addr.to_string()])
        // A line per flow, so the flow below writes into the dead pipe.
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting plainsight");
    drop(child.stderr.take());
    let mut agent = Proc::from_child(child, "plainsight run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http::get(None, addr, "/readyz"), Ok((200, _))) {
        assert!(
            agent.child.try_wait().expect("try_wait").is_none(),
            "the agent exited while its log sink was closed"
        );
        assert!(Instant::now() < deadline, "not ready after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http::get(None, addr, "/metrics").expect("metrics");
        let samples = plainsight_tests::agent::parse_metrics(&body);
        if plainsight_tests::agent::find(
            &samples,
            "plainsight_flows_total",
            &[("policy", "violation")],
        )
        .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no flow classified after 10 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
}
