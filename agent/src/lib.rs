//! The `plainsight` agent as a library: the binary (main.rs) only parses
//! the command line, and integration tests call `replay` directly.

mod api;
mod cgroup;
pub mod datapath;
pub mod events;
mod interfaces;
pub mod kubernetes;
mod metrics;
mod policy;
pub mod replay;
pub mod run;
