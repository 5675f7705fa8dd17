//! Memory of the Kubernetes identity index for a large cluster:
//!
//! ```sh
//! cargo run -p plainsight --example kube_memory --release [-- PODS [--write-pods FILE]]
//! ```
//!
//! Generates PODS (default 10,000) realistic pods (20 namespaces, 10
//! replicas per Deployment, full API JSON with managedFields), a Service per
//! Deployment and a Node per 50 pods, serves them from the local fake API
//! server the tests use, and lets `KubeIdentities` list them through the
//! real HTTP + decode path. Live heap is counted by a wrapping global
//! allocator, so the numbers are exact bytes, not RSS noise.
//! `--write-pods FILE` also writes the pods as one PodList JSON file (to
//! decode with another client stack for comparison).

use fake_apiserver::FakeApiServer;
use fake_apiserver::fixtures::{self, Owner, PodSpec};
use plainsight::kubernetes::{KubeConfig, KubeIdentities, Source};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const REPLICAS: u64 = 10;
const NAMESPACES: u64 = 20;
const PODS_PER_NODE: u64 = 50;

fn octets(n: u64) -> String {
    format!("10.{}.{}.{}", 1 + n / 65_536, (n / 256) % 256, n % 256)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pods: u64 = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or(10_000, |a| a.parse().expect("PODS must be a number"));
    let write_pods = args
        .iter()
        .position(|a| a == "--write-pods")
        .map(|i| args.get(i + 1).expect("--write-pods FILE").clone());

    let server = FakeApiServer::start().await;
    let deployments = pods.div_ceil(REPLICAS);
    let mut pod_objects = Vec::new();
    for n in 0..pods {
        let d = n / REPLICAS;
        let namespace = format!("team-{}", d % NAMESPACES);
        let deploy = format!("service-{d}");
        let name = format!("{deploy}-5c9d7f8b6-{n:05x}");
        let ip = octets(n);
        let node = format!(
            "ip-10-0-{}-{}.ec2.internal",
            n / PODS_PER_NODE / 256,
            n / PODS_PER_NODE % 256
        );
        pod_objects.push(fixtures::pod(&PodSpec {
            uid: n,
            namespace: &namespace,
            name: &name,
            owner: Owner::Deployment(&deploy, "5c9d7f8b6"),
            ips: &[&ip],
            node: &node,
            host_network: false,
        }));
    }
    if let Some(path) = &write_pods {
        let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"}, "items": pod_objects});
        std::fs::write(path, list.to_string()).expect("writing --write-pods");
        pod_objects = serde_json::from_value(list["items"].clone()).unwrap();
    }
    let pod_json_bytes: usize = pod_objects.iter().map(|p| p.to_string().len()).sum();
    server.preload("pods", pod_objects);
    server.preload(
        "services",
        (0..deployments).map(|d| {
            let ip = format!("10.96.{}.{}", d / 256, d % 256);
            fixtures::service(
                1_000_000 + d,
                &format!("team-{}", d % NAMESPACES),
                &format!("service-{d}"),
                &[&ip],
            )
        }),
    );
    let nodes = pods.div_ceil(PODS_PER_NODE);
    server.preload(
        "nodes",
        (0..nodes).map(|n| {
            let name = format!("ip-10-0-{}-{}.ec2.internal", n / 256, n % 256);
            fixtures::node(
                2_000_000 + n,
                &name,
                &format!("10.0.{}.{}", n / 256, n % 256),
            )
        }),
    );

    let config = KubeConfig {
        backoff_initial: Duration::from_millis(50),
        ..KubeConfig::from_kubeconfig(&kubeconfig(server.addr), None).expect("kubeconfig")
    };
    let (live_before, rss_before) = (LIVE.load(Relaxed), rss_kib());
    PEAK.store(live_before, Relaxed);
    let kube = KubeIdentities::spawn(config).expect("spawn");
    while !kube.is_synced() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the finished list responses' buffers go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (live_after, peak, rss_after) = (LIVE.load(Relaxed), PEAK.load(Relaxed), rss_kib());

    let (pod_count, identities) = kube.counts(Source::Pods);
    let services = kube.counts(Source::Services).0;
    let node_count = kube.counts(Source::Nodes).0;
    assert_eq!(pod_count as u64, pods, "every pod indexed");
    let retained = live_after - live_before;
    println!(
        "objects indexed: {pod_count} pods, {services} services, {node_count} nodes; {identities} distinct identities"
    );
    println!(
        "pod JSON served: {} bytes ({} per pod)",
        pod_json_bytes,
        pod_json_bytes / pod_count.max(1)
    );
    println!(
        "retained heap: {retained} bytes = {:.1} MiB, {} bytes per pod (services and nodes included)",
        mib(retained),
        retained / pod_count.max(1)
    );
    println!(
        "peak heap above start while listing (page size 500; includes the fake server's own response buffers): {:.1} MiB",
        mib(peak - live_before)
    );
    println!(
        "RSS delta: {} KiB (allocator caching makes this coarser than the heap count)",
        rss_after.saturating_sub(rss_before)
    );
}

#[expect(clippy::cast_precision_loss, reason = "a display value")]
fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn kubeconfig(addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "plainsight-kube-memory-{}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!(
            "current-context: c\nclusters: [{{name: f, cluster: {{server: 'http://{addr}'}}}}]\n\
             contexts: [{{name: c, context: {{cluster: f}}}}]\n"
        ),
    )
    .expect("writing the kubeconfig");
    path
}
