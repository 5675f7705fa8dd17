//! The deployment artefacts in `deploy/`, each checked by the tool that
//! consumes it:
//!
//! - Kubernetes: `kubectl kustomize` renders `deploy/kubernetes`; every core
//!   object is validated against the Kubernetes OpenAPI schemas (PyPI
//!   `kubernetes-validate`, strict: unknown fields fail) and the Prometheus
//!   Operator objects against models generated from the operator's CRDs (PyPI
//!   `cloudcoil.models.prometheus_operator`, with unknown fields rejected
//!   here); then the wiring and the least-privilege settings are asserted.
//!   Both PyPI packages live in a venv under `target/` made on first use.
//! - Prometheus: `promtool check rules` and `promtool test rules`, plus
//!   mutated copies of the rules that the unit tests must reject, and the
//!   PrometheusRule kept identical to the rule file.
//! - systemd: `systemd-analyze verify` and `systemd-analyze security
//!   --offline`, plus a broken copy that verify must reject.
//! - Privileges: the real agent binary runs with exactly the capabilities the
//!   DaemonSet and the unit grant (and, for each, without it) on a child
//!   cgroup and a veth in a namespace of its own.
//!
//! Every tool is required: a missing one fails the test with how to install
//! it, never skips it.

use plainsight_tests::agent::{Agent, Sample};
use plainsight_tests::{Proc, Side, Topology};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The capabilities every deployment grants, and nothing else.
const CAPS: [&str; 3] = ["BPF", "NET_ADMIN", "PERFMON"];
/// Kubernetes versions whose schemas the manifests must pass: the oldest and
/// the newest that `kubernetes-validate` ships.
const K8S_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// Pinned PyPI packages for the offline manifest validation.
const PY_REQUIREMENTS: [&str; 2] = [
    "kubernetes-validate==1.37.0",
    "cloudcoil.models.prometheus_operator==0.80.1.0",
];
/// The alerts the rule file must define (issue 7).
const ALERTS: [&str; 9] = [
    "PlaintextFlowViolation",
    "PlaintextFlowSustained",
    "WeakTLS",
    "StartTLSRefused",
    "CleartextCredentials",
    "PlainsightDown",
    "PlainsightEventsLost",
    "PlainsightFlowTableSaturated",
    "PlainsightEdgeCardinalityCapHit",
];
/// The file in the generated ConfigMap, and under its mount.
const CONFIG_KEY: &str = "plainsight.toml";
const IMAGE_PLACEHOLDER: &str = "registry.example.com/plainsight/plainsight:0.1.0";

