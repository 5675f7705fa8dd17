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
            "POLICY",
            "FLOWS",
            "LAST-SEEN"
        ]
    );
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| cols(l)).collect();
    assert_eq!(rows.len(), 3, "{}", r.stdout);
    // Violations first, as `plainsight edges` prints them.
    assert_eq!(
        rows[1][..7],
        ["::1", "::1", "18081", "http", "plaintext", "violation", "1"]
    );
    assert_eq!(
        rows[2][..7],
        ["127.0.0.1", "127.0.0.1", "18443", "tls", "tls", "ok", "2"]
    );
    // RFC 3339 UTC.
    assert!(
        rows[0][7].len() == 20 && rows[0][7].ends_with('Z') && rows[0][7].contains('T'),
        "{}",
        rows[0][7]
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
        == r#"{"client":"[::1]:34916","server":"[::1]:18081","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null}"#));
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
