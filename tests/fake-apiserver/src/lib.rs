//! A local stand-in for the Kubernetes API server (no cluster exists on our
//! machines): real HTTP/1.1 over TCP speaking the list+watch protocol of
//! core/v1 pods, services and nodes.
//!
//! - `GET /api/v1/pods?limit=N[&continue=T]`: a `PodList` page, with
//!   `metadata.resourceVersion` and a `continue` token while more remain.
//! - `GET /api/v1/pods?watch=1&resourceVersion=X&allowWatchBookmarks=true`:
//!   a chunked stream of `{"type":...,"object":...}` lines, starting with
//!   every event after X; a version older than the last compaction gets the
//!   API server's `ERROR` event with a 410 `Expired` Status.
//!   It ends at the request's `timeoutSeconds`, as the API server does.
//! - A bearer token is required when set, with a 401 Status otherwise.
//!
//! Tests drive it: `apply` an event, `bookmark`, `break_watches` (connections
//! dropped mid-stream, no terminating chunk), `compact` (history gone, like
//! etcd compaction), `stall` (accept and stop answering, in one of the ways
//! in [`Stall`]), and read the request log. `write_kubeconfig` points a
//! client (the agent's library, or the `plainsight` binary) at it.
//!
//! Shared by the agent's identity-source tests (async, on their own tokio
//! runtime) and the end-to-end tests in `tests/` (synchronous: `hosted`
//! runs it on a runtime of its own).

pub mod fixtures;

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const RESOURCES: [&str; 3] = ["pods", "services", "nodes"];

/// How a stalled server stops answering. A stalled connection stays open,
/// silent, until `break_watches` or the server's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// Every request is read and never answered: no status line.
    Headers,
    /// Lists send their headers and half their body, then nothing.
    ListBody,
    /// Watches send their headers, then nothing: no event, no bookmark,
    /// no end at `timeoutSeconds`.
    Watch,
}

#[derive(Default)]
struct Store {
    /// By uid; BTreeMap so pages are stable.
    objects: BTreeMap<String, Value>,
    /// (resourceVersion, type, object)
    events: Vec<(u64, &'static str, Value)>,
}

#[derive(Default)]
struct State {
    version: u64,
    /// Watches from a version below this get 410 Gone.
    compacted: u64,
    stores: HashMap<&'static str, Store>,
    requests: Vec<String>,
    token: Option<String>,
    /// Highest version written to a watch stream, per resource.
    delivered: HashMap<&'static str, u64>,
    /// Bumped by `break_watches`: open watches drop their connection.
    generation: u64,
    stall: Option<Stall>,
}

pub struct FakeApiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tick: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        self.break_watches();
    }
}

impl FakeApiServer {
    pub async fn start() -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_at(addr: SocketAddr) -> Self {
        Self::start_with(addr, None).await
    }

