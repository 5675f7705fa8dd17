//! How the watches are doing, as Prometheus metrics the agent registers
//! next to its own (`KubeHealth::register`). Every field is a shared atomic:
//! the watch tasks update them, scrapes read them.

use super::index::Source;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// `pods`, `services` or `nodes`.
    pub resource: &'static str,
}

impl Source {
    pub const fn resource(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::Services => "services",
            Self::Nodes => "nodes",
        }
    }

    fn labels(self) -> ResourceLabels {
        ResourceLabels {
            resource: self.resource(),
        }
    }
}

#[derive(Clone, Default)]
pub struct KubeHealth {
    /// Lists completed (the first one, and every re-list after 410 Gone or
    /// an error).
    pub lists: Family<ResourceLabels, Counter>,
    /// Watches started again after ending (server timeout, broken
    /// connection, error).
    pub watch_restarts: Family<ResourceLabels, Counter>,
    /// Failed lists and watches: unreachable server, HTTP errors, RBAC
    /// denials, undecodable responses, stalls.
    pub errors: Family<ResourceLabels, Counter>,
    /// Lists and watches given up because the server accepted and then
    /// stopped answering: no TLS handshake or response headers within
    /// `request_timeout`, a list page not whole within it, or a watch
    /// still open past its `timeoutSeconds` + `stall_margin`. Also in
    /// `errors`.
    pub stalls: Family<ResourceLabels, Counter>,
    /// Objects currently holding an IP in the index.
    pub objects: Family<ResourceLabels, Gauge>,
    /// When the index last matched the API server: a list, or a watch event
    /// or bookmark (Unix seconds).
    pub last_sync: Family<ResourceLabels, Gauge<f64, AtomicU64>>,
}

impl KubeHealth {
    /// Registers under `plainsight_kubernetes_*`.
    pub fn register(&self, reg: &mut Registry) {
        let reg = reg.sub_registry_with_prefix("kubernetes");
        reg.register("lists", "Completed lists of a resource", self.lists.clone());
        reg.register(
            "watch_restarts",
            "Watches of a resource started again after ending",
            self.watch_restarts.clone(),
        );
        reg.register(
            "errors",
            "Failed lists and watches of a resource",
            self.errors.clone(),
        );
        reg.register(
            "stalls",
            "Lists and watches of a resource given up because the API server stopped answering",
            self.stalls.clone(),
        );
        reg.register(
            "objects",
            "Objects of a resource holding an IP in the identity index",
            self.objects.clone(),
        );
        reg.register(
            "last_sync_timestamp_seconds",
            "When a resource's identities last matched the API server",
            self.last_sync.clone(),
        );
    }

    pub(super) fn synced(&self, source: Source) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.last_sync.get_or_create(&source.labels()).set(now);
    }

    pub(super) fn listed(&self, source: Source) {
        self.lists.get_or_create(&source.labels()).inc();
        self.synced(source);
    }

    pub(super) fn error(&self, source: Source, stall: bool) {
        self.errors.get_or_create(&source.labels()).inc();
        if stall {
            self.stalls.get_or_create(&source.labels()).inc();
        }
    }

    pub(super) fn restarted(&self, source: Source) {
        self.watch_restarts.get_or_create(&source.labels()).inc();
    }

    pub(super) fn set_objects(&self, source: Source, n: usize) {
        self.objects
            .get_or_create(&source.labels())
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Lists completed for `source` so far.
    pub fn list_count(&self, source: Source) -> u64 {
        self.lists.get_or_create(&source.labels()).get()
    }

    pub fn error_count(&self, source: Source) -> u64 {
        self.errors.get_or_create(&source.labels()).get()
    }

    pub fn stall_count(&self, source: Source) -> u64 {
        self.stalls.get_or_create(&source.labels()).get()
    }

    pub fn restart_count(&self, source: Source) -> u64 {
        self.watch_restarts.get_or_create(&source.labels()).get()
    }
}
