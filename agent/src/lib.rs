//! The `plainsight` agent as a library: the binary (main.rs) only parses
//! the command line, integration tests call `replay` directly, and the
//! examples measure parts of it (`pipeline_cost`, `kube_memory`).

pub mod alerts;
mod api;
pub mod check_config;
mod cidr;
mod clock;
pub mod config;
pub mod edges;
pub mod edges_cmd;
pub mod identity;
pub mod kernel;
pub mod kubernetes;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod policy;
mod process_metrics;
pub mod replay;
pub mod run;
mod table;
pub mod tls_hello;
