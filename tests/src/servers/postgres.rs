//! PostgreSQL from Debian's `postgresql` package: a throwaway cluster made
//! by `initdb` in a temporary directory, run as the `postgres` user (the
//! server refuses to run as root).

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str, sh};
use std::net::IpAddr;
use std::path::PathBuf;

/// A role whose logins the server answers with a cleartext-password
/// request (`password` in pg_hba.conf): the credential crosses the wire
/// readable unless the connection is TLS.
pub const CLEARTEXT_USER: &str = "clearpw";
const CLEARTEXT_PASSWORD: &str = "s3cret";

/// A role that may log in only over TLS with a client certificate whose
/// CN is its name (`clientcert=verify-full`): the test certificate's CN.
pub const CERT_USER: &str = "plainsight-test";

/// Every other login is trusted: the handshake, not the authentication,
/// is what the tests look at.
const PG_HBA: &str = "\
local all all trust
host all clearpw all password
hostssl all plainsight-test all trust clientcert=verify-full
host all plainsight-test all reject
host all all all trust
";

pub struct Postgres {
    _daemon: Daemon,
    _dir: WorkDir,
    pub port: u16,
}

impl Postgres {
    /// A cluster listening on `port` (all addresses, IPv4 and IPv6), with
    /// `ssl = on` and `cert` when given, else `ssl = off` (the server then
    /// answers an SSLRequest with `N`).
    pub fn start(t: &Topology, port: u16, cert: Option<&TestCert>) -> Self {
        let dir = WorkDir::new("postgres");
        let bin = bin_dir();
        let data = dir.join("data");
        sh(&["chown", "postgres:postgres", path_str(&dir.path)]);
        sh(&[
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            path_str(&bin.join("initdb")),
            "--no-sync",
            "--auth=trust",
            "--username=postgres",
            "-D",
            path_str(&data),
        ]);
        std::fs::write(data.join("pg_hba.conf"), PG_HBA).expect("writing pg_hba.conf");
        let port_s = port.to_string();
        let socket_dir = format!("unix_socket_directories={}", path_str(&dir.path));
        let mut settings = vec![
            "listen_addresses=*".to_owned(),
            format!("port={port}"),
            socket_dir,
            "fsync=off".to_owned(),
        ];
        match cert {
            Some(cert) => {
                // The key must belong to the server's user and be private.
                let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
                std::fs::copy(&cert.cert, &crt).expect("copying certificate");
                std::fs::copy(&cert.key, &key).expect("copying key");
                sh(&["chown", "postgres:postgres", path_str(&crt), path_str(&key)]);
                sh(&["chmod", "600", path_str(&key)]);
                settings.push("ssl=on".to_owned());
                settings.push(format!("ssl_cert_file={}", path_str(&crt)));
                settings.push(format!("ssl_key_file={}", path_str(&key)));
                // Self-signed: the certificate is its own CA, and the
                // clients present the same one.
                settings.push(format!("ssl_ca_file={}", path_str(&crt)));
            }
            None => settings.push("ssl=off".to_owned()),
        }
        let postgres = bin.join("postgres");
        let mut argv = vec![
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            path_str(&postgres),
            "-D",
            path_str(&data),
        ];
        for s in &settings {
            argv.extend(["-c", s]);
        }
        // SIGINT is PostgreSQL's fast shutdown: it removes the shared
        // memory a SIGKILL would leave behind.
        let daemon = Daemon::start(t, &argv, dir.join("postgres.log"), &[port], libc::SIGINT);
        // Over the Unix socket in the temporary directory: no TCP flow.
        sh(&[
            "psql",
            "-h",
            path_str(&dir.path),
            "-p",
            &port_s,
            "-U",
            "postgres",
            "-Atqc",
            &format!(
                "CREATE ROLE {CLEARTEXT_USER} LOGIN PASSWORD '{CLEARTEXT_PASSWORD}'; \
                 CREATE ROLE \"{CERT_USER}\" LOGIN"
            ),
        ]);
        Self {
            _daemon: daemon,
            _dir: dir,
            port,
        }
    }

    /// libpq connection string for `user` at `host` with `sslmode`.
    pub fn conninfo(&self, host: IpAddr, user: &str, sslmode: &str) -> String {
        format!(
            "host={host} port={} user={user} password={CLEARTEXT_PASSWORD} dbname=postgres \
             sslmode={sslmode} connect_timeout=10",
            self.port
        )
    }
}

impl Postgres {
    /// libpq connection string for `CERT_USER`, presenting `cert`'s
    /// certificate (`sslmode=require`: the server's is self-signed).
    pub fn cert_conninfo(&self, host: IpAddr, cert: &TestCert) -> String {
        format!(
            "host={host} port={} user={CERT_USER} dbname=postgres sslmode=require \
             sslcert={} sslkey={} connect_timeout=10",
            self.port,
            path_str(&cert.cert),
            path_str(&cert.key)
        )
    }
}

/// The newest installed server's binaries (`/usr/lib/postgresql/N/bin`);
/// Debian does not put initdb or postgres on PATH.
fn bin_dir() -> PathBuf {
    let root = std::path::Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo xtask setup installs postgresql)",
                root.display()
            )
        })
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| root.join(format!("{v}/bin/postgres")).exists())
        .max()
        .unwrap_or_else(|| panic!("no PostgreSQL server under {}", root.display()));
    root.join(format!("{newest}/bin"))
}
