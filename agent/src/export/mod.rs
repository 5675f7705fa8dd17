//! Exporters: what the agent publishes. Prometheus metrics (declared in
//! one place), the HTTP API that serves them with the live edge view, and
//! the edge table the CLI and `replay` print.

pub(crate) mod api;
pub mod edge_list;
pub mod metrics;
pub(crate) mod process_metrics;
pub(crate) mod table;
