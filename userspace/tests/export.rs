//! `spawnscope export`, without root, on the recorded fixture.

mod common;

use std::{path::Path, process::Command as Std};

use common::{have, promtool_check};

use assert_cmd::Command;
use spawnscope::export::{Data, Measure, hdr};

fn spawnscope() -> Command {
    Command::cargo_bin("spawnscope").unwrap()
}

/// Exports the fixture as `format` into `dir`; it must succeed.
fn export_ok(dir: &Path, format: &str) {
    spawnscope()
        .args(["export", "--format", format, "--out"])
        .arg(dir)
        .arg(fixture())
        .assert()
        .success();
}

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/host-loop.jsonl"
    ))
}

#[test]
fn export_writes_an_interval_log_that_reads_back_identical() {
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().join("new/dir");
    let out = spawnscope()
        .args(["export", "--format", "hdr", "--out"])
        .arg(&out_dir)
        .arg(fixture())
        .assert()
        .success()
        .get_output()
        .clone();
    let log = out_dir.join(hdr::FILE_NAME);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        log.display().to_string(),
        "prints what it wrote"
    );
    let back = hdr::read(&std::fs::read(&log).unwrap()).unwrap();
    let data = Data::from_recording(fixture()).unwrap();
    for e in &back {
        let m = e.measure.expect("a known measure");
        assert_eq!(e.hist, data.units[&e.unit].hists[&m], "{} {m:?}", e.unit);
    }
    assert_eq!(back.len(), 3);
}

/// Without --format every format is written, each once.
#[test]
fn every_format_by_default() {
    let d = tempfile::tempdir().unwrap();
    let out = spawnscope()
        .args(["export", "--out"])
        .arg(d.path())
        .arg(fixture())
        .assert()
        .success()
        .get_output()
        .clone();
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "spawnscope.hlog",
            "spawnscope-histograms.json",
            "spawnscope.prom",
            "spawnscope-lifetime.svg",
            "spawnscope-interval.svg",
            "spawnscope-exec-rate.svg",
            "spawnscope-memory.svg"
        ]
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        [
            "spawnscope-exec-rate.svg",
            "spawnscope-histograms.json",
            "spawnscope-interval.svg",
            "spawnscope-lifetime.svg",
            "spawnscope-memory.svg",
            "spawnscope.hlog",
            "spawnscope.prom"
        ],
        "and no temporary files"
    );
}

#[test]
fn bad_format_output_and_input_are_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = spawnscope()
        .args(["export", "--format", "xml", "--out"])
        .arg(d.path())
        .arg(fixture())
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'xml' for '--format <FORMAT>'"),
        "{err}"
    );
    // --out under a regular file cannot be created.
    let file = d.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    for (args, want) in [
        (
            vec![file.join("sub"), fixture().to_path_buf()],
            format!("spawnscope: cannot create {}/sub: ", file.display()),
        ),
        (
            vec![d.path().to_path_buf(), file.clone()],
            format!("spawnscope: {}:1: not a JSON record", file.display()),
        ),
    ] {
        let out = spawnscope()
            .args(["export", "--out"])
            .arg(&args[0])
            .arg(&args[1])
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&want), "{err}");
    }
}

