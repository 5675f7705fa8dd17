//! `plainsight replay` over the capture corpus (../shared/corpus, see its
//! README.md) against the expected verdict of every flow in EXPECTED.tsv.
//!
//! The corpus is found at $PLAINSIGHT_CORPUS, else <workspace>/../shared/corpus;
//! the test fails, never skips, when it is missing.
//!
//! The classifier does not know every protocol yet, so rows it still gets
//! wrong are listed in `corpus-known-gaps.tsv` beside this file. The test
//! fails when a row outside that list mismatches (a regression), and when a
//! listed row now matches (the list only shrinks: remove the row). After
//! classifier work, regenerate the list from the current results with
//!
//!     PLAINSIGHT_CORPUS_WRITE_GAPS=1 cargo test -p plainsight --test corpus
//!
//! and review its diff. `-- --nocapture` shows the summary on success too.

use plainsight::replay::{FlowRecord, replay_file};
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
};

const GAPS_FILE: &str = "tests/corpus-known-gaps.tsv";
const GAPS_HEADER: &str = "file\tclient\tserver\texpected\tgot";

/// `$PLAINSIGHT_CORPUS`, else `../shared/corpus` beside the workspace, else
/// `/work/shared/corpus` (where these machines keep it, for clones made
/// elsewhere). Missing everywhere is a failure, not a skip.
fn corpus() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("PLAINSIGHT_CORPUS") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
            PathBuf::from("/work/shared/corpus"),
        ],
    };
    let found = candidates.iter().find(|d| d.join("EXPECTED.tsv").is_file());
    let Some(dir) = found else {
        panic!(
            "the capture corpus is missing: no EXPECTED.tsv in {candidates:?} (set PLAINSIGHT_CORPUS to its folder)"
        );
    };
    dir.clone()
}

/// A TSV file as rows of column name -> value.
fn read_tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t').chain(std::iter::repeat("")))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// One flow's verdict in the corpus's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Summary {
    client: String,
    server: String,
    encryption: String,
    protocol: String,
    reason: String,
    tls_version: String,
    midstream: bool,
}

impl Summary {
    fn expected(row: &HashMap<String, String>) -> Self {
        let col = |k: &str| row.get(k).cloned().unwrap_or_default();
        Self {
            client: col("client"),
            server: col("server"),
            encryption: col("encryption"),
            protocol: col("protocol"),
            reason: col("reason"),
            tls_version: col("tls_version"),
            // `start` is full | no-handshake | midstream; the last two have
            // no SYN, which is what replay's `midstream` means.
            midstream: col("start") != "full",
        }
    }

    fn got(r: &FlowRecord) -> Self {
        let v = &r.verdict;
        Self {
            client: r.client.to_string(),
            server: r.server.to_string(),
            encryption: v.encryption.as_str().to_owned(),
            protocol: v.protocol.as_str().to_owned(),
            reason: v.reason.as_str().to_owned(),
            tls_version: match v.tls_version {
                agent_common::TlsVersion::Unknown => String::new(),
                t => t.as_str().to_owned(),
            },
            midstream: r.midstream,
        }
    }

    /// Per the corpus README, a TLS flow whose inner protocol is named may
    /// be reported as plain `tls`.
    fn matches(&self, want: &Self) -> bool {
        let protocol_ok =
            self.protocol == want.protocol || (want.encryption == "tls" && self.protocol == "tls");
        protocol_ok
            && Self {
                protocol: want.protocol.clone(),
                ..self.clone()
            } == *want
    }

    /// The verdict part, for the gaps file and messages.
    fn text(&self) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        format!(
            "{} {} reason={} tls={} midstream={}",
            self.encryption,
            self.protocol,
            dash(&self.reason),
            dash(&self.tls_version),
            self.midstream
        )
    }
}

/// The flow replay found for an expected row, as text for the gaps file.
fn describe(got: Option<&Summary>, want: &Summary) -> String {
    match got {
        None => "no flow".to_owned(),
        Some(g) if g.client != want.client => format!("{} (client {})", g.text(), g.client),
        Some(g) => g.text(),
    }
}

struct Row {
    file: String,
    want: Summary,
    got: Option<Summary>,
}

impl Row {
    fn key(&self) -> (String, String, String) {
        (
            self.file.clone(),
            self.want.client.clone(),
            self.want.server.clone(),
        )
    }

    fn ok(&self) -> bool {
        self.got.as_ref().is_some_and(|g| g.matches(&self.want))
    }
}

