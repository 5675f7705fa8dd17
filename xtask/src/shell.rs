//! Running commands with their output shown and failures named.

use anyhow::{Context as _, bail};
use std::ffi::OsStr;
use std::process::{Command, Stdio};

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_env(args, &[])
}

pub fn cargo_env(args: &[&str], env: &[(&str, &OsStr)]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    status(&mut cmd)
}

/// Runs a command with inherited output; an error names it on failure.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

/// Runs a command and returns its stdout; `None` if it cannot start or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
