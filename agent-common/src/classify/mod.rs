//! The per-flow state machine: payload prefixes in, one final verdict out.
//!
//! The kernel feeds it the first `PREFIX` bytes of each of the first
//! `MAX_SEGMENTS` payload segments per direction, in sequence order; `replay`
//! does the same from a capture. It keeps eight bytes of state so it fits in
//! the flow-table value.
//!
//! This file is the core: TLS records (the same in every stage), the
//! segment budget, the verdict's reasons, the stage byte. Each protocol is
//! one file holding all of it (signatures, steps, tests): a unit struct
//! implementing `dissector::Dissector`, registered by one line in its
//! family's block of the `dissectors!` list below, which also declares its
//! module.
//!
//! Stages. The kernel verifies each program on its own, up to 1M
//! instructions, so the classifier is split into tail-called programs
//! (docs/architecture.md, "One packet's path"): the core (`begin`: TLS
//! records, the classifier's own stages; `end`: reasons, the final
//! verdict, the segment budget) and one program per family of the
//! registry (`stage`: the family's steps, openings, mid-stream
//! signatures). A segment's way between them is a `Route`, carried across
//! the tail calls with the state; `on_segment` runs the same parts in a
//! row, so unit tests and `replay` give the kernel's verdicts. A new
//! protocol adds to its family's program only; a family too big for the
//! verifier is split into two blocks of the list.
//!
//! Verifier cost per program: see the counts printed by `cargo test -p
//! plainsight-tests --test kernel_prog_run verified -- --nocapture` (the
//! README lists the latest). What keeps it additive rather than
//! multiplicative, learnt the hard way:
//! - length checks go through `Prefix::has` (arithmetic on a fresh copy of
//!   the length) and bytes through volatile loads: a comparison that
//!   narrows a register shared by later signatures splits every later
//!   path, and the verifier cannot merge states that differ in it;
//! - verdict reasons are combined without branches (`finish`,
//!   `with_reason`), and a final verdict is stored in the state and read
//!   back (`settle`) so the paths that end in it meet before the kernel
//!   emits it;
//! - signatures are tried in a flat sequence: a `match` on the first byte
//!   cost more, its arms never merge;
//! - a dissector says it claimed the flow by its return value (`WAITING`),
//!   not by a stage read back: the state is map memory, so each read is a
//!   value the verifier does not know and a branch after every dissector
//!   (+25% when the protocols were first split into files);
//! - what the core must know of a protocol (the step that awaits a
//!   STARTTLS answer, a tunnel's steps) is a constant of its `Dissector`,
//!   turned into branch-free stage comparisons, not a flag kept in the
//!   state: clearing a flag at every stage change cost another 15%;
//! - no tables of slices (they become .rodata pointers the verifier
//!   rejects); no `Option` of an enum with data (LLVM reads the undefined
//!   payload of `None`, and the verifier rejects arithmetic on it).
//!
//! Functions that return an `Option` are `#[inline(always)]`: a non-inlined
//! one puts Rust's niche-optimised `Option` layout into the object's BTF,
//! which the kernel rejects ("Invalid member bits_offset"), and the loader
//! then drops BTF for the whole object with a long warning.

#[macro_use]
mod dissector;
#[cfg(test)]
#[macro_use]
mod testing;

pub mod bytes;
pub mod credentials;
pub mod tls;

