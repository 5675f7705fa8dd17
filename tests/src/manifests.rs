//! The deployment manifests as JSON. `kubectl kustomize` renders
//! `deploy/kubernetes`; every core object is validated against the
//! Kubernetes OpenAPI schemas (PyPI `kubernetes-validate`, strict: unknown
//! fields fail) and the Prometheus Operator objects against models
//! generated from the operator's CRDs (PyPI
//! `cloudcoil.models.prometheus_operator`, with unknown fields rejected by
//! `manifests.py`). Both PyPI packages live in a venv under `target/` made
//! on first use.

use crate::files::{deploy, root, scratch};
use crate::tools::{require_tool, run, run_ok, text};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Kubernetes versions whose schemas the manifests must pass: the oldest and
/// the newest that `kubernetes-validate` ships.
pub const K8S_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// Pinned PyPI packages for the offline manifest validation.
const PY_REQUIREMENTS: [&str; 2] = [
    "kubernetes-validate==1.37.0",
    "cloudcoil.models.prometheus_operator==0.80.1.0",
];
/// The validation helper run inside the venv (its commands are described
/// at its top).
const PY_HELPER: &str = include_str!("manifests.py");

/// target/deploy-venv with the pinned packages, made once (under a lock,
/// so parallel test processes share it) and reused while the pins match.
fn venv_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = root().join("target/deploy-venv");
        let python = dir.join("bin/python");
        let stamp = dir.join(".plainsight-requirements");
        let want = PY_REQUIREMENTS.join("\n");
        std::fs::create_dir_all(root().join("target")).expect("creating target/");
        let lock = std::fs::File::create(root().join("target/deploy-venv.lock"))
            .expect("creating the venv lock");
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock on a file descriptor we own; released when `lock` drops.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
            return python;
        }
        let host = require_tool(
            "python3",
            "install Python 3 with its venv module (Debian: python3 python3-venv)",
        );
        let _ = std::fs::remove_dir_all(&dir);
        run_ok(Command::new(host).args(["-m", "venv"]).arg(&dir));
        run_ok(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PY_REQUIREMENTS),
        );
        std::fs::write(&stamp, want).expect("writing the venv stamp");
        python
    })
    .clone()
}

/// Runs the helper with `args`.
pub fn py(args: &[&str]) -> Output {
    run(Command::new(venv_python())
        .args(["-c", PY_HELPER])
        .args(args))
}

/// All YAML documents of `files`, as JSON.
pub fn yaml(files: &[&Path]) -> Vec<Value> {
    let mut args = vec!["yaml2json"];
    args.extend(files.iter().map(|p| p.to_str().expect("utf-8 path")));
    let out = py(&args);
    assert!(out.status.success(), "parsing {files:?}:\n{}", text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("helper prints JSON")
}

/// `kubectl kustomize deploy/kubernetes`, validated; its objects as JSON.
pub fn rendered() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let kubectl = require_tool(
            "kubectl",
            "it renders deploy/kubernetes (`kubectl kustomize`); install kubectl (or run with a PATH that has it)",
        );
        let yaml = run_ok(Command::new(kubectl).arg("kustomize").arg(deploy("kubernetes")));
        let file = scratch("kustomize").join("rendered.yaml");
        std::fs::write(&file, yaml).expect("writing rendered manifests");
        let mut args = vec!["validate", file.to_str().expect("utf-8 path")];
        args.extend(K8S_VERSIONS);
        let out = py(&args);
        assert!(
            out.status.success(),
            "deploy/kubernetes does not validate:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("helper prints JSON")
    })
}

/// The one rendered object of `kind`.
pub fn object(kind: &str) -> &'static Value {
    let found: Vec<&Value> = rendered().iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

/// The strings of a JSON list (none when `v` is no list).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `items` as a set, to compare with what `strings` found.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
