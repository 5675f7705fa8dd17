//! From a decoded object to the IPs it owns and the name they get.
//!
//! A pod is named by its workload, found from its controller owner
//! reference without watching the owners themselves:
//!
//! - ReplicaSet → Deployment: the Deployment controller names each
//!   ReplicaSet `<deployment>-<pod-template-hash>` and copies that hash into
//!   the pods' `pod-template-hash` label, so stripping `-<hash>` from the
//!   ReplicaSet name gives the Deployment exactly. A ReplicaSet without the
//!   label (created by hand) is its own workload. Watching ReplicaSets would
//!   cost another watch, RBAC on `apps/replicasets` and memory for every old
//!   revision (Deployments keep ten by default) to learn the same name.
//! - Job → CronJob: the CronJob controller names Jobs `<cronjob>-<scheduled
//!   time in minutes since the epoch>`, and pods carry no label naming the
//!   CronJob. A trailing `-<8 or more digits>` is stripped (minutes since
//!   1970 have had 8 digits since 1973). A hand-made Job named
//!   `backup-20261127` is then named `backup`, which is still the workload an
//!   operator means; a metadata-only watch of Jobs would be exact but costs a
//!   watch, RBAC on `batch/jobs` and an entry per finished Job kept around.
//!   The point is a stable name: without it every run is a new edge.
//! - StatefulSet, DaemonSet, and any other controller (ReplicationController,
//!   operators' custom kinds): the owner's name.
//! - No controller (a bare pod) or a static pod (owned by its Node): the pod's
//!   own name.

use super::objects::{Node, ObjectMeta, Pod, Service};
use super::{IdentityKind, KubeIdentity};
use std::net::IpAddr;

/// What one object claims: its IPs, and the identity they resolve to.
#[derive(Debug, PartialEq, Eq)]
pub struct Claim {
    pub ips: Vec<IpAddr>,
    pub identity: KubeIdentity,
}

/// Minutes since the epoch: 8 digits from 1973 to 2160.
const CRONJOB_SUFFIX_MIN_DIGITS: usize = 8;

fn workload(meta: &ObjectMeta) -> String {
    let owner = meta
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| meta.owner_references.first());
    let Some(owner) = owner else {
        return meta.name.clone();
    };
    match owner.kind.as_str() {
        "ReplicaSet" => meta
            .labels
            .pod_template_hash
            .as_deref()
            .and_then(|hash| owner.name.strip_suffix(hash)?.strip_suffix('-'))
            .unwrap_or(&owner.name)
            .to_owned(),
        "Job" => cronjob_of(&owner.name).unwrap_or(&owner.name).to_owned(),
        "Node" => meta.name.clone(),
        _ => owner.name.clone(),
    }
}

fn cronjob_of(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    (!base.is_empty()
        && suffix.len() >= CRONJOB_SUFFIX_MIN_DIGITS
        && suffix.bytes().all(|b| b.is_ascii_digit()))
    .then_some(base)
}

fn parse_ips<'a>(addrs: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = addrs.filter_map(|a| a.parse().ok()).collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

fn node_identity(name: &str) -> KubeIdentity {
    KubeIdentity::new(IdentityKind::Node, None, name)
}

