//! The Kubernetes identity source against a local server speaking the real
//! list+watch protocol (`fake_apiserver`): no cluster exists on our
//! machines. The client is configured from a kubeconfig file (http://
//! server, bearer token) exactly as a developer's would be.

use fake_apiserver::fixtures::{self, Owner, PodSpec};
use fake_apiserver::{FakeApiServer, Stall};
use plainsight::kubernetes::{IdentityKind, KubeConfig, KubeIdentities, Source};
use serde::Deserialize as _;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-7f3a";

fn kubeconfig(addr: SocketAddr, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plainsight-kube-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    fake_apiserver::write_kubeconfig(&path, addr, Some(TOKEN));
    path
}

fn config(addr: SocketAddr, name: &str) -> KubeConfig {
    let mut c = fast(KubeConfig::from_kubeconfig(&kubeconfig(addr, name), None).unwrap());
    c.page_size = 2;
    c
}

/// Test-speed retries: 20 ms doubling to 200 ms.
fn fast(mut c: KubeConfig) -> KubeConfig {
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(kube: &KubeIdentities, addr: &str) -> Option<String> {
    kube.lookup(ip(addr)).map(|i| i.to_string())
}

/// Waits (up to 10 s) for `cond`; panics with `what` otherwise.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn eventually_named(kube: &KubeIdentities, addr: &str, want: Option<&str>) {
    eventually(&format!("{addr} to be named {want:?}"), || {
        name(kube, addr).as_deref() == want
    })
    .await;
}

fn deployment_pod(uid: u64, ns: &str, deploy: &str, ip: &str) -> Value {
    let name = format!("{deploy}-7d9f8b6c5-{uid:05}");
    fixtures::pod(&PodSpec {
        uid,
        namespace: ns,
        name: &name,
        owner: Owner::Deployment(deploy, "7d9f8b6c5"),
        ips: &[ip],
        node: "ip-10-0-1-23.ec2.internal",
        host_network: false,
    })
}

/// A small cluster: one of each way a pod is named, services, nodes.
fn cluster(server: &FakeApiServer) {
    let node = "ip-10-0-1-23.ec2.internal";
    let pod = |uid, ns, name: &str, owner, ips: &[&str], host_network| {
        fixtures::pod(&PodSpec {
            uid,
            namespace: ns,
            name,
            owner,
            ips,
            node,
            host_network,
        })
    };
    server.preload(
        "pods",
        [
            deployment_pod(1, "payments", "checkout", "10.0.1.57"),
            pod(
                2,
                "billing",
                "ledger-db-0",
                Owner::StatefulSet("ledger-db"),
                &["10.0.1.58", "fd00::58"],
                false,
            ),
            pod(
                3,
                "kube-system",
                "kube-proxy-x7k2p",
                Owner::DaemonSet("kube-proxy"),
                &["10.0.1.23"],
                true,
            ),
            pod(
                4,
                "ops",
                "nightly-backup-29411520-abcde",
                Owner::CronJob("nightly-backup", 29_411_520),
                &["10.0.1.60"],
                false,
            ),
            pod(
                5,
                "ops",
                "migrate-v2-q8r7t",
                Owner::Job("migrate-v2"),
                &["10.0.1.61"],
                false,
            ),
            pod(
                6,
                "default",
                "debug-shell",
                Owner::Bare,
                &["10.0.1.62"],
                false,
            ),
            pod(7, "default", "pending", Owner::Bare, &[], false),
        ],
    );
    server.preload(
        "services",
        [
            fixtures::service(101, "billing", "ledger-db", &["10.96.4.7"]),
            fixtures::service(102, "billing", "ledger-db-headless", &[]),
        ],
    );
    server.preload(
        "nodes",
        [
            fixtures::node(201, node, "10.0.1.23"),
            fixtures::node(202, "ip-10-0-2-9.ec2.internal", "10.0.2.9"),
        ],
    );
}

async fn synced(server: &FakeApiServer, name: &str) -> KubeIdentities {
    let kube = KubeIdentities::spawn(config(server.addr, name)).unwrap();
    eventually("the first lists", || kube.is_synced()).await;
    kube
}

