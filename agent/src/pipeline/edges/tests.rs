use super::*;
use agent_common::Verdict;

const S: i64 = 1_000_000_000;

fn key(client: &str, server: &str, port: u16, policy: Policy) -> EdgeKey {
    EdgeKey {
        policy,
        client: client.into(),
        server: server.into(),
        server_port: port,
        protocol: Protocol::Postgres,
        encryption: Encryption::Plaintext,
    }
}

/// What `record` said, owned (the `Recorded` borrows the edges).
struct Outcome {
    key: EdgeKey,
    first: bool,
    folded: bool,
    /// The idle edge recycled for this one.
    recycled: Option<EdgeKey>,
}

fn flow(e: &mut Edges, k: EdgeKey, client_ip: [u8; 4], v: &Verdict, ts_ns: i64) -> Outcome {
    tls_flow(e, k, client_ip, v, ts_ns, &TlsMeta::default())
}

fn tls_flow(
    e: &mut Edges,
    k: EdgeKey,
    client_ip: [u8; 4],
    v: &Verdict,
    ts_ns: i64,
    tls: &TlsMeta,
) -> Outcome {
    let r = e.record(
        k,
        &Observation {
            flow: &Flow {
                client: client_ip.into(),
                client_port: 40000,
                server: [10, 0, 5, 7].into(),
                server_port: 8080,
                hook: None,
                verdict: *v,
                midstream: false,
                tls: tls.clone(),
            },
            rule: None,
            ts_ns,
        },
    );
    let (key, first, folded) = (r.key.clone(), r.first, r.folded.is_some());
    Outcome {
        key,
        first,
        folded,
        recycled: e.take_recycled().map(|r| r.key),
    }
}