// ---------------------------------------------------------------- helpers

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A fresh scratch directory under target/ (tests run in parallel: each
/// call gets its own).
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let d = root().join("target/deploy-check").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

/// Fails loudly when `tool` is not installed.
fn require_tool(tool: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{tool}` is not installed; {install}"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------ python venv

/// The validation helper run inside the venv. `yaml2json FILE...` prints the
/// documents of the files as one JSON list; `validate FILE VERSION...`
/// validates every document of FILE and prints them as JSON, exiting 1 with
/// every problem listed when one fails.
const PY_HELPER: &str = r#"
import json, sys, yaml

def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

def dropped(given, kept, path=""):
    """Keys in `given` that the model did not keep: unknown fields."""
    out = []
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for k, v in given.items():
            if k not in kept:
                out.append(f"{path}.{k}")
            else:
                out.extend(dropped(v, kept[k], f"{path}.{k}"))
    elif isinstance(given, list):
        kept = kept if isinstance(kept, list) else []
        for i, v in enumerate(given):
            out.extend(dropped(v, kept[i] if i < len(kept) else None, f"{path}[{i}]"))
    return out

def validate(path, versions):
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator import v1 as monitoring
    crd_models = {"ServiceMonitor": monitoring.ServiceMonitor, "PrometheusRule": monitoring.PrometheusRule}
    errors, all_docs = [], docs(path)
    for d in all_docs:
        what = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion") == "monitoring.coreos.com/v1":
            model = crd_models.get(d.get("kind"))
            if model is None:
                errors.append(f"{what}: no model for this kind")
                continue
            try:
                kept = model.model_validate(d).model_dump(by_alias=True, exclude_none=True, mode="json")
            except Exception as e:
                errors.append(f"{what}: {e}")
                continue
            for field in dropped(d, kept):
                errors.append(f"{what}: unknown field {field}")
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except Exception as e:
                errors.append(f"{what} (Kubernetes {v}): {type(e).__name__}: {e}")
    json.dump(all_docs, sys.stdout)
    if errors:
        print("\n".join(["", "validation failed:"] + errors), file=sys.stderr)
        sys.exit(1)

if sys.argv[1] == "yaml2json":
    json.dump([d for p in sys.argv[2:] for d in docs(p)], sys.stdout)
elif sys.argv[1] == "validate":
    validate(sys.argv[2], sys.argv[3:])
else:
    sys.exit(f"unknown command {sys.argv[1]}")
"#;

/// target/deploy-venv with the pinned packages, made once (under a lock,
/// so parallel test processes share it) and reused while the pins match.
fn venv_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = root().join("target/deploy-venv");
        let python = dir.join("bin/python");
        let stamp = dir.join(".plainsight-requirements");
        let want = PY_REQUIREMENTS.join("\n");
        std::fs::create_dir_all(root().join("target")).expect("creating target/");
        let lock = std::fs::File::create(root().join("target/deploy-venv.lock"))
            .expect("creating the venv lock");
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock on a file descriptor we own; released when `lock` drops.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
            return python;
        }
        let host = require_tool(
            "python3",
            "install Python 3 with its venv module (Debian: python3 python3-venv)",
        );
        let _ = std::fs::remove_dir_all(&dir);
        run_ok(Command::new(host).args(["-m", "venv"]).arg(&dir));
        run_ok(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PY_REQUIREMENTS),
        );
        std::fs::write(&stamp, want).expect("writing the venv stamp");
        python
    })
    .clone()
}

fn py(args: &[&str]) -> Output {
    run(Command::new(venv_python())
        .args(["-c", PY_HELPER])
        .args(args))
}

/// All YAML documents of `files`, as JSON.
fn yaml(files: &[&Path]) -> Vec<Value> {
    let mut args = vec!["yaml2json"];
    args.extend(files.iter().map(|p| p.to_str().expect("utf-8 path")));
    let out = py(&args);
    assert!(out.status.success(), "parsing {files:?}:\n{}", text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("helper prints JSON")
}

// ----------------------------------------------------------- kubernetes

/// `kubectl kustomize deploy/kubernetes`, validated; its objects as JSON.
fn rendered() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let kubectl = require_tool(
            "kubectl",
            "it renders deploy/kubernetes (`kubectl kustomize`); install kubectl (or run with a PATH that has it)",
        );
        let yaml = run_ok(Command::new(kubectl).arg("kustomize").arg(deploy("kubernetes")));
        let file = scratch("kustomize").join("rendered.yaml");
        std::fs::write(&file, yaml).expect("writing rendered manifests");
        let mut args = vec!["validate", file.to_str().expect("utf-8 path")];
        args.extend(K8S_VERSIONS);
        let out = py(&args);
        assert!(
            out.status.success(),
            "deploy/kubernetes does not validate:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("helper prints JSON")
    })
}

fn object(kind: &str) -> &'static Value {
    let found: Vec<&Value> = rendered().iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

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
    let listen: SocketAddr = flag("--listen").parse().expect("--listen is an address");
    assert!(
        listen.ip().is_unspecified(),
        "--listen {listen} is unreachable from Prometheus"
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

// ----------------------------------------------------------- prometheus

/// deploy/kubernetes/prometheusrule.yaml as it must be: the rule file's
/// `groups:` indented under `spec:`.
fn expected_prometheus_rule() -> String {
    let rules = read(&deploy("prometheus/plainsight-rules.yml"));
    let start = rules
        .lines()
        .position(|l| l.starts_with("groups:"))
        .expect("plainsight-rules.yml has a top-level `groups:`");
    let mut out = String::from(
        "# GENERATED from deploy/prometheus/plainsight-rules.yml: edit that file, then\n\
         #   PLAINSIGHT_REGENERATE=1 cargo test -p plainsight-tests --test deploy\n\
         # (the test fails while the two differ).\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: plainsight\n  namespace: plainsight\n  labels:\n    app.kubernetes.io/name: plainsight\n\
         spec:\n",
    );
    for line in rules.lines().skip(start) {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[test]
fn prometheus_rule_is_the_rule_file() {
    let path = deploy("kubernetes/prometheusrule.yaml");
    let want = expected_prometheus_rule();
    if std::env::var_os("PLAINSIGHT_REGENERATE").is_some() {
        std::fs::write(&path, &want).expect("writing prometheusrule.yaml");
    }
    assert!(
        read(&path) == want,
        "{} differs from deploy/prometheus/plainsight-rules.yml; regenerate it with \
         PLAINSIGHT_REGENERATE=1 cargo test -p plainsight-tests --test deploy",
        path.display()
    );
    // And parsed, as the operator sees it (the validation of the rendered
    // manifests checks it against the CRD model).
    let file = &yaml(&[&deploy("prometheus/plainsight-rules.yml")])[0];
    assert_eq!(object("PrometheusRule")["spec"]["groups"], file["groups"]);
}

fn promtool() -> PathBuf {
    require_tool(
        "promtool",
        "install Debian's `prometheus` package (`cargo xtask setup` does)",
    )
}

#[test]
fn promtool_checks_the_rules() {
    let out = run_ok(
        Command::new(promtool())
            .args(["check", "rules"])
            .arg(deploy("prometheus/plainsight-rules.yml")),
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "promtool check rules: {out}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let out = run(Command::new(promtool())
        .args(["test", "rules"])
        .arg(deploy("prometheus/plainsight-rules.test.yml")));
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
}

/// The unit tests cover every alert, both firing and quiet.
#[test]
fn every_alert_has_firing_and_quiet_cases() {
    let rules = &yaml(&[&deploy("prometheus/plainsight-rules.yml")])[0];
    let defined: BTreeSet<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(defined, set(&ALERTS));
    let tests = &yaml(&[&deploy("prometheus/plainsight-rules.test.yml")])[0];
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().expect("tests") {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    assert_eq!(firing, defined, "alerts without a firing case");
    assert_eq!(quiet, defined, "alerts without a quiet case");
}

/// Breaking a rule in a copy must make the unit tests fail: they test what
/// they claim to.
#[test]
fn promtool_unit_tests_catch_broken_rules() {
    let rules = read(&deploy("prometheus/plainsight-rules.yml"));
    let tests = read(&deploy("prometheus/plainsight-rules.test.yml"));
    let mutations: [(&str, &str, &str); 5] = [
        (
            "TLS and allowed flows must not fire",
            r#"policy="violation""#,
            r#"policy=~".+""#,
        ),
        ("a new edge with one flow must fire", " offset 10m", ""),
        (
            "starttls_upgraded is not a refusal",
            r#"reason="starttls_refused""#,
            r#"reason=~"starttls_.*""#,
        ),
        (
            "another job's target is not ours",
            r#"up{job="plainsight"}"#,
            "up",
        ),
        ("sustained means an hour", "for: 1h", "for: 30m"),
    ];
    for (what, from, to) in mutations {
        assert!(
            rules.contains(from),
            "mutation {what}: `{from}` not in the rules"
        );
        let dir = scratch("mutated");
        std::fs::write(dir.join("plainsight-rules.yml"), rules.replace(from, to)).expect("write");
        std::fs::write(dir.join("plainsight-rules.test.yml"), &tests).expect("write");
        let out = run(Command::new(promtool())
            .args(["test", "rules"])
            .arg(dir.join("plainsight-rules.test.yml")));
        assert!(
            !out.status.success(),
            "the unit tests still pass with `{from}` -> `{to}` ({what})"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// GitHub's heading anchor: lowercase, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_is_documented_in_the_runbook() {
    let runbook = read(&deploy("prometheus/RUNBOOK.md"));
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let prefix = "https://github.com/plainsight/plainsight/blob/main/deploy/prometheus/RUNBOOK.md#";
    let rules = &yaml(&[&deploy("prometheus/plainsight-rules.yml")])[0];
    for g in rules["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("alert rule");
            let a = &r["annotations"];
            for key in ["summary", "description"] {
                assert!(
                    a[key].as_str().is_some_and(|s| s.len() > 20),
                    "{name} has no useful {key}"
                );
            }
            let url = a["runbook_url"].as_str().unwrap_or_default();
            let frag = url
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not in RUNBOOK.md"));
            assert_eq!(frag, anchor(name), "{name}: runbook anchor");
            assert!(
                anchors.contains(frag),
                "RUNBOOK.md has no `## {name}` section"
            );
            assert!(
                ["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: severity"
            );
        }
    }
}

