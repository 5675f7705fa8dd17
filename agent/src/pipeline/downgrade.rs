//! Downgrades: a path (client, server, server port) whose flows were
//! better protected earlier within the edges' window — TLS, then
//! plaintext; a TLS version, then a lower one; mutual TLS, then
//! server-only — gets one `downgrade` event per change (README
//! "Downgrades").
//!
//! Per path, not per edge: an edge's key holds its encryption and
//! protocol, so TLS and plaintext flows of one path are two edges. The
//! event is counted on the edge of the flow that got worse.
//!
//! Bounded like the edges: at most `max` paths (the edge cap); when full,
//! paths not seen within the window make room, else a new path is not
//! followed (its flows raise no downgrade; counted in `untracked`).

use super::client_auth::ClientAuth;
use agent_common::{Encryption, TlsVersion, Verdict};
use hashbrown::{Equivalent, HashMap};
use std::{
    hash::{Hash, Hasher, RandomState},
    sync::Arc,
};

/// What got worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A plaintext flow where TLS flows were seen.
    Plaintext,
    /// A TLS flow with a lower version than one seen before.
    TlsVersion,
    /// A server-only TLS flow where mutual TLS was seen.
    ClientAuth,
}

impl Kind {
    pub const ALL: [Self; 3] = [Self::Plaintext, Self::TlsVersion, Self::ClientAuth];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::TlsVersion => "tls_version",
            Self::ClientAuth => "client_auth",
        }
    }
}

/// One downgrade: its kind and what changed (for the log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downgrade {
    pub kind: Kind,
    pub from: &'static str,
    pub to: &'static str,
}

/// The best a path showed, and when (ns) it last did.
#[derive(Clone, Copy, Debug, Default)]
struct Best {
    tls_ns: Option<i64>,
    version: Option<(TlsVersion, i64)>,
    mutual_ns: Option<i64>,
    last_ns: i64,
}

type Path = (Arc<str>, Arc<str>, u16);

/// A path's names borrowed: a flow of a known path is found with one hash
/// and no reference count touched (the owned key is made only for a new
/// path). Hashes as `Path` does: a tuple hashes its fields in order, an
/// `Arc<str>` as its `str`.
struct PathRef<'a>(&'a str, &'a str, u16);

impl Hash for PathRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0, self.1, self.2).hash(state);
    }
}

impl Equivalent<Path> for PathRef<'_> {
    fn equivalent(&self, key: &Path) -> bool {
        self.2 == key.2 && *self.0 == *key.0 && *self.1 == *key.1
    }
}

pub struct Downgrades {
    /// `RandomState`: names can be addresses peers choose.
    paths: HashMap<Path, Best, RandomState>,
    max: usize,
    window_ns: i64,
    /// Flows of paths not followed because `max` paths were.
    pub untracked: u64,
}

impl Downgrades {
    #[must_use]
    pub fn new(max: usize, window_ns: i64) -> Self {
        Self {
            paths: HashMap::default(),
            max,
            window_ns,
            untracked: 0,
        }
    }

