//! `systemd-analyze` on plainsight's unit without booting it: a root
//! directory holding the host's unit files, the unit and its binary, for
//! `--root` (no systemd as PID 1 is needed, e.g. in a container).

use crate::files::{deploy, scratch};
use crate::tools::{require_tool, run};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// deploy/systemd/plainsight.service.
pub fn unit_path() -> PathBuf {
    deploy("systemd/plainsight.service")
}

/// A root directory for `systemd-analyze --root`: the host's unit files
/// (targets the unit refers to), the unit under test, and a stand-in for
/// /usr/bin/plainsight (verify checks that ExecStart is executable).
pub fn analyze_root(unit_text: &str) -> PathBuf {
    let dir = scratch("systemd-root");
    copy_host_units(&dir);
    std::fs::create_dir_all(dir.join("etc/systemd/system")).expect("mkdir");
    std::fs::create_dir_all(dir.join("usr/bin")).expect("mkdir");
    let bin = dir.join("usr/bin/plainsight");
    std::fs::write(&bin, "#!/bin/sh\n").expect("writing the stand-in binary");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("etc/systemd/system/plainsight.service"), unit_text).expect("unit");
    dir
}

/// The host's unit files (the targets the unit refers to) under `dir`.
pub fn copy_host_units(dir: &Path) {
    let sys = dir.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&sys).expect("mkdir");
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("multi-user.target").exists())
        .expect("no systemd unit directory with multi-user.target: install the `systemd` package");
    for e in std::fs::read_dir(host_units)
        .expect("listing units")
        .flatten()
    {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, sys.join(e.file_name())).expect("copying a unit");
        }
    }
}

pub fn systemd_analyze() -> PathBuf {
    require_tool(
        "systemd-analyze",
        "install Debian's `systemd` package (`cargo xtask setup` does)",
    )
}

/// `systemd-analyze verify` of `unit_text` installed as plainsight.service.
pub fn verify(unit_text: &str) -> Output {
    let dir = analyze_root(unit_text);
    let out = run(Command::new(systemd_analyze())
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg("/etc/systemd/system/plainsight.service"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}
