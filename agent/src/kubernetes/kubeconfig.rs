//! Where the API server is and how to authenticate: in-cluster service
//! account, or a kubeconfig file.

use base64::Engine as _;
use hyper::Uri;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The in-cluster service account, mounted by the kubelet.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid kubeconfig: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    #[error(
        "no Kubernetes API configuration: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig (KUBECONFIG or ~/.kube/config)"
    )]
    NotFound,
}

fn invalid(what: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: what.into(),
        problem: problem.into(),
    }
}

/// How requests authenticate. `Debug` never prints a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Token(String),
    /// Re-read before every request: projected service-account tokens are
    /// rotated by the kubelet (hourly) and the old one expires.
    TokenFile(PathBuf),
    /// PEM certificate chain and private key.
    ClientCert {
        cert: Vec<u8>,
        key: Vec<u8>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            Self::ClientCert { .. } => f.write_str("ClientCert(<redacted>)"),
        }
    }
}

/// Everything `KubeIdentities::spawn` needs. Build it with
/// [`KubeConfig::infer`], [`KubeConfig::in_cluster`] or
/// [`KubeConfig::from_kubeconfig`]; the timing fields have production
/// defaults and exist so tests can run fast.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// `https://host:port` (or `http://` for tests), optionally with a path
    /// prefix.
    pub server: Uri,
    /// PEM CA bundle the server certificate must chain to.
    pub ca: Option<Vec<u8>>,
    /// Accept any server certificate (kubeconfig `insecure-skip-tls-verify`).
    pub insecure_skip_tls_verify: bool,
    /// Name to verify the certificate against instead of the URL's host.
    pub tls_server_name: Option<String>,
    pub auth: Auth,
    /// First retry delay after an error; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Asked of the server per watch (`timeoutSeconds`, jittered up to
    /// twice this); the server ends the watch then.
    pub watch_timeout: Duration,
    /// A watch still open `stall_margin` after its `timeoutSeconds` has
    /// stalled (a half-open connection, or a server that stopped sending,
    /// not even bookmarks): it is given up and started again.
    pub stall_margin: Duration,
    /// Bounds every request from its TLS handshake to its response
    /// headers, and a list page or error answer to its last byte. The
    /// API server gives up on its own non-watch requests after 60 s
    /// (`--request-timeout`), so one taking longer than that is stuck.
    pub request_timeout: Duration,
    /// Objects per list page: bounds the transient memory of a list.
    pub page_size: u32,
}

impl KubeConfig {
    fn new(server: Uri) -> Self {
        Self {
            server,
            ca: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            auth: Auth::None,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            watch_timeout: Duration::from_secs(300),
            stall_margin: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            page_size: 500,
        }
    }

    /// What to warn about at start: `insecure-skip-tls-verify` is honoured
    /// (clusters use it), but nobody should run with it unknowingly.
    pub fn insecure_warning(&self) -> Option<String> {
        (self.insecure_skip_tls_verify && self.server.scheme_str() == Some("https")).then(|| {
            format!(
                "kubernetes: insecure-skip-tls-verify is set: the certificate of {} is not \
                 verified, so anyone on the path can pose as the API server and name peers \
                 (and so decide policy); set certificate-authority instead",
                self.server
            )
        })
    }