dissectors! {
    // One line per protocol, in the family that runs it: each family is
    // its own tail-called program in the kernel (see "Stages" above).
    // Openings are tried family by family, in list order (its position is
    // its priority); where a place matters, the file says why.
    /// HTTP and what must be tried before it (NATS: `CONNECT {`); remote
    /// access, name and file services.
    web {
        nats::Nats,
        http_connect::HttpConnect,
        http::Http,
        ssh::Ssh,
        dns::Dns,
        rsync::Rsync,
        ajp::Ajp,
    }
    /// Databases and caches. Before `messaging` (a PostgreSQL startup
    /// parses as a Kafka request) and `services` (Redis before the mail
    /// protocols: `+OK`).
    databases {
        postgres::Postgres,
        mongodb::Mongodb,
        redis::Redis,
        memcached::Memcached,
        mysql::Mysql,
        cassandra::Cassandra,
        elasticsearch::Elasticsearch,
        mssql::Mssql,
        oracle::Oracle,
        db2::Db2,
        zookeeper::Zookeeper,
    }
    /// Message brokers and RPC.
    messaging {
        kafka::Kafka,
        amqp::Amqp,
        mqtt::Mqtt,
        openwire::Openwire,
        zmtp::Zmtp,
        dubbo::Dubbo,
        pulsar::Pulsar,
        rocketmq::Rocketmq,
        stomp::Stomp,
    }
    /// Directory, mail and chat, proxies. Last: SOCKS after every other
    /// client-first binary signature.
    services {
        ldap::Ldap,
        mail::Mail,
        socks::Socks,
    }
    /// File sharing, chat, remote terminals and authentication: after
    /// every family above, as they were written to come after SOCKS.
    access {
        smb::Smb,
        xmpp::Xmpp,
        telnet::Telnet,
        irc::Irc,
        vnc::Vnc,
        rdp::Rdp,
        // Last: its length forms branch, and the verifier walks every later
        // dissector once per branch.
        kerberos::Kerberos,
    }
}

use crate::wire::MAX_SEGMENTS;
use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};
pub use bytes::{Prefix, PrefixBuf};
use dissector::Registered;

/// The classifier's family stages, each its own tail-called program in the
/// kernel after the core (stage 0), numbered `1..=STAGES` in list order.
pub const STAGES: u8 = registry::FAMILIES;
/// The families' names, stage 1 first (for logs and the verifier report).
pub const STAGE_NAMES: &[&str] = registry::FAMILY_NAMES;

/// Which end of the connection sent a segment. The client is the SYN
/// sender (or inferred, for flows first seen mid-stream).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Server = 1,
}

/// Where the state machine stands between segments: the classifier's own
/// stages; the values from `FIRST_DISSECTOR` up belong to the registered
/// dissectors, each its own range of `Dissector::STEPS` values.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Nothing recognised yet: every segment is tried as an opening message.
    Start = 0,
    /// A ClientHello was sent; the ServerHello names the version.
    AwaitServerHello = 1,
    /// An in-band upgrade was accepted; the client's ClientHello comes next.
    AwaitClientHello = 2,
}

impl Stage {
    const FIRST_DISSECTOR: u8 = 3;
}

/// What a dissector returns while no verdict is final: it returns a
/// `Verdict`, never an `Option` of one (LLVM reads the undefined payload of
/// a `None` speculatively, and the verifier rejects that), and no final
/// verdict of theirs has `Encryption::Unknown` (only `give_up` gives one).
const PENDING: Verdict = Verdict::new(Protocol::Unknown, Encryption::Unknown);

/// What a dissector's `opening` returns when it recognised its protocol
/// and moved the flow to one of its steps (`FlowClassifier::opened` returns
/// it): not final (`Encryption::Unknown`), but not `PENDING`, so the search
/// ends. Said by the return value rather than read back from the stage:
/// the state is map memory in the kernel, so every such read would be an
/// unknown value and a verifier branch after each dissector. Never emitted
/// (`give_up` builds its own verdicts).
const WAITING: Verdict = Verdict {
    protocol: Protocol::Unknown,
    encryption: Encryption::Unknown,
    reason: Reason::None,
    tls_version: TlsVersion::Ssl2,
};

/// `FlowClassifier.flags` bits.
const F_TEXT: u8 = 1;
/// First seen without its SYN (set by `new_midstream`).
const F_MIDSTREAM: u8 = 2;
/// The first payload segment of the flow was an opening message (request,
/// hello, greeting): a mid-stream flow that starts there is not reported
/// as `midstream`.
const F_OPENED: u8 = 4;
/// The server accepted an in-band TLS upgrade.
const F_UPGRADED: u8 = 8;
/// The server refused an in-band TLS upgrade.
const F_REFUSED: u8 = 16;
/// A credentials scan (`credentials.rs`) found a secret sent in the clear.
const F_CREDENTIALS: u8 = 32;

