//! The sentinel's Prometheus endpoint: a minimal
//! HTTP/1.1 server on its own thread that answers `GET /metrics` with the
//! latest exposition text and anything else with 404. It binds where the
//! configuration says (127.0.0.1:9479 by default: loopback unless told
//! otherwise). One request per connection; a client gets 2 s to send its
//! request line, so a stuck one cannot hold the endpoint.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

/// The exposition served; the sentinel replaces it after each poll.
pub type Shared = Arc<Mutex<String>>;

/// Binds `addr` and serves `body` from a background thread. Returns the
/// address actually bound (port 0 picks one).
pub fn serve(addr: SocketAddr, body: Shared) -> Result<SocketAddr, BindError> {
    let listener = TcpListener::bind(addr).map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // One bad client must not stop the endpoint.
                let _ = answer(conn, &body);
            }
        })
        .map_err(|source| BindError { addr, source })?;
    Ok(bound)
}

fn answer(conn: TcpStream, body: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Read (and ignore) the headers up to the blank line.
    let mut h = String::new();
    while reader.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut w = conn;
    if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
        let text = body.lock().map(|b| b.clone()).unwrap_or_default();
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
    } else {
        let msg = "not found: spawnscope serves /metrics\n";
        write!(
            w,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_latest_exposition_on_loopback() {
        let body: Shared = Arc::new(Mutex::new("a 1\n".into()));
        let addr = serve("127.0.0.1:0".parse().unwrap(), body.clone()).unwrap();
        assert!(addr.ip().is_loopback());
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\na 1\n"), "{r}");
        *body.lock().unwrap() = "a 2\n".into();
        assert!(get(addr, "/metrics").ends_with("a 2\n"));
        assert!(get(addr, "/").starts_with("HTTP/1.1 404 Not Found\r\n"));
        // A client that connects and says nothing holds the endpoint for
        // its 2 s read timeout at most; the next one is then served.
        let _idle = TcpStream::connect(addr).unwrap();
        assert!(get(addr, "/metrics").ends_with("a 2\n"));
        // The same address twice is a clear error.
        let e = serve(addr, body).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot listen on {addr}: ")), "{e}");
    }
}
