//! The agent's HTTP endpoints against hostile neighbours, end to end with
//! the real binary:
//!
//! - thousands of connections that send half a request header are closed
//!   by the header-read timeout (or at once beyond `api.max_connections`)
//!   while `/metrics` answers on its own listener, a flood of
//!   `/api/v1/edges` requests runs, and real flows lose no verdict;
//! - the edges API can require a bearer token read from a file, rotated
//!   without a restart; `plainsight edges --token-file` presents it; a bad
//!   token file stops the start with nothing attached;
//! - the API listener can speak HTTPS (`api.tls_cert_file`/`tls_key_file`),
//!   refuses plain HTTP then, picks up a rotated certificate without a
//!   restart; `plainsight edges --ca-file` talks to it;
//! - `/readyz` says 503 within seconds when a program is detached from
//!   under the agent (`bpftool link detach`), and the attached gauge drops;
//! - `/readyz` waits for the Kubernetes lists, and says ready (and why
//!   not synced) once `kubernetes.sync_timeout` passes.

use plainsight_tests::{
    Agent, Topology, WorkDir,
    agent::{cgroup_programs, find, free_port, parse_metrics},
    http,
    servers::{HTTP_PORT, HttpAndTls},
};
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

const SLOW: usize = 2000;
const CAP: usize = 200;
const HEADER_TIMEOUT_S: u64 = 3;
const FLOWS: usize = 300;

fn metrics_at(addr: SocketAddr) -> Vec<plainsight_tests::agent::Sample> {
    let (status, body) = http::get(None, addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

fn value(samples: &[plainsight_tests::agent::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels).map_or(0.0, |s| s.value)
}

/// Room for the test's own `SLOW` sockets (the agent inherits it).
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a valid struct, for this process.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut r), 0);
        r.rlim_cur = r.rlim_max.max(8192).min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const r), 0);
    }
    assert!(
        r.rlim_cur >= 4 * SLOW as u64,
        "RLIMIT_NOFILE {} is too low",
        r.rlim_cur
    );
}