/// Classifier state: eight bytes, `#[repr(C)]`, lives in the flow table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowClassifier {
    stage: u8,
    flags: u8,
    /// Segments inspected, per side.
    segs: [u8; 2],
    /// The protocol recognised so far (`Protocol` as u8), 0 if none; with
    /// the next three, the final verdict once there is one (see `settle`).
    proto: u8,
    encryption: u8,
    reason: u8,
    tls_version: u8,
}

impl FlowClassifier {
    /// The all-zero state of a flow seen from its SYN.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            stage: Stage::Start as u8,
            flags: 0,
            segs: [0, 0],
            proto: 0,
            encryption: 0,
            reason: 0,
            tls_version: 0,
        }
    }

    /// A flow first seen without its SYN: its verdict carries the
    /// `midstream` reason unless its first payload is an opening message
    /// (a request, a hello, a greeting).
    #[must_use]
    pub const fn new_midstream() -> Self {
        let mut s = Self::new();
        s.flags = F_MIDSTREAM;
        s
    }

    /// The state as native-endian `u32` words, for the kernel to store
    /// without a memset call.
    #[must_use]
    pub const fn to_words(self) -> [u32; 2] {
        [
            u32::from_ne_bytes([self.stage, self.flags, self.segs[0], self.segs[1]]),
            u32::from_ne_bytes([self.proto, self.encryption, self.reason, self.tls_version]),
        ]
    }

    /// Segments of `side` inspected so far.
    #[must_use]
    pub fn segments(&self, side: Side) -> u8 {
        match side {
            Side::Client => self.segs[0],
            Side::Server => self.segs[1],
        }
    }

    /// The verdict (or the protocol recognised so far) names `p`.
    #[must_use]
    #[inline(always)]
    pub fn names(&self, p: Protocol) -> bool {
        self.proto == p as u8
    }

    /// Whether `side` may still contribute a segment.
    #[must_use]
    pub fn wants(&self, side: Side) -> bool {
        self.segments(side) < MAX_SEGMENTS
    }

    /// Feeds the prefix of one payload segment. Returns the final verdict
    /// once there is one; after that the caller stops feeding.
    ///
    /// The kernel runs the same three parts in separate tail-called
    /// programs (`begin` in the core, `stage` in each family's program,
    /// `end` in whichever program the segment stops at); this runs them in
    /// a row.
    #[inline(always)]
    pub fn on_segment(&mut self, side: Side, data: &Prefix<'_>) -> Option<Verdict> {
        let (mut v, mut route) = self.begin(side, data);
        while route.stage != 0 {
            (v, route) = self.stage(route.stage, side, data, route);
        }
        self.end(side, v, route)
    }

    /// `on_segment` for a whole segment's bytes, as userspace (`replay`,
    /// tests, fuzzing) has them: the credentials scan past the prefix
    /// (`credentials::scan_segment`), then the prefix, as the kernel does
    /// across its scan and classifier programs.
    pub fn on_payload(&mut self, side: Side, payload: &[u8]) -> Option<Verdict> {
        credentials::scan_segment(self, side, payload);
        self.on_segment(side, &PrefixBuf::new(payload).prefix())
    }

    /// The core's part of a segment: counts it, decides TLS records and the
    /// classifier's own stages. Returns the verdict so far and where the
    /// segment goes next: a family's stage (`Route::stage`), or nowhere
    /// (then `end` takes the verdict).
    #[inline(always)]
    pub fn begin(&mut self, side: Side, data: &Prefix<'_>) -> (Verdict, Route) {
        if data.is_empty() || !self.wants(side) {
            return (PENDING, Route::end(Route::IDLE));
        }
        match side {
            Side::Client => self.segs[0] += 1,
            Side::Server => self.segs[1] += 1,
        }
        // TLS records mean the same in every stage: decided here, once,
        // instead of one copy of the ServerHello walk per stage.
        let rec = tls::record(data);
        // Computed here, once: left to the optimiser, it sinks into each
        // path that uses it, where the verifier knows some bytes already.
        let text = core::hint::black_box(data.is_text(2));
        let t = if text { Route::TEXT } else { 0 };
        let stage = self.stage;
        let in_tls =
            stage == Stage::AwaitServerHello as u8 || stage == Stage::AwaitClientHello as u8;
        if rec == tls::Record::ServerHello {
            (self.tls_verdict(tls::version(data)), Route::end(0))
        } else if rec == tls::Record::ClientHello && side == Side::Client {
            self.client_hello();
            (PENDING, Route::end(0))
        } else if rec != tls::Record::None
            && (stage == Stage::Start as u8 || (in_tls && side == Side::Server))
        {
            // Any other record: TLS, without a version.
            (
                Verdict::new(self.tls_protocol(), Encryption::Tls),
                Route::end(0),
            )
        } else if stage == Stage::Start as u8 {
            // The first segment(s) of a flow: every family's openings. Picked
            // up inside a TLS record: its tail, then the next header.
            let tail =
                !text && self.flags & F_MIDSTREAM != 0 && tls::embedded_application_data(data);
            let tail = if tail { Route::TLS_TAIL } else { 0 };
            (PENDING, Route::search(t | tail))
        } else if stage == Stage::AwaitServerHello as u8 {
            self.await_server_hello(side, text)
        } else if stage == Stage::AwaitClientHello as u8 {
            (PENDING, Route::end(0))
        } else {
            // Straight to the family holding the stage's dissector.
            let to = registry::family_of(stage);
            (
                PENDING,
                Route {
                    stage: to,
                    pass: Route::STEP,
                },
            )
        }
    }

    /// Family `family`'s part (`1..=STAGES`): its dissectors' step, its
    /// openings or its mid-stream signatures, as `route` says. A search
    /// that finds nothing goes on to the next family, then (openings done)
    /// to every family's mid-stream signatures from the first.
    #[inline(always)]
    pub fn stage(
        &mut self,
        family: u8,
        side: Side,
        d: &Prefix<'_>,
        route: Route,
    ) -> (Verdict, Route) {
        let pass = route.pass;
        let v = if pass & Route::STEP != 0 {
            let stage = self.stage;
            registry::step(family, self, stage, side, d)
        } else if pass & Route::MIDSTREAM != 0 {
            registry::midstream(family, self, side, d)
        } else {
            registry::openings(family, self, side, d)
        };
        let next = if v != PENDING || pass & Route::STEP != 0 {
            Route::end(pass)
        } else if family < STAGES {
            Route {
                stage: family + 1,
                pass,
            }
        } else if pass & Route::MIDSTREAM == 0 {
            Route {
                stage: 1,
                pass: pass | Route::MIDSTREAM,
            }
        } else {
            Route::end(pass)
        };
        (v, next)
    }

    /// The last part of a segment, in the program it stops at: the final
    /// verdict, if `v` is one or the segment budget is spent.
    #[inline(always)]
    pub fn end(&mut self, side: Side, v: Verdict, route: Route) -> Option<Verdict> {
        let pass = route.pass;
        if pass & Route::IDLE != 0 {
            return None;
        }
        let mut verdict = v;
        if pass & Route::SEARCH != 0 {
            if pass & Route::REOPEN != 0 {
                // A TLS client answered in cleartext: the server's greeting
                // decides, and a greeting nobody names is plaintext.
                if verdict.encryption == Encryption::Unknown && self.proto == 0 {
                    verdict = Verdict::plaintext(Protocol::Unknown);
                }
            } else if verdict == PENDING && pass & Route::TEXT != 0 {
                self.flags |= F_TEXT;
            } else if verdict == PENDING && pass & Route::TLS_TAIL != 0 {
                verdict = Verdict::new(Protocol::Tls, Encryption::Tls);
            }
        }
        if verdict.encryption != Encryption::Unknown {
            let v = self.finish(verdict);
            return Some(self.settle(v));
        }
        // Out of segments on both sides, or on one side while the other
        // has sent nothing: a one-way stream (a bulk upload, log shipping,
        // replication) would otherwise wait for its close, possibly days,
        // and cost a full flow-table visit per packet until then.
        let (mine, theirs) = match side {
            Side::Client => (self.segs[0], self.segs[1]),
            Side::Server => (self.segs[1], self.segs[0]),
        };
        if mine >= MAX_SEGMENTS && (theirs == 0 || theirs >= MAX_SEGMENTS) {
            let v = self.give_up();
            return Some(self.settle(v));
        }
        None
    }

    /// The best verdict for a flow that ends (FIN/RST, or the capture runs
    /// out) before a final one. `None` if it never carried payload.
    #[must_use]
    #[inline(always)]
    pub fn on_close(&self) -> Option<Verdict> {
        if self.segs[0] == 0 && self.segs[1] == 0 {
            return None;
        }
        Some(self.give_up())
    }

    #[inline(always)]
    fn give_up(&self) -> Verdict {
        let stage = self.stage;
        let v = if stage == Stage::AwaitServerHello as u8 || stage == Stage::AwaitClientHello as u8
        {
            // A ClientHello with no ServerHello, or an accepted upgrade with
            // no ClientHello yet: TLS all the same.
            Verdict::new(self.tls_protocol(), Encryption::Tls)
        } else if self.proto != 0 {
            Verdict::plaintext(self.protocol())
        } else if self.flags & F_TEXT != 0 {
            // Readable bytes from an application we do not name: custom TCP
            // services without TLS are exactly what we must not miss.
            Verdict::plaintext(Protocol::Unknown)
        } else {
            Verdict::new(Protocol::Unknown, Encryption::Unknown)
        };
        // STARTTLS asked and neither an answer nor a ClientHello seen (the
        // answer came past the segment budget, or the client gave up): no
        // TLS followed the request, so it was refused.
        let asked = registry::awaits_upgrade_answer(stage)
            & eq(v.encryption as u8, Encryption::Plaintext as u8);
        self.finish(v)
            .with_reason(Reason::StarttlsRefused.when(asked))
    }

    /// Adds the reasons the flow's history implies; `with_reason` keeps the
    /// most important one.
    ///
    /// Branch-free (as `with_reason`): the verdicts of every path then meet
    /// in one verifier state before the kernel emits them.
    #[inline(always)]
    fn finish(&self, v: Verdict) -> Verdict {
        let f = u32::from(self.flags);
        let enc = v.encryption as u8;
        let upgraded = bit(f, F_UPGRADED) & eq(enc, Encryption::Tls as u8);
        let refused = bit(f, F_REFUSED) & eq(enc, Encryption::Plaintext as u8);
        let midstream = bit(f, F_MIDSTREAM) & (1 ^ bit(f, F_OPENED));
        // Whatever follows (TLS through a proxy that was sent a password
        // in the clear, AUTH before STARTTLS), the secret crossed the
        // network readable: the flow is plaintext, named by the protocol
        // that carried the secret, and the default policy flags it.
        let credentials = bit(f, F_CREDENTIALS);
        let v = in_clear_if(v, credentials & eq(enc, Encryption::Tls as u8), self.proto);
        v.with_reason(Reason::StarttlsUpgraded.when(upgraded))
            .with_reason(Reason::CleartextCredentials.when(credentials))
            .with_reason(Reason::StarttlsRefused.when(refused))
            .with_reason(Reason::Midstream.when(midstream))
    }

    /// Stores the final verdict in the state and reads it back. In the
    /// kernel the state is map memory, whose contents the verifier does not
    /// track: the dozens of paths that end in different verdict constants
    /// meet here as one, instead of each walking the rest of the program
    /// (emit, close handling) on its own.
    #[inline(always)]
    fn settle(&mut self, v: Verdict) -> Verdict {
        self.proto = v.protocol as u8;
        self.encryption = v.encryption as u8;
        self.reason = v.reason as u8;
        self.tls_version = v.tls_version as u8;
        // SAFETY: reads of this struct's own fields.
        let (p, e, r, t) = unsafe {
            (
                core::ptr::read_volatile(&raw const self.proto),
                core::ptr::read_volatile(&raw const self.encryption),
                core::ptr::read_volatile(&raw const self.reason),
                core::ptr::read_volatile(&raw const self.tls_version),
            )
        };
        // SAFETY: each value is clamped to its enum's range (0 = Unknown /
        // None when out of range); every `repr(u8)` enum here is 0..=LAST.
        unsafe {
            Verdict {
                protocol: core::mem::transmute::<u8, Protocol>(in_range(p, LAST_PROTOCOL as u8)),
                encryption: core::mem::transmute::<u8, Encryption>(in_range(
                    e,
                    Encryption::Plaintext as u8,
                )),
                reason: core::mem::transmute::<u8, Reason>(in_range(
                    r,
                    Reason::ALL[Reason::ALL.len() - 1] as u8,
                )),
                tls_version: core::mem::transmute::<u8, TlsVersion>(in_range(
                    t,
                    TlsVersion::Tls13 as u8,
                )),
            }
        }
    }

    /// The protocol a TLS verdict names: the upgraded one, else `tls`.
    #[inline(always)]
    fn tls_protocol(&self) -> Protocol {
        if self.proto == 0 {
            Protocol::Tls
        } else {
            self.protocol()
        }
    }

    #[inline(always)]
    fn tls_verdict(&self, version: TlsVersion) -> Verdict {
        let mut v = Verdict::new(self.tls_protocol(), Encryption::Tls);
        v.tls_version = version;
        // SSL 2/3, TLS 1.0/1.1 (wire values 1..=4), without a branch.
        let weak = (0b1_1110 >> (version as u32)) & 1;
        v.with_reason(Reason::WeakTls.when(weak))
    }

    /// A ClientHello: directly, or after an in-band upgrade.
    #[inline(always)]
    fn client_hello(&mut self) {
        let stage = self.stage;
        if stage == Stage::Start as u8 {
            self.open();
        } else if self.flags & F_REFUSED != 0 {
            // The upgrade was refused and the client sends its hello anyway
            // (`openssl s_client -starttls` does, whatever the answer): the
            // server rejects it as a bad command, in cleartext. No TLS.
            return;
        } else if stage != Stage::AwaitServerHello as u8 {
            // After STARTTLS, `S`, an SSLRequest...: even if the answer was
            // not seen (sent before it arrived), TLS follows the protocol.
            self.flags |= F_UPGRADED;
            // Through a tunnel (SOCKS) the TLS is not the tunnel's protocol:
            // named `tls`; unless the tunnel carried a secret in the clear,
            // then the flow is plaintext and named by it (`finish`). A
            // mask, not a branch (see `finish`).
            let tunnel = registry::is_tunnel(stage) as u8;
            #[expect(clippy::cast_possible_truncation, reason = "0 or 1")]
            let secret = bit(u32::from(self.flags), F_CREDENTIALS) as u8;
            self.proto &= (tunnel & (secret ^ 1)).wrapping_sub(1);
        }
        self.stage = Stage::AwaitServerHello as u8;
    }

    /// A ClientHello was sent; TLS records were handled by the caller.
    #[inline(always)]
    fn await_server_hello(&mut self, side: Side, text: bool) -> (Verdict, Route) {
        if side == Side::Client {
            return (PENDING, Route::end(0));
        }
        if self.proto == 0 && text {
            // A TLS client answered in cleartext (SMTPS to a plain SMTP
            // port): the server's greeting decides (see `end`).
            self.stage = Stage::Start as u8;
            return (PENDING, Route::search(Route::REOPEN | Route::TEXT));
        }
        (
            Verdict::new(self.tls_protocol(), Encryption::Tls),
            Route::end(0),
        )
    }
}

