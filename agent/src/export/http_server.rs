//! The HTTP server of the endpoints, hardened against neighbours who open
//! connections and never finish them: every connection must send its
//! request headers within `header_read_timeout` (also between keep-alive
//! requests), is closed `request_timeout` after it was accepted whatever it
//! is doing, and at most `max_connections` are open at once (more are
//! accepted and closed at once, so they never wait in the kernel's backlog).
//! The endpoints take no request body: one is refused with 413. With TLS
//! (`api_tls`), the handshake must also finish within
//! `header_read_timeout`; one that fails is counted `tls_failed`.

use super::metrics::{HttpLabels, Metrics};
use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{convert::Infallible, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until the listener fails; over TLS when
/// `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    name: &'static str,
    metrics: Arc<Metrics>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let count = move |outcome| {
        metrics
            .http_connections
            .get_or_create(&HttpLabels {
                listener: name,
                outcome,
            })
            .inc();
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            // Out of descriptors or memory: transient; the timeouts free
            // what the neighbours hold.
            Err(e) if is_transient(&e) => {
                log::debug!("accepting on the {name} listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            count("rejected");
            drop(stream);
            continue;
        };
        count("accepted");
        let app = app.clone();
        let count = count.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // The request timeout counts from the accept, handshake included.
            let deadline = tokio::time::Instant::now() + limits.request_timeout;
            let Some(tls) = tls else {
                serve_connection(stream, app, limits, deadline, &count).await;
                drop(permit);
                return;
            };
            let handshake = tokio::time::timeout(limits.header_read_timeout, tls.accept(stream));
            match tokio::time::timeout_at(deadline, handshake).await {
                Ok(Ok(Ok(stream))) => serve_connection(stream, app, limits, deadline, &count).await,
                Ok(Ok(Err(e))) => {
                    log::debug!("TLS handshake on the {name} listener: {e}");
                    count("tls_failed");
                }
                Ok(Err(_)) | Err(_) => count("timed_out"),
            }
            drop(permit);
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    app: Router,
    limits: Limits,
    deadline: tokio::time::Instant,
    count: &impl Fn(&'static str),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(app.clone(), req));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout_at(deadline, connection).await {
        Err(_) => count("timed_out"),
        Ok(Err(e)) if e.is_timeout() => count("timed_out"),
        Ok(_) => {}
    }
}

async fn handle(mut app: Router, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if has_body(&req) {
        return Ok(Response::builder()
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .header(header::CONNECTION, "close")
            .body(Body::from("these endpoints take no request body\n"))
            .unwrap_or_default());
    }
    tower_service::Service::call(&mut app, req.map(Body::new)).await
}

fn has_body<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use prometheus_client::registry::Registry;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn start(limits: Limits) -> (std::net::SocketAddr, Arc<Metrics>) {
        start_with(limits, None).await
    }

    async fn start_with(
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (std::net::SocketAddr, Arc<Metrics>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let app = Router::new()
            .route("/", get(|| async { "hi\n" }))
            .route("/post", post(|| async { "took it\n" }));
        tokio::spawn(serve(
            listener,
            app,
            limits,
            "api",
            Arc::clone(&metrics),
            tls,
        ));
        (addr, metrics)
    }

    fn n(m: &Metrics, outcome: &'static str) -> u64 {
        m.http_connections
            .get_or_create(&HttpLabels {
                listener: "api",
                outcome,
            })
            .get()
    }

    async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    const LIMITS: Limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        max_connections: 4,
    };

    #[tokio::test]
    async fn half_headers_are_closed_and_the_cap_rejects_the_rest() {
        let (addr, m) = start(LIMITS).await;
        let mut held = Vec::new();
        for _ in 0..6 {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("write");
            held.push(s);
        }
        let t0 = std::time::Instant::now();
        for s in &mut held {
            let mut buf = [0u8; 256];
            // Closed by the server: EOF (or a reset), within the timeout.
            let r = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
            assert!(matches!(r, Ok(Ok(0) | Err(_))), "{r:?}");
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(n(&m, "accepted"), 4);
        assert_eq!(n(&m, "rejected"), 2);
        assert_eq!(n(&m, "timed_out"), 4);
        // The permits came back: a whole request is served.
        let r = exchange(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("hi\n"), "{r}");
    }

    #[tokio::test]
    async fn bodies_are_refused() {
        let (addr, _) = start(LIMITS).await;
        let r = exchange(
            addr,
            "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        let r = exchange(
            addr,
            "POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    }

    #[tokio::test]
    async fn a_connection_lives_at_most_the_request_timeout() {
        let (addr, m) = start(Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_millis(300),
            max_connections: 4,
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // Trickles a header byte by byte, each well inside the header timeout.
        let t0 = std::time::Instant::now();
        let mut closed = false;
        for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed || t0.elapsed() >= Duration::from_millis(300));
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0) | Err(_))), "{r:?}");
        assert_eq!(n(&m, "timed_out"), 1);
    }

    #[tokio::test]
    async fn tls_serves_https_and_refuses_plain_http() {
        use crate::export::api_tls::{self, tests::self_signed};
        use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
        let dir = api_tls::tests::temp_dir("http-tls");
        let (cert, key) = self_signed(&dir, "api");
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let config = api_tls::server_config(&cert, &key, metrics).expect("pair loads");
        let (addr, m) = start_with(LIMITS, Some(config)).await;

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .expect("handshake with the served certificate");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out).await;
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("hi\n"),
            "{out}"
        );

        // Plain HTTP on the TLS listener gets no HTTP answer.
        let r = exchange(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(!r.contains("HTTP/1.1 200"), "{r}");
        assert_eq!(n(&m, "tls_failed"), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
