//! `spawnscope analyze FILE`: the loop detector over a `trace --record`
//! file, without root. Events are fed in file order and the result is
//! judged as of the recording's own end, so a recording gives the findings
//! its live run gave.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{
    cli::AnalyzeArgs,
    detect::{Config, DetEvent, Detector, Finding},
    output::schema::Schema,
    record::{self, ReadError, Reader},
};

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}:{line}: {what} (--lenient skips such lines)")]
    BadLine {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

#[derive(Debug, Serialize)]
pub struct Analysis {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: Schema,
    pub file: String,
    pub version: u32,
    /// exec and exit records fed to the detector.
    pub events: u64,
    /// Lines skipped by --lenient, and the first few of their numbers.
    pub skipped: u64,
    pub skipped_lines: Vec<usize>,
    pub findings: Vec<Finding>,
}

pub fn analyze(path: &Path, lenient: bool) -> Result<Analysis, AnalyzeError> {
    let mut r = Reader::open(path)?;
    let mut d = Detector::new(
        Config::default(),
        r.run.started_mono_ns,
        r.run.monotonic_to_unix_s,
    );
    let mut a = Analysis {
        kind: "analysis",
        schema: Schema,
        file: path.display().to_string(),
        version: record::VERSION,
        events: 0,
        skipped: 0,
        skipped_lines: Vec::new(),
        findings: Vec::new(),
    };
    let mut end_ns = None;
    let mut last_ts = 0;
    while let Some((line, parsed)) = r.next_line()? {
        let v = parsed.and_then(|v| match v["type"].as_str() {
            Some("exec" | "exit") => serde_json::from_value::<DetEvent>(v)
                .map(Some)
                .map_err(|e| format!("not a valid event ({e})")),
            Some("summary") => {
                end_ns = v["monotonic_end_ns"].as_u64();
                Ok(None)
            }
            // A loop systemd had counted before the trace: the live
            // findings that continue it say so, offline as they did live.
            Some("prior") => serde_json::from_value::<crate::detect::Prior>(v["finding"].clone())
                .map(|p| {
                    d.seed([p]);
                    None
                })
                .map_err(|e| format!("not a valid prior finding ({e})")),
            Some(_) => Ok(None),
            None => Err("a JSON line without a \"type\"".into()),
        });
        match v {
            Ok(Some(ev)) => {
                d.tick(ev.ts_ns);
                d.event(&ev);
                last_ts = last_ts.max(ev.ts_ns);
                a.events += 1;
            }
            Ok(None) => {}
            Err(what) if lenient => {
                let _ = what;
                a.skipped += 1;
                if a.skipped_lines.len() < 10 {
                    a.skipped_lines.push(line);
                }
            }
            Err(what) => {
                return Err(AnalyzeError::BadLine {
                    path: path.to_path_buf(),
                    line,
                    what,
                });
            }
        }
    }
    a.findings = d.findings(end_ns.unwrap_or(last_ts));
    Ok(a)
}

pub fn run(args: &AnalyzeArgs) -> Result<(), AnalyzeError> {
    let a = analyze(&args.file, args.lenient)?;
    let mut out = io::stdout().lock();
    let w = if args.json {
        serde_json::to_writer(&mut out, &a)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        (|| {
            writeln!(
                out,
                "{}: {} finding(s) in {} exec/exit events{}",
                a.file,
                a.findings.len(),
                a.events,
                if a.skipped > 0 {
                    format!(
                        ", {} bad line(s) skipped (first: {:?})",
                        a.skipped, a.skipped_lines
                    )
                } else {
                    String::new()
                }
            )?;
            for f in &a.findings {
                writeln!(out, "[{}] {} ({})", f.severity.as_str(), f.message, f.state)?;
            }
            Ok(())
        })()
    };
    w.map_err(AnalyzeError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEADER: &str = r#"{"type":"header","format":"spawnscope-record","version":1,"spawnscope":"0.1.0","started_unix":1000.0,"started_mono_ns":0,"monotonic_to_unix_s":1000.0,"hostname":"h","kernel":"k"}"#;

    fn loop_lines(n: u64) -> String {
        let mut s = String::new();
        for i in 0..n {
            let t = 1_000_000_000 + i * 2_000_000_000;
            let pid = 100 + i;
            s.push_str(&format!(
                r#"{{"type":"exec","ts_ns":{t},"tgid":{pid},"ppid":1,"start_ns":{t},"cgroup":"/system.slice/x.service","unit":"x.service","container":null,"comm":"x","parent_comm":"systemd","filename":"/usr/bin/x","argv":["/usr/bin/x"]}}"#
            ));
            s.push('\n');
            s.push_str(&format!(
                r#"{{"type":"exit","ts_ns":{},"tgid":{pid},"ppid":1,"start_ns":{t},"cgroup":"/system.slice/x.service","unit":"x.service","container":null,"comm":"x","code":3,"lifetime_ns":5000000}}"#,
                t + 5_000_000
            ));
            s.push('\n');
        }
        s
    }

    #[test]
    fn finds_the_loop_in_a_recording() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "r", &format!("{HEADER}\n{}", loop_lines(6)));
        let a = analyze(&p, false).unwrap();
        assert_eq!(a.events, 12);
        assert_eq!(a.findings.len(), 1);
        let f = &a.findings[0];
        assert_eq!(f.unit.as_deref(), Some("x.service"));
        assert_eq!(f.restarts, 5);
        assert_eq!(f.dominant.code, Some(3));
        assert_eq!(f.parent.comm, "systemd");
        assert_eq!(f.first_seen_unix, 1001.0);
    }

    /// A recording whose starts go back in time, newest first (a
    /// recording is any file): the loop is still found, over no span.
    #[test]
    fn starts_out_of_order_are_a_loop_over_no_span() {
        let d = tempfile::tempdir().unwrap();
        let mut pairs: Vec<String> = loop_lines(6)
            .lines()
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| c.join("\n"))
            .collect();
        pairs.reverse();
        let p = write(d.path(), "r", &format!("{HEADER}\n{}\n", pairs.join("\n")));
        let a = analyze(&p, false).unwrap();
        assert_eq!(a.findings.len(), 1);
        let f = &a.findings[0];
        assert_eq!(f.restarts, 5);
        assert!(
            f.message
                .starts_with("x.service: /usr/bin/x restarted 5 times in 0.0s "),
            "{}",
            f.message
        );
    }

    #[test]
    fn corrupt_and_truncated_lines_name_their_line_or_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let body = loop_lines(6);
        let corrupt = format!("{HEADER}\n{body}{{\"type\":\"exec\",\"ts_n\n");
        let p = write(d.path(), "c", &corrupt);
        let e = analyze(&p, false).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:14: not valid JSON", p.display())),
            "{e}"
        );
        let a = analyze(&p, true).unwrap();
        assert_eq!((a.skipped, a.skipped_lines.clone()), (1, vec![14]));
        assert_eq!(a.findings.len(), 1, "what was readable still counts");

        // Cut mid-line, as a crash would leave it.
        let full = format!("{HEADER}\n{body}");
        let p = write(d.path(), "t", &full[..full.len() - 10]);
        let e = analyze(&p, false).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:13: truncated line (no newline at the end of the file) (--lenient skips such lines)",
                p.display()
            )
        );
        // An event missing a field it needs.
        let p = write(
            d.path(),
            "m",
            &format!("{HEADER}\n{{\"type\":\"exit\",\"tgid\":1}}\n"),
        );
        let e = analyze(&p, false).unwrap_err().to_string();
        assert!(e.contains(":2: not a valid event (missing field"), "{e}");
    }

    #[test]
    fn unknown_versions_and_non_recordings_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "v",
            &HEADER.replace("\"version\":1", "\"version\":7"),
        );
        assert_eq!(
            analyze(&p, true).unwrap_err().to_string(),
            format!(
                "{}: recording format version 7 is not supported (this spawnscope reads version 1)",
                p.display()
            )
        );
        for text in ["", "hello\n", "{\"type\":\"header\"}\n"] {
            let p = write(d.path(), "n", text);
            assert!(
                matches!(
                    analyze(&p, true),
                    Err(AnalyzeError::Read(ReadError::NotRecord { .. }))
                ),
                "{text:?}"
            );
        }
        assert!(matches!(
            analyze(&d.path().join("absent"), false),
            Err(AnalyzeError::Read(ReadError::Io { .. }))
        ));
    }
}
