//! The configuration file (`plainsight run --config FILE`), TOML. Every key
//! is optional and has the default documented here and in
//! `deploy/config/plainsight.toml`; unknown keys are errors, so a typo is
//! never a silent default. `load` checks everything and reports every
//! problem with where it is before anything is attached.

use crate::{
    clock,
    export::http_server::Limits,
    kubernetes::{Enabled, KubeSettings},
    logging::LogFormat,
    pipeline::{
        cidr::{self, Cidr},
        policy::{Peer, PolicySet, Require, Rule, UnknownTreatment},
    },
};
use agent_common::{Protocol, TlsVersion};
use serde::Deserialize;
use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "5s";
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
pub const DEFAULT_KUBERNETES_SYNC_TIMEOUT: &str = "30s";
pub const DEFAULT_RING_BYTES: u32 = 256 * 1024;
pub const DEFAULT_EDGES_MAX: usize = 10_000;
pub const DEFAULT_IDLE_TIMEOUT: &str = "1h";
pub const DEFAULT_ALERTS_PER_MINUTE: u32 = 20;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    api: ApiFile,
    metrics: MetricsFile,
    hooks: HooksFile,
    datapath: DatapathFile,
    /// CIDR or single address -> identity name.
    identities: BTreeMap<String, String>,
    kubernetes: KubernetesFile,
    policy: PolicyFile,
    edges: EdgesFile,
    alerts: AlertsFile,
    log: LogFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ApiFile {
    /// `/api/v1/edges`, `/healthz`, `/readyz`, and `/metrics` unless
    /// `metrics.listen` is another address.
    listen: SocketAddr,
    /// A file holding the bearer token `/api/v1/edges` then requires;
    /// re-read when it changes.
    token_file: Option<PathBuf>,
    /// PEM certificate chain and private key: the API listener then speaks
    /// only HTTPS. Both re-read when they change.
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    /// A connection must send its request headers within this.
    header_read_timeout: String,
    /// A connection is closed this long after it was accepted.
    request_timeout: String,
    /// Open connections at once, per listener; more are closed at once.
    max_connections: usize,
    /// `GET /`: the edge page (export/page.rs).
    page: bool,
}

