//! Builds the kernel programs (agent-ebpf, for bpfel with nightly and
//! bpf-linker) and leaves the object in OUT_DIR for `include_bytes!`.
//!
//! `AYA_BUILD_SKIP=1` skips that (for `cargo check`/`clippy` on machines
//! without bpf-linker); an empty object is embedded and `plainsight run`
//! says the binary was built without its programs.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?);
    let obj = out.join("plainsight");
    let skip =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        std::fs::write(&obj, []).context("writing the empty eBPF stub")?;
        return Ok(());
    }
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let pkg = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "agent-ebpf")
        .ok_or_else(|| anyhow!("agent-ebpf package not found"))?;
    let root = pkg
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("agent-ebpf manifest has no parent"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-ebpf",
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
