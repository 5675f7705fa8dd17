use super::*;

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_empty_file_is_the_documented_defaults() {
    let c = parse("").expect("empty config");
    assert_eq!(c.listen.to_string(), "127.0.0.1:9477");
    assert_eq!(c.cgroup, None);
    assert!(c.interfaces.is_empty() && !c.include_loopback);
    assert_eq!(c.max_flows, 65_536);
    assert_eq!(c.ring_bytes, 262_144);
    assert!(c.identities.is_empty());
    assert!(c.policy.rules().is_empty());
    assert_eq!(c.policy.unknown(), UnknownTreatment::Violation);
    assert_eq!(c.edges_max, 10_000);
    assert_eq!(c.idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.alerts_per_minute, 20);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!((c.metrics_listen, c.token_file), (None, None));
    assert_eq!(
        c.http,
        crate::export::http_server::Limits {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    );
    assert_eq!(c.kubernetes_sync_timeout, Duration::from_secs(30));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config/plainsight.toml"
    );
    let c = load(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:9477", "documented default");
}

#[test]
fn a_full_config_is_read() {
    let c = parse(
        r#"
[api]
listen = "127.0.0.1:9000"
token_file = "/etc/plainsight/api-token"
header_read_timeout = "2s"
request_timeout = "1m"
max_connections = 64
[metrics]
listen = "0.0.0.0:9477"
[hooks]
cgroup = "/sys/fs/cgroup/kubepods.slice"
interfaces = ["eth*", "ens?"]
include_loopback = true
[datapath]
max_flows = 1000
ring_bytes = 8192
[identities]
"10.0.5.0/24" = "rds-billing"
"fd00:5::/64" = "rds-billing"
"10.0.9.9" = "bastion"
[policy]
unknown = "allowed"
[[policy.allow]]
name = "billing-legacy-db"
owner = "team-billing"
reason = "driver without TLS until the v3 migration"
expires = 2027-01-01
client = "10.0.1.0/24"
server = "rds-billing"
ports = [5432]
protocols = ["postgres"]
[[policy.allow]]
name = "metrics-scrape"
owner = "sre"
reason = "node-exporter has no TLS"
expires = "2026-06-30T18:00:00+02:00"
ports = [9100]
[edges]
max = 50
idle_timeout = "30m"
[alerts]
max_per_minute = 5
[log]
format = "json"
"#,
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.metrics_listen, Some("0.0.0.0:9477".parse().unwrap()));
    assert_eq!(
        c.token_file.as_deref(),
        Some(std::path::Path::new("/etc/plainsight/api-token"))
    );
    assert_eq!(
        c.http,
        crate::export::http_server::Limits {
            header_read_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
            max_connections: 64,
        }
    );
    assert_eq!(c.interfaces, ["eth*", "ens?"]);
    assert_eq!(c.identities.len(), 3);
    assert_eq!(c.policy.unknown(), UnknownTreatment::Allowed);
    let r = &c.policy.rules()[0];
    assert_eq!(r.expires().as_deref(), Some("2027-01-01T00:00:00Z"));
    assert_eq!(r.client, Peer::Net("10.0.1.0/24".parse().unwrap()));
    assert_eq!(r.server, Peer::Name("rds-billing".into()));
    assert_eq!(r.protocols, [Protocol::Postgres]);
    assert_eq!(
        c.policy.rules()[1].expires().as_deref(),
        Some("2026-06-30T16:00:00Z"),
        "the offset is applied"
    );
    assert_eq!(
        (c.edges_max, c.idle_timeout),
        (50, Duration::from_secs(1800))
    );
    assert_eq!((c.alerts_per_minute, c.log_format), (5, LogFormat::Json));
}

#[test]
fn syntax_and_type_errors_have_line_and_column() {
    assert_eq!(
        problems("[api]\nlisten = \"127.0.0.1:9477\"\n[edges\n"),
        ["line 3, column 7: unclosed table, expected `]`"]
    );
    let p = problems("[api]\nlisten = \"nowhere\"\n");
    assert!(p[0].starts_with("line 2, column 10: "), "{p:?}");
    assert!(p[0].contains("socket address"), "{p:?}");
    let p = problems("[datapath]\nmax_flows = -1\n");
    assert!(p[0].starts_with("line 2, column 13: "), "{p:?}");
}

#[test]
fn unknown_keys_are_errors_not_silent_defaults() {
    let p = problems("[edges]\nmax = 10\nidle_timout = \"1h\"\n");
    assert!(
        p[0].starts_with("line 3, column 1: unknown field `idle_timout`"),
        "{p:?}"
    );
    let p =
        problems("[[policy.allow]]\nname = \"a\"\nowner = \"b\"\nreason = \"c\"\nport = 5432\n");
    assert!(p[0].contains("unknown field `port`"), "{p:?}");
    assert!(p[0].contains("`ports`"), "lists the valid keys: {p:?}");
}

#[test]
fn every_bad_value_is_named_with_its_location() {
    let p = problems(
        r#"
[api]
token_file = ""
header_read_timeout = "0s"
request_timeout = "soon"
max_connections = 0
[kubernetes]
sync_timeout = "30"
[hooks]
cgroup = "sys/fs/cgroup"
interfaces = ["eth 0"]
[datapath]
max_flows = 0
ring_bytes = 5000
[identities]
"10.0.0.0/33" = "x"
"10.0.5.1/24" = "y"
"10.0.6.0/24" = "two words"
"10.0.7.0/24" = "other"
[[policy.allow]]
name = "ok-rule"
owner = "o"
reason = "r"
ports = [80]
[[policy.allow]]
name = "ok-rule"
owner = ""
reason = "r"
client = "10.0.0.0/33"
ports = [0]
protocols = ["postgresql"]
expires = "next tuesday"
[[policy.allow]]
name = "everything"
owner = "o"
reason = "r"
expires = 2026-01-01T10:00:00
[edges]
max = 0
idle_timeout = "1 hour"
"#,
    );
    let expect = [
        "api.token_file: is empty; leave it out for no token",
        r#"api.header_read_timeout: "0s": the duration must be more than zero"#,
        r#"api.request_timeout: "soon" is not a duration like "90s", "30m", "1h" or "7d""#,
        "api.max_connections: must be at least 1",
        r#"kubernetes.sync_timeout: "30" is not a duration: the unit must be s, m, h or d"#,
        r#"hooks.cgroup: "sys/fs/cgroup" must be an absolute path"#,
        r#"hooks.interfaces[0]: "eth 0" is not an interface name pattern"#,
        "datapath.max_flows: must be at least 1",
        "datapath.ring_bytes: 5000 must be a power of two and at least 4096",
        r#"identities."10.0.0.0/33": "10.0.0.0/33" is not a CIDR: the prefix length must be 0..=32"#,
        r#"identities."10.0.5.1/24": "10.0.5.1/24" has host bits set; the network is 10.0.5.0/24 (write that, or the single address)"#,
        r#"identities."10.0.6.0/24": "two words" is not an identity name (non-empty, no spaces)"#,
        r#"identities."10.0.7.0/24": "other" is reserved for edges beyond the cardinality cap"#,
        "policy.allow[1].owner: is required: every exception says who owns it and why",
        r#"policy.allow[1].client: "10.0.0.0/33" is not a CIDR: the prefix length must be 0..=32"#,
        "policy.allow[1].ports: port 0 never carries a connection",
        r#"policy.allow[1].expires: "next tuesday" is not an RFC 3339 date or date-time"#,
        "policy.allow[2].expires: 2026-01-01T10:00:00 has a time but no UTC offset; add `Z` or e.g. `+02:00`",
        "policy.allow[2].server: the rule would allow every plaintext flow; name at least one of client, server, client_namespace, server_namespace, ports, protocols",
        "edges.max: must be at least 1",
        r#"edges.idle_timeout: "1 hour" is not a duration: the unit must be s, m, h or d"#,
    ];
    for e in expect {
        assert!(
            p.iter().any(|x| x == e),
            "missing {e:?} in:\n{}",
            p.join("\n")
        );
    }
    let protocol = p
        .iter()
        .find(|x| x.starts_with("policy.allow[1].protocols[0]: \"postgresql\" is not a protocol"))
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(
        protocol.contains("postgres, mysql"),
        "lists the valid names"
    );
    assert_eq!(p.len(), expect.len() + 1, "{}", p.join("\n"));
}

#[test]
fn duplicate_rule_names_and_networks_are_errors() {
    let p = problems(
        r#"
[identities]
"10.0.5.0/24" = "a"
"10.0.5.000/24" = "b"
[[policy.allow]]
name = "x"
owner = "o"
reason = "r"
ports = [1]
[[policy.allow]]
name = "x"
owner = "o"
reason = "r"
ports = [2]
"#,
    );
    assert!(
        p.iter()
            .any(|x| x.starts_with("policy.allow[1].name: \"x\" is used by another rule")),
        "{p:?}"
    );
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn expired_rules_are_warnings() {
    let c = parse(
        "[[policy.allow]]\nname = \"old\"\nowner = \"o\"\nreason = \"r\"\nports = [1]\nexpires = 2020-01-01\n",
    )
    .expect("valid");
    let w = warnings(&c, clock::now_ns());
    assert_eq!(
        w,
        [
            r#"allow-rule "old" (owner o) expired at 2020-01-01T00:00:00Z; it no longer allows anything"#
        ]
    );
}

#[test]
fn errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("plainsight-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[edges]\nmax = 0\nidle_timeout = \"x\"\n").expect("write");
    let e = load(&f).err().expect("invalid").to_string();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(
        e,
        format!(
            "config {}: 2 problems\n  edges.max: must be at least 1\n  edges.idle_timeout: \"x\" is not a duration like \"90s\", \"30m\", \"1h\" or \"7d\"",
            f.display()
        )
    );
    let missing = load(Path::new("/nonexistent/plainsight.toml"))
        .err()
        .expect("missing")
        .to_string();
    assert!(
        missing.starts_with("reading config /nonexistent/plainsight.toml: "),
        "{missing}"
    );
}

#[test]
fn kubernetes_section_defaults_to_auto_and_is_read() {
    assert_eq!(
        parse("").expect("empty").kubernetes,
        KubeSettings::default()
    );
    assert_eq!(KubeSettings::default().enabled, Enabled::Auto);
    let c = parse(
        "[kubernetes]\nenabled = \"on\"\nkubeconfig = \"/etc/plainsight/kubeconfig\"\ncontext = \"prod\"\n",
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(
        c.kubernetes,
        KubeSettings {
            enabled: Enabled::On,
            kubeconfig: Some("/etc/plainsight/kubeconfig".into()),
            context: Some("prod".into()),
        }
    );
}

#[test]
fn kubernetes_section_problems_are_named() {
    let p = problems("[kubernetes]\nenabled = \"yes\"\n");
    assert!(p[0].starts_with("line 2, column 11: "), "{p:?}");
    assert!(p[0].contains("`auto`, `on`"), "lists the values: {p:?}");
    assert_eq!(
        problems("[kubernetes]\nenabled = \"off\"\nkubeconfig = \"/k\"\ncontext = \"c\"\n"),
        [r#"kubernetes.kubeconfig: is set but enabled = "off"; remove one of them"#]
    );
    assert_eq!(
        problems("[kubernetes]\ncontext = \"c\"\nkubeconfig = \"\"\n"),
        ["kubernetes.kubeconfig: is empty; leave it out for the in-cluster service account"]
    );
    assert_eq!(
        problems("[kubernetes]\ncontext = \"c\"\n"),
        ["kubernetes.context: names a kubeconfig context but no kubeconfig is set"]
    );
}

#[test]
fn rules_match_kubernetes_namespaces_and_workload_names() {
    let c = parse(
        r#"
[[policy.allow]]
name = "ledger"
owner = "team-billing"
reason = "legacy driver"
client_namespace = "payments"
server = "billing/ledger-db"
[[policy.allow]]
name = "staging"
owner = "sre"
reason = "test data only"
server_namespace = "staging-*"
"#,
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    let r = c.policy.rules();
    assert_eq!(r[0].client, Peer::Namespace("payments".into()));
    assert_eq!(r[0].server, Peer::Name("billing/ledger-db".into()));
    assert_eq!(r[1].server, Peer::Namespace("staging-*".into()));
    let p = problems(
        r#"
[[policy.allow]]
name = "both"
owner = "o"
reason = "r"
client = "10.0.0.0/8"
client_namespace = "payments"
server_namespace = "Billing"
"#,
    );
    assert_eq!(
        p,
        [
            "policy.allow[0].client_namespace: cannot be combined with a name, CIDR or address on the same side; use one",
            r#"policy.allow[0].server_namespace: "Billing" is not a namespace pattern (lowercase letters, digits, '-', and * or ? globs)"#,
        ]
    );
}

#[test]
fn far_future_and_far_past_expiry_dates_keep_their_meaning() {
    // Year 9999 is past i64 nanoseconds (2262): it used to overflow, a
    // panic in debug builds and an already-expired rule in release.
    let c = parse(
        "[[policy.allow]]\nname = \"forever\"\nowner = \"o\"\nreason = \"r\"\nports = [1]\nexpires = 9999-12-31\n\
         [[policy.allow]]\nname = \"ancient\"\nowner = \"o\"\nreason = \"r\"\nports = [2]\nexpires = 0001-01-01T00:00:00Z\n",
    )
    .expect("valid");
    let [forever, ancient] = c.policy.rules() else {
        panic!("two rules")
    };
    assert_eq!(forever.expires().as_deref(), Some("9999-12-31T00:00:00Z"));
    assert!(
        !forever.expired(i64::MAX),
        "not expired at the end of i64 time"
    );
    assert_eq!(ancient.expires().as_deref(), Some("0001-01-01T00:00:00Z"));
    assert!(ancient.expired(i64::MIN + 1));
    assert_eq!(
        warnings(&c, clock::now_ns()),
        [
            r#"allow-rule "ancient" (owner o) expired at 0001-01-01T00:00:00Z; it no longer allows anything"#
        ]
    );
}

#[test]
fn require_rules_parse_and_every_bad_value_is_named() {
    let c = parse(
        r#"
[[policy.require]]
name = "payments-mtls"
owner = "team-payments"
reason = "PCI: only authenticated clients"
server = "payments/*"
client_auth = "mutual"
min_tls = "1.2"
cert_issues = "none"
expires = 2030-01-01
"#,
    )
    .expect("a valid require-rule");
    let r = &c.policy.requires()[0];
    assert_eq!(r.rule.name, "payments-mtls");
    assert_eq!(r.rule.server, Peer::Name("payments/*".into()));
    assert!(r.mutual && r.clean_cert);
    assert_eq!(r.min_tls, Some(TlsVersion::Tls12));
    assert!(r.rule.expires_ns.is_some());

    let p = problems(
        r#"
[[policy.require]]
name = "a"
owner = ""
reason = "r"
client_auth = "optional"
min_tls = "1.4"
cert_issues = "some"
[[policy.require]]
name = "b"
owner = "o"
reason = "r"
server = "db"
"#,
    );
    let text = p.join("\n");
    for want in [
        "policy.require[0].client_auth: \"optional\" is not a requirement; the one value is \"mutual\"",
        "policy.require[0].min_tls: \"1.4\" is not a TLS version; one of: 1.0, 1.1, 1.2, 1.3",
        "policy.require[0].cert_issues: \"some\" is not a requirement; the one value is \"none\"",
        "policy.require[0].owner: is required",
        "policy.require[1].client_auth: the rule requires nothing",
    ] {
        assert!(text.contains(want), "{want}\nin:\n{text}");
    }
}

#[test]
fn require_rule_unknown_keys_and_duplicate_names_are_errors() {
    let text = problems(
        r#"
[[policy.require]]
name = "c"
owner = "o"
reason = "r"
min_tls = "1.2"
client_tls = "x"
"#,
    )
    .join("\n");
    assert!(text.contains("unknown field `client_tls`"), "{text}");
    let text = problems(
        r#"
[[policy.allow]]
name = "x"
owner = "o"
reason = "r"
ports = [80]
[[policy.require]]
name = "x"
owner = "o"
reason = "r"
min_tls = "1.2"
"#,
    )
    .join("\n");
    assert!(
        text.contains("policy.require[0].name: \"x\" is used by another rule"),
        "{text}"
    );
}

#[test]
fn expired_require_rules_are_warnings() {
    let c = parse(
        "[[policy.require]]\nname = \"old\"\nowner = \"o\"\nreason = \"r\"\nmin_tls = \"1.2\"\nexpires = 2020-01-01\n",
    )
    .expect("valid");
    let w = warnings(&c, 1_800_000_000_000_000_000);
    assert_eq!(
        w,
        [
            "require-rule \"old\" (owner o) expired at 2020-01-01T00:00:00Z; it no longer requires anything"
        ]
    );
}