#[tokio::test]
async fn initial_list_names_pods_by_workload_services_and_nodes() {
    let server = FakeApiServer::start().await;
    server.set_token(TOKEN);
    cluster(&server);
    let kube = synced(&server, "list").await;

    for (addr, want) in [
        ("10.0.1.57", "payments/checkout"),
        ("10.0.1.58", "billing/ledger-db"),
        ("fd00::58", "billing/ledger-db"),
        ("10.0.1.60", "ops/nightly-backup"),
        ("10.0.1.61", "ops/migrate-v2"),
        ("10.0.1.62", "default/debug-shell"),
        ("10.96.4.7", "billing/ledger-db"),
        ("10.0.1.23", "node/ip-10-0-1-23.ec2.internal"),
        ("10.0.2.9", "node/ip-10-0-2-9.ec2.internal"),
    ] {
        assert_eq!(name(&kube, addr).as_deref(), Some(want), "{addr}");
    }
    assert_eq!(name(&kube, "10.0.9.9"), None, "unknown IPs fall through");
    let checkout = kube.lookup(ip("10.0.1.57")).unwrap();
    assert_eq!(checkout.kind, IdentityKind::Pod);
    assert_eq!(checkout.namespace.as_deref(), Some("payments"));
    assert_eq!(&*checkout.workload, "checkout");
    assert_eq!(
        kube.lookup(ip("10.96.4.7")).unwrap().kind,
        IdentityKind::Service
    );
    assert_eq!(kube.lookup(ip("10.0.2.9")).unwrap().namespace, None);
    // The pending pod and the headless service hold no IP.
    assert_eq!(kube.counts(Source::Pods).0, 6);
    assert_eq!(kube.counts(Source::Services).0, 1);

    // Paginated (page size 2), finished pods filtered by the server, the
    // token sent (the server answers 401 without it).
    let requests = server.requests();
    let pod_lists: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods?") && !r.contains("watch=1"))
        .collect();
    assert_eq!(pod_lists.len(), 4, "{pod_lists:?}");
    assert!(pod_lists[0].contains("limit=2"), "{pod_lists:?}");
    assert!(
        pod_lists[1].contains("continue=offset%3D2"),
        "{pod_lists:?}"
    );
    assert!(
        pod_lists[0]
            .contains("fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"),
        "{pod_lists:?}"
    );
    assert!(
        !pod_lists[0].contains("resourceVersion="),
        "lists are consistent reads"
    );
}

