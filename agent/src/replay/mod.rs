//! `plainsight replay FILE`: the agent's flow tracking and classifier over
//! a pcap/pcapng capture, for checking verdicts without a kernel.
//!
//! capture (file format) -> link (frame to IP) -> packet (IP + TCP) ->
//! flows (the kernel's tracking rules, `agent_common::track`) -> classifier
//! -> output (edge table or JSON lines). Every flow in the capture counts,
//! loopback too (the live agent skips loopback by default).

mod capture;
mod error;
mod flows;
mod link;
mod output;
mod packet;

pub use error::{CaptureError, ReplayError};

use crate::pipeline::tls_hello::TlsMeta;
use agent_common::Verdict;
use anyhow::Context as _;
use capture::Capture;
use link::Network;
use packet::Skip;
use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A pcap or pcapng capture; `-` reads standard input.
    pub file: PathBuf,

    /// Print one JSON object per TCP flow, one per line, instead of the
    /// edge table.
    #[arg(long)]
    pub json: bool,

    /// Name and judge the flows with this agent configuration's
    /// `[identities]` and `[policy]` (rule expiry as of now), to test a
    /// policy on a capture before deploying it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// One classified TCP flow as the capture shows it (socket addresses, the
/// capture time): what `replay_file` hands out and the corpus tests read.
/// `output` turns it into the pipeline's `Flow` to name and judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub verdict: Verdict,
    /// First seen without a SYN.
    pub midstream: bool,
    /// Capture time of the verdict (or of the flow's last packet, for flows
    /// that closed without one), nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// What the flow's TLS hellos said, read from the bytes the kernel
    /// would export.
    pub tls: TlsMeta,
}

/// What was in the capture besides the flows.
#[derive(Debug, Default)]
pub struct Stats {
    pub packets: u64,
    pub tcp_segments: u64,
    pub flows: u64,
    /// Non-IP frames and IP packets that are not TCP.
    pub not_tcp: u64,
    /// Non-first IP fragments (no TCP header to read).
    pub fragments: u64,
    /// Frames whose headers are cut short or inconsistent.
    pub malformed: u64,
    /// Frames per link type that replay does not decode.
    pub unsupported_links: BTreeMap<u16, u64>,
}

/// Replays a capture file; see `replay_reader`.
pub fn replay_file(path: &Path, out: &mut impl FnMut(FlowRecord)) -> Result<Stats, ReplayError> {
    let err = |error| ReplayError::Capture {
        path: path.to_owned(),
        error,
    };
    if path == Path::new("-") {
        return replay_reader(io::stdin().lock(), out).map_err(err);
    }
    let file = File::open(path).map_err(|error| ReplayError::Open {
        path: path.to_owned(),
        error,
    })?;
    replay_reader(BufReader::with_capacity(1 << 16, file), out).map_err(err)
}

/// Replays a capture: every flow goes to `out` as it gets its verdict, and
/// the flows still open at the end (or where the capture turns out to be
/// truncated or corrupt) get their best verdict before the error returns.
pub fn replay_reader<R: Read>(
    reader: R,
    out: &mut impl FnMut(FlowRecord),
) -> Result<Stats, CaptureError> {
    let mut cap = Capture::open(reader)?;
    let mut table = flows::FlowTable::default();
    let mut flows = 0;
    let mut count = |r: FlowRecord| {
        flows += 1;
        out(r);
    };
    let mut counts = Stats::default();
    let result = loop {
        let frame = match cap.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        counts.packets += 1;
        match decode(&frame) {
            Ok(seg) => {
                counts.tcp_segments += 1;
                table.segment(&seg, frame.ts_ns, &mut count);
            }
            Err(skip) => counts.skipped(skip, &frame),
        }
    };
    table.finish(&mut count);
    counts.flows = flows;
    result.map(|()| counts)
}

/// The TCP segment a captured frame carries.
fn decode<'a>(frame: &capture::Frame<'a>) -> Result<packet::Segment<'a>, Skip> {
    match link::network(frame.link_type, frame.data) {
        Network::V4(p) => packet::ipv4(p),
        Network::V6(p) => packet::ipv6(p),
        Network::Other => Err(Skip::NotTcp),
        Network::Truncated => Err(Skip::Malformed),
        Network::UnsupportedLink => Err(Skip::UnsupportedLink),
    }
}

impl Stats {
    fn skipped(&mut self, skip: Skip, frame: &capture::Frame<'_>) {
        match skip {
            Skip::NotTcp => self.not_tcp += 1,
            Skip::Fragment => self.fragments += 1,
            Skip::Malformed => {
                log::debug!("packet at byte offset {}: malformed headers", frame.offset);
                self.malformed += 1;
            }
            Skip::UnsupportedLink => {
                *self.unsupported_links.entry(frame.link_type).or_default() += 1;
            }
        }
    }
}

/// The CLI: prints the flows read (also when the capture turns out to be
/// bad), then fails with the error naming the file and the offset.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    // A bad configuration fails before anything is printed.
    let mut edges = match &args.config {
        Some(path) => judged_by(crate::config::load(path)?),
        None => output::Report::default(),
    };
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let mut write_err = None;
    let result = replay_file(&args.file, &mut |r| {
        if args.json {
            if write_err.is_none()
                && let Err(e) = writeln!(w, "{}", edges.json(&r))
            {
                write_err = Some(e);
            }
        } else {
            edges.add(&r);
        }
    });
    let written = match write_err {
        Some(e) => Err(e),
        None if args.json => w.flush(),
        // Not even a header for a file that is no capture at all.
        None if edges.is_empty() && result.is_err() => Ok(()),
        None => edges.write_table(&mut w).and_then(|()| w.flush()),
    };
    match written {
        // `plainsight replay x | head` is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        r => r.context("writing the output")?,
    }
    let stats = result?;
    report(&args.file, &stats, !args.json);
    Ok(())
}

/// The configuration's identities and policy, rules judged as of now;
/// expired rules are named on stderr as `check-config` does.
fn judged_by(c: crate::config::Config) -> output::Report {
    let now = crate::clock::now_ns();
    for w in crate::config::warnings(&c, now) {
        eprintln!("warning: {w}");
    }
    let names = crate::pipeline::identity::CidrNames::new(c.identities);
    output::Report::new(
        crate::pipeline::identity::Resolver::new(vec![Box::new(names)]),
        c.policy,
        now,
    )
}

/// A line on stderr about what the capture held, and warnings about what
/// replay could not read.
fn report(file: &Path, s: &Stats, summary: bool) {
    let name = file.display();
    if summary {
        eprintln!(
            "{name}: {} packets, {} TCP segments, {} flows",
            s.packets, s.tcp_segments, s.flows
        );
    }
    for (lt, n) in &s.unsupported_links {
        eprintln!(
            "{name}: warning: skipped {n} packets on link type {lt}, which replay does not decode"
        );
    }
    if s.malformed > 0 {
        eprintln!(
            "{name}: warning: skipped {} packets with truncated or inconsistent headers",
            s.malformed
        );
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