/// Where a segment goes between the parts of `on_segment`: the kernel
/// carries it across its tail calls (in the per-CPU scratch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The family stage (`1..=STAGES`) that takes the segment next; 0 when
    /// none does and `end` comes.
    pub stage: u8,
    /// `Route::*` bits: what the stages do, what `end` must know.
    pub pass: u8,
}

impl Route {
    /// A search for the flow's protocol (openings, then mid-stream).
    pub const SEARCH: u8 = 1;
    /// The search has reached the mid-stream signatures.
    pub const MIDSTREAM: u8 = 2;
    /// The search answers a ClientHello that got a cleartext reply.
    pub const REOPEN: u8 = 4;
    /// A step of the dissector that claimed the flow.
    pub const STEP: u8 = 8;
    /// The segment is readable text.
    pub const TEXT: u8 = 16;
    /// Nothing to classify (empty, or the side's budget is spent).
    pub const IDLE: u8 = 32;
    /// A flow picked up mid-stream whose segment holds a TLS
    /// application-data record header: `tls` if no dissector names it.
    pub const TLS_TAIL: u8 = 64;

    #[inline(always)]
    const fn end(pass: u8) -> Self {
        Self { stage: 0, pass }
    }

    #[inline(always)]
    const fn search(pass: u8) -> Self {
        Self {
            stage: 1,
            pass: pass | Self::SEARCH,
        }
    }
}

