//! The verdict model from docs/architecture.md "Verdicts". Every enum is a `u8` on the
//! wire; `from_u8` maps unknown values to the safest reading (`Unknown`).

/// Generates a `u8` enum with its wire conversion and its metric-label name.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $val:literal => $label:literal,)+ }) => {
        $(#[$m])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant = $val,)+ }

        impl $name {
            /// Every variant, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Decodes a wire byte; values this build does not know are `None`.
            #[must_use]
            pub const fn from_u8(v: u8) -> Option<Self> {
                match v { $($val => Some($name::$variant),)+ _ => None }
            }

            /// The stable lower-case name used in metrics, JSON and tables.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }
    };
}

wire_enum! {
    /// Whether the bytes on the wire can be read by someone on the path.
    Encryption {
        /// Not classified (yet), or the bytes match nothing we know.
        Unknown = 0 => "unknown",
        /// TLS (or SSL), directly or after a STARTTLS-style upgrade.
        Tls = 1 => "tls",
        /// Encrypted by a non-TLS protocol, e.g. SSH.
        Encrypted = 2 => "encrypted",
        /// Readable application bytes.
        Plaintext = 3 => "plaintext",
    }
}

wire_enum! {
    /// The application protocol, when the first bytes name it.
    Protocol {
        Unknown = 0 => "unknown",
        Tls = 1 => "tls",
        Http = 2 => "http",
        Http2 = 3 => "http2",
        Postgres = 4 => "postgres",
        Mysql = 5 => "mysql",
        Redis = 6 => "redis",
        Mongodb = 7 => "mongodb",
        Memcached = 8 => "memcached",
        Amqp = 9 => "amqp",
        Kafka = 10 => "kafka",
        Mqtt = 11 => "mqtt",
        Smtp = 12 => "smtp",
        Imap = 13 => "imap",
        Pop3 = 14 => "pop3",
        Ftp = 15 => "ftp",
        Ldap = 16 => "ldap",
        Dns = 17 => "dns",
        Ssh = 18 => "ssh",
        Nats = 19 => "nats",
        Rsync = 20 => "rsync",
        Socks = 21 => "socks",
        Mssql = 22 => "mssql",
        Oracle = 23 => "oracle",
        Db2 = 24 => "db2",
        Smb = 25 => "smb",
        Kerberos = 26 => "kerberos",
        Ajp = 27 => "ajp",
        Xmpp = 28 => "xmpp",
        Stomp = 29 => "stomp",
        Pulsar = 30 => "pulsar",
        Rocketmq = 31 => "rocketmq",
        Cassandra = 32 => "cassandra",
        Elasticsearch = 33 => "elasticsearch",
        Openwire = 34 => "openwire",
        Zmtp = 35 => "zmtp",
        Telnet = 36 => "telnet",
        Rdp = 37 => "rdp",
        Zookeeper = 38 => "zookeeper",
        Vnc = 39 => "vnc",
        Irc = 40 => "irc",
        Dubbo = 41 => "dubbo",
    }
}

wire_enum! {
    /// What matters most about the verdict (Linkerd's `no_tls_reason` idea).
    /// Ordered by importance: when several apply, the highest one is kept.
    Reason {
        None = 0 => "",
        Midstream = 1 => "midstream",
        StarttlsUpgraded = 2 => "starttls_upgraded",
        WeakTls = 3 => "weak_tls",
        StarttlsRefused = 4 => "starttls_refused",
        /// Only the login went through TLS; the session after it runs in
        /// the clear (SQL Server's ENCRYPT_OFF).
        LoginOnlyEncrypted = 5 => "login_only_encrypted",
        CleartextCredentials = 6 => "cleartext_credentials",
        /// Set by the agent's policy (`[[policy.require]]`), never by the
        /// kernel: a TLS flow without the client certificate a rule requires.
        ClientAuthRequired = 7 => "client_auth_required",
        /// ... with a lower TLS version than a rule's `min_tls`.
        MinTlsRequired = 8 => "min_tls_required",
        /// ... whose server certificate has issues a rule forbids.
        CertIssuesRequired = 9 => "cert_issues_required",
    }
}

wire_enum! {
    /// Negotiated TLS version, when a ServerHello shows it.
    TlsVersion {
        Unknown = 0 => "unknown",
        Ssl2 = 1 => "ssl2",
        Ssl3 = 2 => "ssl3",
        Tls10 = 3 => "1.0",
        Tls11 = 4 => "1.1",
        Tls12 = 5 => "1.2",
        Tls13 = 6 => "1.3",
    }
}

impl TlsVersion {
    /// Maps a TLS protocol version field (`03 0x`) to a version.
    #[must_use]
    pub const fn from_wire(major: u8, minor: u8) -> Self {
        match (major, minor) {
            (3, 0) => Self::Ssl3,
            (3, 1) => Self::Tls10,
            (3, 2) => Self::Tls11,
            (3, 3) => Self::Tls12,
            (3, 4) => Self::Tls13,
            _ => Self::Unknown,
        }
    }

    /// SSL 2/3, TLS 1.0 and 1.1 are deprecated (RFC 8996).
    #[must_use]
    pub const fn is_weak(self) -> bool {
        matches!(self, Self::Ssl2 | Self::Ssl3 | Self::Tls10 | Self::Tls11)
    }
}

/// A final per-flow verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub protocol: Protocol,
    pub encryption: Encryption,
    pub reason: Reason,
    pub tls_version: TlsVersion,
}

impl Verdict {
    #[must_use]
    pub const fn new(protocol: Protocol, encryption: Encryption) -> Self {
        Self {
            protocol,
            encryption,
            reason: Reason::None,
            tls_version: TlsVersion::Unknown,
        }
    }

    #[must_use]
    pub const fn plaintext(protocol: Protocol) -> Self {
        Self::new(protocol, Encryption::Plaintext)
    }

    /// Keeps the more important of the current reason and `reason`.
    /// Branch-free: in the kernel every branch on a verdict value would split
    /// the verifier's paths all the way to the ring buffer.
    #[must_use]
    pub const fn with_reason(mut self, reason: Reason) -> Self {
        let a = self.reason as u8;
        let b = reason as u8;
        // 0xff when a < b, else 0.
        let lt = (((a as i16) - (b as i16)) >> 8) as u8;
        let max = a ^ ((a ^ b) & lt);
        // SAFETY: `max` is `a` or `b`, both values of the `repr(u8)` Reason.
        self.reason = unsafe { core::mem::transmute::<u8, Reason>(max) };
        self
    }
}
