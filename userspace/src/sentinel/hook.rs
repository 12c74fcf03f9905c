//! The alert hook, off the poll path: alerts wait in a bounded queue and
//! one task runs the hook for each in turn, directly (no shell), with the
//! alert as JSON on its stdin. A slow or hung hook delays only the alerts
//! queued behind it; the poll loop only ever enqueues. What the hook
//! writes is logged, cut short, so its failures can be diagnosed.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::Command,
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
};

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts waiting for the hook, at most; past that an alert skips the hook
/// (it is still logged and written to the alerts file) and is counted.
pub const HOOK_QUEUE: usize = 64;
/// Bytes of each of the hook's stdout and stderr kept for the log.
pub const HOOK_OUTPUT_MAX: usize = 512;

/// Where the runner's lines go: stderr in the sentinel, a buffer in tests.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Hook {
    argv0: String,
    tx: mpsc::Sender<String>,
    runner: JoinHandle<()>,
    /// Alerts that found the queue full.
    pub dropped: Arc<AtomicU64>,
}

/// What one enqueue did.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The queue was full: the hook will not see this alert.
    Full,
}

impl Hook {
    /// Starts the runner task; must be called inside the tokio runtime.
    pub fn start(argv: Vec<String>, log: LogFn) -> Self {
        let (tx, mut rx) = mpsc::channel::<String>(HOOK_QUEUE);
        let argv0 = argv.first().cloned().unwrap_or_default();
        let runner = tokio::spawn(async move {
            while let Some(json) = rx.recv().await {
                for line in run_once(&argv, &json).await {
                    log(&line);
                }
            }
        });
        Self {
            argv0,
            tx,
            runner,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn argv0(&self) -> &str {
        &self.argv0
    }

    /// Never waits.
    pub fn enqueue(&self, json: String) -> Queued {
        match self.tx.try_send(json) {
            Ok(()) => Queued::Yes,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Queued::Full
            }
        }
    }

    /// Waits until every queued alert has been through the hook.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.runner.await;
    }
}

/// The log lines of one run: its failure, and what it wrote.
async fn run_once(argv: &[String], json: &str) -> Vec<String> {
    let name = &argv[0];
    let mut child = match Command::new(name)
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Should the sentinel end mid-run, the hook ends with it.
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return vec![format!("<4>spawnscope: hook {name}: cannot run: {e}")],
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = format!("{json}\n");
        // Apart from the wait: a hook that does not read its input must
        // not stop its output being read. Not reading it is its own
        // business.
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    // Read apart, so a chatty hook never blocks on a full pipe.
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // Only the start is logged; the rest is drained, not kept.
                let _ = (&mut p)
                    .take(HOOK_OUTPUT_MAX as u64 + 1)
                    .read_to_end(&mut buf)
                    .await;
                let _ = tokio::io::copy(&mut p, &mut tokio::io::sink()).await;
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let mut lines = Vec::new();
    match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => {
            if !status.success() {
                lines.push(format!("<4>spawnscope: hook {name}: exited with {status}"));
            }
            for (stream, task) in [("stdout", out), ("stderr", err)] {
                // A process the hook left behind may hold the pipe open:
                // what came by now is what is logged.
                let abort = task.abort_handle();
                let got = tokio::time::timeout(Duration::from_secs(1), task).await;
                abort.abort();
                if let Some(text) = got.ok().and_then(Result::ok).as_deref().and_then(excerpt) {
                    lines.push(format!("<6>spawnscope: hook {name} {stream}: {text}"));
                }
            }
        }
        Ok(Err(e)) => lines.push(format!("<4>spawnscope: hook {name}: wait: {e}")),
        Err(_) => {
            // Killed and reaped here, so no zombie is left behind.
            let _ = child.kill().await;
            out.abort();
            err.abort();
            lines.push(format!(
                "<4>spawnscope: hook {name}: killed after {}s",
                HOOK_TIMEOUT.as_secs()
            ));
        }
    }
    lines
}

/// The first [`HOOK_OUTPUT_MAX`] bytes as one line, control characters
/// shown as spaces; "…" marks a cut (the reader keeps one byte more).
fn excerpt(bytes: &[u8]) -> Option<String> {
    let cut = bytes.len() > HOOK_OUTPUT_MAX;
    let kept = bytes[..bytes.len().min(HOOK_OUTPUT_MAX)].trim_ascii_end();
    if kept.is_empty() {
        return None;
    }
    let text: String = String::from_utf8_lossy(kept)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Some(if cut { format!("{text} …") } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_one_line_and_cut_short() {
        assert_eq!(excerpt(b"\n\n"), None);
        assert_eq!(excerpt(b"a\nb\tc\n").as_deref(), Some("a b c"));
        let long = vec![b'x'; HOOK_OUTPUT_MAX + 1];
        assert_eq!(
            excerpt(&long),
            Some(format!("{} …", "x".repeat(HOOK_OUTPUT_MAX)))
        );
        assert_eq!(
            excerpt(&long[..HOOK_OUTPUT_MAX]),
            Some("x".repeat(HOOK_OUTPUT_MAX))
        );
    }
}
