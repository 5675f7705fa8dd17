//! `cargo xtask package`: the Debian package,
//! target/debian/plainsight_<version>_amd64.deb, built with `dpkg-deb`.
//!
//! Why not cargo-deb: it is one more tool to compile (minutes on these
//! machines) for what is a directory tree and an `ar` archive; `dpkg-deb`
//! and `dpkg-shlibdeps` are Debian's own tools, already here, and every file,
//! mode and maintainer script is spelled out below and in deploy/debian/.

use crate::shell;
use anyhow::{Context as _, bail};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// (source in the workspace, path in the package, mode).
const FILES: &[(&str, &str, u32)] = &[
    ("target/release/plainsight", "usr/bin/plainsight", 0o755),
    (
        "deploy/systemd/plainsight.service",
        "lib/systemd/system/plainsight.service",
        0o644,
    ),
    (
        "deploy/config/plainsight.toml",
        "etc/plainsight/plainsight.toml",
        0o644,
    ),
    (
        "deploy/debian/copyright",
        "usr/share/doc/plainsight/copyright",
        0o644,
    ),
    (
        "deploy/debian/lintian-overrides",
        "usr/share/lintian/overrides/plainsight",
        0o644,
    ),
    (
        "deploy/prometheus/plainsight-rules.yml",
        "usr/share/plainsight/prometheus/plainsight-rules.yml",
        0o644,
    ),
    (
        "deploy/grafana/plainsight.json",
        "usr/share/plainsight/grafana/plainsight.json",
        0o644,
    ),
];

/// Control-area files from deploy/debian/ (control is filled in below).
const CONTROL: &[(&str, u32)] = &[
    ("conffiles", 0o644),
    ("postinst", 0o755),
    ("prerm", 0o755),
    ("postrm", 0o755),
];

pub fn deb_path(root: &Path) -> PathBuf {
    root.join(format!("target/debian/plainsight_{VERSION}_amd64.deb"))
}

/// Builds the package from the release binary already built; returns its path.
pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    let work = root.join("target/debian/build");
    // The layout dpkg-shlibdeps expects: debian/<package>/ is the tree.
    let tree = work.join("debian/plainsight");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    for (src, dst, mode) in FILES {
        install(&root.join(src), &tree.join(dst), *mode)?;
    }
    // Debug symbols are not shipped (lintian: unstripped-binary-or-object).
    shell::status(
        Command::new("strip")
            .arg("--strip-unneeded")
            .arg(tree.join("usr/bin/plainsight")),
    )?;
    changelog(root, &tree)?;

    let debian = tree.join("DEBIAN");
    for (name, mode) in CONTROL {
        install(
            &root.join("deploy/debian").join(name),
            &debian.join(name),
            *mode,
        )?;
    }
    md5sums(&tree)?;
    let control = std::fs::read_to_string(root.join("deploy/debian/control"))?
        .replace("${version}", VERSION)
        .replace("${installed_size}", &installed_kib(&tree)?.to_string())
        .replace("${depends}", &shlib_depends(&work)?);
    write(&debian.join("control"), &control, 0o644)?;
    dirs_0755(&tree)?;

    let deb = deb_path(root);
    shell::status(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&tree)
            .arg(&deb),
    )?;
    Ok(deb)
}

fn install(src: &Path, dst: &Path, mode: u32) -> anyhow::Result<()> {
    let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    write_bytes(dst, &bytes, mode)
}

fn write(dst: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    write_bytes(dst, text.as_bytes(), mode)
}

fn write_bytes(dst: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst.parent().context("file in a directory")?)?;
    std::fs::write(dst, bytes).with_context(|| format!("writing {}", dst.display()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Every directory of the tree 0755, whatever the umask was.
fn dirs_0755(dir: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            dirs_0755(&e.path())?;
        }
    }
    Ok(())
}

/// deploy/debian/changelog, gzipped reproducibly (policy: changelog.gz for a
/// native package). Its version must be the workspace's.
fn changelog(root: &Path, tree: &Path) -> anyhow::Result<()> {
    let src = root.join("deploy/debian/changelog");
    let text = std::fs::read_to_string(&src)?;
    let want = format!("plainsight ({VERSION}) ");
    if !text.starts_with(&want) {
        bail!(
            "{} does not start with `{want}`: add an entry for {VERSION}",
            src.display()
        );
    }
    let out = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(&src)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!(
            "gzip {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    write_bytes(
        &tree.join("usr/share/doc/plainsight/changelog.gz"),
        &out.stdout,
        0o644,
    )
}

/// DEBIAN/md5sums over every file outside DEBIAN/ (what `dpkg --verify` checks).
fn md5sums(tree: &Path) -> anyhow::Result<()> {
    let mut files: Vec<String> = FILES.iter().map(|(_, dst, _)| (*dst).to_owned()).collect();
    files.push("usr/share/doc/plainsight/changelog.gz".into());
    files.sort();
    let out = Command::new("md5sum")
        .args(&files)
        .current_dir(tree)
        .output()
        .context("running md5sum")?;
    if !out.status.success() {
        bail!("md5sum: {}", String::from_utf8_lossy(&out.stderr));
    }
    write_bytes(&tree.join("DEBIAN/md5sums"), &out.stdout, 0o644)
}

/// Installed-Size: the tree's size in KiB, as `du -sk` counts it.
fn installed_kib(tree: &Path) -> anyhow::Result<u64> {
    let out = shell::output(
        "du",
        &["-sk", "--exclude=DEBIAN", &tree.display().to_string()],
    )
    .context("running du")?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("parsing du's output")
}

/// The binary's library dependencies as Debian names them (`libc6 (>= 2.34),
/// ...`), from `dpkg-shlibdeps`, which reads the symbol versions it uses.
fn shlib_depends(work: &Path) -> anyhow::Result<String> {
    std::fs::write(
        work.join("debian/control"),
        "Source: plainsight\n\nPackage: plainsight\nArchitecture: amd64\n",
    )?;
    let out = Command::new("dpkg-shlibdeps")
        .args(["-O", "-e", "debian/plainsight/usr/bin/plainsight"])
        .current_dir(work)
        .output()
        .context("running dpkg-shlibdeps (Debian package dpkg-dev)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("shlibs:Depends=") {
        Some(deps) if out.status.success() => Ok(deps.to_owned()),
        _ => bail!(
            "dpkg-shlibdeps: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
