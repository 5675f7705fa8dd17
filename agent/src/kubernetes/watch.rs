//! The list+watch loop of one resource, as client-go's reflector does it:
//!
//! 1. List (paginated, `limit` objects per page) and make the index's
//!    objects of that resource exactly the listed ones; remember the list's
//!    `resourceVersion`.
//! 2. Watch from that version with bookmarks on, applying ADDED, MODIFIED
//!    and DELETED as they stream in and moving the version forward with
//!    every event and bookmark.
//! 3. When the watch ends (server timeout, broken connection, error), watch
//!    again from the last version: nothing is missed and nothing re-listed.
//!    The server ends a watch at its `timeoutSeconds`; one still open
//!    `stall_margin` later has stalled (a half-open connection, or a server
//!    that sends nothing, not even bookmarks) and is given up the same way.
//!    Stalls (this, and requests the transport gave up on) are counted.
//!    When the server answers 410 Gone (the version was compacted away),
//!    list again. Errors wait an exponential, capped, jittered delay first.
//!
//! Lists never set `resourceVersion=0`: that would let the API server's
//! watch cache answer, which ignores `limit` and returns every pod of the
//! cluster in one response, whose raw JSON (several KiB per pod) is the
//! largest transient allocation the agent would ever make. Paginated
//! consistent lists keep it at one page; since Kubernetes 1.31 the API
//! server serves them from its cache too.
//!
//! Through all of this the index keeps its last state: lookups never wait
//! for the API server.

use super::backoff::{Backoff, random_unit};
use super::health::KubeHealth;
use super::index::{IpIndex, Source};
use super::kubeconfig::KubeConfig;
use super::objects::{List, Node, ObjectMeta, Pod, Service, WatchEvent};
use super::owner::{self, Claim};
use super::transport::{BodyError, GetBodyError, Transport, TransportError};
use http_body_util::BodyExt as _;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Guards against a runaway response: a list page is `page_size` objects
/// (500 pods are a few MiB), a watch line is one object.
const MAX_BODY_BYTES: usize = 256 << 20;

/// A watched kind: its API path, and how its objects claim IPs.
pub trait Watched: DeserializeOwned + Send + 'static {
    const SOURCE: Source;
    const PATH: &'static str;
    /// Extra query (already encoded), e.g. a field selector.
    const QUERY: &'static str = "";
    fn meta(&self) -> &ObjectMeta;
    fn claim(&self) -> Option<Claim>;
}

impl Watched for Pod {
    const SOURCE: Source = Source::Pods;
    const PATH: &'static str = "/api/v1/pods";
    /// Finished pods hold no IP: the API server does not even send them
    /// (and sends DELETED when a pod finishes).
    /// `status.phase!=Succeeded,status.phase!=Failed`
    const QUERY: &'static str =
        "&fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn claim(&self) -> Option<Claim> {
        owner::pod(self)
    }
}

impl Watched for Service {
    const SOURCE: Source = Source::Services;
    const PATH: &'static str = "/api/v1/services";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn claim(&self) -> Option<Claim> {
        owner::service(self)
    }
}

impl Watched for Node {
    const SOURCE: Source = Source::Nodes;
    const PATH: &'static str = "/api/v1/nodes";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn claim(&self) -> Option<Claim> {
        owner::node(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("reading the response: {0}")]
    Body(#[from] hyper::Error),
    #[error("response larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("undecodable response: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("watch error from the server: {code} {reason}: {message}")]
    Server {
        code: u16,
        reason: String,
        message: String,
    },
    #[error(
        "watch still open {0:?} after it started, past its timeoutSeconds: the API server stalled"
    )]
    Stalled(Duration),
    #[error("resourceVersion expired (410 Gone)")]
    Gone,
}

/// A body that could not be read whole keeps the watch's own messages.
impl From<BodyError> for WatchError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Read(e) => Self::Body(e),
            BodyError::TooLarge => Self::TooLarge,
        }
    }
}

impl From<GetBodyError> for WatchError {
    fn from(e: GetBodyError) -> Self {
        match e {
            GetBodyError::Transport(e) => Self::from_transport(e),
            GetBodyError::Body(e) => e.into(),
        }
    }
}

impl WatchError {
    /// The server accepted and then stopped answering.
    const fn is_stall(&self) -> bool {
        match self {
            Self::Transport(e) => e.is_stall(),
            Self::Stalled(_) => true,
            _ => false,
        }
    }

    fn from_transport(e: TransportError) -> Self {
        match e {
            TransportError::Status {
                status: StatusCode::GONE,
                ..
            } => Self::Gone,
            e => Self::Transport(e),
        }
    }
}

