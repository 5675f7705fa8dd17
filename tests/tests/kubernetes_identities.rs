//! Kubernetes identities end to end: the real agent, started with
//! `--kubeconfig` pointing at the local API server (`fake-apiserver`; no
//! cluster exists on these machines) whose Pods hold the topology's
//! addresses, names a real curl flow `payments/checkout ->
//! billing/ledger-db` on /metrics and /api/v1/edges (with the raw IPs), a
//! namespace/workload allow-rule judges it, and pod churn on the API server
//! (an IP reused by a new pod, then pods deleted) re-attributes the next
//! flows.

use fake_apiserver::fixtures::{self, Owner, PodSpec};
use plainsight_tests::{
    Agent, Topology, WorkDir,
    agent::free_port,
    servers::{HTTP_PORT, HttpAndTls},
};
use serde_json::Value;

const TOKEN: &str = "e2e-token-4c1d";

fn pod(uid: u64, namespace: &str, name: &str, owner: Owner<'_>, ip: &str) -> Value {
    fixtures::pod(&PodSpec {
        uid,
        namespace,
        name,
        owner,
        ips: &[ip],
        node: "ip-10-0-1-23.ec2.internal",
        host_network: false,
    })
}

fn config(kubeconfig: &str) -> String {
    format!(
        r#"
[kubernetes]
kubeconfig = "{kubeconfig}"

[[policy.allow]]
name = "checkout-ledger"
owner = "team-payments"
reason = "ledger-db TLS rollout tracked in PAY-88"
client_namespace = "payments"
server = "billing/ledger-db"
ports = [{HTTP_PORT}]
"#
    )
}

/// `plainsight_flows_total` for one edge on the HTTP port, once it is 1.
fn wait_flow(agent: &Agent, client: &str, server: &str, policy: &str) {
    agent.wait_value(
        "plainsight_flows_total",
        &[
            ("client", client),
            ("server", server),
            ("server_port", &HTTP_PORT.to_string()),
            ("protocol", "http"),
            ("policy", policy),
        ],
        1.0,
    );
}

/// The edge between `client` and `server` on /api/v1/edges.
fn edge(agent: &Agent, client: &str, server: &str) -> Value {
    let (status, body) = agent.get("/api/v1/edges").expect("GET /api/v1/edges");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("edges JSON");
    v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["client"] == client && e["server"] == server)
        .unwrap_or_else(|| panic!("no edge {client} -> {server} in {body}"))
        .clone()
}

#[test]
fn pods_name_both_ends_and_churn_reattributes_the_next_flow() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let (client_ip, server_ip) = (t.client_ip.to_string(), t.server_ip.to_string());

    let api = fake_apiserver::hosted();
    api.set_token(TOKEN);
    api.preload(
        "pods",
        [
            pod(
                1,
                "payments",
                "checkout-7d9f8b6c5-x2kqp",
                Owner::Deployment("checkout", "7d9f8b6c5"),
                &client_ip,
            ),
            pod(
                2,
                "billing",
                "ledger-db-0",
                Owner::StatefulSet("ledger-db"),
                &server_ip,
            ),
        ],
    );
    let dir = WorkDir::new("kube-e2e");
    let kubeconfig = dir.join("kubeconfig");
    fake_apiserver::write_kubeconfig(&kubeconfig, api.addr, Some(TOKEN));
    // The file leaves [kubernetes] on auto with a kubeconfig; the flag
    // (what a developer types) overrides it with the same file.
    let kc = kubeconfig.to_str().expect("utf-8");
    let cfg = dir.join("plainsight.toml");
    std::fs::write(&cfg, config(kc)).expect("writing config");
    let cg = t.cgroup.to_str().expect("utf-8");
    let agent = Agent::start(
        None,
        free_port(),
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--cgroup",
            cg,
            "--kubeconfig",
            kc,
        ],
    );

    // The source listed every resource through the agent's registry.
    agent.wait_value(
        "plainsight_kubernetes_objects",
        &[("resource", "pods")],
        2.0,
    );
    for resource in ["pods", "services", "nodes"] {
        agent.wait_sample(
            "plainsight_kubernetes_lists_total",
            &[("resource", resource)],
        );
    }
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=1")),
        "the agent watches pods: {:?}",
        api.requests()
    );

    // Both ends named by workload; the namespace/workload rule allows it;
    // the API keeps the addresses behind the names.
    t.curl(&format!("http://{server_ip}:{HTTP_PORT}/"));
    wait_flow(&agent, "payments/checkout", "billing/ledger-db", "allowed");
    let e = edge(&agent, "payments/checkout", "billing/ledger-db");
    assert_eq!(e["policy"], "allowed");
    assert_eq!(e["rule"]["name"], "checkout-ledger");
    assert_eq!(e["client_addrs"], serde_json::json!([client_ip]));
    assert_eq!(e["server_addrs"], serde_json::json!([server_ip]));

    // IP reuse: a new pod of another workload gets the client's IP before
    // the old pod's DELETED event arrives. The newest claim names the IP,
    // and the rule (namespace payments) no longer covers the flow.
    api.apply(
        "pods",
        "ADDED",
        pod(
            3,
            "shop",
            "web-5f6d7c8b9-q8zrt",
            Owner::Deployment("web", "5f6d7c8b9"),
            &client_ip,
        ),
    );
    agent.wait_value(
        "plainsight_kubernetes_objects",
        &[("resource", "pods")],
        3.0,
    );
    t.curl(&format!("http://{server_ip}:{HTTP_PORT}/"));
    wait_flow(&agent, "shop/web", "billing/ledger-db", "violation");
    let e = edge(&agent, "shop/web", "billing/ledger-db");
    assert_eq!(e["client_addrs"], serde_json::json!([client_ip]));
    assert_eq!(e["rule"], Value::Null);

    // Deletions: the old checkout pod's late DELETED leaves the IP with the
    // new pod; the ledger-db pod gone, its address is just the address.
    let old_checkout = pod(
        1,
        "payments",
        "checkout-7d9f8b6c5-x2kqp",
        Owner::Deployment("checkout", "7d9f8b6c5"),
        &client_ip,
    );
    api.apply("pods", "DELETED", old_checkout);
    api.apply(
        "pods",
        "DELETED",
        pod(
            2,
            "billing",
            "ledger-db-0",
            Owner::StatefulSet("ledger-db"),
            &server_ip,
        ),
    );
    agent.wait_value(
        "plainsight_kubernetes_objects",
        &[("resource", "pods")],
        1.0,
    );
    t.curl(&format!("http://{server_ip}:{HTTP_PORT}/"));
    wait_flow(&agent, "shop/web", &server_ip, "violation");
    let e = edge(&agent, "shop/web", &server_ip);
    assert_eq!(e["server_addrs"], serde_json::json!([server_ip]));

    // Each flow counted once, on the identities of its moment.
    let m = agent.metrics();
    let total: f64 = m
        .iter()
        .filter(|s| s.name == "plainsight_flows_total")
        .map(|s| s.value)
        .sum();
    assert!((total - 3.0).abs() < f64::EPSILON, "three flows in all");
    assert_eq!(
        agent.value(
            "plainsight_kubernetes_errors_total",
            &[("resource", "pods")]
        ),
        0.0,
        "no list or watch failed:\n{}",
        agent.log_text()
    );
}
