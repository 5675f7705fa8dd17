//! `plainsight replay` as a user runs it: output, exit status and error
//! messages, on the committed loopback captures and broken copies of them.

use std::{path::PathBuf, process::Command};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn replay(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_plainsight"))
        .arg("replay")
        .args(args)
        .output()
        .expect("running plainsight");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A copy of a test capture cut to `len` bytes, in a temp dir.
fn truncated_copy(name: &str, len: usize) -> (tempdir::Dir, PathBuf) {
    let bytes = std::fs::read(data(name)).expect("test capture");
    let dir = tempdir::Dir::new();
    let path = dir.0.join(name);
    std::fs::write(&path, &bytes[..len.min(bytes.len())]).expect("writing");
    (dir, path)
}

/// A temp dir removed on drop (no extra crate for one helper).
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "plainsight-replay-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn edge_table() {
    let path = data("loopback.pcap");
    let r = replay(&[path.to_str().unwrap_or_default()]);
    assert!(r.ok, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let cols = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cols(lines[0]),
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
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| cols(l)).collect();
    assert_eq!(rows.len(), 3, "{}", r.stdout);
    // Violations first, as `plainsight edges` prints them.
    assert_eq!(
        rows[1][..8],
        [
            "::1",
            "::1",
            "18081",
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
            "127.0.0.1",
            "127.0.0.1",
            "18443",
            "tls",
            "tls",
            "server_only",
            "ok",
            "2"
        ]
    );
    // RFC 3339 UTC.
    assert!(
        rows[0][8].len() == 20 && rows[0][8].ends_with('Z') && rows[0][8].contains('T'),
        "{}",
        rows[0][8]
    );
    // Columns line up: every row has the header's LAST-SEEN offset.
    let at = lines[0].find("LAST-SEEN").unwrap_or_default();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.len() > at && &l[at - 2..at] == "  ")
    );
    assert!(
        r.stderr.contains("60 packets, 60 TCP segments, 4 flows"),
        "{}",
        r.stderr
    );
}