// -------------------------------------------------------------- systemd

fn unit_path() -> PathBuf {
    deploy("systemd/plainsight.service")
}

/// A root directory for `systemd-analyze --root`: the host's unit files
/// (targets the unit refers to), the unit under test, and a stand-in for
/// /usr/bin/plainsight (verify checks that ExecStart is executable).
fn analyze_root(unit_text: &str) -> PathBuf {
    let dir = scratch("systemd-root");
    copy_host_units(&dir);
    std::fs::create_dir_all(dir.join("etc/systemd/system")).expect("mkdir");
    std::fs::create_dir_all(dir.join("usr/bin")).expect("mkdir");
    let bin = dir.join("usr/bin/plainsight");
    std::fs::write(&bin, "#!/bin/sh\n").expect("writing the stand-in binary");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("etc/systemd/system/plainsight.service"), unit_text).expect("unit");
    dir
}

/// The host's unit files (the targets the unit refers to) under `dir`.
fn copy_host_units(dir: &Path) {
    let sys = dir.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&sys).expect("mkdir");
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("multi-user.target").exists())
        .expect("no systemd unit directory with multi-user.target: install the `systemd` package");
    for e in std::fs::read_dir(host_units)
        .expect("listing units")
        .flatten()
    {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, sys.join(e.file_name())).expect("copying a unit");
        }
    }
}

