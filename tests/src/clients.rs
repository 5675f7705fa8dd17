//! Real clients, run to completion in the client namespace and inside the
//! child cgroup (so the cgroup hook sees them). Each opens exactly one TCP
//! connection and panics with its output when it fails: a verdict for a
//! connection that did not do its job would prove nothing.

use crate::topology::{Side, Topology, path_str};
use std::net::IpAddr;
use std::path::Path;

/// Runs `argv` (with `input` on stdin); returns its stdout, or panics with
/// its output when it exits non-zero.
pub fn run(t: &Topology, argv: &[&str], input: &[u8]) -> String {
    let out = t.run_input(Side::Client, true, argv, input);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{argv:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `host` as it goes in a URL or a `host:port`.
pub fn url_host(host: IpAddr) -> String {
    match host {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// `curl` with `extra` flags; asserts a 200 and returns the body.
pub fn curl(t: &Topology, extra: &[&str], url: &str) -> String {
    let mut argv = vec![
        "curl",
        "-sS",
        "-k",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
    ];
    argv.extend(extra);
    argv.push(url);
    let out = run(t, &argv, b"");
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    assert_eq!(code, "200", "curl {url}: {out}");
    body.to_owned()
}

/// `psql` running one query; returns its unaligned output.
pub fn psql(t: &Topology, conninfo: &str, sql: &str) -> String {
    run(t, &["psql", conninfo, "-Atqc", sql], b"")
}

/// `mariadb` running one query as root, with or without TLS; returns the
/// session's TLS version as the server sees it (empty without TLS).
pub fn mariadb(t: &Topology, host: IpAddr, port: u16, tls: bool) -> String {
    let (host, port) = (host.to_string(), port.to_string());
    run(
        t,
        &[
            "mariadb",
            "--no-defaults",
            "-h",
            &host,
            "-P",
            &port,
            "-u",
            "root",
            if tls { "--ssl" } else { "--skip-ssl" },
            "--connect-timeout=10",
            "-BNe",
            "SHOW SESSION STATUS LIKE 'Ssl_version'",
        ],
        b"",
    )
}

/// `redis-cli` with `extra` flags sending PING; asserts PONG.
pub fn redis_ping(t: &Topology, host: IpAddr, port: u16, extra: &[&str]) {
    let (host, port) = (host.to_string(), port.to_string());
    let mut argv = vec!["redis-cli", "-h", &host, "-p", &port, "--no-auth-warning"];
    argv.extend(extra);
    argv.push("PING");
    let out = run(t, &argv, b"");
    assert_eq!(out.trim(), "PONG", "redis-cli {extra:?}: {out}");
}

/// `ssh` logging in as root with `key` and running `echo`.
pub fn ssh(t: &Topology, host: IpAddr, port: u16, key: &Path) {
    let (host, port) = (format!("root@{host}"), port.to_string());
    let out = run(
        t,
        &[
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            path_str(key),
            "-p",
            &port,
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            &host,
            "echo",
            "logged-in",
        ],
        b"",
    );
    assert_eq!(out.trim(), "logged-in", "ssh: {out}");
}

/// `openssl s_client` completing a handshake with `version_flag` (e.g.
/// `-tls1_2`) and `cipher`; returns its `-brief` summary.
pub fn s_client(t: &Topology, host: IpAddr, port: u16, version_flag: &str, cipher: &str) -> String {
    s_client_with(t, host, port, &[version_flag, "-cipher", cipher])
}

/// `openssl s_client -brief` with `extra` flags, completing a handshake;
/// returns its summary.
pub fn s_client_with(t: &Topology, host: IpAddr, port: u16, extra: &[&str]) -> String {
    let connect = format!("{}:{port}", url_host(host));
    let mut argv = vec!["openssl", "s_client", "-brief", "-connect", &connect];
    argv.extend(extra);
    let out = t.run_input(Side::Client, true, &argv, b"");
    // -brief prints the handshake summary on stderr.
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && summary.contains("CONNECTION ESTABLISHED"),
        "s_client {connect} {extra:?}: {summary}"
    );
    summary
}

/// `socat` sending `text` and returning what came back.
pub fn socat(t: &Topology, host: IpAddr, port: u16, text: &str) -> String {
    let target = format!("TCP:{}:{port}", url_host(host));
    run(t, &["socat", "-t", "2", "-", &target], text.as_bytes())
}

/// A gRPC (h2c) client that makes one call, then one call per line of
/// input on the same HTTP/2 connection until its input ends: a
/// connection that outlives an agent restart (a mid-stream flow).
pub fn grpc_session(t: &Topology, host: IpAddr, port: u16) -> crate::Session {
    const CLIENT: &str = r#"
import sys
import grpc

target, method = sys.argv[1:3]
say = grpc.insecure_channel(target).unary_unary(method)
say(b"hello", timeout=10)
for line in sys.stdin:
    say(line.strip().encode(), timeout=10)
"#;
    let target = format!("{}:{port}", url_host(host));
    let argv = [
        crate::servers::grpc::PYTHON,
        "-c",
        CLIENT,
        &target,
        crate::servers::grpc::METHOD,
    ];
    t.session(Side::Client, true, &argv)
}

/// A gRPC call with `python3-grpcio` (one channel, one connection) to the
/// echo of `servers::grpc`: in the clear, or over TLS trusting `cert` (whose
/// name is `plainsight-test`). Returns the echoed text.
pub fn grpc(t: &Topology, host: IpAddr, port: u16, tls_cert: Option<&Path>, text: &str) -> String {
    const CLIENT: &str = r#"
import sys
import grpc

target, method, text = sys.argv[1:4]
if len(sys.argv) > 4:
    with open(sys.argv[4], "rb") as f:
        creds = grpc.ssl_channel_credentials(f.read())
    options = [("grpc.ssl_target_name_override", "plainsight-test")]
    channel = grpc.secure_channel(target, creds, options=options)
else:
    channel = grpc.insecure_channel(target)
print(channel.unary_unary(method)(text.encode(), timeout=10).decode())
"#;
    let target = format!("{}:{port}", url_host(host));
    let mut argv = vec![
        crate::servers::grpc::PYTHON,
        "-c",
        CLIENT,
        &target,
        crate::servers::grpc::METHOD,
        text,
    ];
    if let Some(cert) = tls_cert {
        argv.push(path_str(cert));
    }
    run(t, &argv, b"").trim_end().to_owned()
}
