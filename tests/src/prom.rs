//! Debian's Prometheus and Alertmanager, run by a test on loopback ports
//! with scratch storage, and a webhook receiver for Alertmanager's
//! notifications. Each server is a child of the test, stopped by pid when
//! dropped.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A loopback port free now (bound, then released): Prometheus and
/// Alertmanager cannot report a port the kernel picked for them.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server the test started; killed and reaped when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `program` with `args(addr)` on a free port, once more on
    /// another if it ends before it is ready (a port taken meanwhile).
    fn start_on_free_port(
        program: &str,
        args: impl Fn(SocketAddr) -> Vec<String>,
        log: &Path,
    ) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            match Self::start(program, &args(addr), addr, log) {
                Ok(s) => return s,
                Err(why) => last = why,
            }
        }
        panic!("{last}");
    }

    fn start(program: &str, args: &[String], addr: SocketAddr, log: &Path) -> Result<Self, String> {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut s = Self {
            child,
            addr,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(format!(
                    "{program} ended ({st}) before it was ready:\n{}",
                    s.log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
                && get(addr, "/-/ready").0 == 200
            {
                return Ok(s);
            }
            assert!(
                Instant::now() < deadline,
                "{program} not ready on {addr} in 60 s:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the server has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Prometheus with `config` (YAML), its TSDB and log in `dir`.
pub fn prometheus(dir: &Path, config: &str) -> Server {
    let file = write_checked(
        dir,
        "prometheus.yml",
        config,
        &["promtool", "check", "config"],
    );
    Server::start_on_free_port(
        PROMETHEUS,
        |addr| {
            vec![
                format!("--config.file={}", file.display()),
                format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                format!("--web.listen-address={addr}"),
                // Firing alerts go out at once; resends would only repeat
                // them.
                "--rules.alert.resend-delay=1s".into(),
            ]
        },
        &dir.join("prometheus.log"),
    )
}

/// Alertmanager with `config` (YAML), its storage and log in `dir`, as a
/// cluster of one.
pub fn alertmanager(dir: &Path, config: &str) -> Server {
    let file = write_checked(dir, "alertmanager.yml", config, &["amtool", "check-config"]);
    Server::start_on_free_port(
        ALERTMANAGER,
        |addr| {
            vec![
                format!("--config.file={}", file.display()),
                format!("--storage.path={}", dir.join("am").display()),
                format!("--web.listen-address={addr}"),
                "--cluster.listen-address=".into(),
            ]
        },
        &dir.join("alertmanager.log"),
    )
}

/// Writes `config` to `dir`/`name` and runs `checker` on it; panics with
/// what the checker said when it refuses the file.
fn write_checked(dir: &Path, name: &str, config: &str, checker: &[&str]) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, config).unwrap();
    let out = Command::new(checker[0])
        .args(&checker[1..])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", checker[0]));
    assert!(
        out.status.success(),
        "{checker:?} {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    file
}

/// Percent-encodes a query parameter's value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// GET `path` over HTTP/1.0 (so the body is never chunked): (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    if write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut resp = String::new();
    if c.read_to_string(&mut resp).is_err() {
        return (0, String::new());
    }
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// An instant query; panics unless Prometheus answers `success`. The
/// result vector.
pub fn query(prom: SocketAddr, expr: &str) -> Vec<Value> {
    let (status, body) = get(prom, &format!("/api/v1/query?query={}", encode(expr)));
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("query {expr}: HTTP {status}, {e}: {body}"));
    assert_eq!(v["status"], "success", "query {expr}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The series in Prometheus's head block, from its TSDB status.
pub fn head_series(prom: SocketAddr) -> u64 {
    let (status, body) = get(prom, "/api/v1/status/tsdb");
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("TSDB status: HTTP {status}, {e}: {body}"));
    v["data"]["headStats"]["numSeries"]
        .as_u64()
        .unwrap_or_else(|| panic!("no head series in {v}"))
}

/// One notification Alertmanager posted, as received.
#[derive(Debug, Clone)]
pub struct Notification {
    pub at: Instant,
    pub body: Value,
}

impl Notification {
    /// Its alerts with `status` ("firing" or "resolved") whose labels
    /// include every pair of `labels`.
    pub fn alerts<'a>(&'a self, status: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Value> {
        self.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["status"] == status && labels.iter().all(|(k, v)| a["labels"][*k] == *v))
            .collect()
    }
}

/// A webhook receiver on a loopback port: every POST's JSON body is kept
/// with the time it came, and answered 200.
pub struct Webhook {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Notification>>>,
}

impl Webhook {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for c in listener.incoming().map_while(Result::ok) {
                if let Some(body) = read_post(c) {
                    sink.lock().unwrap().push(Notification {
                        at: Instant::now(),
                        body,
                    });
                }
            }
        });
        Self { addr, got }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits until a notification has an alert with `status` and `labels`;
    /// returns when it came and the alert. Panics after `limit` with every
    /// notification received.
    pub fn wait_for(
        &self,
        limit: Duration,
        status: &str,
        labels: &[(&str, &str)],
    ) -> (Instant, Value) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(hit) = self.got.lock().unwrap().iter().find_map(|n| {
                n.alerts(status, labels)
                    .first()
                    .map(|a| (n.at, (*a).clone()))
            }) {
                return hit;
            }
            assert!(
                Instant::now() < deadline,
                "no {status} alert {labels:?} within {limit:?}; received:\n{:#?}",
                self.all().iter().map(|n| &n.body).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn all(&self) -> Vec<Notification> {
        self.got.lock().unwrap().clone()
    }
}

/// The JSON body of one HTTP POST, answered 200; None for anything else.
fn read_post(c: TcpStream) -> Option<Value> {
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(c);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let post = line.starts_with("POST ");
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let mut c = r.into_inner();
    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if !post {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode(r#"sum by (le) (x{a=~"$i"}[1m])"#),
            "sum%20by%20%28le%29%20%28x%7Ba%3D~%22%24i%22%7D%5B1m%5D%29"
        );
    }

    #[test]
    fn the_webhook_keeps_each_posted_body() {
        let w = Webhook::start();
        let mut c = TcpStream::connect(w.addr).unwrap();
        let body = r#"{"alerts":[{"status":"firing","labels":{"alertname":"X","instance":"a"}}]}"#;
        write!(
            c,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let (_, a) = w.wait_for(Duration::from_secs(5), "firing", &[("instance", "a")]);
        assert_eq!(a["labels"]["alertname"], "X");
        assert!(w.all()[0].alerts("resolved", &[]).is_empty());
    }
}
