//! Two network namespaces joined by a veth pair, and a child cgroup: the
//! smallest picture of "two pods on a node" that never touches the host's
//! own interfaces or root cgroup.

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Which namespace a process runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

pub struct Topology {
    pub client_ns: String,
    pub server_ns: String,
    pub client_if: String,
    pub server_if: String,
    pub client_ip: Ipv4Addr,
    pub server_ip: Ipv4Addr,
    pub client_ip6: Ipv6Addr,
    pub server_ip6: Ipv6Addr,
    /// Child cgroup (cgroup v2) the cgroup hook attaches to.
    pub cgroup: PathBuf,
}

impl Topology {
    /// Creates the namespaces, the veth pair (IPv4 10.77.0.0/24 and IPv6
    /// fd77::/64 inside them) and the child cgroup. Panics with the failing
    /// command; whatever was made is removed by `Drop`.
    pub fn new() -> Self {
        crate::require_root();
        let n = std::process::id() % 100_000 * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100;
        let t = Self {
            client_ns: format!("plainsight-{n}-cli"),
            server_ns: format!("plainsight-{n}-srv"),
            client_if: format!("ps{n}c"),
            server_if: format!("ps{n}s"),
            client_ip: Ipv4Addr::new(10, 77, 0, 1),
            server_ip: Ipv4Addr::new(10, 77, 0, 2),
            client_ip6: "fd77::1".parse().expect("literal"),
            server_ip6: "fd77::2".parse().expect("literal"),
            cgroup: cgroup2_root().join(format!("plainsight-test-{n}")),
        };
        std::fs::create_dir(&t.cgroup)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", t.cgroup.display()));
        sh(&["ip", "netns", "add", &t.client_ns]);
        sh(&["ip", "netns", "add", &t.server_ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &t.client_if,
            "netns",
            &t.client_ns,
            "type",
            "veth",
            "peer",
            "name",
            &t.server_if,
            "netns",
            &t.server_ns,
        ]);
        for (ns, dev, v4, v6) in [
            (&t.client_ns, &t.client_if, t.client_ip, t.client_ip6),
            (&t.server_ns, &t.server_if, t.server_ip, t.server_ip6),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                dev,
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        t
    }

    /// A second veth pair between the two namespaces, named after the
    /// first with `suffix` appended, addressed 10.78.0.1/2 and fd78::1/2
    /// (one extra pair per topology). Returns (client end, server end);
    /// removed with the namespaces.
    pub fn add_veth(&self, suffix: &str) -> (String, String) {
        let (cif, sif) = (
            format!("{}{suffix}", self.client_if),
            format!("{}{suffix}", self.server_if),
        );
        sh(&[
            "ip",
            "link",
            "add",
            &cif,
            "netns",
            &self.client_ns,
            "type",
            "veth",
            "peer",
            "name",
            &sif,
            "netns",
            &self.server_ns,
        ]);
        for (ns, dev, v4, v6) in [
            (&self.client_ns, &cif, "10.78.0.1/24", "fd78::1/64"),
            (&self.server_ns, &sif, "10.78.0.2/24", "fd78::2/64"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        (cif, sif)
    }

    /// Deletes a veth pair by its server end (the peer goes with it).
    pub fn delete_veth(&self, server_if: &str) {
        sh(&["ip", "-n", &self.server_ns, "link", "del", server_if]);
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client_ns,
            Side::Server => &self.server_ns,
        }
    }

    fn command(&self, side: Side, in_cgroup: bool, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(side)]).args(argv);
        if in_cgroup {
            let procs = CString::new(
                self.cgroup
                    .join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .expect("cgroup path has no NUL");
            // SAFETY: only async-signal-safe calls (open, write, close) between
            // fork and exec. Writing "0" moves the writing process itself.
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                    libc::close(fd);
                    if ok {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd
    }

    /// Spawns `argv` in a namespace with the given stdin, stdout, stderr.
    fn start(&self, side: Side, in_cgroup: bool, argv: &[&str], stdio: [Stdio; 3]) -> Child {
        let [stdin, stdout, stderr] = stdio;
        self.command(side, in_cgroup, argv)
            // Its own process group: smbd, stopping, signals its whole group
            // (`kill(0, SIGTERM)`), which would otherwise be the test's, the
            // test runner's and the shell's that started them.
            .process_group(0)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {argv:?}: {e}"))
    }

    fn start_proc(&self, side: Side, in_cgroup: bool, argv: &[&str], stdio: [Stdio; 3]) -> Proc {
        let child = self.start(side, in_cgroup, argv, stdio);
        Proc::from_child(child, &argv.join(" "))
    }

    /// Starts a long-running process (a server) in a namespace.
    pub fn spawn(&self, side: Side, in_cgroup: bool, argv: &[&str]) -> Proc {
        self.start_proc(
            side,
            in_cgroup,
            argv,
            [Stdio::null(), Stdio::null(), Stdio::null()],
        )
    }

    /// Starts a long-running process (a server) in a namespace with its
    /// stdout and stderr in `log`, so a failed start can say why.
    pub fn spawn_logged(&self, side: Side, argv: &[&str], log: &Path) -> Proc {
        let f = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let out = f.try_clone().expect("dup log");
        self.start_proc(side, false, argv, [Stdio::null(), out.into(), f.into()])
    }

    /// Starts an interactive client (psql, redis-cli) whose stdin the test
    /// writes to: a connection that stays open between commands.
    pub fn session(&self, side: Side, in_cgroup: bool, argv: &[&str]) -> Session {
        let mut proc = self.start_proc(
            side,
            in_cgroup,
            argv,
            [Stdio::piped(), Stdio::null(), Stdio::null()],
        );
        Session {
            stdin: proc.child.stdin.take(),
            proc,
        }
    }

    /// Runs a client to completion in a namespace.
    pub fn run(&self, side: Side, in_cgroup: bool, argv: &[&str]) -> Output {
        self.run_input(side, in_cgroup, argv, b"")
    }

    /// Runs a client to completion in a namespace with `input` on its stdin.
    pub fn run_input(&self, side: Side, in_cgroup: bool, argv: &[&str], input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = self.start(
            side,
            in_cgroup,
            argv,
            [Stdio::piped(), Stdio::piped(), Stdio::piped()],
        );
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A client that exits before reading its input is the test's
        // business (its output says so), not a broken pipe here.
        let _ = stdin.write_all(input);
        drop(stdin);
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("running {argv:?}: {e}"))
    }

    /// A real `curl` request from the client namespace, inside the cgroup;
    /// asserts it got a 200.
    pub fn curl(&self, url: &str) {
        crate::clients::curl(self, &[], url);
    }

    /// Whether something listens on TCP `port` in the server namespace.
    pub fn listening(&self, port: u16) -> bool {
        self.ss(Side::Server, &["-Htln"])
            .contains(&format!(":{port} "))
    }

    /// Waits until something listens on TCP `port` in the server namespace.
    pub fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.listening(port) {
            assert!(
                Instant::now() < deadline,
                "nothing listens on port {port} in {}",
                self.server_ns
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `count` connections to TCP `port` are established from
    /// the client namespace.
    pub fn wait_established(&self, port: u16, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let filter = format!("( dport = :{port} )");
        loop {
            let out = self.ss(Side::Client, &["-Htn", "state", "established", &filter]);
            let n = out.lines().filter(|l| !l.trim().is_empty()).count();
            if n >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} of {count} connections to port {port} established from {}",
                self.client_ns
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ss(&self, side: Side, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns(side), "ss"])
            .args(args)
            .output()
            .expect("running ss");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Processes left in our namespaces or cgroup are ours: end them.
        for ns in [&self.client_ns, &self.server_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: signalling a process that lives in our namespace.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        // rmdir succeeds once the killed processes are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.cgroup).is_err()
            && self.cgroup.exists()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A spawned process, killed (by PID) when dropped.
pub struct Proc {
    pub child: Child,
    name: String,
}

impl Proc {
    pub fn from_child(child: Child, name: &str) -> Self {
        Self {
            child,
            name: name.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Proc {
    /// Asks the process to stop with `signal` (servers that leave state
    /// behind when killed: PostgreSQL's shared memory, for one) and waits up
    /// to 10 s before killing it.
    pub fn stop(&mut self, signal: i32) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = i32::try_from(self.pid()).expect("pid fits i32");
        // SAFETY: signalling the process we started, by its PID.
        unsafe { libc::kill(pid, signal) };
        self.wait_or_kill();
    }

    /// Polls `ready` every 50 ms until it holds; panics with `log()` when
    /// the process exits first or `timeout` passes.
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
        log: impl Fn() -> String,
    ) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before {what}:\n{}",
                    self.name,
                    log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not {what} after {timeout:?}:\n{}",
                self.name,
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to 10 s for the process to exit, then kills it.
    fn wait_or_kill(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that keeps its connection open while the test feeds it
/// commands on stdin; ended (by PID) when dropped.
pub struct Session {
    stdin: Option<std::process::ChildStdin>,
    pub proc: Proc,
}

impl Session {
    /// Writes one line of input: a command on the open connection.
    pub fn send(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("session input is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.proc.name()));
    }

    /// Ends the input, as a user ending the session would, and waits for
    /// the client to close its connection and exit.
    pub fn end(mut self) {
        self.stdin = None;
        self.proc.wait_or_kill();
    }
}

/// Runs a set-up command; panics with its output if it fails.
pub fn sh(argv: &[&str]) -> Output {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The cgroup v2 mount point (unified or hybrid hierarchy).
pub fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mountpoint = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .expect("no cgroup v2 hierarchy mounted")
}

/// A fresh temporary directory, removed with everything in it on drop.
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "plainsight-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A throwaway self-signed certificate and key for test servers.
pub struct TestCert {
    _dir: WorkDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    pub fn new() -> Self {
        let dir = WorkDir::new("cert");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        sh(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=plainsight-test",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ]);
        Self {
            _dir: dir,
            cert,
            key,
        }
    }
}

impl Default for TestCert {
    fn default() -> Self {
        Self::new()
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
