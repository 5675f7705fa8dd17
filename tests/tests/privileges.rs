//! The privileges the deployments grant: the DaemonSet and the systemd unit
//! grant the same capabilities, and the real agent binary runs with exactly
//! those (and, for each, fails without it), started as the container runtime
//! and as the unit start it, on a child cgroup and on a veth in a namespace
//! of its own.

use plainsight_tests::agent::{Agent, Sample, free_port};
use plainsight_tests::capabilities::{CAPS, cap_bit, effective_caps};
use plainsight_tests::files::{deploy, read};
use plainsight_tests::manifests::{set, strings, yaml};
use plainsight_tests::systemd::unit_path;
use plainsight_tests::tools::require_tool;
use plainsight_tests::{Proc, Side, Topology};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the agent is started: as the container runtime does (uid 0, the
/// capabilities as bounding set), or as the systemd unit does (an
/// unprivileged uid with them as ambient capabilities). Both with
/// no_new_privs, as allowPrivilegeEscalation: false and NoNewPrivileges=yes.
#[derive(Clone, Copy, Debug)]
enum Model {
    Container,
    SystemdUnit,
}

fn setpriv_args(model: Model, caps: &[&str]) -> Vec<String> {
    let list: String = caps
        .iter()
        .map(|c| format!(",+{}", c.to_lowercase()))
        .collect();
    let mut a = vec!["setpriv".to_owned(), "--no-new-privs".to_owned()];
    match model {
        Model::Container => a.extend([
            "--inh-caps=-all".to_owned(),
            format!("--bounding-set=-all{list}"),
        ]),
        Model::SystemdUnit => a.extend([
            "--reuid=65534".to_owned(),
            "--regid=65534".to_owned(),
            "--clear-groups".to_owned(),
            format!("--inh-caps=-all{list}"),
            format!("--ambient-caps=-all{list}"),
            format!("--bounding-set=-all{list}"),
        ]),
    }
    a
}

/// Starts the real agent under `setpriv`; returns it once ready, or the
/// reason it never became ready.
fn start_agent(
    model: Model,
    caps: &[&str],
    netns: Option<&str>,
    hook: &[&str],
) -> Result<Agent, String> {
    require_tool("setpriv", "install Debian's `util-linux` package");
    let port = if netns.is_some() { 9477 } else { free_port() };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = std::env::temp_dir().join(format!(
        "plainsight-deploy-{}-{port}-{model:?}.log",
        std::process::id()
    ));
    let logf = std::fs::File::create(&log).expect("creating the agent log");
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns].map(str::to_owned));
    }
    argv.extend(setpriv_args(model, caps));
    argv.push("--".to_owned());
    argv.push(plainsight_tests::plainsight_bin().display().to_string());
    argv.extend(["run", "--listen", &addr.to_string()].map(str::to_owned));
    argv.extend(hook.iter().map(|s| (*s).to_owned()));
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("dup log"))
        .stderr(logf)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
    let mut agent = Agent {
        proc: Proc::from_child(child, "plainsight run"),
        addr,
        netns: netns.map(str::to_owned),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = agent.proc.child.try_wait() {
            return Err(format!("exited with {status}:\n{}", agent.log_text()));
        }
        if matches!(agent.get("/readyz"), Ok((200, _))) {
            return Ok(agent);
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after 60 s:\n{}", agent.log_text()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attached(samples: &[Sample], hook: &str) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == "plainsight_programs_attached"
                && s.labels.get("hook").is_some_and(|h| h == hook)
        })
        .map(|s| s.value)
        .sum()
}
#[test]
fn deployments_grant_the_same_capabilities() {
    let ds = &yaml(&[&deploy("kubernetes/daemonset.yaml")])[0];
    let k8s: BTreeSet<String> = strings(
        &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
    )
    .into_iter()
    .collect();
    let unit = read(&unit_path());
    let systemd: BTreeSet<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    assert_eq!(k8s, set(&CAPS));
    assert_eq!(systemd, set(&CAPS));
}

/// The least-privilege claim, on the real binary: with exactly the granted
/// capabilities the agent attaches (cgroup hook in both models, TC as the
/// unprivileged unit user), then drops what it no longer needs (everything
/// on the cgroup hook; all but CAP_BPF + CAP_NET_ADMIN while TC watches for
/// new interfaces); without any one of them it fails to start.
#[test]
fn agent_runs_with_exactly_the_granted_capabilities() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();

    for model in [Model::Container, Model::SystemdUnit] {
        let agent = start_agent(model, &CAPS, None, &["--cgroup", &cg])
            .unwrap_or_else(|e| panic!("{model:?} with {CAPS:?}: {e}"));
        assert_eq!(
            effective_caps(agent.proc.pid()),
            0,
            "{model:?}: the agent's effective capabilities after attaching"
        );
        assert_eq!(
            attached(&agent.metrics(), "cgroup"),
            2.0,
            "{model:?}: cgroup programs"
        );
    }

    let agent = start_agent(
        Model::SystemdUnit,
        &CAPS,
        Some(t.ns(Side::Server)),
        &["--interface", &t.server_if],
    )
    .unwrap_or_else(|e| panic!("TC hook as the unit's user: {e}"));
    assert_eq!(attached(&agent.metrics(), "tc"), 2.0, "TC programs");
    assert_eq!(
        effective_caps(agent.proc.pid()),
        (1 << cap_bit("BPF")) | (1 << cap_bit("NET_ADMIN")),
        "TC keeps what attaching to new interfaces needs"
    );
    drop(agent);

    for missing in CAPS {
        let fewer: Vec<&str> = CAPS.into_iter().filter(|c| *c != missing).collect();
        if let Ok(agent) = start_agent(Model::SystemdUnit, &fewer, None, &["--cgroup", &cg]) {
            panic!(
                "the agent became ready without CAP_{missing}: the grant is wider than needed \
                 (metrics: {:?})",
                attached(&agent.metrics(), "cgroup")
            );
        }
    }
}
