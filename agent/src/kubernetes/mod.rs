//! Kubernetes identities: names each IP `namespace/workload` (pods),
//! `namespace/service` (Service ClusterIPs) or `node/NAME` (node addresses
//! and host-network pods) from Pods, Services and Nodes watched on the API
//! server.
//!
//! # Wiring
//!
//! ```text
//! // before attaching: `[kubernetes]` settings -> where the API server is
//! let prepared = KubeIdentities::prepare(settings.resolve()?.unwrap())?;
//! prepared.health().register(&mut registry);               // plainsight_kubernetes_*
//! let kube = prepared.start();                              // in the tokio runtime
//! // first in the resolver chain (pipeline/identity.rs), before named CIDRs and the IP:
//! let name = kube.lookup(ip).map(|id| id.name.clone());    // "payments/checkout"
//! ```
//!
//! `plainsight run` does exactly this (run.rs); `KubeIdentities::spawn`
//! is `prepare` + `start` for tests.
//!
//! `lookup` is a read lock and one hash lookup returning a shared pointer;
//! it never waits for the API server. Until the first lists complete, and
//! while the server is unreachable, it answers from what it knows (nothing
//! at first, the last state later) and callers fall back to CIDRs and IPs.
//! Policy rules match on [`KubeIdentity::namespace`] and
//! [`KubeIdentity::workload`].
//!
//! # Why no kube-rs
//!
//! kube-rs + k8s-openapi is the usual stack. We use hyper (already in the
//! tree through axum) + rustls (ring) + serde structs that decode only the
//! fields that name an IP (`objects.rs`), because:
//!
//! - Compile time (CPU seconds of a from-scratch release build at `-j1` on
//!   our 2-core CI machine type, over a baseline of tokio + hyper + serde
//!   that the agent already has): kube 5 (client, runtime, rustls-tls) +
//!   k8s-openapi 0.29 adds ~189 s (219 s vs 29 s; k8s-openapi and
//!   kube-client are the two largest crates); this stack adds ~36 s (65 s:
//!   rustls, ring, a YAML parser for kubeconfig, base64).
//! - Memory: a k8s-openapi `Pod` keeps every field of the object. 10,000
//!   realistic pods (3.4 KB of JSON each) decoded into them hold 29.7 KB per
//!   pod (22.4 KB with managedFields stripped), ~300 MB in all, and a
//!   kube-rs reflector stores them whole. Our index holds 270 bytes per pod
//!   (2.6 MiB with 1,000 services and 200 nodes;
//!   `cargo run -p plainsight --example kube_memory --release`).
//! - We need three read-only list+watches, not a controller runtime.
//!
//! # Modules
//!
//! `config` (in-cluster and kubeconfig), `transport` (HTTP/1.1 over TCP or
//! rustls, bearer token re-read per request), `watch` (list+watch loop),
//! `objects` (decoded fields), `owner` (owner references → workload),
//! `index` (IP → identity, uid-tracked claims, interned identities),
//! `backoff`, `health` (metrics).

mod backoff;
mod health;
mod index;
mod kubeconfig;
mod objects;
mod owner;
mod transport;
mod watch;
/// Percent-encoding of a query value, shared with the Prometheus reader (fleet.rs).
pub(crate) use watch::encode;

pub use health::KubeHealth;
pub use index::Source;
pub use kubeconfig::{Auth, ConfigError, Enabled, KubeConfig, KubeSettings, SERVICE_ACCOUNT_DIR};
pub use transport::TransportError;

use index::IpIndex;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use tokio::task::AbortHandle;

/// What kind of thing an IP belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// A pod, named by its workload (Deployment, StatefulSet, DaemonSet,
    /// CronJob, Job, ...; the pod's own name when it has no controller).
    Pod,
    /// A Service's ClusterIP.
    Service,
    /// A node's address, or a host-network pod on it.
    Node,
}

/// The name of one IP. Shared (interned): every pod of a workload points
/// to the same one. The strings are shared too, so the event path turns an
/// identity into the agent's `Identity` with reference counts, not copies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KubeIdentity {
    pub kind: IdentityKind,
    /// `None` for nodes.
    pub namespace: Option<Arc<str>>,
    /// Workload, service or node name.
    pub workload: Arc<str>,
    /// `namespace/workload`, `namespace/service` or `node/NAME`.
    pub name: Arc<str>,
}

impl KubeIdentity {
    pub fn new(kind: IdentityKind, namespace: Option<&str>, workload: &str) -> Self {
        let name = match namespace {
            Some(ns) => format!("{ns}/{workload}"),
            None => format!("node/{workload}"),
        };
        Self {
            kind,
            namespace: namespace.map(Arc::from),
            workload: workload.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for KubeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Handle on the watches and their index. Cheap to clone; the watches stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct KubeIdentities {
    index: Arc<RwLock<IpIndex>>,
    health: KubeHealth,
    _tasks: Arc<Tasks>,
}

struct Tasks(Vec<AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The source set up but not yet watching: built before the agent attaches
/// anything (so a bad TLS setup stops it with nothing attached), started
/// once the runtime runs.
pub struct Prepared {
    transport: Arc<transport::Transport>,
    config: KubeConfig,
    health: KubeHealth,
}

impl Prepared {
    pub const fn health(&self) -> &KubeHealth {
        &self.health
    }

    /// Starts watching Pods, Services and Nodes. Must be called inside a
    /// tokio runtime.
    pub fn start(self) -> KubeIdentities {
        let Self {
            transport,
            config,
            health,
        } = self;
        let index = Arc::new(RwLock::new(IpIndex::default()));
        let tasks = vec![
            spawn_watch::<objects::Pod>(&transport, &index, &health, &config),
            spawn_watch::<objects::Service>(&transport, &index, &health, &config),
            spawn_watch::<objects::Node>(&transport, &index, &health, &config),
        ];
        KubeIdentities {
            index,
            health,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }
}

impl KubeIdentities {
    /// Checks the TLS setup (CA, client key) without connecting; an
    /// unreachable API server is retried in the background once started.
    pub fn prepare(config: KubeConfig) -> Result<Prepared, TransportError> {
        if let Some(warning) = config.insecure_warning() {
            log::warn!("{warning}");
        }
        Ok(Prepared {
            transport: Arc::new(transport::Transport::new(&config)?),
            config,
            health: KubeHealth::default(),
        })
    }

    /// `prepare` and `start` in one: inside a tokio runtime.
    pub fn spawn(config: KubeConfig) -> Result<Self, TransportError> {
        Ok(Self::prepare(config)?.start())
    }

    /// The identity of `ip`, from the last known state.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<KubeIdentity>> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lookup(ip)
    }

    pub const fn health(&self) -> &KubeHealth {
        &self.health
    }

    /// Every resource has been listed at least once.
    pub fn is_synced(&self) -> bool {
        [Source::Pods, Source::Services, Source::Nodes]
            .into_iter()
            .all(|s| self.health.list_count(s) > 0)
    }

    /// Objects of `source` holding an IP, and distinct identities held.
    pub fn counts(&self, source: Source) -> (usize, usize) {
        let ix = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (ix.count(source), ix.identities())
    }
}

fn spawn_watch<T: watch::Watched>(
    transport: &Arc<transport::Transport>,
    index: &Arc<RwLock<IpIndex>>,
    health: &KubeHealth,
    config: &KubeConfig,
) -> AbortHandle {
    tokio::spawn(watch::run::<T>(
        Arc::clone(transport),
        Arc::clone(index),
        health.clone(),
        config.clone(),
    ))
    .abort_handle()
}
