//! The bench's own load generator (`plainsight-bench peer`, hidden), run
//! inside the bench namespaces through `ip netns exec`: a server that
//! answers small HTTP requests, and clients that measure request/response
//! rate on kept-alive connections (`rr`), new-connection rate (`crr`:
//! connect, request, reply, close), or make one connection per
//! (source address, server port) pair to create many distinct edges
//! (`edges`). Plain threads and blocking sockets: nothing between the
//! syscalls and the numbers.

use anyhow::{Context as _, bail};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::FromRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Kept-alive request (rr) and one-shot request (crr, edges); the server
/// closes first after answering a `Connection: close` request, so the
/// client's ports never sit in TIME_WAIT and the connection rate is not
/// bounded by the ephemeral port range.
const KEEP_ALIVE: &[u8] = b"GET /rr HTTP/1.1\r\nHost: bench\r\n\r\n";
const CLOSE: &[u8] = b"GET /crr HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(clap::Subcommand)]
enum Role {
    /// Answer requests on PORT (THREADS accept threads) and on each of
    /// EXTRA ports (one thread each), until killed.
    Server {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Inclusive range FIRST-LAST.
        #[arg(long, value_parser = parse_range)]
        extra: Option<(u16, u16)>,
    },
    /// Request/response on kept-alive connections for SECS seconds.
    Rr(Load),
    /// New connection per request for SECS seconds.
    Crr(Load),
    /// One connection from each source address to each port.
    Edges {
        #[arg(long)]
        server: Ipv4Addr,
        /// Source addresses: the last octet range FIRST-LAST of SOURCE_NET.
        #[arg(long)]
        source_net: Ipv4Addr,
        #[arg(long, value_parser = parse_range)]
        sources: (u16, u16),
        #[arg(long, value_parser = parse_range)]
        ports: (u16, u16),
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
}

#[derive(clap::Args)]
struct Load {
    #[arg(long)]
    server: Ipv4Addr,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value_t = 4)]
    threads: usize,
    #[arg(long)]
    secs: f64,
    /// Offered load: at most this many operations per second in all
    /// (spread over the threads); default as fast as they go.
    #[arg(long)]
    rate: Option<f64>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a range FIRST-LAST"))?;
    let a: u16 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u16 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a > b {
        return Err(format!("{s:?}: FIRST is after LAST"));
    }
    Ok((a, b))
}

/// What a client run prints (one JSON line on stdout).
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
}

impl Outcome {
    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(line.trim()).with_context(|| format!("peer output {line:?}"))?;
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        match (num("ops"), num("errors"), num("secs")) {
            (Some(ops), Some(errors), Some(secs)) => Ok(Self {
                ops: ops as u64,
                errors: errors as u64,
                secs,
            }),
            _ => bail!("peer output {line:?} lacks ops/errors/secs"),
        }
    }

    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let outcome = match args.role {
        Role::Server {
            port,
            threads,
            extra,
        } => return serve(port, threads, extra),
        Role::Rr(l) => timed(&l, |stop| rr_worker(l.server, l.port, stop)),
        Role::Crr(l) => {
            // Each thread's share of the offered load, as a gap between starts.
            let gap = l
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(l.threads as f64 / r));
            timed(&l, |stop| crr_worker(l.server, l.port, gap, stop))
        }
        Role::Edges {
            server,
            source_net,
            sources,
            ports,
            threads,
        } => {
            if sources.1 > 255 {
                bail!(
                    "--sources {}-{}: last octets go up to 255",
                    sources.0,
                    sources.1
                );
            }
            edges(server, source_net, sources, ports, threads)
        }
    };
    println!(
        "{}",
        serde_json::json!({"ops": outcome.ops, "errors": outcome.errors, "secs": outcome.secs})
    );
    Ok(())
}