/// What the agent asks of the API server, as RBAC (resource, verb) pairs.
fn used_permissions(requests: &[String]) -> BTreeSet<(String, String)> {
    requests
        .iter()
        .map(|r| {
            let path = r.split('?').next().unwrap();
            let resource = path.strip_prefix("/api/v1/").expect("core API only");
            let verb = if r.contains("watch=1") {
                "watch"
            } else {
                "list"
            };
            (resource.to_owned(), verb.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn rbac_grants_exactly_what_the_agent_requests() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = synced(&server, "rbac").await;
    eventually("the watches", || {
        used_permissions(&server.requests())
            .iter()
            .filter(|(_, v)| v == "watch")
            .count()
            == 3
    })
    .await;
    drop(kube);
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/rbac.yaml"
    ))
    .unwrap();
    let mut granted = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&rbac) {
        let doc = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if doc["kind"] != "ClusterRole" {
            continue;
        }
        for rule in doc["rules"].as_sequence().unwrap() {
            assert_eq!(rule["apiGroups"][0], "", "core group only");
            for resource in rule["resources"].as_sequence().unwrap() {
                for verb in rule["verbs"].as_sequence().unwrap() {
                    granted.insert((
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    assert_eq!(granted, used_permissions(&server.requests()));
}

#[tokio::test]
async fn watch_events_apply_and_a_broken_watch_resumes_from_the_last_version() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = synced(&server, "watch").await;

    server.apply(
        "pods",
        "ADDED",
        deployment_pod(10, "payments", "checkout", "10.0.1.70"),
    );
    eventually_named(&kube, "10.0.1.70", Some("payments/checkout")).await;
    server.apply(
        "services",
        "ADDED",
        fixtures::service(110, "shop", "web", &["10.96.0.80"]),
    );
    eventually_named(&kube, "10.96.0.80", Some("shop/web")).await;
    server.apply(
        "pods",
        "DELETED",
        deployment_pod(1, "payments", "checkout", "10.0.1.57"),
    );
    eventually_named(&kube, "10.0.1.57", None).await;
    let bookmark = server.bookmark();
    eventually("the bookmark on the pod watch", || {
        server.delivered("pods") >= bookmark
    })
    .await;

    // Connections die mid-stream; what happens meanwhile must arrive after
    // the resumed watch, with no re-list.
    let before = server.requests().len();
    server.while_disconnected(
        vec![(
            "pods",
            "ADDED",
            deployment_pod(11, "shop", "cart", "10.0.1.71"),
        )],
        false,
    );
    eventually_named(&kube, "10.0.1.71", Some("shop/cart")).await;
    let after: Vec<String> = server.requests()[before..].to_vec();
    let resumed = after
        .iter()
        .find(|r| r.starts_with("/api/v1/pods?watch=1"))
        .expect("a new pod watch");
    assert!(
        resumed.contains(&format!("resourceVersion={bookmark}&")),
        "resumed from the bookmark's version {bookmark}: {resumed}"
    );
    assert!(
        !after.iter().any(|r| r.starts_with("/api/v1/pods?limit")),
        "no re-list after a broken watch: {after:?}"
    );
    assert_eq!(kube.health().list_count(Source::Pods), 1);
    assert!(kube.health().restart_count(Source::Pods) >= 1);
}

#[tokio::test]
async fn expired_version_410_gone_triggers_a_relist() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = synced(&server, "gone").await;
    assert_eq!(
        name(&kube, "10.0.1.62").as_deref(),
        Some("default/debug-shell")
    );

    // Changes the client can no longer learn from a watch: history is
    // compacted while it is disconnected, so its version is 410 Gone.
    server.while_disconnected(
        vec![
            (
                "pods",
                "DELETED",
                fixtures::pod(&PodSpec {
                    uid: 6,
                    namespace: "default",
                    name: "debug-shell",
                    owner: Owner::Bare,
                    ips: &["10.0.1.62"],
                    node: "n",
                    host_network: false,
                }),
            ),
            (
                "pods",
                "ADDED",
                deployment_pod(12, "shop", "cart", "10.0.1.72"),
            ),
        ],
        true,
    );
    eventually_named(&kube, "10.0.1.72", Some("shop/cart")).await;
    assert_eq!(
        name(&kube, "10.0.1.62"),
        None,
        "the re-list dropped the deleted pod"
    );
    assert_eq!(kube.health().list_count(Source::Pods), 2);
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("payments/checkout")
    );
}

#[tokio::test]
async fn reused_ip_belongs_to_the_new_pod_even_when_the_old_pods_delete_comes_late() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = synced(&server, "reuse").await;
    let old = deployment_pod(1, "payments", "checkout", "10.0.1.57");

    // The CNI hands 10.0.1.57 to a new pod before the old one's final
    // updates and its DELETED reach us.
    server.apply(
        "pods",
        "ADDED",
        deployment_pod(20, "billing", "invoicer", "10.0.1.57"),
    );
    eventually_named(&kube, "10.0.1.57", Some("billing/invoicer")).await;
    server.apply("pods", "MODIFIED", old.clone());
    server.apply("pods", "DELETED", old);
    // A marker event after them: once it is seen, they were applied.
    server.apply(
        "pods",
        "ADDED",
        deployment_pod(21, "ops", "marker", "10.0.1.99"),
    );
    eventually_named(&kube, "10.0.1.99", Some("ops/marker")).await;
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("billing/invoicer")
    );
}

#[tokio::test]
async fn unreachable_api_server_backs_off_recovers_and_keeps_the_last_state() {
    // A free port with nothing listening yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kube = KubeIdentities::spawn(config(addr, "down")).unwrap();
    eventually("connection errors", || {
        kube.health().error_count(Source::Pods) >= 3
    })
    .await;
    assert!(!kube.is_synced());
    assert_eq!(
        name(&kube, "10.0.1.57"),
        None,
        "callers fall back to CIDRs/IPs"
    );

    let server = FakeApiServer::start_at(addr).await;
    cluster(&server);
    eventually("the first lists after recovery", || kube.is_synced()).await;
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("payments/checkout")
    );
    // Exponential backoff: far fewer attempts than a tight loop would make
    // (20 ms initial, 200 ms cap).
    let errors = kube.health().error_count(Source::Pods);
    assert!(errors < 60, "{errors} attempts: no backoff?");

    // The server goes away again: lookups keep the last known state.
    drop(server);
    let errors = kube.health().error_count(Source::Pods);
    eventually("errors after the server left", || {
        kube.health().error_count(Source::Pods) > errors
    })
    .await;
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("payments/checkout")
    );
    assert_eq!(
        name(&kube, "10.0.1.23").as_deref(),
        Some("node/ip-10-0-1-23.ec2.internal")
    );
}