impl Default for ApiFile {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            page: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MetricsFile {
    /// `/metrics`, `/healthz`, `/readyz` on their own address (e.g. the
    /// pod IP for Prometheus, with the edges API on loopback); default:
    /// `api.listen`.
    listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HooksFile {
    /// cgroup v2 directory for the cgroup_skb programs; default: the
    /// node's cgroup v2 root, unless only `interfaces` are given.
    cgroup: Option<PathBuf>,
    /// Interface name globs for the TC programs.
    interfaces: Vec<String>,
    /// Also classify 127.0.0.0/8 and ::1.
    include_loopback: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DatapathFile {
    /// Kernel flow-table capacity (connections tracked at once).
    max_flows: u32,
    /// Verdict ring buffer bytes: a power of two, at least 4096.
    ring_bytes: u32,
}

impl Default for DatapathFile {
    fn default() -> Self {
        Self {
            max_flows: agent_common::wire::DEFAULT_MAX_FLOWS,
            ring_bytes: DEFAULT_RING_BYTES,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct KubernetesFile {
    /// "auto" (in a pod, or with a kubeconfig), "on" or "off".
    enabled: Enabled,
    /// A kubeconfig file instead of the in-cluster service account.
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; default: its current-context.
    context: Option<String>,
    /// `/readyz` waits this long for the first lists, then says ready
    /// (and that they are missing).
    sync_timeout: String,
}

impl Default for KubernetesFile {
    fn default() -> Self {
        Self {
            enabled: Enabled::default(),
            kubeconfig: None,
            context: None,
            sync_timeout: DEFAULT_KUBERNETES_SYNC_TIMEOUT.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PolicyFile {
    /// How flows of unknown encryption are judged.
    unknown: UnknownTreatment,
    allow: Vec<RuleFile>,
    require: Vec<RequireFile>,
}

/// `[[policy.require]]`: an allow-rule's name, owner, reason, expiry and
/// peers, and what the TLS flows it covers must show.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RequireFile {
    name: String,
    owner: String,
    reason: String,
    expires: Option<toml::Value>,
    client: Option<String>,
    server: Option<String>,
    client_namespace: Option<String>,
    server_namespace: Option<String>,
    ports: Vec<u16>,
    /// `"mutual"`.
    client_auth: Option<String>,
    /// `"1.0"`, `"1.1"`, `"1.2"` or `"1.3"`.
    min_tls: Option<String>,
    /// `"none"`.
    cert_issues: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RuleFile {
    name: String,
    owner: String,
    reason: String,
    /// A TOML date/date-time or an RFC 3339 string; absent: never.
    expires: Option<toml::Value>,
    /// Identity name glob, CIDR or address; absent: any.
    client: Option<String>,
    server: Option<String>,
    /// Kubernetes namespace glob: peers named from the Kubernetes API in a
    /// matching namespace (instead of `client` / `server`).
    client_namespace: Option<String>,
    server_namespace: Option<String>,
    ports: Vec<u16>,
    protocols: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EdgesFile {
    /// Edges (and metric series per family) held at a time; more flows go
    /// to the `other` edge.
    max: usize,
    /// Edges unseen this long leave the API (not /metrics), and give their
    /// place under `max` to a new edge when the cap is full.
    idle_timeout: String,
}

impl Default for EdgesFile {
    fn default() -> Self {
        Self {
            max: DEFAULT_EDGES_MAX,
            idle_timeout: DEFAULT_IDLE_TIMEOUT.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AlertsFile {
    /// Alert log lines per minute at most (token bucket); 0 turns alerts off.
    max_per_minute: u32,
}

impl Default for AlertsFile {
    fn default() -> Self {
        Self {
            max_per_minute: DEFAULT_ALERTS_PER_MINUTE,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LogFile {
    format: LogFormat,
}

/// A checked configuration.
pub struct Config {
    pub listen: SocketAddr,
    /// `None`: `listen` serves `/metrics` too.
    pub metrics_listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    /// `api.tls_cert_file` and `api.tls_key_file`: both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `api.page`: serve the edge page at `/`.
    pub page: bool,
    pub http: Limits,
    pub kubernetes_sync_timeout: Duration,
    pub cgroup: Option<PathBuf>,
    pub interfaces: Vec<String>,
    pub include_loopback: bool,
    pub max_flows: u32,
    pub ring_bytes: u32,
    pub identities: Vec<(Cidr, String)>,
    pub kubernetes: KubeSettings,
    pub policy: PolicySet,
    pub edges_max: usize,
    pub idle_timeout: Duration,
    pub alerts_per_minute: u32,
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        check(File::default()).unwrap_or_else(|p| unreachable!("the defaults check: {p:?}"))
    }
}

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config {}: {}", .path.display(), list(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => many
            .iter()
            .fold(format!("{} problems", many.len()), |acc, p| {
                acc + "\n  " + &p.to_string()
            }),
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Parses and checks a whole file.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let file: File = toml::from_str(text).map_err(|e| vec![syntax_problem(text, &e)])?;
    check(file)
}

/// TOML syntax and type errors come one at a time, with a position.
fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let at = e.span().map_or_else(
        || "file".to_owned(),
        |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}")
        },
    );
    Problem {
        at,
        message: e.message().trim_end().to_owned(),
    }
}

/// Checks every value; collects every problem rather than stopping at one.
fn check(f: File) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |at: String, message: String| problems.push(Problem { at, message });

    if let Some(cg) = &f.hooks.cgroup
        && !cg.is_absolute()
    {
        problem(
            "hooks.cgroup".into(),
            format!("{:?} must be an absolute path", cg.display()),
        );
    }
    for (i, p) in f.hooks.interfaces.iter().enumerate() {
        if let Err(m) = check_interface_pattern(p) {
            problem(format!("hooks.interfaces[{i}]"), m);
        }
    }
    if f.datapath.max_flows == 0 {
        problem("datapath.max_flows".into(), "must be at least 1".into());
    }
    if let Err(m) = check_ring_bytes(f.datapath.ring_bytes) {
        problem("datapath.ring_bytes".into(), m);
    }

    let mut identities: Vec<(Cidr, String)> = Vec::new();
    for (net, name) in &f.identities {
        let at = format!("identities.{net:?}");
        match net.parse::<Cidr>() {
            Err(m) => problem(at, m),
            Ok(c) => {
                if let Err(m) = check_identity_name(name) {
                    problem(at.clone(), m);
                }
                if let Some((_, other)) = identities.iter().find(|(o, _)| *o == c) {
                    problem(
                        at,
                        format!("{c} is already named {other:?} (by another spelling)"),
                    );
                } else {
                    identities.push((c, name.clone()));
                }
            }
        }
    }

    check_kubernetes(&f.kubernetes, |key, m| {
        problem(format!("kubernetes.{key}"), m)
    });
    let kubernetes_sync_timeout = clock::parse_duration(&f.kubernetes.sync_timeout)
        .map_err(|m| problem("kubernetes.sync_timeout".into(), m))
        .unwrap_or_default();
    let http = check_api(&f.api, |key, m| problem(format!("api.{key}"), m));

    let mut rules = Vec::new();
    for (i, r) in f.policy.allow.iter().enumerate() {
        let at = |key: &str| format!("policy.allow[{i}].{key}");
        match check_rule(r, |key, m| problem(at(key), m)) {
            Some(rule) if rules.iter().any(|o: &Rule| o.name == rule.name) => problem(
                at("name"),
                format!(
                    "{:?} is used by another rule; names must be unique",
                    rule.name
                ),
            ),
            Some(rule) => rules.push(rule),
            None => {}
        }
    }

    let mut requires: Vec<Require> = Vec::new();
    for (i, r) in f.policy.require.iter().enumerate() {
        let at = |key: &str| format!("policy.require[{i}].{key}");
        match check_require(r, |key, m| problem(at(key), m)) {
            Some(req)
                if rules.iter().any(|o| o.name == req.rule.name)
                    || requires.iter().any(|o| o.rule.name == req.rule.name) =>
            {
                problem(
                    at("name"),
                    format!(
                        "{:?} is used by another rule; names must be unique",
                        req.rule.name
                    ),
                );
            }
            Some(req) => requires.push(req),
            None => {}
        }
    }

    if f.edges.max == 0 {
        problem("edges.max".into(), "must be at least 1".into());
    }
    let idle_timeout = clock::parse_duration(&f.edges.idle_timeout)
        .map_err(|m| problem("edges.idle_timeout".into(), m))
        .unwrap_or_default();

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        listen: f.api.listen,
        metrics_listen: f.metrics.listen,
        token_file: f.api.token_file,
        tls: f.api.tls_cert_file.zip(f.api.tls_key_file),
        page: f.api.page,
        http,
        kubernetes_sync_timeout,
        cgroup: f.hooks.cgroup,
        interfaces: f.hooks.interfaces,
        include_loopback: f.hooks.include_loopback,
        max_flows: f.datapath.max_flows,
        ring_bytes: f.datapath.ring_bytes,
        identities,
        kubernetes: KubeSettings {
            enabled: f.kubernetes.enabled,
            kubeconfig: f.kubernetes.kubeconfig,
            context: f.kubernetes.context,
        },
        policy: PolicySet::new(rules, f.policy.unknown).with_requires(requires),
        edges_max: f.edges.max,
        idle_timeout,
        alerts_per_minute: f.alerts.max_per_minute,
        log_format: f.log.format,
    })
}

/// The HTTP server's limits. Whether `token_file` reads is checked when the
/// agent starts (it may be written after the config is checked).
fn check_api(a: &ApiFile, mut problem: impl FnMut(&str, String)) -> Limits {
    let mut duration = |key: &str, text: &str| {
        clock::parse_duration(text)
            .map_err(|m| problem(key, m))
            .unwrap_or_default()
    };
    let header_read_timeout = duration("header_read_timeout", &a.header_read_timeout);
    let request_timeout = duration("request_timeout", &a.request_timeout);
    if a.max_connections == 0 {
        problem("max_connections", "must be at least 1".into());
    }
    if a.token_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        problem("token_file", "is empty; leave it out for no token".into());
    }
    match (&a.tls_cert_file, &a.tls_key_file) {
        (Some(_), None) => problem(
            "tls_key_file",
            "is missing: api.tls_cert_file needs its key".into(),
        ),
        (None, Some(_)) => problem(
            "tls_cert_file",
            "is missing: api.tls_key_file needs its certificate".into(),
        ),
        _ => {}
    }
    Limits {
        header_read_timeout,
        request_timeout,
        max_connections: a.max_connections,
    }
}

/// The file alone: whether the kubeconfig reads is checked when the agent
/// (or check-config) resolves it.
fn check_kubernetes(k: &KubernetesFile, mut problem: impl FnMut(&str, String)) {
    if k.kubeconfig
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        problem(
            "kubeconfig",
            "is empty; leave it out for the in-cluster service account".into(),
        );
    }
    if k.enabled == Enabled::Off && k.kubeconfig.is_some() {
        problem(
            "kubeconfig",
            "is set but enabled = \"off\"; remove one of them".into(),
        );
    }
    if k.context.is_some() && k.kubeconfig.is_none() {
        problem(
            "context",
            "names a kubeconfig context but no kubeconfig is set".into(),
        );
    }
}

/// Builds a rule, reporting each bad key through `problem`.
fn check_rule(r: &RuleFile, mut problem: impl FnMut(&str, String)) -> Option<Rule> {
    let mut ok = true;
    let mut bad = |key: &str, m: String| {
        ok = false;
        problem(key, m);
    };
    for (key, value) in [
        ("name", &r.name),
        ("owner", &r.owner),
        ("reason", &r.reason),
    ] {
        if value.trim().is_empty() {
            bad(
                key,
                "is required: every exception says who owns it and why".into(),
            );
        }
    }
    // `None`: the side is wrong (reported); the rule is not built.
    let mut side = |key: &str, name: Option<&str>, namespace: Option<&str>| {
        check_peer(name, namespace)
            .map_err(|(which, m)| bad(&format!("{key}{which}"), m))
            .ok()
    };
    let client = side("client", r.client.as_deref(), r.client_namespace.as_deref());
    let server = side("server", r.server.as_deref(), r.server_namespace.as_deref());
    if r.ports.contains(&0) {
        bad("ports", "port 0 never carries a connection".into());
    }
    let mut protocols = Vec::new();
    for (j, name) in r.protocols.iter().enumerate() {
        match Protocol::ALL.iter().find(|p| p.as_str() == name) {
            Some(p) => protocols.push(*p),
            None => bad(
                &format!("protocols[{j}]"),
                format!(
                    "{name:?} is not a protocol plainsight names; one of: {}",
                    Protocol::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    let expires_ns = match &r.expires {
        None => None,
        Some(v) => match expiry(v) {
            Ok(t) => Some(t),
            Err(m) => {
                bad("expires", m);
                None
            }
        },
    };
    if client == Some(Peer::Any)
        && server == Some(Peer::Any)
        && r.ports.is_empty()
        && protocols.is_empty()
    {
        bad(
            "server",
            "the rule would allow every plaintext flow; name at least one of client, server, \
             client_namespace, server_namespace, ports, protocols"
                .into(),
        );
    }
    ok.then(|| Rule {
        name: r.name.clone(),
        owner: r.owner.clone(),
        reason: r.reason.clone(),
        expires_ns,
        client: client.unwrap_or(Peer::Any),
        server: server.unwrap_or(Peer::Any),
        ports: r.ports.clone(),
        protocols,
    })
}

/// A require-rule: the allow-rule checks for its name, owner, reason,
/// expiry and peers, then at least one requirement, each value named when
/// wrong.
fn check_require(r: &RequireFile, mut problem: impl FnMut(&str, String)) -> Option<Require> {
    let mut errors: Vec<(&str, String)> = Vec::new();
    let mut bad = |key: &'static str, m: String| errors.push((key, m));
    let mutual = match r.client_auth.as_deref() {
        None => false,
        Some("mutual") => true,
        Some(other) => {
            bad(
                "client_auth",
                format!("{other:?} is not a requirement; the one value is \"mutual\""),
            );
            false
        }
    };
    const VERSIONS: [TlsVersion; 4] = [
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];
    let min_tls = r.min_tls.as_deref().and_then(|v| {
        let found = VERSIONS.into_iter().find(|t| t.as_str() == v);
        if found.is_none() {
            bad(
                "min_tls",
                format!("{v:?} is not a TLS version; one of: 1.0, 1.1, 1.2, 1.3"),
            );
        }
        found
    });
    let clean_cert = match r.cert_issues.as_deref() {
        None => false,
        Some("none") => true,
        Some(other) => {
            bad(
                "cert_issues",
                format!("{other:?} is not a requirement; the one value is \"none\""),
            );
            false
        }
    };
    if errors.is_empty() && !mutual && min_tls.is_none() && !clean_cert {
        errors.push((
            "client_auth",
            "the rule requires nothing; set at least one of client_auth, min_tls, cert_issues"
                .into(),
        ));
    }
    let ok = errors.is_empty();
    for (key, m) in errors {
        problem(key, m);
    }
    // The peers, name, owner, reason and expiry as an allow-rule's; a
    // require-rule may cover every peer, which an allow-rule may not (it
    // would allow every plaintext flow): `protocols` stands in for that.
    let as_rule = RuleFile {
        name: r.name.clone(),
        owner: r.owner.clone(),
        reason: r.reason.clone(),
        expires: r.expires.clone(),
        client: r.client.clone(),
        server: r.server.clone(),
        client_namespace: r.client_namespace.clone(),
        server_namespace: r.server_namespace.clone(),
        ports: r.ports.clone(),
        protocols: vec![Protocol::Tls.as_str().to_owned()],
    };
    let rule = check_rule(&as_rule, problem)?;
    ok.then(|| Require {
        rule: Rule {
            protocols: Vec::new(),
            ..rule
        },
        mutual,
        min_tls,
        clean_cert,
    })
}

/// One side of a rule from its `client`/`server` value and its
/// `*_namespace` value; the error names which key (suffix) is wrong.
fn check_peer(name: Option<&str>, namespace: Option<&str>) -> Result<Peer, (&'static str, String)> {
    match (name, namespace) {
        (Some(_), Some(_)) => Err((
            "_namespace",
            "cannot be combined with a name, CIDR or address on the same side; use one".into(),
        )),
        (None, Some(ns)) => check_namespace_pattern(ns)
            .map(|()| Peer::Namespace(ns.to_owned()))
            .map_err(|m| ("_namespace", m)),
        (None | Some("*"), None) => Ok(Peer::Any),
        (Some(s), None) if cidr::looks_like_cidr(s) => {
            s.parse().map(Peer::Net).map_err(|m| ("", m))
        }
        (Some(s), None) => check_identity_name(s)
            .map(|()| Peer::Name(s.to_owned()))
            .map_err(|m| ("", m)),
    }
}

/// `2026-12-31` (expires at the start of that day, UTC),
/// `2026-12-31T18:00:00Z` or with an offset; bare or as a string.
fn expiry(v: &toml::Value) -> Result<i128, String> {
    let dt = match v {
        toml::Value::Datetime(dt) => *dt,
        toml::Value::String(s) => s
            .parse::<toml::value::Datetime>()
            .map_err(|_| format!("{s:?} is not an RFC 3339 date or date-time"))?,
        other => {
            return Err(format!("a {} is not a date or date-time", other.type_str()));
        }
    };
    let Some(d) = dt.date else {
        return Err(format!("{dt} has no date"));
    };
    let offset_min = match (dt.time, dt.offset) {
        (None, _) => 0,
        (Some(_), Some(toml::value::Offset::Z)) => 0,
        (Some(_), Some(toml::value::Offset::Custom { minutes })) => i64::from(minutes),
        (Some(_), None) => {
            return Err(format!(
                "{dt} has a time but no UTC offset; add `Z` or e.g. `+02:00`"
            ));
        }
    };
    let days = clock::days_from_civil(i64::from(d.year), i64::from(d.month), i64::from(d.day));
    let secs = dt.time.map_or(0, |t| {
        i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
    });
    // In i128: `9999-12-31` overflows i64 nanoseconds (they end in 2262).
    Ok(i128::from(days * 86_400 + secs - offset_min * 60) * 1_000_000_000)
}

pub fn check_ring_bytes(n: u32) -> Result<(), String> {
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("{n} must be a power of two and at least 4096"));
    }
    Ok(())
}

/// A namespace name (RFC 1123 label) with `*` / `?` globs.
fn check_namespace_pattern(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 63
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a namespace pattern (lowercase letters, digits, '-', and * or ? globs)"
        ))
    }
}

fn check_interface_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() || p.contains(['/', ' ']) {
        return Err(format!("{p:?} is not an interface name pattern"));
    }
    Ok(())
}

/// Names end up in metric labels and the table: printable, no spaces.
fn check_identity_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{name:?} is not an identity name (non-empty, no spaces)"
        ));
    }
    if name == crate::pipeline::edges::OTHER {
        return Err(format!(
            "{name:?} is reserved for edges beyond the cardinality cap"
        ));
    }
    Ok(())
}

/// Warnings that do not stop the agent: expired rules.
pub fn warnings(c: &Config, now_ns: i64) -> Vec<String> {
    c.policy
        .rules()
        .iter()
        .filter(|r| r.expired(now_ns))
        .map(|r| {
            format!(
                "allow-rule {:?} (owner {}) expired at {}; it no longer allows anything",
                r.name,
                r.owner,
                r.expires().unwrap_or_default()
            )
        })
        .chain(
            c.policy
                .requires()
                .iter()
                .map(|r| &r.rule)
                .filter(|r| r.expired(now_ns))
                .map(|r| {
                    format!(
                        "require-rule {:?} (owner {}) expired at {}; it no longer requires anything",
                        r.name,
                        r.owner,
                        r.expires().unwrap_or_default()
                    )
                }),
        )
        .collect()
}

#[cfg(test)]
mod tests;
