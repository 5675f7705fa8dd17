//! HTTP/1.1 GETs to the API server over TCP (+ rustls), one connection per
//! request: a list is one request, a watch is one long-lived response, and
//! there are three of each per agent, so pooling would buy nothing.
//!
//! Every step is bounded, so a server that accepts and then stops
//! answering costs a timeout, never a hung task: TCP connect
//! (`CONNECT_TIMEOUT`), then the TLS handshake and the response headers
//! together (`request_timeout`, with an error's body), and a whole body read by [`Transport::get_body`]
//! in the same `request_timeout`. A watch body streams for minutes; its
//! bound is the watch's own (`watch.rs`).

use super::kubeconfig::{Auth, KubeConfig};
use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("reading token {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {0}: timed out")]
    ConnectTimeout(String),
    /// Connected, then the server stopped answering.
    #[error("{addr}: no {what} within {after:?}: the API server stalled")]
    Stalled {
        addr: String,
        what: &'static str,
        after: Duration,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("GET {path}: {status}: {body}")]
    Status {
        path: String,
        status: StatusCode,
        body: String,
    },
}

pub struct Transport {
    host: String,
    port: u16,
    /// The server URL's path, prepended to every API path (proxies).
    prefix: String,
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    auth: Auth,
    request_timeout: Duration,
}

impl TransportError {
    /// The server accepted the request and then stalled.
    pub const fn is_stall(&self) -> bool {
        matches!(self, Self::Stalled { .. })
    }
}

impl Transport {
    pub fn new(config: &KubeConfig) -> Result<Self, TransportError> {
        let uri = &config.server;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let tls = https
            .then(|| {
                let name = config
                    .tls_server_name
                    .as_deref()
                    .unwrap_or(host.trim_start_matches('[').trim_end_matches(']'));
                let name = ServerName::try_from(name.to_owned())
                    .map_err(|e| TransportError::Tls(format!("server name {name:?}: {e}")))?;
                Ok::<_, TransportError>((TlsConnector::from(Arc::new(tls_config(config)?)), name))
            })
            .transpose()?;
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            authority: uri
                .authority()
                .map_or_else(|| host.to_owned(), ToString::to_string),
            tls,
            auth: config.auth.clone(),
            request_timeout: config.request_timeout,
        })
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn stalled(&self, what: &'static str) -> TransportError {
        TransportError::Stalled {
            addr: self.addr(),
            what,
            after: self.request_timeout,
        }
    }

    /// GET a body read whole (at most `max` bytes) within `request_timeout`
    /// from the request's start: a list page.
    pub async fn get_body(&self, path_and_query: &str, max: usize) -> Result<Bytes, GetBodyError> {
        let whole = async {
            let resp = self.get(path_and_query).await?;
            Ok(collect(resp.into_body(), max).await?)
        };
        tokio::time::timeout(self.request_timeout, whole)
            .await
            .unwrap_or_else(|_| Err(self.stalled("complete response").into()))
    }

    /// GET `path_and_query`; any status but 200 is an error carrying the
    /// server's message (a Status object, usually).
    pub async fn get(&self, path_and_query: &str) -> Result<Response<Incoming>, TransportError> {
        let mut req = Request::get(format!("{}{path_and_query}", self.prefix))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("plainsight/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = self.token()? {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| TransportError::Tls(format!("building request: {e}")))?;
        let addr = self.addr();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| TransportError::ConnectTimeout(addr.clone()))?
        .map_err(|source| TransportError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        // From here the server has accepted: silence is a stall.
        let answer = async {
            let resp = match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|source| TransportError::Connect { addr, source })?;
                    send(TokioIo::new(tls), req).await?
                }
                None => send(TokioIo::new(tcp), req).await?,
            };
            if resp.status() == StatusCode::OK {
                return Ok(resp);
            }
            let status = resp.status();
            let body = collect(resp.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Err(TransportError::Status {
                path: path_and_query.to_owned(),
                status,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, answer)
            .await
            .unwrap_or_else(|_| Err(self.stalled("response")))
    }

    fn token(&self) -> Result<Option<String>, TransportError> {
        Ok(match &self.auth {
            Auth::Token(t) => Some(t.clone()),
            Auth::TokenFile(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| TransportError::Token {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            Auth::None | Auth::ClientCert { .. } => None,
        })
    }
}

async fn send<T>(
    io: TokioIo<T>,
    req: Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> Result<Response<Incoming>, TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // Drives the connection; it ends when the response body is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

fn tls_config(config: &KubeConfig) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let builder = if config.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let pem = config.ca.as_deref().ok_or_else(|| {
            TransportError::Tls("no CA certificate configured to verify the API server with".into())
        })?;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TransportError::Tls(format!("CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| TransportError::Tls(format!("CA bundle: {e}")))?;
        }
        builder.with_root_certificates(roots)
    };
    match &config.auth {
        Auth::ClientCert { cert, key } => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TransportError::Tls(format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| TransportError::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TransportError::Tls(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// kubeconfig `insecure-skip-tls-verify: true`: the handshake still checks
/// signatures, but any certificate is accepted.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a response body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the response: {0}")]
    Read(#[from] hyper::Error),
    #[error("response larger than the limit")]
    TooLarge,
}

/// Why a body GET failed: the request, or the body.
#[derive(Debug, thiserror::Error)]
pub enum GetBodyError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// Reads a whole body, refusing more than `max` bytes.
async fn collect(mut body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.into())
}
