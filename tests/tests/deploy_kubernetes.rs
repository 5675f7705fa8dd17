//! The Kubernetes manifests in `deploy/kubernetes`, as `kubectl kustomize`
//! renders them and checked against the Kubernetes and Prometheus Operator
//! schemas (`plainsight_tests::manifests`): the set of objects, that the
//! validation rejects broken copies, the DaemonSet's least-privilege
//! settings and wiring, the embedded agent configuration, the image, the
//! read-only RBAC, the ServiceMonitor and the NetworkPolicy.
//!
//! Every tool is required: a missing one fails the test with how to install
//! it, never skips it.

use plainsight_tests::capabilities::CAPS;
use plainsight_tests::files::{deploy, read, scratch};
use plainsight_tests::manifests::{K8S_VERSIONS, object, py, rendered, set, strings, yaml};
use plainsight_tests::tools::{run, text};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;

/// The file in the generated ConfigMap, and under its mount.
const CONFIG_KEY: &str = "plainsight.toml";
const IMAGE_PLACEHOLDER: &str = "registry.example.com/plainsight/plainsight:0.1.0";

/// Do `selector`'s labels all appear, with the same values, in `labels`?
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn kubernetes_manifests_render_and_validate_against_the_schemas() {
    let kinds: BTreeSet<String> = rendered()
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        set(&[
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Namespace",
            "NetworkPolicy",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]),
        "deploy/kubernetes renders an unexpected set of kinds"
    );
    for d in rendered() {
        let kind = d["kind"].as_str().unwrap_or_default();
        let ns = &d["metadata"]["namespace"];
        if ["Namespace", "ClusterRole", "ClusterRoleBinding"].contains(&kind) {
            assert!(ns.is_null(), "cluster-scoped {kind} has a namespace");
        } else {
            assert_eq!(
                ns, "plainsight",
                "{kind} is not in the plainsight namespace"
            );
        }
    }
    assert_eq!(object("Namespace")["metadata"]["name"], "plainsight");
}

#[test]
fn kubernetes_schema_validation_rejects_a_broken_manifest() {
    // The validators must actually check: a misspelt field or a wrong type in
    // a copy of each kind of object must fail.
    for (file, from, to) in [
        (
            "daemonset.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFileSystem: true",
        ),
        (
            "daemonset.yaml",
            "containerPort: 9477",
            "containerPort: metrics",
        ),
        ("rbac.yaml", "roleRef:", "roleReference:"),
        ("networkpolicy.yaml", "policyTypes:", "policyType:"),
        ("servicemonitor.yaml", "interval: 30s", "intervall: 30s"),
        (
            "servicemonitor.yaml",
            "scrapeTimeout: 10s",
            "scrapeTimeout: 10 seconds",
        ),
        ("prometheusrule.yaml", "for: 1h", "for: 1 hour"),
    ] {
        let good = read(&deploy(&format!("kubernetes/{file}")));
        let broken = good.replace(from, to);
        assert_ne!(broken, good, "{file}: `{from}` not found");
        let f = scratch("broken").join(file);
        std::fs::write(&f, broken).expect("writing the broken copy");
        let out = py(&["validate", f.to_str().expect("utf-8"), K8S_VERSIONS[1]]);
        assert!(
            !out.status.success(),
            "{file} with `{from}` -> `{to}` passed validation"
        );
    }
}

