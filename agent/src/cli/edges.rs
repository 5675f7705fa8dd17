//! `plainsight edges`: the live edge table of a running agent, fetched
//! from its `/api/v1/edges` with a minimal HTTP/1.1 client, over TLS
//! (rustls, already in the binary for Kubernetes) when the URL is https.

use crate::{
    clock,
    export::{edge_list::EdgeList, table},
    fleet,
};
use anyhow::{Context as _, bail};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// Where one agent's API is and how to reach it (`edges`, `report`).
#[derive(clap::Args, Debug)]
pub struct AgentAddr {
    /// The agent's address.
    #[arg(long, default_value = "http://127.0.0.1:9477", value_name = "URL")]
    pub addr: String,

    /// Present the bearer token in FILE (the agent's api.token_file).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// For an https:// --addr: trust the CA certificates (PEM) in FILE
    /// instead of the system's bundle.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct EdgesArgs {
    #[command(flatten)]
    pub agent: AgentAddr,

    /// Print the API's JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Only edges that violate policy.
    #[arg(long)]
    pub violations: bool,

    /// The whole fleet instead of one agent: every node's edges from this
    /// Prometheus (or Thanos, Mimir, ...), nodes folded together.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// With --prometheus: the window read, e.g. 30m, 1h, 7d.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        requires = "prometheus"
    )]
    pub since: String,

    /// Only edges with an end in this Kubernetes namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// Where Debian, Ubuntu and Amazon Linux (via its symlink) keep the
/// system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &EdgesArgs) -> anyhow::Result<()> {
    let mut list = match &args.prometheus {
        Some(url) => fleet_list(url, &args.since)?,
        None => agent_list(&args.agent, args.violations)?,
    };
    if let Some(ns) = &args.namespace {
        list.edges.retain(|e| fleet::in_namespace(e, ns));
    }
    if args.violations {
        list.edges.retain(|e| e.policy == "violation");
    }
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &list)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else if list.edges.is_empty() {
        writeln!(out, "{}", why_empty(&list, args.violations))
    } else {
        let now = clock::now_ns();
        table::write(&mut out, &list.edges, |e| {
            clock::parse_rfc3339_utc(&e.last_seen).map_or_else(|| e.last_seen.clone(), |t| clock::ago(t, now))
        })
        .and_then(|()| {
            if list.dropped_flows > 0 {
                writeln!(
                    out,
                    "{} flows beyond the edge cap (edges.max) are counted as client/server \"other\"",
                    list.dropped_flows
                )
            } else {
                Ok(())
            }
        })
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the output"),
    }
}

/// The fleet's edges over `since` from the Prometheus at `url`.
pub(crate) fn fleet_list(url: &str, since: &str) -> anyhow::Result<EdgeList> {
    let since = clock::parse_duration(since).map_err(|m| anyhow::anyhow!("--since {m}"))?;
    fleet::edge_list(fleet::Window::ending_now(since), |path| {
        get(url, path, None, None).with_context(|| format!("querying Prometheus at {url}"))
    })
}

/// The edges of the agent at `addr`.
pub(crate) fn agent_list(agent: &AgentAddr, violations: bool) -> anyhow::Result<EdgeList> {
    let addr = agent.addr.as_str();
    let path = if violations {
        "/api/v1/edges?violations=true"
    } else {
        "/api/v1/edges"
    };
    let token = match &agent.token_file {
        Some(f) => Some(read_token(f)?),
        None => None,
    };
    let body = get(addr, path, token.as_deref(), agent.ca_file.as_deref())?;
    serde_json::from_str(&body).with_context(|| {
        format!("{addr} did not answer with an edge list; is it a plainsight agent?")
    })
}

/// One line instead of a bare header: a newcomer's first `plainsight
/// edges` often comes before any flow, or with only loopback traffic,
/// which the agent leaves out by default.
fn why_empty(list: &EdgeList, violations: bool) -> String {
    let what = if violations {
        "no edge violates policy"
    } else {
        "no edges yet"
    };
    let Some(a) = &list.agent else {
        return what.to_owned();
    };
    let flows = match a.flows_classified {
        1 => "1 flow".to_owned(),
        n => format!("{n} flows"),
    };
    let loopback = if a.include_loopback {
        "loopback included"
    } else {
        "loopback excluded unless the agent runs with --include-loopback"
    };
    format!(
        "{what}: agent up for {} s, {flows} classified ({loopback})",
        a.uptime_secs
    )
}

/// An `--addr` taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    tls: bool,
    /// `host:port`, the port defaulted by the scheme.
    authority: String,
    /// The host alone, brackets removed: the name TLS checks.
    host: String,
    /// A path prefix (a proxy's), without the trailing `/`.
    prefix: String,
}

/// `http[s]://host[:port][/prefix]`.
fn split_url(url: &str) -> anyhow::Result<Url> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => bail!("--addr {url:?}: an http:// or https:// URL, e.g. http://127.0.0.1:9477"),
    };
    let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        bail!("--addr {url:?} has no host");
    }
    // A bracketed IPv6 literal has colons of its own.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.contains(':') || h.ends_with(']'))
    });
    let host = if has_port {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    } else {
        authority
    };
    Ok(Url {
        tls,
        authority: if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        },
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        prefix: prefix.trim_end_matches('/').to_owned(),
    })
}

