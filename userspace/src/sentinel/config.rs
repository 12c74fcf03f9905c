//! The sentinel's configuration file: TOML,
//! validated as a whole before use, with errors that name the file, the
//! key and, for syntax errors, the line. Unknown keys are errors (a typo
//! must not silently fall back to a default).
//!
//! ```toml
//! interval = "5s"                          # counter poll interval
//! state = "/var/lib/spawnscope/state"
//! save_every = 12                          # intervals between state saves
//! listen = "127.0.0.1:9479"                # Prometheus /metrics
//! top_units = 50                           # label cardinality bound
//!
//! [alerts]
//! jsonl = "/var/log/spawnscope/alerts.jsonl"
//! hook = ["/usr/local/bin/page-oncall", "--team", "infra"]
//!
//! [memory]
//! warn_before = "60m"
//! psi_warn = 10.0
//! psi_for = "30s"
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: key `{key}`: {why}")]
    Value {
        path: PathBuf,
        key: &'static str,
        why: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    interval: Option<String>,
    state: Option<PathBuf>,
    save_every: Option<u32>,
    listen: Option<String>,
    top_units: Option<u32>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    memory: RawMemory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    jsonl: Option<PathBuf>,
    hook: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    warn_before: Option<String>,
    psi_warn: Option<f64>,
    psi_for: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub interval: Duration,
    pub state: PathBuf,
    pub save_every: u32,
    pub listen: SocketAddr,
    pub top_units: u32,
    pub alerts_jsonl: Option<PathBuf>,
    /// argv of the hook: run directly, never through a shell.
    pub hook: Option<Vec<String>>,
    pub mem_warn_before: Duration,
    pub psi_warn: f64,
    pub psi_for: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            state: PathBuf::from("/var/lib/spawnscope/state"),
            save_every: 12,
            listen: SocketAddr::from(([127, 0, 0, 1], 9479)),
            top_units: 50,
            alerts_jsonl: None,
            hook: None,
            mem_warn_before: Duration::from_secs(3600),
            psi_warn: 10.0,
            psi_for: Duration::from_secs(30),
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

impl Config {
    /// Parses and validates `text`, the contents of `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                // toml's messages may span lines; errors here are one.
                message: e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        let bad = |key: &'static str, why: String| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            why,
        };
        let duration = |key: &'static str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(bad(key, "must be greater than zero".into())),
                Err(e) => Err(bad(key, format!("{s:?}: {e} (examples: 5s, 1m, 500ms)"))),
            },
        };
        let d = Config::default();
        let listen = match &raw.listen {
            None => d.listen,
            Some(s) => s
                .parse()
                .map_err(|_| bad("listen", format!("{s:?} is not an address:port")))?,
        };
        if let Some(h) = &raw.alerts.hook {
            match h.first() {
                None => return Err(bad("alerts.hook", "is empty".into())),
                Some(p) if !Path::new(p).is_absolute() => {
                    return Err(bad(
                        "alerts.hook",
                        format!("{p:?} must be an absolute path (the hook runs without a shell)"),
                    ));
                }
                _ => {}
            }
        }
        let psi_warn = raw.memory.psi_warn.unwrap_or(d.psi_warn);
        if !(0.0..=100.0).contains(&psi_warn) {
            return Err(bad("memory.psi_warn", "must be between 0 and 100".into()));
        }
        let positive = |key: &'static str, v: Option<u32>, default: u32| match v {
            Some(0) => Err(bad(key, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        Ok(Config {
            interval: duration("interval", &raw.interval, d.interval)?,
            state: raw.state.unwrap_or(d.state),
            save_every: positive("save_every", raw.save_every, d.save_every)?,
            listen,
            top_units: positive("top_units", raw.top_units, d.top_units)?,
            alerts_jsonl: raw.alerts.jsonl,
            hook: raw.alerts.hook,
            mem_warn_before: duration(
                "memory.warn_before",
                &raw.memory.warn_before,
                d.mem_warn_before,
            )?,
            psi_warn,
            psi_for: duration("memory.psi_for", &raw.memory.psi_for, d.psi_for)?,
        })
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/spawnscope.toml")
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs")
            .lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&doc, p()).unwrap();
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.save_every, 12);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9479");
        assert_eq!(
            c.hook.as_deref(),
            Some(
                &[
                    "/usr/local/bin/page-oncall".to_string(),
                    "--team".into(),
                    "infra".into()
                ][..]
            )
        );
        assert_eq!(c.psi_for, Duration::from_secs(30));
        assert_eq!(Config::parse("", p()).unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_key_or_the_line() {
        let cases: &[(&str, &str)] = &[
            (
                "interval = \"5 parsecs\"\n",
                "/etc/spawnscope.toml: key `interval`: \"5 parsecs\": unknown time unit",
            ),
            (
                "interval = \"0s\"\n",
                "key `interval`: must be greater than zero",
            ),
            ("save_every = 0\n", "key `save_every`: must be at least 1"),
            (
                "listen = \"localhost\"\n",
                "key `listen`: \"localhost\" is not an address:port",
            ),
            ("[alerts]\nhook = []\n", "key `alerts.hook`: is empty"),
            (
                "[alerts]\nhook = [\"notify\"]\n",
                "key `alerts.hook`: \"notify\" must be an absolute path",
            ),
            (
                "[memory]\npsi_warn = 120.0\n",
                "key `memory.psi_warn`: must be between 0 and 100",
            ),
            (
                "intervall = \"5s\"\n",
                "/etc/spawnscope.toml:1:1: unknown field `intervall`",
            ),
            ("x = \n", "/etc/spawnscope.toml:1:5: "),
            (
                "[memory]\npsi_for = 30\n",
                "/etc/spawnscope.toml:2:11: invalid type",
            ),
        ];
        for (text, want) in cases {
            let e = Config::parse(text, p()).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = Config::load(Path::new("/nonexistent/spawnscope.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read config /nonexistent/spawnscope.toml: "),
            "{e}"
        );
    }
}
