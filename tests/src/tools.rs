//! The external tools the checks run (kubectl, promtool, systemd-analyze,
//! dpkg, lintian, setpriv, python3). Every tool is required: a missing one
//! fails the test with how to install it, never skips it; a failing run
//! shows the tool's output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `tool` on PATH; fails loudly when it is not installed.
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{tool}` is not installed; {install}"))
}

/// Runs `cmd` with no input to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Stdout and stderr together, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd`, which must succeed; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
