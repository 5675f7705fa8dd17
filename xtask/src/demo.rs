//! `cargo xtask demo`: plainsight on its own network namespaces, so a
//! newcomer sees verdicts without touching the host's traffic.

use anyhow::bail;
use plainsight_tests::{Agent, Side, Topology, WorkDir, servers::HttpAndTls};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(bin: &Path) -> anyhow::Result<()> {
    // Ctrl-C must unwind through the guards below (namespaces, cgroup,
    // processes), not kill us where we stand.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let check = || -> anyhow::Result<()> {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted; cleaned up");
        }
        Ok(())
    };
    // SAFETY: still single-threaded; the harness reads this to find the binary.
    unsafe { std::env::set_var("PLAINSIGHT_BIN", bin) };

    println!("== creating namespaces {{client, server}}, a veth pair and a child cgroup");
    let t = Topology::new();
    println!(
        "== starting servers in the server namespace: openssl s_server :8443 (TLS), python http.server :8080 (plaintext)"
    );
    let _servers = HttpAndTls::start(&t);
    check()?;

    let dir = WorkDir::new("demo-config");
    let config = dir.join("plainsight.toml");
    std::fs::write(&config, demo_config(&t))?;
    println!(
        "== starting plainsight on the child cgroup {} with this configuration:\n{}",
        t.cgroup.display(),
        demo_config(&t).trim_end()
    );
    let config = config.to_str().unwrap_or_default().to_owned();
    let agent = Agent::on_cgroup_with(&t, &["--config", &config]);
    check()?;

    let server = t.server_ip;
    let requests: [(&str, String); 4] = [
        ("curl https (TLS 1.3)", format!("https://{server}:8443/")),
        ("curl https (TLS 1.2)", format!("https://{server}:8443/")),
        ("curl http", format!("http://{server}:8080/")),
        (
            "curl http over IPv6",
            format!("http://[{}]:8080/", t.server_ip6),
        ),
    ];
    for (i, (what, url)) in requests.iter().enumerate() {
        println!("== client: {what} {url}");
        let mut argv = vec!["curl", "-sk", "--max-time", "5", "-o", "/dev/null"];
        if i == 1 {
            argv.extend(["--tls-max", "1.2"]);
        }
        argv.push(url);
        let out = t.run(Side::Client, true, &argv);
        if !out.status.success() {
            bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        check()?;
    }

    // Wait until all four flows are counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let s = agent.metrics();
        let flows: f64 = s
            .iter()
            .filter(|x| x.name == "plainsight_flows_total")
            .map(|x| x.value)
            .sum();
        if flows >= 4.0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
        check()?;
    };

    let url = format!("http://{}", agent.addr);
    println!("\n$ plainsight edges --addr {url}");
    let edges = Command::new(bin).args(["edges", "--addr", &url]).output()?;
    if !edges.status.success() {
        bail!(
            "plainsight edges failed: {}",
            String::from_utf8_lossy(&edges.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&edges.stdout));
    println!("\nand on {url}/metrics:");
    for s in samples
        .iter()
        .filter(|s| s.name == "plainsight_tls_flows_total")
    {
        let l = |k: &str| s.labels.get(k).map_or("", String::as_str);
        println!(
            "TLS {} -> {}:{} negotiated version {} ({} flows)",
            l("client"),
            l("server"),
            l("server_port"),
            l("version"),
            s.value
        );
    }
    println!("\nthe agent's alert for the violating edge:");
    for line in agent.log_text().lines() {
        if line.contains("plainsight::alert") {
            println!("{line}");
        }
    }
    println!(
        "\n== the page: open {url}/ in a browser on this machine to see these edges drawn \
         (from elsewhere: ssh -L {port}:127.0.0.1:{port} this-host, then http://127.0.0.1:{port}/)",
        port = agent.addr.port()
    );
    wait_for_enter(&check)?;
    println!("\n== cleaning up (agent, servers, namespaces, cgroup)");
    Ok(())
}

/// Keeps the demo (and its page) up until Enter or Ctrl-C when run from a
/// terminal; without one (CI, a pipe) it goes straight on to clean up.
fn wait_for_enter(check: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return Ok(());
    }
    println!("== press Enter (or Ctrl-C) to stop the demo and clean up");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    while rx.recv_timeout(Duration::from_millis(100)).is_err() {
        check()?;
    }
    Ok(())
}

/// Names for the IPv4 ends and a rule allowing plain HTTP between them;
/// the IPv6 ends stay unnamed, so the same request over IPv6 violates.
fn demo_config(t: &Topology) -> String {
    format!(
        r#"[identities]
"{client}" = "shop"
"{server}" = "web"

[[policy.allow]]
name = "web-status-page"
owner = "team-web"
reason = "internal status page; TLS planned"
client = "shop"
server = "web"
ports = [8080]
protocols = ["http"]
"#,
        client = t.client_ip,
        server = t.server_ip,
    )
}