    /// Notes one flow of the path; the downgrades it shows (each kind at
    /// most once). After a downgrade the better state is forgotten, so a
    /// path that stays worse raises one event, not one per flow.
    pub fn observe(
        &mut self,
        path: (&Arc<str>, &Arc<str>, u16),
        v: &Verdict,
        auth: Option<ClientAuth>,
        ts_ns: i64,
    ) -> Vec<Downgrade> {
        let window = self.window_ns;
        let recent = |t: Option<i64>| t.is_some_and(|t| ts_ns.saturating_sub(t) < window);
        let borrowed = PathRef(path.0, path.1, path.2);
        if self.paths.len() >= self.max && !self.paths.contains_key(&borrowed) {
            self.paths
                .retain(|_, b| ts_ns.saturating_sub(b.last_ns) < window);
            if self.paths.len() >= self.max {
                self.untracked += 1;
                return Vec::new();
            }
        }
        let b = match self.paths.get_mut(&borrowed) {
            Some(b) => b,
            None => self
                .paths
                .entry((path.0.clone(), path.1.clone(), path.2))
                .or_default(),
        };
        b.last_ns = ts_ns;
        let mut out = Vec::new();
        match v.encryption {
            Encryption::Plaintext => {
                if recent(b.tls_ns) {
                    out.push(Downgrade {
                        kind: Kind::Plaintext,
                        from: Encryption::Tls.as_str(),
                        to: Encryption::Plaintext.as_str(),
                    });
                }
                *b = Best {
                    last_ns: ts_ns,
                    ..Best::default()
                };
            }
            Encryption::Tls => {
                b.tls_ns = Some(ts_ns);
                let now = v.tls_version;
                if now != TlsVersion::Unknown {
                    match b.version {
                        Some((best, t)) if (now as u8) < (best as u8) && recent(Some(t)) => {
                            out.push(Downgrade {
                                kind: Kind::TlsVersion,
                                from: best.as_str(),
                                to: now.as_str(),
                            });
                            b.version = Some((now, ts_ns));
                        }
                        Some((best, _)) if (now as u8) < (best as u8) => {
                            b.version = Some((now, ts_ns));
                        }
                        _ => b.version = Some((now, ts_ns)),
                    }
                }
                match auth {
                    Some(ClientAuth::Mutual) => b.mutual_ns = Some(ts_ns),
                    Some(ClientAuth::ServerOnly) => {
                        if recent(b.mutual_ns) {
                            out.push(Downgrade {
                                kind: Kind::ClientAuth,
                                from: ClientAuth::Mutual.as_str(),
                                to: ClientAuth::ServerOnly.as_str(),
                            });
                        }
                        b.mutual_ns = None;
                    }
                    _ => {}
                }
            }
            Encryption::Unknown | Encryption::Encrypted => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::Protocol;

    const S: i64 = 1_000_000_000;

    fn tls(v: TlsVersion) -> Verdict {
        Verdict {
            tls_version: v,
            ..Verdict::new(Protocol::Tls, Encryption::Tls)
        }
    }

    fn kinds(d: &[Downgrade]) -> Vec<Kind> {
        d.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn a_borrowed_path_finds_its_owned_key() {
        use std::hash::BuildHasher;
        let owned: Path = ("web".into(), "payments".into(), 443);
        let s = RandomState::new();
        assert_eq!(
            s.hash_one(PathRef("web", "payments", 443)),
            s.hash_one(&owned)
        );
        assert!(PathRef("web", "payments", 443).equivalent(&owned));
        assert!(!PathRef("web", "payments", 80).equivalent(&owned));
        assert!(!PathRef("payments", "web", 443).equivalent(&owned));
        // One entry per path however often it is seen.
        let mut d = Downgrades::new(10, 60 * S);
        let (c, v): (Arc<str>, Arc<str>) = ("web".into(), "payments".into());
        for t in 0..3 {
            d.observe((&c, &v, 443), &tls(TlsVersion::Tls13), None, t * S);
        }
        assert_eq!(d.paths.len(), 1);
    }

    #[test]
    fn tls_then_plaintext_is_one_downgrade_within_the_window() {
        let (c, s): (Arc<str>, Arc<str>) = ("web".into(), "payments".into());
        let mut d = Downgrades::new(10, 60 * S);
        let p = (&c, &s, 443);
        assert!(d.observe(p, &tls(TlsVersion::Tls13), None, 0).is_empty());
        let got = d.observe(p, &Verdict::plaintext(Protocol::Http), None, S);
        assert_eq!(
            got,
            vec![Downgrade {
                kind: Kind::Plaintext,
                from: "tls",
                to: "plaintext"
            }]
        );
        // Still plaintext: no second event.
        assert!(
            d.observe(p, &Verdict::plaintext(Protocol::Http), None, 2 * S)
                .is_empty()
        );
        // TLS again, then plaintext after the window: none.
        d.observe(p, &tls(TlsVersion::Tls13), None, 3 * S);
        assert!(
            d.observe(p, &Verdict::plaintext(Protocol::Http), None, 64 * S)
                .is_empty()
        );
        // Another port is another path.
        d.observe((&c, &s, 443), &tls(TlsVersion::Tls13), None, 70 * S);
        assert!(
            d.observe(
                (&c, &s, 80),
                &Verdict::plaintext(Protocol::Http),
                None,
                71 * S
            )
            .is_empty()
        );
    }

    #[test]
    fn lower_version_and_server_only_after_mutual() {
        let (c, s): (Arc<str>, Arc<str>) = ("web".into(), "db".into());
        let mut d = Downgrades::new(10, 60 * S);
        let p = (&c, &s, 5432);
        d.observe(p, &tls(TlsVersion::Tls12), Some(ClientAuth::Mutual), 0);
        let got = d.observe(p, &tls(TlsVersion::Tls10), Some(ClientAuth::ServerOnly), S);
        assert_eq!(
            got[0],
            Downgrade {
                kind: Kind::TlsVersion,
                from: "1.2",
                to: "1.0"
            }
        );
        assert_eq!(kinds(&got), [Kind::TlsVersion, Kind::ClientAuth]);
        // Unknown version or client auth proves nothing either way.
        assert!(
            d.observe(
                p,
                &tls(TlsVersion::Unknown),
                Some(ClientAuth::Unknown),
                2 * S
            )
            .is_empty()
        );
        assert!(
            d.observe(
                p,
                &tls(TlsVersion::Tls10),
                Some(ClientAuth::ServerOnly),
                3 * S
            )
            .is_empty()
        );
        // Upgrades are not events.
        assert!(
            d.observe(p, &tls(TlsVersion::Tls13), Some(ClientAuth::Mutual), 4 * S)
                .is_empty()
        );
    }

    #[test]
    fn bounded_by_the_cap_stale_paths_make_room() {
        let names: Vec<Arc<str>> = (0..3).map(|i| Arc::from(format!("s{i}"))).collect();
        let c: Arc<str> = "c".into();
        let mut d = Downgrades::new(2, 60 * S);
        d.observe((&c, &names[0], 1), &tls(TlsVersion::Tls13), None, 0);
        d.observe((&c, &names[1], 1), &tls(TlsVersion::Tls13), None, 0);
        d.observe((&c, &names[2], 1), &tls(TlsVersion::Tls13), None, S);
        assert_eq!(d.untracked, 1);
        d.observe((&c, &names[2], 1), &tls(TlsVersion::Tls13), None, 61 * S);
        assert_eq!(d.untracked, 1);
        assert!(d.paths.len() <= 2);
    }
}
