//! A gRPC server (Debian's `python3-grpcio`): one unary echo method served
//! in the clear over HTTP/2 (h2c, as meshes without mTLS run gRPC) and over
//! TLS. The client is `clients::grpc`, the same library as a real client.

use super::Daemon;
use crate::topology::{TestCert, Topology, WorkDir, path_str};

/// Below the kernel's ephemeral range (32768-60999), like every server port
/// of the tests: a flow picked up mid-stream takes the higher port for the
/// client's (agent-common/src/track.rs), so gRPC's usual 50051 would lose
/// to a client port under it about half the time.
pub const H2C_PORT: u16 = 5051;
pub const TLS_PORT: u16 = 5052;
/// `/service/method` of the echo.
pub const METHOD: &str = "/plainsight.Echo/Say";
/// Debian's interpreter, where `python3-grpcio` lives (a `python3` earlier
/// on PATH, e.g. pyenv's, would not have it).
pub const PYTHON: &str = "/usr/bin/python3";

/// No generated stubs: a generic handler passes the request bytes back.
const SERVER: &str = r#"
import sys
from concurrent import futures
import grpc

h2c_port, tls_port, cert, key = sys.argv[1:5]
service, method = sys.argv[5].strip("/").split("/")
echo = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: echo}),))
server.add_insecure_port(f"[::]:{h2c_port}")
with open(key, "rb") as k, open(cert, "rb") as c:
    creds = grpc.ssl_server_credentials([(k.read(), c.read())])
server.add_secure_port(f"[::]:{tls_port}", creds)
server.start()
server.wait_for_termination()
"#;

pub struct Grpc {
    _daemon: Daemon,
    _dir: WorkDir,
}

impl Grpc {
    pub fn start(t: &Topology, cert: &TestCert) -> Self {
        let dir = WorkDir::new("grpc");
        let (h2c, tls) = (H2C_PORT.to_string(), TLS_PORT.to_string());
        let argv = [
            PYTHON,
            "-c",
            SERVER,
            &h2c,
            &tls,
            path_str(&cert.cert),
            path_str(&cert.key),
            METHOD,
        ];
        let daemon = Daemon::start(
            t,
            &argv,
            dir.join("grpc.log"),
            &[H2C_PORT, TLS_PORT],
            libc::SIGTERM,
        );
        Self {
            _daemon: daemon,
            _dir: dir,
        }
    }
}
