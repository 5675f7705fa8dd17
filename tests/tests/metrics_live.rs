//! The live agent's `/metrics` formats and its bounded edges, end to end:
//!
//! - content negotiation: a scraper asking for OpenMetrics the way
//!   Prometheus does gets OpenMetrics (and a real Prometheus ingests it),
//!   anything else gets Prometheus text 0.0.4 that `promtool check metrics`
//!   accepts;
//! - the cardinality cap (`edges.max`) and idle expiry
//!   (`edges.idle_timeout`) with real connections: edges over the cap fold
//!   into `other`, the series a real Prometheus stores stay bounded, idle
//!   edges leave the API while their counters stay, and once the cap is
//!   full new edges take the places of the idle ones.

use plainsight_tests::{
    Agent, Side, Topology, WorkDir,
    agent::{Sample, find, parse_metrics},
    prometheus::{Prometheus, promtool_check_metrics},
    servers::{HTTP_PORT, HTTPS_PORT, HttpAndTls},
};
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// What Prometheus 2.x sends when it scrapes (`scrapeAcceptHeader` in its
/// scrape package): OpenMetrics preferred, text 0.0.4 as the fallback.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `GET /metrics` with `curl` from the host (the agent's API is on the
/// host's loopback; the agent watches only the test cgroup): (content type,
/// body).
fn scrape(agent: &Agent, accept: Option<&str>) -> (String, String) {
    let url = format!("http://{}/metrics", agent.addr);
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--fail",
        "--max-time",
        "5",
        "-w",
        "\n%{content_type}",
    ]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = cmd.arg(&url).output().expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, content_type) = text.rsplit_once('\n').expect("content type line");
    (content_type.to_owned(), body.to_owned())
}

fn rules() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/plainsight-rules.yml")
}

