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

/// FreeTDS `tsql` logging in with freetds.conf's `encryption` set to
/// `encryption` (`off` sends NOT_SUP, `request` OFF, `require` ON). The
/// stand-in server never completes the login, so tsql fails after its
/// LOGIN7: the caller checks what the server saw instead.
pub fn tsql(t: &Topology, host: IpAddr, port: u16, encryption: &str) {
    let dir = crate::WorkDir::new("tsql");
    let conf = dir.join("freetds.conf");
    std::fs::write(
        &conf,
        format!("[srv]\n  host = {host}\n  port = {port}\n  tds version = 7.4\n  encryption = {encryption}\n"),
    )
    .expect("writing freetds.conf");
    let env = format!("FREETDSCONF={}", path_str(&conf));
    let argv = [
        "env",
        &env,
        "timeout",
        "10",
        "tsql",
        "-S",
        "srv",
        "-U",
        "sa",
        "-P",
        "Matrix-pw1",
    ];
    let out = t.run_input(Side::Client, true, &argv, b"");
    assert_ne!(out.status.code(), Some(124), "tsql hung: {argv:?}");
}

/// A NATS client over TLS (Python's `ssl`, i.e. OpenSSL, as nats-py does
/// it): reads the server's `INFO` in clear, checks it requires TLS, starts
/// the handshake, then `CONNECT`, `PUB` and `PING` inside it until `PONG`.
/// Debian packages no NATS client program. Returns the TLS version.
pub fn nats_tls(t: &Topology, host: IpAddr, port: u16) -> String {
    const CLIENT: &str = r#"
import socket, ssl, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
info = b""
while not info.endswith(b"\r\n"):
    info += sock.recv(1)
assert info.startswith(b"INFO {") and b'"tls_required":true' in info, info
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(sock)
tls.sendall(b'CONNECT {"verbose":false,"tls_required":true}\r\nPUB orders 4\r\n1042\r\nPING\r\n')
got = b""
while b"PONG\r\n" not in got:
    chunk = tls.recv(4096)
    assert chunk, got
    got += chunk
print(tls.version())
"#;
    let (host, port) = (host.to_string(), port.to_string());
    run(t, &["/usr/bin/python3", "-c", CLIENT, &host, &port], b"")
        .trim()
        .to_owned()
}

/// kazoo (Debian's `python3-kazoo`) creating a znode and reading it back;
/// returns what it read. kazoo retries until the server takes sessions (it
/// listens before it does).
pub fn zookeeper(t: &Topology, host: IpAddr, port: u16) -> String {
    const CLIENT: &str = r#"
import sys, uuid
from kazoo.client import KazooClient
zk = KazooClient(hosts=f"{sys.argv[1]}:{sys.argv[2]}")
zk.start(timeout=30)
path = "/orders-" + uuid.uuid4().hex
zk.create(path, b"order 1042")
print(zk.get(path)[0].decode())
zk.stop()
zk.close()
"#;
    let (host, port) = (host.to_string(), port.to_string());
    run(t, &["/usr/bin/python3", "-c", CLIENT, &host, &port], b"")
        .trim()
        .to_owned()
}

/// `smbclient` listing `share` as `user` (`--client-protection=encrypt`
/// when `encrypt`); returns the listing.
pub fn smbclient(
    t: &Topology,
    conf: &Path,
    host: IpAddr,
    share: &str,
    user_pw: &str,
    encrypt: bool,
) -> String {
    let service = format!("//{host}/{share}");
    let mut argv = vec![
        "smbclient",
        "-s",
        path_str(conf),
        "-U",
        user_pw,
        &service,
        "-c",
        "ls",
    ];
    if encrypt {
        argv.push("--client-protection=encrypt");
    }
    run(t, &argv, b"")
}

/// Debian's python3-slixmpp logging in to `servers::prosody` with
/// STARTTLS required, sending presence and fetching the roster.
pub fn xmpp_starttls(t: &Topology, host: IpAddr, port: u16, jid: &str, password: &str) -> String {
    const CLIENT: &str = r#"
import asyncio, ssl, sys, slixmpp
host, port, jid, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class C(slixmpp.ClientXMPP):
    def __init__(s):
        super().__init__(jid, password)
        s.ssl_context.check_hostname = False
        s.ssl_context.verify_mode = ssl.CERT_NONE
        s.add_event_handler("session_start", s.start)
        s.add_event_handler("failed_auth", lambda e: s.disconnect())
    async def start(s, e):
        s.send_presence()
        await s.get_roster()
        print("session started")
        s.disconnect()
c = C()
c.connect((host, port), use_ssl=False, force_starttls=True)
asyncio.get_event_loop().run_until_complete(asyncio.wait_for(c.disconnected, 20))
"#;
    let (host, port) = (host.to_string(), port.to_string());
    run(
        t,
        &[
            "/usr/bin/python3",
            "-c",
            CLIENT,
            &host,
            &port,
            jid,
            password,
        ],
        b"",
    )
}
