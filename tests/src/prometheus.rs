//! A real Prometheus (Debian's `prometheus`) scraping one target every
//! second and evaluating rule files every second, read through its HTTP
//! API. Generic: any test that needs "what would Prometheus see" (alert
//! rules, dashboard queries) starts one.

use crate::agent::{Sample, free_port};
use crate::topology::{Proc, WorkDir, path_str};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The scrape job's name: the agent-health rules match `job="plainsight"`.
pub const JOB: &str = "plainsight";

pub struct Prometheus {
    proc: Proc,
    dir: WorkDir,
    pub addr: SocketAddr,
    netns: Option<String>,
}

impl Prometheus {
    /// In the host namespace, on a free loopback port, scraping
    /// `scrape_target` (`host:port`, path `/metrics`) and loading
    /// `rule_files` as they are.
    pub fn start(scrape_target: SocketAddr, rule_files: &[&Path]) -> Self {
        Self::start_in(None, scrape_target, rule_files)
    }

    /// As `start`, inside network namespace `netns` when given (where an
    /// agent on the TC hook serves its API), listening on 127.0.0.1:9090.
    pub fn start_in(netns: Option<&str>, scrape_target: SocketAddr, rule_files: &[&Path]) -> Self {
        Self::scraping(netns, &[scrape_target], rule_files)
    }

    /// As `start_in`, scraping every one of `targets` (one `instance`
    /// each: several nodes of a fleet).
    pub fn scraping(netns: Option<&str>, targets: &[SocketAddr], rule_files: &[&Path]) -> Self {
        let dir = WorkDir::new("prometheus");
        let port = if netns.is_some() { 9090 } else { free_port() };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| {
                let abs = std::fs::canonicalize(p)
                    .unwrap_or_else(|e| panic!("rule file {}: {e}", p.display()));
                format!("  - {}", path_str(&abs))
            })
            .collect();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
            rules.join("\n"),
            targets.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing prometheus.yml");
        let log = dir.join("prometheus.log");
        let logf = std::fs::File::create(&log).expect("creating the Prometheus log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "prometheus"]);
                c
            }
            None => Command::new("prometheus"),
        };
        cmd.arg(format!("--config.file={}", path_str(&config_path)))
            .arg(format!(
                "--storage.tsdb.path={}",
                path_str(&dir.join("data"))
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus (cargo xtask setup installs it): {e}"));
        let mut p = Self {
            proc: Proc::from_child(child, "prometheus"),
            dir,
            addr,
            netns: netns.map(str::to_owned),
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let (netns, log) = (self.netns.as_deref(), self.dir.join("prometheus.log"));
        let timeout = Duration::from_secs(30);
        crate::http::wait_ready(&mut self.proc, netns, self.addr, "/-/ready", timeout, &log);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        crate::http::get(self.netns.as_deref(), self.addr, path)
    }

    /// Evaluates `expr` now (`/api/v1/query`); each element of the instant
    /// vector is a sample (its `__name__`, if any, as the name).
    pub fn query(&self, expr: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = self
            .get(&path)
            .unwrap_or_else(|e| panic!("querying prometheus for {expr}: {e}"));
        assert_eq!(status, 200, "query {expr} answered {status}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {expr}: {e}: {body}"));
        let data = &v["data"];
        assert_eq!(
            data["resultType"], "vector",
            "query {expr} is not an instant vector: {body}"
        );
        data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut labels: BTreeMap<String, String> = r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("query {expr}: no value in {r}"));
                Sample {
                    name: labels.remove("__name__").unwrap_or_default(),
                    labels,
                    value,
                }
            })
            .collect()
    }

    /// Polls `query(expr)` until `done` accepts the result (up to
    /// `timeout`); returns it, or panics with the last result.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(expr);
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} did not reach the expected result in {timeout:?}; last result:\n{r:#?}\n\
                 prometheus log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.proc.stop(libc::SIGTERM);
    }
}

/// Prometheus's `promtool`, required.
pub fn promtool() -> PathBuf {
    crate::tools::require_tool(
        "promtool",
        "install Debian's `prometheus` package (`cargo xtask setup` does)",
    )
}

/// `promtool check metrics` on a Prometheus text (0.0.4) body: it must
/// parse and pass the lints, with nothing to say.
pub fn promtool_check_metrics(body: &str) {
    use std::io::Write as _;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on the live /metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percent-encodes a query parameter (RFC 3986 unreserved kept).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
