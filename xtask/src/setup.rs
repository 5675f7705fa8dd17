//! `cargo xtask setup`: everything a fresh machine needs, installed once.
//! Each step checks before it acts, so a second run only checks (seconds).

use crate::shell;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The kernel programs build with nightly (`-Z build-std=core`).
const NIGHTLY: &str = "nightly";
/// Pinned bpf-linker; it must link the same LLVM major as nightly (22 here).
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
/// Debian packages the tests and the demo use.
/// `prometheus` brings promtool and the server the end-to-end matrix scrapes
/// the agent with, `systemd` systemd-analyze and `util-linux` setpriv
/// (tests/tests/deploy_*.rs and privileges.rs); `dpkg-dev` (dpkg-shlibdeps)
/// and `binutils` (strip) build the .deb (xtask/src/package.rs), `lintian` checks it; the
/// servers and clients from `postgresql` on are the end-to-end matrix's
/// (tests/tests/matrix.rs) and the dashboard test's (redis), each started by
/// the test itself in a network namespace, never as a system service
/// (`python3-grpcio` is the matrix's gRPC server and client, `freetds-bin`'s
/// `tsql` its SQL Server client; `nats-server`, `samba` + `smbclient`,
/// `prosody` + `python3-slixmpp`, `zookeeper` + `python3-kazoo` its NATS,
/// SMB, XMPP and ZooKeeper servers and clients);
/// `chromium` renders the edge page and the report (tests/tests/page.rs,
/// driven over its DevTools pipe), `poppler-utils` reads the printed report
/// back.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "bpftool",
    "curl",
    "openssl",
    "ca-certificates",
    "prometheus",
    "systemd",
    "util-linux",
    "dpkg-dev",
    "binutils",
    "lintian",
    "postgresql",
    "postgresql-client",
    "mariadb-server",
    "mariadb-client",
    "redis-server",
    "redis-tools",
    "nginx",
    "openssh-server",
    "openssh-client",
    "socat",
    "python3-grpcio",
    "freetds-bin",
    "nats-server",
    "samba",
    "smbclient",
    "prosody",
    "python3-slixmpp",
    "zookeeper",
    "python3-kazoo",
    "chromium",
    "poppler-utils",
];

/// Debian packages only the bench uses (installed by `cargo xtask bench`,
/// not by the default setup): the load, the offload switch, the DPI peer.
pub const BENCH_PACKAGES: &[&str] = &["iperf3", "ethtool", "libndpi-bin"];

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    nightly_with_rust_src()?;
    bpf_linker()?;
    debian_packages(DEBIAN_PACKAGES)?;
    eprintln!("setup: ready ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
        PathBuf::from,
    )
}

/// `cargo install` puts bpf-linker in $CARGO_HOME/bin; make sure the builds
/// we start can find it even when PATH lacks that directory.
pub fn add_cargo_bin_to_path() {
    let bin = cargo_home().join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|p| p == bin) {
        let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
            .expect("PATH entries contain no separator");
        // SAFETY: single-threaded at this point of xtask's start.
        unsafe { std::env::set_var("PATH", joined) };
    }
}

/// The nightly toolchain (the kernel programs and the fuzz targets build
/// with it), installed with rust-src if it is missing.
pub fn nightly() -> anyhow::Result<()> {
    let toolchains = shell::output("rustup", &["toolchain", "list"]).context("rustup not found")?;
    if !toolchains.lines().any(|l| l.starts_with(NIGHTLY)) {
        eprintln!("setup: installing the {NIGHTLY} toolchain");
        shell::status(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    Ok(())
}

fn nightly_with_rust_src() -> anyhow::Result<()> {
    nightly()?;
    let installed = shell::output(
        "rustup",
        &["component", "list", "--toolchain", NIGHTLY, "--installed"],
    )
    .unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: adding rust-src to {NIGHTLY}");
        shell::status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            NIGHTLY,
        ]))?;
    }
    Ok(())
}

/// nightly's own libLLVM (bpf-linker links against it, so their LLVM
/// versions match by construction).
fn nightly_llvm() -> anyhow::Result<PathBuf> {
    let sysroot = shell::output("rustc", &[&format!("+{NIGHTLY}"), "--print", "sysroot"])
        .context("rustc +nightly --print sysroot")?;
    let lib = Path::new(sysroot.trim()).join("lib");
    std::fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .with_context(|| format!("no libLLVM.so.*-rust-* in {}", lib.display()))
}

fn bpf_linker() -> anyhow::Result<()> {
    let llvm = nightly_llvm()?;
    let stamp = cargo_home().join(".plainsight-bpf-linker");
    let want = format!("{BPF_LINKER_VERSION} {}\n", llvm.display());
    let works =
        shell::output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    if works && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        llvm.display()
    );
    // llvm-sys wants a prefix whose lib/libLLVM.so is the library to link.
    let prefix = std::env::temp_dir().join(format!("plainsight-llvm-{}", std::process::id()));
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)?;
    let libdir = llvm.parent().context("libLLVM has a directory")?;
    let result = shell::status(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "install",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
                "bpf-linker",
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM_FEATURE,
            ])
            .env("LLVM_PREFIX", &prefix)
            // Find nightly's libLLVM at run time without LD_LIBRARY_PATH.
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", libdir.display()),
            ),
    );
    let _ = std::fs::remove_dir_all(&prefix);
    result?;
    if !shell::output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        bail!("bpf-linker was installed but `bpf-linker --version` does not run");
    }
    std::fs::write(&stamp, want).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// Adds a rustup target (its standard library) unless it is there.
pub fn rust_target(target: &str) -> anyhow::Result<()> {
    let installed = shell::output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    eprintln!("setup: adding the {target} target");
    shell::status(Command::new("rustup").args(["target", "add", target]))
}

/// Installs the packages of `wanted` that dpkg does not list as installed.
pub fn debian_packages(wanted: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| {
            !shell::output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages {}", missing.join(" "));
    let install = |missing: &[&str]| {
        shell::status(
            Command::new("apt-get")
                // Wait for another apt (a colleague's setup) to finish.
                .args(["-o", "DPkg::Lock::Timeout=300"])
                .args(["install", "-y", "--no-install-recommends"])
                .args(missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install(&missing).is_err() {
        // A fresh machine may have no package lists yet.
        shell::status(
            Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        install(&missing).context("apt-get install (setup needs root on Debian)")?;
    }
    Ok(())
}
