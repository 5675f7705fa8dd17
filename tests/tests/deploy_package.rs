//! The packages: the `.deb` that `cargo xtask package` builds (its files,
//! control fields, conffiles and maintainer scripts, lintian, and the unit
//! and binary it installs) and the `Containerfile` of the container image.
//!
//! Every tool is required: a missing one fails the test with how to install
//! it, never skips it.

use plainsight_tests::files::{deploy, read, root, scratch};
use plainsight_tests::systemd::{copy_host_units, systemd_analyze};
use plainsight_tests::tools::{require_tool, run, run_ok, text};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// target/debian/plainsight_<version>_amd64.deb, built by `cargo xtask
/// package` (and by `cargo xtask test` before the tests run).
fn deb() -> PathBuf {
    let deb = root().join(format!("target/debian/plainsight_{VERSION}_amd64.deb"));
    let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(deb_time) = built(&deb) else {
        panic!(
            "{} not found: run `cargo xtask package` (`cargo xtask test` does)",
            deb.display()
        );
    };
    let bin = plainsight_tests::plainsight_bin();
    assert!(
        built(&bin).is_some_and(|b| b <= deb_time),
        "{} is older than {}: run `cargo xtask package`",
        deb.display(),
        bin.display()
    );
    deb
}

fn dpkg_deb(args: &[&str]) -> String {
    run_ok(Command::new("dpkg-deb").args(args).arg(deb()))
}

#[test]
fn deb_has_exactly_its_files_with_root_ownership_and_modes() {
    // (mode, path) of every file; directories are all 0755.
    let want: BTreeSet<(&str, &str)> = [
        ("-rwxr-xr-x", "./usr/bin/plainsight"),
        ("-rw-r--r--", "./lib/systemd/system/plainsight.service"),
        ("-rw-r--r--", "./etc/plainsight/plainsight.toml"),
        ("-rw-r--r--", "./usr/share/doc/plainsight/copyright"),
        ("-rw-r--r--", "./usr/share/doc/plainsight/changelog.gz"),
        ("-rw-r--r--", "./usr/share/lintian/overrides/plainsight"),
        (
            "-rw-r--r--",
            "./usr/share/plainsight/prometheus/plainsight-rules.yml",
        ),
        (
            "-rw-r--r--",
            "./usr/share/plainsight/grafana/plainsight.json",
        ),
    ]
    .into_iter()
    .collect();
    let listing = dpkg_deb(&["--contents"]);
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (f[0], f[1], f[5]);
        assert_eq!(owner, "root/root", "{line}");
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{line}");
        } else {
            files.insert((mode, path));
        }
    }
    assert_eq!(files, want, "files in the package:\n{listing}");
}

#[test]
fn deb_control_fields_conffiles_and_maintainer_scripts() {
    let field = |name: &str| {
        dpkg_deb(&["--field"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };
    assert_eq!(field("Package").as_deref(), Some("plainsight"));
    assert_eq!(field("Version").as_deref(), Some(VERSION));
    assert_eq!(field("Architecture").as_deref(), Some("amd64"));
    let depends = field("Depends").expect("Depends");
    assert!(
        depends.contains("libc6 (>= "),
        "Depends from dpkg-shlibdeps: {depends}"
    );

    let dir = scratch("deb-control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(deb())
            .arg(&dir),
    );
    assert_eq!(
        read(&dir.join("conffiles")),
        "/etc/plainsight/plainsight.toml\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    for script in ["postinst", "prerm", "postrm"] {
        let p = dir.join(script);
        let mode = std::fs::metadata(&p).expect(script).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} mode");
        run_ok(Command::new("sh").arg("-n").arg(&p));
        assert!(read(&p).contains("\nset -e\n"), "{script}: set -e");
    }
    // Start and stop only when systemd runs (not in a chroot or an image
    // build), through deb-systemd-invoke (which honours policy-rc.d);
    // enable through deb-systemd-helper (which keeps an admin's disable).
    let postinst = read(&dir.join("postinst"));
    let guarded = postinst
        .split("[ -d /run/systemd/system ]")
        .nth(1)
        .expect("postinst checks for a running systemd");
    assert!(
        guarded.contains(r#"deb-systemd-invoke "$action""#),
        "postinst starts the unit"
    );
    assert!(
        !postinst
            .split("[ -d /run/systemd/system ]")
            .next()
            .unwrap_or("")
            .contains("deb-systemd-invoke")
    );
    assert!(
        postinst.contains("was-enabled")
            && postinst.contains(r#"deb-systemd-helper enable "$unit""#)
    );
    assert!(!postinst.contains("systemctl start") && !postinst.contains("systemctl enable"));
    let prerm = read(&dir.join("prerm"));
    assert!(
        prerm.contains("[ -d /run/systemd/system ]")
            && prerm.contains("deb-systemd-invoke stop plainsight.service")
    );
    assert!(read(&dir.join("postrm")).contains(r#"deb-systemd-helper purge "$unit""#));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deb_passes_lintian() {
    let lintian = require_tool(
        "lintian",
        "install Debian's `lintian` (`cargo xtask setup` does)",
    );
    let out = run(Command::new(lintian)
        .args(["--fail-on", "error,warning"])
        .arg(deb()));
    let tags: Vec<String> = text(&out)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .map(str::to_owned)
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian ({}):\n{}",
        out.status,
        text(&out)
    );
}

/// The package as installed, without installing it: extracted, its unit
/// verified by systemd against its own binary, and that binary run.
#[test]
fn deb_installs_a_unit_that_verifies_and_a_binary_that_runs() {
    let dir = scratch("deb-root");
    run_ok(Command::new("dpkg").arg("-x").arg(deb()).arg(&dir));
    copy_host_units(&dir);
    let unit = "/lib/systemd/system/plainsight.service";
    let out = run(Command::new(systemd_analyze())
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg(unit));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify {unit} from the package ({}):\n{}",
        out.status,
        text(&out)
    );
    for (shipped, source) in [
        (unit, "systemd/plainsight.service"),
        (
            "/usr/share/plainsight/prometheus/plainsight-rules.yml",
            "prometheus/plainsight-rules.yml",
        ),
        (
            "/usr/share/plainsight/grafana/plainsight.json",
            "grafana/plainsight.json",
        ),
    ] {
        assert_eq!(
            read(&dir.join(&shipped[1..])),
            read(&deploy(source)),
            "{shipped}"
        );
    }
    let version = run_ok(Command::new(dir.join("usr/bin/plainsight")).arg("--version"));
    assert_eq!(version.trim(), format!("plainsight {VERSION}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn containerfile_needs_no_base_image() {
    let cf = read(&deploy("Containerfile"));
    let instructions: Vec<&str> = cf
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms, [&"FROM scratch"], "a base image would be downloaded");
    let readme = read(&deploy("README.md"));
    let target = "target/x86_64-unknown-linux-musl/release/plainsight";
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("COPY ") && l.contains(target)),
        "the Containerfile copies the musl build ({target})"
    );
    assert!(
        readme.contains("cargo build --release --target x86_64-unknown-linux-musl -p plainsight"),
        "deploy/README.md documents the musl build"
    );
    // The build context is the repository root: everything but the binary
    // is ignored (else gigabytes of target/ are sent to the builder).
    for ignore in [".containerignore", ".dockerignore"] {
        let text = read(&root().join(ignore));
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(rules, ["*", &format!("!{target}")], "{ignore}");
    }
    assert!(
        instructions.contains(&r#"ENTRYPOINT ["/plainsight"]"#),
        "the DaemonSet's args start with `run`: the entrypoint is the binary"
    );
}