    /// In a pod: in-cluster config; else `$KUBECONFIG` (its first file) or
    /// `~/.kube/config`, current context.
    pub fn infer() -> Result<Self, ConfigError> {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return Self::in_cluster();
        }
        let path = std::env::var_os("KUBECONFIG")
            .and_then(|v| std::env::split_paths(&v).next())
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
            .filter(|p| p.exists())
            .ok_or(ConfigError::NotFound)?;
        Self::from_kubeconfig(&path, None)
    }

    /// `KUBERNETES_SERVICE_HOST`/`_PORT` and the mounted service account.
    pub fn in_cluster() -> Result<Self, ConfigError> {
        let var = |name: &str| {
            std::env::var(name)
                .map_err(|_| invalid("in-cluster config", format!("{name} is not set")))
        };
        Self::in_cluster_at(
            &var("KUBERNETES_SERVICE_HOST")?,
            &var("KUBERNETES_SERVICE_PORT")?,
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// In-cluster config with the service account mounted at `sa_dir`.
    pub fn in_cluster_at(host: &str, port: &str, sa_dir: &Path) -> Result<Self, ConfigError> {
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]"),
            Err(_) => host.to_owned(),
        };
        let server = parse_server(&format!("https://{host}:{port}"), "in-cluster config")?;
        let token = sa_dir.join("token");
        // Fail now, not at the first request, when the token is not mounted.
        read(&token)?;
        Ok(Self {
            ca: Some(read(&sa_dir.join("ca.crt"))?),
            auth: Auth::TokenFile(token),
            ..Self::new(server)
        })
    }

    /// The cluster and user of `context` (default: `current-context`).
    /// Relative file paths are relative to the kubeconfig's directory.
    pub fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let kc: Kubeconfig =
            serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Yaml {
                path: path.to_owned(),
                source,
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let what = |s: &str| format!("{}: {s}", path.display());
        let context_name = context
            .map(str::to_owned)
            .or(kc.current_context)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid(what("current-context"), "not set and no context given"))?;
        let ctx = &find(&kc.contexts, &context_name, || what("contexts"))?.context;
        let cluster = &find(&kc.clusters, &ctx.cluster, || what("clusters"))?.cluster;
        let mut config = Self::new(parse_server(
            &cluster.server,
            &what(&format!("cluster {}", ctx.cluster)),
        )?);
        config.ca = file_or_data(
            cluster.certificate_authority.as_deref(),
            cluster.certificate_authority_data.as_deref(),
            dir,
            &what("certificate-authority-data"),
        )?;
        config.insecure_skip_tls_verify = cluster.insecure_skip_tls_verify;
        config.tls_server_name.clone_from(&cluster.tls_server_name);
        if let Some(user_name) = &ctx.user {
            let user = &find(&kc.users, user_name, || what("users"))?.user;
            config.auth = user_auth(user, dir, &what(&format!("user {user_name}")))?;
        }
        Ok(config)
    }
}

/// Whether the agent names peers from the Kubernetes API
/// (`[kubernetes] enabled`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enabled {
    /// On in a pod (`KUBERNETES_SERVICE_HOST` is set: the in-cluster
    /// service account) or when a kubeconfig is given; off otherwise, so
    /// the same file serves an EC2 host and a DaemonSet.
    #[default]
    Auto,
    /// Required: the agent does not start without an API configuration
    /// (the kubeconfig given, else in-cluster, else `$KUBECONFIG` or
    /// `~/.kube/config`).
    On,
    Off,
}

/// The `[kubernetes]` section, with `--kubeconfig` applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeSettings {
    pub enabled: Enabled,
    /// A kubeconfig file instead of the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; default: its `current-context`.
    pub context: Option<String>,
}

