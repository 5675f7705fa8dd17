//! The `plainsight` agent as a library: the binary (main.rs) only parses
//! the command line, integration tests call `replay` directly, and the
//! examples measure parts of it (`pipeline_cost`, `kube_memory`).
//!
//! Grouped by layer, data flowing one way: `kernel` (load, attach, read the
//! rings and counters) -> `pipeline` (name, judge, aggregate each flow) ->
//! `export` (metrics, the HTTP API, the edge table). `cli` wires them into
//! commands; `config`, `kubernetes` (an identity source) and `replay` (the
//! kernel's tracking over a capture) stand beside them.

pub mod cli;
mod clock;
pub mod config;
pub mod export;
pub mod fleet;
mod glob;
pub mod kernel;
pub mod kubernetes;
pub mod logging;
pub mod pipeline;
pub mod replay;
pub mod report;
