//! `plainsight edges`: the live edge table of a running agent, fetched
//! from its `/api/v1/edges` with a minimal HTTP/1.1 client (plain http on
//! a local or cluster address is all it needs; no TLS stack to carry).

use crate::{
    clock,
    export::{edge_list::EdgeList, table},
    fleet,
};
use anyhow::{Context as _, bail};
use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    time::Duration,
};

#[derive(clap::Args, Debug)]
pub struct EdgesArgs {
    /// The agent's address.
    #[arg(long, default_value = "http://127.0.0.1:9477", value_name = "URL")]
    pub addr: String,

    /// Print the API's JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Only edges that violate policy.
    #[arg(long)]
    pub violations: bool,

    /// Present the bearer token in FILE (the agent's api.token_file).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

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

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &EdgesArgs) -> anyhow::Result<()> {
    let mut list = match &args.prometheus {
        Some(url) => fleet_list(url, &args.since)?,
        None => agent_list(&args.addr, args.token_file.as_deref(), args.violations)?,
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
        get(url, path, None).with_context(|| format!("querying Prometheus at {url}"))
    })
}

/// The edges of the agent at `addr`.
pub(crate) fn agent_list(
    addr: &str,
    token_file: Option<&std::path::Path>,
    violations: bool,
) -> anyhow::Result<EdgeList> {
    let path = if violations {
        "/api/v1/edges?violations=true"
    } else {
        "/api/v1/edges"
    };
    let token = match token_file {
        Some(f) => Some(read_token(f)?),
        None => None,
    };
    let body = get(addr, path, token.as_deref())?;
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

/// `http://host[:port][/prefix]` -> (host:port, prefix).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--addr {url:?}: only http:// URLs are supported, e.g. http://127.0.0.1:9477");
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
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, prefix.trim_end_matches('/').to_owned()))
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
fn get(url: &str, path: &str, token: Option<&str>) -> anyhow::Result<String> {
    let (authority, prefix) = split_url(url)?;
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
    let mut s = stream.ok_or(last).map_err(unreachable)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n\
         {auth}Connection: close\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(unreachable)?;
    let (status, body) = parse_response(&raw)
        .with_context(|| format!("{url} answered with something that is not HTTP"))?;
    if status != 200 {
        bail!("{url}{path} answered {status}: {}", body.trim());
    }
    Ok(body)
}

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
        assert_eq!(
            split_url("http://127.0.0.1:9477").unwrap(),
            ("127.0.0.1:9477".into(), String::new())
        );
        assert_eq!(
            split_url("http://agent/plainsight/").unwrap(),
            ("agent:80".into(), "/plainsight".into())
        );
        assert_eq!(
            split_url("http://[::1]:9477").unwrap(),
            ("[::1]:9477".into(), String::new())
        );
        assert_eq!(split_url("http://[::1]").unwrap().0, "[::1]:80");
        assert!(
            split_url("https://x")
                .unwrap_err()
                .to_string()
                .contains("only http://")
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
        let e = get(&url, "/api/v1/edges", None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot reach the plainsight agent at {url}")),
            "{e}"
        );
    }
}