    /// HTTPS with `tls` (server certificate, maybe client verification).
    pub async fn start_tls(tls: rustls::ServerConfig) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        Self::start_with("127.0.0.1:0".parse().unwrap(), Some(acceptor)).await
    }

    async fn start_with(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("binding the fake API server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            version: 1000,
            ..State::default()
        }));
        let (tick, _) = watch::channel(0);
        let task = {
            let state = Arc::clone(&state);
            let tick = tick.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = Arc::clone(&state);
                    let ticks = tick.subscribe();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let _ = match tls {
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => serve(stream, state, ticks).await,
                                Err(_) => Ok(()),
                            },
                            None => serve(stream, state, ticks).await,
                        };
                    });
                }
            })
        };
        Self {
            addr,
            state,
            tick,
            task,
        }
    }

    fn notify(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    pub fn set_token(&self, token: &str) {
        self.state.lock().unwrap().token = Some(token.to_owned());
    }

    /// ADDED, MODIFIED or DELETED `object` (keyed by its uid) at the next
    /// resourceVersion. Returns that version.
    pub fn apply(&self, resource: &'static str, kind: &'static str, object: Value) -> u64 {
        let version = apply(&mut self.state.lock().unwrap(), resource, kind, object);
        self.notify();
        version
    }

    /// Atomically: drops every open watch mid-stream, applies `changes`,
    /// and with `compact` forgets all history, so a client resuming from
    /// its last version must re-list to learn them.
    pub fn while_disconnected(
        &self,
        changes: Vec<(&'static str, &'static str, Value)>,
        compact: bool,
    ) {
        {
            let mut s = self.state.lock().unwrap();
            s.generation += 1;
            for (resource, kind, object) in changes {
                apply(&mut s, resource, kind, object);
            }
            if compact {
                compact_history(&mut s);
            }
        }
        self.notify();
    }

    /// Objects present before any client connects: no events, as after a
    /// compaction.
    pub fn preload(&self, resource: &'static str, objects: impl IntoIterator<Item = Value>) {
        for o in objects {
            self.apply(resource, "ADDED", o);
        }
        self.compact_history();
    }

    /// A BOOKMARK on every resource at a new version. Returns it.
    pub fn bookmark(&self) -> u64 {
        let version = {
            let mut s = self.state.lock().unwrap();
            s.version += 1;
            let version = s.version;
            for r in RESOURCES {
                let kind = match r {
                    "pods" => "Pod",
                    "services" => "Service",
                    _ => "Node",
                };
                s.stores.entry(r).or_default().events.push((
                    version,
                    "BOOKMARK",
                    json!({"kind": kind, "apiVersion": "v1",
                           "metadata": {"resourceVersion": version.to_string(),
                                        "creationTimestamp": null}}),
                ));
            }
            version
        };
        self.notify();
        version
    }

    /// From now on, new requests stall as `stall` says (`None`: answer
    /// again). Connections already stalled stay so.
    pub fn stall(&self, stall: Option<Stall>) {
        self.state.lock().unwrap().stall = stall;
    }

    /// Drops every open watch connection mid-stream.
    pub fn break_watches(&self) {
        self.state.lock().unwrap().generation += 1;
        self.notify();
    }

    /// Forgets all history: a watch from any version seen so far gets 410.
    pub fn compact_history(&self) {
        compact_history(&mut self.state.lock().unwrap());
    }

    /// The highest version written to a watch of `resource`.
    pub fn delivered(&self, resource: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .delivered
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Writes a kubeconfig at `path` whose current context is the (http://)
/// server at `addr`, with `token` as its bearer token when given.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr, token: Option<&str>) {
    let user = token.map_or_else(|| "{}".to_owned(), |t| format!("{{token: {t}}}"));
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{{name: fake, cluster: {{server: 'http://{addr}'}}}}]\n\
             users: [{{name: robot, user: {user}}}]\n\
             contexts: [{{name: test, context: {{cluster: fake, user: robot}}}}]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The server on a runtime of its own, for synchronous tests: every
/// driving method works from any thread. Dropping it stops both.
pub struct Hosted {
    // Declared first: dropped (connections closed) before the runtime.
    server: FakeApiServer,
    _runtime: tokio::runtime::Runtime,
}

impl std::ops::Deref for Hosted {
    type Target = FakeApiServer;
    fn deref(&self) -> &FakeApiServer {
        &self.server
    }
}

/// Starts a server on 127.0.0.1 (a free port) on its own runtime.
pub fn hosted() -> Hosted {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the fake API server");
    let server = runtime.block_on(FakeApiServer::start());
    Hosted {
        server,
        _runtime: runtime,
    }
}

fn apply(s: &mut State, resource: &'static str, kind: &'static str, mut object: Value) -> u64 {
    s.version += 1;
    let version = s.version;
    object["metadata"]["resourceVersion"] = json!(version.to_string());
    let uid = object["metadata"]["uid"].as_str().expect("uid").to_owned();
    let store = s.stores.entry(resource).or_default();
    if kind == "DELETED" {
        store.objects.remove(&uid);
    } else {
        store.objects.insert(uid, object.clone());
    }
    store.events.push((version, kind, object));
    version
}

fn compact_history(s: &mut State) {
    s.compacted = s.version + 1;
    for store in s.stores.values_mut() {
        store.events.clear();
    }
}

fn query(target: &str) -> HashMap<String, String> {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect()
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).expect("percent escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 query")
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    body: &Value,
) -> std::io::Result<()> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await
}