/// The client side of TLS to the agent: the CAs of `ca_file`, or the
/// system's.
fn tls_client(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let (file, what) = match ca_file {
        Some(f) => (f, "--ca-file"),
        None => (Path::new(SYSTEM_CAS), "the system CA bundle"),
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("{what} {}", file.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        bail!("{what} {} holds no usable CA certificate", file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The token of `--token-file`: its one line, trimmed.
fn read_token(f: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(f).with_context(|| format!("--token-file {}", f.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("--token-file {} is empty", f.display());
    }
    Ok(token.to_owned())
}

/// GETs `path` (with `token` as a bearer token) and returns the body of a
/// 200 answer.
fn get(
    url: &str,
    path: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
) -> anyhow::Result<String> {
    let Url {
        tls,
        authority,
        host,
        prefix,
    } = split_url(url)?;
    if ca_file.is_some() && !tls {
        bail!("--ca-file is for an https:// --addr; {url} is plain http");
    }
    let unreachable = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot reach the plainsight agent at {url}: {e} (is `plainsight run` running \
             there? --addr URL points elsewhere)"
        )
    };
    let addrs: Vec<_> = authority.to_socket_addrs().map_err(unreachable)?.collect();
    let mut last = std::io::Error::other("the host has no address");
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = stream.ok_or(last).map_err(unreachable)?;
    tcp.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    let mut s: Box<dyn ReadWrite> = if tls {
        let name = ServerName::try_from(host.clone())
            .with_context(|| format!("--addr {url}: {host:?} is not a name TLS can check"))?;
        let conn = rustls::ClientConnection::new(tls_client(ca_file)?, name)?;
        Box::new(rustls::StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    // rustls reports a failed handshake (at the first write) as InvalidData;
    // a certificate the CAs do not vouch for is the usual cause.
    let exchange_failed = |e: std::io::Error| {
        if tls && e.kind() == std::io::ErrorKind::InvalidData {
            anyhow::anyhow!(
                "TLS with the plainsight agent at {url}: {e} (--ca-file FILE names the CA \
                 that issued the agent's api.tls_cert_file)"
            )
        } else {
            unreachable(e)
        }
    };
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n\
         {auth}Connection: close\r\n\r\n"
    )
    .map_err(exchange_failed)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| {
        // A certificate the CAs do not vouch for is the likely cause.
        if tls {
            anyhow::anyhow!(
                "TLS with the plainsight agent at {url}: {e} (--ca-file FILE names the CA)"
            )
        } else {
            unreachable(e)
        }
    })?;
    let (status, body) = parse_response(&raw)
        .with_context(|| format!("{url} answered with something that is not HTTP"))?;
    if status != 200 {
        bail!("{url}{path} answered {status}: {}", body.trim());
    }
    Ok(body)
}

/// A plain or TLS connection.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// (status, body) of an HTTP/1.x response, with a Content-Length body,
/// a chunked one, or one ended by the closed connection.
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            body = body.get(..v.parse::<usize>().ok()?)?;
        }
    }
    let bytes = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some((status, String::from_utf8(bytes).ok()?))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::edge_list::AgentJson;

    #[test]
    fn urls() {
        let u = |tls, authority: &str, host: &str, prefix: &str| Url {
            tls,
            authority: authority.into(),
            host: host.into(),
            prefix: prefix.into(),
        };
        assert_eq!(
            split_url("http://127.0.0.1:9477").unwrap(),
            u(false, "127.0.0.1:9477", "127.0.0.1", "")
        );
        assert_eq!(
            split_url("http://agent/plainsight/").unwrap(),
            u(false, "agent:80", "agent", "/plainsight")
        );
        assert_eq!(
            split_url("http://[::1]:9477").unwrap(),
            u(false, "[::1]:9477", "::1", "")
        );
        assert_eq!(split_url("http://[::1]").unwrap().authority, "[::1]:80");
        assert_eq!(
            split_url("https://agent.local").unwrap(),
            u(true, "agent.local:443", "agent.local", "")
        );
        assert!(
            split_url("ftp://x")
                .unwrap_err()
                .to_string()
                .contains("an http:// or https:// URL")
        );
    }

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing";
        assert_eq!(parse_response(r), Some((200, "{}".into())));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((200, "abcde".into())));
        let r = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(r), Some((404, "nope".into())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn an_empty_list_says_why() {
        let mut list = EdgeList {
            edges: Vec::new(),
            dropped_flows: 0,
            agent: None,
        };
        assert_eq!(why_empty(&list, false), "no edges yet");
        list.agent = Some(AgentJson {
            uptime_secs: 12,
            flows_classified: 0,
            include_loopback: false,
        });
        assert_eq!(
            why_empty(&list, false),
            "no edges yet: agent up for 12 s, 0 flows classified \
             (loopback excluded unless the agent runs with --include-loopback)"
        );
        list.agent = Some(AgentJson {
            uptime_secs: 90,
            flows_classified: 1,
            include_loopback: true,
        });
        assert_eq!(
            why_empty(&list, true),
            "no edge violates policy: agent up for 90 s, 1 flow classified (loopback included)"
        );
    }

    #[test]
    fn unreachable_agent_is_named() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = get(&url, "/api/v1/edges", None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot reach the plainsight agent at {url}")),
            "{e}"
        );
    }
}
