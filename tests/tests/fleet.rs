//! The fleet view: two agents (two "nodes": two topologies, each with its
//! own namespaces and cgroup) scraped by one real Prometheus; `plainsight
//! edges --prometheus` folds the nodes into one edge table, the same
//! identity pair seen on both nodes being one edge; `plainsight report
//! --prometheus` reports on the same window.

use plainsight_tests::{
    Agent, Topology, WorkDir,
    agent::{free_port, shop_web_config},
    prometheus::Prometheus,
    servers::{HTTP_PORT, HTTPS_PORT, HttpAndTls},
};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn node(t: &Topology, dir: &WorkDir, name: &str) -> Agent {
    let cfg = dir.join(&format!("{name}.toml"));
    // Both nodes name their ends alike (the same workloads run on both).
    std::fs::write(&cfg, shop_web_config(t)).expect("config");
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    Agent::start(
        None,
        free_port(),
        &["--config", cfg.to_str().expect("utf-8"), "--cgroup", &cg],
    )
}

fn plainsight(args: &[&str]) -> Output {
    Command::new(plainsight_tests::plainsight_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running plainsight")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn edges_from_prometheus_fold_two_nodes_into_one_table() {
    plainsight_tests::require_root();
    let dir = WorkDir::new("fleet");
    let (a, b) = (Topology::new(), Topology::new());
    let _servers = (HttpAndTls::start(&a), HttpAndTls::start(&b));
    let (agent_a, agent_b) = (node(&a, &dir, "a"), node(&b, &dir, "b"));
    let prom = Prometheus::scraping(None, &[agent_a.addr, agent_b.addr], &[]);

    // Node a: one allowed HTTP flow, one TLS flow, one violation over IPv6;
    // node b: two allowed HTTP flows and one violation.
    for t in [&a, &b, &b] {
        t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));
    }
    a.curl(&format!("https://{}:{HTTPS_PORT}/", a.server_ip));
    for t in [&a, &b] {
        t.curl(&format!("http://[{}]:{HTTP_PORT}/", t.server_ip6));
    }
    prom.wait_for(
        "sum(plainsight_flows_total)",
        Duration::from_secs(30),
        |r| r.first().is_some_and(|s| s.value == 6.0),
    );
    // Prometheus holds the allowed edge twice, once per node.
    let per_node = prom.query(r#"plainsight_flows_total{policy="allowed"}"#);
    assert_eq!(per_node.len(), 2, "{per_node:#?}");

    let url = format!("http://{}", prom.addr);
    let json = ok(&plainsight(&["edges", "--prometheus", &url, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("--json");
    let rows: Vec<(String, String, u64, String, u64)> = v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["client"].as_str().unwrap_or_default().to_owned(),
                e["server"].as_str().unwrap_or_default().to_owned(),
                e["server_port"].as_u64().unwrap_or_default(),
                e["policy"].as_str().unwrap_or_default().to_owned(),
                e["flows"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let (c6, s6) = (a.client_ip6.to_string(), a.server_ip6.to_string());
    let (shop, web) = ("shop/frontend".to_owned(), "web/server".to_owned());
    assert_eq!(
        rows,
        [
            (c6, s6, u64::from(HTTP_PORT), "violation".into(), 2),
            (
                shop.clone(),
                web.clone(),
                u64::from(HTTP_PORT),
                "allowed".into(),
                3
            ),
            (shop, web, u64::from(HTTPS_PORT), "ok".into(), 1),
        ],
        "{json}"
    );
    assert_eq!(v["edges"][2]["tls_versions"], serde_json::json!({"1.3": 1}));
    assert_eq!(v["edges"][2]["encryption"], "tls");
    for e in v["edges"].as_array().expect("edges") {
        assert!(
            e["last_seen"].as_str().is_some_and(|s| s.ends_with('Z')),
            "{e}"
        );
    }

    // The table: the same columns as one agent's.
    let table = ok(&plainsight(&[
        "edges",
        "--prometheus",
        &url,
        "--since",
        "30m",
    ]));
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "CLIENT",
            "SERVER",
            "PORT",
            "PROTOCOL",
            "ENCRYPTION",
            "AUTH",
            "POLICY",
            "FLOWS",
            "LAST-SEEN"
        ]
    );
    assert_eq!(lines.len(), 4, "{table}");
    // AUTH: `-`, a plaintext edge has no TLS client authentication.
    assert_eq!(
        lines[2][..8],
        [
            "shop/frontend",
            "web/server",
            "8080",
            "http",
            "plaintext",
            "-",
            "allowed",
            "3"
        ]
    );

    // Filters: a namespace, violations.
    let shop_only = ok(&plainsight(&[
        "edges",
        "--prometheus",
        &url,
        "--namespace",
        "shop",
    ]));
    assert_eq!(shop_only.lines().count(), 3, "{shop_only}");
    let viol = ok(&plainsight(&[
        "edges",
        "--prometheus",
        &url,
        "--violations",
    ]));
    assert_eq!(viol.lines().count(), 2, "{viol}");

    // The fleet's evidence report over the same window.
    let report = ok(&plainsight(&[
        "report",
        "--prometheus",
        &url,
        "--since",
        "1h",
        "--format",
        "json",
    ]));
    let r: serde_json::Value = serde_json::from_str(&report).expect("JSON report");
    assert_eq!(
        (
            r["summary"]["edges"].as_u64(),
            r["summary"]["flows"].as_u64()
        ),
        (Some(3), Some(6))
    );
    assert_eq!(r["summary"]["flows_encrypted"], 1);
    assert_eq!(r["plaintext_edges"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["plaintext_edges"][0]["policy"], "violation");
    assert_eq!(r["tls_inventory"][0]["seen"]["tls_versions"]["1.3"], 1);
    assert!(
        r["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("Prometheus http://"))
    );

    // Mistakes are named.
    let bad = plainsight(&["edges", "--prometheus", &url, "--since", "1y"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since \"1y\" is not a duration"));
    let not_prom = plainsight(&["edges", "--prometheus", &format!("http://{}", agent_a.addr)]);
    assert_eq!(not_prom.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&not_prom.stderr).contains("querying Prometheus at"),
        "{}",
        String::from_utf8_lossy(&not_prom.stderr)
    );
}