/// What a dissector may do to the flow's state (its whole interface besides
/// returning a verdict).
impl FlowClassifier {
    /// Marks an opening message; it counts only as the flow's first segment.
    /// Call it, then build the verdict: a helper taking the verdict and
    /// calling this (`f.opens(v)`) cost 9-24% more verifier work, the
    /// verdict constants then live across this method's branch.
    #[inline(always)]
    fn open(&mut self) {
        if u16::from(self.segs[0]) + u16::from(self.segs[1]) == 1 {
            self.flags |= F_OPENED;
        }
    }

    /// `D` recognised `proto` by an opening message and waits at its
    /// `step`; its `opening` returns what this returns.
    #[must_use]
    #[inline(always)]
    fn opened<D: Registered>(&mut self, proto: Protocol, step: u8) -> Verdict {
        self.open();
        self.proto = proto as u8;
        self.goto::<D>(step);
        WAITING
    }

    /// Moves to `D`'s `step` (`0..D::STEPS`).
    #[inline(always)]
    fn goto<D: Registered>(&mut self, step: u8) {
        self.stage = D::BASE + step;
    }

    /// The server accepted an in-band TLS upgrade: the client's ClientHello
    /// comes next.
    #[inline(always)]
    fn upgrade_accepted(&mut self) {
        // A second request may succeed where a first was refused (curl's
        // FTP `AUTH SSL`, then `AUTH TLS`).
        self.flags = (self.flags | F_UPGRADED) & !F_REFUSED;
        self.stage = Stage::AwaitClientHello as u8;
    }

