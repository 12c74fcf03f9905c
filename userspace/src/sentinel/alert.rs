//! The sentinel's alerts: when a finding opens,
//! escalates or closes, and when a memory warning fires. Each goes to
//! stderr as one line with a syslog priority prefix (`<4>`, which journald
//! reads as the message's priority), or, when stderr is the journal's
//! stream, to the journal as a structured entry instead (see
//! [`super::journald`]); optionally to a JSON-lines file, and
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

use crate::output::schema::Schema;

use super::{
    hook::{Hook, Queued},
    journald::Journald,
};

/// syslog priorities, as sd-daemon(3) prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

impl Priority {
    /// The priority's name, for fields that carry no severity of their own.
    fn severity(self) -> &'static str {
        match self {
            Priority::Err => "err",
            Priority::Warning => "warning",
            Priority::Notice => "notice",
            Priority::Info => "info",
        }
    }
}

/// What an alert tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    FindingOpened,
    FindingEscalated,
    FindingClosed,
    /// A drill-down named what an open finding runs.
    FindingIdentified,
    OomKill,
    MemoryWarning,
    MemcgOomKill,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::FindingOpened => "finding_opened",
            AlertEvent::FindingEscalated => "finding_escalated",
            AlertEvent::FindingClosed => "finding_closed",
            AlertEvent::FindingIdentified => "finding_identified",
            AlertEvent::OomKill => "oom_kill",
            AlertEvent::MemoryWarning => "memory_warning",
            AlertEvent::MemcgOomKill => "memcg_oom_kill",
        }
    }

    /// Whether the alert's key is a unit's label (else it is "memory").
    fn about_a_unit(self) -> bool {
        !matches!(self, AlertEvent::MemoryWarning | AlertEvent::MemcgOomKill)
    }

    /// Whether the alert's detail is a finding, with its kind and severity.
    fn of_a_finding(self) -> bool {
        matches!(
            self,
            AlertEvent::FindingOpened
                | AlertEvent::FindingEscalated
                | AlertEvent::FindingClosed
                | AlertEvent::FindingIdentified
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: Schema,
    pub event: AlertEvent,
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
    /// Where alerts go instead of `log`, when it is the journal's stream.
    journal: Option<Journald>,
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
            journal: None,
            jsonl,
            hook,
            state: HashMap::new(),
            suppressed: 0,
            sent: 0,
        })
    }

    /// Alerts go to `journal` as structured entries, and to the log only
    /// when an entry cannot be sent.
    pub fn with_journal(mut self, journal: Option<Journald>) -> Self {
        self.journal = journal;
        self
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
            (None | Some((_, false)), true) => AlertEvent::FindingOpened,
            (Some((rank, true)), true) if severity_rank > rank => AlertEvent::FindingEscalated,
            (Some((_, true)), false) => AlertEvent::FindingClosed,
            _ => {
                self.suppressed += 1;
                return None;
            }
        };
        self.state.insert(key.to_string(), (severity_rank, active));
        let alert = Alert {
            kind: "alert",
            schema: Schema,
            event,
            key: key.to_string(),
            priority: match (event, severity_rank) {
                (AlertEvent::FindingClosed, _) => Priority::Notice,
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
            AlertEvent::MemoryWarning,
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
        event: AlertEvent,
        key: &str,
        priority: Priority,
        time_unix: f64,
        message: &str,
        detail: serde_json::Value,
    ) {
        let alert = Alert {
            kind: "alert",
            schema: Schema,
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
        let json = serde_json::to_string(a).expect("alert JSON");
        let line = format!("spawnscope: {}: {msg}", a.event.as_str());
        let journaled = self
            .journal
            .as_ref()
            .is_some_and(|j| j.send(&journal_fields(a, &line)).is_ok());
        if !journaled {
            let _ = writeln!(self.log, "<{}>{line}", a.priority as u8);
        }
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

/// Largest detail carried in an entry: a datagram's size is bounded, and
/// the JSON-lines file and hook carry every detail whole.
const DETAIL_MAX: usize = 16 << 10;

/// An alert's journal entry: the stderr line's message and priority, and
/// fields to filter on.
fn journal_fields(a: &Alert, message: &str) -> Vec<(&'static str, Vec<u8>)> {
    let priority = (a.priority as u8).to_string();
    // A finding's own kind and severity; other alerts are a kind of their
    // own, as severe as their priority.
    let finding = |k: &str| a.detail[k].as_str().filter(|_| a.event.of_a_finding());
    let kind = finding("kind").unwrap_or(a.event.as_str());
    let severity = finding("severity").unwrap_or(a.priority.severity());
    let mut f: Vec<(&'static str, Vec<u8>)> = vec![
        ("MESSAGE", message.as_bytes().to_vec()),
        ("PRIORITY", priority.into_bytes()),
        ("SYSLOG_IDENTIFIER", b"spawnscope".to_vec()),
        ("SPAWNSCOPE_EVENT", a.event.as_str().as_bytes().to_vec()),
        ("SPAWNSCOPE_KIND", kind.as_bytes().to_vec()),
        ("SPAWNSCOPE_SEVERITY", severity.as_bytes().to_vec()),
    ];
    if a.event.about_a_unit() {
        f.push(("SPAWNSCOPE_UNIT", a.key.as_bytes().to_vec()));
    }
    let detail = a.detail.to_string();
    if detail.len() <= DETAIL_MAX {
        f.push(("SPAWNSCOPE_DETAIL", detail.into_bytes()));
    }
    f
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
        time::Instant,
    };

    use super::{super::hook::HOOK_TIMEOUT, *};
    use crate::output::schema::SCHEMA;

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
        assert_eq!(closed.event, AlertEvent::FindingClosed);
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
        assert_eq!(ev(&mut a, 1, true), Some(AlertEvent::FindingOpened));
        assert_eq!(ev(&mut a, 1, true), None);
        assert_eq!(ev(&mut a, 1, true), None);
        assert_eq!(ev(&mut a, 2, true), Some(AlertEvent::FindingEscalated));
        assert_eq!(ev(&mut a, 1, true), None, "no alert for a lower rank");
        assert_eq!(ev(&mut a, 2, false), Some(AlertEvent::FindingClosed));
        assert_eq!(ev(&mut a, 2, false), None);
        assert_eq!(
            ev(&mut a, 1, true),
            Some(AlertEvent::FindingOpened),
            "reopened"
        );
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

    /// The fields of a native journal entry without binary values.
    fn fields(datagram: &[u8]) -> BTreeMap<String, String> {
        std::str::from_utf8(datagram)
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn to_the_journal_an_alert_is_one_entry_with_its_fields_and_no_log_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let mut log = Vec::new();
        let mut a = Alerter::new(&mut log, None, None)
            .unwrap()
            .with_journal(Some(Journald::at(&path).unwrap()));
        let finding = serde_json::json!({"kind": "respawn_loop", "severity": "high"});
        a.finding(
            "flaky.service @box",
            2,
            true,
            1.0,
            "flaky restarted",
            finding,
        );
        a.memory_warning(2.0, "memory runs out", detail());
        let mut buf = vec![0u8; 64 << 10];
        let k = rx.recv(&mut buf).unwrap();
        let f = fields(&buf[..k]);
        let want = |k: &str| f.get(k).map(String::as_str);
        assert_eq!(
            want("MESSAGE"),
            Some("spawnscope: finding_opened: flaky restarted")
        );
        assert_eq!(want("PRIORITY"), Some("3"));
        assert_eq!(want("SYSLOG_IDENTIFIER"), Some("spawnscope"));
        assert_eq!(want("SPAWNSCOPE_EVENT"), Some("finding_opened"));
        assert_eq!(want("SPAWNSCOPE_UNIT"), Some("flaky.service @box"));
        assert_eq!(want("SPAWNSCOPE_KIND"), Some("respawn_loop"));
        assert_eq!(want("SPAWNSCOPE_SEVERITY"), Some("high"));
        assert_eq!(
            want("SPAWNSCOPE_DETAIL"),
            Some(r#"{"kind":"respawn_loop","severity":"high"}"#)
        );
        let k = rx.recv(&mut buf).unwrap();
        let f = fields(&buf[..k]);
        assert_eq!(f["SPAWNSCOPE_EVENT"], "memory_warning");
        assert_eq!(f["SPAWNSCOPE_KIND"], "memory_warning");
        assert_eq!(f["SPAWNSCOPE_SEVERITY"], "warning");
        assert_eq!(f["PRIORITY"], "4");
        assert!(!f.contains_key("SPAWNSCOPE_UNIT"), "{f:?}");
        drop(a);
        assert!(log.is_empty(), "{}", String::from_utf8_lossy(&log));
    }

    #[test]
    fn without_the_journal_the_alert_goes_to_the_log() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Vec::new();
        let mut a = Alerter::new(&mut log, None, None)
            .unwrap()
            .with_journal(Some(Journald::at(&d.path().join("gone")).unwrap()));
        a.memory_warning(2.0, "memory runs out", detail());
        drop(a);
        assert_eq!(
            String::from_utf8(log).unwrap(),
            "<4>spawnscope: memory_warning: memory runs out\n"
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
        assert!(lines.iter().all(|l| l["schema"] == SCHEMA), "{lines:?}");
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
            hook_log[1].starts_with("<6>spawnscope: hook /usr/bin/tee stdout: {\"type\":\"alert\",\"schema\":1,\"event\":\"memory_warning\""),
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
