//! The end-to-end matrix: the servers users run plainsight beside
//! (PostgreSQL, MariaDB, Redis, nginx, OpenSSH, openssl s_server, NATS,
//! samba, prosody, a custom plaintext service, a SQL Server stand-in for
//! FreeTDS) and their real clients, in a client and a server
//! network namespace, with the real agent on each hook. Every client
//! connection must come out with its exact verdict; connections opened
//! before the agent started must come out as mid-stream flows; and a real
//! Prometheus loading deploy/prometheus's rules must fire the flow alerts
//! for exactly the plaintext edges.
//!
//! Each pass starts every server once and runs every case against it.

use plainsight_tests::{
    Agent, Checker, Expected, Session, Side, TestCert, Topology, clients,
    prometheus::Prometheus,
    servers::{
        echo::{self, Echo},
        grpc::{self, Grpc},
        mariadb::{self, Mariadb},
        nats::{self, Nats},
        nginx::{self, Nginx},
        postgres::{self, Postgres},
        prosody::{self, Prosody},
        redis::{self, Redis},
        samba::{self, Samba},
        sshd::{self, Sshd},
        tds::{self, Tds},
        tls::{self, TlsServers},
        zookeeper::{self, Zookeeper},
    },
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// PostgreSQL with `ssl = on`, and a second cluster with `ssl = off`.
const PG_PORT: u16 = 5432;
const PG_NO_SSL_PORT: u16 = 5433;

/// Every server of the matrix, listening in the server namespace.
struct Fleet {
    pg: Postgres,
    pg_no_ssl: Postgres,
    sshd: Sshd,
    tds: Tds,
    _servers: (Mariadb, Redis, Nginx, TlsServers, Echo, Grpc),
    east_west: (Nats, Samba, Prosody, Zookeeper),
    cert: TestCert,
}

impl Fleet {
    fn start(t: &Topology) -> Self {
        let cert = TestCert::new();
        Self {
            pg: Postgres::start(t, PG_PORT, Some(&cert)),
            pg_no_ssl: Postgres::start(t, PG_NO_SSL_PORT, None),
            sshd: Sshd::start(t),
            tds: Tds::start(t, &cert),
            _servers: (
                Mariadb::start(t, &cert),
                Redis::start(t, &cert),
                Nginx::start(t, &cert),
                TlsServers::start(t, &cert),
                Echo::start(t),
                Grpc::start(t, &cert),
            ),
            east_west: (
                Nats::start(t, &cert),
                Samba::start(t),
                Prosody::start(t, &cert),
                Zookeeper::start(t),
            ),
            cert,
        }
    }
}

/// Client connections opened before the agent starts and kept open.
struct Sessions {
    pg: Session,
    pg_tls: Session,
    redis: Session,
    grpc: Session,
}

impl Sessions {
    fn open(t: &Topology, fleet: &Fleet) -> Self {
        let server: IpAddr = t.server_ip.into();
        let psql = |sslmode| {
            let conninfo = fleet.pg.conninfo(server, "postgres", sslmode);
            t.session(Side::Client, true, &["psql", &conninfo, "-Atq"])
        };
        let (pg, pg_tls) = (psql("disable"), psql("require"));
        let (host, port) = (server.to_string(), redis::PORT.to_string());
        let redis = t.session(Side::Client, true, &["redis-cli", "-h", &host, "-p", &port]);
        t.wait_established(PG_PORT, 2);
        let grpc = clients::grpc_session(t, server, grpc::H2C_PORT);
        t.wait_established(redis::PORT, 1);
        t.wait_established(grpc::H2C_PORT, 1);
        Self {
            pg,
            pg_tls,
            redis,
            grpc,
        }
    }

    /// Ends each client the way a user would (end of input), so each
    /// connection closes with FIN after its verdict.
    fn close(self) {
        for s in [self.pg, self.pg_tls, self.redis, self.grpc] {
            s.end();
        }
    }
}

/// The mid-stream cases: traffic on the connections opened before the
/// agent. The kernel sees them without their SYN.
fn midstream_cases(t: &Topology, check: &mut Checker<'_>, sessions: &mut Sessions) {
    // A query is not an opening message: reported as mid-stream.
    check.expect_edge(
        Expected::new(t, PG_PORT, "postgres", "plaintext")
            .reason("midstream")
            .midstream(),
        || sessions.pg.send("SELECT 1;"),
    );
    // Application data records: TLS, but neither the upgrade nor the
    // version was seen, and nothing names the protocol inside.
    check.expect_edge(
        Expected::new(t, PG_PORT, "tls", "tls")
            .reason("midstream")
            .tls("unknown")
            .midstream(),
        || sessions.pg_tls.send("SELECT 1;"),
    );
    // Every Redis command looks like the start of a connection, so the
    // classifier (classify/mod.rs, F_OPENED) gives no `midstream` reason;
    // the flow is still flagged mid-stream (checked on /api/v1/edges).
    check.expect_edge(
        Expected::new(t, redis::PORT, "redis", "plaintext").midstream(),
        || sessions.redis.send("PING"),
    );
    // HTTP/2 without its preface: the client's HEADERS frame claims the
    // flow, the server's first frame confirms it.
    check.expect_edge(
        Expected::new(t, grpc::H2C_PORT, "http2", "plaintext")
            .reason("midstream")
            .midstream(),
        || sessions.grpc.send("order 1042"),
    );
}

fn postgres_cases(t: &Topology, check: &mut Checker<'_>, fleet: &Fleet) {
    for server in [IpAddr::from(t.server_ip), IpAddr::from(t.server_ip6)] {
        let at = |e: Expected| if server.is_ipv6() { e.ipv6(t) } else { e };
        let pg = &fleet.pg;
        check.expect_edge(
            at(Expected::new(t, PG_PORT, "postgres", "plaintext")),
            || {
                let ssl = clients::psql(t, &pg.conninfo(server, "postgres", "disable"), SSL_IN_USE);
                assert_eq!(ssl.trim(), "f", "sslmode=disable runs without TLS");
            },
        );
        check.expect_edge(
            at(Expected::new(t, PG_PORT, "postgres", "tls")
                .reason("starttls_upgraded")
                .tls("1.3")
                .client_auth(HRR)),
            || {
                let ssl = clients::psql(t, &pg.conninfo(server, "postgres", "require"), SSL_IN_USE);
                assert_eq!(ssl.trim(), "t", "sslmode=require runs over TLS");
            },
        );
    }
    let server: IpAddr = t.server_ip.into();
    // pg_hba.conf `password`: the server asks for the password in the clear.
    check.expect_edge(
        Expected::new(t, PG_PORT, "postgres", "plaintext").reason("cleartext_credentials"),
        || {
            let info = fleet
                .pg
                .conninfo(server, postgres::CLEARTEXT_USER, "disable");
            clients::psql(t, &info, "SELECT 1");
        },
    );
    // The same request inside TLS is protected: only the upgrade shows.
    check.expect_edge(
        Expected::new(t, PG_PORT, "postgres", "tls")
            .reason("starttls_upgraded")
            .tls("1.3")
            .client_auth(HRR),
        || {
            let info = fleet
                .pg
                .conninfo(server, postgres::CLEARTEXT_USER, "require");
            clients::psql(t, &info, "SELECT 1");
        },
    );
    // clientcert=verify-full: the server requires the client's certificate
    // (its CN is the role), through the same HelloRetryRequest.
    check.expect_edge(
        Expected::new(t, PG_PORT, "postgres", "tls")
            .reason("starttls_upgraded")
            .tls("1.3")
            .client_auth("mutual"),
        || {
            let info = fleet.pg.cert_conninfo(server, &fleet.cert);
            let user = clients::psql(t, &info, "SELECT current_user");
            assert_eq!(user.trim(), postgres::CERT_USER, "logged in by certificate");
        },
    );
    // sslmode=prefer asks; a server with ssl off answers `N`; the client
    // goes on in cleartext on the same connection.
    check.expect_edge(
        Expected::new(t, PG_NO_SSL_PORT, "postgres", "plaintext").reason("starttls_refused"),
        || {
            let info = fleet.pg_no_ssl.conninfo(server, "postgres", "prefer");
            let ssl = clients::psql(t, &info, SSL_IN_USE);
            assert_eq!(ssl.trim(), "f", "the server refused TLS");
        },
    );
}

/// PostgreSQL's default `ssl_ecdh_curve` (prime256v1) is not the group
/// libpq's ClientHello shares a key for (X25519): the server answers with a
/// HelloRetryRequest, and the client's flight (no certificate: psql has
/// none here) comes after the second ServerHello.
const HRR: &str = "server_only";

/// Whether the session runs over TLS, from the server's own view.
/// FreeTDS `tsql` against the PRELOGIN stand-in, one case per client
/// `encryption` setting; the stand-in's log line proves each negotiation.
fn mssql_cases(t: &Topology, check: &mut Checker<'_>, fleet: &Fleet) {
    let server: IpAddr = t.server_ip.into();
    let cases = [
        (
            "require",
            Expected::new(t, tds::PORT, "mssql", "tls")
                .reason("starttls_upgraded")
                .tls("unknown"),
            "client ENCRYPTION 1, answered 1: TLS TLSv1.2, packet 0x10 inside",
        ),
        (
            "request",
            Expected::new(t, tds::PORT, "mssql", "plaintext").reason("login_only_encrypted"),
            "client ENCRYPTION 0, answered 0: TLS TLSv1.2, packet 0x10 inside",
        ),
        (
            "off",
            Expected::new(t, tds::PORT, "mssql", "plaintext").reason("cleartext_credentials"),
            "client ENCRYPTION 2, answered 2: packet 0x10 in the clear",
        ),
    ];
    for (encryption, expected, logged) in cases {
        check.expect_edge(expected, || {
            let seen = || fleet.tds.log_text().matches(logged).count();
            let before = seen();
            clients::tsql(t, server, tds::PORT, encryption);
            assert_eq!(
                seen(),
                before + 1,
                "encryption = {encryption}: {}",
                fleet.tds.log_text()
            );
        });
    }
}

const SSL_IN_USE: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

fn mariadb_cases(t: &Topology, check: &mut Checker<'_>) {
    let server: IpAddr = t.server_ip.into();
    check.expect_edge(
        Expected::new(t, mariadb::PORT, "mysql", "tls")
            .reason("starttls_upgraded")
            .tls("1.3"),
        || {
            let v = clients::mariadb(t, server, mariadb::PORT, true);
            assert!(v.contains("TLSv1.3"), "--ssl runs over TLS 1.3: {v}");
        },
    );
    // A HandshakeResponse without CLIENT_SSL: plaintext, no reason (see
    // the classifier's mariadb_handshake_response_without_ssl test).
    check.expect_edge(
        Expected::new(t, mariadb::PORT, "mysql", "plaintext"),
        || {
            let v = clients::mariadb(t, server, mariadb::PORT, false);
            assert!(!v.contains("TLS"), "--skip-ssl runs without TLS: {v}");
        },
    );
}

fn redis_cases(t: &Topology, check: &mut Checker<'_>) {
    let server: IpAddr = t.server_ip.into();
    check.expect_edge(Expected::new(t, redis::PORT, "redis", "plaintext"), || {
        clients::redis_ping(t, server, redis::PORT, &[]);
    });
    check.expect_edge(
        Expected::new(t, redis::PORT, "redis", "plaintext").reason("cleartext_credentials"),
        || {
            let auth = ["--user", redis::USER, "--pass", redis::PASSWORD];
            clients::redis_ping(t, server, redis::PORT, &auth);
        },
    );
    check.expect_edge(
        Expected::new(t, redis::TLS_PORT, "tls", "tls").tls("1.3"),
        || {
            clients::redis_ping(t, server, redis::TLS_PORT, &["--tls", "--insecure"]);
        },
    );
}

fn nginx_cases(t: &Topology, check: &mut Checker<'_>) {
    for server in [IpAddr::from(t.server_ip), IpAddr::from(t.server_ip6)] {
        let at = |e: Expected| if server.is_ipv6() { e.ipv6(t) } else { e };
        let host = clients::url_host(server);
        check.expect_edge(
            at(Expected::new(t, nginx::HTTP_PORT, "http", "plaintext")),
            || {
                let body = clients::curl(t, &[], &format!("http://{host}:{}/", nginx::HTTP_PORT));
                assert_eq!(body, "plain\n");
            },
        );
        check.expect_edge(
            at(Expected::new(t, nginx::HTTPS_PORT, "tls", "tls").tls("1.3")),
            || {
                // --tlsv1.3 is curl's minimum: success proves the version.
                let url = format!("https://{host}:{}/", nginx::HTTPS_PORT);
                assert_eq!(clients::curl(t, &["--tlsv1.3"], &url), "tls\n");
            },
        );
    }
    // Credentials past the classifier's 128-byte prefix, where real
    // requests carry them: after ~400 bytes of other headers.
    let url = format!("http://{}:{}/", t.server_ip, nginx::HTTP_PORT);
    for auth in [
        "Authorization: Basic YXBwOmFwcC1wdw==",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcmRlcnMifQ.c2lnbmF0dXJl",
    ] {
        check.expect_edge(
            Expected::new(t, nginx::HTTP_PORT, "http", "plaintext").reason("cleartext_credentials"),
            || {
                let mut args: Vec<&str> = HEADERS_BEFORE_AUTH
                    .iter()
                    .flat_map(|h| ["-H", *h])
                    .collect();
                args.extend(["-H", auth]);
                assert_eq!(clients::curl(t, &args, &url), "plain\n");
            },
        );
    }
    check.expect_edge(
        Expected::new(t, nginx::H2C_PORT, "http2", "plaintext"),
        || {
            let url = format!("http://{}:{}/", t.server_ip, nginx::H2C_PORT);
            let body = clients::curl(t, &["--http2-prior-knowledge"], &url);
            assert_eq!(body, "h2c\n");
        },
    );
}

/// About 400 bytes of the headers services send before `Authorization`.
const HEADERS_BEFORE_AUTH: [&str; 6] = [
    "X-Request-Id: 6f1c2a9e-3b7d-4c1e-9a55-2f0e8b7d4c31",
    "Accept-Language: en-GB,en;q=0.9,fr;q=0.8,de;q=0.7",
    "Cookie: session=9b7f2c1d4e5a6b7c8d9e0f1a2b3c4d5e; theme=dark; consent=accepted; _ga=GA1.2.1234567890.1700000000",
    "X-Forwarded-For: 10.0.3.17, 10.0.1.4",
    "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "Cache-Control: no-cache",
];

/// gRPC as services call each other: in the clear over h2c (HTTP/2
/// without TLS) and over TLS.
fn grpc_cases(t: &Topology, check: &mut Checker<'_>, fleet: &Fleet) {
    let server: IpAddr = t.server_ip.into();
    check.expect_edge(
        Expected::new(t, grpc::H2C_PORT, "http2", "plaintext"),
        || {
            let reply = clients::grpc(t, server, grpc::H2C_PORT, None, "order 1042");
            assert_eq!(reply, "order 1042");
        },
    );
    check.expect_edge(
        Expected::new(t, grpc::TLS_PORT, "tls", "tls").tls("1.3"),
        || {
            let cert = Some(fleet.cert.cert.as_path());
            let reply = clients::grpc(t, server, grpc::TLS_PORT, cert, "order 1042");
            assert_eq!(reply, "order 1042");
        },
    );
}

/// NATS with TLS (INFO in clear, then TLS), SMB with and without SMB3
/// encryption, XMPP with STARTTLS, ZooKeeper.
fn east_west_cases(t: &Topology, check: &mut Checker<'_>, fleet: &Fleet) {
    let server: IpAddr = t.server_ip.into();
    check.expect_edge(
        Expected::new(t, nats::TLS_PORT, "nats", "tls")
            .reason("starttls_upgraded")
            .tls("1.3"),
        || assert_eq!(clients::nats_tls(t, server, nats::TLS_PORT), "TLSv1.3"),
    );
    let (_, samba, _, _) = &fleet.east_west;
    let user_pw = format!("{}%{}", samba::USER, samba::PASSWORD);
    for (encrypt, encryption) in [(false, "plaintext"), (true, "encrypted")] {
        check.expect_edge(Expected::new(t, samba::PORT, "smb", encryption), || {
            let listing =
                clients::smbclient(t, &samba.conf(), server, samba::SHARE, &user_pw, encrypt);
            assert!(listing.contains(samba::FILE), "{listing}");
        });
    }
    check.expect_edge(
        Expected::new(t, prosody::PORT, "xmpp", "tls")
            .reason("starttls_upgraded")
            .tls("1.3"),
        || {
            let out =
                clients::xmpp_starttls(t, server, prosody::PORT, prosody::JID, prosody::PASSWORD);
            assert!(out.contains("session started"), "{out}");
        },
    );
    check.expect_edge(
        Expected::new(t, zookeeper::PORT, "zookeeper", "plaintext"),
        || assert_eq!(clients::zookeeper(t, server, zookeeper::PORT), "order 1042"),
    );
}

fn ssh_tls_and_echo_cases(t: &Topology, check: &mut Checker<'_>, fleet: &Fleet) {
    let server: IpAddr = t.server_ip.into();
    check.expect_edge(Expected::new(t, sshd::PORT, "ssh", "encrypted"), || {
        clients::ssh(t, server, sshd::PORT, &fleet.sshd.client_key());
    });
    for (port, flag, version) in tls::VERSIONS {
        let e = Expected::new(t, port, "tls", "tls").tls(version);
        let e = if version == "1.0" || version == "1.1" {
            e.reason("weak_tls")
        } else {
            e
        };
        check.expect_edge(e, || {
            let summary = clients::s_client(t, server, port, flag, tls::SECLEVEL_0);
            let want = format!("Protocol version: TLSv{}", version.trim_end_matches(".0"));
            assert!(summary.contains(&want), "{flag}: {summary}");
        });
    }
    check.expect_edge(Expected::new(t, echo::PORT, "unknown", "plaintext"), || {
        let text = "ORDER 1042 shipped to warehouse 7\n";
        assert_eq!(clients::socat(t, server, echo::PORT, text), text);
    });
}

/// One hook pass: every server, the sessions opened before the agent,
/// the agent, then every case.
fn pass(t: &Topology, agent_on: fn(&Topology) -> Agent, then: impl FnOnce(&Agent, &Checker<'_>)) {
    let fleet = Fleet::start(t);
    let mut sessions = Sessions::open(t, &fleet);
    let agent = agent_on(t);
    let mut check = Checker::new(&agent);
    midstream_cases(t, &mut check, &mut sessions);
    postgres_cases(t, &mut check, &fleet);
    mariadb_cases(t, &mut check);
    mssql_cases(t, &mut check, &fleet);
    redis_cases(t, &mut check);
    nginx_cases(t, &mut check);
    grpc_cases(t, &mut check, &fleet);
    ssh_tls_and_echo_cases(t, &mut check, &fleet);
    east_west_cases(t, &mut check, &fleet);
    sessions.close();
    // Closing the mid-stream connections must not report them again.
    std::thread::sleep(Duration::from_millis(500));
    check.assert_no_other_flows();
    then(&agent, &check);
}

#[test]
fn cgroup_hook_matrix_and_prometheus_alerts() {
    let t = Topology::new();
    pass(&t, Agent::on_cgroup, |agent, check| {
        assert_alerts(agent, &check.cases);
        assert_wrong_expectation_fails(&t, agent);
    });
}

#[test]
fn tc_hook_matrix_and_prometheus_alerts() {
    let t = Topology::new();
    pass(&t, Agent::on_tc, |agent, check| {
        assert_alerts(agent, &check.cases);
    });
}

/// A real Prometheus with the shipped rules, scraping the agent (in the
/// agent's namespace: on TC it serves inside the server namespace): each
/// flow alert fires for exactly the edges whose verdicts call for it, and
/// no other alert fires.
fn assert_alerts(agent: &Agent, cases: &[Expected]) {
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/plainsight-rules.yml");
    let prom = Prometheus::start_in(agent.netns.as_deref(), agent.addr, &[&rules]);
    let edge = |e: &Expected, with_encryption: bool| {
        let mut l = vec![
            ("client", e.client.to_string()),
            ("server", e.server.to_string()),
            ("server_port", e.server_port.to_string()),
            ("protocol", e.protocol.to_owned()),
        ];
        if with_encryption {
            l.push(("encryption", e.encryption.to_owned()));
        }
        l.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>()
    };
    let mut want: BTreeMap<&str, BTreeSet<BTreeMap<String, String>>> = BTreeMap::new();
    for e in cases {
        if e.policy() == "violation" {
            want.entry("PlaintextFlowViolation")
                .or_default()
                .insert(edge(e, true));
        }
        let by_reason = match e.reason {
            Some("cleartext_credentials") => Some("CleartextCredentials"),
            Some("starttls_refused") => Some("StartTLSRefused"),
            Some("weak_tls") => Some("WeakTLS"),
            _ => None,
        };
        if let Some(alert) = by_reason {
            want.entry(alert).or_default().insert(edge(e, false));
        }
        // TLS <= 1.2 shows the server's certificate: every server here has
        // the 2-day test certificate (TestCert), which expires within 14.
        if matches!(e.tls_version, Some("1.0" | "1.1" | "1.2")) {
            let server = [
                ("server".to_owned(), e.server.to_string()),
                ("server_port".to_owned(), e.server_port.to_string()),
            ];
            want.entry("TLSCertificateExpiringSoon")
                .or_default()
                .insert(server.into_iter().collect());
        }
    }
    // TLSDowngrade: the cases run in order on a few paths (e.g. psql with
    // sslmode=require, then disable, to one PostgreSQL): a path whose flow
    // is worse than an earlier one (README "Downgrades") fires.
    let mut paths: BTreeMap<String, (bool, &str, bool)> = BTreeMap::new();
    for e in cases {
        let path = format!("{} {} {}", e.client, e.server, e.server_port);
        let (tls, version, mutual) = paths.entry(path).or_insert((false, "", false));
        let worse = match e.encryption {
            "plaintext" => std::mem::take(tls),
            "tls" => {
                *tls = true;
                let v = e.tls_version.unwrap_or("unknown");
                let lower = v != "unknown" && !version.is_empty() && v < *version;
                if v != "unknown" {
                    *version = v;
                }
                let auth = e.client_auth.unwrap_or("unknown");
                let dropped = auth == "server_only" && std::mem::take(mutual);
                *mutual |= auth == "mutual";
                lower || dropped
            }
            _ => false,
        };
        if worse {
            let labels = [
                ("client".to_owned(), e.client.to_string()),
                ("server".to_owned(), e.server.to_string()),
                ("server_port".to_owned(), e.server_port.to_string()),
            ];
            want.entry("TLSDowngrade")
                .or_default()
                .insert(labels.into_iter().collect());
        }
    }
    // MutualTLSMissing: a server_only client of a server that some client
    // reaches with a certificate (PostgreSQL: the verify-full login beside
    // the others).
    let mutual_servers: BTreeSet<(String, u16)> = cases
        .iter()
        .filter(|e| e.client_auth == Some("mutual"))
        .map(|e| (e.server.to_string(), e.server_port))
        .collect();
    for e in cases {
        if e.client_auth == Some("server_only")
            && mutual_servers.contains(&(e.server.to_string(), e.server_port))
        {
            let labels = [
                ("client".to_owned(), e.client.to_string()),
                ("server".to_owned(), e.server.to_string()),
                ("server_port".to_owned(), e.server_port.to_string()),
            ];
            want.entry("MutualTLSMissing")
                .or_default()
                .insert(labels.into_iter().collect());
        }
    }
    let firing = |samples: &[plainsight_tests::agent::Sample]| {
        let mut got: BTreeMap<&str, BTreeSet<BTreeMap<String, String>>> = BTreeMap::new();
        for s in samples {
            let name = want
                .keys()
                .copied()
                .find(|a| s.labels.get("alertname").map(String::as_str) == Some(a))
                .unwrap_or("(another alert)");
            let labels = s
                .labels
                .iter()
                .filter(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "client" | "server" | "server_port" | "protocol" | "encryption"
                    )
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            got.entry(name).or_default().insert(labels);
        }
        got
    };
    let samples = prom.wait_for(
        "ALERTS{alertstate=\"firing\"}",
        Duration::from_secs(30),
        |s| firing(s) == want,
    );
    // Spelled out: no encrypted edge is among the plaintext alerts.
    let got = firing(&samples);
    for e in cases.iter().filter(|e| e.policy() == "ok") {
        assert!(
            !got["PlaintextFlowViolation"].contains(&edge(e, true)),
            "PlaintextFlowViolation fired for the encrypted edge {e:?}"
        );
    }
}

/// The checker can fail: a real HTTP flow expected as TLS must not pass.
fn assert_wrong_expectation_fails(t: &Topology, agent: &Agent) {
    let mut check = Checker::new(agent).waiting(Duration::from_secs(2));
    let wrong = Expected::new(t, nginx::HTTP_PORT, "http", "tls").tls("1.3");
    let url = format!("http://{}:{}/", t.server_ip, nginx::HTTP_PORT);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check.expect_edge(wrong, || {
            clients::curl(t, &[], &url);
        });
    }));
    assert!(result.is_err(), "an HTTP flow passed as TLS");
}
