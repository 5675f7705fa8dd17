//! The walking skeleton, end to end: real servers and a real client in
//! network namespaces, the real agent on each hook, verdicts on /metrics,
//! and nothing left attached when the agent dies.

use plainsight_tests::{
    Agent, Topology,
    agent::{cgroup_programs, live_links},
    servers::{self, HttpAndTls},
    within,
};

/// The shared servers' ports, as label values.
fn ports() -> (String, String) {
    (
        servers::HTTPS_PORT.to_string(),
        servers::HTTP_PORT.to_string(),
    )
}

fn start_servers(t: &Topology) -> HttpAndTls {
    HttpAndTls::start(t)
}

/// Drives one HTTPS and one HTTP request and asserts the exact verdicts.
fn assert_tls_and_plaintext_verdicts(t: &Topology, agent: &Agent) {
    let (client, server) = (t.client_ip.to_string(), t.server_ip.to_string());
    let (https, http) = ports();
    t.curl(&format!("https://{server}:{https}/"));
    t.curl(&format!("http://{server}:{http}/"));

    let tls = agent.wait_sample(
        "plainsight_flows_total",
        &[
            ("client", &client),
            ("server", &server),
            ("server_port", &https),
            ("protocol", "tls"),
            ("encryption", "tls"),
            ("policy", "ok"),
        ],
    );
    assert_eq!(tls.value, 1.0, "one TLS connection, one flow");
    let version = agent.wait_sample(
        "plainsight_tls_flows_total",
        &[
            ("client", &client),
            ("server", &server),
            ("server_port", &https),
        ],
    );
    assert_eq!(
        version.labels["version"], "1.3",
        "curl and OpenSSL 3 negotiate TLS 1.3"
    );

    let plain = agent.wait_sample(
        "plainsight_flows_total",
        &[
            ("client", &client),
            ("server", &server),
            ("server_port", &http),
            ("protocol", "http"),
            ("encryption", "plaintext"),
            ("policy", "violation"),
        ],
    );
    assert_eq!(plain.value, 1.0, "one HTTP connection, one flow");

    // Nothing else was classified: exactly these two flows.
    let total: f64 = agent
        .metrics()
        .iter()
        .filter(|s| s.name == "plainsight_flows_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 2.0, "exactly two flows classified");
}

#[test]
fn cgroup_hook_reports_tls_as_tls_and_http_as_plaintext() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_cgroup(&t);
    assert_tls_and_plaintext_verdicts(&t, &agent);
    // The object's BTF must load: its rejection means a type layout the
    // kernel cannot take slipped into the programs (see classify/mod.rs).
    let log = agent.log_text();
    assert!(
        !log.contains("BTF couldn't be loaded"),
        "BTF rejected:\n{log}"
    );
}

#[test]
fn tc_hook_reports_tls_as_tls_and_http_as_plaintext() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_tc(&t);
    assert_tls_and_plaintext_verdicts(&t, &agent);
}

/// One curl over IPv6 to the HTTP server must be one plaintext HTTP flow.
fn assert_ipv6_http_flow(t: &Topology, agent: &Agent) {
    let (_, http) = ports();
    t.curl(&format!("http://[{}]:{http}/", t.server_ip6));
    let s = agent.wait_sample(
        "plainsight_flows_total",
        &[
            ("client", &t.client_ip6.to_string()),
            ("server", &t.server_ip6.to_string()),
            ("server_port", &http),
            ("protocol", "http"),
            ("encryption", "plaintext"),
        ],
    );
    assert_eq!(s.value, 1.0);
}

#[test]
fn cgroup_hook_classifies_ipv6() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_cgroup(&t);
    assert_ipv6_http_flow(&t, &agent);
}

#[test]
fn tc_hook_classifies_ipv6() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_tc(&t);
    assert_ipv6_http_flow(&t, &agent);
    let (https, _) = ports();
    t.curl(&format!("https://[{}]:{https}/", t.server_ip6));
    let tls = agent.wait_sample(
        "plainsight_tls_flows_total",
        &[
            ("client", &t.client_ip6.to_string()),
            ("server", &t.server_ip6.to_string()),
            ("server_port", &https),
            ("version", "1.3"),
        ],
    );
    assert_eq!(tls.value, 1.0);
}

/// Kills the agent with SIGKILL and asserts that every link it held is gone
/// from the kernel.
fn assert_sigkill_detaches(agent: Agent, kind: &str) {
    let held = agent.links();
    let ids: Vec<u32> = held
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "ingress + egress {kind} links, held: {held:?}"
    );
    assert!(
        ids.iter().all(|id| live_links().contains(id)),
        "links {ids:?} are live while running"
    );
    agent.kill9();
    assert!(
        within(15, || !live_links().iter().any(|id| ids.contains(id))),
        "{kind} links {ids:?} still in the kernel after SIGKILL"
    );
}

#[test]
fn sigkill_on_cgroup_hook_leaves_nothing_attached_and_restart_works() {
    let t = Topology::new();
    let _servers = start_servers(&t);
    let agent = Agent::on_cgroup(&t);
    assert_eq!(cgroup_programs(&t.cgroup), 2, "ingress + egress attached");
    assert_sigkill_detaches(agent, "cgroup");
    assert!(
        within(15, || cgroup_programs(&t.cgroup) == 0),
        "programs still attached after SIGKILL"
    );

    let agent = Agent::on_cgroup(&t);
    assert_eq!(
        cgroup_programs(&t.cgroup),
        2,
        "attached again after restart"
    );
    assert_tls_and_plaintext_verdicts(&t, &agent);
    let status = agent.terminate();
    assert!(status.success(), "SIGTERM exits cleanly, got {status}");
    assert!(
        within(15, || cgroup_programs(&t.cgroup) == 0),
        "programs still attached after SIGTERM"
    );
}

#[test]
fn sigkill_on_tc_hook_leaves_nothing_attached_and_restart_works() {
    let t = Topology::new();
    let agent = Agent::on_tc(&t);
    // bpftool 7.1 (Debian 12) cannot list TCX attachments per device, so
    // the check goes by the link ids the agent held.
    assert_sigkill_detaches(agent, "tcx");
    // And the restarted agent attaches and classifies again.
    let _servers = start_servers(&t);
    let agent = Agent::on_tc(&t);
    assert_tls_and_plaintext_verdicts(&t, &agent);
}