#[tokio::test]
async fn health_metrics_render_in_prometheus_text() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = synced(&server, "metrics").await;
    let mut registry = prometheus_client::registry::Registry::with_prefix("plainsight");
    kube.health().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "plainsight_kubernetes_objects{resource=\"pods\"} 6",
        "plainsight_kubernetes_objects{resource=\"services\"} 1",
        "plainsight_kubernetes_objects{resource=\"nodes\"} 2",
        "plainsight_kubernetes_lists_total{resource=\"pods\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    assert!(text.contains("plainsight_kubernetes_last_sync_timestamp_seconds{resource=\"nodes\"}"));
}

// --------------------------------------------------------------- stalls

/// Stall-test speed: watches asked to end after 1 s and given up 500 ms
/// later, requests bounded at 500 ms.
fn stall_bounds(mut c: KubeConfig) -> KubeConfig {
    c.watch_timeout = Duration::from_secs(1);
    c.stall_margin = Duration::from_millis(500);
    c.request_timeout = Duration::from_millis(500);
    c
}

#[tokio::test]
async fn a_silent_watch_is_given_up_counted_and_resumed() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    let kube = KubeIdentities::spawn(stall_bounds(config(server.addr, "stall-watch"))).unwrap();
    eventually("the first lists", || kube.is_synced()).await;
    // The server ends each watch at its timeoutSeconds: no stall.
    eventually("watches ended by the server and resumed", || {
        kube.health().restart_count(Source::Pods) >= 2
    })
    .await;
    assert_eq!(kube.health().stall_count(Source::Pods), 0);

    // Headers, then nothing: no event, no bookmark, no end.
    server.stall(Some(Stall::Watch));
    eventually("the stalled watch given up and counted", || {
        kube.health().stall_count(Source::Pods) >= 1
    })
    .await;
    assert!(
        kube.health().error_count(Source::Pods) >= kube.health().stall_count(Source::Pods),
        "a stall is an error too"
    );
    server.stall(None);
    server.apply(
        "pods",
        "ADDED",
        deployment_pod(40, "shop", "cart", "10.0.1.90"),
    );
    eventually_named(&kube, "10.0.1.90", Some("shop/cart")).await;
    let lists = kube.health().list_count(Source::Pods);
    assert_eq!(lists, 1, "resumed from its version, not re-listed");

    let mut registry = prometheus_client::registry::Registry::with_prefix("plainsight");
    kube.health().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("plainsight_kubernetes_stalls_total{resource=\"pods\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn lists_whose_headers_or_body_stall_time_out_and_are_counted() {
    let server = FakeApiServer::start().await;
    cluster(&server);
    server.stall(Some(Stall::Headers));
    let kube = KubeIdentities::spawn(stall_bounds(config(server.addr, "stall-list"))).unwrap();
    eventually("lists without response headers given up", || {
        kube.health().stall_count(Source::Pods) >= 2
    })
    .await;
    assert!(!kube.is_synced());

    // Headers and half a page, then nothing.
    server.stall(Some(Stall::ListBody));
    let before = kube.health().stall_count(Source::Pods);
    eventually("lists with a stalled body given up", || {
        kube.health().stall_count(Source::Pods) >= before + 2
    })
    .await;
    assert!(!kube.is_synced());

    server.stall(None);
    eventually("the lists once the server answers", || kube.is_synced()).await;
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("payments/checkout")
    );
}

// ------------------------------------------------------------------ TLS

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// by the openssl CLI (installed by `cargo xtask setup`).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("plainsight-kube-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is not installed (cargo xtask setup installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=test-cluster-ca",
                ],
            ]
            .concat(),
        );
        for (who, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
            openssl(
                &[
                    &["req"],
                    &ec[..],
                    &[
                        "-keyout",
                        &format!("{who}.key"),
                        "-out",
                        &format!("{who}.csr"),
                        "-subj",
                        &format!("/CN={who}"),
                    ],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{who}.crt"),
                "-extfile",
                &format!("{who}.ext"),
            ]);
        }
        Self { dir }
    }

    fn pem(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }

    /// The server side; `client_auth`: require a client certificate from
    /// this CA.
    fn server_config(&self, client_auth: bool) -> rustls::ServerConfig {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(&self.pem("ca.crt")).unwrap())
                .unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(&self.pem("server.crt")).unwrap()],
                PrivateKeyDer::from_pem_slice(&self.pem("server.key")).unwrap(),
            )
            .unwrap()
    }
}

