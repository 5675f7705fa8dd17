//! The Prometheus alert rules in `deploy/prometheus`: `promtool check
//! rules` and `promtool test rules`, mutated copies of the rules that the
//! unit tests must reject, unit tests for every alert firing and quiet, a
//! runbook section for each, and the Kubernetes PrometheusRule kept
//! identical to the rule file.
//!
//! Every tool is required: a missing one fails the test with how to install
//! it, never skips it.

use plainsight_tests::files::{deploy, read, scratch};
use plainsight_tests::manifests::{object, set, yaml};
use plainsight_tests::prometheus::promtool;
use plainsight_tests::tools::{run, run_ok, text};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Command;

/// The alerts the rule file must define (issue 7).
const ALERTS: [&str; 16] = [
    "PlaintextFlowViolation",
    "PlaintextFlowSustained",
    "WeakTLS",
    "MutualTLSMissing",
    "TLSCertificateExpiringSoon",
    "TLSDowngrade",
    "TLSRequirementViolation",
    "StartTLSRefused",
    "CleartextCredentials",
    "PlainsightDown",
    "PlainsightEventsLost",
    "PlainsightFlowTableSaturated",
    "PlainsightEdgeCardinalityCapHit",
    "PlainsightProgramsDetached",
    "PlainsightKubernetesStalled",
    "PlainsightEndpointConnectionsRejected",
];

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
         #   PLAINSIGHT_REGENERATE=1 cargo test -p plainsight-tests --test deploy_prometheus\n\
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
         PLAINSIGHT_REGENERATE=1 cargo test -p plainsight-tests --test deploy_prometheus",
        path.display()
    );
    // And parsed, as the operator sees it (the validation of the rendered
    // manifests checks it against the CRD model).
    let file = &yaml(&[&deploy("prometheus/plainsight-rules.yml")])[0];
    assert_eq!(object("PrometheusRule")["spec"]["groups"], file["groups"]);
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
