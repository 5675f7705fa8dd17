//! The API objects as we decode them: only the fields that name an IP.
//!
//! serde skips every other field while parsing (no allocation for
//! `managedFields`, annotations, container specs, ...), so a decoded pod is a
//! few strings and addresses however large its JSON is. Shapes follow the
//! Kubernetes API reference (core/v1 Pod, Service, Node; meta/v1 ListMeta,
//! Status, WatchEvent).

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub owner_references: Vec<OwnerReference>,
}

/// The one label we read; serde ignores the others without storing them.
#[derive(Debug, Default, Deserialize)]
pub struct Labels {
    /// Set by the Deployment controller on its ReplicaSets and their pods.
    #[serde(rename = "pod-template-hash")]
    pub pod_template_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OwnerReference {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
}

#[derive(Debug, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Debug, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
pub struct ServiceSpec {
    /// `None` (the string) for headless services; absent for ExternalName.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeStatus {
    #[serde(default)]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Debug, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

/// `GET /api/v1/pods`: one page of a list.
#[derive(Debug, Deserialize)]
pub struct List<T> {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

/// One line of a watch stream.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
pub enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Carries only `metadata.resourceVersion`: where to resume from.
    Bookmark(Bookmark),
    Error(Status),
}

#[derive(Debug, Deserialize)]
pub struct Bookmark {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// meta/v1 Status: what the API server sends with an error.
#[derive(Debug, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

impl Status {
    /// 410 Gone: the resourceVersion we asked for has been compacted away;
    /// only a fresh list can continue.
    pub const fn is_gone(&self) -> bool {
        self.code == 410
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod as `kubectl get pod -o json` prints it, trimmed of nothing we
    /// skip: serde must ignore what we do not read.
    const POD: &str = r#"{
      "apiVersion": "v1", "kind": "Pod",
      "metadata": {
        "name": "checkout-7d9f8b6c5-x2x4q", "generateName": "checkout-7d9f8b6c5-",
        "namespace": "payments", "uid": "6f0b8a4e-3c1d-4f8e-9a2b-1c3d5e7f9a0b",
        "resourceVersion": "48213", "creationTimestamp": "2026-11-20T10:00:00Z",
        "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-20T09:59:00Z"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "name": "checkout-7d9f8b6c5", "uid": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
          "controller": true, "blockOwnerDeletion": true}],
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
          "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
      },
      "spec": {"containers": [{"name": "app", "image": "checkout:1.4",
          "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
        "nodeName": "ip-10-0-1-23.ec2.internal", "serviceAccountName": "default"},
      "status": {"phase": "Running", "hostIP": "10.0.1.23",
        "podIP": "10.0.1.57", "podIPs": [{"ip": "10.0.1.57"}, {"ip": "fd00::57"}],
        "conditions": [{"type": "Ready", "status": "True"}]}
    }"#;

    #[test]
    fn pod_decodes_only_what_names_it() {
        let p: Pod = serde_json::from_str(POD).unwrap();
        assert_eq!(p.metadata.name, "checkout-7d9f8b6c5-x2x4q");
        assert_eq!(p.metadata.namespace.as_deref(), Some("payments"));
        assert_eq!(
            p.metadata.labels.pod_template_hash.as_deref(),
            Some("7d9f8b6c5")
        );
        assert_eq!(p.metadata.owner_references[0].kind, "ReplicaSet");
        assert_eq!(p.metadata.owner_references[0].controller, Some(true));
        assert!(!p.spec.host_network);
        assert_eq!(p.status.pod_ips.len(), 2);
        assert_eq!(p.status.pod_ips[1].ip, "fd00::57");
    }

    #[test]
    fn watch_event_lines_decode_by_type() {
        let line = format!(r#"{{"type":"ADDED","object":{POD}}}"#).replace('\n', "");
        assert!(matches!(
            serde_json::from_str::<WatchEvent<Pod>>(&line).unwrap(),
            WatchEvent::Added(p) if p.status.pod_ip.as_deref() == Some("10.0.1.57")
        ));
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"50001","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}}"#;
        assert!(matches!(
            serde_json::from_str::<WatchEvent<Pod>>(bookmark).unwrap(),
            WatchEvent::Bookmark(b) if b.metadata.resource_version.as_deref() == Some("50001")
        ));
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 100 (48213)","reason":"Expired","code":410}}"#;
        assert!(matches!(
            serde_json::from_str::<WatchEvent<Pod>>(gone).unwrap(),
            WatchEvent::Error(s) if s.is_gone() && s.reason == "Expired"
        ));
    }
}
