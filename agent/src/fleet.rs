//! The fleet's edge table, read from Prometheus: every node's
//! `plainsight_flows_total` (with `plainsight_flow_reasons_total` and
//! `plainsight_tls_flows_total`) over a window, the `instance` label folded
//! so one identity pair is one edge whichever nodes saw it. Any server with
//! Prometheus's HTTP query API works (Thanos, Mimir, ...).
//!
//! Counters start at their first flow and restart with the agent, so a
//! window's flows are not `increase()` (which misses a series' first
//! value): the range is read at `step` resolution and summed here, a
//! series born inside the window counting from zero, a drop counted as a
//! restart. First and last seen are the steps where the count grew.

use crate::{
    clock,
    export::edge_list::{EdgeJson, EdgeList},
    kubernetes::encode,
};
use anyhow::{Context as _, bail};
use std::{collections::BTreeMap, time::Duration};

/// Points per series at most; Prometheus refuses more than 11,000.
const POINTS: u64 = 240;

const FLOWS: &str =
    "sum by (client, server, server_port, protocol, encryption, policy) (plainsight_flows_total)";
const REASONS: &str = "sum by (client, server, server_port, protocol, encryption, reason) (plainsight_flow_reasons_total)";
const TLS: &str = "sum by (client, server, server_port, version) (plainsight_tls_flows_total)";

/// What to read: the window ending `end_secs` (Unix seconds).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub since: Duration,
    pub end_secs: u64,
}

impl Window {
    /// Rounded up: a sample scraped within this second is in.
    pub fn ending_now(since: Duration) -> Self {
        let end_secs = u64::try_from(clock::now_ns()).map_or(0, |ns| ns.div_ceil(1_000_000_000));
        Self { since, end_secs }
    }

    fn start_secs(self) -> u64 {
        self.end_secs.saturating_sub(self.since.as_secs())
    }

    fn step_secs(self) -> u64 {
        self.since.as_secs().div_ceil(POINTS).max(1)
    }
}

/// One series of a range query: its labels, and (time, value) points.
struct Series {
    labels: BTreeMap<String, String>,
    points: Vec<(f64, f64)>,
}

/// What one series counted inside the window.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Counted {
    flows: u64,
    first: f64,
    last: f64,
}

