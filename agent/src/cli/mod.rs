//! The commands (main.rs parses the command line and calls one): `run`
//! wires the kernel glue, the pipeline and the exporters together;
//! `edges` and `check-config` are small clients. `replay` lives with its
//! capture reader in replay/.

pub mod check_config;
pub mod edges;
pub mod report;
pub mod run;
