//! Exporters: what the agent publishes. Prometheus metrics (declared in
//! one place), the HTTP API that serves them with the live edge view
//! (a snapshot the ring consumer publishes, behind a hardened server), and
//! the edge table the CLI and `replay` print.

pub(crate) mod api;
pub(crate) mod api_tls;
pub(crate) mod bearer;
pub mod edge_list;
pub mod http_server;
pub mod metrics;
pub(crate) mod page;
pub(crate) mod process_metrics;
pub(crate) mod readiness;
pub(crate) mod snapshot;
pub(crate) mod table;