    /// The server refused an in-band TLS upgrade.
    #[inline(always)]
    fn upgrade_refused(&mut self) {
        self.flags |= F_REFUSED;
    }

    /// The ClientHello already went (with an upgrade request in the same
    /// segment): the ServerHello comes next.
    #[inline(always)]
    fn expect_server_hello(&mut self) {
        self.stage = Stage::AwaitServerHello as u8;
    }

    /// Back to trying opening messages (a refused negotiation the client
    /// follows with another opening).
    #[inline(always)]
    fn restart(&mut self) {
        self.stage = Stage::Start as u8;
    }

    /// The client sent payload, or the flow was picked up mid-stream (so it
    /// may have): a reply can answer something.
    #[inline(always)]
    fn client_spoke(&self) -> bool {
        self.segs[0] != 0 || self.flags & F_MIDSTREAM != 0
    }

    /// The protocol recognised so far, `Unknown` if none.
    #[inline(always)]
    fn protocol(&self) -> Protocol {
        proto_from_u8(self.proto)
    }

    /// Names the protocol (a dissector that learns it after `opened`).
    #[inline(always)]
    fn name(&mut self, proto: Protocol) {
        self.proto = proto as u8;
    }
}

/// `v` if `v <= last`, else 0; branch-free.
#[inline(always)]
const fn in_range(v: u8, last: u8) -> u8 {
    // All ones when v <= last.
    let ok = (((v as i16) - (last as i16) - 1) >> 8) as u8;
    v & ok
}

