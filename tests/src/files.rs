//! The repository's files as the checks read them, and scratch directories
//! under `target/` for the copies they write (rendered manifests, broken
//! rules and units, extracted packages).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// `rel` under `deploy/`.
pub fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

/// The file's text; panics naming the file.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A fresh scratch directory under target/ (tests run in parallel: each
/// call gets its own).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let d = root().join("target/deploy-check").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}
