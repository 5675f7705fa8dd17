//! Mutual TLS and server certificates end to end, on each hook: real
//! `openssl s_server`s requiring a client certificate (`-Verify 1`) or not
//! asking for one, TLS 1.2 and 1.3; real `openssl s_client`s with and
//! without a certificate. The kernel exports the hellos, the server's
//! Certificate (TLS 1.2) and the head of the client's flight; the API and
//! the metrics give every edge its true `client_auth` and the server
//! certificate's problems where TLS 1.2 shows it.

use plainsight_tests::{
    Agent, TestCert, Topology, WorkDir, clients,
    prometheus::Prometheus,
    servers::{
        Daemon,
        nginx::{Nginx, VERIFY_ON_PORT, VERIFY_OPTIONAL_PORT},
        tls,
    },
};
use std::net::IpAddr;

/// (port, version flag, requires a client certificate).
const SERVERS: [(u16, &str, bool); 4] = [
    (4420, "-tls1_2", true),
    (4421, "-tls1_3", true),
    (4422, "-tls1_2", false),
    (4423, "-tls1_3", false),
];

/// The name the clients ask for (SNI); the test certificate names
/// `plainsight-test`, so TLS 1.2 shows a name mismatch.
const SNI: &str = "api.plainsight.test";

fn start_servers(t: &Topology, cert: &TestCert, dir: &WorkDir) -> Vec<Daemon> {
    let ca = cert.cert.to_str().unwrap_or_default();
    SERVERS
        .iter()
        .map(|&(port, flag, require)| {
            // The self-signed test certificate is its own CA: the client
            // presents the same one.
            let verify: &[&str] = if require {
                &["-Verify", "1", "-CAfile", ca]
            } else {
                &[]
            };
            tls::s_server(t, cert, dir, port, flag, verify)
        })
        .collect()
}

