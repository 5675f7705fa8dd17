//! The Grafana dashboard, `deploy/grafana/plainsight.json`:
//!
//! - its structure: importable into any Grafana (data source chosen by a
//!   variable, never hard-coded), unique panel ids, a layout, node and
//!   namespace variables, no hard-coded instance or job;
//! - every query of every panel and variable, with the variables set to
//!   "All" and to concrete values, run against a real Prometheus that scraped
//!   a real agent watching real traffic (curl over HTTP and HTTPS, redis-cli
//!   with a password) in the test topology: each must return data.
//!
//! The Prometheus harness here is deliberately small (one static target).

use plainsight_tests::agent::{Agent, free_port};
use plainsight_tests::servers::{self, HttpAndTls};
use plainsight_tests::topology::path_str;
use plainsight_tests::{Proc, Side, Topology};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The scrape job the dashboard's `$job` constant and the alert rules expect.
const JOB: &str = "plainsight";

/// Every metric the agent exports or will export (the contract in docs/architecture.md "Metrics" and
/// the standard process metrics): a dashboard query naming anything else
/// has a typo.
const KNOWN_METRICS: &[&str] = &[
    "plainsight_flows_total",
    "plainsight_tls_flows_total",
    "plainsight_tls_client_auth_total",
    "plainsight_tls_certificate_expiry_timestamp_seconds",
    "plainsight_downgrades_total",
    "plainsight_flow_reasons_total",
    "plainsight_events_received_total",
    "plainsight_events_lost_total",
    "plainsight_events_malformed_total",
    "plainsight_kernel_total",
    "plainsight_flow_table_capacity",
    "plainsight_flow_table_entries",
    "plainsight_flow_table_evictions_total",
    "plainsight_programs_attached",
    "plainsight_edges",
    "plainsight_edges_dropped_total",
    "plainsight_edges_recycled_total",
    "plainsight_http_connections_total",
    "plainsight_alerts_total",
    "plainsight_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
];

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/plainsight.json")
}

fn dashboard() -> Value {
    let p = dashboard_path();
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn panels(d: &Value) -> &[Value] {
    d["panels"].as_array().expect("panels")
}

fn variable<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` variable"))
}

/// A query the dashboard runs: which panel (or variable) and its PromQL.
struct Query {
    owner: String,
    expr: String,
}

/// Every PromQL expression of the dashboard: panel targets, and the
/// variables' queries (unwrapped from `label_values`/`query_result`).
fn queries(d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().expect("targets") {
            out.push(Query {
                owner: format!(
                    "panel {:?} query {}",
                    p["title"].as_str().expect("title"),
                    t["refId"].as_str().expect("refId")
                ),
                expr: t["expr"].as_str().expect("target expr").to_owned(),
            });
        }
    }
    for name in ["node", "namespace"] {
        let q = variable(d, name)["query"]["query"]
            .as_str()
            .expect("variable query");
        out.push(Query {
            owner: format!("variable {name}"),
            expr: variable_promql(q),
        });
    }
    out
}

/// The PromQL behind a Grafana variable query: `label_values(SELECTOR,
/// LABEL)` asks for SELECTOR's series (it has data iff they exist),
/// `query_result(EXPR)` runs EXPR.
fn variable_promql(q: &str) -> String {
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (selector, _label) = inner
            .rsplit_once(',')
            .expect("label_values(SELECTOR, LABEL)");
        selector.trim().to_owned()
    } else if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        inner.to_owned()
    } else {
        panic!("unexpected variable query {q:?}")
    }
}

/// The `{...}` label matchers of an expression.
fn selectors(expr: &str) -> Vec<&str> {
    expr.split('{')
        .skip(1)
        .map(|s| s.split_once('}').expect("closing brace").0)
        .collect()
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = ["plainsight_", "process_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let end = rest[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| i + e);
        names.insert(rest[i..end].to_owned());
        rest = &rest[end..];
    }
    names
}

// ------------------------------------------------------------ structure

