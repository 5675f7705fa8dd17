//! The HTTP endpoints: `/metrics`, `/api/v1/edges`, `/healthz`, `/readyz`,
//! and the edge page at `/` (export/page.rs) beside the edges API.

use super::{
    bearer::BearerToken,
    edge_list::{AgentJson, EdgeList},
    metrics::{self, Metrics},
    page,
    readiness::Readiness,
    snapshot::Snapshots,
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use std::{net::SocketAddr, sync::Arc, time::Instant};

/// The policies `?policy=` may keep (pipeline::policy::Policy's names).
const POLICIES: [&str; 3] = ["ok", "allowed", "violation"];

#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// Published by the ring consumer (export/snapshot.rs).
    pub edges: Snapshots,
    pub readiness: Arc<Readiness>,
    /// `api.token_file`: `/api/v1/edges` requires it when set.
    pub token: Option<Arc<BearerToken>>,
    pub status: AgentStatus,
    /// `api.page`: the edge page at `/` wherever the edges API is served.
    pub page: bool,
}

/// What the edge list says of the agent serving it.
#[derive(Clone)]
pub struct AgentStatus {
    pub started: Instant,
    pub include_loopback: bool,
    pub metrics: Arc<Metrics>,
}

impl AgentStatus {
    fn json(&self) -> AgentJson {
        AgentJson {
            uptime_secs: self.started.elapsed().as_secs(),
            flows_classified: self.metrics.events_received.get(),
            include_loopback: self.include_loopback,
        }
    }
}

/// What one listener serves; both answer `/healthz` and `/readyz`.
#[derive(Clone, Copy, Debug)]
pub enum Serves {
    /// `api.listen` and `metrics.listen` are one address.
    Everything,
    /// `api.listen`: the edges API.
    Api,
    /// `metrics.listen`: `/metrics`; the edges API is at this address.
    Metrics { api: SocketAddr },
}

pub fn router(state: ApiState, serves: Serves) -> Router {
    let r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    let r = match serves {
        Serves::Everything => r
            .route("/metrics", get(metrics))
            .route("/api/v1/edges", get(edges)),
        Serves::Api => r.route("/api/v1/edges", get(edges)),
        // Said plainly, for `plainsight edges` pointed at the scrape port.
        Serves::Metrics { api } => r.route("/metrics", get(metrics)).route(
            "/api/v1/edges",
            get(move || async move {
                (
                    StatusCode::NOT_FOUND,
                    format!("the edges API listens on api.listen ({api}), not here\n"),
                )
            }),
        ),
    };
    let r = match serves {
        Serves::Everything | Serves::Api if state.page => r.merge(page::routes()),
        _ => r,
    };
    r.with_state(state)
}

/// Prometheus text 0.0.4 unless the scraper asks for OpenMetrics
/// (Prometheus does by default; promtool and older tools do not).
async fn metrics(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    match metrics::openmetrics_text(&s.registry) {
        Ok(body) if wants_openmetrics => {
            ([(header::CONTENT_TYPE, metrics::OPENMETRICS_TEXT)], body).into_response()
        }
        Ok(body) => (
            [(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)],
            metrics::prometheus_text(&body),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct EdgesQuery {
    /// `true`: violations only.
    #[serde(default)]
    violations: bool,
    /// One policy: `ok`, `allowed` or `violation`.
    policy: Option<String>,
}

async fn edges(
    State(s): State<ApiState>,
    Query(q): Query<EdgesQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &s.token
        && !token.admits(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (api.token_file; plainsight edges --token-file)\n",
        )
            .into_response();
    }
    let only = if q.violations {
        Some("violation")
    } else {
        q.policy.as_deref()
    };
    if let Some(p) = only
        && !POLICIES.contains(&p)
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("policy={p:?}: expected ok, allowed or violation\n"),
        )
            .into_response();
    }
    let all = s.edges.fresh().await;
    Json(EdgeList {
        edges: all
            .edges
            .iter()
            .filter(|e| only.is_none_or(|p| e.policy == p))
            .cloned()
            .collect(),
        dropped_flows: all.dropped_flows,
        agent: Some(s.status.json()),
    })
    .into_response()
}

async fn readyz(State(s): State<ApiState>) -> Response {
    match s.readiness.check() {
        Ok(body) => (StatusCode::OK, body + "\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason + "\n").into_response(),
    }
}
