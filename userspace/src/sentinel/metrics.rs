//! The sentinel's Prometheus endpoint: hyper's HTTP/1 server answering
//! `GET /metrics` (and `HEAD`) with the latest exposition text and anything
//! else with 404. It binds where the configuration says (127.0.0.1:9479 by
//! default: loopback unless told otherwise).
//!
//! It is served from a thread of its own ([`spawn`]), apart from the poll
//! loop: a loop that is stuck leaves the endpoint answering, with
//! `spawnscope_last_poll_timestamp_seconds` standing still, so a stalled
//! sentinel is told apart from one that is gone (its scrape fails).
//!
//! The endpoint must keep answering a real scrape however other clients
//! behave, in little memory; so every connection is bounded:
//! - its request head must fit in [`Limits::max_buf`] (hyper's read
//!   buffer; past it, hyper answers 431 and closes) and arrive within
//!   [`Limits::header_read_timeout`];
//! - the whole connection, from accept, gets [`Limits::deadline`], so a
//!   client that never reads its response cannot hold it either;
//! - one request per connection (no keep-alive), as Prometheus scrapes
//!   seconds apart and a kept connection would only outlive the deadline;
//! - at most [`Limits::max_connections`] at once. See [`serve_on_with`]
//!   for what happens at the cap.

use std::{
    collections::VecDeque,
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    task::AbortHandle,
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

/// What one client may take of the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; a new one past it evicts an old one.
    pub max_connections: usize,
    /// The request line and headers must arrive within this, from accept.
    pub header_read_timeout: Duration,
    /// A connection is closed this long after accept, whatever its state.
    pub deadline: Duration,
    /// hyper's read buffer, and so the longest request head (hyper's
    /// minimum, 8 KiB: a scrape's head is a few hundred bytes).
    pub max_buf: usize,
}

/// The sentinel's limits. 64 connections of at most ~16 KiB of buffers
/// each (hyper's 8 KiB read and 8 KiB write buffers, mostly untouched):
/// all 64 held open add about 0.8 MiB resident, within the sentinel's
/// 10 MiB. A scraper sends its request as soon as it connects, so it
/// needs its slot for a few milliseconds only, and 64 newer connections
/// must arrive in that time to evict it.
pub const LIMITS: Limits = Limits {
    max_connections: 64,
    header_read_timeout: Duration::from_secs(5),
    deadline: Duration::from_secs(10),
    max_buf: 8 << 10,
};

/// Binds `addr` for [`spawn`]; port 0 picks one. A port below 1024 needs
/// a capability, so this comes before they are dropped.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, BindError> {
    let err = |source| BindError { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Serves `body` on `listener` under [`LIMITS`], for ever, on a new thread
/// named "metrics" with a runtime of its own; returns once it serves. The
/// thread holds the capabilities of the thread that makes it, so this
/// comes after they are dropped.
pub fn spawn(listener: std::net::TcpListener, body: Shared) -> Result<(), BindError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let err = |source| BindError { addr, source };
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    rt.block_on(async {
                        let listener = TcpListener::from_std(listener)?;
                        let _ = tx.send(Ok(()));
                        serve_on(listener, body).await;
                        Ok(())
                    })
                });
            if let Err(e) = served {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(err)?;
    match rx.recv() {
        Ok(r) => r.map_err(err),
        Err(_) => Err(err(io::Error::other("the metrics thread ended at start"))),
    }
}

/// Serves `body` on `listener` under [`LIMITS`], for ever.
pub async fn serve_on(listener: TcpListener, body: Shared) {
    serve_on_with(listener, body, LIMITS).await
}

/// An open connection, in accept order.
struct Open {
    /// Its request head has arrived: a real client, being answered.
    asked: Arc<AtomicBool>,
    task: AbortHandle,
}

/// Serves `body` on `listener` under `limits`, for ever.
///
/// At the connection cap, a new connection evicts the oldest one that has
/// not yet sent a complete request head (else the oldest of all). A cap
/// that refused new connections instead would let a client that opens
/// `max_connections` idle ones lock every scrape out for the deadline,
/// again and again; and a cap large enough to outnumber any such client
/// would be no bound on memory. Evicting the oldest silent connection
/// keeps memory bounded and always lets a client that asks at once (a
/// scraper) in: it is the newest, and has asked before many more arrive.
pub async fn serve_on_with(listener: TcpListener, body: Shared, limits: Limits) {
    let mut open: VecDeque<Open> = VecDeque::with_capacity(limits.max_connections);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or memory, or the client hung up
                // before its accept: pause rather than spin, then go on.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        open.retain(|c| !c.task.is_finished());
        while open.len() >= limits.max_connections.max(1) {
            let i = open
                .iter()
                .position(|c| !c.asked.load(Ordering::Relaxed))
                .unwrap_or(0);
            if let Some(c) = open.remove(i) {
                c.task.abort();
            }
        }
        let asked = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(connection(
            stream,
            Arc::clone(&body),
            Arc::clone(&asked),
            limits,
        ));
        open.push_back(Open {
            asked,
            task: task.abort_handle(),
        });
        // One accept per turn: the connection just accepted reads its
        // request (a scraper's is already there) before a flood of newer
        // ones can evict it while it is still silent.
        tokio::task::yield_now().await;
    }
}