/// `None`: the pod holds no IP (pending, or finished: a Succeeded or Failed
/// pod's IP is free for the next pod, so it must not keep claiming it).
pub fn pod(p: &Pod) -> Option<Claim> {
    if matches!(p.status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ips = parse_ips(
        p.status
            .pod_ips
            .iter()
            .map(|i| i.ip.as_str())
            .chain(p.status.pod_ip.as_deref()),
    );
    if ips.is_empty() {
        return None;
    }
    let identity = match (&p.spec.node_name, p.spec.host_network) {
        // The pod shares the node's addresses: the node is the truthful name.
        (Some(node), true) => node_identity(node),
        _ => KubeIdentity::new(
            IdentityKind::Pod,
            p.metadata.namespace.as_deref(),
            &workload(&p.metadata),
        ),
    };
    Some(Claim { ips, identity })
}

/// `None` for headless (`clusterIP: None`) and ExternalName services.
pub fn service(s: &Service) -> Option<Claim> {
    let ips = parse_ips(
        s.spec
            .cluster_ips
            .iter()
            .map(String::as_str)
            .chain(s.spec.cluster_ip.as_deref()),
    );
    (!ips.is_empty()).then(|| Claim {
        ips,
        identity: KubeIdentity::new(
            IdentityKind::Service,
            s.metadata.namespace.as_deref(),
            &s.metadata.name,
        ),
    })
}

/// InternalIP and ExternalIP addresses (not Hostname/InternalDNS entries).
pub fn node(n: &Node) -> Option<Claim> {
    let ips = parse_ips(
        n.status
            .addresses
            .iter()
            .filter(|a| matches!(a.kind.as_str(), "InternalIP" | "ExternalIP"))
            .map(|a| a.address.as_str()),
    );
    (!ips.is_empty()).then(|| Claim {
        ips,
        identity: node_identity(&n.metadata.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_json(owner: Option<(&str, &str)>, hash: Option<&str>, extra: &str) -> Pod {
        let owners = owner.map_or(String::new(), |(kind, name)| {
            format!(
                r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"{kind}","name":"{name}","uid":"u1","controller":true}}]"#
            )
        });
        let labels = hash.map_or(String::new(), |h| {
            format!(r#","labels":{{"pod-template-hash":"{h}"}}"#)
        });
        serde_json::from_str(&format!(
            r#"{{"metadata":{{"name":"p-1","namespace":"ns","uid":"u"{owners}{labels}}},
                "spec":{{"nodeName":"node-a"{extra}}},
                "status":{{"phase":"Running","podIP":"10.1.0.5","podIPs":[{{"ip":"10.1.0.5"}}]}}}}"#
        ))
        .unwrap()
    }

    fn name_of(p: &Pod) -> String {
        pod(p).unwrap().identity.to_string()
    }

    #[test]
    fn replicaset_pod_is_named_by_its_deployment() {
        let p = pod_json(
            Some(("ReplicaSet", "checkout-7d9f8b6c5")),
            Some("7d9f8b6c5"),
            "",
        );
        assert_eq!(name_of(&p), "ns/checkout");
    }

    #[test]
    fn replicaset_without_template_hash_is_its_own_workload() {
        let p = pod_json(Some(("ReplicaSet", "legacy-rs")), None, "");
        assert_eq!(name_of(&p), "ns/legacy-rs");
    }

    #[test]
    fn cronjob_job_pod_is_named_by_its_cronjob() {
        let p = pod_json(Some(("Job", "nightly-backup-29411520")), None, "");
        assert_eq!(name_of(&p), "ns/nightly-backup");
        let p = pod_json(Some(("Job", "migrate-v2")), None, "");
        assert_eq!(name_of(&p), "ns/migrate-v2");
    }

    #[test]
    fn statefulset_daemonset_and_bare_pods() {
        assert_eq!(
            name_of(&pod_json(Some(("StatefulSet", "ledger-db")), None, "")),
            "ns/ledger-db"
        );
        assert_eq!(
            name_of(&pod_json(Some(("DaemonSet", "fluent-bit")), None, "")),
            "ns/fluent-bit"
        );
        assert_eq!(name_of(&pod_json(None, None, "")), "ns/p-1");
        assert_eq!(
            name_of(&pod_json(Some(("Node", "node-a")), None, "")),
            "ns/p-1"
        );
    }

    #[test]
    fn host_network_pod_is_named_by_its_node() {
        let p = pod_json(
            Some(("DaemonSet", "kube-proxy")),
            None,
            r#","hostNetwork":true"#,
        );
        let c = pod(&p).unwrap();
        assert_eq!(c.identity.to_string(), "node/node-a");
        assert_eq!(c.identity.kind, IdentityKind::Node);
    }

    #[test]
    fn finished_and_pending_pods_claim_no_ip() {
        let mut p = pod_json(None, None, "");
        p.status.phase = Some("Succeeded".into());
        assert_eq!(pod(&p), None);
        let mut p = pod_json(None, None, "");
        p.status.pod_ip = None;
        p.status.pod_ips.clear();
        assert_eq!(pod(&p), None);
    }

    #[test]
    fn headless_service_claims_nothing_and_dual_stack_claims_both() {
        let s: Service = serde_json::from_str(
            r#"{"metadata":{"name":"db","namespace":"billing","uid":"s"},"spec":{"clusterIP":"None","clusterIPs":["None"]}}"#,
        )
        .unwrap();
        assert_eq!(service(&s), None);
        let s: Service = serde_json::from_str(
            r#"{"metadata":{"name":"ledger-db","namespace":"billing","uid":"s"},"spec":{"type":"ClusterIP","clusterIP":"10.96.4.7","clusterIPs":["10.96.4.7","fd00:96::7"]}}"#,
        )
        .unwrap();
        let c = service(&s).unwrap();
        assert_eq!(c.ips.len(), 2);
        assert_eq!(c.identity.to_string(), "billing/ledger-db");
    }

    #[test]
    fn node_keeps_ip_addresses_not_host_names() {
        let n: Node = serde_json::from_str(
            r#"{"metadata":{"name":"ip-10-0-1-23.ec2.internal","uid":"n"},"status":{"addresses":[
              {"type":"InternalIP","address":"10.0.1.23"},{"type":"ExternalIP","address":"54.1.2.3"},
              {"type":"Hostname","address":"ip-10-0-1-23.ec2.internal"},{"type":"InternalDNS","address":"ip-10-0-1-23.ec2.internal"}]}}"#,
        )
        .unwrap();
        let c = node(&n).unwrap();
        assert_eq!(
            c.ips,
            [
                "10.0.1.23".parse::<IpAddr>().unwrap(),
                "54.1.2.3".parse().unwrap()
            ]
        );
        assert_eq!(c.identity.to_string(), "node/ip-10-0-1-23.ec2.internal");
    }
}
