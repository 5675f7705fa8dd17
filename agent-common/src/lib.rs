//! Everything the kernel and userspace must agree on: wire types, header
//! facts, the flow-tracking rules and the classifier.
//!
//! `no_std`, no allocation, no panics: the same code runs in the eBPF
//! programs, in unit tests, in the fuzz targets (fuzz/: `classifier`,
//! `tracker`) and in `plainsight replay`.
#![no_std]

pub mod classify;
pub mod headers;
pub mod track;
pub mod verdict;
pub mod wire;

pub use classify::{FlowClassifier, Side};
pub use verdict::{Encryption, Protocol, Reason, TlsVersion, Verdict};