/// Answers the client at the other end of `io` as every accepted
/// connection is answered: its request head read under `limits`, one
/// response from `body`, then closed.
pub async fn serve_connection<I>(io: I, body: Shared, limits: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connection(io, body, Arc::new(AtomicBool::new(false)), limits).await
}

async fn connection<I>(io: I, body: Shared, asked: Arc<AtomicBool>, limits: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        asked.store(true, Ordering::Relaxed);
        let resp = respond(&req, &body);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_buf)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service);
    // A timeout or a protocol error ends this connection only; dropping it
    // closes the socket.
    let _ = tokio::time::timeout(limits.deadline, conn).await;
}

fn respond(req: &Request<Incoming>, body: &Shared) -> Response<Full<Bytes>> {
    let wanted = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, content_type, text) = if wanted && req.uri().path() == "/metrics" {
        let text = body.lock().map(|b| b.clone()).unwrap_or_default();
        (StatusCode::OK, CONTENT_TYPE, text)
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: spawnscope serves /metrics\n".to_string(),
        )
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::Instant,
    };

    fn get(addr: SocketAddr, path: &str) -> String {
        request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    fn request(addr: SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Serves `body` under `limits` on a runtime of its own thread.
    fn spawn_with(body: Shared, limits: Limits) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    serve_on_with(TcpListener::from_std(l).unwrap(), body, limits).await
                })
        });
        addr
    }

    #[test]
    fn serves_the_latest_exposition_on_loopback() {
        let body: Shared = Arc::new(Mutex::new("a 1\n".into()));
        let addr = spawn_with(body.clone(), LIMITS);
        assert!(addr.ip().is_loopback());
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains(&format!("content-type: {CONTENT_TYPE}\r\n")),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\na 1\n"), "{r}");
        *body.lock().unwrap() = "a 2\n".into();
        assert!(get(addr, "/metrics").ends_with("a 2\n"));
        assert!(get(addr, "/metrics?x=1").ends_with("a 2\n"));
        assert!(get(addr, "/").starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(get(addr, "/metrics/../etc").starts_with("HTTP/1.1 404 Not Found\r\n"));
        let head = request(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
        let post = request(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 404 Not Found\r\n"), "{post}");
        // One request per connection.
        assert!(
            get(addr, "/metrics")
                .to_ascii_lowercase()
                .contains("connection: close\r\n")
        );
        // A client that connects and says nothing does not hold the
        // endpoint.
        let _idle = TcpStream::connect(addr).unwrap();
        assert!(get(addr, "/metrics").ends_with("a 2\n"));
        // The same address twice is a clear error.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(async { bind(addr).unwrap_err().to_string() });
        assert!(e.starts_with(&format!("cannot listen on {addr}: ")), "{e}");
    }

    /// Any byte stream is served as an accepted socket is: one request,
    /// one response, then closed.
    #[test]
    fn a_connection_over_any_stream_is_answered_and_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ask = |req: &'static [u8]| {
            rt.block_on(async {
                let (mut client, server) = tokio::io::duplex(1 << 16);
                let body: Shared = Arc::new(Mutex::new("a 1\n".into()));
                let serve = tokio::spawn(serve_connection(server, body, LIMITS));
                client.write_all(req).await.unwrap();
                let mut out = Vec::new();
                client.read_to_end(&mut out).await.unwrap();
                serve.await.unwrap();
                String::from_utf8(out).unwrap()
            })
        };
        let r = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\na 1\n"), "{r}");
        let r = ask(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    }

    #[test]
    fn an_overlong_head_is_refused() {
        let addr = spawn_with(Arc::new(Mutex::new("a 1\n".into())), LIMITS);
        let long = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
            "a".repeat(LIMITS.max_buf)
        );
        let r = request(addr, &long);
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 431 "),
            "refused or closed: {r}"
        );
        assert!(get(addr, "/metrics").ends_with("a 1\n"));
    }

    #[test]
    fn slow_and_silent_clients_are_cut_off() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            deadline: Duration::from_millis(600),
            ..LIMITS
        };
        let addr = spawn_with(Arc::new(Mutex::new("a 1\n".into())), limits);
        // Silent: closed once its head is late.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let _ = idle.read_to_end(&mut Vec::new());
        let took = t.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        // A head trickled a byte at a time: closed by the deadline at the
        // latest, whatever it sends.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            .unwrap();
        let t = Instant::now();
        let mut closed = false;
        while t.elapsed() < Duration::from_secs(5) {
            if slow.write_all(b"a").is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(closed, "still open after {:?}", t.elapsed());
    }

    #[test]
    fn at_the_cap_the_oldest_silent_connection_makes_room() {
        let limits = Limits {
            max_connections: 4,
            ..LIMITS
        };
        let addr = spawn_with(Arc::new(Mutex::new("a 1\n".into())), limits);
        let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Past the cap a scrape is still answered, at once.
        let t = Instant::now();
        assert!(get(addr, "/metrics").ends_with("a 1\n"));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // ... and the oldest silent connection was closed for it.
        idle[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(idle[0].read(&mut buf).unwrap(), 0, "evicted: EOF");
        // Many more silent ones: a scrape still gets through.
        idle.extend((0..20).map(|_| TcpStream::connect(addr).unwrap()));
        assert!(get(addr, "/metrics").ends_with("a 1\n"));
    }
}