impl KubeSettings {
    /// Where the API server is, or `None` when the source is off. Reads the
    /// kubeconfig or service account now, so a bad one is reported before
    /// anything is attached.
    pub fn resolve(&self) -> Result<Option<KubeConfig>, ConfigError> {
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        match (self.enabled, &self.kubeconfig) {
            (Enabled::Off, _) => Ok(None),
            (_, Some(path)) => KubeConfig::from_kubeconfig(path, self.context.as_deref()).map(Some),
            (Enabled::Auto, None) if !in_pod => Ok(None),
            (_, None) => KubeConfig::infer().map(Some),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_server(server: &str, what: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = server
        .parse()
        .map_err(|e| invalid(what, format!("server {server:?}: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(_)) => Ok(uri),
        _ => Err(invalid(
            what,
            format!("server {server:?} is not an http(s)://host URL"),
        )),
    }
}

fn find<'a, T>(
    named: &'a [Named<T>],
    name: &str,
    what: impl Fn() -> String,
) -> Result<&'a T, ConfigError> {
    named
        .iter()
        .find(|n| n.name == name)
        .map(|n| &n.inner)
        .ok_or_else(|| invalid(what(), format!("no entry named {name:?}")))
}

fn file_or_data(
    file: Option<&str>,
    data: Option<&str>,
    dir: &Path,
    what: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    if let Some(data) = data {
        let clean: String = data.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map(Some)
            .map_err(|e| invalid(what, format!("not base64: {e}")));
    }
    file.map(|f| read(&dir.join(f))).transpose()
}

fn user_auth(user: &User, dir: &Path, what: &str) -> Result<Auth, ConfigError> {
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(invalid(
            what,
            "uses an exec or auth-provider credential plugin, which plainsight does not run; use a token, a token file or a client certificate",
        ));
    }
    if let Some(token) = user.token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Auth::Token(token.trim().to_owned()));
    }
    if let Some(file) = &user.token_file {
        return Ok(Auth::TokenFile(dir.join(file)));
    }
    let cert = file_or_data(
        user.client_certificate.as_deref(),
        user.client_certificate_data.as_deref(),
        dir,
        &format!("{what}: client-certificate-data"),
    )?;
    let key = file_or_data(
        user.client_key.as_deref(),
        user.client_key_data.as_deref(),
        dir,
        &format!("{what}: client-key-data"),
    )?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Auth::ClientCert { cert, key }),
        (None, None) => Ok(Auth::None),
        _ => Err(invalid(
            what,
            "a client certificate needs both the certificate and the key",
        )),
    }
}

// The kubeconfig file (client-go's clientcmd/api/v1 types), only the fields
// we use; unknown ones (preferences, extensions, ...) are ignored as kubectl
// does.

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    inner: T,
}

#[derive(Deserialize)]
struct ClusterEntry {
    cluster: Cluster,
}

#[derive(Deserialize)]
struct UserEntry {
    #[serde(default)]
    user: User,
}

