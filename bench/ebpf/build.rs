//! Makes sure the BPF linker is reachable before rustc needs it, with an
//! error that says how to get it.
fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf")
        && which::which("bpf-linker").is_err()
    {
        panic!("bpf-linker not found on PATH; run `cargo xtask setup`");
    }
}