/// The edge list of the fleet over `w`; `fetch` GETs a path of the
/// Prometheus API and returns the body of a 200 answer.
pub fn edge_list(
    w: Window,
    fetch: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<EdgeList> {
    let range = |q: &str| -> anyhow::Result<Vec<Series>> {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            encode(q),
            w.start_secs(),
            w.end_secs,
            w.step_secs()
        );
        parse_matrix(&fetch(&path)?).with_context(|| format!("the answer to {q}"))
    };
    let start = w.start_secs() as f64;
    let key = |l: &BTreeMap<String, String>, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| l.get(*n).cloned().unwrap_or_default())
            .collect()
    };
    let mut edges: BTreeMap<Vec<String>, EdgeJson> = BTreeMap::new();
    const EDGE: [&str; 6] = [
        "client",
        "server",
        "server_port",
        "protocol",
        "encryption",
        "policy",
    ];
    for s in range(FLOWS)? {
        let Some(c) = count(&s.points, start) else {
            continue;
        };
        let l = &s.labels;
        let text = |n: &str| l.get(n).cloned().unwrap_or_default();
        edges.insert(
            key(l, &EDGE),
            EdgeJson::keyed(
                ["client", "server", "protocol", "encryption", "policy"].map(text),
                text("server_port").parse().unwrap_or(0),
                c.flows,
                [secs_rfc3339(c.first), secs_rfc3339(c.last)],
            ),
        );
    }
    let same = |e: &EdgeJson, l: &BTreeMap<String, String>, fields: &[&str]| {
        fields.iter().all(|f| {
            let v = l.get(*f).map(String::as_str).unwrap_or_default();
            match *f {
                "client" => e.client == v,
                "server" => e.server == v,
                "server_port" => e.server_port.to_string() == v,
                "protocol" => e.protocol == v,
                "encryption" => e.encryption == v,
                _ => false,
            }
        })
    };
    for s in range(REASONS)? {
        let Some(c) = count(&s.points, start) else {
            continue;
        };
        let reason = s.labels.get("reason").cloned().unwrap_or_default();
        let fields = ["client", "server", "server_port", "protocol", "encryption"];
        for e in edges.values_mut().filter(|e| same(e, &s.labels, &fields)) {
            if reason == "midstream" {
                e.midstream_flows += c.flows;
            }
            *e.reasons.entry(reason.clone()).or_default() += c.flows;
        }
    }
    for s in range(TLS)? {
        let Some(c) = count(&s.points, start) else {
            continue;
        };
        let version = s.labels.get("version").cloned().unwrap_or_default();
        let fields = ["client", "server", "server_port"];
        for e in edges
            .values_mut()
            .filter(|e| e.encryption == "tls" && same(e, &s.labels, &fields))
        {
            *e.tls_versions.entry(version.clone()).or_default() += c.flows;
        }
    }
    let mut edges: Vec<EdgeJson> = edges.into_values().collect();
    edges.sort_by(|a, b| {
        rank(&a.policy)
            .cmp(&rank(&b.policy))
            .then_with(|| b.flows.cmp(&a.flows))
            .then_with(|| {
                (&a.client, &a.server, a.server_port).cmp(&(&b.client, &b.server, b.server_port))
            })
    });
    Ok(EdgeList {
        edges,
        dropped_flows: 0,
        agent: None,
    })
}

/// Violations first, as everywhere.
fn rank(policy: &str) -> u8 {
    match policy {
        "violation" => 0,
        "allowed" => 1,
        _ => 2,
    }
}

/// Whether either end of `e` is in Kubernetes namespace `ns` (names are
/// `namespace/workload`).
pub fn in_namespace(e: &EdgeJson, ns: &str) -> bool {
    [&e.client, &e.server]
        .iter()
        .any(|n| n.split_once('/').is_some_and(|(n, _)| n == ns))
}

/// The flows a series counted in the window starting at `start`, and the
/// first and last step they grew at; None when it did not grow.
fn count(points: &[(f64, f64)], start: f64) -> Option<Counted> {
    let &(t0, v0) = points.first()?;
    let mut c = Counted {
        flows: 0,
        first: f64::NAN,
        last: f64::NAN,
    };
    let grew = |t: f64, by: f64, c: &mut Counted| {
        if by >= 0.5 {
            c.flows += by.round() as u64;
            if c.first.is_nan() {
                c.first = t;
            }
            c.last = t;
        }
    };
    // Present at the window's start: a baseline. Born later: all new.
    if t0 > start {
        grew(t0, v0, &mut c);
    }
    for pair in points.windows(2) {
        let ((_, a), (t, b)) = (pair[0], pair[1]);
        grew(t, if b >= a { b - a } else { b }, &mut c);
    }
    (c.flows > 0).then_some(c)
}

fn secs_rfc3339(secs: f64) -> String {
    clock::rfc3339((secs * 1e9) as i64)
}