#[test]
fn metrics_speak_openmetrics_to_prometheus_and_text_to_everyone_else() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let agent = Agent::on_cgroup(&t);
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));
    t.curl(&format!("https://{}:{HTTPS_PORT}/", t.server_ip));
    agent.wait_sample("plainsight_tls_flows_total", &[("version", "1.3")]);

    let (kind, om) = scrape(&agent, Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        kind,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(
        om.ends_with("\n# EOF\n"),
        "OpenMetrics ends with # EOF:\n{om}"
    );
    assert_eq!(om.matches("# EOF").count(), 1);
    // OpenMetrics names the counter family without `_total`, its samples with.
    assert!(om.contains("# TYPE plainsight_flows counter\n"), "{om}");
    assert!(om.contains("# TYPE plainsight_build info\n"), "{om}");
    let om_samples = parse_metrics(&om);
    assert!(
        find(
            &om_samples,
            "plainsight_flows_total",
            &[("policy", "violation")]
        )
        .is_some()
    );

    // No Accept header (curl sends */*): text 0.0.4, which promtool checks.
    let (kind, text) = scrape(&agent, None);
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    assert!(text.contains("# TYPE plainsight_flows_total counter\n"));
    promtool_check_metrics(&text);
    let (kind, _) = scrape(&agent, Some("text/plain;version=0.0.4"));
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");

    // A real Prometheus, which sends PROMETHEUS_ACCEPT and parses the
    // answer by its content type, so with its strict OpenMetrics parser
    // (a missing `# EOF` or a bad line fails the whole scrape: up = 0).
    let prom = Prometheus::start(agent.addr, &[&rules()]);
    prom.wait_for("up", Duration::from_secs(15), |r| {
        r.len() == 1 && r[0].value == 1.0
    });
    let flows = prom.query(r#"plainsight_flows_total{encryption="plaintext"}"#);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert_eq!(flows[0].labels["server_port"], HTTP_PORT.to_string());
    assert_eq!(prom.query("plainsight_build_info").len(), 1);
    assert_eq!(
        prom.query(r#"plainsight_alerts_total{outcome="logged"}"#)[0].value,
        1.0,
        "one alert line for the one violating edge"
    );
}

/// `config` in a temporary directory.
fn config_file(text: &str) -> (WorkDir, String) {
    let dir = WorkDir::new("config");
    let path = dir.join("plainsight.toml");
    std::fs::write(&path, text).expect("writing the config");
    let path = path.to_str().expect("utf-8").to_owned();
    (dir, path)
}

fn edges(agent: &Agent) -> serde_json::Value {
    let (status, body) = agent.get("/api/v1/edges").expect("GET /api/v1/edges");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("edges JSON")
}

/// (client, server, server_port) of each listed edge.
fn listed(v: &serde_json::Value) -> Vec<(String, String, u64)> {
    v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["client"].as_str().unwrap_or_default().to_owned(),
                e["server"].as_str().unwrap_or_default().to_owned(),
                e["server_port"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn flow_series(samples: &[Sample]) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.name == "plainsight_flows_total")
        .collect()
}

/// Waits until the agent has classified `n` flows in all.
fn wait_flows(agent: &Agent, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: f64 = flow_series(&agent.metrics()).iter().map(|s| s.value).sum();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{got} of {n} flows after 10 s:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const EXTRA_HTTP_PORT: u16 = 8081;

#[test]
fn the_edge_cap_bounds_series_and_idle_edges_leave_the_api_not_the_counters() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let extra = EXTRA_HTTP_PORT.to_string();
    let _more = t.spawn(
        Side::Server,
        false,
        &["python3", "-m", "http.server", &extra, "--bind", "::"],
    );
    t.wait_listening(EXTRA_HTTP_PORT);
    let (_dir, cfg) = config_file("[edges]\nmax = 3\nidle_timeout = \"2s\"\n");
    let agent = Agent::on_cgroup_with(&t, &["--config", &cfg]);
    let prom = Prometheus::start(agent.addr, &[&rules()]);

    // Five distinct edges, one at a time so the admitted three are known.
    let (v4, v6) = (t.server_ip.to_string(), format!("[{}]", t.server_ip6));
    let urls = [
        format!("http://{v4}:{HTTP_PORT}/"),
        format!("http://{v6}:{HTTP_PORT}/"),
        format!("https://{v4}:{HTTPS_PORT}/"),
        format!("https://{v6}:{HTTPS_PORT}/"),
        format!("http://{v4}:{EXTRA_HTTP_PORT}/"),
    ];
    for (i, url) in urls.iter().enumerate() {
        t.curl(url);
        wait_flows(&agent, (i + 1) as f64);
    }

    let m = agent.metrics();
    let series = flow_series(&m);
    let named: Vec<_> = series
        .iter()
        .filter(|s| s.labels["client"] != "other")
        .collect();
    assert_eq!(named.len(), 3, "the cap admits three edges: {series:#?}");
    let others: Vec<_> = series
        .iter()
        .filter(|s| s.labels["client"] == "other")
        .map(|s| {
            (
                s.labels["server"].as_str(),
                s.labels["server_port"].as_str(),
                s.labels["protocol"].as_str(),
                s.labels["policy"].as_str(),
                s.value,
            )
        })
        .collect();
    assert_eq!(
        others.len(),
        2,
        "one `other` per (protocol, encryption, policy): {series:#?}"
    );
    assert!(
        others.contains(&("other", "0", "tls", "ok", 1.0)),
        "{others:?}"
    );
    assert!(
        others.contains(&("other", "0", "http", "violation", 1.0)),
        "{others:?}"
    );
    assert_eq!(agent.value("plainsight_edges_dropped_total", &[]), 2.0);
    let api = edges(&agent);
    assert_eq!(api["dropped_flows"], 2);
    assert_eq!(listed(&api).len(), 5, "three edges and two `other`: {api}");

    // What Prometheus stores is bounded the same way.
    let stored = prom.wait_for(
        "count by (client) (plainsight_flows_total)",
        Duration::from_secs(15),
        |r| r.iter().map(|s| s.value).sum::<f64>() == 5.0,
    );
    let by_client: Vec<(&str, f64)> = stored
        .iter()
        .map(|s| (s.labels["client"].as_str(), s.value))
        .collect();
    assert!(by_client.contains(&("other", 2.0)), "{by_client:?}");
    assert_eq!(
        by_client.len(),
        3,
        "two real clients (v4, v6) and `other`: {by_client:?}"
    );

    // Idle for more than 2 s (swept once a second): gone from the API and
    // the edges gauge, still on /metrics with the same counts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed(&edges(&agent)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "idle edges still listed after 10 s: {}",
            edges(&agent)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let after = agent.metrics();
    assert_eq!(agent.value("plainsight_edges", &[]), 0.0);
    for s in &series {
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let now = find(&after, &s.name, &labels).unwrap_or_else(|| panic!("{s:?} vanished"));
        assert_eq!(now.value, s.value, "counter {s:?} changed");
    }

    // The cap is full and every admitted edge idle: a new edge takes the
    // place of the edge idle longest (the first, `urls[0]`), whose series
    // leave /metrics; that edge, back, is new again and takes the next
    // idle place (`urls[1]`'s), its counter starting again from 1.
    t.curl(&format!("http://{v6}:{EXTRA_HTTP_PORT}/"));
    t.curl(&urls[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.value("plainsight_edges_recycled_total", &[]) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "no edges recycled after 10 s:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.value("plainsight_edges_dropped_total", &[]), 2.0);
    let back = listed(&edges(&agent));
    let server6 = t.server_ip6.to_string();
    assert_eq!(back.len(), 2, "{back:?}");
    assert!(
        back.contains(&(t.client_ip.to_string(), v4.clone(), u64::from(HTTP_PORT))),
        "{back:?}"
    );
    assert!(
        back.contains(&(
            t.client_ip6.to_string(),
            server6.clone(),
            u64::from(EXTRA_HTTP_PORT)
        )),
        "{back:?}"
    );
    let m = agent.metrics();
    let http = HTTP_PORT.to_string();
    let series_of = |client: &str, server: &str| {
        find(
            &m,
            "plainsight_flows_total",
            &[
                ("client", client),
                ("server", server),
                ("server_port", &http),
            ],
        )
        .map(|s| s.value)
    };
    assert_eq!(series_of(&t.client_ip.to_string(), &v4), Some(1.0));
    assert_eq!(series_of(&t.client_ip6.to_string(), &server6), None);
    assert_eq!(
        flow_series(&m)
            .iter()
            .filter(|s| s.labels["client"] != "other")
            .count(),
        3,
        "still at most three named series: {m:#?}"
    );
}