#[test]
fn dashboard_is_importable_and_parameterised() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().expect("schemaVersion") >= 36,
        "schemaVersion {}: data sources by uid need 36+",
        d["schemaVersion"]
    );
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));

    let ds = variable(&d, "datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let job = variable(&d, "job");
    assert_eq!(
        (&job["type"], &job["query"]),
        (&"constant".into(), &JOB.into())
    );
    for name in ["node", "namespace"] {
        let v = variable(&d, name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert_eq!(v["includeAll"], true, "{name}: an All option");
        assert_eq!(v["allValue"], ".*", "{name}: All matches every value");
        assert_eq!(v["multi"], true, "{name}");
    }
    assert!(
        variable(&d, "node")["query"]["query"]
            .as_str()
            .is_some_and(|q| q.ends_with(", instance)")),
        "node values are the instance label (the node name on Kubernetes)"
    );

    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    for p in panels(&d) {
        let title = p["title"].as_str().expect("title").to_owned();
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric id")),
            "duplicate id in {title}"
        );
        assert!(titles.insert(title.clone()), "duplicate title {title}");
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title}: description"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: panel data source"
        );
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        for (other, [ox, oy, ow, oh]) in &boxes {
            let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title.clone(), [x, y, w, h]));
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: BTreeSet<_> = targets.iter().map(|t| t["refId"].to_string()).collect();
        assert_eq!(refs.len(), targets.len(), "{title}: duplicate refId");
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{title}: target data source"
            );
        }
    }

    for q in queries(&d) {
        for s in selectors(&q.expr) {
            assert!(
                s.contains(r#"job="$job""#),
                "{}: `{{{s}}}` lacks job=\"$job\"",
                q.owner
            );
            let instance = s.contains(r#"instance=~"$node""#);
            // The node variable's own query lists the instances.
            assert!(
                instance || q.owner == "variable node",
                "{}: `{{{s}}}` lacks instance=~\"$node\"",
                q.owner
            );
            let hard_coded = s.matches("instance").count() > usize::from(instance);
            assert!(!hard_coded, "{}: hard-coded instance in `{{{s}}}`", q.owner);
        }
        for m in metric_names(&q.expr) {
            assert!(
                KNOWN_METRICS.contains(&m.as_str()),
                "{}: unknown metric {m}",
                q.owner
            );
        }
    }
}

#[test]
fn dashboard_covers_the_issue() {
    // Issue 7: plaintext edges, violations by protocol, top offenders, TLS
    // versions, STARTTLS/cleartext credentials, agent health (events lost,
    // table fill, edges dropped, CPU, RSS).
    let d = dashboard();
    let exprs: Vec<String> = queries(&d).into_iter().map(|q| q.expr).collect();
    let uses = |needles: &[&str]| exprs.iter().any(|e| needles.iter().all(|n| e.contains(n)));
    for (what, needles) in [
        (
            "plaintext edges",
            &[r#"encryption="plaintext""#, "client, server, server_port"][..],
        ),
        (
            "violations by protocol",
            &[r#"policy="violation""#, "by (protocol)"],
        ),
        ("top clients", &["topk(", "by (client)"]),
        ("top servers", &["topk(", "by (server"]),
        (
            "TLS versions",
            &["plainsight_tls_flows_total", "by (version)"],
        ),
        ("STARTTLS refused", &["starttls_refused"]),
        ("cleartext credentials", &["cleartext_credentials"]),
        ("events lost", &["plainsight_events_lost_total"]),
        (
            "table fill",
            &[
                "plainsight_flow_table_entries",
                "/ plainsight_flow_table_capacity",
            ],
        ),
        ("edges dropped", &["plainsight_edges_dropped_total"]),
        ("alerts suppressed", &["plainsight_alerts_total", "outcome"]),
        ("CPU", &["rate(process_cpu_seconds_total"]),
        ("RSS", &["process_resident_memory_bytes"]),
        // Issue 17's row.
        (
            "client authentication",
            &["plainsight_tls_client_auth_total", "by (client_auth)"],
        ),
        (
            "certificate expiry",
            &[
                "plainsight_tls_certificate_expiry_timestamp_seconds",
                "time()",
            ],
        ),
        ("downgrades", &["plainsight_downgrades_total", "kind"]),
    ] {
        assert!(uses(needles), "no query for {what} ({needles:?})");
    }
}

// ------------------------------------------------------- live Prometheus

/// Debian's `prometheus`, scraping one target every second, with its data in
/// a temporary directory; killed and removed on drop.
struct Prometheus {
    _proc: Proc,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("plainsight-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the Prometheus directory");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("writing prometheus.yml");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path_str(&config)))
            .arg(format!(
                "--storage.tsdb.path={}",
                path_str(&dir.join("data"))
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("starting prometheus (Debian `prometheus`; `cargo xtask setup` installs it)");
        let p = Self {
            _proc: Proc::from_child(child, "prometheus"),
            addr,
            dir,
        };
        wait_for(Duration::from_secs(30), "Prometheus ready", || {
            matches!(p.get("/-/ready"), Ok((200, _)))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        plainsight_tests::http::get(None, self.addr, path)
    }

    /// Runs an instant query; its result vector, or Prometheus's error.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (status, body) = self
            .get(&format!("/api/v1/query?query={}", urlencode(expr)))
            .map_err(|e| format!("querying Prometheus: {e}"))?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {}", v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Grafana's variables as the test sets them: every `$name`/`${name}` in
/// `expr` replaced, the time-range built-ins by fixed windows.
fn expand(expr: &str, node: &str, namespace: &str) -> String {
    let mut e = expr.to_owned();
    for (name, value) in [
        ("__rate_interval", "1m"),
        ("__range", "5m"),
        ("job", JOB),
        ("node", node),
        ("namespace", namespace),
    ] {
        e = e
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    // `$1` is label_replace's capture group, not a variable.
    let leftover = e.replace("\"$1\"", "");
    assert!(!leftover.contains('$'), "unexpanded variable in {e}");
    e
}

/// A single selected value as Grafana's Prometheus data source writes it
/// into a regex matcher: regex metacharacters escaped, and the escaping
/// backslash doubled for PromQL's double-quoted string.
fn grafana_regex_value(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = match c {
                '\\' => "\\\\\\",
                c if "$^*{}[]'+?.()|".contains(c) => "\\\\",
                _ => "",
            };
            escape.chars().chain([c])
        })
        .collect()
}

struct Servers {
    _http_tls: HttpAndTls,
    _redis: Proc,
}

const REDIS_PORT: u16 = 6379;
const REDIS_PASSWORD: &str = "plainsight-test";

fn start_servers(t: &Topology) -> Servers {
    let http_tls = HttpAndTls::start(t);
    let port = REDIS_PORT.to_string();
    let redis = t.spawn(
        Side::Server,
        false,
        &[
            "redis-server",
            "--port",
            &port,
            "--bind",
            "0.0.0.0",
            "--requirepass",
            REDIS_PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    t.wait_listening(REDIS_PORT);
    Servers {
        _http_tls: http_tls,
        _redis: redis,
    }
}

/// One round of traffic from the client namespace (in the watched cgroup):
/// HTTPS (TLS 1.3), then HTTPS capped at TLS 1.2 (its certificate shows; a
/// `tls_version` downgrade of the path), HTTP (plaintext violation), Redis
/// AUTH (cleartext credentials).
fn traffic(t: &Topology) {
    let server = t.server_ip.to_string();
    let https = format!("https://{server}:{}/", servers::HTTPS_PORT);
    let http = format!("http://{server}:{}/", servers::HTTP_PORT);
    for (url, extra) in [(&https, None), (&https, Some("--tls-max")), (&http, None)] {
        let mut argv = vec!["curl", "-sSk", "--max-time", "10", "-o", "/dev/null"];
        if let Some(flag) = extra {
            argv.extend([flag, "1.2"]);
        }
        argv.push(url);
        let out = t.run(Side::Client, true, &argv);
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = REDIS_PORT.to_string();
    let out = t.run(
        Side::Client,
        true,
        &[
            "redis-cli",
            "-h",
            &server,
            "-p",
            &port,
            "-a",
            REDIS_PASSWORD,
            "--no-auth-warning",
            "ping",
        ],
    );
    assert!(
        out.stdout.starts_with(b"PONG"),
        "redis-cli ping: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_cgroup(&t);
    let prom = Prometheus::start(agent.addr);
    let instance = agent.addr.to_string();

    // Two rounds of traffic with scrapes in between, so counters have both
    // a value and an increase.
    traffic(&t);
    let scraped = |expr: &str| prom.query(expr).is_ok_and(|r| !r.is_empty());
    wait_for(Duration::from_secs(20), "flows scraped", || {
        scraped(r#"plainsight_flow_reasons_total{reason="cleartext_credentials"}"#)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nagent log:\n{}\nPrometheus log:\n{}",
            agent.log_text(),
            prom.log()
        )
    });
    traffic(&t);

    let d = dashboard();
    let settings = [
        (
            "all nodes, all namespaces",
            ".*".to_owned(),
            ".*".to_owned(),
        ),
        // On this topology identities are IPs; a concrete namespace value
        // matches an identity equal to it or prefixed by it and `/`.
        (
            "this node, the client's identity",
            grafana_regex_value(&instance),
            grafana_regex_value(&t.client_ip.to_string()),
        ),
    ];
    let mut pending: Vec<(String, String)> = Vec::new();
    for (setting, node, namespace) in &settings {
        for q in queries(&d) {
            pending.push((
                format!("{} ({setting})", q.owner),
                expand(&q.expr, node, namespace),
            ));
        }
    }
    // Rates need a second sample after the second round: poll until every
    // query has data, or time out and report the ones without.
    let mut failures: Vec<(String, String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        failures.clear();
        for (owner, expr) in &pending {
            match prom.query(expr) {
                Ok(r) if !r.is_empty() => {}
                Ok(_) => failures.push((owner.clone(), expr.clone(), "no data".into())),
                Err(e) => failures.push((owner.clone(), expr.clone(), e)),
            }
        }
        if failures.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if failures.is_empty() {
        return;
    }
    // Say precisely why: metrics the agent of this build does not export
    // yet, or queries that are wrong.
    let exported: BTreeSet<String> = agent.metrics().into_iter().map(|s| s.name).collect();
    let missing: BTreeSet<String> = failures
        .iter()
        .flat_map(|(_, expr, _)| metric_names(expr))
        .filter(|m| !exported.contains(m))
        .collect();
    let mut report = String::new();
    if !missing.is_empty() {
        report += &format!(
            "metrics the dashboard queries that this agent does not export: {missing:?}\n"
        );
    }
    for (owner, expr, why) in &failures {
        report += &format!("- {owner}: {why}\n    {}\n", expr.replace('\n', "\n    "));
    }
    panic!(
        "{} of {} dashboard queries returned no data from a Prometheus scraping a real agent:\n{report}",
        failures.len(),
        pending.len()
    );
}