fn systemd_analyze() -> PathBuf {
    require_tool(
        "systemd-analyze",
        "install Debian's `systemd` package (`cargo xtask setup` does)",
    )
}

fn verify(unit_text: &str) -> Output {
    let dir = analyze_root(unit_text);
    let out = run(Command::new(systemd_analyze())
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg("/etc/systemd/system/plainsight.service"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn systemd_unit_verifies() {
    let out = verify(&read(&unit_path()));
    // verify prints warnings (unknown keys, bad values) but still exits 0:
    // any output is a failure.
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify {} ({}):\n{}",
        unit_path().display(),
        out.status,
        text(&out)
    );
}

#[test]
fn systemd_verify_rejects_a_broken_unit() {
    // The check above must be able to fail here (no systemd as PID 1 in a
    // container, --root): a misspelt directive and a bad value must show.
    let unit = read(&unit_path());
    for (from, to) in [
        ("ProtectHome=yes", "ProtectHomes=yes"),
        ("Restart=on-failure", "Restart=sometimes"),
    ] {
        assert!(unit.contains(from), "`{from}` not in the unit");
        let out = verify(&unit.replace(from, to));
        assert!(
            !text(&out).trim().is_empty(),
            "systemd-analyze verify accepted `{to}` silently"
        );
    }
}

#[test]
fn systemd_unit_is_hardened() {
    let dir = analyze_root(&read(&unit_path()));
    // Exposure score from systemd's own checklist (shown as 0.0 = locked
    // down to 10.0 = unprotected; --threshold takes it times ten). The unit
    // scores 1.9 with systemd 252; the command fails above 2.0.
    let out = run(Command::new(systemd_analyze())
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(format!("--root={}", dir.display()))
        .arg("plainsight.service"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "systemd-analyze security: exposure above 2 ({}):\n{}",
        out.status,
        text(&out)
    );

    let unit = read(&unit_path());
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    let caps: BTreeSet<String> = CAPS.iter().map(|c| format!("CAP_{c}")).collect();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let v = values(key);
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        assert_eq!(
            v[0].split_whitespace()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>(),
            caps,
            "{key}"
        );
    }
    for (key, want) in [
        (
            "ExecStart",
            "/usr/bin/plainsight run --config /etc/plainsight/plainsight.toml",
        ),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelModules", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("SystemCallFilter", "@system-service bpf"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("Restart", "on-failure"),
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        ("DynamicUser", "yes"),
    ] {
        assert_eq!(values(key), [want], "{key}");
    }
    assert!(values("User").is_empty(), "DynamicUser picks the user");
    for key in ["PrivateUsers", "PrivateNetwork"] {
        assert!(
            values(key).is_empty(),
            "{key} would blind or disarm the agent"
        );
    }
}

// --------------------------------------------------------------- debian

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// target/debian/plainsight_<version>_amd64.deb, built by `cargo xtask
/// package` (and by `cargo xtask test` before the tests run).
fn deb() -> PathBuf {
    let deb = root().join(format!("target/debian/plainsight_{VERSION}_amd64.deb"));
    let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(deb_time) = built(&deb) else {
        panic!(
            "{} not found: run `cargo xtask package` (`cargo xtask test` does)",
            deb.display()
        );
    };
    let bin = plainsight_tests::plainsight_bin();
    assert!(
        built(&bin).is_some_and(|b| b <= deb_time),
        "{} is older than {}: run `cargo xtask package`",
        deb.display(),
        bin.display()
    );
    deb
}

fn dpkg_deb(args: &[&str]) -> String {
    run_ok(Command::new("dpkg-deb").args(args).arg(deb()))
}

#[test]
fn deb_has_exactly_its_files_with_root_ownership_and_modes() {
    // (mode, path) of every file; directories are all 0755.
    let want: BTreeSet<(&str, &str)> = [
        ("-rwxr-xr-x", "./usr/bin/plainsight"),
        ("-rw-r--r--", "./lib/systemd/system/plainsight.service"),
        ("-rw-r--r--", "./etc/plainsight/plainsight.toml"),
        ("-rw-r--r--", "./usr/share/doc/plainsight/copyright"),
        ("-rw-r--r--", "./usr/share/doc/plainsight/changelog.gz"),
        ("-rw-r--r--", "./usr/share/lintian/overrides/plainsight"),
        (
            "-rw-r--r--",
            "./usr/share/plainsight/prometheus/plainsight-rules.yml",
        ),
        (
            "-rw-r--r--",
            "./usr/share/plainsight/grafana/plainsight.json",
        ),
    ]
    .into_iter()
    .collect();
    let listing = dpkg_deb(&["--contents"]);
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (f[0], f[1], f[5]);
        assert_eq!(owner, "root/root", "{line}");
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{line}");
        } else {
            files.insert((mode, path));
        }
    }
    assert_eq!(files, want, "files in the package:\n{listing}");
}

