//! What can go wrong reading a capture. Every error that concerns the file's
//! contents names the byte offset where it was found.

use std::{io, path::PathBuf};

/// A problem in the capture's bytes (or reading them).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("empty file, not a pcap or pcapng capture")]
    Empty,

    #[error("not a pcap or pcapng capture (it starts with {magic}){hint}")]
    NotACapture { magic: String, hint: &'static str },

    #[error("unsupported capture format at byte offset {offset}: {what}")]
    Unsupported { offset: u64, what: String },

    #[error(
        "truncated {what} at byte offset {offset}: needs {needed} bytes, the file ends after {got}"
    )]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        got: u64,
    },

    #[error("corrupt {what} at byte offset {offset}: {problem}")]
    Corrupt {
        offset: u64,
        what: &'static str,
        problem: String,
    },

    #[error("read error at byte offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

/// A failed replay: the file and what was wrong with it, in one line (the
/// cause is part of the message, not a separate source to print again).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },

    #[error("{}: {error}", path.display())]
    Capture { path: PathBuf, error: CaptureError },
}
