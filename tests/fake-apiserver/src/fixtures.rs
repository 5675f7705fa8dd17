//! API objects in the shape the API server sends them (core/v1 Pod,
//! Service, Node as in the Kubernetes API reference and `kubectl get -o
//! json`), with the fields the agent does not read left in — managedFields,
//! container specs, conditions — so decoding skips what a real response
//! carries.

use serde_json::{Value, json};

/// A deterministic UUID (version 4 layout) from a number.
pub fn uid(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 16,
        n & 0xffff,
        n % 0xfff,
        (n * 7) % 0xfff,
        n.wrapping_mul(0x9e37_79b9)
    )
}

/// Who controls a pod.
pub enum Owner<'a> {
    /// Deployment `name`, through a ReplicaSet `name-hash` and the pod's
    /// `pod-template-hash` label.
    Deployment(&'a str, &'a str),
    StatefulSet(&'a str),
    DaemonSet(&'a str),
    /// CronJob `name`, through a Job `name-<minutes since epoch>`.
    CronJob(&'a str, u64),
    /// A Job not created by a CronJob.
    Job(&'a str),
    /// No controller.
    Bare,
}

pub struct PodSpec<'a> {
    pub uid: u64,
    pub namespace: &'a str,
    pub name: &'a str,
    pub owner: Owner<'a>,
    pub ips: &'a [&'a str],
    pub node: &'a str,
    pub host_network: bool,
}

pub fn pod(p: &PodSpec<'_>) -> Value {
    let mut labels = json!({"app.kubernetes.io/name": p.name.split('-').next().unwrap_or(p.name)});
    let (kind, owner_name, api) = match p.owner {
        Owner::Deployment(d, hash) => {
            labels["pod-template-hash"] = json!(hash);
            ("ReplicaSet", format!("{d}-{hash}"), "apps/v1")
        }
        Owner::StatefulSet(s) => {
            labels["statefulset.kubernetes.io/pod-name"] = json!(p.name);
            ("StatefulSet", s.to_owned(), "apps/v1")
        }
        Owner::DaemonSet(d) => ("DaemonSet", d.to_owned(), "apps/v1"),
        Owner::CronJob(c, minutes) => {
            labels["batch.kubernetes.io/job-name"] = json!(format!("{c}-{minutes}"));
            ("Job", format!("{c}-{minutes}"), "batch/v1")
        }
        Owner::Job(j) => {
            labels["batch.kubernetes.io/job-name"] = json!(j);
            ("Job", j.to_owned(), "batch/v1")
        }
        Owner::Bare => ("", String::new(), ""),
    };
    let mut metadata = json!({
        "name": p.name,
        "generateName": format!("{owner_name}-"),
        "namespace": p.namespace,
        "uid": uid(p.uid),
        "resourceVersion": "1",
        "creationTimestamp": "2026-11-20T10:00:00Z",
        "labels": labels,
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-20T09:59:00Z"},
        "managedFields": [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "time": "2026-11-20T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app.kubernetes.io/name": {}},
                          "f:ownerReferences": {".": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {},
                                     "f:ports": {".": {}}, "f:resources": {}}}, "f:dnsPolicy": {}, "f:restartPolicy": {}}}},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
             "time": "2026-11-20T10:00:05Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {},
                          "f:phase": {}, "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}}}
        ]
    });
    if !kind.is_empty() {
        metadata["ownerReferences"] = json!([{
            "apiVersion": api, "kind": kind, "name": owner_name,
            "uid": uid(p.uid ^ 0xffff_0000), "controller": true, "blockOwnerDeletion": true
        }]);
    }
    let mut status = json!({
        "phase": "Running",
        "hostIP": "10.0.1.23",
        "hostIPs": [{"ip": "10.0.1.23"}],
        "startTime": "2026-11-20T10:00:01Z",
        "qosClass": "Burstable",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T10:00:01Z"},
            {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T10:00:04Z"},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T10:00:04Z"},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T10:00:00Z"}
        ],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "started": true,
            "image": "registry.example.com/app:1.4.2", "imageID": "registry.example.com/app@sha256:5f0e4c3b",
            "containerID": "containerd://0b1c2d3e4f", "state": {"running": {"startedAt": "2026-11-20T10:00:03Z"}},
            "lastState": {}}]
    });
    if let Some(first) = p.ips.first() {
        status["podIP"] = json!(first);
        status["podIPs"] = json!(p.ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "containers": [{"name": "app", "image": "registry.example.com/app:1.4.2",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": p.node,
            "hostNetwork": p.host_network,
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": status
    })
}

/// A ClusterIP service (`cluster_ips` empty: headless, `None`).
pub fn service(uid_n: u64, namespace: &str, name: &str, cluster_ips: &[&str]) -> Value {
    let first = cluster_ips.first().copied().unwrap_or("None");
    let ips: Vec<&str> = if cluster_ips.is_empty() {
        vec!["None"]
    } else {
        cluster_ips.to_vec()
    };
    json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(uid_n), "resourceVersion": "1",
                     "creationTimestamp": "2026-11-01T00:00:00Z", "labels": {"app.kubernetes.io/name": name},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}\n"}},
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app.kubernetes.io/name": name},
            "clusterIP": first,
            "clusterIPs": ips,
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {}}
    })
}

pub fn node(uid_n: u64, name: &str, internal_ip: &str) -> Value {
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid(uid_n), "resourceVersion": "1",
                     "creationTimestamp": "2026-10-01T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "topology.kubernetes.io/zone": "us-east-1a", "node.kubernetes.io/instance-type": "m6i.large"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": "aws:///us-east-1a/i-0abc"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name},
                          {"type": "InternalDNS", "address": name}],
            "capacity": {"cpu": "2", "memory": "7935660Ki", "pods": "29"},
            "allocatable": {"cpu": "1930m", "memory": "7246508Ki", "pods": "29"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-11-27T08:00:00Z", "lastTransitionTime": "2026-10-01T00:01:00Z"}],
            "nodeInfo": {"kubeletVersion": "v1.33.5-eks-1234", "containerRuntimeVersion": "containerd://1.7.27",
                         "kernelVersion": "6.1.150-amazon", "osImage": "Amazon Linux 2023", "architecture": "amd64",
                         "operatingSystem": "linux"}
        }
    })
}