fn serve(port: u16, threads: usize, extra: Option<(u16, u16)>) -> anyhow::Result<()> {
    let mut handles = Vec::new();
    let extra_ports = extra
        .map_or(0..=0, |(a, b)| a..=b)
        .skip(usize::from(extra.is_none()));
    for (port, threads) in std::iter::once((port, threads)).chain(extra_ports.map(|p| (p, 1))) {
        let listener = listen(port).with_context(|| format!("listening on port {port}"))?;
        for _ in 0..threads {
            let l = listener.try_clone()?;
            handles.push(std::thread::spawn(move || {
                loop {
                    if let Ok((conn, _)) = l.accept() {
                        let _ = answer(conn);
                    }
                }
            }));
        }
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// A listener with a deep accept queue: std's default backlog would drop
/// SYNs at high connection rates and turn them into 1 s retransmit stalls.
fn listen(port: u16) -> std::io::Result<TcpListener> {
    // SAFETY: plain socket calls on a descriptor we own; on success it is
    // handed to TcpListener, on failure closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let listener = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = sockaddr(Ipv4Addr::UNSPECIFIED, port);
        if libc::bind(
            fd,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
            || libc::listen(fd, 4096) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(listener)
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Serves one connection: a reply per request, until the client closes or
/// asks for `Connection: close`.
fn answer(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = [0u8; 512];
    let mut have = 0;
    loop {
        let n = conn.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let req = &buf[..have];
        if req.windows(4).any(|w| w == b"\r\n\r\n") {
            conn.write_all(REPLY)?;
            if req.windows(17).any(|w| w == b"Connection: close") {
                return Ok(());
            }
            have = 0;
        } else if have == buf.len() {
            return Ok(());
        }
    }
}

/// Runs `threads` workers for `secs`; each returns (ops, errors).
fn timed<W>(l: &Load, worker: W) -> Outcome
where
    W: Fn(&AtomicBool) -> (u64, u64) + Sync,
{
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (ops, errors) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..l.threads).map(|_| s.spawn(|| worker(&stop))).collect();
        std::thread::sleep(Duration::from_secs_f64(l.secs));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 1)))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    Outcome {
        ops,
        errors,
        secs: started.elapsed().as_secs_f64(),
    }
}

fn rr_worker(server: Ipv4Addr, port: u16, stop: &AtomicBool) -> (u64, u64) {
    let (mut ops, mut errors) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = TcpStream::connect((server, port)) else {
            errors += 1;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = conn.set_nodelay(true);
        let mut reply = [0u8; REPLY.len()];
        while !stop.load(Ordering::Relaxed) {
            if conn.write_all(KEEP_ALIVE).is_err() || conn.read_exact(&mut reply).is_err() {
                errors += 1;
                break;
            }
            ops += 1;
        }
    }
    (ops, errors)
}

/// New connections back to back, or one every `gap` (on a fixed schedule,
/// so a slow connection is made up for, not added to the gap).
fn crr_worker(server: Ipv4Addr, port: u16, gap: Option<Duration>, stop: &AtomicBool) -> (u64, u64) {
    let (mut ops, mut errors) = (0, 0);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(gap) = gap {
            next += gap;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        match one_request(None, SocketAddrV4::new(server, port)) {
            Ok(()) => ops += 1,
            Err(_) => errors += 1,
        }
    }
    (ops, errors)
}

/// connect (from `source` if given), request, read the reply to the
/// server's close, close.
fn one_request(source: Option<Ipv4Addr>, to: SocketAddrV4) -> std::io::Result<()> {
    let mut conn = match source {
        None => TcpStream::connect(to)?,
        Some(src) => connect_from(src, to)?,
    };
    conn.set_nodelay(true)?;
    conn.write_all(CLOSE)?;
    let mut reply = Vec::with_capacity(64);
    conn.read_to_end(&mut reply)?;
    if reply != REPLY {
        return Err(std::io::Error::other("unexpected reply"));
    }
    Ok(())
}

fn connect_from(src: Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    // SAFETY: plain socket calls on a descriptor we own (closed by the
    // TcpStream that takes it, also on error).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let from = sockaddr(src, 0);
        let dst = sockaddr(*to.ip(), to.port());
        if libc::bind(fd, (&raw const from).cast(), len) != 0
            || libc::connect(fd, (&raw const dst).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

fn edges(
    server: Ipv4Addr,
    net: Ipv4Addr,
    sources: (u16, u16),
    ports: (u16, u16),
    threads: usize,
) -> Outcome {
    let [a, b, c, _] = net.octets();
    let pairs: Vec<(Ipv4Addr, u16)> = (sources.0..=sources.1)
        .flat_map(|s| {
            let src = Ipv4Addr::new(a, b, c, s as u8);
            (ports.0..=ports.1).map(move |p| (src, p))
        })
        .collect();
    let pairs = Arc::new(pairs);
    let started = Instant::now();
    let (ops, errors) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let pairs = pairs.clone();
                s.spawn(move || {
                    let (mut ops, mut errors) = (0u64, 0u64);
                    for &(src, port) in pairs.iter().skip(t).step_by(threads) {
                        match one_request(Some(src), SocketAddrV4::new(server, port)) {
                            Ok(()) => ops += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    (ops, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 1)))
            .fold((0, 0), |x, y| (x.0 + y.0, x.1 + y.1))
    });
    Outcome {
        ops,
        errors,
        secs: started.elapsed().as_secs_f64(),
    }
}
