//! A third network namespace behind the server namespace, for the TC
//! same-node configurations: the client and server namespaces stand for a
//! pod and the node, this one for a second pod on the same node. A
//! connection from the client to it crosses two veths of the node
//! namespace (in at the client pod's, out at this pod's), as pod-to-pod
//! traffic does on a node with one veth per pod, so TC on the node's veth
//! ends sees every packet twice.

use anyhow::{Context as _, bail};
use plainsight_tests::{Proc, Topology};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RoutedPod {
    pub ns: String,
    /// The node's end of the pod's veth (in the server namespace).
    pub node_if: String,
    pub ip: Ipv4Addr,
}

/// The pod's network: 10.79.0.0/24, the node's end .1, the pod .2.
const NODE_IP: &str = "10.79.0.1";
const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

impl RoutedPod {
    /// Creates the namespace and its veth to the server namespace, routes
    /// between it and the client namespace through the server namespace
    /// (forwarding on there). Whatever was made is removed on drop, also
    /// when a step fails.
    pub fn new(t: &Topology) -> anyhow::Result<Self> {
        let pod = Self {
            ns: format!("{}-pod", t.server_ns),
            node_if: format!("{}p", t.server_if),
            ip: POD_IP,
        };
        let pod_if = format!("{}q", t.server_if);
        ip(&["netns", "add", &pod.ns])?;
        let pod_ip = format!("{POD_IP}/24");
        let node_ip = format!("{NODE_IP}/24");
        let steps: [&[&str]; 9] = [
            &[
                "link",
                "add",
                &pod.node_if,
                "netns",
                &t.server_ns,
                "type",
                "veth",
                "peer",
                "name",
                &pod_if,
                "netns",
                &pod.ns,
            ],
            &[
                "-n",
                &t.server_ns,
                "addr",
                "add",
                &node_ip,
                "dev",
                &pod.node_if,
            ],
            &["-n", &t.server_ns, "link", "set", &pod.node_if, "up"],
            &["-n", &pod.ns, "addr", "add", &pod_ip, "dev", &pod_if],
            &["-n", &pod.ns, "link", "set", &pod_if, "up"],
            &["-n", &pod.ns, "link", "set", "lo", "up"],
            &["-n", &pod.ns, "route", "add", "default", "via", NODE_IP],
            &[
                "-n",
                &t.client_ns,
                "route",
                "add",
                "10.79.0.0/24",
                "via",
                &t.server_ip.to_string(),
            ],
            &[
                "netns",
                "exec",
                &t.server_ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        ];
        for step in steps {
            ip(step)?;
        }
        // The pod's server closes first: no TIME_WAIT carried into the
        // next configuration's phase (as in the server namespace).
        ip(&[
            "netns",
            "exec",
            &pod.ns,
            "sysctl",
            "-qw",
            "net.ipv4.tcp_max_tw_buckets=0",
        ])?;
        Ok(pod)
    }

    /// Starts a long-running process in the pod, killed (by PID) on drop.
    pub fn spawn(&self, argv: &[&str]) -> anyhow::Result<Proc> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(argv)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {argv:?} in {}", self.ns))?;
        Ok(Proc::from_child(child, &argv.join(" ")))
    }

    /// Waits until something listens on TCP `port` in the pod.
    pub fn wait_listening(&self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns, "ss", "-Htln"])
                .output()
                .context("running ss")?;
            if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nothing listens on port {port} in {}", self.ns);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RoutedPod {
    fn drop(&mut self) {
        // Processes left in the pod are ours (the bench started them).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: signalling a process that lives in our namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        // The veth goes with the namespace.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
