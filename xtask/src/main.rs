//! Developer and CI tasks: `cargo xtask <task>`.

mod demo;
mod fuzz;
mod image;
mod package;
mod setup;
mod shell;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(about = "plainsight developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what builds and tests need (nightly rust-src, bpf-linker,
    /// Debian packages). Idempotent: a second run only checks.
    Setup,
    /// Set up, then build the release `plainsight` binary.
    Build,
    /// Build, then run `plainsight run` on this node's root cgroup with
    /// metrics on 127.0.0.1:9477. Extra arguments go to `plainsight run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run every test: unit tests and the privileged
    /// end-to-end tests (needs root).
    Test,
    /// Set up, build, then the Debian package
    /// target/debian/plainsight_<version>_amd64.deb (binary, systemd unit,
    /// /etc/plainsight/plainsight.toml, alert rules, dashboard).
    Package,
    /// The static (musl) binary, checked static and run, and the `FROM
    /// scratch` image of deploy/Containerfile built with buildah into
    /// target/image/plainsight_<version>.oci.tar. Not part of `test`: the
    /// second (musl) build of the agent takes minutes on a fresh machine.
    Image,
    /// Formatting and clippy, as CI checks them.
    Lint,
    /// Install nightly and cargo-fuzz if missing, build the fuzz targets of
    /// fuzz/ and run each for `--secs` seconds (CI: 20), seeded from the
    /// fixtures; fails on a crash, a failed assertion or a hang.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 20)]
        secs: u32,
    },
    /// Show plainsight at work on its own network namespaces: an HTTP and a
    /// TLS server, real clients, and the agent's verdicts.
    Demo,
    /// Set up, build, then measure what plainsight costs, side by side with
    /// no agent and with ndpiReader, on the bench's own namespaces (needs
    /// root; about 6 min, `--quick` about 1). Prints a table and writes
    /// target/bench/*.json. Arguments go to the bench
    /// (`cargo xtask bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root).context("entering the workspace")?;
    setup::add_cargo_bin_to_path();
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build => {
            setup::run()?;
            build()
        }
        Task::Run { args } => {
            setup::run()?;
            build()?;
            run(&args)
        }
        Task::Test => {
            setup::run()?;
            build()?;
            // tests/tests/deploy_package.rs inspects the package.
            package::build(&root)?;
            test()
        }
        Task::Package => {
            setup::run()?;
            build()?;
            let deb = package::build(&root)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Image => {
            setup::run()?;
            let started = std::time::Instant::now();
            let archive = image::build(&root)?;
            let size = std::fs::metadata(&archive)?.len();
            println!(
                "{} ({:.1} MiB, {:.0} s)",
                archive.display(),
                size as f64 / f64::from(1u32 << 20),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Task::Lint => lint(),
        Task::Fuzz { secs } => fuzz::run(&root, secs),
        Task::Demo => {
            setup::run()?;
            build()?;
            demo::run(&root.join("target/release/plainsight"))
        }
        Task::Bench { args } => {
            setup::run()?;
            setup::debian_packages(setup::BENCH_PACKAGES)?;
            build()?;
            // Built only now: it links the agent's kernel programs and its
            // own floor programs, which need what setup installed.
            shell::cargo(&["build", "--release", "-p", "plainsight-bench"])?;
            shell::status(
                std::process::Command::new("target/release/plainsight-bench")
                    .args(["--plainsight", "target/release/plainsight"])
                    .args(&args),
            )
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn build() -> anyhow::Result<()> {
    shell::cargo(&["build", "--release", "-p", "plainsight"])
}

fn run(args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let listen_given = args
        .iter()
        .any(|a| a == "--listen" || a.starts_with("--listen="));
    let mut cmd = std::process::Command::new("target/release/plainsight");
    cmd.arg("run");
    if !listen_given {
        cmd.args(["--listen", "127.0.0.1:9477"]);
        println!(
            "plainsight: metrics will be on http://127.0.0.1:9477/metrics (Ctrl-C stops and detaches)"
        );
    }
    cmd.args(args);
    // Replace this process so Ctrl-C and SIGTERM reach the agent directly.
    Err(cmd.exec()).context("starting target/release/plainsight")
}

fn test() -> anyhow::Result<()> {
    let bin = workspace_root().join("target/release/plainsight");
    // Unit tests, then the privileged end-to-end suite against the release
    // binary just built.
    shell::cargo_env(
        &["test", "--", "--test-threads=2"],
        &[("PLAINSIGHT_BIN", bin.as_os_str())],
    )
}

fn lint() -> anyhow::Result<()> {
    shell::cargo(&["fmt", "--all", "--check"])?;
    // The fuzz targets are their own workspace (fuzz/Cargo.toml).
    shell::cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])?;
    // Host crates (the default members) skip the eBPF build (AYA_BUILD_SKIP):
    // linting them must not need bpf-linker.
    shell::cargo_env(
        &["clippy", "--all-targets", "--", "-D", "warnings"],
        &[("AYA_BUILD_SKIP", std::ffi::OsStr::new("1"))],
    )?;
    // The fuzz targets' own workspace, in the same target directory (most
    // of its dependencies are the agent's, already checked above).
    shell::cargo_env(
        &[
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--target-dir",
            "target",
            "--",
            "-D",
            "warnings",
        ],
        &[("AYA_BUILD_SKIP", std::ffi::OsStr::new("1"))],
    )?;
    // The kernel crates are linted for their own target, with the toolchain
    // they build with (nightly + rust-src: setup installs them).
    setup::run()?;
    shell::status(std::process::Command::new("cargo").args([
        "+nightly",
        "clippy",
        "-p",
        "agent-ebpf",
        "-p",
        "bench-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]))
}
