//! A real headless Chromium (Debian's `chromium`) driven through the
//! DevTools protocol over `--remote-debugging-pipe`: commands are JSON
//! objects written to the browser's fd 3, answers and events come back on
//! its fd 4, each message ended by a NUL byte. No WebSocket, no driver
//! download: the browser and std are all it needs.

use crate::topology::{Proc, WorkDir, path_str};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Chromium {
    proc: Proc,
    _profile: WorkDir,
    to_browser: std::fs::File,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event seen so far (console messages, exceptions, log entries).
    pub events: Vec<Value>,
}

/// Debian's chromium, required.
pub fn chromium() -> PathBuf {
    crate::tools::require_tool(
        "chromium",
        "install Debian's `chromium` package (`cargo xtask setup` does)",
    )
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just returned these descriptors; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Chromium {
    /// A fresh browser (new profile, no network of its own: no updates,
    /// no sync, no QUIC) with one page of `width`x`height`, attached.
    pub fn start(width: u32, height: u32) -> Self {
        let profile = WorkDir::new("chromium");
        let (cmd_read, cmd_write) = pipe();
        let (out_read, out_write) = pipe();
        let (child_in, child_out) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", path_str(&profile.path)))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        // Its shared-memory files (--disable-dev-shm-usage) go with the
        // profile, not into /tmp.
        .env("TMPDIR", &profile.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(profile.join("chromium.log")).expect("chromium log"));
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork
        // and exec. The descriptors are first moved above 10 so that
        // placing one at 3 or 4 cannot overwrite the other.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(child_in, libc::F_DUPFD, 10);
                let b = libc::fcntl(child_out, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromium: {e}"));
        drop((cmd_read, out_write));
        let (tx, rx) = channel();
        let reader = BufReader::new(std::fs::File::from(out_read));
        std::thread::spawn(move || {
            for msg in reader.split(0) {
                let Ok(msg) = msg else { return };
                let Ok(v) = serde_json::from_slice::<Value>(&msg) else {
                    continue;
                };
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut c = Self {
            proc: Proc::from_child(child, "chromium"),
            _profile: profile,
            to_browser: std::fs::File::from(cmd_write),
            from_browser: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
        };
        let target = c.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = c.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        c.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            c.call(domain, json!({}));
        }
        c.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        c
    }

    /// Sends one command (to the page once attached) and returns its result;
    /// panics on a protocol error or no answer within 30 s.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("writing to chromium ({method}): {e}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.recv(deadline, method);
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("chromium {method}: {err}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn recv(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("chromium: no answer to {what} in 30 s"),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "chromium exited while waiting for {what}:\n{}",
                std::fs::read_to_string(self._profile.join("chromium.log")).unwrap_or_default()
            ),
        }
    }

    /// Loads `url` and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
        let deadline = Instant::now() + TIMEOUT;
        while !self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            let v = self.recv(deadline, "Page.loadEventFired");
            self.events.push(v);
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its
    /// value; panics if it throws.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true` (up to `secs`); panics with `what`.
    pub fn wait_until(&mut self, expr: &str, secs: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.eval(expr) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "{what} not within {secs} s; page text:\n{}",
                self.eval("document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Console errors and warnings, uncaught exceptions and browser log
    /// errors (failed loads, CSP refusals) seen so far, as text.
    pub fn errors(&mut self) -> Vec<String> {
        // Drain what already arrived.
        while let Ok(v) = self.from_browser.try_recv() {
            self.events.push(v);
        }
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.exceptionThrown" => Some(e["params"]["exceptionDetails"].to_string()),
                "Runtime.consoleAPICalled"
                    if matches!(
                        e["params"]["type"].as_str(),
                        Some("error" | "assert" | "warning")
                    ) =>
                {
                    Some(e["params"]["args"].to_string())
                }
                "Log.entryAdded"
                    if matches!(
                        e["params"]["entry"]["level"].as_str(),
                        Some("error" | "warning")
                    ) =>
                {
                    Some(e["params"]["entry"].to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// A PNG of the top of the page, at most `max_height` CSS pixels (the
    /// whole page when shorter), written to `path`; returns its size.
    pub fn screenshot(&mut self, path: &Path, max_height: f64) -> usize {
        let size = self.call("Page.getLayoutMetrics", json!({}));
        let (w, h) = (
            size["cssContentSize"]["width"].as_f64().unwrap_or(1280.0),
            size["cssContentSize"]["height"]
                .as_f64()
                .unwrap_or(800.0)
                .min(max_height),
        );
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        );
        write_base64(&r["data"], path)
    }

    /// The page printed to PDF (print style sheet), written to `path`.
    pub fn print_pdf(&mut self, path: &Path) -> usize {
        let r = self.call("Page.printToPDF", json!({"printBackground": true}));
        write_base64(&r["data"], path)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.proc.stop(libc::SIGTERM);
    }
}

fn write_base64(data: &Value, path: &Path) -> usize {
    let bytes = base64_decode(data.as_str().expect("base64 data"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("artefact dir");
    }
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    bytes.len()
}

/// Standard base64 with padding, as DevTools sends binary data.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", char::from(c)),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..digits.len()]);
    }
    out
}

/// Where tests keep what they render: `target/artefacts/NAME` in the
/// workspace.
pub fn artefact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/artefacts")
        .join(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("aGVsbG8="), b"hello");
        assert_eq!(super::base64_decode("aGk="), b"hi");
        assert_eq!(super::base64_decode("YWJj"), b"abc");
    }
}