/// Runs forever (until its task is aborted).
pub async fn run<T: Watched>(
    transport: Arc<Transport>,
    index: Arc<RwLock<IpIndex>>,
    health: KubeHealth,
    config: KubeConfig,
) {
    let source = T::SOURCE;
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let mut version: Option<String> = None;
    loop {
        let from = match version.take() {
            Some(v) => v,
            None => match list::<T>(&transport, &index, config.page_size).await {
                Ok(v) => {
                    health.listed(source);
                    health.set_objects(source, read(&index).count(source));
                    log::info!(
                        "kubernetes: listed {} at resourceVersion {v}",
                        source.resource()
                    );
                    v
                }
                Err(e) => {
                    health.error(source, e.is_stall());
                    let delay = backoff.next_delay();
                    log::warn!(
                        "kubernetes: listing {}: {e}; retrying in {delay:?}",
                        source.resource()
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        let mut cursor = Cursor {
            version: from,
            events: 0,
        };
        let timeout = config.watch_timeout.mul_f64(1.0 + random_unit());
        let result = watch::<T>(
            &transport,
            &index,
            &health,
            &mut cursor,
            timeout,
            config.stall_margin,
        )
        .await;
        // A watch that made progress proves the server healthy: whatever
        // ended it, retry at once-ish rather than after earlier failures.
        if cursor.events > 0 {
            backoff.reset();
        }
        match result {
            Ok(()) if cursor.events > 0 => {}
            // An empty watch: do not spin on a server that closes every
            // watch at once.
            Ok(()) => tokio::time::sleep(backoff.next_delay()).await,
            Err(WatchError::Gone) => {
                log::info!(
                    "kubernetes: {} resourceVersion {} expired; listing again",
                    source.resource(),
                    cursor.version
                );
                health.restarted(source);
                continue;
            }
            Err(e) => {
                health.error(source, e.is_stall());
                let delay = backoff.next_delay();
                log::warn!(
                    "kubernetes: watching {} from resourceVersion {}: {e}; resuming in {delay:?}",
                    source.resource(),
                    cursor.version
                );
                tokio::time::sleep(delay).await;
            }
        }
        health.restarted(source);
        version = Some(cursor.version);
    }
}

struct Cursor {
    version: String,
    events: u64,
}

fn read(index: &RwLock<IpIndex>) -> std::sync::RwLockReadGuard<'_, IpIndex> {
    // A panic while holding the lock leaves the index consistent enough
    // (each operation is small); keep serving it.
    index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(index: &RwLock<IpIndex>) -> std::sync::RwLockWriteGuard<'_, IpIndex> {
    index
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lists every page, then replaces the resource's objects in one write.
/// Returns the list's resourceVersion.
async fn list<T: Watched>(
    transport: &Transport,
    index: &RwLock<IpIndex>,
    page_size: u32,
) -> Result<String, WatchError> {
    let mut claims = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("{}?limit={page_size}{}", T::PATH, T::QUERY);
        if let Some(token) = &next {
            path.push_str("&continue=");
            path.push_str(&encode(token));
        }
        let page: List<T> =
            serde_json::from_slice(&transport.get_body(&path, MAX_BODY_BYTES).await?)?;
        claims.extend(page.items.iter().map(|o| (o.meta().uid.clone(), o.claim())));
        match page.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(token) => next = Some(token),
            None => {
                write(index).replace(T::SOURCE, claims);
                return Ok(page.metadata.resource_version.unwrap_or_default());
            }
        }
    }
}

/// Streams one watch, applying its events, until the server ends it
/// (`Ok`) or something fails: by `timeoutSeconds` + `margin` at the latest.
async fn watch<T: Watched>(
    transport: &Transport,
    index: &RwLock<IpIndex>,
    health: &KubeHealth,
    cursor: &mut Cursor,
    timeout: Duration,
    margin: Duration,
) -> Result<(), WatchError> {
    let seconds = timeout.as_secs().max(1);
    let path = format!(
        "{}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={seconds}{}",
        T::PATH,
        encode(&cursor.version),
        T::QUERY
    );
    // One deadline for the whole stream, not an idle timer per read: a
    // server trickling a byte now and then must not hold a watch open.
    let allowed = Duration::from_secs(seconds) + margin;
    let deadline = tokio::time::Instant::now() + allowed;
    let mut body = transport
        .get(&path)
        .await
        .map_err(WatchError::from_transport)?
        .into_body();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(WatchError::Stalled(allowed)),
            Ok(None) => return Ok(()),
            Ok(Some(frame)) => frame?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + end];
            start += end + 1;
            if !line.iter().all(u8::is_ascii_whitespace) {
                apply::<T>(serde_json::from_slice(line)?, index, health, cursor)?;
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_BODY_BYTES {
            return Err(WatchError::TooLarge);
        }
    }
}

fn apply<T: Watched>(
    event: WatchEvent<T>,
    index: &RwLock<IpIndex>,
    health: &KubeHealth,
    cursor: &mut Cursor,
) -> Result<(), WatchError> {
    let source = T::SOURCE;
    let version = match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            write(index).upsert(source, &o.meta().uid, o.claim());
            o.meta().resource_version.clone()
        }
        WatchEvent::Deleted(o) => {
            write(index).remove(source, &o.meta().uid);
            o.meta().resource_version.clone()
        }
        WatchEvent::Bookmark(b) => b.metadata.resource_version,
        WatchEvent::Error(status) if status.is_gone() => return Err(WatchError::Gone),
        WatchEvent::Error(status) => {
            return Err(WatchError::Server {
                code: status.code,
                reason: status.reason,
                message: status.message,
            });
        }
    };
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        cursor.version = v;
    }
    cursor.events += 1;
    health.set_objects(source, read(index).count(source));
    health.synced(source);
    Ok(())
}
/// Percent-encodes a query value (continue tokens are base64; versions
/// are opaque strings).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::encode("eyJ2Ijo+/x=="), "eyJ2Ijo%2B%2Fx%3D%3D");
        assert_eq!(super::encode("48213"), "48213");
    }
}
