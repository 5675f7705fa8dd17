//! TLS on the API listener (`api.tls_cert_file`, `api.tls_key_file`).
//!
//! The certificate and key are re-read when either file changes (inode,
//! size or mtime, checked at each handshake), so cert-manager or a rotated
//! Secret takes effect without a restart. A pair that fails to load at
//! start stops the agent before anything is attached; one that fails
//! later keeps the last good pair (a half-written rotation must not take
//! the API down), is logged once and counted in
//! `plainsight_api_tls_reloads_total{outcome="failed"}`.

use super::metrics::{Metrics, TlsReloadLabels};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The server side of the API's TLS.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    metrics: Arc<Metrics>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = CertFiles::load(cert_file, key_file, &provider, metrics)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(files));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads and checks a certificate/key pair without serving it
/// (`check-config`).
pub fn check_pair(cert_file: &Path, key_file: &Path) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    read_pair(cert_file, key_file, &provider).map(drop)
}

struct CertFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    metrics: Arc<Metrics>,
    current: Mutex<Current>,
}

struct Current {
    stamps: [Stamp; 2],
    key: Arc<CertifiedKey>,
    /// The stamps of a pair that failed to load (logged once per change).
    failed: Option<[Stamp; 2]>,
}

/// What tells a changed file: inode (rename into place), size, mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

impl CertFiles {
    fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let (stamps, key) = read_pair(cert_file, key_file, provider)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider: Arc::clone(provider),
            metrics,
            current: Mutex::new(Current {
                stamps,
                key: Arc::new(key),
                failed: None,
            }),
        })
    }

    /// The pair to present, re-read first if a file changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let now = [stamp(&self.cert_file), stamp(&self.key_file)];
        let unchanged = now[0] == Some(cur.stamps[0]) && now[1] == Some(cur.stamps[1]);
        let known_bad = matches!(now, [Some(c), Some(k)] if cur.failed == Some([c, k]));
        if unchanged || known_bad {
            return Arc::clone(&cur.key);
        }
        let count = |outcome| {
            self.metrics
                .api_tls_reloads
                .get_or_create(&TlsReloadLabels { outcome })
                .inc();
        };
        match read_pair(&self.cert_file, &self.key_file, &self.provider) {
            Ok((stamps, key)) => {
                log::info!(
                    "api.tls_cert_file {}: certificate reloaded",
                    self.cert_file.display()
                );
                count("reloaded");
                *cur = Current {
                    stamps,
                    key: Arc::new(key),
                    failed: None,
                };
            }
            Err(e) => {
                // A file missing mid-rename has no stamp: retried at the
                // next handshake without logging again.
                if let [Some(c), Some(k)] = now {
                    log::warn!("API TLS: {e}; still serving the previous certificate");
                    count("failed");
                    cur.failed = Some([c, k]);
                }
            }
        }
        Arc::clone(&cur.key)
    }
}

// rustls wants its resolvers printable.
impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads both files, taking their stamps first: a change while reading
/// shows as a changed stamp at the next handshake and is read again.
fn read_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<([Stamp; 2], CertifiedKey), String> {
    let stamp_of = |p: &Path, key: &str| {
        stamp(p).ok_or_else(|| {
            let e = std::fs::metadata(p)
                .err()
                .map_or_else(String::new, |e| e.to_string());
            format!("api.{key} {}: {e}", p.display())
        })
    };
    let stamps = [
        stamp_of(cert_file, "tls_cert_file")?,
        stamp_of(key_file, "tls_key_file")?,
    ];
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("api.tls_cert_file {}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "api.tls_cert_file {}: no PEM certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("api.tls_key_file {}: {e}", key_file.display()))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!(
            "api.tls_cert_file {} and api.tls_key_file {} do not make a pair: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok((stamps, certified))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Runs the openssl CLI; `{name}` in an argument is a path in `dir`.
    fn openssl(dir: &Path, args: &str) {
        let args: Vec<_> = args
            .split(' ')
            .map(|a| match a.strip_prefix('@') {
                Some(f) => dir.join(f).into_os_string(),
                None => a.into(),
            })
            .collect();
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("the openssl CLI runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A leaf certificate for `127.0.0.1` and `localhost` issued by a CA
    /// in `dir` (made on first use, `dir/ca.crt`), with the openssl CLI as
    /// an operator would: (cert, key) paths.
    pub(crate) fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        const KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        if !dir.join("ca.crt").exists() {
            openssl(
                dir,
                &format!("req -x509 {KEY} -days 2 -subj /CN=test-CA -keyout @ca.key -out @ca.crt"),
            );
        }
        std::fs::write(
            dir.join(format!("{name}.ext")),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            dir,
            &format!("req {KEY} -subj /CN={name} -keyout @{name}.key -out @{name}.csr"),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -days 2 -in @{name}.csr -CA @ca.crt -CAkey @ca.key -CAcreateserial \
                 -extfile @{name}.ext -out @{name}.crt"
            ),
        );
        (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        )
    }

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plainsight-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::register(
            &mut prometheus_client::registry::Registry::default(),
        ))
    }

    fn leaf(files: &CertFiles) -> Vec<u8> {
        files.current().cert[0].to_vec()
    }

    #[test]
    fn rotation_is_picked_up_and_a_bad_pair_keeps_the_old_one() {
        let dir = temp_dir("api-tls");
        let (cert, key) = self_signed(&dir, "one");
        let m = metrics();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = CertFiles::load(&cert, &key, &provider, Arc::clone(&m)).expect("loads");
        let first = leaf(&files);
        assert_eq!(leaf(&files), first, "unchanged files: same certificate");

        // Rotation by rename, as a Kubernetes Secret volume does.
        let (cert2, key2) = self_signed(&dir, "two");
        std::fs::rename(&key2, &key).unwrap();
        std::fs::rename(&cert2, &cert).unwrap();
        let second = leaf(&files);
        assert_ne!(second, first, "the rotated certificate is served");
        let n = |outcome| {
            m.api_tls_reloads
                .get_or_create(&TlsReloadLabels { outcome })
                .get()
        };
        assert_eq!((n("reloaded"), n("failed")), (1, 0));

        // A certificate whose key is not the one beside it: kept the old.
        let (cert3, _key3) = self_signed(&dir, "three");
        std::fs::rename(&cert3, &cert).unwrap();
        assert_eq!(leaf(&files), second);
        assert_eq!(leaf(&files), second);
        assert_eq!((n("reloaded"), n("failed")), (1, 1), "counted once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unusable_files_are_named_at_start() {
        let dir = temp_dir("api-tls-bad");
        let (cert, key) = self_signed(&dir, "ok");
        let e = check_pair(&dir.join("missing.crt"), &key).unwrap_err();
        assert!(
            e.starts_with("api.tls_cert_file ") && e.contains("missing.crt"),
            "{e}"
        );
        std::fs::write(dir.join("empty.crt"), "not pem\n").unwrap();
        let e = check_pair(&dir.join("empty.crt"), &key).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = check_pair(&cert, &cert).unwrap_err();
        assert!(e.starts_with("api.tls_key_file "), "{e}");
        let (other, _) = self_signed(&dir, "other");
        let e = check_pair(&other, &key).unwrap_err();
        assert!(e.contains("do not make a pair"), "{e}");
        check_pair(&cert, &key).expect("a good pair");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
