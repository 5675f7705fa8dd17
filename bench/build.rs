//! Builds the floor programs (bench/ebpf, for bpfel with nightly and
//! bpf-linker) into OUT_DIR/floor. `AYA_BUILD_SKIP=1` (lint) leaves an
//! empty object: the floor then refuses to run, naming why.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?);
    let skip =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if skip {
        return std::fs::write(out.join("floor"), []).context("writing the empty floor object");
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "bench-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
