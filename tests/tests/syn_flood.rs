//! A SYN flood against the kernel flow table: flows that carry payload
//! (decided and still open, or still being classified) must survive it.
//! Bare SYNs open embryonic flows in their own small table
//! (`track::carries_payload`), so a flood only evicts other handshakes.

use plainsight_tests::{Agent, Side, Topology, servers, within};

/// Opens N connections sending an HTTP request line (decided: plaintext
/// HTTP) and N sending bytes no dissector recognises (undecided: the
/// classifier waits for more), and holds them. When a line arrives on
/// stdin, sends one more segment on each and resets them all (the server
/// never accepts, so it would never send its FIN).
const HOLDING_CLIENT: &str = "import socket, struct, sys
conns = []
for first in [b'GET / HTTP/1.1\\r\\n', b'\\x00\\x01binary'] * int(sys.argv[1]):
    c = socket.create_connection((sys.argv[2], 9100))
    c.sendall(first)
    conns.append(c)
sys.stdin.readline()
for c in conns:
    c.sendall(b'more')
for c in conns:
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()
sys.stdin.readline()";

/// Sends COUNT SYNs at up to RATE per second to DST:PORT, each from its
/// own spoofed source address and port in 198.18.0.0/15 (RFC 2544 test
/// addresses): nothing routes replies there, so no RST or SYN-ACK ever
/// closes the embryonic flows and the table only fills, the worst case
/// for it (this host has no netfilter to make the port filtered). The
/// port is closed: TC sees every SYN on the interface whether a socket
/// exists or not. Prints the SYNs sent and the seconds taken.
const SYN_FLOOD: &str = "import socket, struct, sys, time
dst, port, count, rate = socket.inet_aton(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
start = time.monotonic()
for i in range(count):
    if i % 200 == 0:
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    src = bytes([198, 18 + (i >> 16 & 1), i >> 8 & 0xff, i & 0xff])
    sport = 1024 + i % 60000
    tcp = struct.pack('!HHIIBBHHH', sport, port, i, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp = tcp[:16] + struct.pack('!H', csum(src + dst + struct.pack('!BBH', 0, 6, 20) + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    s.sendto(ip + tcp, (sys.argv[1], 0))
print(count, time.monotonic() - start)";

#[test]
fn a_syn_flood_evicts_no_flow_that_carries_payload() {
    let t = Topology::new();
    let _server = t.spawn(
        Side::Server,
        false,
        &["python3", "-c", servers::BACKLOG_SERVER],
    );
    t.wait_listening(9100);
    let (capacity, pairs, syns, rate) = (64u32, 10u32, 40_000u32, 20_000u32);
    let agent = Agent::start(
        Some(t.ns(Side::Server)),
        9477,
        &[
            "--interface",
            &t.server_if,
            "--max-flows",
            &capacity.to_string(),
        ],
    );
    let server = t.server_ip.to_string();
    let mut client = t.session(
        Side::Client,
        false,
        &["python3", "-c", HOLDING_CLIENT, &pairs.to_string(), &server],
    );
    let held = 2 * pairs;
    assert!(
        within(10, || agent.kernel_counter("flows_created")
            == f64::from(held)
            && agent.kernel_counter("verdicts_emitted") == f64::from(pairs)),
        "{held} flows with payload, {pairs} decided: created {}, verdicts {}",
        agent.kernel_counter("flows_created"),
        agent.kernel_counter("verdicts_emitted"),
    );

    let out = t.run(
        Side::Client,
        false,
        &[
            "python3",
            "-c",
            SYN_FLOOD,
            &server,
            "9",
            &syns.to_string(),
            &rate.to_string(),
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flood: {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = report
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("flood report {report:?}"));
    eprintln!(
        "flood: {syns} SYNs in {secs:.2} s ({:.0} SYN/s)",
        f64::from(syns) / secs
    );
    // Every SYN reached the agent, and overflowed the embryonic table
    // many times over.
    assert!(
        within(10, || agent.kernel_counter("embryos_created")
            >= f64::from(syns)),
        "embryos created {}",
        agent.kernel_counter("embryos_created")
    );
    let embryos = agent.map_entries("EMBRYOS") as f64;
    let embryos_evicted = agent.kernel_counter("embryos_created")
        - agent.kernel_counter("embryos_promoted")
        - agent.kernel_counter("embryos_closed")
        - embryos;
    eprintln!("embryonic entries {embryos}, evicted {embryos_evicted}");
    assert!(
        embryos_evicted >= f64::from(syns) - 1024.0,
        "{embryos_evicted}"
    );

    // The held flows' next segments find their entries: no new
    // (mid-stream) flow, no second verdict, nothing evicted from the main
    // table; closing them gives the undecided ones their verdict.
    client.send("");
    let settled = within(10, || {
        agent.kernel_counter("verdicts_emitted") == f64::from(held)
            && agent.kernel_counter("flows_closed") == f64::from(held)
    });
    let evicted = agent.value("plainsight_flow_table_evictions_total", &[]);
    eprintln!("payload flows evicted: {evicted}");
    assert!(
        settled,
        "verdicts {}, closed {}, created {}, evicted {evicted}\n{}",
        agent.kernel_counter("verdicts_emitted"),
        agent.kernel_counter("flows_closed"),
        agent.kernel_counter("flows_created"),
        agent.log_text()
    );
    assert_eq!(evicted, 0.0, "payload flows evicted");
    assert_eq!(agent.kernel_counter("flows_evicted"), 0.0);
    assert_eq!(
        agent.kernel_counter("flows_created"),
        f64::from(held),
        "no mid-stream flow"
    );
    let flows: f64 = agent
        .metrics()
        .iter()
        .filter(|s| s.name == "plainsight_flows_total" && s.labels["server_port"] == "9100")
        .map(|s| s.value)
        .sum();
    assert_eq!(flows, f64::from(held), "one verdict per connection");
    assert_eq!(
        agent.kernel_counter("verdicts_emitted"),
        agent.value("plainsight_events_received_total", &[])
            + agent.value("plainsight_events_lost_total", &[])
    );
    client.end();
}
