//! `cargo xtask fuzz [--secs N]`: installs what fuzzing needs (nightly,
//! cargo-fuzz; idempotent as setup is), writes each target's seeds from the
//! project's fixtures, builds every target of fuzz/ and runs each for a
//! bounded time. A crash, a failed assertion or a hang fails the task, with
//! the input that did it saved under target/fuzz/artifacts/<target>/.
//!
//! Everything lives under target/fuzz: `build/` (cargo's), `seeds/`
//! (rewritten each run, never committed), `corpus/` (what the fuzzer found
//! interesting, kept between local runs), `logs/`, `artifacts/`.

use crate::{setup, shell};
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Pinned cargo-fuzz.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The targets (fuzz/Cargo.toml's `[[bin]]`s) and where their seeds come
/// from; `run` checks this against `cargo fuzz list`.
const TARGETS: &[(&str, Seeds)] = &[
    ("classifier", Seeds::Sessions),
    ("tracker", Seeds::Sessions),
    ("tls_hello", Seeds::TlsRecords),
    ("certificate", Seeds::TlsRecords),
    ("capture", Seeds::Captures),
    ("config", Seeds::Config),
    ("ftp_data", Seeds::FtpLines),
];

#[derive(Clone, Copy)]
enum Seeds {
    /// Each classifier fixture session as a handshake, its chunks in their
    /// recorded order, and both FINs (the format of fuzz/src/lib.rs).
    Sessions,
    /// Every fixture chunk that starts with a TLS handshake record.
    TlsRecords,
    /// The replay tests' captures.
    Captures,
    /// Every fixture chunk that is an FTP data-connection announcement
    /// (`227`/`229` replies, `PORT`/`EPRT` commands).
    FtpLines,
    /// The default configuration, as shipped and with its commented
    /// examples (allow-rules with expiry dates, identities) switched on.
    Config,
}

const FIXTURES: &str = "agent-common/tests/fixtures";

pub fn run(root: &Path, secs: u32) -> anyhow::Result<()> {
    setup::nightly()?;
    cargo_fuzz()?;
    let dir = root.join("target/fuzz");
    let started = Instant::now();
    // No sanitizer: the code under test is safe Rust, where AddressSanitizer
    // finds nothing the bounds checks miss; without it the build is
    // minutes shorter and the targets run several times faster. Debug
    // assertions stay on (cargo-fuzz's default), so overflows panic.
    shell::status(&mut cargo_fuzz_cmd(&dir, &["build"]))?;
    eprintln!("fuzz: built in {:.0} s", started.elapsed().as_secs_f64());
    let listed = cargo_fuzz_cmd(&dir, &["list"])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo fuzz list")?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    let mut listed: Vec<&str> = listed.lines().map(str::trim).collect();
    listed.sort_unstable();
    let mut known: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    known.sort_unstable();
    if listed != known {
        bail!("fuzz/ has targets {listed:?}, xtask/src/fuzz.rs knows {known:?}: keep them in step");
    }
    let mut failed = Vec::new();
    for &(target, seeds) in TARGETS {
        let seed_dir = dir.join("seeds").join(target);
        let n = write_seeds(root, seeds, &seed_dir)?;
        match run_target(&dir, target, &seed_dir, secs) {
            Ok(stats) => eprintln!("fuzz: {target}: {stats} ({n} seeds)"),
            Err(e) => {
                eprintln!("fuzz: {target}: FAILED: {e:#}");
                failed.push(target);
            }
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

fn cargo_fuzz() -> anyhow::Result<()> {
    let have = shell::output("cargo", &["fuzz", "--version"]);
    if have.is_some_and(|v| v.contains(CARGO_FUZZ_VERSION)) {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    shell::status(Command::new("cargo").args([
        "install",
        "--locked",
        "--force",
        "--version",
        CARGO_FUZZ_VERSION,
        "cargo-fuzz",
    ]))
}

/// `cargo +nightly fuzz <sub>` on fuzz/, building into target/fuzz/build.
fn cargo_fuzz_cmd(dir: &Path, sub: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz"])
        .args(sub)
        .args(["--fuzz-dir", "fuzz"]);
    if sub != ["list"] {
        cmd.args(["--sanitizer", "none", "--target-dir"])
            .arg(dir.join("build"));
    }
    // The agent's parsers need none of its kernel programs.
    cmd.env("AYA_BUILD_SKIP", "1");
    cmd
}

/// Runs one target for `secs` seconds; libFuzzer's closing statistics, or
/// the end of its log and the saved input when it found something.
fn run_target(dir: &Path, target: &str, seeds: &Path, secs: u32) -> anyhow::Result<String> {
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    let logs = dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut prefix = artifacts.into_os_string();
    prefix.push("/");
    let mut artifact_arg = std::ffi::OsString::from("-artifact_prefix=");
    artifact_arg.push(&prefix);
    let st = cargo_fuzz_cmd(dir, &["run", target])
        .arg(&corpus)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        // An input that takes this long is a hang (the targets take
        // microseconds).
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .arg(artifact_arg)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("starting cargo fuzz run")?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !st.success() {
        for line in what_failed(&text) {
            eprintln!("  {line}");
        }
        bail!(
            "{st}; log {}, crashing input in {}",
            log_path.display(),
            prefix.to_string_lossy()
        );
    }
    let stat = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .map_or("?", str::trim)
            .to_owned()
    };
    Ok(format!(
        "{} runs in {secs} s ({}/s), 0 crashes, corpus {} inputs",
        stat("number_of_executed_units"),
        stat("average_exec_per_sec"),
        std::fs::read_dir(&corpus).map_or(0, Iterator::count)
    ))
}

/// The lines of a failed run's log that say what happened: the panic
/// message (not its backtrace) and libFuzzer's verdict and saved input.
fn what_failed(log: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_panic = false;
    for line in log.lines() {
        if line.contains("panicked at") {
            in_panic = true;
        } else if line.starts_with("stack backtrace") || line.starts_with("note:") {
            in_panic = false;
        }
        if in_panic
            || line.contains("ERROR: libFuzzer")
            || line.starts_with("SUMMARY:")
            || line.contains("Test unit written")
        {
            out.push(line);
        }
    }
    out
}

/// Writes a target's seeds into `out` (emptied first); their count.
fn write_seeds(root: &Path, seeds: Seeds, out: &Path) -> anyhow::Result<usize> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let files: Vec<(String, Vec<u8>)> = match seeds {
        Seeds::Sessions => sessions(&root.join(FIXTURES))?
            .into_iter()
            .map(|(name, chunks)| (name, session_seed(&chunks)))
            .collect(),
        Seeds::TlsRecords => sorted_files(&root.join(FIXTURES), ".bin")?
            .into_iter()
            .filter_map(|p| {
                let b = std::fs::read(&p).ok()?;
                (b.first() == Some(&0x16)).then(|| (file_name(&p), b))
            })
            .collect(),
        Seeds::FtpLines => sorted_files(&root.join(FIXTURES), ".bin")?
            .into_iter()
            .filter_map(|p| {
                let b = std::fs::read(&p).ok()?;
                let head = b.get(..5)?.to_ascii_uppercase();
                [&b"227 "[..], b"229 ", b"PORT ", b"EPRT "]
                    .iter()
                    .any(|w| head.starts_with(w))
                    .then(|| (file_name(&p), b))
            })
            .collect(),
        Seeds::Captures => ["pcap", "pcapng"]
            .iter()
            .map(|ext| sorted_files(&root.join("agent/tests/data"), &format!(".{ext}")))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .map(|p| Ok((file_name(&p), std::fs::read(&p)?)))
            .collect::<anyhow::Result<_>>()?,
        Seeds::Config => {
            let text = std::fs::read_to_string(root.join("deploy/config/plainsight.toml"))?;
            vec![
                ("plainsight.toml".into(), uncommented(&text).into_bytes()),
                ("plainsight.toml.default".into(), text.into_bytes()),
            ]
        }
    };
    if files.is_empty() {
        bail!("no seeds found for {}", out.display());
    }
    for (name, bytes) in &files {
        std::fs::write(out.join(name), bytes)?;
    }
    Ok(files.len())
}

/// The configuration with its commented-out settings (`# key = value`,
/// `# "10.0.0.0/8" = "name"`, `# [[policy.allow]]`) uncommented and their
/// command-line flag notes (`[--kubeconfig]`) dropped.
fn uncommented(text: &str) -> String {
    let setting = |l: &str| {
        let key = l.split(" = ").next().unwrap_or_default();
        l.starts_with("[[")
            || (l.contains(" = ")
                && (key.starts_with('"')
                    || key.chars().all(|c| c.is_ascii_lowercase() || c == '_')))
    };
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(l) if setting(l) => l
                .rfind("  [--")
                .map_or(l, |at| l.get(..at).unwrap_or(l))
                .trim_end(),
            _ => line,
        })
        .fold(String::new(), |acc, l| acc + l + "\n")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_files(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    Ok(v)
}

/// Each fixture session: its chunks in recorded order, each with whether
/// the server sent it (fixtures/README.md: `<session>.order` lists
/// `c2s.<n>`/`s2c.<n>`, each the file `<session>.<that>.bin`).
fn sessions(fixtures: &Path) -> anyhow::Result<Vec<(String, Vec<Chunk>)>> {
    sorted_files(fixtures, ".order")?
        .into_iter()
        .map(|order| {
            let name = file_name(&order);
            let session = name.trim_end_matches(".order");
            let chunks = std::fs::read_to_string(&order)?
                .split_whitespace()
                .map(|chunk| {
                    let bin = fixtures.join(format!("{session}.{chunk}.bin"));
                    let bytes = std::fs::read(&bin)
                        .with_context(|| format!("{} names {}", order.display(), bin.display()))?;
                    Ok((chunk.starts_with("s2c"), bytes))
                })
                .collect::<anyhow::Result<_>>()?;
            Ok((session.to_owned(), chunks))
        })
        .collect()
}

/// One fixture chunk: whether the server sent it, and its bytes.
type Chunk = (bool, Vec<u8>);

/// Control bits of fuzz/src/lib.rs's segment records.
const FROM_SERVER: u8 = 1;
const SYN: u8 = 1 << 1;
const ACK: u8 = 1 << 2;
const FIN: u8 = 1 << 3;

/// A session in the segment-record format of fuzz/src/lib.rs: handshake,
/// chunks (each cut to a record's 255 bytes; the classifier reads 128),
/// both FINs; sequence numbers follow on (mode 0).
fn session_seed(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut record = |ctrl: u8, payload: &[u8]| {
        let payload = payload.get(..255).unwrap_or(payload);
        out.extend([ctrl, payload.len() as u8]);
        out.extend_from_slice(payload);
    };
    record(SYN, b"");
    record(FROM_SERVER | SYN | ACK, b"");
    record(ACK, b"");
    for (from_server, bytes) in chunks {
        record(if *from_server { FROM_SERVER } else { 0 } | ACK, bytes);
    }
    record(FIN | ACK, b"");
    record(FROM_SERVER | FIN | ACK, b"");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_seed_is_handshake_chunks_and_fins() {
        let long = vec![b'x'; 300];
        let seed = session_seed(&[(false, b"GET".to_vec()), (true, long)]);
        let mut want = vec![SYN, 0, FROM_SERVER | SYN | ACK, 0, ACK, 0, ACK, 3];
        want.extend(b"GET");
        want.extend([FROM_SERVER | ACK, 255]);
        want.extend([b'x'; 255]);
        want.extend([FIN | ACK, 0, FROM_SERVER | FIN | ACK, 0]);
        assert_eq!(seed, want);
    }

    #[test]
    fn uncommented_switches_on_settings_not_prose() {
        let text = "# Names for networks = prose\n\
                    # \"10.0.9.9\" = \"bastion\"\n\
                    # kubeconfig = \"/k\"            [--kubeconfig]\n\
                    #\n\
                    # [[policy.allow]]\n\
                    # expires = 2027-01-01\n\
                    max = 1\n";
        assert_eq!(
            uncommented(text),
            "# Names for networks = prose\n\
             \"10.0.9.9\" = \"bastion\"\n\
             kubeconfig = \"/k\"\n\
             #\n\
             [[policy.allow]]\n\
             expires = 2027-01-01\n\
             max = 1\n"
        );
    }
}
