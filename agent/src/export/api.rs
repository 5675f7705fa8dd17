//! The HTTP endpoints: `/metrics`, `/api/v1/edges`, `/healthz`, `/readyz`.

use super::{
    edge_list::{AgentJson, EdgeList},
    metrics::{self, Metrics},
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::Instant;

/// What `/api/v1/edges` serves: the pipeline's live edge table implements
/// it (pipeline/edges.rs).
pub trait EdgeView: Send + Sync {
    /// The edges, violations first; `policy` (`ok`, `allowed` or
    /// `violation`) keeps one outcome. `None` when `policy` names none.
    fn snapshot(&self, policy: Option<&str>) -> Option<EdgeList>;
}

#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub edges: Arc<dyn EdgeView>,
    /// Set once every requested program is attached.
    pub ready: Arc<AtomicBool>,
    pub status: AgentStatus,
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

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/edges", get(edges))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
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

async fn edges(State(s): State<ApiState>, Query(q): Query<EdgesQuery>) -> Response {
    let only = if q.violations {
        Some("violation")
    } else {
        q.policy.as_deref()
    };
    match s.edges.snapshot(only) {
        Some(list) => Json(EdgeList {
            agent: Some(s.status.json()),
            ..list
        })
        .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            format!(
                "policy={:?}: expected ok, allowed or violation\n",
                only.unwrap_or_default()
            ),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<ApiState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "programs not attached yet\n",
        )
    }
}
