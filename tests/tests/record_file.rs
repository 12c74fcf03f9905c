//! `trace --record FILE`: a versioned JSON-lines file, each line with its
//! schema version, with the unfiltered
//! event stream, each interval's counters and the summary, complete after
//! Ctrl-C. Recording needs no --events on stdout.

use spawnscope_tests::{TestCgroup, Tracer, require_root};

#[test]
fn record_file_is_versioned_complete_and_unfiltered() {
    if !require_root("record_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.jsonl");
    let cg = TestCgroup::new("record");
    // Counter tables on stdout, a filter that matches nothing: the file
    // still gets every event.
    let tracer = Tracer::start_plain(&[
        "--interval",
        "300ms",
        "--unit",
        "no-such-unit.service",
        "--record",
        file.to_str().unwrap(),
    ]);
    let mut pids = Vec::new();
    for _ in 0..20 {
        let mut c = cg.command("/bin/true").spawn().unwrap();
        pids.push(c.id());
        assert!(c.wait().unwrap().success());
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (code, text, stderr) = tracer.stop_text(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        text.iter().any(|l| l.starts_with("=== summary")),
        "{text:?}"
    );

    let body = std::fs::read_to_string(&file).unwrap();
    assert!(body.ends_with('\n'), "complete last line");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let h = &lines[0];
    assert_eq!(h["type"], "header");
    assert_eq!(h["format"], "spawnscope-record");
    assert_eq!(h["version"], 1);
    // Every line names the schema of its objects.
    let schema = spawnscope::output::schema::SCHEMA;
    for l in &lines {
        assert_eq!(l["schema"], schema, "{l}");
    }
    assert!(h["monotonic_to_unix_s"].as_f64().unwrap() > 1.0e9);
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert!(lines.iter().filter(|l| l["type"] == "interval").count() >= 2);
    for pid in pids {
        for kind in ["exec", "exit"] {
            let n = lines
                .iter()
                .filter(|l| l["type"] == kind && l["tgid"] == pid)
                .count();
            assert_eq!(n, 1, "{kind} of {pid} recorded once");
        }
    }
    let acc = &lines.last().unwrap()["events"];
    assert_eq!(acc["counted"]["exec"], acc["delivered"]["exec"], "{acc}");
}