/// Another implementation reads the log: Python's `hdrhistogram` (module
/// `hdrh`, installed by `cargo xtask setup`) decodes every histogram, and
/// its counts and percentiles equal spawnscope's own.
#[test]
fn python_hdrhistogram_reads_the_same_histograms() {
    let have = Std::new("python3")
        .args(["-c", "import hdrh"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        common::skip(
            "python3 with the hdrhistogram package (module hdrh) is missing \
             (cargo xtask setup installs it)",
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    export_ok(d.path(), "hdr");
    let script = r#"
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
r = HistogramLogReader(sys.argv[1], HdrHistogram(1, 86400000000000, 3))
out = []
while True:
    h = r.get_next_interval_histogram()
    if h is None:
        break
    out.append({"tag": h.get_tag(), "count": h.get_total_count(),
                "p50": h.get_value_at_percentile(50), "p90": h.get_value_at_percentile(90),
                "p99": h.get_value_at_percentile(99), "max": h.get_max_value(),
                "min": h.get_min_value(),
                "buckets": [[v.value_iterated_to, v.count_at_value_iterated_to]
                            for v in h.get_recorded_iterator()]})
print(json.dumps(out))
"#;
    let out = Std::new("python3")
        .args(["-c", script])
        .arg(d.path().join(hdr::FILE_NAME))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let data = Data::from_recording(fixture()).unwrap();
    assert_eq!(py.len(), 3);
    for p in &py {
        let tag = p["tag"].as_str().unwrap();
        let (m, unit) = tag.split_once(':').unwrap();
        let h = &data.units[&hdr::tag_unescape(unit)].hists[&Measure::parse(m).unwrap()];
        assert_eq!(p["count"], h.len(), "{tag}");
        // The same buckets with the same counts...
        let ours: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let theirs: Vec<(u64, u64)> = serde_json::from_value(p["buckets"].clone()).unwrap();
        assert_eq!(theirs, ours, "{tag}");
        // ...so the same percentiles, taken the way Python takes them: the
        // bucket holding rank round(q × count), at least 1 (Rust's
        // value_at_quantile rounds the rank up instead).
        for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            let rank = ((q * h.len() as f64 + 0.5).floor() as u64).max(1);
            let mut seen = 0;
            let at = ours
                .iter()
                .find(|(_, c)| {
                    seen += c;
                    seen >= rank
                })
                .unwrap()
                .0;
            assert_eq!(p[k], h.highest_equivalent(at), "{tag} {k}");
        }
        assert_eq!(p["max"], h.max(), "{tag}");
        assert_eq!(p["min"], h.min(), "{tag}");
    }
}

#[test]
fn help_lists_formats_and_what_is_exported() {
    let out = spawnscope()
        .args(["export", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for needle in [
        "--format <FORMAT>",
        "- hdr:  HdrHistogram interval log",
        "- json: JSON",
        "- prom: Prometheus text exposition",
        "- svg:  SVG charts",
        "--out <DIR>",
        "atomically",
        "lifetime, respawn interval, exec interval,",
        "Exit status:",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

/// The exposition passes `promtool check metrics` (parse and lint), and
/// promtool does reject a broken one.
#[test]
fn promtool_accepts_the_exposition() {
    if !have("promtool", "--version") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    export_ok(d.path(), "prom");
    let text = std::fs::read(d.path().join("spawnscope.prom")).unwrap();
    let (ok, said) = promtool_check(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}");
    let (ok, said) = promtool_check(b"# TYPE spawnscope_x counter\nspawnscope_x{unit=\"/\"} 1\n");
    assert!(!ok, "a counter without _total must fail the lint: {said}");
}

/// Every chart is well-formed SVG (parsed by Python's XML parser) with a
/// title, axis labels and, where there is data, a legend.
#[test]
fn charts_parse_as_svg() {
    if !have("python3", "--version") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    export_ok(d.path(), "svg");
    let script = r#"
import sys, xml.etree.ElementTree as ET
for f in sys.argv[1:]:
    root = ET.parse(f).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    print(f.rsplit("/", 1)[1] + "|" + str(len(texts)) + "|" + texts[0])
"#;
    let files: Vec<_> = [
        "spawnscope-lifetime.svg",
        "spawnscope-interval.svg",
        "spawnscope-exec-rate.svg",
        "spawnscope-memory.svg",
    ]
    .iter()
    .map(|f| d.path().join(f))
    .collect();
    let out = Std::new("python3")
        .args(["-c", script])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let titles: Vec<&str> = said.lines().map(|l| l.split('|').nth(2).unwrap()).collect();
    assert_eq!(
        titles,
        [
            "Process lifetime by unit",
            "Exec interval by unit (time between execs of the same executable)",
            "Exec rate by unit",
            "Memory used (MemTotal − MemAvailable)"
        ]
    );
}