#[test]
fn daemonset_grants_only_what_the_agent_needs() {
    let ds = object("DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    let sc = &c["securityContext"];

    // Capabilities: drop everything, add exactly three.
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&sc["capabilities"]["add"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        set(&CAPS)
    );
    assert_ne!(sc["privileged"], true, "privileged");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(
        sc["runAsUser"], 0,
        "uid 0 makes the added capabilities effective"
    );
    let seccomp = if c["securityContext"]["seccompProfile"].is_null() {
        &pod["securityContext"]["seccompProfile"]
    } else {
        &sc["seccompProfile"]
    };
    assert_eq!(seccomp["type"], "RuntimeDefault");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], true, "{host} is not needed");
    }
    // The Kubernetes identity source reads the API with the token.
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["serviceAccountName"], "plainsight");

    // Every node: one toleration that matches every taint.
    let tolerations = pod["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists"
            && t.get("key").is_none()
            && t.get("effect").is_none()),
        "no toleration for every taint: {tolerations:?}"
    );

    // Volumes: the host's cgroup hierarchy and bpffs, and the generated
    // ConfigMap; all read-only.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let host_paths: BTreeSet<String> = volumes
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(host_paths, set(&["/sys/fs/bpf", "/sys/fs/cgroup"]));
    let config_volumes: Vec<&Value> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_none())
        .collect();
    assert_eq!(
        config_volumes.len(),
        1,
        "one volume besides the host paths: {volumes:?}"
    );
    assert_eq!(
        config_volumes[0]["configMap"]["name"],
        object("ConfigMap")["metadata"]["name"],
        "the volume is the generated (hash-named) ConfigMap"
    );
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert_eq!(mounts.len(), volumes.len());
    let mount_of_volume = |vol: &Value| {
        let m = mounts
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap_or_else(|| panic!("volume {} is not mounted", vol["name"]));
        assert_eq!(
            m["readOnly"], true,
            "{} must be mounted read-only",
            vol["name"]
        );
        m["mountPath"].as_str().expect("mountPath").to_owned()
    };
    let mount_of = |host: &str| {
        mount_of_volume(
            volumes
                .iter()
                .find(|v| v["hostPath"]["path"] == host)
                .expect("volume"),
        )
    };
    let config_mount = mount_of_volume(config_volumes[0]);
    let cgroup_mount = mount_of("/sys/fs/cgroup");
    mount_of("/sys/fs/bpf");

    // Args: the mounted hierarchy, listening where Prometheus can reach.
    let args = strings(&c["args"]);
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "args {args:?}"
    );
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("no {name} in {args:?}"))
            .clone()
    };
    assert_eq!(
        flag("--cgroup"),
        cgroup_mount,
        "--cgroup is not the mounted host hierarchy"
    );
    assert_eq!(
        flag("--config"),
        format!("{config_mount}/{CONFIG_KEY}"),
        "--config is not the file the ConfigMap mounts"
    );
    // /metrics on the pod IP for Prometheus; the edges API (peer map, SNI
    // names, rule owners) on the pod's loopback only.
    let listen: SocketAddr = flag("--metrics-listen")
        .parse()
        .expect("--metrics-listen is an address");
    assert!(
        listen.ip().is_unspecified(),
        "--metrics-listen {listen} is unreachable from Prometheus"
    );
    let api: SocketAddr = flag("--listen").parse().expect("--listen is an address");
    assert!(
        api.ip().is_loopback(),
        "the edges API listens on {api}, beyond the pod"
    );
    let ports = c["ports"].as_array().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == listen.port()),
        "no `metrics` containerPort {}",
        listen.port()
    );

    // Probes, resources, rollout.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    // Sized from the measured numbers in the manifest's comment.
    assert_eq!(c["resources"]["requests"]["cpu"], "20m");
    assert_eq!(c["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert!(
        c["resources"]["limits"].get("cpu").is_none(),
        "a CPU limit throttles the ring-buffer reader"
    );
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        "10%"
    );
    assert!(selects(
        &ds["spec"]["selector"]["matchLabels"],
        &ds["spec"]["template"]["metadata"]["labels"]
    ));
}

/// Only the monitoring namespace reaches the agents, and only their
/// `metrics` port (the one the ServiceMonitor scrapes).
#[test]
fn network_policy_admits_the_monitoring_namespace_to_the_metrics_port() {
    let np = object("NetworkPolicy");
    let ds = object("DaemonSet");
    assert!(
        selects(
            &np["spec"]["podSelector"]["matchLabels"],
            &ds["spec"]["template"]["metadata"]["labels"]
        ),
        "the NetworkPolicy selects no agent pod"
    );
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress"]);
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let from = ingress[0]["from"].as_array().expect("from");
    assert_eq!(from.len(), 1, "{from:?}");
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(from[0].get("podSelector").is_none() && from[0].get("ipBlock").is_none());
    let ports = ingress[0]["ports"].as_array().expect("ports");
    let container_ports = ds["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .expect("container ports")
        .clone();
    let metrics_port = container_ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a `metrics` containerPort");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(
        ports[0]["port"] == metrics_port["name"]
            || ports[0]["port"] == metrics_port["containerPort"],
        "the NetworkPolicy admits {} but the metrics port is {metrics_port}",
        ports[0]["port"]
    );
    assert_eq!(ports[0]["protocol"], "TCP");
    assert_eq!(
        object("ServiceMonitor")["spec"]["endpoints"][0]["port"],
        "metrics",
        "Prometheus scrapes the admitted port"
    );
}