/// A `matrix` answer of `/api/v1/query_range`.
fn parse_matrix(body: &str) -> anyhow::Result<Vec<Series>> {
    let v: serde_json::Value =
        serde_json::from_str(body).context("not JSON; is the URL a Prometheus server?")?;
    if v["status"] != "success" {
        bail!(
            "Prometheus answered {}: {}",
            v["errorType"].as_str().unwrap_or("an error"),
            v["error"].as_str().unwrap_or(body)
        );
    }
    if v["data"]["resultType"] != "matrix" {
        bail!("not a range result: {}", v["data"]["resultType"]);
    }
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = r["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let points = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse().ok()?)))
            .collect();
        out.push(Series { labels, points });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_new_series_whole_and_restarts_as_restarts() {
        // Present at the start (baseline 5), +2, then a restart to 1.
        let c = count(
            &[(100.0, 5.0), (115.0, 7.0), (130.0, 7.0), (145.0, 1.0)],
            100.0,
        );
        assert_eq!(
            c,
            Some(Counted {
                flows: 3,
                first: 115.0,
                last: 145.0
            })
        );
        // Born inside the window at 2: both flows count.
        let c = count(&[(130.0, 2.0), (145.0, 2.0)], 100.0).expect("counted");
        assert_eq!((c.flows, c.first, c.last), (2, 130.0, 130.0));
        // Present and unchanged: nothing in this window.
        assert_eq!(count(&[(100.0, 4.0), (115.0, 4.0)], 100.0), None);
        assert_eq!(count(&[], 100.0), None);
    }

    /// Two nodes' series of one identity pair arrive summed (the query
    /// folds `instance`); reasons and TLS versions join their edge.
    #[test]
    fn the_answers_make_one_edge_list() {
        let answer = |result: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{result}]}}}}"#
            )
        };
        let fetch = |path: &str| -> anyhow::Result<String> {
            assert!(
                path.starts_with("/api/v1/query_range?query=sum%20by%20%28"),
                "{path}"
            );
            assert!(path.contains("&start=3400&end=7000&step=15"), "{path}");
            Ok(if path.contains("plainsight_flows_total") {
                answer(
                    r#"{"metric":{"client":"shop/a","server":"web/b","server_port":"80","protocol":"http","encryption":"plaintext","policy":"violation"},"values":[[3500,"3"],[3515,"5"]]},
                       {"metric":{"client":"shop/a","server":"web/b","server_port":"443","protocol":"tls","encryption":"tls","policy":"ok"},"values":[[3400,"9"],[3415,"10"]]},
                       {"metric":{"client":"old","server":"web/b","server_port":"80","protocol":"http","encryption":"plaintext","policy":"allowed"},"values":[[3400,"9"],[3415,"9"]]}"#,
                )
            } else if path.contains("plainsight_flow_reasons_total") {
                answer(
                    r#"{"metric":{"client":"shop/a","server":"web/b","server_port":"80","protocol":"http","encryption":"plaintext","reason":"cleartext_credentials"},"values":[[3500,"1"]]}"#,
                )
            } else {
                answer(
                    r#"{"metric":{"client":"shop/a","server":"web/b","server_port":"443","version":"1.3"},"values":[[3400,"9"],[3415,"10"]]}"#,
                )
            })
        };
        let w = Window {
            since: Duration::from_secs(3600),
            end_secs: 7000,
        };
        let list = edge_list(w, fetch).expect("edge list");
        let rows: Vec<_> = list
            .edges
            .iter()
            .map(|e| (e.server_port, e.policy.as_str(), e.flows))
            .collect();
        assert_eq!(rows, [(80, "violation", 5), (443, "ok", 1)]);
        let v = &list.edges[0];
        assert_eq!(
            v.reasons,
            BTreeMap::from([("cleartext_credentials".into(), 1)])
        );
        assert_eq!(
            (v.first_seen.as_str(), v.last_seen.as_str()),
            ("1970-01-01T00:58:20Z", "1970-01-01T00:58:35Z")
        );
        assert_eq!(
            list.edges[1].tls_versions,
            BTreeMap::from([("1.3".into(), 1)])
        );
        assert!(in_namespace(v, "web") && in_namespace(v, "shop") && !in_namespace(v, "we"));
    }

    #[test]
    fn prometheus_errors_are_named() {
        let e = parse_matrix(
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .err()
        .expect("an error")
        .to_string();
        assert_eq!(e, "Prometheus answered bad_data: parse error at char 3");
        assert!(parse_matrix("<html>").is_err());
    }
}
