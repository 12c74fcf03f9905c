//! A running `spawnscope sentinel` for the privileged tests: its own
//! configuration and state in a temporary directory, `/metrics` on a
//! loopback port the kernel picks, its stderr collected line by line.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::spawnscope_bin;

pub struct Sentinel {
    child: Child,
    pub config: PathBuf,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A configuration for the tests: `dir` holds the state; every poll
/// saves it; `extra` is appended as is.
pub fn config(dir: &Path, extra: &str) -> String {
    format!(
        "interval = \"500ms\"\nstate = \"{}\"\nsave_every = 1\nlisten = \"127.0.0.1:0\"\n{extra}",
        dir.join("state").display()
    )
}

impl Sentinel {
    /// Writes `config_text` to `dir`/sentinel.toml, starts the sentinel
    /// and returns once it serves metrics.
    pub fn start(dir: &Path, config_text: &str) -> Self {
        Self::start_with(dir, config_text, &[])
    }

    /// [`Sentinel::start`] with extra command-line arguments.
    pub fn start_with(dir: &Path, config_text: &str, args: &[&str]) -> Self {
        Self::start_bin(&spawnscope_bin(), dir, config_text, args)
    }

    /// [`Sentinel::start_with`] with the spawnscope binary at `bin` (a
    /// release artifact).
    pub fn start_bin(bin: &Path, dir: &Path, config_text: &str, args: &[&str]) -> Self {
        let config = dir.join("sentinel.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(bin)
            .arg("sentinel")
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spawnscope sentinel");
        let err = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut s = Self {
            child,
            config,
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr,
            reader: Some(reader),
        };
        let line = s.wait_line(Duration::from_secs(60), "sentinel started");
        let url = line
            .split("metrics on http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        s.addr = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_line(&mut self, limit: Duration, needle: &str) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "sentinel exited ({st}) before {needle:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `needle` in stderr past byte `offset` of [`Sentinel::stderr`]
    /// (after a line already seen) and returns its line.
    pub fn wait_line_after(&self, limit: Duration, offset: usize, needle: &str) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.stderr();
            if let Some(i) = log.get(offset..).and_then(|l| l.find(needle)) {
                let at = offset + i;
                let start = log[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = log[at..].find('\n').map_or(log.len(), |n| at + n);
                return log[start..end].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after byte {offset} within {limit:?}; stderr:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path`: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn scrape(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// GET `path` from a sentinel at `addr`: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

impl Sentinel {
    /// One sample of a scrape, by its full name with labels; panics when
    /// the exposition lacks it.
    pub fn scrape_value(&self, name: &str) -> f64 {
        let m = samples(&self.scrape());
        *m.get(name)
            .unwrap_or_else(|| panic!("no {name} in the exposition: {m:?}"))
    }

    /// Scrapes until `pred` holds for the parsed samples; panics with the
    /// last scrape after `limit`.
    pub fn wait_metrics(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&BTreeMap<String, f64>) -> bool,
    ) -> BTreeMap<String, f64> {
        let deadline = Instant::now() + limit;
        loop {
            let m = samples(&self.scrape());
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; last scrape:\n{}\nstderr:\n{}",
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the exit; returns the exit code (None: killed by a
    /// signal) and all of stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "sentinel did not exit in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (st.code(), self.stderr())
    }
}

/// The alerts (or any JSON lines) written to `path` so far; none when it
/// does not exist yet. A line that is not JSON fails the test.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Samples of an exposition by their full name with labels:
/// `spawnscope_spawns_total{unit="x",kind="exec"}` -> 3.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The value of `metric` for `unit` with one more label, 0 if absent.
pub fn unit_value(m: &BTreeMap<String, f64>, metric: &str, unit: &str, extra: &str) -> f64 {
    let key = if extra.is_empty() {
        format!("{metric}{{unit=\"{unit}\"}}")
    } else {
        format!("{metric}{{unit=\"{unit}\",{extra}}}")
    };
    m.get(&key).copied().unwrap_or(0.0)
}

/// A sentinel's poll loop, stopped: its main thread (whose tid is the
/// process's pid, and which runs the loop) is held in a ptrace stop, the
/// stop SIGSTOP makes but for that one thread, so `/metrics`, on a thread
/// of its own, goes on answering. Let go when dropped.
pub struct LoopStopped(i32);

/// Whether a GET of /metrics at `addr` is answered 200 within 2 s.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    if c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    c.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && head.ends_with(b" 200")
}

impl Sentinel {
    /// Stops this sentinel's poll loop until the result is dropped. A stop
    /// that lands while the loop holds a lock the endpoint needs (the page
    /// being swapped, a heap trim) is let go and made again, so the stop
    /// stands for a loop stuck on its own.
    pub fn stop_poll_loop(&self) -> LoopStopped {
        let tid = self.pid();
        for _ in 0..20 {
            // SAFETY: plain ptrace requests on a child of this process,
            // with no pointer arguments; the stop is collected with
            // waitpid.
            unsafe {
                assert_eq!(
                    libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
                    0,
                    "PTRACE_SEIZE: {}",
                    std::io::Error::last_os_error()
                );
                assert_eq!(
                    libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0),
                    0,
                    "PTRACE_INTERRUPT: {}",
                    std::io::Error::last_os_error()
                );
                let mut status = 0;
                assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid);
                assert!(libc::WIFSTOPPED(status), "status {status:#x}");
            }
            let stopped = LoopStopped(tid);
            if answers(self.addr) {
                return stopped;
            }
            drop(stopped);
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("/metrics never answered with the poll loop stopped");
    }
}

impl Drop for LoopStopped {
    fn drop(&mut self) {
        // SAFETY: as in stop_poll_loop; detaching lets the thread run on.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}