#[test]
fn slow_connections_are_closed_while_metrics_answer_and_no_verdict_is_lost() {
    plainsight_tests::require_root();
    raise_fd_limit();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let dir = WorkDir::new("http-slow");
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = dir.join("plainsight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[api]\nheader_read_timeout = \"{HEADER_TIMEOUT_S}s\"\nrequest_timeout = \"20s\"\n\
             max_connections = {CAP}\n\n[metrics]\nlisten = \"{metrics_addr}\"\n"
        ),
    )
    .expect("writing config");
    let agent = Agent::on_cgroup_with(&t, &["--config", cfg.to_str().expect("utf-8")]);

    // Real flows from the client namespace, all through the slow-connection
    // siege and an edges flood.
    let url = format!("http://{}:{HTTP_PORT}/", t.server_ip);
    let flows = std::thread::scope(|scope| {
        let done = Arc::new(AtomicBool::new(false));
        let edges_served = Arc::new(AtomicU64::new(0));
        let flood: Vec<_> = (0..4)
            .map(|_| {
                let (done, served, addr) = (done.clone(), edges_served.clone(), agent.addr);
                scope.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        if matches!(http::get(None, addr, "/api/v1/edges"), Ok((200, _))) {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let client = scope.spawn(|| {
            plainsight_tests::clients::run(
                &t,
                &[
                    "sh",
                    "-c",
                    &format!(
                        "for i in $(seq {FLOWS}); do curl -sS -o /dev/null {url} || exit 1; done"
                    ),
                ],
                b"",
            );
        });

        // The siege: each connection sends half a request header and waits.
        let opened = Instant::now();
        let mut held = Vec::with_capacity(SLOW);
        for _ in 0..SLOW {
            let mut s = TcpStream::connect_timeout(&agent.addr, Duration::from_secs(5))
                .expect("connecting a slow client");
            // A rejected connection may already be closed: ignore the write.
            let _ = s.write_all(b"GET /api/v1/edges HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            held.push(s);
        }
        let open_took = opened.elapsed();

        // Meanwhile /metrics answers on its own listener, promptly.
        let mut slowest_scrape = Duration::ZERO;
        for _ in 0..5 {
            let t0 = Instant::now();
            let m = metrics_at(metrics_addr);
            slowest_scrape = slowest_scrape.max(t0.elapsed());
            assert!(value(&m, "plainsight_build_info", &[]) == 1.0);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            slowest_scrape < Duration::from_secs(1),
            "/metrics took {slowest_scrape:?}"
        );

        // Every slow connection is closed by the agent: at once beyond the
        // cap, the rest by the header-read timeout.
        let mut last_close = Duration::ZERO;
        for s in &mut held {
            s.set_read_timeout(Some(Duration::from_secs(HEADER_TIMEOUT_S + 5)))
                .expect("read timeout");
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Ok(n) => panic!(
                    "a half header got an answer: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e) => panic!(
                    "a slow connection is still open after {:?}: {e}",
                    opened.elapsed()
                ),
            }
            last_close = last_close.max(opened.elapsed());
        }
        client.join().expect("client loop");
        done.store(true, Ordering::Relaxed);
        for f in flood {
            f.join().expect("edges flood");
        }
        eprintln!(
            "{SLOW} slow connections opened in {open_took:?}, all closed {last_close:?} after the \
             first opened; slowest /metrics {slowest_scrape:?}; {} edge lists served meanwhile",
            edges_served.load(Ordering::Relaxed)
        );
        assert!(
            last_close < open_took + Duration::from_secs(HEADER_TIMEOUT_S + 2),
            "the last slow connection closed {last_close:?} after opening began (opening took {open_took:?})"
        );
        assert!(
            edges_served.load(Ordering::Relaxed) > 0,
            "the edges flood got no answer"
        );
        FLOWS
    });

    // No verdict lost: every curl is a flow on /metrics, nothing dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = metrics_at(metrics_addr);
        let seen = value(
            &m,
            "plainsight_flows_total",
            &[
                ("server_port", &HTTP_PORT.to_string()),
                ("protocol", "http"),
            ],
        );
        if seen >= flows as f64 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let port = HTTP_PORT.to_string();
    assert_eq!(
        value(
            &m,
            "plainsight_flows_total",
            &[("server_port", &port), ("protocol", "http")]
        ),
        flows as f64,
        "verdicts for {flows} curl flows"
    );
    assert_eq!(value(&m, "plainsight_events_lost_total", &[]), 0.0);
    let conns = |outcome| {
        value(
            &m,
            "plainsight_http_connections_total",
            &[("listener", "api"), ("outcome", outcome)],
        )
    };
    eprintln!(
        "api listener: {} accepted, {} rejected over the cap, {} timed out",
        conns("accepted"),
        conns("rejected"),
        conns("timed_out")
    );
    // Each slow connection was either over the cap or timed out (the
    // edges flood's may be too); the cap was full at some point, since far
    // more than CAP were opened within the timeout.
    let (rejected, timed_out) = (conns("rejected"), conns("timed_out"));
    assert!(
        rejected + timed_out >= SLOW as f64,
        "{rejected} + {timed_out}"
    );
    // (The flood's four threads may hold a few of the CAP slots.)
    assert!(
        rejected > 0.0 && timed_out >= (CAP - 4) as f64,
        "{rejected}, {timed_out}"
    );
    // The agent is still ready and serving.
    assert_eq!(
        http::get(None, agent.addr, "/readyz").expect("readyz").0,
        200
    );
}

#[test]
fn the_edges_api_requires_its_rotatable_token_and_metrics_listen_apart() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let dir = WorkDir::new("http-token");
    let token = dir.join("token");
    std::fs::write(&token, "first-token-7f3a\n").expect("token");
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = dir.join("plainsight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[api]\ntoken_file = \"{}\"\n\n[metrics]\nlisten = \"{metrics_addr}\"\n",
            token.display()
        ),
    )
    .expect("config");
    let agent = Agent::on_cgroup_with(&t, &["--config", cfg.to_str().expect("utf-8")]);
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));

    // No token, a wrong one: 401. /metrics is not on the API's listener.
    let (status, body) = agent.get("/api/v1/edges").expect("GET");
    assert_eq!(status, 401, "{body}");
    assert_eq!(agent.get("/metrics").expect("GET").0, 404);
    let (status, body) = http::get(None, metrics_addr, "/api/v1/edges").expect("GET");
    assert_eq!(status, 404);
    assert!(body.contains(&agent.addr.to_string()), "{body}");
    assert_eq!(
        http::get(None, metrics_addr, "/readyz").expect("GET").0,
        200
    );

    let edges = |token_file: &std::path::Path| {
        std::process::Command::new(plainsight_tests::plainsight_bin())
            .args([
                "edges",
                "--json",
                "--addr",
                &format!("http://{}", agent.addr),
            ])
            .arg("--token-file")
            .arg(token_file)
            .output()
            .expect("plainsight edges")
    };
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "not-the-token").expect("wrong token");
    let out = edges(&wrong);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = edges(&token);
        assert!(out.status.success(), "{out:?}");
        if String::from_utf8_lossy(&out.stdout).contains(&format!("\"server_port\": {HTTP_PORT}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no edge on {HTTP_PORT}: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Rotated as a Secret volume does (a rename): the new token works, the
    // old one no longer does, without a restart.
    let next = dir.join("token.next");
    std::fs::write(&next, "second-token-91c2").expect("token");
    std::fs::rename(&next, &token).expect("rotate");
    assert!(edges(&token).status.success());
    std::fs::write(&wrong, "first-token-7f3a").expect("old token");
    assert!(!edges(&wrong).status.success());
    assert!(agent.log_text().contains("token reloaded"));
}

/// Runs the openssl CLI in `dir`; an argument `@f` is the file `dir/f`.
fn openssl(dir: &WorkDir, args: &str) {
    let args: Vec<_> = args
        .split(' ')
        .map(|a| {
            a.strip_prefix('@')
                .map_or_else(|| a.into(), |f| dir.join(f).into_os_string())
        })
        .collect();
    let out = std::process::Command::new("openssl")
        .args(&args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.crt`, made once) and a leaf `{name}.crt`/`.key` for 127.0.0.1
/// it issued, as an operator (or cert-manager) would provide them.
fn issue(dir: &WorkDir, name: &str) {
    const KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    if !dir.join("ca.crt").exists() {
        openssl(
            dir,
            &format!("req -x509 {KEY} -days 2 -subj /CN=ca -keyout @ca.key -out @ca.crt"),
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        dir,
        &format!("req {KEY} -subj /CN={name} -keyout @{name}.key -out @{name}.csr"),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -days 2 -in @{name}.csr -CA @ca.crt -CAkey @ca.key -CAcreateserial \
             -extfile @san.ext -out @{name}.crt"
        ),
    );
}

#[test]
fn the_api_speaks_https_with_a_rotatable_certificate() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let _servers = HttpAndTls::start(&t);
    let dir = WorkDir::new("http-tls");
    issue(&dir, "one");
    std::fs::write(dir.join("token"), "tls-token-5e1d\n").expect("token");
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = dir.join("plainsight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[api]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntoken_file = \"{}\"\n\n\
             [metrics]\nlisten = \"{metrics_addr}\"\n",
            dir.join("api.crt").display(),
            dir.join("api.key").display(),
            dir.join("token").display(),
        ),
    )
    .expect("config");
    for ext in ["crt", "key"] {
        std::fs::copy(
            dir.join(&format!("one.{ext}")),
            dir.join(&format!("api.{ext}")),
        )
        .expect("copy");
    }
    let check = std::process::Command::new(plainsight_tests::plainsight_bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("api: https with"),
        "{check:?}"
    );

    let port = free_port();
    let agent = Agent::spawn(
        None,
        port,
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--cgroup",
            t.cgroup.to_str().expect("utf-8"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http::get(None, metrics_addr, "/readyz"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));

    // Plain HTTP on the TLS listener gets no HTTP answer.
    assert!(!matches!(agent.get("/readyz"), Ok((200, _))));
    let edges = |ca: Option<&str>| {
        let mut c = std::process::Command::new(plainsight_tests::plainsight_bin());
        c.args([
            "edges",
            "--json",
            "--addr",
            &format!("https://127.0.0.1:{port}"),
        ])
        .arg("--token-file")
        .arg(dir.join("token"));
        if let Some(ca) = ca {
            c.arg("--ca-file").arg(dir.join(ca));
        }
        c.output().expect("plainsight edges")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = edges(Some("ca.crt"));
        assert!(out.status.success(), "{out:?}");
        if String::from_utf8_lossy(&out.stdout).contains(&format!("\"server_port\": {HTTP_PORT}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no edge on {HTTP_PORT}: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The system's CAs do not vouch for it: said, with the way out.
    let out = edges(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ca-file"),
        "{out:?}"
    );

    // Rotated by rename, as a Secret volume does: served without a restart.
    issue(&dir, "two");
    std::fs::rename(dir.join("two.key"), dir.join("api.key")).expect("rotate key");
    std::fs::rename(dir.join("two.crt"), dir.join("api.crt")).expect("rotate cert");
    assert!(edges(Some("ca.crt")).status.success());
    let served = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -CAfile {} </dev/null 2>/dev/null \
             | openssl x509 -noout -subject",
            dir.join("ca.crt").display()
        ))
        .output()
        .expect("s_client");
    assert!(
        String::from_utf8_lossy(&served.stdout).contains("CN = two"),
        "{served:?}"
    );
    assert!(agent.log_text().contains("certificate reloaded"));
    assert_eq!(
        value(
            &metrics_at(metrics_addr),
            "plainsight_api_tls_reloads_total",
            &[("outcome", "reloaded")]
        ),
        1.0
    );
}

#[test]
fn readyz_fails_when_a_program_is_detached_from_under_the_agent() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let agent = Agent::on_cgroup(&t);
    assert_eq!(
        agent.value("plainsight_programs_attached", &[("hook", "cgroup")]),
        2.0
    );
    let (_, id) = agent
        .links()
        .into_iter()
        .find(|(kind, _)| kind == "cgroup")
        .expect("a cgroup link");
    let out = std::process::Command::new("bpftool")
        .args(["link", "detach", "id", &id.to_string()])
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, body) = loop {
        let r = agent.get("/readyz").expect("GET /readyz");
        if r.0 != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 503, "{body}\n{}", agent.log_text());
    assert!(
        body.contains("attachment lost: cgroup_") && body.contains("detached from"),
        "{body}"
    );
    assert_eq!(
        agent.value("plainsight_programs_attached", &[("hook", "cgroup")]),
        1.0
    );
    assert!(agent.log_text().contains("nothing is observed there"));
}

#[test]
fn a_bad_token_file_stops_the_start_with_nothing_attached() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let dir = WorkDir::new("http-badtoken");
    let empty = dir.join("empty-token");
    std::fs::write(&empty, "\n").expect("token");
    for (file, why) in [(dir.join("missing"), "No such file"), (empty, "is empty")] {
        let cfg = dir.join("plainsight.toml");
        std::fs::write(
            &cfg,
            format!("[api]\ntoken_file = \"{}\"\n", file.display()),
        )
        .expect("config");
        let out = std::process::Command::new(plainsight_tests::plainsight_bin())
            .args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--config")
            .arg(&cfg)
            .arg("--cgroup")
            .arg(&t.cgroup)
            .output()
            .expect("plainsight run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("api.token_file: ") && err.contains(why),
            "{err}"
        );
        assert_eq!(cgroup_programs(&t.cgroup), 0, "attached despite: {err}");
    }
}

#[test]
fn readyz_waits_for_kubernetes_identities_then_says_they_timed_out() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let dir = WorkDir::new("http-readyz");
    // An API server that accepts connections and never answers.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let kubeconfig = dir.join("kubeconfig");
    fake_apiserver::write_kubeconfig(&kubeconfig, stalled.local_addr().expect("addr"), Some("t"));
    let cfg = dir.join("plainsight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kubernetes]\nkubeconfig = \"{}\"\nsync_timeout = \"4s\"\n",
            kubeconfig.display()
        ),
    )
    .expect("config");
    let cg = t.cgroup.to_str().expect("utf-8");
    let started = Instant::now();
    let agent = Agent::spawn(
        None,
        free_port(),
        &["--config", cfg.to_str().expect("utf-8"), "--cgroup", cg],
    );
    // Not ready while the lists are missing, with the reason.
    let mut saw_unready = false;
    let body = loop {
        match agent.get("/readyz") {
            // (The first drain comes a moment after the API starts.)
            Ok((503, body)) if body.trim() == "verdict ring not drained yet" => {}
            Ok((503, body)) => {
                assert_eq!(body.trim(), "kubernetes identities not synced yet");
                saw_unready = true;
            }
            Ok((200, body)) => break body,
            other => assert!(started.elapsed() < Duration::from_secs(30), "{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(saw_unready, "ready before the sync timeout: {body}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(body.contains("not synced after 4 s"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agent
        .log_text()
        .contains("kubernetes identities not synced after 4 s")
    {
        assert!(
            Instant::now() < deadline,
            "no warning logged:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stalled);
}
