//! The kernel datapath's bookkeeping on live traffic: flow-table occupancy
//! and evictions, event conservation, and TC attachments following
//! interfaces that come and go.

use plainsight_tests::{Agent, Side, Topology, agent::live_links, servers, within};

/// Opens N connections one after the other, sends an HTTP request line on
/// each (a plaintext verdict per flow), and holds them all open.
const HOLDING_CLIENT: &str = "import socket, sys, time
conns = []
for _ in range(int(sys.argv[1])):
    c = socket.create_connection((sys.argv[2], 9100))
    c.sendall(b'GET / HTTP/1.1\\r\\n')
    conns.append(c)
time.sleep(600)";

#[test]
fn full_flow_table_counts_evictions_and_events_are_conserved() {
    let t = Topology::new();
    let _server = t.spawn(
        Side::Server,
        false,
        &["python3", "-c", servers::BACKLOG_SERVER],
    );
    t.wait_listening(9100);
    let capacity = 64;
    let flows = 200;
    let agent = Agent::on_cgroup_with(&t, &["--max-flows", &capacity.to_string()]);
    let server = t.server_ip.to_string();
    let _client = t.spawn(
        Side::Client,
        true,
        &["python3", "-c", HOLDING_CLIENT, &flows.to_string(), &server],
    );

    // Every flow classified, every verdict accounted for: delivered to
    // userspace or counted lost, never silently dropped.
    let settled = within(20, || {
        let emitted = agent.kernel_counter("verdicts_emitted");
        let received = agent.value("plainsight_events_received_total", &[]);
        let lost = agent.value("plainsight_events_lost_total", &[]);
        emitted >= f64::from(flows) && emitted == received + lost
    });
    assert!(
        settled,
        "verdicts emitted {} != received {} + lost {}\n{}",
        agent.kernel_counter("verdicts_emitted"),
        agent.value("plainsight_events_received_total", &[]),
        agent.value("plainsight_events_lost_total", &[]),
        agent.log_text()
    );
    let classified: f64 = agent
        .metrics()
        .iter()
        .filter(|s| s.name == "plainsight_flows_total" && s.labels["server"] == server)
        .map(|s| s.value)
        .sum();
    assert_eq!(classified, f64::from(flows), "one verdict per connection");

    // The table holds at most its capacity; the rest were evicted. The
    // gauge must match an independent count of the map (refreshed each
    // second, and nothing changes while the connections sit idle).
    let consistent = within(5, || {
        let entries = agent.value("plainsight_flow_table_entries", &[]);
        entries == agent.map_entries("FLOWS") as f64
            && agent.kernel_counter("flows_created")
                == agent.kernel_counter("flows_closed")
                    + entries
                    + agent.value("plainsight_flow_table_evictions_total", &[])
    });
    let entries = agent.value("plainsight_flow_table_entries", &[]);
    let evicted = agent.value("plainsight_flow_table_evictions_total", &[]);
    assert!(
        consistent,
        "entries {entries} (bpftool: {}), evicted {evicted}, created {}, closed {}",
        agent.map_entries("FLOWS"),
        agent.kernel_counter("flows_created"),
        agent.kernel_counter("flows_closed"),
    );
    assert!(entries <= f64::from(capacity), "entries {entries}");
    assert_eq!(
        agent.kernel_counter("flows_closed"),
        0.0,
        "connections still open"
    );
    assert!(
        evicted >= f64::from(flows - capacity),
        "{flows} open flows in {capacity} slots, only {evicted} evicted"
    );
    assert_eq!(agent.kernel_counter("flows_evicted"), evicted);
    assert_eq!(
        agent.value("plainsight_flow_table_capacity", &[]),
        f64::from(capacity)
    );
}

/// Reads each connection to its end, then closes it.
const SINK_SERVER: &str = "import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 9100))
s.listen(16)
while True:
    c, _ = s.accept()
    while c.recv(65536):
        pass
    c.close()";

/// One connection: an HTTP request line (the verdict), then 40 more
/// segments, each sent on its own, then a clean close.
const STREAMING_CLIENT: &str = "import socket, sys, time
c = socket.create_connection((sys.argv[1], 9100))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.sendall(b'GET / HTTP/1.1\\r\\n')
for _ in range(40):
    time.sleep(0.005)
    c.sendall(b'x' * 512)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()";

#[test]
fn decided_flows_take_each_hooks_shortcut_and_still_clean_up() {
    // The cgroup hook marks the socket; TC (no socket) remembers the flow
    // in its per-CPU recent-flow slot.
    type Start = fn(&Topology) -> Agent;
    let hooks: [(&str, Start, &str); 2] = [
        ("cgroup", Agent::on_cgroup, "socket_fast_path"),
        ("tc", Agent::on_tc, "recent_fast_path"),
    ];
    for (hook, start, shortcut) in hooks {
        let t = Topology::new();
        let _server = t.spawn(Side::Server, false, &["python3", "-c", SINK_SERVER]);
        t.wait_listening(9100);
        let agent = start(&t);
        let server = t.server_ip.to_string();
        let out = t.run(
            Side::Client,
            true,
            &["python3", "-c", STREAMING_CLIENT, &server],
        );
        assert!(
            out.status.success(),
            "{hook}: client: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let flow = agent.wait_sample(
            "plainsight_flows_total",
            &[
                ("server", &server),
                ("server_port", "9100"),
                ("protocol", "http"),
            ],
        );
        assert_eq!(
            flow.value, 1.0,
            "{hook}: one verdict for the one connection"
        );
        // After the verdict, the flow's packets skip the flow table...
        assert!(
            within(5, || agent.kernel_counter(shortcut) > 0.0),
            "{hook}: no packet took the {shortcut} shortcut"
        );
        // ...but its FINs still reach it, so the entry goes with the
        // connection.
        assert!(
            within(5, || agent.kernel_counter("flows_closed") == 1.0
                && agent.value("plainsight_flow_table_entries", &[]) == 0.0),
            "{hook}: closed {}, entries {}",
            agent.kernel_counter("flows_closed"),
            agent.value("plainsight_flow_table_entries", &[])
        );
        assert_eq!(agent.kernel_counter("flows_created"), 1.0, "{hook}");
        assert_eq!(agent.kernel_counter("verdicts_emitted"), 1.0, "{hook}");
    }
}

