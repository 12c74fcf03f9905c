//! A client's bytes on the sentinel's /metrics endpoint: hyper's HTTP/1
//! server under the sentinel's limits and its answer, over an in-memory
//! connection. The server must answer with an HTTP/1 response or close
//! without one; whatever the client sends ends only its own connection.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use spawnscope::sentinel::metrics::{self, LIMITS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let body: metrics::Shared = Arc::new(Mutex::new("spawnscope_up 1\n".to_string()));
    let request = data.to_vec();
    let response = runtime().block_on(async move {
        let (mut client, server) = tokio::io::duplex(16 << 10);
        let serve = tokio::spawn(metrics::serve_connection(server, body, LIMITS));
        // The client sends everything, then closes its side; the server
        // may stop reading (and close) before.
        let (mut rx, mut tx) = tokio::io::split(&mut client);
        let send = async {
            let _ = tx.write_all(&request).await;
            let _ = tx.shutdown().await;
        };
        let mut out = Vec::new();
        let recv = rx.read_to_end(&mut out);
        let (_, r) = tokio::join!(send, recv);
        serve
            .await
            .expect("the connection task ends without a panic");
        r.map(|_| out)
    });
    if let Ok(r) = response
        && !r.is_empty()
    {
        assert!(
            r.starts_with(b"HTTP/1.1 ") || r.starts_with(b"HTTP/1.0 "),
            "not an HTTP/1 response: {:?}",
            String::from_utf8_lossy(&r)
        );
    }
});
