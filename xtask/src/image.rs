//! `cargo xtask image`: the static (musl) binary, checked, and the
//! `FROM scratch` container image of deploy/Containerfile built with buildah
//! — daemonless, no base image download — into an OCI archive,
//! target/image/plainsight_<version>.oci.tar.
//!
//! buildah keeps its storage under target/image/ (vfs driver: no overlay
//! mounts), so nothing is written to the machine's container store.

use crate::{setup, shell};
use anyhow::{Context as _, bail, ensure};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TARGET: &str = "x86_64-unknown-linux-musl";
/// Where deploy/Containerfile copies the binary from.
const STATIC_BINARY: &str = "target/x86_64-unknown-linux-musl/release/plainsight";

pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    // Rust's musl target brings its own C runtime; `ring` (rustls' crypto,
    // for the Kubernetes API client) compiles C, which needs musl-gcc.
    setup::rust_target(TARGET)?;
    setup::debian_packages(&["buildah", "binutils", "musl-tools"])?;
    shell::cargo_env(
        &["build", "--release", "--target", TARGET, "-p", "plainsight"],
        &[("CC_x86_64_unknown_linux_musl", OsStr::new("musl-gcc"))],
    )?;
    let bin = root.join(STATIC_BINARY);
    check_static(&bin)?;
    check_version(&mut Command::new(&bin))?;

    let store = root.join("target/image");
    let buildah = |args: &[&str]| -> anyhow::Result<String> {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(store.join("storage"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
        if !out.status.success() {
            bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let tag = format!("localhost/plainsight:{VERSION}");
    buildah(&[
        "bud",
        "--quiet",
        "-f",
        "deploy/Containerfile",
        "-t",
        &tag,
        ".",
    ])?;

    // The image's file system, as a container would see it: one file,
    // which runs with nothing else there (no libc, no loader).
    let ctr = buildah(&["from", &tag])?;
    let checked = (|| {
        let rootfs = PathBuf::from(buildah(&["mount", &ctr])?);
        let entries: Vec<String> = std::fs::read_dir(&rootfs)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        ensure!(
            entries == ["plainsight"],
            "the image holds {entries:?}, not just /plainsight"
        );
        check_version(Command::new("chroot").arg(&rootfs).arg("/plainsight"))
    })();
    buildah(&["rm", &ctr])?;
    checked?;

    let archive = store.join(format!("plainsight_{VERSION}.oci.tar"));
    let _ = std::fs::remove_file(&archive);
    buildah(&[
        "push",
        "--quiet",
        &tag,
        &format!("oci-archive:{}:{tag}", archive.display()),
    ])?;
    Ok(archive)
}

/// No program interpreter and no shared libraries: the binary runs on a
/// `FROM scratch` image.
fn check_static(bin: &Path) -> anyhow::Result<()> {
    let path = bin.display().to_string();
    let headers = shell::output("readelf", &["-lW", &path]).context("readelf -l")?;
    ensure!(
        !headers.contains("INTERP"),
        "{path} asks for a program interpreter: not static"
    );
    let dynamic = shell::output("readelf", &["-dW", &path]).context("readelf -d")?;
    ensure!(
        !dynamic.contains("(NEEDED)"),
        "{path} needs shared libraries:\n{dynamic}"
    );
    Ok(())
}

fn check_version(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .arg("--version")
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    let got = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && got.trim() == format!("plainsight {VERSION}"),
        "{cmd:?}: {got}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