/// The hellos of `openssl s_client -servername api.example.internal -alpn
/// h2` and `s_server` (TLS 1.3), as captured, and the head of the client's
/// flight (no certificate) as the kernel exports it.
fn s_client_hellos() -> TlsMeta {
    let mut m = TlsMeta::default();
    for chunk in ["c2s.0", "s2c.0"] {
        let path = format!(
            "{}/../agent-common/tests/fixtures/openssl-3.0-s_client-sni-alpn-h2.{chunk}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).expect("fixture");
        let side = if chunk.starts_with("c2s") {
            agent_common::Side::Client
        } else {
            agent_common::Side::Server
        };
        let hello = crate::pipeline::tls_hello::exported(&bytes, side)
            .and_then(crate::pipeline::tls_hello::parse);
        m.add(hello.expect("a hello"));
    }
    let path = format!(
        "{}/../agent-common/tests/fixtures/openssl-3.0-s_client-sni-alpn-h2.c2s.1.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let flight = std::fs::read(&path).expect("fixture");
    m.add(crate::pipeline::tls_hello::Hello::ClientFlight(
        flight[..agent_common::wire::FLIGHT_MAX].to_vec(),
    ));
    m
}

#[test]
fn flows_of_one_edge_aggregate() {
    let mut e = Edges::new(10, Duration::from_secs(3600));
    let pg = Verdict::plaintext(Protocol::Postgres).with_reason(Reason::CleartextCredentials);
    let k = key("checkout", "rds", 5432, Policy::Violation);
    let r1 = flow(&mut e, k.clone(), [10, 0, 1, 1], &pg, 5 * S);
    let r2 = flow(&mut e, k.clone(), [10, 0, 1, 2], &pg, 3 * S);
    assert!(r1.first && !r2.first && !r1.folded);
    for i in 0..10 {
        flow(
            &mut e,
            k.clone(),
            [10, 0, 2, i],
            &Verdict::plaintext(Protocol::Postgres),
            9 * S,
        );
    }
    let list = e.snapshot(None);
    assert_eq!(list.edges.len(), 1);
    let j = &list.edges[0];
    assert_eq!(j.flows, 12);
    assert_eq!(
        j.reasons,
        BTreeMap::from([("cleartext_credentials".into(), 2)])
    );
    assert_eq!(j.first_seen, "1970-01-01T00:00:03Z");
    assert_eq!(j.last_seen, "1970-01-01T00:00:09Z");
    assert_eq!(j.client_addrs.len(), SAMPLE_ADDRS, "samples are bounded");
    assert_eq!(
        j.client_addrs[..2],
        ["10.0.1.1".to_owned(), "10.0.1.2".to_owned()]
    );
    assert_eq!(j.server_addrs, ["10.0.5.7"]);
    assert_eq!(
        (j.policy.as_str(), j.protocol.as_str()),
        ("violation", "postgres")
    );
}

#[test]
fn the_cap_folds_new_edges_into_other_and_counts_them() {
    let mut e = Edges::new(2, Duration::from_secs(3600));
    let v = Verdict::plaintext(Protocol::Postgres);
    for port in [1, 2] {
        assert!(
            !flow(
                &mut e,
                key("a", "b", port, Policy::Violation),
                [10, 0, 0, 1],
                &v,
                S
            )
            .folded
        );
    }
    let r = flow(
        &mut e,
        key("a", "b", 3, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        S,
    );
    assert!(r.folded && r.first, "first flow of the other edge");
    assert_eq!(r.key, key(OTHER, OTHER, 0, Policy::Violation));
    let r = flow(
        &mut e,
        key("c", "d", 4, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        S,
    );
    assert!(r.folded && !r.first);
    let r = flow(
        &mut e,
        key("c", "d", 5, Policy::Allowed),
        [10, 0, 0, 1],
        &v,
        S,
    );
    assert_eq!(
        r.key,
        key(OTHER, OTHER, 0, Policy::Allowed),
        "policy survives the fold"
    );
    // Admitted edges still count as themselves.
    assert!(
        !flow(
            &mut e,
            key("a", "b", 1, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            S
        )
        .folded
    );
    assert_eq!(e.dropped(), 3);
    let list = e.snapshot(None);
    assert_eq!(list.dropped_flows, 3);
    assert_eq!(list.edges.len(), 4);
    let other = list
        .edges
        .iter()
        .find(|j| j.client == OTHER && j.policy == "violation")
        .expect("other");
    assert_eq!(
        (other.server.as_str(), other.server_port, other.flows),
        (OTHER, 0, 2)
    );
}

#[test]
fn idle_edges_leave_the_view_but_stay_admitted_while_there_is_room() {
    let mut e = Edges::new(2, Duration::from_secs(60));
    let v = Verdict::plaintext(Protocol::Postgres);
    flow(
        &mut e,
        key("a", "b", 1, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        0,
    );
    assert_eq!(e.expire(59 * S), 0);
    assert_eq!(e.expire(60 * S), 1);
    assert!(e.is_empty());
    // The metric series of `a -> b:1` still exists: below the cap a new
    // edge takes a free place, and the old one comes back as itself (not
    // `first`: it alerted already).
    let new = flow(
        &mut e,
        key("x", "y", 2, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        61 * S,
    );
    assert!(!new.folded && new.first && new.recycled.is_none());
    let back = flow(
        &mut e,
        key("a", "b", 1, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        62 * S,
    );
    assert!(!back.folded && !back.first);
    let list = e.snapshot(None);
    let edge = list
        .edges
        .iter()
        .find(|j| j.client == "a")
        .expect("a is back");
    assert_eq!(
        edge.flows, 1,
        "the live view restarts; /metrics counters do not"
    );
    // Full, and no edge idle: a new edge folds.
    assert!(
        flow(
            &mut e,
            key("p", "q", 3, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            63 * S
        )
        .folded
    );
}

#[test]
fn a_full_cap_recycles_the_edge_idle_longest_for_a_new_one() {
    let mut e = Edges::new(2, Duration::from_secs(60));
    let v = Verdict::plaintext(Protocol::Postgres);
    let at = |e: &mut Edges, client: &str, s: i64| {
        flow(
            e,
            key(client, "db", 5432, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            s * S,
        )
    };
    at(&mut e, "b", 10);
    at(&mut e, "a", 0);
    assert_eq!(e.expire(70 * S), 2, "both idle");
    // Oldest first, whatever the map's order.
    let c = at(&mut e, "c", 71);
    assert_eq!(c.recycled, Some(key("a", "db", 5432, Policy::Violation)));
    assert!(c.first && !c.folded);
    let d = at(&mut e, "d", 72);
    assert_eq!(d.recycled, Some(key("b", "db", 5432, Policy::Violation)));
    // Nothing idle any more: folded, and a recycled edge is a stranger.
    let a = at(&mut e, "a", 73);
    assert!(a.folded && a.recycled.is_none());
    assert_eq!(e.dropped(), 1);
    let names: Vec<String> = e
        .snapshot(None)
        .edges
        .into_iter()
        .map(|j| j.client)
        .collect();
    assert_eq!(names, ["c", "d", OTHER]);
}

#[test]
fn an_idle_edge_seen_again_is_not_recycled_until_it_idles_again() {
    let mut e = Edges::new(1, Duration::from_secs(60));
    let v = Verdict::plaintext(Protocol::Postgres);
    let at = |e: &mut Edges, client: &str, s: i64| {
        flow(
            e,
            key(client, "db", 5432, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            s * S,
        )
    };
    at(&mut e, "a", 0);
    assert_eq!(e.expire(60 * S), 1);
    let back = at(&mut e, "a", 61);
    assert!(!back.first && !back.folded);
    // `a` is queued from its first idle spell, but live again: kept.
    assert!(at(&mut e, "b", 62).folded);
    assert_eq!(e.expire(122 * S), 2, "a and the other edge");
    let c = at(&mut e, "c", 123);
    assert_eq!(c.recycled, Some(key("a", "db", 5432, Policy::Violation)));
}

#[test]
fn ten_thousand_passing_addresses_do_not_hold_the_cap() {
    // One peer sprays addresses (trivial over IPv6), then goes quiet: an
    // hour later real edges are admitted again, not folded.
    let mut e = Edges::new(10_000, Duration::from_secs(3600));
    let v = Verdict::plaintext(Protocol::Postgres);
    for i in 0..10_000u32 {
        let client = format!("fd00::{i:x}");
        flow(
            &mut e,
            key(&client, "web", 80, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            S,
        );
    }
    e.expire(3601 * S);
    for i in 0..100u16 {
        let r = flow(
            &mut e,
            key("checkout", "orders", i, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            3602 * S,
        );
        assert!(!r.folded && r.recycled.is_some(), "edge {i}");
    }
    assert_eq!(e.dropped(), 0);
}

#[test]
fn violations_come_first_and_filter() {
    let mut e = Edges::new(10, Duration::from_secs(60));
    let v = Verdict::plaintext(Protocol::Postgres);
    flow(&mut e, key("a", "b", 1, Policy::Ok), [10, 0, 0, 1], &v, 0);
    flow(
        &mut e,
        key("a", "b", 2, Policy::Allowed),
        [10, 0, 0, 1],
        &v,
        0,
    );
    flow(
        &mut e,
        key("z", "b", 3, Policy::Violation),
        [10, 0, 0, 1],
        &v,
        0,
    );
    let order: Vec<String> = e
        .snapshot(None)
        .edges
        .into_iter()
        .map(|j| j.policy)
        .collect();
    assert_eq!(order, ["violation", "allowed", "ok"]);
    let only = e.snapshot(Some(Policy::Violation));
    assert_eq!(only.edges.len(), 1);
    assert_eq!(only.edges[0].client, "z");
}

#[test]
fn json_is_the_contract_shape() {
    let mut e = Edges::new(10, Duration::from_secs(60));
    let mut tls = Verdict::new(Protocol::Tls, Encryption::Tls);
    tls.tls_version = TlsVersion::Tls13;
    let mut k = key("10.77.0.1", "10.77.0.2", 8443, Policy::Ok);
    k.protocol = Protocol::Tls;
    k.encryption = Encryption::Tls;
    tls_flow(
        &mut e,
        k,
        [10, 77, 0, 1],
        &tls,
        1_800_000_000 * S,
        &s_client_hellos(),
    );
    let v = serde_json::to_value(e.snapshot(None)).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"edges": [{
            "client": "10.77.0.1", "server": "10.77.0.2", "server_port": 8443,
            "protocol": "tls", "encryption": "tls", "policy": "ok", "flows": 1,
            "reasons": {}, "tls_versions": {"1.3": 1},
            "client_auth": {"server_only": 1}, "cert_issues": {},
            "cert_not_after": null, "downgrades": {}, "midstream_flows": 0,
            "first_seen": "2027-01-15T08:00:00Z", "last_seen": "2027-01-15T08:00:00Z",
            "client_addrs": ["10.77.0.1"], "server_addrs": ["10.0.5.7"],
            "rule": null, "expired_rule": null,
            "sni": ["api.example.internal"], "alpn": {"h2": 1},
            "ciphers": {"TLS_AES_256_GCM_SHA384": 1}, "inner_protocol": "http2"
        }], "dropped_flows": 0})
    );
}

#[test]
fn tls_metadata_per_edge_is_bounded() {
    let mut e = Edges::new(10, Duration::from_secs(60));
    let v = Verdict::new(Protocol::Tls, Encryption::Tls);
    let mut k = key("a", "b", 443, Policy::Ok);
    k.protocol = Protocol::Tls;
    k.encryption = Encryption::Tls;
    for i in 0..20u16 {
        let mut m = s_client_hellos();
        m.sni = Some(format!("host{i}.example"));
        m.cipher = Some(0x1301 + i);
        m.alpn_offered = vec![format!("proto{}", i % 10)];
        tls_flow(&mut e, k.clone(), [10, 0, 0, 1], &v, 0, &m);
    }
    let edge = e.snapshot(None).edges.remove(0);
    assert_eq!(edge.sni.len(), SAMPLE_SNI);
    assert_eq!(edge.ciphers.len(), MAX_TLS_KEYS + 1, "{:?}", edge.ciphers);
    assert_eq!(edge.ciphers.get(OTHER), Some(&12));
    assert_eq!(edge.ciphers.get("TLS_AES_128_GCM_SHA256"), Some(&1));
    assert_eq!(edge.ciphers.values().sum::<u64>(), 20);
    assert_eq!(edge.alpn.len(), MAX_TLS_KEYS + 1);
    assert_eq!(edge.alpn.get(OTHER), Some(&4));
    assert_eq!(edge.inner_protocol, None, "no registered ALPN id named");
}

#[test]
fn keys_hash_consistently_with_long_names_and_apart_when_names_shift() {
    let mut e = Edges::new(10, Duration::from_secs(60));
    let v = Verdict::plaintext(Protocol::Postgres);
    let long = "payments/".repeat(HASH_BUF / 4);
    for (client, server) in [
        ("ab", "c"),
        ("a", "bc"),
        (&long, "b"),
        (&long, "b"),
        ("b", &long),
    ] {
        flow(
            &mut e,
            key(client, server, 1, Policy::Violation),
            [10, 0, 0, 1],
            &v,
            S,
        );
    }
    let list = e.snapshot(None);
    let flows: Vec<(&str, &str, u64)> = list
        .edges
        .iter()
        .map(|j| (j.client.as_str(), j.server.as_str(), j.flows))
        .collect();
    assert_eq!(
        flows,
        [
            ("a", "bc", 1),
            ("ab", "c", 1),
            ("b", &long, 1),
            (&long, "b", 2)
        ]
    );
}

#[test]
fn a_plaintext_flow_after_tls_on_one_path_counts_a_downgrade_on_its_edge() {
    let mut e = Edges::new(10, Duration::from_secs(60));
    let tls_key = EdgeKey {
        protocol: Protocol::Tls,
        encryption: Encryption::Tls,
        ..key("web", "db", 5432, Policy::Ok)
    };
    let tls_v = Verdict {
        tls_version: TlsVersion::Tls13,
        ..Verdict::new(Protocol::Tls, Encryption::Tls)
    };
    flow(&mut e, tls_key.clone(), [10, 0, 0, 1], &tls_v, 0);
    let plain = key("web", "db", 5432, Policy::Violation);
    let r = e.record(
        plain.clone(),
        &Observation {
            flow: &Flow {
                client: [10, 0, 0, 1].into(),
                client_port: 40001,
                server: [10, 0, 5, 7].into(),
                server_port: 5432,
                hook: None,
                verdict: Verdict::plaintext(Protocol::Postgres),
                midstream: false,
                tls: TlsMeta::default(),
            },
            rule: None,
            ts_ns: S,
        },
    );
    assert_eq!(r.downgrades.len(), 1);
    assert_eq!(r.downgrades[0].kind, Kind::Plaintext);
    let list = e.snapshot(None);
    let row = |enc: &str| {
        list.edges
            .iter()
            .find(|x| x.encryption == enc)
            .unwrap()
            .clone()
    };
    assert_eq!(row("plaintext").downgrades.get("plaintext"), Some(&1));
    assert!(row("tls").downgrades.is_empty());
}
