//! TLS hello metadata end to end: real clients (`curl` by host name,
//! `openssl s_client -servername -alpn h2`) against real servers (nginx,
//! `openssl s_server`), the real agent on each hook; the kernel exports the
//! hellos, and /api/v1/edges shows the server name, ALPN, cipher and the
//! protocol inside the TLS. SNI never becomes a metric label.

use plainsight_tests::{
    Agent, TestCert, Topology, clients,
    servers::{nginx, tls},
};
use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

fn hellos_are_read(t: &Topology, agent: &Agent) {
    let server = IpAddr::from(t.server_ip);
    // curl by name (--resolve), TLS 1.2 so nginx's ALPN choice is in the
    // clear: nginx without http2 on this port picks http/1.1.
    let name = "web.plainsight.test";
    let resolve = format!("{name}:{}:{server}", nginx::HTTPS_PORT);
    let body = clients::curl(
        t,
        &["--tls-max", "1.2", "--resolve", &resolve],
        &format!("https://{name}:{}/", nginx::HTTPS_PORT),
    );
    assert_eq!(body, "tls\n");
    let e = agent.edge_to(nginx::HTTPS_PORT, 1);
    assert_eq!(e["protocol"], "tls", "{e}");
    assert_eq!(e["sni"], serde_json::json!([name]), "{e}");
    assert_eq!(e["alpn"], serde_json::json!({"http/1.1": 1}), "{e}");
    assert_eq!(
        e["ciphers"],
        serde_json::json!({"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 1}),
        "{e}"
    );
    assert_eq!(e["inner_protocol"], "http", "{e}");
    assert_eq!(e["tls_versions"], serde_json::json!({"1.2": 1}), "{e}");

    // TLS 1.3 encrypts the server's ALPN choice; s_client offers only h2,
    // which names the protocol inside.
    let (port, flag, _) = tls::VERSIONS[3];
    let summary = clients::s_client_with(
        t,
        server,
        port,
        &[flag, "-servername", "api.plainsight.test", "-alpn", "h2"],
    );
    assert!(summary.contains("TLSv1.3"), "{summary}");
    let e = agent.edge_to(port, 1);
    assert_eq!(e["sni"], serde_json::json!(["api.plainsight.test"]), "{e}");
    assert_eq!(e["alpn"], serde_json::json!({"h2": 1}), "{e}");
    assert_eq!(
        e["ciphers"],
        serde_json::json!({"TLS_AES_256_GCM_SHA384": 1}),
        "{e}"
    );
    assert_eq!(e["inner_protocol"], "http2", "{e}");

    // Two flows, a ClientHello, a ServerHello and the head of the client's
    // flight after it each (README "Mutual TLS"), none lost (kernel
    // counters are published once a second).
    let exported = || {
        agent.value(
            "plainsight_kernel_total",
            &[("counter", "tls_hellos_exported")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while exported() < 6.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(exported(), 6.0);
    let lost = agent.value("plainsight_kernel_total", &[("counter", "tls_hellos_lost")]);
    assert_eq!(lost, 0.0);
    // Server names are unbounded: never a label.
    let (_, text) = agent.get("/metrics").expect("GET /metrics");
    assert!(
        !text.contains("plainsight.test"),
        "SNI leaked into /metrics"
    );
}

#[test]
fn cgroup_hook_reads_sni_alpn_and_cipher_from_real_hellos() {
    let t = Topology::new();
    let cert = TestCert::new();
    let _nginx = nginx::Nginx::start(&t, &cert);
    let _tls = tls::TlsServers::start(&t, &cert);
    let agent = Agent::on_cgroup(&t);
    hellos_are_read(&t, &agent);
}

#[test]
fn tc_hook_reads_sni_alpn_and_cipher_from_real_hellos() {
    let t = Topology::new();
    let cert = TestCert::new();
    let _nginx = nginx::Nginx::start(&t, &cert);
    let _tls = tls::TlsServers::start(&t, &cert);
    let agent = Agent::on_tc(&t);
    hellos_are_read(&t, &agent);
}