/// 1 if `flag` is set in `flags`, else 0; branch-free.
#[inline(always)]
const fn bit(flags: u32, flag: u8) -> u32 {
    (flags / flag as u32) & 1
}

/// 1 if `a == b`, else 0; branch-free.
#[inline(always)]
const fn eq(a: u8, b: u8) -> u32 {
    ((a ^ b) as u32).wrapping_sub(1) >> 31
}

/// When `on` is 1: `v` as `plaintext` (no TLS version), named `proto`
/// (`Protocol` as u8) if that is not 0; else `v`. Branch-free (see
/// `finish`).
#[inline(always)]
fn in_clear_if(v: Verdict, on: u32, proto: u8) -> Verdict {
    #[expect(clippy::cast_possible_truncation, reason = "0 or 1")]
    let on = 0u8.wrapping_sub(on as u8);
    #[expect(clippy::cast_possible_truncation, reason = "0 or 1")]
    let named = on & !0u8.wrapping_sub(eq(proto, 0) as u8);
    let (p, e) = (v.protocol as u8, v.encryption as u8);
    let p = p ^ ((p ^ proto) & named);
    let e = e ^ ((e ^ Encryption::Plaintext as u8) & on);
    let t = v.tls_version as u8 & !on;
    // SAFETY: each byte is the verdict's own value or, where `on`/`named`
    // picked it, a valid one: `proto` is a stored `Protocol`, `Plaintext`
    // an `Encryption`, 0 `TlsVersion::Unknown`.
    unsafe {
        Verdict {
            protocol: core::mem::transmute::<u8, Protocol>(p),
            encryption: core::mem::transmute::<u8, Encryption>(e),
            reason: v.reason,
            tls_version: core::mem::transmute::<u8, TlsVersion>(t),
        }
    }
}