/// Replays every file EXPECTED.tsv names and pairs each row with the flow
/// between the same two endpoints (in either role).
fn results(dir: &Path) -> (Vec<Row>, Vec<String>) {
    let expected = read_tsv(&dir.join("EXPECTED.tsv"));
    let mut by_file: BTreeMap<String, Vec<Summary>> = BTreeMap::new();
    for row in &expected {
        let file = row.get("file").cloned().unwrap_or_default();
        by_file.entry(file).or_default();
    }
    for (file, flows) in &mut by_file {
        let mut records = Vec::new();
        replay_file(&dir.join(file), &mut |r| records.push(r))
            .unwrap_or_else(|e| panic!("replay failed: {e}"));
        flows.extend(records.iter().map(Summary::got));
    }
    let mut rows = Vec::new();
    for row in &expected {
        let file = row.get("file").cloned().unwrap_or_default();
        let want = Summary::expected(row);
        let flows = by_file.entry(file.clone()).or_default();
        let same_pair = |g: &Summary| {
            (g.client == want.client && g.server == want.server)
                || (g.client == want.server && g.server == want.client)
        };
        let got = flows.iter().position(same_pair).map(|i| flows.remove(i));
        rows.push(Row { file, want, got });
    }
    // Flows replay reports that EXPECTED.tsv does not list.
    let extra = by_file
        .iter()
        .flat_map(|(f, flows)| {
            flows
                .iter()
                .map(move |g| format!("{f}: {} -> {} {}", g.client, g.server, g.text()))
        })
        .collect();
    (rows, extra)
}

fn gaps_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(GAPS_FILE)
}

fn read_gaps() -> BTreeMap<(String, String, String), (String, String)> {
    read_tsv(&gaps_path())
        .into_iter()
        .map(|r| {
            let c = |k: &str| r.get(k).cloned().unwrap_or_default();
            (
                (c("file"), c("client"), c("server")),
                (c("expected"), c("got")),
            )
        })
        .collect()
}

fn write_gaps(rows: &[Row]) {
    let mut out = format!("{GAPS_HEADER}\n");
    for r in rows.iter().filter(|r| !r.ok()) {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            r.file,
            r.want.client,
            r.want.server,
            r.want.text(),
            describe(r.got.as_ref(), &r.want)
        );
    }
    std::fs::write(gaps_path(), out).unwrap_or_else(|e| panic!("writing {GAPS_FILE}: {e}"));
}

#[test]
fn corpus_verdicts_match_expected_tsv() {
    let dir = corpus();
    let (rows, extra) = results(&dir);
    if std::env::var_os("PLAINSIGHT_CORPUS_WRITE_GAPS").is_some_and(|v| v == "1") {
        write_gaps(&rows);
        println!("rewrote {GAPS_FILE}");
    }
    let gaps = read_gaps();

    let mut regressions = Vec::new();
    let mut fixed = Vec::new();
    let mut stale = Vec::new();
    // protocol -> (rows, matched, known gaps)
    let mut by_protocol: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for r in &rows {
        let got = describe(r.got.as_ref(), &r.want);
        let line = format!(
            "{}\t{}\t{}\texpected: {}\tgot: {got}",
            r.file,
            r.want.client,
            r.want.server,
            r.want.text()
        );
        let e = by_protocol.entry(r.want.protocol.clone()).or_default();
        e.0 += 1;
        match (r.ok(), gaps.get(&r.key())) {
            (true, None) => e.1 += 1,
            (true, Some(_)) => {
                e.1 += 1;
                fixed.push(line);
            }
            (false, None) => regressions.push(line),
            (false, Some((_, listed))) => {
                e.2 += 1;
                if *listed != got {
                    stale.push(format!("{line}\t(listed as: {listed})"));
                }
            }
        }
    }
    let unknown_gaps: Vec<String> = gaps
        .keys()
        .filter(|k| !rows.iter().any(|r| r.key() == **k))
        .map(|(f, c, s)| format!("{f}\t{c}\t{s}"))
        .collect();

    let matched = rows.iter().filter(|r| r.ok()).count();
    let known = rows.len() - matched - regressions.len();
    let mut report = format!(
        "corpus: {} rows, {matched} match, {known} known gaps, {} regressions, {} fixed\n\
         {:<12} {:>5} {:>6} {:>5}\n",
        rows.len(),
        regressions.len(),
        fixed.len(),
        "protocol",
        "rows",
        "match",
        "gaps"
    );
    for (p, (n, m, g)) in &by_protocol {
        let _ = writeln!(report, "{p:<12} {n:>5} {m:>6} {g:>5}");
    }
    for (title, list) in [
        ("flows replay found that EXPECTED.tsv does not list", &extra),
        ("known gaps whose result changed (still wrong)", &stale),
    ] {
        if !list.is_empty() {
            let _ = writeln!(report, "{title}:\n  {}", list.join("\n  "));
        }
    }
    println!("{report}");

    let mut failures = String::new();
    for (title, list) in [
        (
            "REGRESSIONS (not in the known gaps, do not match)",
            &regressions,
        ),
        (
            "FIXED: these match now; remove them from tests/corpus-known-gaps.tsv",
            &fixed,
        ),
        ("known gaps that name no EXPECTED.tsv row", &unknown_gaps),
    ] {
        if !list.is_empty() {
            let _ = writeln!(failures, "{title}:\n  {}", list.join("\n  "));
        }
    }
    assert!(
        failures.is_empty(),
        "{failures}\n(PLAINSIGHT_CORPUS_WRITE_GAPS=1 rewrites the gaps file from these results)"
    );
}

