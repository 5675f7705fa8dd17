//! Kernel glue: loading and attaching the eBPF programs, and reading what
//! they report. Nothing here decides or publishes: the ring reader produces
//! the pipeline's `Flow` records, and the counters come back as plain
//! readings for the exporter (export/metrics.rs) to publish.

pub(crate) mod attachments;
pub(crate) mod caps;
pub(crate) mod cgroup;
pub mod datapath;
pub mod events;
pub mod interfaces;
