//! The sentinel's alerts: when a finding opens,
//! escalates or closes, and when a memory warning fires. Each goes to
//! stderr as one line with a syslog priority prefix (`<4>`, which journald
//! reads as the message's priority), optionally to a JSON-lines file, and
//! optionally to a hook (see [`super::hook`]): a command run directly (no
//! shell) with the alert as JSON on its stdin, so nothing traced ever
//! reaches a command line.
//! A finding alerts once per state change; repeats are counted and
//! summarised, not sent again.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::hook::{Hook, Queued};

/// syslog priorities, as sd-daemon(3) prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// "finding_opened", "finding_escalated", "finding_closed" or
    /// "memory_warning".
    pub event: &'static str,
    pub key: String,
    pub priority: Priority,
    pub time_unix: f64,
    pub message: String,
    /// The finding or warning itself.
    pub detail: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot open alerts file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub struct Alerter<W: Write> {
    log: W,
    jsonl: Option<(PathBuf, File)>,
    hook: Option<Hook>,
    /// Per finding key: its last alerted severity rank and whether open.
    state: HashMap<String, (u8, bool)>,
    /// Repeats not sent since the last summary.
    pub suppressed: u64,
    /// Alerts sent.
    pub sent: u64,
}

impl<W: Write> Alerter<W> {
    pub fn new(log: W, jsonl: Option<&Path>, hook: Option<Hook>) -> Result<Self, AlertError> {
        let jsonl = match jsonl {
            Some(p) => Some((
                p.to_path_buf(),
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| AlertError::Open {
                        path: p.to_path_buf(),
                        source,
                    })?,
            )),
            None => None,
        };
        Ok(Self {
            log,
            jsonl,
            hook,
            state: HashMap::new(),
            suppressed: 0,
            sent: 0,
        })
    }

    /// A finding as the detector sees it now. Alerts when it opens, when
    /// its severity rank rises, and when it closes; otherwise counts a
    /// repeat. Returns the alert sent, if any.
    pub fn finding(
        &mut self,
        key: &str,
        severity_rank: u8,
        active: bool,
        time_unix: f64,
        message: &str,
        detail: serde_json::Value,
    ) -> Option<Alert> {
        let prev = self.state.get(key).copied();
        let event = match (prev, active) {
            (None | Some((_, false)), true) => "finding_opened",
            (Some((rank, true)), true) if severity_rank > rank => "finding_escalated",
            (Some((_, true)), false) => "finding_closed",
            _ => {
                self.suppressed += 1;
                return None;
            }
        };
        self.state.insert(key.to_string(), (severity_rank, active));
        let alert = Alert {
            kind: "alert",
            event,
            key: key.to_string(),
            priority: match (event, severity_rank) {
                ("finding_closed", _) => Priority::Notice,
                (_, r) if r >= 2 => Priority::Err,
                _ => Priority::Warning,
            },
            time_unix,
            message: message.to_string(),
            detail,
        };
        self.send(&alert);
        Some(alert)
    }

    /// A memory warning: always sent (the forecaster already warns once
    /// per growth episode).
    pub fn memory_warning(&mut self, time_unix: f64, message: &str, detail: serde_json::Value) {
        self.notice(
            "memory_warning",
            "memory",
            Priority::Warning,
            time_unix,
            message,
            detail,
        );
    }

    /// A finding already open before this alerter existed (restored from
    /// the saved state): not alerted again as opened, but alerted when it
    /// escalates or closes.
    pub fn seed(&mut self, key: &str, severity_rank: u8) {
        self.state.insert(key.to_string(), (severity_rank, true));
    }

    /// Carries finding states over from the alerter this one replaces
    /// (a reloaded configuration), so that nothing open is alerted again.
    pub fn take_state_from<V: Write>(&mut self, old: &mut Alerter<V>) {
        self.state = std::mem::take(&mut old.state);
        self.suppressed += std::mem::take(&mut old.suppressed);
        self.sent += old.sent;
    }

    /// An alert that is its own event, never a repeat: a memory warning,
    /// an OOM kill, what a drill-down learnt about an open finding.
    pub fn notice(
        &mut self,
        event: &'static str,
        key: &str,
        priority: Priority,
        time_unix: f64,
        message: &str,
        detail: serde_json::Value,
    ) {
        let alert = Alert {
            kind: "alert",
            event,
            key: key.to_string(),
            priority,
            time_unix,
            message: message.to_string(),
            detail,
        };
        self.send(&alert);
    }

    /// One line summarising the repeats not sent since the last call.
    pub fn summarise(&mut self) {
        if self.suppressed > 0 {
            let _ = writeln!(
                self.log,
                "<6>spawnscope: {} repeated finding report(s) not alerted again",
                self.suppressed
            );
            self.suppressed = 0;
        }
    }

    fn send(&mut self, a: &Alert) {
        self.sent += 1;
        // The message may hold traced names: one line, control bytes shown.
        let msg: String = a
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(
            self.log,
            "<{}>spawnscope: {}: {msg}",
            a.priority as u8, a.event
        );
        let json = serde_json::to_string(a).expect("alert JSON");
        if let Some((path, f)) = &mut self.jsonl
            && let Err(e) = writeln!(f, "{json}").and_then(|()| f.flush())
        {
            let _ = writeln!(
                self.log,
                "<4>spawnscope: cannot append to {}: {e}",
                path.display()
            );
        }
        if let Some(h) = &self.hook
            && h.enqueue(json) == Queued::Full
        {
            let _ = writeln!(
                self.log,
                "<4>spawnscope: hook {}: {} alerts already wait for it; this one is not passed on",
                h.argv0(),
                super::hook::HOOK_QUEUE
            );
        }
    }

    /// The hook, to wait for what it still has to run.
    pub fn take_hook(&mut self) -> Option<Hook> {
        self.hook.take()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Instant,
    };

    use super::{super::hook::HOOK_TIMEOUT, *};

    fn detail() -> serde_json::Value {
        serde_json::json!({"unit": "serial-getty@ttyS0.service"})
    }

    #[test]
    fn a_seeded_finding_is_not_opened_again_but_closes() {
        let mut a = Alerter::new(Vec::new(), None, None).unwrap();
        a.seed("x.service", 2);
        assert_eq!(a.finding("x.service", 2, true, 1.0, "m", detail()), None);
        assert_eq!(a.suppressed, 1);
        let closed = a
            .finding("x.service", 2, false, 2.0, "m", detail())
            .unwrap();
        assert_eq!(closed.event, "finding_closed");
    }

    #[test]
    fn a_finding_alerts_once_per_state_change() {
        let mut log = Vec::new();
        let mut a = Alerter::new(&mut log, None, None).unwrap();
        let k = "serial-getty@ttyS0.service\0/sbin/agetty";
        let ev = |a: &mut Alerter<&mut Vec<u8>>, rank, active| {
            a.finding(k, rank, active, 1.0, "agetty restarted 3 times", detail())
                .map(|x| x.event)
        };
        assert_eq!(ev(&mut a, 1, true), Some("finding_opened"));
        assert_eq!(ev(&mut a, 1, true), None);
        assert_eq!(ev(&mut a, 1, true), None);
        assert_eq!(ev(&mut a, 2, true), Some("finding_escalated"));
        assert_eq!(ev(&mut a, 1, true), None, "no alert for a lower rank");
        assert_eq!(ev(&mut a, 2, false), Some("finding_closed"));
        assert_eq!(ev(&mut a, 2, false), None);
        assert_eq!(ev(&mut a, 1, true), Some("finding_opened"), "reopened");
        assert_eq!(a.suppressed, 4);
        a.summarise();
        a.summarise();
        drop(a);
        let text = String::from_utf8(log).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "<4>spawnscope: finding_opened: agetty restarted 3 times",
                "<3>spawnscope: finding_escalated: agetty restarted 3 times",
                "<5>spawnscope: finding_closed: agetty restarted 3 times",
                "<4>spawnscope: finding_opened: agetty restarted 3 times",
                "<6>spawnscope: 4 repeated finding report(s) not alerted again",
            ]
        );
    }

    /// A hook whose log lines land in a buffer.
    fn hook(argv: &[&str]) -> (Hook, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let h = Hook::start(
            argv.iter().map(|a| a.to_string()).collect(),
            Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())),
        );
        (h, lines)
    }

    /// The hook runs without a shell and gets the alert as JSON on stdin;
    /// hostile traced text stays data. Its failure and its output are
    /// logged, and neither is fatal.
    #[tokio::test]
    async fn hook_and_jsonl_get_the_alert_as_json() {
        let d = tempfile::tempdir().unwrap();
        let got = d.path().join("hook-got.json");
        let jsonl = d.path().join("alerts.jsonl");
        let mut log = Vec::new();
        let got_arg = got.display().to_string();
        let (h, hook_log) = hook(&["/usr/bin/tee", &got_arg]);
        let mut a = Alerter::new(&mut log, Some(&jsonl), Some(h)).unwrap();
        let evil = "$(touch /tmp/pwned); `id` \"x\"\nnext";
        a.finding("k", 1, true, 7.0, evil, serde_json::json!({"argv": [evil]}));
        a.memory_warning(8.0, "the system will run out of memory in 600 s", detail());
        a.take_hook().unwrap().finish().await;
        drop(a);
        let hooked: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&got)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(hooked["event"], "memory_warning", "tee kept the last alert");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], evil, "kept exactly, as data");
        assert_eq!(lines[0]["detail"]["argv"][0], evil);
        let text = String::from_utf8(log).unwrap();
        assert!(
            text.starts_with(
                "<4>spawnscope: finding_opened: $(touch /tmp/pwned); `id` \"x\" next\n"
            ),
            "one line on stderr: {text}"
        );
        // tee echoes its input: the hook's output is logged, on one line.
        let hook_log = hook_log.lock().unwrap().clone();
        assert_eq!(hook_log.len(), 2, "{hook_log:?}");
        assert!(
            hook_log[1].starts_with("<6>spawnscope: hook /usr/bin/tee stdout: {\"type\":\"alert\",\"event\":\"memory_warning\""),
            "{hook_log:?}"
        );
        // A failing hook is reported and the alert still goes out.
        let mut log = Vec::new();
        let (h, hook_log) = hook(&["/bin/false"]);
        let mut a = Alerter::new(&mut log, None, Some(h)).unwrap();
        a.memory_warning(9.0, "m", detail());
        a.take_hook().unwrap().finish().await;
        drop(a);
        let text = String::from_utf8(log).unwrap();
        assert_eq!(text, "<4>spawnscope: memory_warning: m\n");
        assert_eq!(
            *hook_log.lock().unwrap(),
            ["<4>spawnscope: hook /bin/false: exited with exit status: 1"]
        );
        let e = Alerter::new(io::sink(), Some(&d.path().join("no/dir/a.jsonl")), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("cannot open alerts file "), "{e}");
    }

    /// A hook that does not finish gets its [`HOOK_TIMEOUT`], is then
    /// killed, and the failure is logged; the alert itself went out at
    /// once, without waiting for the hook.
    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_after_its_time() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("hook.pid");
        // The shell becomes the sleep, so the pid it writes is the hook's.
        let script = format!("echo $$ > {}; exec sleep 3600", pidfile.display());
        let mut log = Vec::new();
        let (h, hook_log) = hook(&["/bin/sh", "-c", &script]);
        let mut a = Alerter::new(&mut log, None, Some(h)).unwrap();
        let t0 = Instant::now();
        a.memory_warning(9.0, "m", detail());
        let queued_in = t0.elapsed();
        a.take_hook().unwrap().finish().await;
        let took = t0.elapsed();
        drop(a);
        let text = String::from_utf8(log).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["<4>spawnscope: memory_warning: m"]
        );
        assert_eq!(
            *hook_log.lock().unwrap(),
            ["<4>spawnscope: hook /bin/sh: killed after 10s"]
        );
        assert!(
            queued_in < HOOK_TIMEOUT / 10,
            "sending the alert waited {queued_in:?} for the hook"
        );
        assert!(took >= HOOK_TIMEOUT, "the hook got only {took:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "hook {} still runs",
            pid.trim()
        );
    }
}