#[derive(Deserialize)]
struct ContextEntry {
    context: Context,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    tls_server_name: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    exec: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    auth_provider: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "plainsight-kubeconfig-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The shape `kind` and `eksctl` write (with client-certificate data).
    const KIND: &str = "apiVersion: v1
kind: Config
preferences: {}
current-context: kind-dev
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: https://127.0.0.1:40001
  name: kind-dev
- cluster:
    server: https://10.0.0.1:6443/k8s
    insecure-skip-tls-verify: true
    certificate-authority: certs/ca.pem
  name: staging
contexts:
- context:
    cluster: kind-dev
    user: kind-dev
  name: kind-dev
- context:
    cluster: staging
    namespace: default
    user: robot
  name: staging
- context:
    cluster: staging
    user: eks
  name: eks
users:
- name: kind-dev
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
- name: robot
  user:
    tokenFile: token.txt
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, prod]
";

    #[test]
    fn kubeconfig_current_context_with_embedded_client_cert() {
        let d = tempdir("kind");
        let c = KubeConfig::from_kubeconfig(&write(&d, "config", KIND), None).unwrap();
        assert_eq!(c.server.to_string(), "https://127.0.0.1:40001/");
        assert_eq!(c.ca.as_deref(), Some(&b"-----BEGIN CERTIFICATE-----\n"[..]));
        assert_eq!(
            c.auth,
            Auth::ClientCert {
                cert: b"cert".to_vec(),
                key: b"key".to_vec()
            }
        );
        assert!(!c.insecure_skip_tls_verify);
        assert_eq!(c.insecure_warning(), None);
    }

    #[test]
    fn kubeconfig_named_context_resolves_files_next_to_it() {
        let d = tempdir("staging");
        std::fs::create_dir_all(d.join("certs")).unwrap();
        write(&d, "certs/ca.pem", "PEM");
        let c = KubeConfig::from_kubeconfig(&write(&d, "config", KIND), Some("staging")).unwrap();
        assert_eq!(c.server.path(), "/k8s");
        assert_eq!(c.ca.as_deref(), Some(&b"PEM"[..]));
        assert!(c.insecure_skip_tls_verify);
        let warning = c.insecure_warning().expect("a warning");
        assert!(
            warning.contains("insecure-skip-tls-verify")
                && warning.contains("https://10.0.0.1:6443/k8s"),
            "{warning}"
        );
        assert_eq!(c.auth, Auth::TokenFile(d.join("token.txt")));
        let secret = Auth::Token("s3cr3t".into());
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn kubeconfig_errors_name_the_problem() {
        let d = tempdir("errors");
        let p = write(&d, "config", KIND);
        std::fs::create_dir_all(d.join("certs")).unwrap();
        write(&d, "certs/ca.pem", "PEM");
        let e = KubeConfig::from_kubeconfig(&p, Some("eks"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("user eks") && e.contains("exec"), "{e}");
        let e = KubeConfig::from_kubeconfig(&p, Some("prod"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("contexts") && e.contains("\"prod\""), "{e}");
        std::fs::remove_file(d.join("certs/ca.pem")).unwrap();
        let e = KubeConfig::from_kubeconfig(&p, Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("certs/ca.pem"), "{e}");
        let bad = write(
            &d,
            "bad",
            "clusters: [{name: x, cluster: {server: 'ftp://x'}}]\ncontexts: [{name: c, context: {cluster: x}}]\ncurrent-context: c\n",
        );
        let e = KubeConfig::from_kubeconfig(&bad, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp://x") && e.contains("not an http(s)"), "{e}");
        let e = KubeConfig::from_kubeconfig(&write(&d, "y", "clusters: {"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid kubeconfig"), "{e}");
    }

    #[test]
    fn in_cluster_reads_the_mounted_service_account() {
        let d = tempdir("sa");
        write(&d, "token", "eyJhbGciOi...\n");
        write(&d, "ca.crt", "CA");
        let c = KubeConfig::in_cluster_at("10.96.0.1", "443", &d).unwrap();
        assert_eq!(c.server.to_string(), "https://10.96.0.1:443/");
        assert_eq!(c.ca.as_deref(), Some(&b"CA"[..]));
        assert_eq!(c.auth, Auth::TokenFile(d.join("token")));
        let c = KubeConfig::in_cluster_at("fd00:96::1", "443", &d).unwrap();
        assert_eq!(c.server.host(), Some("[fd00:96::1]"));
        std::fs::remove_file(d.join("token")).unwrap();
        let e = KubeConfig::in_cluster_at("10.96.0.1", "443", &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("token"), "{e}");
    }

    #[test]
    fn settings_resolve_the_given_kubeconfig_and_context_or_nothing_when_off() {
        let d = tempdir("settings");
        std::fs::create_dir_all(d.join("certs")).unwrap();
        write(&d, "certs/ca.pem", "PEM");
        let path = write(&d, "config", KIND);
        let on = |context: Option<&str>| KubeSettings {
            enabled: Enabled::Auto,
            kubeconfig: Some(path.clone()),
            context: context.map(str::to_owned),
        };
        let c = on(None)
            .resolve()
            .unwrap()
            .expect("a kubeconfig turns auto on");
        assert_eq!(c.server.to_string(), "https://127.0.0.1:40001/");
        let c = on(Some("staging")).resolve().unwrap().expect("on");
        assert_eq!(c.server.path(), "/k8s");
        let off = KubeSettings {
            enabled: Enabled::Off,
            ..on(None)
        };
        assert!(off.resolve().unwrap().is_none());
        let missing = KubeSettings {
            kubeconfig: Some(d.join("nope")),
            ..on(None)
        };
        let e = missing.resolve().unwrap_err().to_string();
        assert!(e.contains("nope"), "names the file: {e}");
    }
}
