//! The HTTP endpoints: `/metrics`, `/api/v1/edges`, `/healthz`, `/readyz`.

use super::metrics;
use crate::pipeline::{edges::Edges, policy::Policy};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub edges: Arc<Mutex<Edges>>,
    /// Set once every requested program is attached.
    pub ready: Arc<AtomicBool>,
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
    let only = match (q.violations, q.policy.as_deref()) {
        (true, _) => Some(Policy::Violation),
        (false, None) => None,
        (false, Some(p)) => match Policy::from_name(p) {
            Some(p) => Some(p),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("policy={p:?}: expected ok, allowed or violation\n"),
                )
                    .into_response();
            }
        },
    };
    let list = s
        .edges
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .snapshot(only);
    Json(list).into_response()
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