#[test]
fn replay_reads_every_capture_in_the_manifest() {
    let dir = corpus();
    let manifest = read_tsv(&dir.join("MANIFEST.tsv"));
    assert!(
        manifest.len() > 100,
        "{} files in MANIFEST.tsv",
        manifest.len()
    );
    let mut failed = Vec::new();
    for row in &manifest {
        let file = row.get("file").cloned().unwrap_or_default();
        let mut flows = 0;
        match replay_file(&dir.join(&file), &mut |_| flows += 1) {
            Ok(stats) => {
                if stats.malformed > 0 || !stats.unsupported_links.is_empty() {
                    failed.push(format!("{file}: unreadable packets: {stats:?}"));
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Addresses in EXPECTED.tsv parse the way replay prints them.
#[test]
fn expected_addresses_are_socket_addresses() {
    for row in read_tsv(&corpus().join("EXPECTED.tsv")) {
        for k in ["client", "server"] {
            let a = row.get(k).cloned().unwrap_or_default();
            let parsed: SocketAddr = a.parse().unwrap_or_else(|e| panic!("{a}: {e}"));
            assert_eq!(parsed.to_string(), a);
        }
    }
}

/// The TLS hello metadata replay reads from the corpus's handshakes: the
/// inner protocol of every TLS row labelled with one that no upgrade path
/// names (so ALPN must: 443-curl and long_tls_certificate select `h2`), and
/// the server names of hellos tshark shows with SNI.
#[test]
fn tls_hellos_name_the_server_and_the_inner_protocol() {
    let dir = corpus();
    let flows_of = |file: &str| {
        let mut records = Vec::new();
        replay_file(&dir.join(file), &mut |r| records.push(r))
            .unwrap_or_else(|e| panic!("replay failed: {e}"));
        records
    };
    let mut checked = 0;
    for row in read_tsv(&dir.join("EXPECTED.tsv")) {
        let col = |k: &str| row.get(k).cloned().unwrap_or_default();
        if col("encryption") != "tls" || ["tls", "unknown"].contains(&col("protocol").as_str()) {
            continue;
        }
        // A label plainsight has no name for yet (`xmpp`): ALPN cannot name
        // it either; the verdict test lists such rows as known gaps.
        if !agent_common::Protocol::ALL
            .iter()
            .any(|p| p.as_str() == col("protocol"))
        {
            continue;
        }
        let flows = flows_of(&col("file"));
        let f = flows
            .iter()
            .find(|r| r.client.to_string() == col("client"))
            .unwrap_or_else(|| panic!("{} {}: no flow", col("file"), col("client")));
        if f.verdict.protocol != agent_common::Protocol::Tls {
            continue; // named by the upgrade (STARTTLS, SSLRequest...)
        }
        let inner = f.tls.inner_protocol().map(agent_common::Protocol::as_str);
        assert_eq!(inner, Some(col("protocol").as_str()), "{row:?}");
        checked += 1;
    }
    assert_eq!(checked, 2, "443-curl and long_tls_certificate");
    for (file, sni) in [
        ("443-curl.pcap", "www.ntop.org"),
        ("chrome-1250-tls-x25519-kyber.pcap", "lh3.google.com"),
        (
            "psql-aws-ssl-require.pcap",
            "database-1.cyx4x7yvdoay.us-east-1.rds.amazonaws.com",
        ),
        ("tls_ech.pcapng", "performance.radar.cloudflare.com"),
    ] {
        let flows = flows_of(file);
        assert!(
            flows.iter().any(|r| r.tls.sni.as_deref() == Some(sni)),
            "{file}: {flows:?}"
        );
    }
}