#[test]
fn deb_control_fields_conffiles_and_maintainer_scripts() {
    let field = |name: &str| {
        dpkg_deb(&["--field"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };
    assert_eq!(field("Package").as_deref(), Some("plainsight"));
    assert_eq!(field("Version").as_deref(), Some(VERSION));
    assert_eq!(field("Architecture").as_deref(), Some("amd64"));
    let depends = field("Depends").expect("Depends");
    assert!(
        depends.contains("libc6 (>= "),
        "Depends from dpkg-shlibdeps: {depends}"
    );

    let dir = scratch("deb-control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(deb())
            .arg(&dir),
    );
    assert_eq!(
        read(&dir.join("conffiles")),
        "/etc/plainsight/plainsight.toml\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    for script in ["postinst", "prerm", "postrm"] {
        let p = dir.join(script);
        let mode = std::fs::metadata(&p).expect(script).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} mode");
        run_ok(Command::new("sh").arg("-n").arg(&p));
        assert!(read(&p).contains("\nset -e\n"), "{script}: set -e");
    }
    // Start and stop only when systemd runs (not in a chroot or an image
    // build), through deb-systemd-invoke (which honours policy-rc.d);
    // enable through deb-systemd-helper (which keeps an admin's disable).
    let postinst = read(&dir.join("postinst"));
    let guarded = postinst
        .split("[ -d /run/systemd/system ]")
        .nth(1)
        .expect("postinst checks for a running systemd");
    assert!(
        guarded.contains(r#"deb-systemd-invoke "$action""#),
        "postinst starts the unit"
    );
    assert!(
        !postinst
            .split("[ -d /run/systemd/system ]")
            .next()
            .unwrap_or("")
            .contains("deb-systemd-invoke")
    );
    assert!(
        postinst.contains("was-enabled")
            && postinst.contains(r#"deb-systemd-helper enable "$unit""#)
    );
    assert!(!postinst.contains("systemctl start") && !postinst.contains("systemctl enable"));
    let prerm = read(&dir.join("prerm"));
    assert!(
        prerm.contains("[ -d /run/systemd/system ]")
            && prerm.contains("deb-systemd-invoke stop plainsight.service")
    );
    assert!(read(&dir.join("postrm")).contains(r#"deb-systemd-helper purge "$unit""#));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deb_passes_lintian() {
    let lintian = require_tool(
        "lintian",
        "install Debian's `lintian` (`cargo xtask setup` does)",
    );
    let out = run(Command::new(lintian)
        .args(["--fail-on", "error,warning"])
        .arg(deb()));
    let tags: Vec<String> = text(&out)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .map(str::to_owned)
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian ({}):\n{}",
        out.status,
        text(&out)
    );
}

/// The package as installed, without installing it: extracted, its unit
/// verified by systemd against its own binary, and that binary run.
#[test]
fn deb_installs_a_unit_that_verifies_and_a_binary_that_runs() {
    let dir = scratch("deb-root");
    run_ok(Command::new("dpkg").arg("-x").arg(deb()).arg(&dir));
    copy_host_units(&dir);
    let unit = "/lib/systemd/system/plainsight.service";
    let out = run(Command::new(systemd_analyze())
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg(unit));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify {unit} from the package ({}):\n{}",
        out.status,
        text(&out)
    );
    for (shipped, source) in [
        (unit, "systemd/plainsight.service"),
        (
            "/usr/share/plainsight/prometheus/plainsight-rules.yml",
            "prometheus/plainsight-rules.yml",
        ),
        (
            "/usr/share/plainsight/grafana/plainsight.json",
            "grafana/plainsight.json",
        ),
    ] {
        assert_eq!(
            read(&dir.join(&shipped[1..])),
            read(&deploy(source)),
            "{shipped}"
        );
    }
    let version = run_ok(Command::new(dir.join("usr/bin/plainsight")).arg("--version"));
    assert_eq!(version.trim(), format!("plainsight {VERSION}"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------ container

#[test]
fn containerfile_needs_no_base_image() {
    let cf = read(&deploy("Containerfile"));
    let instructions: Vec<&str> = cf
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms, [&"FROM scratch"], "a base image would be downloaded");
    let readme = read(&deploy("README.md"));
    let target = "target/x86_64-unknown-linux-musl/release/plainsight";
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("COPY ") && l.contains(target)),
        "the Containerfile copies the musl build ({target})"
    );
    assert!(
        readme.contains("cargo build --release --target x86_64-unknown-linux-musl -p plainsight"),
        "deploy/README.md documents the musl build"
    );
    // The build context is the repository root: everything but the binary
    // is ignored (else gigabytes of target/ are sent to the builder).
    for ignore in [".containerignore", ".dockerignore"] {
        let text = read(&root().join(ignore));
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(rules, ["*", &format!("!{target}")], "{ignore}");
    }
    assert!(
        instructions.contains(&r#"ENTRYPOINT ["/plainsight"]"#),
        "the DaemonSet's args start with `run`: the entrypoint is the binary"
    );
}

// ----------------------------------------------------------- privileges

fn cap_bit(cap: &str) -> u32 {
    match cap {
        "NET_ADMIN" => 12,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("unknown capability {other}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// How the agent is started: as the container runtime does (uid 0, the
/// capabilities as bounding set), or as the systemd unit does (an
/// unprivileged uid with them as ambient capabilities). Both with
/// no_new_privs, as allowPrivilegeEscalation: false and NoNewPrivileges=yes.
#[derive(Clone, Copy, Debug)]
enum Model {
    Container,
    SystemdUnit,
}

fn setpriv_args(model: Model, caps: &[&str]) -> Vec<String> {
    let list: String = caps
        .iter()
        .map(|c| format!(",+{}", c.to_lowercase()))
        .collect();
    let mut a = vec!["setpriv".to_owned(), "--no-new-privs".to_owned()];
    match model {
        Model::Container => a.extend([
            "--inh-caps=-all".to_owned(),
            format!("--bounding-set=-all{list}"),
        ]),
        Model::SystemdUnit => a.extend([
            "--reuid=65534".to_owned(),
            "--regid=65534".to_owned(),
            "--clear-groups".to_owned(),
            format!("--inh-caps=-all{list}"),
            format!("--ambient-caps=-all{list}"),
            format!("--bounding-set=-all{list}"),
        ]),
    }
    a
}

/// Starts the real agent under `setpriv`; returns it once ready, or the
/// reason it never became ready.
fn start_agent(
    model: Model,
    caps: &[&str],
    netns: Option<&str>,
    hook: &[&str],
) -> Result<Agent, String> {
    require_tool("setpriv", "install Debian's `util-linux` package");
    let port = if netns.is_some() { 9477 } else { free_port() };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = std::env::temp_dir().join(format!(
        "plainsight-deploy-{}-{port}-{model:?}.log",
        std::process::id()
    ));
    let logf = std::fs::File::create(&log).expect("creating the agent log");
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns].map(str::to_owned));
    }
    argv.extend(setpriv_args(model, caps));
    argv.push("--".to_owned());
    argv.push(plainsight_tests::plainsight_bin().display().to_string());
    argv.extend(["run", "--listen", &addr.to_string()].map(str::to_owned));
    argv.extend(hook.iter().map(|s| (*s).to_owned()));
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("dup log"))
        .stderr(logf)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
    let mut agent = Agent {
        proc: Proc::from_child(child, "plainsight run"),
        addr,
        netns: netns.map(str::to_owned),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = agent.proc.child.try_wait() {
            return Err(format!("exited with {status}:\n{}", agent.log_text()));
        }
        if matches!(agent.get("/readyz"), Ok((200, _))) {
            return Ok(agent);
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after 60 s:\n{}", agent.log_text()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attached(samples: &[Sample], hook: &str) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == "plainsight_programs_attached"
                && s.labels.get("hook").is_some_and(|h| h == hook)
        })
        .map(|s| s.value)
        .sum()
}

/// CapEff of a process, from /proc (the agent is setpriv's exec'd image).
fn effective_caps(pid: u32) -> u64 {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(hex.trim(), 16).expect("hex")
}

#[test]
fn deployments_grant_the_same_capabilities() {
    let ds = &yaml(&[&deploy("kubernetes/daemonset.yaml")])[0];
    let k8s: BTreeSet<String> = strings(
        &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
    )
    .into_iter()
    .collect();
    let unit = read(&unit_path());
    let systemd: BTreeSet<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    assert_eq!(k8s, set(&CAPS));
    assert_eq!(systemd, set(&CAPS));
}

/// The least-privilege claim, on the real binary: with exactly the granted
/// capabilities the agent attaches (cgroup hook in both models, TC as the
/// unprivileged unit user), then drops what it no longer needs (everything
/// on the cgroup hook; all but CAP_BPF + CAP_NET_ADMIN while TC watches for
/// new interfaces); without any one of them it fails to start.
#[test]
fn agent_runs_with_exactly_the_granted_capabilities() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();

    for model in [Model::Container, Model::SystemdUnit] {
        let agent = start_agent(model, &CAPS, None, &["--cgroup", &cg])
            .unwrap_or_else(|e| panic!("{model:?} with {CAPS:?}: {e}"));
        assert_eq!(
            effective_caps(agent.proc.pid()),
            0,
            "{model:?}: the agent's effective capabilities after attaching"
        );
        assert_eq!(
            attached(&agent.metrics(), "cgroup"),
            2.0,
            "{model:?}: cgroup programs"
        );
    }

    let agent = start_agent(
        Model::SystemdUnit,
        &CAPS,
        Some(t.ns(Side::Server)),
        &["--interface", &t.server_if],
    )
    .unwrap_or_else(|e| panic!("TC hook as the unit's user: {e}"));
    assert_eq!(attached(&agent.metrics(), "tc"), 2.0, "TC programs");
    assert_eq!(
        effective_caps(agent.proc.pid()),
        (1 << cap_bit("BPF")) | (1 << cap_bit("NET_ADMIN")),
        "TC keeps what attaching to new interfaces needs"
    );
    drop(agent);

    for missing in CAPS {
        let fewer: Vec<&str> = CAPS.into_iter().filter(|c| *c != missing).collect();
        if let Ok(agent) = start_agent(Model::SystemdUnit, &fewer, None, &["--cgroup", &cg]) {
            panic!(
                "the agent became ready without CAP_{missing}: the grant is wider than needed \
                 (metrics: {:?})",
                attached(&agent.metrics(), "cgroup")
            );
        }
    }
}