async fn chunk<S: AsyncWrite + Unpin>(stream: &mut S, line: &Value) -> std::io::Result<()> {
    let data = format!("{line}\n");
    stream
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: Arc<Mutex<State>>,
    mut ticks: watch::Receiver<u64>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let path = target.split('?').next().unwrap_or("");
    let q = query(&target);
    let (resource, generation, expected, stall) = {
        let mut s = state.lock().unwrap();
        s.requests.push(target.clone());
        let resource = RESOURCES
            .into_iter()
            .find(|r| path == format!("/api/v1/{r}"));
        (resource, s.generation, s.token.clone(), s.stall)
    };
    let watching = q.get("watch").map(String::as_str) == Some("1");
    match stall {
        Some(Stall::Headers) => return hold(&state, generation, ticks).await,
        Some(Stall::ListBody) if !watching => {
            let body = list(&state, resource.unwrap_or("pods"), &q).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body.as_bytes()[..body.len() / 2]).await?;
            stream.flush().await?;
            return hold(&state, generation, ticks).await;
        }
        _ => {}
    }
    if let Some(token) = expected
        && authorization != Some(format!("Bearer {token}"))
    {
        return respond(
            &mut stream,
            401,
            &status(401, "Unauthorized", "Unauthorized"),
        )
        .await;
    }
    let Some(resource) = resource else {
        return respond(
            &mut stream,
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        )
        .await;
    };
    if !watching {
        let body = list(&state, resource, &q);
        return respond(&mut stream, 200, &body).await;
    }
    let mut sent: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .expect("watch without a numeric resourceVersion");
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await?;
    if stall == Some(Stall::Watch) {
        stream.flush().await?;
        return hold(&state, generation, ticks).await;
    }
    let ends = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(|t| tokio::time::Instant::now() + std::time::Duration::from_secs(t));
    loop {
        let (pending, gone, broken) = {
            let s = state.lock().unwrap();
            let pending: Vec<Value> = s
                .stores
                .get(resource)
                .map(|st| {
                    st.events
                        .iter()
                        .filter(|(v, _, _)| *v > sent)
                        .map(|(_, t, o)| json!({"type": t, "object": o}))
                        .collect()
                })
                .unwrap_or_default();
            (
                pending,
                sent < s.compacted.saturating_sub(1),
                s.generation != generation,
            )
        };
        if broken {
            // Mid-stream: no terminating chunk.
            return Ok(());
        }
        if gone {
            let msg = format!("too old resource version: {sent}");
            chunk(
                &mut stream,
                &json!({"type": "ERROR", "object": status(410, "Expired", &msg)}),
            )
            .await?;
            return stream.write_all(b"0\r\n\r\n").await;
        }
        for event in pending {
            sent = event["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(sent);
            chunk(&mut stream, &event).await?;
            let mut s = state.lock().unwrap();
            let d = s.delivered.entry(resource).or_default();
            *d = (*d).max(sent);
        }
        let timed_out = async {
            match ends {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = ticks.changed() => if changed.is_err() {
                return Ok(());
            },
            () = timed_out => return stream.write_all(b"0\r\n\r\n").await,
        }
    }
}

/// A stalled connection: open and silent until `break_watches` or the
/// server's end.
async fn hold(
    state: &Mutex<State>,
    generation: u64,
    mut ticks: watch::Receiver<u64>,
) -> std::io::Result<()> {
    while state.lock().unwrap().generation == generation {
        if ticks.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}

fn list(state: &Mutex<State>, resource: &str, q: &HashMap<String, String>) -> Value {
    let s = state.lock().unwrap();
    let objects: Vec<&Value> = s
        .stores
        .get(resource)
        .map(|st| st.objects.values().collect())
        .unwrap_or_default();
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let offset: usize = q
        .get("continue")
        .map(|c| {
            c.strip_prefix("offset=")
                .expect("our continue token")
                .parse()
                .unwrap()
        })
        .unwrap_or(0);
    let end = offset.saturating_add(limit).min(objects.len());
    let mut metadata = json!({"resourceVersion": s.version.to_string()});
    if end < objects.len() {
        metadata["continue"] = json!(format!("offset={end}"));
        metadata["remainingItemCount"] = json!(objects.len() - end);
    }
    let kind = match resource {
        "pods" => "PodList",
        "services" => "ServiceList",
        _ => "NodeList",
    };
    json!({"kind": kind, "apiVersion": "v1", "metadata": metadata,
           "items": objects[offset..end]})
}