#[tokio::test]
async fn in_cluster_config_over_tls_follows_token_rotation() {
    let pki = Pki::new("incluster");
    let server = FakeApiServer::start_tls(pki.server_config(false)).await;
    server.set_token("token-1");
    cluster(&server);
    // The service-account mount as the kubelet lays it out.
    let sa = pki.dir.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "token-1").unwrap();
    std::fs::copy(pki.dir.join("ca.crt"), sa.join("ca.crt")).unwrap();
    let config =
        KubeConfig::in_cluster_at("127.0.0.1", &server.addr.port().to_string(), &sa).unwrap();
    let kube = KubeIdentities::spawn(fast(config)).unwrap();
    eventually("the first lists over TLS", || kube.is_synced()).await;
    assert_eq!(
        name(&kube, "10.0.1.57").as_deref(),
        Some("payments/checkout")
    );

    // The kubelet rotates the token; the old one stops working.
    std::fs::write(sa.join("token"), "token-2").unwrap();
    server.set_token("token-2");
    server.while_disconnected(
        vec![(
            "pods",
            "ADDED",
            deployment_pod(30, "shop", "cart", "10.0.1.80"),
        )],
        false,
    );
    eventually_named(&kube, "10.0.1.80", Some("shop/cart")).await;
}

#[tokio::test]
async fn kubeconfig_client_certificate_over_tls() {
    let pki = Pki::new("clientcert");
    let server = FakeApiServer::start_tls(pki.server_config(true)).await;
    cluster(&server);
    let path = pki.dir.join("config");
    std::fs::write(
        &path,
        format!(
            "current-context: c\n\
             clusters: [{{name: k, cluster: {{server: 'https://{}', certificate-authority: ca.crt}}}}]\n\
             users: [{{name: u, user: {{client-certificate: client.crt, client-key: client.key}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n",
            server.addr
        ),
    )
    .unwrap();
    let kube =
        KubeIdentities::spawn(fast(KubeConfig::from_kubeconfig(&path, None).unwrap())).unwrap();
    eventually("the first lists with a client certificate", || {
        kube.is_synced()
    })
    .await;
    assert_eq!(
        name(&kube, "10.96.4.7").as_deref(),
        Some("billing/ledger-db")
    );
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("trusted");
    let other = Pki::new("other");
    let server = FakeApiServer::start_tls(other.server_config(false)).await;
    cluster(&server);
    let mut config = fast(
        KubeConfig::in_cluster_at("127.0.0.1", &server.addr.port().to_string(), &{
            let sa = pki.dir.join("sa");
            std::fs::create_dir_all(&sa).unwrap();
            std::fs::write(sa.join("token"), "t").unwrap();
            std::fs::copy(pki.dir.join("ca.crt"), sa.join("ca.crt")).unwrap();
            sa
        })
        .unwrap(),
    );
    config.backoff_max = Duration::from_millis(50);
    let kube = KubeIdentities::spawn(config).unwrap();
    eventually("TLS errors", || {
        kube.health().error_count(Source::Pods) >= 3
    })
    .await;
    assert!(!kube.is_synced());
    assert!(
        server.requests().is_empty(),
        "no request got past the handshake"
    );
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_counted() {
    let pki = Pki::new("handshake");
    // Listening, never accepting: the kernel completes TCP handshakes and
    // the ClientHello waits for an answer forever.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sa = pki.dir.join("sa");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "t").unwrap();
    std::fs::copy(pki.dir.join("ca.crt"), sa.join("ca.crt")).unwrap();
    let config = KubeConfig::in_cluster_at(
        "127.0.0.1",
        &listener.local_addr().unwrap().port().to_string(),
        &sa,
    )
    .unwrap();
    let kube = KubeIdentities::spawn(stall_bounds(fast(config))).unwrap();
    eventually("stalled handshakes counted", || {
        kube.health().stall_count(Source::Nodes) >= 2
    })
    .await;
    assert!(!kube.is_synced());
}