fn tc_programs(agent: &Agent) -> f64 {
    agent.value("plainsight_programs_attached", &[("hook", "tc")])
}

fn tcx_links(agent: &Agent) -> Vec<u32> {
    agent
        .links()
        .into_iter()
        .filter(|(kind, _)| kind == "tcx")
        .map(|(_, id)| id)
        .collect()
}

#[test]
fn tc_attaches_to_interfaces_that_appear_and_forgets_those_that_vanish() {
    let t = Topology::new();
    let _servers = servers::HttpAndTls::start(&t);
    let agent = Agent::on_tc_matching(&t, &format!("{}*", t.server_if));
    assert_eq!(
        tc_programs(&agent),
        2.0,
        "ingress + egress on the first veth"
    );
    let before = tcx_links(&agent);

    // The agent re-lists interfaces every second.
    let (_, new_if) = t.add_veth("x");
    assert!(
        within(2, || tc_programs(&agent) == 4.0),
        "{new_if} not attached within 2 s:\n{}",
        agent.log_text()
    );
    t.curl(&format!("http://10.78.0.2:{}/", servers::HTTP_PORT));
    t.curl(&format!("http://[fd78::2]:{}/", servers::HTTP_PORT));
    for (client, server) in [("10.78.0.1", "10.78.0.2"), ("fd78::1", "fd78::2")] {
        let s = agent.wait_sample(
            "plainsight_flows_total",
            &[
                ("client", client),
                ("server", server),
                ("protocol", "http"),
                ("encryption", "plaintext"),
            ],
        );
        assert_eq!(s.value, 1.0, "{client} -> {server}");
    }
    let added: Vec<u32> = tcx_links(&agent)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(added.len(), 2, "two new links for {new_if}");

    t.delete_veth(&new_if);
    assert!(
        within(3, || tc_programs(&agent) == 2.0),
        "{new_if} still counted after it vanished"
    );
    assert_eq!(
        tcx_links(&agent),
        before,
        "the vanished links' fds are released"
    );
    assert!(
        !live_links().iter().any(|id| added.contains(id)),
        "links of {new_if} still in the kernel"
    );
    // The first interface is still watched.
    t.curl(&format!("http://{}:{}/", t.server_ip, servers::HTTP_PORT));
    agent.wait_sample(
        "plainsight_flows_total",
        &[("server", &t.server_ip.to_string()), ("protocol", "http")],
    );
    // Policy alerts are warnings by design; anything else is a problem.
    let log = agent.log_text();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("plainsight::alert"))
        .collect();
    assert!(problems.is_empty(), "churn logged problems:\n{log}");
}

/// Set by the test to attach TC as clsact filters, as on kernels < 6.6
/// (agent/src/kernel/interfaces.rs `FORCE_CLSACT_ENV`).
const FORCE_CLSACT: &str = "PLAINSIGHT_TEST_TC_CLSACT";

/// Program ids of the clsact filters named `name` on one direction
/// (`ingress`/`egress`) of the topology's server interface, per `tc`.
fn clsact_filters(t: &Topology, direction: &str, name: &str) -> Vec<u32> {
    let out = plainsight_tests::topology::sh(&[
        "tc",
        "-n",
        t.ns(Side::Server),
        "filter",
        "show",
        "dev",
        &t.server_if,
        direction,
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == name))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "id")?;
            words.next()?.parse().ok()
        })
        .collect()
}

#[test]
fn clsact_filters_a_killed_agent_left_are_removed_at_the_next_start() {
    let t = Topology::new();
    let start = || {
        Agent::start_with_env(
            Some(t.ns(Side::Server)),
            9477,
            &["--interface", &t.server_if],
            &[(FORCE_CLSACT, "1")],
        )
    };
    let filters = || {
        [
            clsact_filters(&t, "ingress", "tc_ingress"),
            clsact_filters(&t, "egress", "tc_egress"),
        ]
    };
    let first = start();
    let old = filters();
    assert!(
        old.iter().all(|ids| ids.len() == 1),
        "one filter per direction: {old:?}\n{}",
        first.log_text()
    );
    // Unlike a bpf_link, a clsact filter outlives its process.
    first.kill9();
    assert_eq!(filters(), old, "the killed agent's filters stay");

    let second = start();
    let new = filters();
    for (old, new) in old.iter().zip(&new) {
        assert_eq!(new.len(), 1, "only the new agent's filter: {new:?}");
        assert_ne!(new, old, "the stale filter is gone");
    }
    assert!(
        second.log_text().contains("removed a stale"),
        "{}",
        second.log_text()
    );
    // A clean exit takes its filters with it.
    assert!(second.terminate().success());
    assert!(
        filters().iter().all(Vec::is_empty),
        "filters left after a clean exit: {:?}",
        filters()
    );
}