impl Reason {
    /// `self` when `on` is 1, `Reason::None` when it is 0; branch-free.
    #[inline(always)]
    const fn when(self, on: u32) -> Reason {
        let v = (self as u8) * (on as u8);
        // SAFETY: `v` is 0 (`Reason::None`) or `self`'s own value.
        unsafe { core::mem::transmute::<u8, Reason>(v) }
    }
}

const LAST_PROTOCOL: Protocol = Protocol::ALL[Protocol::ALL.len() - 1];

/// `Protocol::from_u8` without an `Option` (see the note on inlining above)
/// and without a branch per variant: each would be a path for the verifier.
#[inline(always)]
fn proto_from_u8(v: u8) -> Protocol {
    const LAST: Protocol = LAST_PROTOCOL;
    const _: () = {
        // The variants are exactly 0..=LAST, so every such byte is one.
        let mut i = 0;
        while i < Protocol::ALL.len() {
            assert!(Protocol::ALL[i] as usize == i);
            i += 1;
        }
    };
    if v > LAST as u8 {
        return Protocol::Unknown;
    }
    // SAFETY: `Protocol` is `repr(u8)` with the variants 0..=LAST (checked
    // above), and v is in that range.
    unsafe { core::mem::transmute::<u8, Protocol>(v) }
}

#[cfg(test)]
mod tests;