/// The embedded configuration as the agent reads it: valid for
/// `plainsight check-config`, with the Kubernetes source on in a pod and
/// off elsewhere, and the policy example commented out.
#[test]
fn config_map_holds_a_config_the_agent_accepts() {
    let cm = object("ConfigMap");
    let data = cm["data"].as_object().expect("ConfigMap data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [CONFIG_KEY],
        "one file in the ConfigMap"
    );
    let toml = data[CONFIG_KEY].as_str().expect("text");
    assert_eq!(toml, read(&deploy("kubernetes/plainsight.toml")));
    assert!(
        toml.contains("# [[policy.allow]]") && toml.contains("# client_namespace = "),
        "a commented example policy"
    );
    let file = scratch("configmap").join(CONFIG_KEY);
    std::fs::write(&file, toml).expect("writing the embedded config");
    let check = |in_pod: bool| {
        let mut cmd = Command::new(plainsight_tests::plainsight_bin());
        cmd.arg("check-config").arg(&file);
        if in_pod {
            cmd.env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
                .env("KUBERNETES_SERVICE_PORT", "443");
        } else {
            cmd.env_remove("KUBERNETES_SERVICE_HOST");
        }
        run(&mut cmd)
    };
    let outside = check(false);
    assert!(outside.status.success(), "{}", text(&outside));
    assert!(
        text(&outside).contains("kubernetes identities: off here"),
        "{}",
        text(&outside)
    );
    // In a pod, "auto" reads the service account: it names the mounted
    // token when this machine has none, the server when it has one.
    let inside = text(&check(true));
    assert!(
        inside.contains("/var/run/secrets/kubernetes.io/serviceaccount/")
            || inside.contains("kubernetes identities: from https://10.96.0.1:443"),
        "in a pod the Kubernetes source is on:\n{inside}"
    );
}

#[test]
fn image_is_set_in_one_place() {
    let images: Vec<&str> = rendered()
        .iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str())
        })
        .collect();
    assert_eq!(
        images,
        [IMAGE_PLACEHOLDER],
        "kustomization.yaml `images:` sets the image"
    );
    let k = &yaml(&[&deploy("kubernetes/kustomization.yaml")])[0];
    assert_eq!(k["images"].as_array().map(Vec::len), Some(1));
    // The raw manifests name the image only by the kustomize key.
    let raw = read(&deploy("kubernetes/daemonset.yaml"));
    assert!(
        !raw.contains("registry.example.com"),
        "the registry belongs in kustomization.yaml"
    );
}

#[test]
fn rbac_is_read_only_on_pods_services_nodes() {
    let role = object("ClusterRole");
    let rules = role["rules"].as_array().expect("rules");
    let mut resources = BTreeSet::new();
    for r in rules {
        assert_eq!(strings(&r["apiGroups"]), [""], "core API group only: {r}");
        assert_eq!(
            strings(&r["verbs"]),
            ["list", "watch"],
            "only list and watch are used (agent/tests/kubernetes.rs checks the agent's requests): {r}"
        );
        assert!(r.get("resourceNames").is_none() && r.get("nonResourceURLs").is_none());
        resources.extend(strings(&r["resources"]));
    }
    assert_eq!(resources, set(&["nodes", "pods", "services"]));
    let binding = object("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1);
    let sa = object("ServiceAccount");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], sa["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"], sa["metadata"]["namespace"]);
}

#[test]
fn service_monitor_scrapes_the_agent_pods() {
    let svc = object("Service");
    let ds = object("DaemonSet");
    let sm = object("ServiceMonitor");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(svc["spec"]["clusterIP"], "None", "headless");
    assert!(
        selects(&svc["spec"]["selector"], pod_labels),
        "the Service selects no agent pod"
    );
    let port = &svc["spec"]["ports"][0];
    let container_ports = &ds["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert!(
        container_ports
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == port["targetPort"] || p["containerPort"] == port["targetPort"]),
        "Service targetPort {} is no container port",
        port["targetPort"]
    );
    assert!(
        selects(
            &sm["spec"]["selector"]["matchLabels"],
            &svc["metadata"]["labels"]
        ),
        "the ServiceMonitor selects no Service"
    );
    assert_eq!(
        strings(&sm["spec"]["namespaceSelector"]["matchNames"]),
        [svc["metadata"]["namespace"].as_str().expect("namespace")]
    );
    let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
    assert!(
        endpoints
            .iter()
            .all(|e| e["port"] == port["name"] && e["path"] == "/metrics")
    );
    // Alerts and the dashboard's Node variable name the node by `instance`.
    for e in endpoints {
        let relabels = e["relabelings"].as_array().expect("relabelings");
        assert!(
            relabels.iter().any(|r| r["targetLabel"] == "instance"
                && strings(&r["sourceLabels"]) == ["__meta_kubernetes_pod_node_name"]),
            "instance is not relabelled to the node name"
        );
    }
    // The rules' agent-health alerts match job="plainsight": the operator
    // names the job after the Service unless jobLabel says otherwise.
    assert!(sm["spec"].get("jobLabel").is_none());
    assert_eq!(svc["metadata"]["name"], "plainsight");
}
