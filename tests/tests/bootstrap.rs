//! The README's commands must run on a fresh machine: `cargo xtask` is what
//! installs the eBPF toolchain (nightly rust-src, bpf-linker), so compiling
//! xtask itself must need none of it. A crate that builds kernel programs
//! (an aya-build build script, or aya-ebpf code) anywhere in xtask's normal
//! or build dependencies breaks that, and a machine that already has the
//! toolchain would never notice. This test notices.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

/// Workspace packages whose build compiles eBPF programs, and the crates
/// that do the compiling.
fn ebpf_builders() -> BTreeSet<String> {
    let meta: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"]))
            .expect("cargo metadata prints JSON");
    let mut found: BTreeSet<String> = ["aya-build", "aya-ebpf"].map(String::from).into();
    for pkg in meta["packages"].as_array().expect("packages") {
        let builds_ebpf = pkg["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .any(|d| {
                let (name, kind) = (d["name"].as_str(), d["kind"].as_str());
                (name == Some("aya-build") && kind == Some("build"))
                    || (name == Some("aya-ebpf") && kind.is_none())
            });
        if builds_ebpf {
            found.insert(pkg["name"].as_str().expect("name").to_owned());
        }
    }
    found
}

#[test]
fn xtask_builds_without_the_ebpf_toolchain() {
    let builders = ebpf_builders();
    // The detection itself must work, or the check below proves nothing.
    for known in ["plainsight", "agent-ebpf"] {
        assert!(
            builders.contains(known),
            "{known} builds eBPF but was not detected: {builders:?}"
        );
    }
    let tree = cargo(&[
        "tree",
        "-p",
        "xtask",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let reached: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        reached.contains("plainsight-tests"),
        "cargo tree did not list xtask's dependencies: {tree}"
    );
    let bad: Vec<&str> = reached
        .iter()
        .copied()
        .filter(|p| builders.contains(*p))
        .collect();
    assert!(
        bad.is_empty(),
        "xtask depends on crates that build eBPF programs: {bad:?}. `cargo xtask` must \
         compile with stable Rust alone, because it is what installs nightly rust-src and \
         bpf-linker on a fresh machine; move that code to a crate xtask builds after setup \
         (as bench/ is)"
    );
}