fn client_auth_and_certificates_are_read(t: &Topology, cert: &TestCert, agent: &Agent) {
    let server = IpAddr::from(t.server_ip);
    let (c, k) = (
        cert.cert.to_str().unwrap_or_default(),
        cert.key.to_str().unwrap_or_default(),
    );
    for &(port, flag, require) in &SERVERS {
        // A client with a certificate where it is required, without one
        // where it is not asked for.
        let mut args = vec![flag, "-servername", SNI];
        if require {
            args.extend(["-cert", c, "-key", k]);
        }
        let summary = clients::s_client_with(t, server, port, &args);
        assert!(
            summary.contains(if flag == "-tls1_3" {
                "TLSv1.3"
            } else {
                "TLSv1.2"
            }),
            "{summary}"
        );
        let e = agent.edge_to(port, 1);
        let auth = if require { "mutual" } else { "server_only" };
        assert_eq!(e["client_auth"], serde_json::json!({ auth: 1 }), "{e}");
        if flag == "-tls1_2" {
            assert_eq!(
                e["cert_issues"],
                serde_json::json!({"self_signed": 1, "name_mismatch": 1}),
                "{e}"
            );
            assert!(e["cert_not_after"].is_string(), "{e}");
            // TestCert is valid for 2 days: its notAfter is ahead, within 3.
            let not_after = agent.value(
                "plainsight_tls_certificate_expiry_timestamp_seconds",
                &[("server_port", &port.to_string())],
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            assert!(
                not_after > now && not_after < now + 3.0 * 86400.0,
                "{not_after} vs {now}"
            );
        } else {
            // TLS 1.3 encrypts the certificate.
            assert_eq!(e["cert_issues"], serde_json::json!({}), "{e}");
            assert!(e["cert_not_after"].is_null(), "{e}");
        }
    }
    for (auth, flows) in [("mutual", 2.0), ("server_only", 2.0), ("unknown", 0.0)] {
        let total: f64 = SERVERS
            .iter()
            .map(|(port, _, _)| {
                agent.value(
                    "plainsight_tls_client_auth_total",
                    &[("server_port", &port.to_string()), ("client_auth", auth)],
                )
            })
            .sum();
        assert_eq!(total, flows, "{auth}");
    }
    assert_eq!(
        agent.value(
            "plainsight_tls_certificates_total",
            &[("outcome", "checked")]
        ),
        2.0
    );
}

#[test]
fn cgroup_hook_reads_client_auth_and_server_certificates() {
    let t = Topology::new();
    let cert = TestCert::new();
    let dir = WorkDir::new("mtls");
    let _servers = start_servers(&t, &cert, &dir);
    let agent = Agent::on_cgroup(&t);
    client_auth_and_certificates_are_read(&t, &cert, &agent);
}

#[test]
fn tc_hook_reads_client_auth_and_server_certificates() {
    let t = Topology::new();
    let cert = TestCert::new();
    let dir = WorkDir::new("mtls");
    let _servers = start_servers(&t, &cert, &dir);
    let agent = Agent::on_tc(&t);
    client_auth_and_certificates_are_read(&t, &cert, &agent);
}

/// TLS 1.3 servers that accept only P-256 key shares, reached by clients
/// whose first key share is X25519: every handshake goes through a
/// HelloRetryRequest (PostgreSQL's default `ssl_ecdh_curve` does the same
/// to libpq), and the client's flight comes only after the second
/// ServerHello. With a certificate where required, without where not.
fn hello_retry_flows_are_read(t: &Topology, cert: &TestCert, agent: &Agent) {
    const REQUIRED: u16 = 4424;
    const NOT_ASKED: u16 = 4425;
    let dir = WorkDir::new("mtls-hrr");
    let ca = cert.cert.to_str().unwrap_or_default();
    let p256 = ["-groups", "P-256"];
    let _servers = [
        tls::s_server(
            t,
            cert,
            &dir,
            REQUIRED,
            "-tls1_3",
            &[&p256[..], &["-Verify", "1", "-CAfile", ca]].concat(),
        ),
        tls::s_server(t, cert, &dir, NOT_ASKED, "-tls1_3", &p256),
    ];
    let server = IpAddr::from(t.server_ip);
    let (c, k) = (
        cert.cert.to_str().unwrap_or_default(),
        cert.key.to_str().unwrap_or_default(),
    );
    for (port, with_cert, auth) in [
        (REQUIRED, true, "mutual"),
        (NOT_ASKED, false, "server_only"),
    ] {
        let mut args = vec!["-tls1_3", "-groups", "X25519:P-256", "-servername", SNI];
        if with_cert {
            args.extend(["-cert", c, "-key", k]);
        }
        let summary = clients::s_client_with(t, server, port, &args);
        // The retry chose P-256 over the offered X25519 share.
        assert!(
            summary.contains("TLSv1.3") && summary.contains("prime256v1"),
            "{summary}"
        );
        let e = agent.edge_to(port, 1);
        assert_eq!(e["client_auth"], serde_json::json!({ auth: 1 }), "{e}");
    }
}

#[test]
fn cgroup_hook_reads_client_auth_after_a_hello_retry_request() {
    let t = Topology::new();
    let cert = TestCert::new();
    let agent = Agent::on_cgroup(&t);
    hello_retry_flows_are_read(&t, &cert, &agent);
}

#[test]
fn tc_hook_reads_client_auth_after_a_hello_retry_request() {
    let t = Topology::new();
    let cert = TestCert::new();
    let agent = Agent::on_tc(&t);
    hello_retry_flows_are_read(&t, &cert, &agent);
}

/// nginx requiring (`ssl_verify_client on`) and offering (`optional`)
/// client certificates, reached by curl with a certificate on the first
/// and without one on the second, over TLS 1.2 and 1.3.
fn nginx_client_certificates_are_read(t: &Topology, cert: &TestCert, agent: &Agent) {
    let server = clients::url_host(IpAddr::from(t.server_ip));
    let (c, k) = (
        cert.cert.to_str().unwrap_or_default(),
        cert.key.to_str().unwrap_or_default(),
    );
    for (port, with_cert, auth) in [
        (VERIFY_ON_PORT, true, "mutual"),
        (VERIFY_OPTIONAL_PORT, false, "server_only"),
    ] {
        for version in [
            ["--tlsv1.2", "--tls-max", "1.2"],
            ["--tlsv1.3", "--tls-max", "1.3"],
        ] {
            let mut args = version.to_vec();
            if with_cert {
                args.extend(["--cert", c, "--key", k]);
            }
            let body = clients::curl(t, &args, &format!("https://{server}:{port}/"));
            assert_eq!(body.trim(), "tls", "{port} {version:?}");
        }
        let e = agent.edge_to(port, 2);
        assert_eq!(e["client_auth"], serde_json::json!({ auth: 2 }), "{e}");
    }
}

#[test]
fn cgroup_hook_reads_nginx_client_certificates() {
    let t = Topology::new();
    let cert = TestCert::new();
    let _nginx = Nginx::start_client_cert(&t, &cert);
    let agent = Agent::on_cgroup(&t);
    nginx_client_certificates_are_read(&t, &cert, &agent);
}

#[test]
fn tc_hook_reads_nginx_client_certificates() {
    let t = Topology::new();
    let cert = TestCert::new();
    let _nginx = Nginx::start_client_cert(&t, &cert);
    let agent = Agent::on_tc(&t);
    nginx_client_certificates_are_read(&t, &cert, &agent);
}

/// Edges on /api/v1/edges to `port` with `encryption`, once there is one.
fn edge_with(agent: &Agent, port: u16, encryption: &str, flows: u64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, body) = agent.get("/api/v1/edges").expect("GET /api/v1/edges");
        let v: serde_json::Value = serde_json::from_str(&body).expect("edges JSON");
        let found = v["edges"].as_array().and_then(|a| {
            a.iter()
                .find(|e| {
                    e["server_port"] == port && e["encryption"] == encryption && e["flows"] == flows
                })
                .cloned()
        });
        match found {
            Some(e) => return e,
            None if std::time::Instant::now() > deadline => {
                panic!("no {encryption} edge to port {port} with {flows} flows: {body}")
            }
            None => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// One live path first served by a real TLS server, then, on the same
/// address and port, by a plaintext one: a `plaintext` downgrade. And a
/// server that asks for an optional client certificate (`-verify`) reached
/// first with one, then without: a `client_auth` downgrade. Metric, API
/// and the log line name each.
#[test]
fn a_path_that_drops_tls_or_client_certificates_is_a_downgrade() {
    const PORT: u16 = 4430;
    const OPTIONAL: u16 = 4431;
    let t = Topology::new();
    let cert = TestCert::new();
    let dir = WorkDir::new("downgrade");
    let server = IpAddr::from(t.server_ip);
    let (c, k, ca) = (
        cert.cert.to_str().unwrap_or_default(),
        cert.key.to_str().unwrap_or_default(),
        cert.cert.to_str().unwrap_or_default(),
    );
    let optional = tls::s_server(
        &t,
        &cert,
        &dir,
        OPTIONAL,
        "-tls1_2",
        &["-verify", "1", "-CAfile", ca],
    );
    let agent = Agent::on_cgroup(&t);

    // TLS first ...
    let tls_server = tls::s_server(&t, &cert, &dir, PORT, "-tls1_2", &[]);
    let summary = clients::s_client_with(&t, server, PORT, &["-tls1_2", "-servername", SNI]);
    assert!(summary.contains("TLSv1.2"), "{summary}");
    let e = edge_with(&agent, PORT, "tls", 1);
    assert_eq!(e["downgrades"], serde_json::json!({}), "{e}");
    drop(tls_server);
    // ... then plaintext on the same port.
    let listen = format!("TCP-LISTEN:{PORT},fork,reuseaddr");
    let plain = Daemon::start(
        &t,
        &["socat", &listen, "EXEC:cat"],
        dir.join("socat.log"),
        &[PORT],
        libc::SIGTERM,
    );
    let echoed = clients::socat(&t, server, PORT, "account=42 balance=100\n");
    assert!(echoed.contains("balance"), "{echoed}");
    let e = edge_with(&agent, PORT, "plaintext", 1);
    assert_eq!(e["downgrades"], serde_json::json!({"plaintext": 1}), "{e}");
    let port_s = PORT.to_string();
    agent.wait_value(
        "plainsight_downgrades_total",
        &[("server_port", &port_s), ("kind", "plaintext")],
        1.0,
    );
    drop(plain);

    // Mutual, then server-only, on one server.
    let with = clients::s_client_with(&t, server, OPTIONAL, &["-tls1_2", "-cert", c, "-key", k]);
    assert!(with.contains("TLSv1.2"), "{with}");
    let e = edge_with(&agent, OPTIONAL, "tls", 1);
    assert_eq!(e["client_auth"], serde_json::json!({"mutual": 1}), "{e}");
    let without = clients::s_client_with(&t, server, OPTIONAL, &["-tls1_2"]);
    assert!(without.contains("TLSv1.2"), "{without}");
    let e = edge_with(&agent, OPTIONAL, "tls", 2);
    assert_eq!(
        e["client_auth"],
        serde_json::json!({"mutual": 1, "server_only": 1}),
        "{e}"
    );
    assert_eq!(
        e["downgrades"],
        serde_json::json!({"client_auth": 1}),
        "{e}"
    );
    agent.wait_value(
        "plainsight_downgrades_total",
        &[
            ("server_port", &OPTIONAL.to_string()),
            ("kind", "client_auth"),
        ],
        1.0,
    );
    drop(optional);

    // A real Prometheus with the shipped rules fires TLSDowngrade for both.
    let firing = firing_alerts(&agent, "TLSDowngrade", 2);
    let mut kinds: Vec<(String, String)> = firing
        .iter()
        .map(|s| (s.labels["server_port"].clone(), s.labels["kind"].clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (PORT.to_string(), "plaintext".to_owned()),
            (OPTIONAL.to_string(), "client_auth".to_owned())
        ]
    );

    let log = agent.log_text();
    assert!(
        log.contains(&format!(":{PORT}: plaintext went from tls to plaintext")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            ":{OPTIONAL}: client_auth went from mutual to server_only"
        )),
        "{log}"
    );
}

/// `[[policy.require]]` live: a rule requiring a client certificate and
/// TLS 1.2 on one server; a real `s_client` without a certificate breaks
/// the first (a violation naming `client_auth_required`), one with a
/// certificate keeps the edge `ok`.
#[test]
fn a_tls_flow_breaking_a_require_rule_is_a_violation_naming_it() {
    const PORT: u16 = 4432;
    let t = Topology::new();
    let cert = TestCert::new();
    let dir = WorkDir::new("require");
    let server = IpAddr::from(t.server_ip);
    let (c, k, ca) = (
        cert.cert.to_str().unwrap_or_default(),
        cert.key.to_str().unwrap_or_default(),
        cert.cert.to_str().unwrap_or_default(),
    );
    let _server = tls::s_server(
        &t,
        &cert,
        &dir,
        PORT,
        "-tls1_2",
        &["-verify", "1", "-CAfile", ca],
    );
    let cfg = dir.join("plainsight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[policy.require]]\nname = \"s-server-mtls\"\nowner = \"team-test\"\n\
             reason = \"only authenticated clients\"\nserver = \"{server}\"\nports = [{PORT}]\n\
             client_auth = \"mutual\"\nmin_tls = \"1.2\"\n"
        ),
    )
    .expect("writing config");
    let agent = Agent::on_cgroup_with(&t, &["--config", cfg.to_str().unwrap_or_default()]);

    let with = clients::s_client_with(&t, server, PORT, &["-tls1_2", "-cert", c, "-key", k]);
    assert!(with.contains("TLSv1.2"), "{with}");
    let ok = agent.edge_to(PORT, 1);
    assert_eq!(ok["policy"], "ok", "{ok}");
    assert_eq!(ok["reasons"], serde_json::json!({}), "{ok}");

    let without = clients::s_client_with(&t, server, PORT, &["-tls1_2"]);
    assert!(without.contains("TLSv1.2"), "{without}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let violation = loop {
        let (_, body) = agent.get("/api/v1/edges").expect("GET /api/v1/edges");
        let v: serde_json::Value = serde_json::from_str(&body).expect("edges JSON");
        if let Some(e) = v["edges"].as_array().and_then(|a| {
            a.iter()
                .find(|e| e["server_port"] == PORT && e["policy"] == "violation")
                .cloned()
        }) {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no violation: {body}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(violation["encryption"], "tls", "{violation}");
    assert_eq!(
        violation["reasons"],
        serde_json::json!({"client_auth_required": 1}),
        "{violation}"
    );
    agent.wait_value(
        "plainsight_flow_reasons_total",
        &[
            ("server_port", &PORT.to_string()),
            ("reason", "client_auth_required"),
        ],
        1.0,
    );
    // A real Prometheus with the shipped rules fires, for this one path:
    // TLSRequirementViolation (not PlaintextFlowViolation), and, as the
    // client dropped its certificate after sending one, MutualTLSMissing
    // and TLSDowngrade; the 2-day test certificate, TLSCertificateExpiringSoon.
    let firing = firing_alerts(&agent, ".+", 4);
    let mut names: Vec<(&str, &str)> = firing
        .iter()
        .map(|s| {
            (
                s.labels["alertname"].as_str(),
                s.labels.get("reason").map_or("", String::as_str),
            )
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            ("MutualTLSMissing", ""),
            ("TLSCertificateExpiringSoon", ""),
            ("TLSDowngrade", ""),
            ("TLSRequirementViolation", "client_auth_required")
        ],
        "{firing:?}"
    );
}

/// The alerts named by `alertname` (a regex) a real Prometheus with the
/// shipped rules, scraping `agent`, fires, once there are `n`.
fn firing_alerts(agent: &Agent, alertname: &str, n: usize) -> Vec<plainsight_tests::agent::Sample> {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus/plainsight-rules.yml");
    let prom = Prometheus::start_in(agent.netns.as_deref(), agent.addr, &[&rules]);
    prom.wait_for(
        &format!("ALERTS{{alertname=~\"{alertname}\",alertstate=\"firing\"}}"),
        std::time::Duration::from_secs(30),
        |s| s.len() >= n,
    )
}
