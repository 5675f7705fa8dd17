//! The real `plainsight` binary, started on a topology and read through its
//! HTTP API.

use crate::topology::{Proc, Side, Topology};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Agent {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Namespace the agent (and its API) runs in; None = the host's.
    pub netns: Option<String>,
    pub log: PathBuf,
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Overrides the agent's `RUST_LOG` (default: every verdict logged at
/// debug, which tests read back from the log; the bench runs at `info`).
pub const RUST_LOG_VAR: &str = "PLAINSIGHT_AGENT_RUST_LOG";

impl Agent {
    /// Attached by cgroup_skb to the topology's child cgroup; runs in the
    /// host namespace with its API on a free loopback port.
    pub fn on_cgroup(t: &Topology) -> Self {
        Self::on_cgroup_with(t, &[])
    }

    /// As `on_cgroup`, with more `plainsight run` arguments.
    pub fn on_cgroup_with(t: &Topology, extra: &[&str]) -> Self {
        let port = free_port();
        let cg = t.cgroup.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--cgroup", &cg];
        args.extend(extra);
        Self::start(None, port, &args)
    }

    /// Attached by TC to the server end of the veth; runs in the server
    /// namespace (the interface lives there).
    pub fn on_tc(t: &Topology) -> Self {
        Self::on_tc_matching(t, &t.server_if)
    }

    /// Attached by TC to the server namespace's interfaces matching `pattern`.
    pub fn on_tc_matching(t: &Topology, pattern: &str) -> Self {
        Self::start(Some(t.ns(Side::Server)), 9477, &["--interface", pattern])
    }

    /// The edge to `port` on /api/v1/edges once it has `flows` flows;
    /// panics after 15 s with the list.
    pub fn edge_to(&self, port: u16, flows: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.get("/api/v1/edges").expect("GET /api/v1/edges");
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("edges JSON");
            let found = v["edges"]
                .as_array()
                .expect("edges array")
                .iter()
                .find(|e| e["server_port"] == port && e["flows"] == flows)
                .cloned();
            match found {
                Some(e) => return e,
                None if Instant::now() > deadline => panic!("no edge to port {port}: {body}"),
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The value of an unlabelled (or first matching) sample, 0 if absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        find(&self.metrics(), name, labels).map_or(0.0, |s| s.value)
    }

    /// One kernel counter (`plainsight_kernel_total{counter}`), 0 if absent.
    pub fn kernel_counter(&self, counter: &str) -> f64 {
        self.value("plainsight_kernel_total", &[("counter", counter)])
    }

    pub fn start(netns: Option<&str>, port: u16, extra: &[&str]) -> Self {
        Self::start_with_env(netns, port, extra, &[])
    }

    /// As `start`, with more environment variables for the agent.
    pub fn start_with_env(
        netns: Option<&str>,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut agent = Self::spawn_with_env(netns, port, extra, env);
        agent.wait_ready();
        agent
    }

    /// As `start`, without waiting for `/readyz` (readiness tests).
    pub fn spawn(netns: Option<&str>, port: u16, extra: &[&str]) -> Self {
        Self::spawn_with_env(netns, port, extra, &[])
    }

    fn spawn_with_env(
        netns: Option<&str>,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let bin = crate::plainsight_bin();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::env::temp_dir().join(format!(
            "plainsight-agent-{}-{port}.log",
            std::process::id()
        ));
        let logf = std::fs::File::create(&log).expect("creating agent log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["run", "--listen", &addr.to_string()])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var(RUST_LOG_VAR).unwrap_or_else(|_| "info,plainsight=debug".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Self {
            proc: Proc::from_child(child, "plainsight run"),
            addr,
            netns: netns.map(str::to_owned),
            log,
        }
    }

    fn wait_ready(&mut self) {
        let (netns, addr) = (self.netns.as_deref(), self.addr);
        let timeout = Duration::from_secs(60);
        crate::http::wait_ready(&mut self.proc, netns, addr, "/readyz", timeout, &self.log);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        crate::http::get(self.netns.as_deref(), self.addr, path)
    }

    pub fn metrics(&self) -> Vec<Sample> {
        let (status, body) = self.get("/metrics").expect("scraping /metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        parse_metrics(&body)
    }

    /// Waits (up to 10 s) for a sample of `name` whose labels include all of
    /// `labels`, and returns it; panics with the metrics seen otherwise.
    pub fn wait_sample(&self, name: &str, labels: &[(&str, &str)]) -> Sample {
        self.wait_sample_where(name, labels, |_| true)
    }

    /// As `wait_sample`, for a sample whose value is `value`.
    pub fn wait_value(&self, name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        self.wait_sample_where(name, labels, |s| s.value == value)
    }

    fn wait_sample_where(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(&Sample) -> bool,
    ) -> Sample {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let samples = self.metrics();
            if let Some(s) = find(&samples, name, labels).filter(|s| ok(s)) {
                return s.clone();
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = samples
                    .iter()
                    .filter(|s| s.name == name)
                    .map(|s| format!("{:?} {}", s.labels, s.value))
                    .collect();
                panic!(
                    "no {name} sample with {labels:?} after 10 s; {name} samples:\n{}\nagent log:\n{}",
                    seen.join("\n"),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The bpf_links the agent holds, as (link type, link id), read from its
    /// file descriptors: exact even while other agents run on the machine.
    pub fn links(&self) -> Vec<(String, u32)> {
        let dir = format!("/proc/{}/fdinfo", self.proc.pid());
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir}: {e}")) {
            let Ok(text) = std::fs::read_to_string(entry.expect("fdinfo entry").path()) else {
                continue;
            };
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(kind), Some(id)) = (field("link_type:"), field("link_id:")) {
                out.push((kind, id.parse().expect("numeric link id")));
            }
        }
        out.sort();
        out
    }

    /// Entries of the agent's map called `name`, counted by `bpftool map
    /// dump`: an independent check of what the agent reports.
    pub fn map_entries(&self, name: &str) -> usize {
        let dir = format!("/proc/{}/fdinfo", self.proc.pid());
        let ids: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("map_id:"))
                    .map(|v| v.trim().to_owned())
            })
            .collect();
        let id = ids
            .iter()
            .find(|id| bpftool_json(&["map", "show", "id", id])["name"] == name)
            .unwrap_or_else(|| panic!("the agent holds no map {name} (maps {ids:?})"));
        bpftool_json(&["map", "dump", "id", id])
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Ends the agent with SIGKILL, as the OOM killer or a node crash would.
    pub fn kill9(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    /// Ends the agent with SIGTERM and returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.proc.pid()).expect("pid fits i32");
        // SAFETY: signalling the agent we started, by its PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.proc.child.wait().expect("waiting for plainsight")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The first sample named `name` whose labels include `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// Parses the Prometheus/OpenMetrics text format (enough for our output).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        if let Ok(value) = value.parse() {
            out.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        m.insert(
            k.trim_start_matches(',').to_owned(),
            after[..end].to_owned(),
        );
        rest = &after[end + 1..];
    }
    m
}

/// `bpftool -j ARGS`, parsed; empty output reads as `[]`. A listing can
/// fail when an object it walks goes away meanwhile (another test's agent
/// stopping): it is retried a few times before that counts as a failure.
fn bpftool_json(args: &[&str]) -> serde_json::Value {
    let mut tries = 0;
    let out = loop {
        let out = Command::new("bpftool")
            .arg("-j")
            .args(args)
            .output()
            .expect("running bpftool (cargo xtask setup installs it)");
        tries += 1;
        if out.status.success() || tries == 5 {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // With -j, bpftool reports errors as JSON on stdout.
    assert!(
        out.status.success(),
        "bpftool {args:?} failed {tries} times: {} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text })
        .unwrap_or_else(|e| panic!("bpftool json {text:?}: {e}"))
}

/// Programs attached to a cgroup (`bpftool cgroup show`).
pub fn cgroup_programs(cgroup: &std::path::Path) -> usize {
    let path = cgroup.to_str().expect("utf-8 cgroup path");
    bpftool_json(&["cgroup", "show", path])
        .as_array()
        .map_or(0, Vec::len)
}

/// IDs of every bpf_link alive in the kernel (`bpftool link show`).
pub fn live_links() -> Vec<u32> {
    bpftool_json(&["link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("id")?.as_u64()?.try_into().ok())
        .collect()
}

/// A TCP port free on the host's loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

/// A configuration naming the topology's IPv4 ends `shop/frontend` and
/// `web/server` (Kubernetes-style names, so the namespaces `shop` and
/// `web`) with one allow-rule for plain HTTP between them, owned by
/// `team-web`; the IPv6 ends stay unnamed and unallowed.
pub fn shop_web_config(t: &Topology) -> String {
    format!(
        r#"
[identities]
"{client}/32" = "shop/frontend"
"{server}/32" = "web/server"

[[policy.allow]]
name = "web-plain-http"
owner = "team-web"
reason = "internal status page, TLS planned"
client = "shop/frontend"
server = "web/server"
ports = [{http}]
protocols = ["http"]
"#,
        client = t.client_ip,
        server = t.server_ip,
        http = crate::servers::HTTP_PORT,
    )
}
