//! The `plainsight` agent as a library: the binary (main.rs) only parses
//! the command line, integration tests call `replay` directly, and the
//! examples measure parts of it (`pipeline_cost`, `kube_memory`).

pub mod cli;
mod clock;
pub mod config;
pub mod export;
mod glob;
pub mod kernel;
pub mod kubernetes;
pub mod logging;
pub mod pipeline;
pub mod replay;