#[test]
fn json_lines() {
    let path = data("loopback.pcapng");
    let r = replay(&["--json", path.to_str().unwrap_or_default()]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 4);
    assert!(r.stdout.lines().any(|l| l
        == r#"{"client":"[::1]:34916","server":"[::1]:18081","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"::1","server_identity":"::1","policy":"violation","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#));
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn truncated_capture_prints_flows_then_fails_naming_file_and_offset() {
    let full = std::fs::metadata(data("loopback.pcap")).map_or(0, |m| m.len() as usize);
    let (_dir, path) = truncated_copy("loopback.pcap", full - 20);
    let p = path.to_str().unwrap_or_default();
    let r = replay(&["--json", p]);
    assert!(!r.ok);
    assert_eq!(
        r.stdout.lines().count(),
        4,
        "flows read so far:\n{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains(&format!("{p}: truncated packet record at byte offset ")),
        "{}",
        r.stderr
    );
    // The table too comes before the error.
    let r = replay(&[p]);
    assert!(!r.ok);
    assert!(r.stdout.starts_with("CLIENT"), "{}", r.stdout);
}

#[test]
fn not_a_capture_says_so() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let p = manifest.to_str().unwrap_or_default();
    let r = replay(&[p]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains(&format!(
            "{p}: not a pcap or pcapng capture (it starts with "
        )),
        "{}",
        r.stderr
    );
    let r = replay(&["/nonexistent/x.pcap"]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("/nonexistent/x.pcap: No such file"),
        "{}",
        r.stderr
    );
}

/// A config file in a temp dir.
fn config(text: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("plainsight.toml");
    std::fs::write(&path, text).expect("writing the config");
    (dir, path)
}

const POLICY: &str = r#"
[identities]
"127.0.0.0/8" = "local"
"::1" = "local6"

[[policy.allow]]
name = "status-page"
owner = "team-web"
reason = "loopback status page"
server = "local"
ports = [18080]
protocols = ["http"]

[[policy.allow]]
name = "old-v6"
owner = "team-net"
reason = "v6 rollout"
server = "::1/128"
expires = 2020-01-01
"#;

#[test]
fn a_config_names_and_judges_the_flows() {
    let (_dir, cfg) = config(POLICY);
    let cap = data("loopback.pcapng");
    let (cfg, cap) = (
        cfg.to_str().unwrap_or_default(),
        cap.to_str().unwrap_or_default(),
    );
    let r = replay(&["--json", "--config", cfg, cap]);
    assert!(r.ok, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.contains(&r#"{"client":"127.0.0.1:43138","server":"127.0.0.1:18080","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"local","server_identity":"local","policy":"allowed","rule":"status-page","sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#), "{}", r.stdout);
    assert!(lines.contains(&r#"{"client":"[::1]:34916","server":"[::1]:18081","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"local6","server_identity":"local6","policy":"violation","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#), "{}", r.stdout);
    assert_eq!(
        r.stderr,
        "warning: allow-rule \"old-v6\" (owner team-net) expired at 2020-01-01T00:00:00Z; it no longer allows anything\n"
    );

    let r = replay(&["--config", cfg, cap]);
    assert!(r.ok, "{}", r.stderr);
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    assert_eq!(
        rows[1][..8],
        [
            "local6",
            "local6",
            "18081",
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
            "local",
            "local",
            "18080",
            "http",
            "plaintext",
            "-",
            "allowed",
            "1"
        ]
    );
    assert_eq!(
        rows[3][..8],
        [
            "local",
            "local",
            "18443",
            "tls",
            "tls",
            "server_only",
            "ok",
            "2"
        ]
    );
}

#[test]
fn a_bad_config_fails_before_any_output() {
    let (_dir, cfg) = config("[identities]\n\"10.0.0.0/33\" = \"x\"\n[edges]\nmax = 0\n");
    let cap = data("loopback.pcapng");
    for json in [true, false] {
        let mut args = vec!["--config", cfg.to_str().unwrap_or_default()];
        if json {
            args.push("--json");
        }
        args.push(cap.to_str().unwrap_or_default());
        let r = replay(&args);
        assert!(!r.ok);
        assert_eq!(r.stdout, "", "nothing printed");
        assert!(
            r.stderr
                .contains(r#"identities."10.0.0.0/33": "10.0.0.0/33" is not a CIDR"#)
                && r.stderr.contains("edges.max: must be at least 1"),
            "{}",
            r.stderr
        );
    }
    let r = replay(&[
        "--config",
        "/nonexistent/p.toml",
        cap.to_str().unwrap_or_default(),
    ]);
    assert!(!r.ok);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("reading config /nonexistent/p.toml"),
        "{}",
        r.stderr
    );
}

/// AJP, STOMP, RDP and ZooKeeper between real clients and servers
/// (`tests/data/capture-eastwest.sh`): every flow of each protocol gets its
/// protocol's one verdict, and each protocol is there (the capture has each
/// flow twice: client → recording proxy → server).
#[test]
fn east_west_protocols_from_real_clients() {
    let path = data("eastwest.pcap");
    let r = replay(&["--json", path.to_str().unwrap_or_default()]);
    assert!(r.ok, "{}", r.stderr);
    let expected = [
        ("ajp", "plaintext", None, 2),
        ("stomp", "plaintext", Some("cleartext_credentials"), 2),
        ("rdp", "tls", Some("starttls_upgraded"), 2),
        // kazoo's readiness session and the recorded one (twice).
        ("zookeeper", "plaintext", None, 3),
    ];
    for (protocol, encryption, reason, at_least) in expected {
        let flows: Vec<serde_json::Value> = r
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .filter(|f: &serde_json::Value| f["protocol"] == protocol)
            .collect();
        assert!(
            flows.len() >= at_least,
            "{protocol}: {} flows in\n{}",
            flows.len(),
            r.stdout
        );
        for f in flows {
            assert_eq!(f["encryption"], encryption, "{f}");
            assert_eq!(f["reason"].as_str(), reason, "{f}");
            assert_eq!(f["midstream"], false, "{f}");
        }
    }
}
