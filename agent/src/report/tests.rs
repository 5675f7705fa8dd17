use super::*;
use crate::export::edge_list::{AgentJson, EdgeJson, EdgeList, RuleJson};

fn edge(
    client: &str,
    server: &str,
    port: u16,
    protocol: &str,
    encryption: &str,
    policy: &str,
) -> EdgeJson {
    EdgeJson::keyed(
        [client, server, protocol, encryption, policy].map(String::from),
        port,
        1,
        ["2026-12-01T10:00:00Z".into(), "2026-12-01T11:00:00Z".into()],
    )
}

/// 2026-12-04T00:00:00Z.
const NOW: i64 = 1_796_342_400 * 1_000_000_000;

fn sample() -> (EdgeList, Vec<RuleFacts>) {
    let rule = |name: &str, owner: &str, expires: Option<&str>| RuleJson {
        name: name.into(),
        owner: owner.into(),
        reason: format!("{name} reason"),
        expires: expires.map(Into::into),
    };
    let mut allowed = edge(
        "shop/frontend",
        "web/server",
        8080,
        "http",
        "plaintext",
        "allowed",
    );
    allowed.flows = 7;
    allowed.rule = Some(rule(
        "web-plain-http",
        "team-web",
        Some("2026-12-20T00:00:00Z"),
    ));
    let mut expired = edge("fd77::1", "fd77::2", 8080, "http", "plaintext", "violation");
    expired.expired_rule = Some(rule("old-v6", "team-net", Some("2020-01-01T00:00:00Z")));
    let mut creds = edge(
        "shop/frontend",
        "cache/redis",
        6379,
        "redis",
        "plaintext",
        "violation",
    );
    creds.flows = 2;
    creds.reasons = BTreeMap::from([("cleartext_credentials".into(), 2)]);
    let mut tls = edge("shop/frontend", "web/server", 8443, "tls", "tls", "ok");
    tls.flows = 10;
    tls.tls_versions = BTreeMap::from([("1.3".into(), 9), ("1.2".into(), 1)]);
    tls.ciphers = BTreeMap::from([
        ("TLS_AES_256_GCM_SHA384".into(), 9),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(), 1),
    ]);
    let ssh = edge("ops/bastion", "web/server", 22, "ssh", "encrypted", "ok");
    let list = EdgeList {
        edges: vec![expired, creds, allowed, tls, ssh],
        dropped_flows: 0,
        agent: Some(AgentJson {
            uptime_secs: 3600,
            flows_classified: 21,
            include_loopback: false,
        }),
    };
    let facts = |name: &str, owner: &str, expires: Option<&str>| RuleFacts {
        name: name.into(),
        owner: owner.into(),
        reason: format!("{name} reason"),
        expires_ns: expires
            .and_then(crate::clock::parse_rfc3339_utc)
            .map(i128::from),
        expires: expires.map(Into::into),
    };
    let rules = vec![
        facts("web-plain-http", "team-web", Some("2026-12-20T00:00:00Z")),
        facts("old-v6", "team-net", Some("2020-01-01T00:00:00Z")),
        facts("legacy-ldap", "team-id", None),
    ];
    (list, rules)
}

/// The JSON report is a contract: this file is what it looks like.
/// `PLAINSIGHT_REPORT_WRITE_GOLDEN=1` rewrites it after a deliberate change.
#[test]
fn the_json_report_matches_the_golden_file() {
    let (list, rules) = sample();
    let r = build(&list, &rules, "agent http://127.0.0.1:9477".into(), NOW);
    let json = serde_json::to_string_pretty(&r).expect("json") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    if std::env::var_os("PLAINSIGHT_REPORT_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, &json).expect("writing the golden file");
    }
    let golden = std::fs::read_to_string(&path).expect("tests/golden/report.json");
    assert_eq!(
        json, golden,
        "the report changed; if on purpose, rewrite the golden file"
    );
}

#[test]
fn credentials_come_first_and_expiries_are_judged() {
    let (list, rules) = sample();
    let r = build(&list, &rules, String::new(), NOW);
    let order: Vec<_> = r
        .plaintext_edges
        .iter()
        .map(|p| (p.server.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("cache/redis", "cleartext_credentials"),
            ("fd77::2", "plaintext"),
            ("web/server", "plaintext")
        ]
    );
    assert_eq!(
        r.plaintext_edges[0].owner, None,
        "nobody owns an unallowed edge"
    );
    assert_eq!(r.plaintext_edges[1].owner.as_deref(), Some("team-net"));
    let states: Vec<_> = r
        .rules
        .iter()
        .map(|x| (x.name.as_str(), x.expired, x.expiring_soon, x.flows_allowed))
        .collect();
    assert_eq!(
        states,
        [
            ("web-plain-http", false, true, Some(7)),
            ("old-v6", true, false, Some(0)),
            ("legacy-ldap", false, false, Some(0))
        ]
    );
    assert_eq!((r.summary.flows, r.summary.flows_encrypted), (21, 11));
    assert_eq!(r.summary.flows_encrypted_percent, Some(52.4));
    assert_eq!(r.summary.edges_encrypted_percent, Some(40.0));
    assert_eq!(r.tls_inventory.len(), 1);
    assert_eq!(r.tls_inventory[0].seen["tls_versions"]["1.3"], 9);
}

#[test]
fn html_and_csv_carry_every_row_escaped() {
    let (mut list, rules) = sample();
    list.edges[0].client = "<script>x</script>".into();
    let r = build(&list, &rules, String::new(), NOW);
    let html = html::render(&r);
    assert!(!html.contains("<script>"), "names are escaped");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("cache/redis") && html.contains("expires within 30 days"));
    assert!(html.contains("<th>ciphers</th>") && html.contains("TLS_AES_256_GCM_SHA384 ×9"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    let csv = csv::render(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("section,client,server,server_port"));
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!(count("plaintext_edge,"), 3);
    assert_eq!(count("rule,"), 3);
    assert!(csv.contains("; tls_versions: 1.3 ×9, 1.2 ×1\""), "{csv}");
}
